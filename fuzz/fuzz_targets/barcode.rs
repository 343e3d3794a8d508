//! The barcode extractor's entry: any bytes that pass the header probe are decoded and read on
//! this thread. Panics the extractor catches itself (rxing's) are expected; one that escapes,
//! a hang past the timeout or memory past the limit is a finding.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use librarian::extract::{BarcodeExtractor, BarcodeExtractorConfig, Extractor};
use librarian::imaging::{analyze_now, probe};

/// Big enough for every code, small enough that a header cannot ask for gigabytes.
const MAX_PIXELS: u64 = 4_000_000;

fuzz_target!(|data: &[u8]| {
    static EXTRACTOR: OnceLock<Arc<dyn Extractor>> = OnceLock::new();
    let extractor = EXTRACTOR.get_or_init(|| {
        librarian_fuzz::quiet_caught_panics();
        Arc::new(BarcodeExtractor::new(&BarcodeExtractorConfig::default()).expect("default"))
    });
    if let Ok(facts) = probe(data) {
        let _ = analyze_now(data, &facts, MAX_PIXELS, std::slice::from_ref(extractor));
    }
});
