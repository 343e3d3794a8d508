//! The OpenAPI document is written by hand, so these tests hold it to the code it describes:
//! its paths and methods are the route table's, and its Record schema is the Record type,
//! member for member. (Its codes are checked in `codes.rs`; its requests and responses against
//! the running server by `scripts/contract`.)

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use librarian::http::table::ROUTES;
use librarian_model::{
    Barcode, BarcodeFormat, ImageFacts, ImageFormat, MetadataReport, PixelBox, Record, Sequence,
    Stored, Text, TextLine,
};
use serde_json::{Value, json};
use uuid::Uuid;

fn document() -> Value {
    serde_json::from_str(include_str!("../src/http/assets/openapi.json")).unwrap()
}

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

#[test]
fn the_paths_and_methods_are_the_route_tables() {
    let document = document();
    let paths = document["paths"].as_object().unwrap();
    let routes: Vec<_> = ROUTES
        .iter()
        .filter(|(template, _)| !template.starts_with("/assets/"))
        .collect();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let routed: BTreeSet<&str> = routes.iter().map(|(template, _)| *template).collect();
    assert_eq!(documented, routed, "the document's paths are the routes");
    for (template, allow) in routes {
        let mut methods: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| paths[*template].get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        // HEAD is answered wherever GET is; the document leaves it implicit.
        if methods.contains("GET") {
            methods.insert("HEAD".into());
        }
        let allowed: BTreeSet<String> = allow.split(", ").map(str::to_owned).collect();
        assert_eq!(methods, allowed, "methods of {template}");
    }
}

/// A record with every optional member present.
fn full_record() -> Record {
    Record {
        id: Uuid::now_v7(),
        pipeline: "shop".into(),
        received_at: Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap(),
        labels: json!({"gtin": "0012345678905", "shelf": {"row": 2}})
            .as_object()
            .unwrap()
            .clone(),
        image: ImageFacts {
            format: ImageFormat::Jpeg,
            width: 4000,
            height: 3000,
            bytes: 2_000_000,
            sha256: "ab".repeat(32),
        },
        barcodes: vec![Barcode {
            text: "0012345678905".into(),
            format: BarcodeFormat::UpcA,
            kind: "product".into(),
            points: vec![[1.0, 2.0], [3.0, 4.0]],
            conflicting_texts: vec!["0012345678912".into()],
            gs1: true,
            sequence: Some(Sequence {
                position: 2,
                total: 3,
                id: "17".into(),
            }),
        }],
        text: Some(Text {
            text: "BEST BEFORE".into(),
            lines: vec![TextLine {
                text: "BEST BEFORE".into(),
                confidence: 91.5,
                bounds: PixelBox {
                    x: 10,
                    y: 20,
                    w: 300,
                    h: 40,
                },
            }],
        }),
        metadata: Some(MetadataReport {
            removed: vec!["exif".into()],
            kept: json!({"capture_time": "2026-11-30T11:59:00Z"})
                .as_object()
                .unwrap()
                .clone(),
        }),
        duplicate_of: Some(Uuid::now_v7()),
        stored: vec![Stored {
            actor: "disk".into(),
            location: "data/x.jpg".into(),
        }],
    }
}

/// The schema at a `#/...` reference, or the schema itself.
fn resolved<'d>(document: &'d Value, schema: &'d Value) -> &'d Value {
    match schema["$ref"].as_str() {
        Some(pointer) => resolved(document, document.pointer(&pointer[1..]).unwrap()),
        None => schema,
    }
}

/// Every object the value holds has exactly the members its schema names, where the schema
/// names them (the labels, free by design, name none).
fn same_members(document: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolved(document, schema);
    match value {
        Value::Object(members) => {
            let Some(properties) = schema["properties"].as_object() else {
                return;
            };
            let named: BTreeSet<&String> = properties.keys().collect();
            let sent: BTreeSet<&String> = members.keys().collect();
            assert_eq!(named, sent, "members of {at}");
            for (name, member) in members {
                same_members(document, &properties[name], member, &format!("{at}.{name}"));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                same_members(document, &schema["items"], item, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn the_record_schema_is_the_record_type() {
    let document = document();
    let record = serde_json::to_value(full_record()).unwrap();
    let schema = &document["components"]["schemas"]["Record"];
    same_members(&document, schema, &record, "Record");

    // The document's own references resolve inside it, so its components ride along.
    let root = json!({
        "$ref": "#/components/schemas/Record",
        "components": document["components"],
    });
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&record)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut bare = full_record();
    bare.metadata = None;
    bare.duplicate_of = None;
    bare.text = None;
    bare.barcodes[0].conflicting_texts.clear();
    let bare = serde_json::to_value(bare).unwrap();
    let always: BTreeSet<&str> = bare
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(required, always, "required are the members always sent");
}
