//! Module layering the README's layout describes, checked on the sources: no import cycle
//! between the modules of any crate of the workspace, and the lower layers of `src/` import
//! nothing above them.
//!
//! Every path a module names (`use` trees with their braces, and paths in code) that starts
//! with `crate`, `super` or `self` is an edge to the deepest module it names; test modules
//! (`#[cfg(test)]`) are left out, and a module naming its own parent or child is no edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`http::routes`; the root is "") to the modules it names.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The module graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    collect(src, src, &mut files);
    let known: BTreeSet<String> = files.iter().map(|(module, _)| module.clone()).collect();
    let mut graph = Graph::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let found = paths(&without_tests(&code_of(&text)));
        let named = found
            .iter()
            .filter_map(|path| resolve(module, path, &known))
            .filter(|target| !related(module, target))
            .collect();
        graph.insert(module.clone(), named);
    }
    graph
}

/// Every Rust file under `dir` with its module path.
fn collect(src: &Path, dir: &Path, files: &mut Vec<(String, std::path::PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(src, &path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            files.push((parts.join("::"), path));
        }
    }
}

/// The deepest known module a path names, from the module it is written in.
fn resolve(module: &str, path: &[String], known: &BTreeSet<String>) -> Option<String> {
    let (mut base, rest): (Vec<&str>, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (split(module), &path[1..]),
        "super" => {
            let mut parent = split(module);
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                parent.pop();
                rest = &rest[1..];
            }
            (parent, rest)
        }
        _ => return None,
    };
    let mut deepest = None;
    for segment in rest {
        base.push(segment);
        let candidate = base.join("::");
        if known.contains(&candidate) {
            deepest = Some(candidate);
        }
    }
    deepest
}

fn split(module: &str) -> Vec<&str> {
    module.split("::").filter(|s| !s.is_empty()).collect()
}

/// Whether one module contains the other (a module and its own parts are one unit).
fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::")) || b.is_empty()
}

/// The text of a Rust file without comments and the contents of string and char literals,
/// so that only code is read. (A parser crate would do this too; syn as a dev-dependency
/// rebuilt every proc macro of the dependency tree in CI, for a test of a few paths.)
fn code_of(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut code = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        match chars[i] {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            'r' if next == Some('#') || (next == Some('"') && !ident_before(&chars, i)) => {
                // A raw string: r"…" or r#"…"#, ended by the same number of hashes.
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                let end: String = std::iter::once('"')
                    .chain("#".repeat(hashes).chars())
                    .collect();
                let body: String = chars[i..].iter().collect();
                let open = 1 + hashes + 1;
                let close = body[open..]
                    .find(&end)
                    .map_or(body.len(), |at| open + at + end.len());
                i += body[..close].chars().count();
                code.push_str("\"\"");
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                code.push_str("\"\"");
            }
            '\'' if next.is_some_and(|c| c == '\\') || chars.get(i + 2) == Some(&'\'') => {
                // A char literal ('x', '\n', '\''), not a lifetime.
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c => {
                code.push(c);
                i += 1;
            }
        }
    }
    code
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Code without its `#[cfg(test)]` modules.
fn without_tests(code: &str) -> String {
    let mut kept = code.to_owned();
    while let Some(at) = kept.find("#[cfg(test)]") {
        let after = &kept[at..];
        let Some(open) = after.find('{').filter(|o| after[..*o].contains("mod ")) else {
            kept.replace_range(at..at + "#[cfg(test)]".len(), "");
            continue;
        };
        let mut depth = 0;
        let mut end = after.len();
        for (offset, c) in after[open..].char_indices() {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            if depth == 0 {
                end = open + offset + 1;
                break;
            }
        }
        kept.replace_range(at..at + end, "");
    }
    kept
}

/// Every path starting with `crate`, `super` or `self` in code, the groups of `use` trees
/// expanded: `use crate::{a, b::{C}}` names `crate::a` and `crate::b::C`.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for start in ["crate", "super", "self"] {
        for (at, _) in code.match_indices(start) {
            let before = code[..at].chars().next_back();
            let after = &code[at + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') || !after.starts_with("::") {
                continue;
            }
            tree(after, vec![start.to_owned()], &mut found);
        }
    }
    found
}

