//! Images are hostile input: the header is read without decoding pixels, and decoding plus
//! extraction run on a bounded blocking pool, under a time budget, with panics caught.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use image::{GrayImage, ImageReader, Limits};
use librarian_model::{ImageFacts, ImageFormat};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::extract::{Extracted, Extractor};

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

/// Decodes the pixels as grayscale, refusing images above `max_pixels`.
pub fn decode_gray(
    bytes: &[u8],
    facts: &ImageFacts,
    max_pixels: u64,
) -> Result<GrayImage, ImageError> {
    let limit = max_pixels.min(DECODE_PIXEL_LIMIT);
    if facts.pixels() > limit || facts.width == 0 || facts.height == 0 {
        return Err(ImageError::TooManyPixels {
            pixels: facts.pixels(),
            limit,
        });
    }
    if facts.format == ImageFormat::Jpeg {
        return decode_jpeg_gray(bytes, facts);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| ImageError::UnknownFormat)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(facts.width);
    limits.max_image_height = Some(facts.height);
    // Room for the decoded image in its widest colour type (16-bit RGBA) and some slack.
    limits.max_alloc = Some(facts.pixels() * 8 + (64 << 20));
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| ImageError::Undecodable(facts.format, e.to_string()))?;
    Ok(decoded.into_luma8())
}

/// JPEG straight to grayscale (no colour conversion), in strict mode so that a truncated
/// upload is refused instead of being read as a half-gray picture.
fn decode_jpeg_gray(bytes: &[u8], facts: &ImageFacts) -> Result<GrayImage, ImageError> {
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(facts.width as usize)
        .set_max_height(facts.height as usize)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let undecodable = |reason: String| ImageError::Undecodable(ImageFormat::Jpeg, reason);
    if !jpeg_reaches_its_end(bytes) {
        return Err(undecodable(
            "the file ends before its end-of-image marker (a truncated upload?)".into(),
        ));
    }
    let mut decoder = JpegDecoder::new_with_options(bytes, options);
    let pixels = decoder
        .decode()
        .map_err(|e| undecodable(format!("{e:?}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| undecodable("no frame header".into()))?;
    GrayImage::from_raw(u32::from(info.width), u32::from(info.height), pixels)
        .ok_or_else(|| undecodable("the decoded size does not match the header".into()))
}

/// Walks the JPEG's segments from the start: true when the end-of-image marker is reached.
/// Data after it (phone makers' trailers, MPF images) does not matter; decoders fill a
/// truncated file with gray without a word, so this is what tells a cut-off upload.
fn jpeg_reaches_its_end(bytes: &[u8]) -> bool {
    let length_at = |i: usize| {
        bytes
            .get(i..i + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let mut i = 2;
    loop {
        if bytes.get(i) != Some(&0xFF) {
            // Not where a marker should be: leave the verdict to the decoder.
            return i < bytes.len();
        }
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let Some(length) = length_at(i) else {
                    return false;
                };
                i += length;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker that is neither a stuffed
                    // zero nor a restart marker.
                    loop {
                        match (bytes.get(i), bytes.get(i + 1)) {
                            (Some(0xFF), Some(0x00 | 0xD0..=0xD7)) => i += 2,
                            (Some(0xFF), Some(_)) => break,
                            (Some(_), _) => i += 1,
                            (None, _) => return false,
                        }
                    }
                }
            }
        }
    }
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
                let started = std::time::Instant::now();
                let gray = decode_gray(&bytes, &facts, max_pixels)?;
                let mut found = Extracted {
                    decode_time: started.elapsed(),
                    ..Default::default()
                };
                let started = std::time::Instant::now();
                for extractor in &extractors {
                    extractor.extract(&gray, &mut found);
                }
                found.extract_time = started.elapsed();
                Ok(found)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_is_complete_only_up_to_its_end_marker() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x01, 0x02];
        jpeg.extend_from_slice(&[
            0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56,
        ]);
        assert!(!jpeg_reaches_its_end(&jpeg), "cut inside the scan");
        jpeg.extend_from_slice(&[0xFF, 0xD9]);
        assert!(jpeg_reaches_its_end(&jpeg));
        jpeg.extend_from_slice(b"MPF trailer");
        assert!(
            jpeg_reaches_its_end(&jpeg),
            "trailing data after the end marker is fine"
        );
        assert!(
            !jpeg_reaches_its_end(&[0xFF, 0xD8, 0xFF, 0xE1, 0x10]),
            "cut inside a segment header"
        );
    }
}
