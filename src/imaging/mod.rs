//! Images are hostile input: the header is read without decoding pixels, and decoding plus
//! extraction run on a bounded blocking pool, under a time budget, with panics caught.

mod jpeg;
mod pixels;
mod png;
mod thumbnail;

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

pub use jpeg::end_of_image as jpeg_end;
use pixels::within_limit;
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
    #[error(
        "decoding this image needs about {needed_mib} MiB; this server decodes at most \
         {budget_mib} MiB of pixels at once (server.decode_memory_bytes)"
    )]
    TooLargeToDecode { needed_mib: u32, budget_mib: u32 },
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

/// A bound of the memory a colour thumbnail takes: the decoder's working memory and the
/// image in RGBA (16 bits a channel for TIFF) beside it.
fn thumbnail_cost(bytes: &[u8], facts: &ImageFacts) -> u64 {
    let colour = match facts.format {
        ImageFormat::Tiff => 8,
        _ => 4,
    };
    decode_cost(bytes, facts) + facts.pixels() * colour
}

/// Memory the extractors use beside the decoded image, whatever its size: shrunk copies of
/// at most a few megapixels, binarized rows, symbol grids.
const EXTRACTION_BYTES: u64 = 32 << 20;

/// A generous bound of the memory that decoding and scanning this image takes, from its
/// header: the gray image, and what the format's decoder holds beside it.
pub fn decode_cost(bytes: &[u8], facts: &ImageFacts) -> u64 {
    let beside_gray = match facts.format {
        // zune-jpeg: the luminance plane, and the coefficients of a progressive file.
        ImageFormat::Jpeg => 2,
        ImageFormat::Png => png::working_bytes_per_pixel(png::is_interlaced(bytes)),
        // Decoded whole by `image`: RGBA at 8 bits (WebP, GIF, BMP) ...
        ImageFormat::Webp | ImageFormat::Gif | ImageFormat::Bmp => 4,
        // ... or up to 16 bits (TIFF).
        ImageFormat::Tiff => 8,
    };
    facts.pixels() * (1 + beside_gray) + EXTRACTION_BYTES
}

/// Runs decoding and extraction off the async runtime: at most `workers` images at once,
/// within a memory budget for all of them together (so the bound does not grow with the core
/// count), each within the time budget. Large images (over a quarter of the memory budget)
/// take one worker fewer than there are, so a stream of them cannot make an ordinary photo
/// wait seconds for a worker.
pub struct Analyzer {
    permits: Arc<Semaphore>,
    large: Arc<Semaphore>,
    /// One permit per MiB of [`decode_cost`].
    memory: Arc<Semaphore>,
    memory_mib: u32,
    budget: Duration,
}

fn mib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX)
}

impl Analyzer {
    pub fn new(workers: usize, budget: Duration, memory_bytes: u64) -> Self {
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            workers
        };
        let memory_mib = mib(memory_bytes).max(1);
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            large: Arc::new(Semaphore::new(workers.saturating_sub(1).max(1))),
            memory: Arc::new(Semaphore::new(memory_mib as usize)),
            memory_mib,
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
        let cost = decode_cost(&bytes, &facts);
        self.run(bytes, facts, max_pixels, cost, move |bytes, facts| {
            analyze_now(bytes, facts, max_pixels, &extractors)
        })
        .await
    }

    /// A JPEG of the image in colour, upright, its longer side at most `max_side` pixels;
    /// decoded under the same bounds as an analysis.
    pub async fn thumbnail(
        &self,
        bytes: Bytes,
        facts: ImageFacts,
        max_side: u32,
    ) -> Result<Vec<u8>, ImageError> {
        let cost = thumbnail_cost(&bytes, &facts);
        self.run(
            bytes,
            facts,
            DECODE_PIXEL_LIMIT,
            cost,
            move |bytes, facts| thumbnail::make(bytes, facts, max_side),
        )
        .await
    }

    /// Runs `job` on the blocking pool once a worker and `cost` bytes of the memory budget
    /// are free, within the time budget, its panics caught.
    async fn run<T: Send + 'static>(
        &self,
        bytes: Bytes,
        facts: ImageFacts,
        max_pixels: u64,
        cost: u64,
        job: impl FnOnce(&[u8], &ImageFacts) -> Result<T, ImageError> + Send + 'static,
    ) -> Result<T, ImageError> {
        let budget_ms = self.budget.as_millis() as u64;
        let format = facts.format;
        within_limit(&facts, max_pixels)?;
        let needed_mib = mib(cost);
        if needed_mib > self.memory_mib {
            return Err(ImageError::TooLargeToDecode {
                needed_mib,
                budget_mib: self.memory_mib,
            });
        }
        let large = needed_mib > self.memory_mib / 4;
        let permits = async {
            // A large image waits for its lane before it holds memory others could use.
            let lane = match large {
                true => Some(self.large.clone().acquire_owned().await?),
                false => None,
            };
            let memory = self.memory.clone().acquire_many_owned(needed_mib).await?;
            let worker = self.permits.clone().acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>((lane, memory, worker))
        };
        let permits = tokio::time::timeout(self.budget, permits)
            .await
            .map_err(|_| ImageError::Busy)?
            .map_err(|_| ImageError::Busy)?;
        let job = tokio::task::spawn_blocking(move || {
            // The permits are held until the work really ends, so a decoder that overruns its
            // budget still counts against the pool and its memory, and cannot multiply.
            let _permits = permits;
            catch_unwind(AssertUnwindSafe(|| job(&bytes, &facts))).unwrap_or_else(|_| {
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
