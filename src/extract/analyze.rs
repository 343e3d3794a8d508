//! The extractors on an image: on the decode pool for requests, on the caller's thread for
//! benchmarks.

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use librarian_model::ImageFacts;

use super::{Extracted, Extractor};
use crate::imaging::{DecodePool, ImageError, Pixels, decode_cost};

/// Decodes the image and runs the extractors on the pool, within its bounds. The list is
/// shared, not copied: a pipeline builds it once.
pub async fn analyze<E>(
    pool: &DecodePool,
    bytes: Bytes,
    facts: ImageFacts,
    max_pixels: u64,
    extractors: Arc<[E]>,
) -> Result<Extracted, ImageError>
where
    E: Deref<Target = dyn Extractor> + Send + Sync + 'static,
{
    let cost = decode_cost(&bytes, &facts);
    pool.run(bytes, facts, max_pixels, cost, move |bytes, facts| {
        analyze_now(bytes, facts, max_pixels, &extractors)
    })
    .await
}

/// Decodes and runs the extractors on this thread: what the pool runs, and what benchmarks and
/// the CLI time.
pub fn analyze_now(
    bytes: &[u8],
    facts: &ImageFacts,
    max_pixels: u64,
    extractors: &[impl Deref<Target = dyn Extractor>],
) -> Result<Extracted, ImageError> {
    let started = std::time::Instant::now();
    let pixels = Pixels::new(bytes, facts, max_pixels)?;
    let mut found = Extracted::default();
    for extractor in extractors {
        extractor.extract(&pixels, &mut found)?;
    }
    // Decoded at most once; this refuses a broken file even in a pipeline that reads no pixels.
    pixels.full()?;
    found.decode_time = pixels.decode_time();
    found.extract_time = started.elapsed().saturating_sub(found.decode_time);
    Ok(found)
}
