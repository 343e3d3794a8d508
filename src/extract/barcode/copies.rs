//! Copies of the photo that give the readers a second chance: each undoes one way a camera
//! spoils a code.

use image::{GrayImage, Luma, imageops};

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
    let sigma = 2.0 * factor as f32;
    // The enlargement spreads a line over `factor` rows, and the blur inside the unsharp
    // mask carries it about three sigmas further.
    (
        imageops::unsharpen(&enlarged, sigma, 0),
        factor,
        3.0 * sigma + factor as f32,
    )
}
