//! `librarian describe`: every kind of component with its options, defaults and doc comments,
//! printed from the config types' own JSON Schemas, so the text cannot drift from the code.

use std::fmt::Write;

use clap::ValueEnum;
use librarian_actors::ActorConfig;
use librarian_validators::ValidatorConfig;
use serde_json::Value;

use crate::config::notify::{NotifierConfig, OutboxConfig};
use crate::config::queue::QueueConfig;
use crate::extract::ExtractorConfig;

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Section {
    Validators,
    Extractors,
    Actors,
    Queue,
    Notifiers,
    Outbox,
}

pub fn describe(only: Option<Section>) -> String {
    let sections = [
        (Section::Validators, schemars::schema_for!(ValidatorConfig)),
        (Section::Extractors, schemars::schema_for!(ExtractorConfig)),
        (Section::Actors, schemars::schema_for!(ActorConfig)),
        (Section::Queue, schemars::schema_for!(QueueConfig)),
        (Section::Notifiers, schemars::schema_for!(NotifierConfig)),
        (Section::Outbox, schemars::schema_for!(OutboxConfig)),
    ];
    let mut out = String::from(
        "A duration is written with a unit: \"30s\", \"1500ms\", \"2m\". A relative path is \
         read from the config file's folder,\nor from the working directory when there is no \
         config file.\n\n",
    );
    for (section, schema) in sections {
        if only.is_none_or(|s| s == section) {
            // Components are named; the queue and the outbox are tables of their own.
            let table = match section {
                Section::Queue => "[queue]".to_owned(),
                Section::Outbox => "[outbox]".to_owned(),
                _ => format!("[{}.<name>]", format!("{section:?}").to_lowercase()),
            };
            describe_section(&mut out, &table, schema.as_value());
        }
    }
    out
}

fn describe_section(out: &mut String, table: &str, schema: &Value) {
    let _ = writeln!(out, "{table}");
    // A table of one shape is described as an enum of kinds with a single, kindless variant.
    let variants = match schema["oneOf"].as_array() {
        Some(kinds) => kinds.clone(),
        None => vec![schema.clone()],
    };
    for variant in &variants {
        let about = variant["description"]
            .as_str()
            .unwrap_or("")
            .replace('\n', " ");
        let _ = match variant["properties"]["kind"]["const"].as_str() {
            Some(kind) => writeln!(out, "\n  kind = \"{kind}\"\n    {about}"),
            None => writeln!(out, "  {about}"),
        };
        let required: Vec<&str> = variant["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (field, spec) in variant["properties"].as_object().into_iter().flatten() {
            if field == "kind" {
                continue;
            }
            let spec = resolve(schema, spec);
            let mut line = format!("    {field}: {}", type_name(schema, &spec));
            if required.contains(&field.as_str()) {
                line.push_str(", required");
            } else if let Some(default) = spec.get("default") {
                let _ = write!(line, ", default {default}");
            }
            let _ = writeln!(out, "{line}");
            if let Some(text) = spec.get("description").and_then(Value::as_str) {
                let _ = writeln!(out, "        {}", text.replace('\n', " "));
            }
        }
    }
    out.push('\n');
}

/// Follows a `$ref` into the schema's `$defs`, keeping the referring description.
fn resolve(root: &Value, spec: &Value) -> Value {
    let Some(reference) = spec.get("$ref").and_then(Value::as_str) else {
        return spec.clone();
    };
    let name = reference.trim_start_matches("#/$defs/");
    let mut target = root["$defs"][name].clone();
    if let Some(obj) = target.as_object_mut() {
        for key in ["description", "default"] {
            if let Some(value) = spec.get(key) {
                obj.insert(key.into(), value.clone());
            }
        }
    }
    target
}

fn type_name(root: &Value, spec: &Value) -> String {
    if let Some(options) = spec.get("enum").and_then(Value::as_array) {
        return options
            .iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
    }
    if let Some(variants) = spec.get("oneOf").and_then(Value::as_array) {
        return variants
            .iter()
            .filter_map(|v| {
                v.get("const")
                    .or_else(|| v.get("enum").and_then(|e| e.get(0)))
            })
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
    }
    // Formats the config types give their durations and paths, whose text has a rule.
    match spec["format"].as_str() {
        Some("duration") => return "duration".into(),
        Some("path") => return "path".into(),
        _ => {}
    }
    match &spec["type"] {
        Value::String(t) if t == "array" => format!(
            "array of {}",
            type_name(root, &resolve(root, &spec["items"]))
        ),
        Value::String(t) => t.clone(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".into(),
    }
}
