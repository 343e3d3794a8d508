//! Images are hostile input: the header is read without decoding pixels, and decoding runs on
//! a bounded blocking pool, under a time budget, with panics caught. A leaf: what runs on the
//! pool (the extractors, thumbnails) is handed to it as a job.

mod jpeg;
mod pixels;
mod png;
mod pool;
mod thumbnail;

use std::io::Cursor;

use image::ImageReader;
use librarian_model::{ImageFacts, ImageFormat};
use sha2::{Digest, Sha256};

pub use jpeg::end_of_image as jpeg_end;
pub use pixels::{Pixels, Scaled};
pub use pool::DecodePool;

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
pub(crate) fn thumbnail_cost(bytes: &[u8], facts: &ImageFacts) -> u64 {
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
