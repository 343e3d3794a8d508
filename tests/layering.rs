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
            found.extend(crate_paths_of(&path));
        }
    }
    found
}

/// Every `crate::` path in one Rust file, with the file.
fn crate_paths_of(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    text.match_indices("crate::")
        .map(|(at, _)| {
            let path: String = text[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            (file.display().to_string(), path)
        })
        .collect()
}

/// The lower layers, from the leaf up: each module may name only the modules before it in
/// its own list (crate::<module>), never one above it.
const LAYERS: [(&str, &[&str]); 6] = [
    ("imaging", &[]),
    ("metrics", &[]),
    ("extract", &["imaging"]),
    ("privacy", &["imaging"]),
    ("config", &["extract", "privacy", "imaging"]),
    ("auth", &["config"]),
];

#[test]
fn lower_layers_import_nothing_above_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (module, below) in LAYERS {
        let dir = src.join(module);
        let files = match dir.is_dir() {
            true => crate_paths(&dir),
            false => crate_paths_of(&src.join(format!("{module}.rs"))),
        };
        let above: Vec<_> = files
            .into_iter()
            .filter(|(_, path)| {
                let named = path
                    .trim_start_matches("crate::")
                    .split("::")
                    .next()
                    .unwrap();
                named != module && !below.contains(&named)
            })
            .collect();
        assert!(above.is_empty(), "{module} imports {above:?}");
    }
}