/// Reads one `use` tree (or a path) at the start of `text`, which follows `prefix`.
fn tree(text: &str, prefix: Vec<String>, found: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    let mut rest = text.trim_start();
    loop {
        rest = rest.strip_prefix("::").unwrap_or(rest).trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = 0;
            for (offset, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        tree(&group[item..offset], path.clone(), found);
                        item = offset + 1;
                        if c == '}' {
                            return;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            return;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            break;
        }
        rest = &rest[name.len()..];
        path.push(name);
        if !rest.trim_start().starts_with("::") {
            break;
        }
        rest = rest.trim_start();
    }
    found.push(path);
}

/// A cycle of the graph, if it has one: the modules on it, in order.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn walk(
        graph: &Graph,
        at: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = stack.iter().position(|m| m == at) {
            let mut found = stack[start..].to_vec();
            found.push(at.to_owned());
            return Some(found);
        }
        if done.contains(at) {
            return None;
        }
        stack.push(at.to_owned());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(found) = walk(graph, next, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        done.insert(at.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| walk(graph, module, &mut Vec::new(), &mut done))
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The graph of the top-level modules: each module with its parts as one.
fn top_level(graph: &Graph) -> Graph {
    let top = |module: &str| {
        split(module)
            .first()
            .copied()
            .unwrap_or_default()
            .to_owned()
    };
    let mut tops = Graph::new();
    for (module, named) in graph {
        let entry = tops.entry(top(module)).or_default();
        entry.extend(named.iter().map(|n| top(n)).filter(|n| *n != top(module)));
    }
    tops
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    for src in ["src", "model/src", "validators/src", "actors/src"] {
        let graph = graph(&workspace().join(src));
        let edges: usize = graph.values().map(BTreeSet::len).sum();
        assert!(src == "model/src" || edges > 0, "{src}: imports found");
        for graph in [top_level(&graph), graph] {
            if let Some(modules) = cycle(&graph) {
                panic!("{src}: import cycle {}", modules.join(" -> "));
            }
        }
    }
}

#[test]
fn the_cycle_check_sees_braces_super_and_paths_in_code() {
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    write("lib.rs", "mod a;\nmod b;\nmod c;\n");
    write("a/mod.rs", "mod inner;\npub fn g() {}\n");
    write("a/inner.rs", "use crate::{x, b::{Thing}};\n");
    write(
        "b.rs",
        "pub struct Thing;\nfn f() { super::a::g() }\n// crate::c\nconst S: &str = \"crate::c\";\n\
         #[cfg(test)]\nmod tests {\n    use crate::c;\n}\n",
    );
    write("c.rs", "");
    let graph = graph(dir.path());
    assert_eq!(graph["a::inner"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(graph["b"], BTreeSet::from(["a".to_owned()]));
    assert_eq!(cycle(&graph), None, "module a itself names nothing");
    let tops = top_level(&graph);
    assert_eq!(cycle(&tops), Some(vec!["a".into(), "b".into(), "a".into()]));
}

/// The lower layers, from the leaf up: each module may name only the modules before it in
/// its own list, never one above it.
const LAYERS: [(&str, &[&str]); 13] = [
    ("imaging", &[]),
    ("metrics", &[]),
    ("extract", &["imaging"]),
    ("privacy", &["imaging"]),
    ("config", &["extract", "privacy", "imaging"]),
    ("auth", &["config"]),
    ("clock", &[]),
    ("blocking", &[]),
    ("orphans", &[]),
    ("mongo", &["config"]),
    ("notify", &["blocking", "config", "mongo"]),
    (
        "pipeline",
        &[
            "auth", "config", "extract", "imaging", "metrics", "notify", "orphans", "privacy",
        ],
    ),
    ("jobs", &["blocking", "config", "mongo", "pipeline"]),
];

#[test]
fn lower_layers_import_nothing_above_them() {
    let graph = graph(&workspace().join("src"));
    for (layer, below) in LAYERS {
        let above: Vec<(&String, &String)> = graph
            .iter()
            .filter(|(module, _)| split(module).first() == Some(&layer))
            .flat_map(|(module, named)| named.iter().map(move |n| (module, n)))
            .filter(|(_, named)| {
                let top = split(named)[0];
                top != layer && !below.contains(&top)
            })
            .collect();
        assert!(above.is_empty(), "{layer} imports {above:?}");
    }
}
