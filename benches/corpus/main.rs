//! Detection rate, false reads and speed of the barcode extractor, side by side with zxing-cpp
//! when a Python with it is given: on a corpus manifest, on phone-sized photos made from it, and
//! on generated photos (`generate.rs`), per format and per family.
//!
//! `cargo bench --bench corpus -- [--zxing-cpp PYTHON] [--phone DIR] [--phone-every 4]
//! [--generated DIR:SEED:COUNT]... [--save DIR | --baseline DIR] [--misses] [PATH/manifest.tsv]`
//! (scripts/bench-barcodes runs it for both builds, the default build's reads saved and shown
//! beside the feature build's).
//!
//! Each image is timed from its bytes to its barcodes (header probe, decode, extraction), as
//! the service does it, on one thread; zxing-cpp likewise from bytes (Pillow) to barcodes.

// The other benches' argument helper goes unused here: this one parses with clap.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod generate;
mod manifest;
mod parallel;
mod phone;
mod reference;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use librarian::extract::analyze_now;
use librarian::extract::{BarcodeExtractor, BarcodeExtractorConfig, Extractor};
use librarian::imaging::{DECODE_PIXEL_LIMIT, probe};
use manifest::Case;
use report::Column;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    /// A corpus manifest (`path`, `format`, `expected`, tab-separated).
    manifest: Option<PathBuf>,
    /// A Python with the `zxing-cpp` and `pillow` packages: zxing-cpp reads every set too.
    #[arg(long)]
    zxing_cpp: Option<String>,
    /// Folder of the phone-sized photos made from the corpus (made the first time).
    #[arg(long)]
    phone: Option<PathBuf>,
    /// Which corpus images the phone photos are made from: every n-th.
    #[arg(long, default_value_t = 4)]
    phone_every: usize,
    /// A generated set, `DIR:SEED:COUNT` (drawn into DIR the first time); repeatable.
    #[arg(long, value_parser = GeneratedSet::parse)]
    generated: Vec<GeneratedSet>,
    /// Writes this build's reads of each set into DIR, for `--baseline`.
    #[arg(long, conflicts_with = "baseline")]
    save: Option<PathBuf>,
    /// Shows the reads another build saved into DIR (`--save`) beside this build's.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Lists the photos this build missed or read a false code in.
    #[arg(long)]
    misses: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone)]
struct GeneratedSet {
    dir: PathBuf,
    seed: u64,
    count: usize,
}

impl GeneratedSet {
    fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.rsplitn(3, ':');
        let (count, seed, dir) = (parts.next(), parts.next(), parts.next());
        let (Some(count), Some(seed), Some(dir)) = (count, seed, dir) else {
            return Err("expected DIR:SEED:COUNT".to_owned());
        };
        Ok(Self {
            dir: dir.into(),
            seed: seed.parse().map_err(|e| format!("seed: {e}"))?,
            count: count.parse().map_err(|e| format!("count: {e}"))?,
        })
    }
}

/// What one reader made of one image.
#[derive(Serialize, Deserialize)]
pub struct Read {
    pub ms: f64,
    /// (format, text) of every code read.
    pub codes: Vec<(String, String)>,
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

/// This build's name in the tables.
const BUILD: &str = if cfg!(feature = "zxing-cpp") {
    "zxing-cpp feature"
} else {
    "default"
};

/// Reads `cases` with this build (and zxing-cpp), saves or loads the other build's reads
/// under `slug`, and prints the table.
fn run(args: &Args, title: &str, slug: &str, cases: &[Case]) {
    let extractor: Arc<dyn Extractor> = Arc::new(
        BarcodeExtractor::new(&BarcodeExtractorConfig::default()).expect("default extractor"),
    );
    let baseline = args
        .baseline
        .as_ref()
        .map(|dir| load(&dir.join(format!("{slug}.jsonl")), cases.len()));
    // The feature build reads a photo as the default build does until rxing finds nothing,
    // then asks zxing-cpp: where the default build found a code, its read (and time) is this
    // build's too, and only the other photos are read again.
    let known = |i: usize| {
        let read = baseline.as_ref()?.get(i).filter(|r| !r.codes.is_empty())?;
        cfg!(feature = "zxing-cpp").then(|| Read {
            ms: read.ms,
            codes: read.codes.clone(),
        })
    };
    // Two photos at a time (the machine's cores), each timed on its own thread.
    let indexes: Vec<usize> = (0..cases.len()).collect();
    let ours = parallel::on_two_threads(&indexes, |&i| {
        known(i).unwrap_or_else(|| librarian(&extractor, &cases[i]))
    });
    if let Some(dir) = &args.save {
        save(&dir.join(format!("{slug}.jsonl")), &ours);
    }
    let theirs = args.zxing_cpp.as_deref().map(|p| reference::run(p, cases));
    let mut columns = Vec::new();
    if let Some(reads) = &baseline {
        columns.push(Column {
            name: "default",
            reads,
        });
    }
    columns.push(Column {
        name: BUILD,
        reads: &ours,
    });
    if let Some(reads) = &theirs {
        columns.push(Column {
            name: "zxing-cpp",
            reads,
        });
    }
    if args.misses {
        report::misses(cases, &columns[baseline.is_some() as usize..]);
    }
    report::table(title, cases, &columns);
}

fn save(path: &Path, reads: &[Read]) {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).expect("save folder");
    let lines: String = reads
        .iter()
        .map(|r| serde_json::to_string(r).expect("a read as JSON") + "\n")
        .collect();
    std::fs::write(path, lines).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn load(path: &Path, count: usize) -> Vec<Read> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reads: Vec<Read> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a saved read"))
        .collect();
    assert_eq!(
        reads.len(),
        count,
        "{}: one saved read per image",
        path.display()
    );
    reads
}

fn main() {
    let args = Args::parse();
    if let Some(manifest) = &args.manifest {
        let cases = manifest::read(manifest);
        run(
            &args,
            &format!("Corpus: {}", manifest.display()),
            "corpus",
            &cases,
        );
        if let Some(dir) = &args.phone {
            let photos = phone::photos(&cases, dir, args.phone_every);
            let title = format!("Phone photos (4000 x 3000 JPEG): {}", dir.display());
            run(&args, &title, "phone", &photos);
        }
    }
    for set in &args.generated {
        let cases = generate::set(&set.dir, set.seed, set.count);
        let title = format!(
            "Generated photos, seed {} ({} photos): {}",
            set.seed,
            set.count,
            set.dir.display()
        );
        run(
            &args,
            &title,
            &format!("generated-{}-{}", set.seed, set.count),
            &cases,
        );
    }
}
