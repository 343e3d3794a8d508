//! The one table of problem codes (`src/http/codes.rs`) against what users read: the README's
//! error tables and the OpenAPI document. A code added, renamed or given another status in
//! one place and not the others fails here.

use std::collections::{BTreeMap, BTreeSet};

use librarian::http::codes::ALL;
use serde_json::Value;

/// `code -> status` of every row of the README's tables whose first cell is a status.
fn readme_codes() -> BTreeMap<String, BTreeSet<u16>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut found: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(status), Some(codes)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(status) = status.parse::<u16>() else {
            continue;
        };
        for code in codes.split('`').skip(1).step_by(2) {
            found.entry(code.to_owned()).or_default().insert(status);
        }
    }
    found
}

#[test]
fn the_readme_lists_every_code_with_its_status_and_no_other() {
    let readme = readme_codes();
    for code in ALL {
        let listed = readme.get(code.name);
        assert_eq!(
            listed,
            Some(&BTreeSet::from([code.status.as_u16()])),
            "{} answered {} is in the README's error table with that status",
            code.name,
            code.status
        );
    }
    let known: BTreeSet<&str> = ALL.iter().map(|c| c.name).collect();
    for code in readme.keys() {
        assert!(
            known.contains(code.as_str()),
            "the README lists `{code}`, which the server never answers"
        );
    }
}

#[test]
fn the_openapi_document_knows_every_code_and_status() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/http/assets/openapi.json"
    ))
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let listed: BTreeSet<&str> =
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .expect("Problem.code lists the codes")
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    let known: BTreeSet<&str> = ALL.iter().map(|c| c.name).collect();
    assert_eq!(listed, known);
    let mut documented = BTreeSet::new();
    for operations in doc["paths"].as_object().unwrap().values() {
        for operation in operations.as_object().unwrap().values() {
            for status in operation["responses"].as_object().into_iter().flatten() {
                documented.insert(status.0.parse::<u16>().unwrap());
            }
        }
    }
    for code in ALL {
        let status = code.status.as_u16();
        // 405 comes from the router for any path and method, not from one operation.
        if status != 405 {
            assert!(
                documented.contains(&status),
                "{} ({status}) is documented",
                code.name
            );
        }
    }
}
