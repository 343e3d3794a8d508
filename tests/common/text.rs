//! Text rendered with a Debian font (DejaVu Sans, package fonts-dejavu-core), for the OCR
//! tests and benchmark: known content at a known place.

use ab_glyph::{FontVec, PxScale};
use image::{GrayImage, Luma};
use imageproc::drawing::draw_text_mut;

pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

pub fn font() -> FontVec {
    let bytes = std::fs::read(FONT).unwrap_or_else(|e| {
        panic!("{FONT}: {e}: run scripts/test, which installs fonts-dejavu-core")
    });
    FontVec::try_from_vec(bytes).expect("DejaVu Sans is a font")
}

/// The inked bounds of drawn text: x, y, width, height.
pub type Bounds = [u32; 4];

/// Draws `text` in black on one line whose top is at (`x`, `y`), `size` pixels high; returns
/// the bounds of the pixels it made darker than mid-gray.
pub fn draw(
    image: &mut GrayImage,
    font: &FontVec,
    text: &str,
    x: i32,
    y: i32,
    size: f32,
) -> Bounds {
    let before = image.clone();
    draw_text_mut(image, Luma([0]), x, y, PxScale::from(size), font, text);
    let (mut left, mut top, mut right, mut bottom) = (u32::MAX, u32::MAX, 0, 0);
    for (px, py, pixel) in image.enumerate_pixels() {
        if pixel.0[0] < 128 && before.get_pixel(px, py).0[0] >= 128 {
            (left, top) = (left.min(px), top.min(py));
            (right, bottom) = (right.max(px), bottom.max(py));
        }
    }
    assert!(left <= right, "`{text}` inked nothing");
    [left, top, right - left + 1, bottom - top + 1]
}
