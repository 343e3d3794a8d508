//! zxing-cpp on the same images, through `zxing_cpp_reference.py` in a Python that has the
//! `zxing-cpp` and `pillow` packages (scripts/bench-barcodes makes that virtual environment).

use std::io::Write;
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::Read;
use crate::manifest::Case;

#[derive(Deserialize)]
struct Line {
    ms: f64,
    codes: Vec<Code>,
}

#[derive(Deserialize)]
struct Code {
    format: String,
    text: String,
}

pub fn run(python: &str, cases: &[Case]) -> Vec<Read> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/zxing_cpp_reference.py"
    );
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let paths: String = cases
        .iter()
        .map(|c| format!("{}\n", c.path.display()))
        .collect();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || stdin.write_all(paths.as_bytes()));
    let output = child.wait_with_output().expect("the reference runs");
    writer.join().expect("writer").expect("paths written");
    assert!(output.status.success(), "the zxing-cpp reference failed");
    let reads: Vec<Read> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let line: Line = serde_json::from_str(line).expect("a JSON line per image");
            Read {
                ms: line.ms,
                codes: line.codes.into_iter().map(|c| (c.format, c.text)).collect(),
            }
        })
        .collect();
    assert_eq!(reads.len(), cases.len(), "one reference line per image");
    reads
}
