//! A product code (EAN/UPC) read on one scan line is read again on lines just above and below
//! it: a checksum-valid misread, which a blurred or noisy line can give, is worse than no read.
//! zxing-cpp makes the same demand of two lines. So is a 1D read of one or two characters.

use std::collections::HashSet;

use image::GrayImage;
use image::imageops;
use rxing::{BarcodeFormat, DecodeHints, RXingResult};

use super::{BarcodeExtractor, Binarizer};

const PRODUCT_FORMATS: [BarcodeFormat; 4] = [
    BarcodeFormat::EAN_8,
    BarcodeFormat::EAN_13,
    BarcodeFormat::UPC_A,
    BarcodeFormat::UPC_E,
];

/// Lines nearer than this, in pixels of the image read, are one line to a binarizer.
pub const MIN_LINES_APART: f32 = 2.0;

/// A product code read on one line that no other line confirmed (yet), in the photo's pixels:
/// attempts on copies of other sizes must compare alike.
pub struct LineRead {
    text: String,
    line: f32,
    /// Lines closer than this share content, from a filter or just from being neighbours.
    apart: f32,
}

impl LineRead {
    /// `scale`: photo pixels per pixel of the image read; `reach` as for `other_lines`.
    pub fn of(result: &RXingResult, scale: f32, reach: f32) -> Self {
        let points = result.getPoints();
        let across = |p: &rxing::Point| if is_vertical(points) { p.x } else { p.y };
        Self {
            text: result.getText().to_owned(),
            line: scale * points.iter().map(across).sum::<f32>() / points.len().max(1) as f32,
            apart: scale * reach.max(MIN_LINES_APART),
        }
    }

    /// Two reads confirm each other when they agree on different lines: the same line
    /// binarized otherwise repeats a misread as often as not.
    pub fn confirms(&self, other: &LineRead) -> bool {
        self.text == other.text && (self.line - other.line).abs() > self.apart.max(other.apart)
    }
}

/// Whether a 1D code read along these points lies with its bars across the image's rows.
fn is_vertical(points: &[rxing::Point]) -> bool {
    let (first, last) = (points[0], points[points.len() - 1]);
    (last.y - first.y).abs() > (last.x - first.x).abs()
}

/// Other 1D formats, whose reads need a second line only when very short: one or two
/// characters can arise from a few stray stripes (a corner of an Aztec code reads as Code 39
/// "7"), and a false code stops the search for the real one.
const OTHER_LINEAR_FORMATS: [BarcodeFormat; 5] = [
    BarcodeFormat::CODABAR,
    BarcodeFormat::CODE_39,
    BarcodeFormat::CODE_93,
    BarcodeFormat::CODE_128,
    BarcodeFormat::ITF,
];

pub fn needs_second_line(result: &RXingResult) -> bool {
    let format = result.getBarcodeFormat();
    let short = result.getText().chars().count() <= 2;
    (PRODUCT_FORMATS.contains(format) || (short && OTHER_LINEAR_FORMATS.contains(format)))
        && result.getPoints().len() >= 2
}

/// Reads the code again in a band of lines above, then below, the line it was read on, with
/// either binarizer, at its size and doubled, at least `reach` rows away. `Some(empty)` when
/// other lines agree, `Some(texts)` with the other texts when any reads something else,
/// `None` when no other line reads the code at all.
pub fn other_lines(
    extractor: &BarcodeExtractor,
    image: &GrayImage,
    result: &RXingResult,
    reach: f32,
) -> Option<Vec<String>> {
    let points = result.getPoints();
    let (first, last) = (points[0], points[points.len() - 1]);
    let vertical = is_vertical(points);
    // Work as if the code lay horizontally: along runs across the bars, across along them.
    let along = |p: rxing::Point| if vertical { (p.y, p.x) } else { (p.x, p.y) };
    let (a0, line) = along(first);
    let (a1, _) = along(last);
    let (start, end) = (a0.min(a1), a0.max(a1));
    let length = end - start;
    // Generous: the quiet zones must be in the band, and the points rxing gives for some
    // formats (UPC-E) span only part of the symbol. For a short code of another format they
    // can span a small part of it (15 of Code 39 "7"'s 100 px): the band is as wide as the
    // image, and only that format is read in it.
    let margin = if PRODUCT_FORMATS.contains(result.getBarcodeFormat()) {
        length * 0.6
    } else {
        (image.width() + image.height()) as f32
    };
    let gap = (length / 60.0).max(MIN_LINES_APART).max(reach);
    let depth = (length / 6.0).max(8.0);
    let hints = DecodeHints {
        TryHarder: Some(true),
        PossibleFormats: Some(HashSet::from([*result.getBarcodeFormat()])),
        ..extractor.hints.clone()
    };
    let mut others = Vec::new();
    let mut agreed = false;
    for band_start in [line - gap - depth, line + gap] {
        let Some(band) = band(
            image,
            vertical,
            start - margin,
            end + margin,
            band_start,
            depth,
        ) else {
            continue;
        };
        let (w, h) = band.dimensions();
        let enlarged = imageops::resize(&band, w * 2, h * 2, imageops::FilterType::Triangle);
        let views = [Binarizer::Hybrid, Binarizer::Global]
            .into_iter()
            .flat_map(|b| [(&band, b), (&enlarged, b)]);
        for (view, binarizer) in views {
            for read in extractor.read_binarized(view, binarizer, &hints, false) {
                if read.getText() == result.getText() {
                    agreed = true;
                } else if !others.iter().any(|o| o == read.getText()) {
                    others.push(read.getText().to_owned());
                }
            }
        }
    }
    (agreed || !others.is_empty()).then_some(others)
}

/// The part of `image` between `from` and `to` along the code and `depth` lines from
/// `band_start` across it, turned so that the code lies horizontally; `None` when it falls
/// outside the image.
fn band(
    image: &GrayImage,
    vertical: bool,
    from: f32,
    to: f32,
    band_start: f32,
    depth: f32,
) -> Option<GrayImage> {
    let (width, height) = image.dimensions();
    let (along_size, across_size) = if vertical {
        (height, width)
    } else {
        (width, height)
    };
    let clamp = |v: f32, size: u32| v.max(0.0).min(size as f32) as u32;
    let (a0, a1) = (clamp(from, along_size), clamp(to, along_size));
    let (c0, c1) = (
        clamp(band_start, across_size),
        clamp(band_start + depth, across_size),
    );
    if a1 <= a0 + 8 || c1 <= c0 + 2 {
        return None;
    }
    Some(if vertical {
        imageops::rotate270(&imageops::crop_imm(image, c0, a0, c1 - c0, a1 - a0).to_image())
    } else {
        imageops::crop_imm(image, a0, c0, a1 - a0, c1 - c0).to_image()
    })
}
