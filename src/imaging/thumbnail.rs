//! Small colour copies of stored photos for pages that list them.

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder};
use librarian_model::ImageFacts;

use super::ImageError;
use super::pixels::limited_reader;

const QUALITY: u8 = 80;

/// Decodes the image in colour, turns it upright by its EXIF orientation, shrinks it to fit
/// `max_side` (never enlarges) and encodes it as a JPEG.
pub fn make(bytes: &[u8], facts: &ImageFacts, max_side: u32) -> Result<Vec<u8>, ImageError> {
    let undecodable = |e: image::ImageError| ImageError::Undecodable(facts.format, e.to_string());
    let mut decoder = limited_reader(bytes, facts)?
        .into_decoder()
        .map_err(undecodable)?;
    let orientation = decoder.orientation().map_err(undecodable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    image.apply_orientation(orientation);
    let small = match image.width().max(image.height()) > max_side {
        true => image.thumbnail(max_side, max_side),
        false => image,
    };
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&small.to_rgb8())
        .map_err(undecodable)?;
    Ok(out)
}
