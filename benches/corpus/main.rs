//! Detection rate and speed of the barcode extractor on a corpus manifest, side by side with
//! zxing-cpp when a Python with it is given, and on phone-sized photos made from the corpus.
//!
//! `cargo bench --bench corpus -- [--zxing-cpp PYTHON] [--phone DIR] [--phone-every 4]
//! [--misses] PATH/manifest.tsv` (scripts/bench-barcodes runs it with everything).
//!
//! Each image is timed from its bytes to its barcodes (header probe, decode, extraction), as
//! the service does it, on one thread; zxing-cpp likewise from bytes (Pillow) to barcodes.

#[path = "../support/mod.rs"]
mod support;

mod manifest;
mod phone;
mod reference;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use librarian::extract::analyze_now;
use librarian::extract::{BarcodeExtractor, BarcodeExtractorConfig, Extractor};
use librarian::imaging::{DECODE_PIXEL_LIMIT, probe};
use librarian_model::{Barcode, normalize_gtin};
use manifest::Case;
use support::{arg, percentile};

/// What one reader made of one image.
pub struct Read {
    pub ms: f64,
    /// (format, text) of every code read.
    pub codes: Vec<(String, String)>,
}

/// zxing prints UPC-A as 12 digits and UPC-E as 8; a reader may report the same symbols as
/// EAN-13 (a leading zero) or UPC-E expanded. Product codes are compared as GTINs.
fn same_read(case: &Case, format: &str, text: &str) -> bool {
    let gtin = |format: &str, text: &str| {
        let code = format.parse().ok().map(|format| Barcode {
            text: text.to_owned(),
            format,
            kind: String::new(),
            points: Vec::new(),
            conflicting_texts: Vec::new(),
            gs1: false,
        });
        code.and_then(|c| c.gtin())
            .or_else(|| normalize_gtin(text).filter(|_| format.starts_with("UPC")))
    };
    text == case.expected
        || gtin(&case.format, &case.expected).is_some_and(|g| Some(g) == gtin(format, text))
}

fn found(case: &Case, read: &Read) -> bool {
    read.codes
        .iter()
        .any(|(format, text)| same_read(case, format, text))
}

/// Another code read where the expected one was not: a misread, or a false code of another
/// format (a UPC-E in the left half of an EAN-13). Each corpus image holds one code.
fn wrong(case: &Case, read: &Read) -> bool {
    !found(case, read) && !read.codes.is_empty()
}

fn librarian(extractor: &Arc<dyn Extractor>, case: &Case) -> Read {
    let bytes =
        std::fs::read(&case.path).unwrap_or_else(|e| panic!("{}: {e}", case.path.display()));
    let started = Instant::now();
    let outcome = probe(&bytes).and_then(|facts| {
        analyze_now(
            &bytes,
            &facts,
            DECODE_PIXEL_LIMIT,
            std::slice::from_ref(extractor),
        )
    });
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let codes = match outcome {
        // A disputed read is reported as such: neither found nor wrong.
        Ok(found) => found
            .barcodes
            .into_iter()
            .filter(|c| c.conflicting_texts.is_empty())
            .map(|c| (c.format.name().to_owned(), c.text))
            .collect(),
        Err(e) => {
            eprintln!("{}: {e}", case.path.display());
            Vec::new()
        }
    };
    Read { ms, codes }
}

#[derive(Default)]
struct Tally {
    images: usize,
    found: usize,
    wrong: usize,
    ms: Vec<f64>,
}

impl Tally {
    fn add(&mut self, case: &Case, read: &Read) {
        self.images += 1;
        self.found += usize::from(found(case, read));
        self.wrong += usize::from(wrong(case, read));
        self.ms.push(read.ms);
    }
    fn merge(&mut self, other: &Tally) {
        self.images += other.images;
        self.found += other.found;
        self.wrong += other.wrong;
        self.ms.extend(&other.ms);
    }
    fn rate(&self) -> f64 {
        100.0 * self.found as f64 / self.images.max(1) as f64
    }
    fn times(&mut self) -> (f64, f64) {
        self.ms.sort_by(f64::total_cmp);
        (percentile(&self.ms, 0.5), percentile(&self.ms, 0.9))
    }
}

