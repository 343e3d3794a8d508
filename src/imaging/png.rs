//! PNG decoding straight to 8-bit gray, one row at a time: a 16-bit RGBA PNG would otherwise
//! be decoded to 8 bytes a pixel before it is turned into the 1 byte the extractors read, so a
//! 0.8 MB file of 100 megapixels cost 1 GB.

use std::io::Cursor;

use image::GrayImage;
use librarian_model::{ImageFacts, ImageFormat};
use png::{Decoder, Limits, Transformations};

use super::ImageError;

fn undecodable(reason: impl ToString) -> ImageError {
    ImageError::Undecodable(ImageFormat::Png, reason.to_string())
}

/// The image's luminance as `image` computes it (sRGB weights, alpha dropped), so the
/// extractors see what they saw before.
fn to_gray(samples: &[u8], channels: usize, out: &mut [u8]) {
    for (pixel, gray) in samples.chunks_exact(channels).zip(out) {
        *gray = match channels {
            1 | 2 => pixel[0],
            _ => {
                let [r, g, b] = [pixel[0], pixel[1], pixel[2]].map(u32::from);
                ((2126 * r + 7152 * g + 722 * b) / 10_000) as u8
            }
        };
    }
}

/// Bytes of decoded pixels this PNG needs beyond its gray copy: none when its rows arrive in
/// order; the whole expanded image when it is interlaced (its passes interleave rows).
pub fn working_bytes_per_pixel(interlaced: bool) -> u64 {
    if interlaced { 4 } else { 0 }
}

/// Whether the PNG is interlaced, from its header.
pub fn is_interlaced(bytes: &[u8]) -> bool {
    // Signature (8), chunk length and type (8), width and height (8), depth, colour,
    // compression and filter (4): the interlace method is byte 28.
    bytes.get(28).is_some_and(|&method| method != 0)
}

pub fn decode_gray(bytes: &[u8], facts: &ImageFacts) -> Result<GrayImage, ImageError> {
    let mut decoder = Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    let budget = facts.pixels() * (1 + working_bytes_per_pixel(true)) + (16 << 20);
    decoder.set_limits(Limits {
        bytes: usize::try_from(budget).unwrap_or(usize::MAX),
    });
    let mut reader = decoder.read_info().map_err(undecodable)?;
    let (width, height, interlaced) = {
        let info = reader.info();
        (info.width, info.height, info.interlaced)
    };
    if (width, height) != (facts.width, facts.height) {
        return Err(undecodable("the size changed between header and pixels"));
    }
    let channels = reader.output_color_type().0.samples();
    let mut gray = vec![0u8; width as usize * height as usize];
    if interlaced {
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| undecodable("the image is too large"))?;
        let mut expanded = vec![0u8; size];
        let frame = reader.next_frame(&mut expanded).map_err(undecodable)?;
        for (row, out) in expanded
            .chunks_exact(frame.line_size)
            .zip(gray.chunks_exact_mut(width as usize))
        {
            to_gray(row, channels, out);
        }
    } else {
        for out in gray.chunks_exact_mut(width as usize) {
            let row = reader
                .next_row()
                .map_err(undecodable)?
                .ok_or_else(|| undecodable("the file holds fewer rows than it declares"))?;
            to_gray(row.data(), channels, out);
        }
    }
    GrayImage::from_raw(width, height, gray).ok_or_else(|| undecodable("no pixels"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, ImageBuffer, Rgba};

    fn facts_of(bytes: &[u8]) -> ImageFacts {
        crate::imaging::probe(bytes).unwrap()
    }

    #[test]
    fn a_16_bit_rgba_png_decodes_to_the_gray_image_would_give() {
        let rgba = ImageBuffer::from_fn(40, 30, |x, y| {
            Rgba([(x * 1600) as u16, (y * 2000) as u16, 40_000, 65_535])
        });
        let image = DynamicImage::ImageRgba16(rgba);
        let mut png = Cursor::new(Vec::new());
        image.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let png = png.into_inner();
        let ours = decode_gray(&png, &facts_of(&png)).unwrap();
        let theirs = image.to_luma8();
        let worst = ours
            .pixels()
            .zip(theirs.pixels())
            .map(|(a, b)| a.0[0].abs_diff(b.0[0]))
            .max()
            .unwrap();
        // `image` weighs the 16-bit samples and rounds once; we cut to 8 bits first, then
        // weigh: two roundings, two levels at most.
        assert!(worst <= 2, "off by {worst}");
    }

    #[test]
    fn a_png_with_fewer_rows_than_declared_is_undecodable() {
        let gray = GrayImage::from_fn(64, 64, |x, y| image::Luma([(x ^ y) as u8]));
        let mut png = Cursor::new(Vec::new());
        gray.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let png = png.into_inner();
        let mut facts = facts_of(&png);
        facts.height = 640;
        let mut taller = png.clone();
        // Patch the declared height (IHDR bytes 20..24); the CRC no longer matches, which
        // the decoder must refuse as well.
        taller[20..24].copy_from_slice(&640u32.to_be_bytes());
        assert!(decode_gray(&taller, &facts).is_err());
    }
}
