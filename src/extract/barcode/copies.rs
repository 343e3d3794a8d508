//! Copies of the photo that give the readers a second chance: each undoes one way a camera
//! spoils a code.

use image::{GrayImage, ImageBuffer, Luma, imageops};

/// A tight crop leaves no quiet zone beside the code, which 1D readers insist on: the image
/// with a white margin added left and right, and the margin's width.
pub fn with_white_margins(image: &GrayImage) -> (GrayImage, u32) {
    let margin = (image.width() / 10).max(8);
    let mut padded = GrayImage::from_pixel(image.width() + 2 * margin, image.height(), Luma([255]));
    imageops::replace(&mut padded, image, i64::from(margin), 0);
    (padded, margin)
}

/// A shaking hand or a lens focused too near spreads each bar into its neighbours until the
/// thin ones vanish under binarization: a sharpened copy (unsharp mask) separates them again.
/// A small image is enlarged first, so that sharpening has pixels between the edges to work
/// with; on the corpus, enlarging twice and sharpening with a 4 px sigma read the most.
/// Returns the copy, how many times larger it is, and how far it has spread each line.
pub fn sharpened(image: &GrayImage) -> (GrayImage, u32, f32) {
    let (width, height) = image.dimensions();
    let factor = if width.max(height) > 1024 { 1 } else { 2 };
    let enlarged = imageops::resize(
        image,
        width * factor,
        height * factor,
        imageops::FilterType::CatmullRom,
    );
    let sigma = SHARPENING_SIGMA * factor as f32;
    // The enlargement spreads a line over `factor` rows, and the blur inside the unsharp
    // mask carries it about three sigmas further.
    (
        imageops::unsharpen(&enlarged, sigma, 0),
        factor,
        3.0 * sigma + factor as f32,
    )
}

/// Sigma of the unsharp mask, in the pixels of the copy before it is enlarged.
const SHARPENING_SIGMA: f32 = 2.0;

/// A sharpened copy sharpened once more with the same mask, for a blur one pass leaves
/// merged (a sigma over half a module, as on the ISBNs of ean13-2); `factor` and `reach` as
/// `sharpened` returned them. Returns the copy and its reach.
pub fn sharpened_again(sharp: &GrayImage, factor: u32, reach: f32) -> (GrayImage, f32) {
    let sigma = SHARPENING_SIGMA * factor as f32;
    (imageops::unsharpen(sharp, sigma, 0), reach + 3.0 * sigma)
}

/// Below this local standard deviation (in grey levels) a region is taken as flat: its
/// noise is not stretched into bars.
const FLAT_DEVIATION: f32 = 4.0;

/// Each pixel's difference from its neighbourhood's mean, in units of the neighbourhood's
/// standard deviation (a Gaussian of `sigma` px): a dim code in shadow, or one washed out
/// beside glare, gets the contrast the binarizers' thresholds expect. Their own local
/// thresholds give up on blocks of low contrast, taking them for background.
pub fn contrast_normalized(image: &GrayImage, sigma: f32) -> GrayImage {
    let (width, height) = image.dimensions();
    // In [0, 1]: the image crate clamps floating-point pixels to that range when it blurs.
    let values: ImageBuffer<Luma<f32>, Vec<f32>> = ImageBuffer::from_fn(width, height, |x, y| {
        Luma([f32::from(image[(x, y)][0]) / 255.0])
    });
    let squares = ImageBuffer::from_fn(width, height, |x, y| Luma([values[(x, y)][0].powi(2)]));
    let mean = imageops::fast_blur(&values, sigma);
    let mean_square = imageops::fast_blur(&squares, sigma);
    GrayImage::from_fn(width, height, |x, y| {
        let (m, m2) = (mean[(x, y)][0], mean_square[(x, y)][0]);
        let deviation = (m2 - m * m).max(0.0).sqrt().max(FLAT_DEVIATION / 255.0);
        let z = (values[(x, y)][0] - m) / deviation;
        Luma([(128.0 + 50.0 * z).clamp(0.0, 255.0) as u8])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dim_pattern_is_stretched_and_a_flat_region_stays_grey() {
        // Stripes of 60 and 68 beside a flat field of 200.
        let image = GrayImage::from_fn(200, 40, |x, _| {
            Luma([if x >= 100 {
                200
            } else if (x / 4) % 2 == 0 {
                60
            } else {
                68
            }])
        });
        let out = contrast_normalized(&image, 8.0);
        let (dark, light) = (out[(41, 20)][0], out[(45, 20)][0]);
        assert!(light > 150 && dark < 106, "stripes at {dark} and {light}");
        let flat = out[(180, 20)][0];
        assert!((120..=136).contains(&flat), "flat field at {flat}");
    }
}