fn table(title: &str, cases: &[Case], ours: &[Read], theirs: Option<&[Read]>) {
    let mut tallies: BTreeMap<&str, (Tally, Tally)> = BTreeMap::new();
    for (i, case) in cases.iter().enumerate() {
        let (mine, reference) = tallies.entry(&case.format).or_default();
        mine.add(case, &ours[i]);
        if let Some(theirs) = theirs {
            reference.add(case, &theirs[i]);
        }
    }
    let mut all = (Tally::default(), Tally::default());
    for (mine, reference) in tallies.values() {
        all.0.merge(mine);
        all.1.merge(reference);
    }
    println!("\n### {title}\n");
    if theirs.is_some() {
        println!(
            "| format | images | found librarian | found zxing-cpp | wrong librarian | wrong zxing-cpp | median ms librarian | median ms zxing-cpp | median ratio | p90 ms librarian | p90 ms zxing-cpp |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    } else {
        println!("| format | images | found | rate | wrong | median ms | p90 ms |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    }
    let rows = tallies
        .iter_mut()
        .map(|(f, t)| (f.to_string(), t))
        .chain([("**all**".to_string(), &mut all)]);
    for (format, (mine, reference)) in rows {
        let (median, p90) = mine.times();
        if theirs.is_some() {
            let (their_median, their_p90) = reference.times();
            println!(
                "| {format} | {} | {} ({:.1}%) | {} ({:.1}%) | {} | {} | {median:.1} | {their_median:.1} | {:.2} | {p90:.1} | {their_p90:.1} |",
                mine.images,
                mine.found,
                mine.rate(),
                reference.found,
                reference.rate(),
                mine.wrong,
                reference.wrong,
                median / their_median.max(0.001)
            );
        } else {
            println!(
                "| {format} | {} | {} | {:.1}% | {} | {median:.1} | {p90:.1} |",
                mine.images,
                mine.found,
                mine.rate(),
                mine.wrong
            );
        }
    }
}

fn misses(cases: &[Case], ours: &[Read], theirs: &[Read]) {
    for (i, case) in cases.iter().enumerate() {
        if wrong(case, &ours[i]) {
            eprintln!(
                "wrong: {} {} {:?}",
                case.format,
                case.path.display(),
                ours[i].codes
            );
        }
        if !found(case, &ours[i]) {
            let by = if found(case, &theirs[i]) {
                "zxing-cpp read it"
            } else {
                "zxing-cpp too"
            };
            eprintln!(
                "missed ({by}): {} {} {:?}",
                case.format,
                case.path.display(),
                ours[i].codes
            );
        }
    }
}

fn run(title: &str, cases: &[Case], python: Option<&str>) {
    let extractor: Arc<dyn Extractor> = Arc::new(
        BarcodeExtractor::new(&BarcodeExtractorConfig::default()).expect("default extractor"),
    );
    let ours: Vec<Read> = cases.iter().map(|c| librarian(&extractor, c)).collect();
    let theirs = python.map(|p| reference::run(p, cases));
    if std::env::args().any(|a| a == "--misses") {
        misses(cases, &ours, theirs.as_deref().unwrap_or(&ours));
    }
    let build = if cfg!(feature = "zxing-cpp") {
        "build with the zxing-cpp feature (rxing, then zxing-cpp)"
    } else {
        "default build (rxing)"
    };
    table(
        &format!("{title}, {build}"),
        cases,
        &ours,
        theirs.as_deref(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(manifest) = args
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0
                    || !["--zxing-cpp", "--phone", "--phone-every"].contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a.clone())
    else {
        eprintln!(
            "usage: cargo bench --bench corpus -- [--zxing-cpp PYTHON] [--phone DIR] [--phone-every N] [--misses] PATH/manifest.tsv"
        );
        std::process::exit(2);
    };
    let python = std::env::args()
        .any(|a| a == "--zxing-cpp")
        .then(|| arg("--zxing-cpp", ""));
    let cases = manifest::read(Path::new(&manifest));
    run(&format!("Corpus: {manifest}"), &cases, python.as_deref());
    if std::env::args().any(|a| a == "--phone") {
        let every: usize = arg("--phone-every", "4")
            .parse()
            .expect("--phone-every is a number");
        let dir = arg("--phone", "");
        let photos = phone::photos(&cases, Path::new(&dir), every);
        run(
            &format!("Phone photos (4000 x 3000 JPEG): {dir}"),
            &photos,
            python.as_deref(),
        );
    }
}
