//! Module layering the README's layout describes, checked on the sources.

use std::path::Path;

/// Every `crate::` path in the Rust files under `dir`, with the file it is in.
fn crate_paths(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(crate_paths(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("crate::") {
                let rest: String = text[at..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                found.push((path.display().to_string(), rest));
            }
        }
    }
    found
}

#[test]
fn imaging_is_a_leaf() {
    let imaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/imaging");
    let outside: Vec<_> = crate_paths(&imaging)
        .into_iter()
        .filter(|(_, path)| !path.starts_with("crate::imaging"))
        .collect();
    assert!(outside.is_empty(), "imaging imports {outside:?}");
}
