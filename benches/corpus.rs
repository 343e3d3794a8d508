//! Detection rate and speed of the barcode extractor on a corpus manifest.
//!
//! `cargo bench --bench corpus -- PATH/manifest.tsv`
//!
//! The manifest is tab-separated with a header: `path` (relative to the manifest's folder),
//! `format` (rxing name) and `expected` (escaped: `\\`, `\t`, `\n`, `\r`, `\xHH`). Each image
//! is timed from its bytes to its barcodes (header probe, decode, extraction), as the service
//! does it, on one thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use librarian::extract::{BarcodeExtractor, BarcodeExtractorConfig, Extracted, Extractor};
use librarian::imaging::{DECODE_PIXEL_LIMIT, decode_gray, probe};

struct Case {
    path: PathBuf,
    format: String,
    expected: String,
}

#[derive(Default)]
struct Tally {
    images: usize,
    found: usize,
    wrong: usize,
    failed: usize,
    ms: Vec<f64>,
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).unwrap_or(b'?')));
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn read_manifest(manifest: &Path) -> Vec<Case> {
    let base = manifest.parent().unwrap_or(Path::new("."));
    let text =
        std::fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    text.lines()
        .skip(1)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut columns = line.splitn(3, '\t');
            let mut next = || columns.next().unwrap_or_default().to_owned();
            let (path, format, expected) = (next(), next(), next());
            Case {
                path: base.join(path),
                format,
                expected: unescape(&expected),
            }
        })
        .collect()
}

/// zxing prints UPC-A as 12 digits; a reader may report the same symbol as EAN-13 with a
/// leading zero. Both are the same read.
fn same_read(format: &str, expected: &str, text: &str) -> bool {
    text == expected || (format == "UPC_A" && text.strip_prefix('0') == Some(expected))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

fn main() {
    let Some(manifest) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        eprintln!("usage: cargo bench --bench corpus -- PATH/manifest.tsv");
        std::process::exit(2);
    };
    let cases = read_manifest(Path::new(&manifest));
    let extractor =
        BarcodeExtractor::new(&BarcodeExtractorConfig::default()).expect("default extractor");
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for case in &cases {
        let bytes =
            std::fs::read(&case.path).unwrap_or_else(|e| panic!("{}: {e}", case.path.display()));
        let started = Instant::now();
        let outcome = probe(&bytes)
            .and_then(|facts| decode_gray(&bytes, &facts, DECODE_PIXEL_LIMIT))
            .map(|gray| {
                let mut found = Extracted::default();
                extractor.extract(&gray, &mut found);
                found.barcodes
            });
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let tally = tallies.entry(case.format.clone()).or_default();
        tally.images += 1;
        tally.ms.push(ms);
        match outcome {
            Ok(codes)
                if codes
                    .iter()
                    .any(|c| same_read(&case.format, &case.expected, &c.text)) =>
            {
                tally.found += 1
            }
            Ok(codes) if codes.iter().any(|c| c.format == case.format) => tally.wrong += 1,
            Ok(_) => {}
            Err(e) => {
                tally.failed += 1;
                eprintln!("{}: {e}", case.path.display());
            }
        }
    }
    let mut total = Tally::default();
    println!("| format | images | found | rate | wrong | undecodable | median ms | p90 ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let row = |name: &str, t: &mut Tally| {
        t.ms.sort_by(f64::total_cmp);
        let rate = 100.0 * t.found as f64 / t.images.max(1) as f64;
        println!(
            "| {name} | {} | {} | {rate:.1}% | {} | {} | {:.1} | {:.1} |",
            t.images,
            t.found,
            t.wrong,
            t.failed,
            percentile(&t.ms, 0.5),
            percentile(&t.ms, 0.9)
        );
    };
    for (format, tally) in &mut tallies {
        row(format, tally);
        total.images += tally.images;
        total.found += tally.found;
        total.wrong += tally.wrong;
        total.failed += tally.failed;
        total.ms.extend(&tally.ms);
    }
    row("**all**", &mut total);
}
