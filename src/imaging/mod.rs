//! Images are hostile input: the header is read without decoding pixels, and decoding plus
//! extraction run on a bounded blocking pool, under a time budget, with panics caught.

mod jpeg;
mod pixels;

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use image::ImageReader;
use librarian_model::{ImageFacts, ImageFormat};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::extract::{Extracted, Extractor};

pub use pixels::{Pixels, Scaled};

/// No image larger than this is decoded, whatever the validators allow.
pub const DECODE_PIXEL_LIMIT: u64 = 250_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "the bytes are not an image in a format Librarian reads (jpeg, png, webp, gif, bmp, tiff)"
    )]
    UnknownFormat,
    #[error("the {0} image cannot be decoded: {1}")]
    Undecodable(ImageFormat, String),
    #[error("the image has {pixels} pixels; at most {limit} are decoded")]
    TooManyPixels { pixels: u64, limit: u64 },
    #[error("the image took longer than {0} ms to analyse")]
    Timeout(u64),
    #[error("every image worker is busy; try again shortly")]
    Busy,
}

/// Reads format and dimensions from the header, and hashes the bytes. No pixel is decoded.
pub fn probe(bytes: &[u8]) -> Result<ImageFacts, ImageError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| ImageError::UnknownFormat)?;
    let format = reader
        .format()
        .and_then(to_format)
        .ok_or(ImageError::UnknownFormat)?;
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| ImageError::Undecodable(format, e.to_string()))?;
    Ok(ImageFacts {
        format,
        width,
        height,
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}

fn to_format(format: image::ImageFormat) -> Option<ImageFormat> {
    Some(match format {
        image::ImageFormat::Jpeg => ImageFormat::Jpeg,
        image::ImageFormat::Png => ImageFormat::Png,
        image::ImageFormat::WebP => ImageFormat::Webp,
        image::ImageFormat::Gif => ImageFormat::Gif,
        image::ImageFormat::Bmp => ImageFormat::Bmp,
        image::ImageFormat::Tiff => ImageFormat::Tiff,
        _ => return None,
    })
}

/// Runs decoding and extraction off the async runtime: at most `workers` images at once,
/// each within the time budget.
pub struct Analyzer {
    permits: Arc<Semaphore>,
    budget: Duration,
}

impl Analyzer {
    pub fn new(workers: usize, budget: Duration) -> Self {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            workers
        };
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            budget,
        }
    }

    pub async fn analyze(
        &self,
        bytes: Bytes,
        facts: ImageFacts,
        max_pixels: u64,
        extractors: Vec<Arc<dyn Extractor>>,
    ) -> Result<Extracted, ImageError> {
        let budget_ms = self.budget.as_millis() as u64;
        let format = facts.format;
        let permit = tokio::time::timeout(self.budget, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ImageError::Busy)?
            .map_err(|_| ImageError::Busy)?;
        let job = tokio::task::spawn_blocking(move || {
            // The permit is held until the work really ends, so a decoder that overruns its
            // budget still counts against the pool and cannot multiply.
            let _permit = permit;
            catch_unwind(AssertUnwindSafe(|| {
                analyze_now(&bytes, &facts, max_pixels, &extractors)
            }))
            .unwrap_or_else(|_| {
                Err(ImageError::Undecodable(
                    format,
                    "the decoder failed on this image".into(),
                ))
            })
        });
        match tokio::time::timeout(self.budget, job).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(ImageError::Undecodable(format, join_error.to_string())),
            Err(_) => {
                tracing::warn!(
                    budget_ms,
                    "image analysis overran its budget; answering without it"
                );
                Err(ImageError::Timeout(budget_ms))
            }
        }
    }
}

/// Decodes and runs the extractors on this thread: what the pool runs, and what benchmarks and
/// the CLI time.
pub fn analyze_now(
    bytes: &[u8],
    facts: &ImageFacts,
    max_pixels: u64,
    extractors: &[Arc<dyn Extractor>],
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
