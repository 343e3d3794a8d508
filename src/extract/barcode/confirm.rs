//! A product code (EAN/UPC) read on one scan line is read again on lines just above and below
//! it: a checksum-valid misread, which a blurred or noisy line can give, is worse than no read.
//! zxing-cpp makes the same demand of two lines. So is a 1D read of one or two characters, and
//! a DataBar read: rxing's DataBar readers take the texture of a background or the edge of
//! another code for a symbol (about one photo in twenty of the generated tuning set).

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

/// Where a 1D read lies, as if the code lay horizontally: `start` and `end` along the code
/// (across its bars), `line` across it, where it was read.
pub(super) struct Placement {
    pub vertical: bool,
    pub start: f32,
    pub end: f32,
    pub line: f32,
}

impl Placement {
    pub fn of(result: &RXingResult) -> Self {
        let points = result.getPoints();
        let (first, last) = (points[0], points[points.len() - 1]);
        let vertical = is_vertical(points);
        let along = |p: rxing::Point| if vertical { (p.y, p.x) } else { (p.x, p.y) };
        let (a0, line) = along(first);
        let (a1, _) = along(last);
        Self {
            vertical,
            start: a0.min(a1),
            end: a0.max(a1),
            line,
        }
    }

    pub fn length(&self) -> f32 {
        self.end - self.start
    }
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

/// DataBar: GS1 content, read from pairs of characters along a row.
const DATABAR_FORMATS: [BarcodeFormat; 2] = [BarcodeFormat::RSS_14, BarcodeFormat::RSS_EXPANDED];

pub fn needs_second_line(result: &RXingResult) -> bool {
    let format = result.getBarcodeFormat();
    let short = result.getText().chars().count() <= 2;
    (PRODUCT_FORMATS.contains(format)
        || DATABAR_FORMATS.contains(format)
        || (short && OTHER_LINEAR_FORMATS.contains(format)))
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
    let placed = Placement::of(result);
    let length = placed.length();
    // Generous: the quiet zones must be in the band, and the points rxing gives for some
    // formats (UPC-E) span only part of the symbol. For a short code of another format they
    // can span a small part of it (15 of Code 39 "7"'s 100 px): the band is as wide as the
    // image, and only that format is read in it.
    // DataBar's points are its finder patterns, well inside the symbol: the band is as wide
    // as for a short code.
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
    for band_start in [placed.line - gap - depth, placed.line + gap] {
        let Some(band) = band(
            image,
            placed.vertical,
            placed.start - margin,
            placed.end + margin,
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
pub(super) fn band(
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

/// Whether a UPC-E or EAN-8 read crosses more bars than its symbology has: rxing can read an
/// EAN-13 as a UPC-E with modules twice as wide (ean13-4/01), checksum and all. A UPC-E has
/// 17 bars, an EAN-8 22; blur can merge bars but not add them. Bars are counted in the grey
/// levels along the read line, with hysteresis so that noise does not split one.
pub fn has_too_many_bars(image: &GrayImage, result: &RXingResult) -> bool {
    // Modules from the middle of the start guard to the middle of the end guard, from there
    // to the end guard's far edge, and the bars of the symbol.
    let (span, guard_rest, bars) = match result.getBarcodeFormat() {
        BarcodeFormat::UPC_E => (46.5, 3.0, 17),
        BarcodeFormat::EAN_8 => (64.0, 1.5, 22),
        _ => return false,
    };
    let points = result.getPoints();
    let [start, end] = [points[0], points[points.len() - 1]];
    let (dx, dy) = ((end.x - start.x) / span, (end.y - start.y) / span);
    let step = 0.25 / dx.hypot(dy).max(0.25);
    let samples = ((span + 1.5 + guard_rest) / step) as usize;
    let line: Vec<f32> = (0..=samples)
        .map(|i| {
            let modules = i as f32 * step - 1.5;
            let (x, y) = (start.x + dx * modules, start.y + dy * modules);
            let (x, y) = (x.max(0.0) as u32, y.max(0.0) as u32);
            let (x, y) = (x.min(image.width() - 1), y.min(image.height() - 1));
            f32::from(image[(x, y)][0])
        })
        .collect();
    // Against the mean of the surrounding module and a half on either side: one half of a
    // code is often lit differently from the other.
    let reach = (1.5 / step) as usize;
    let (lowest, highest) = line
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let margin = (highest - lowest) * 0.08;
    let mut counted = 0;
    let mut in_bar = false;
    for (i, &value) in line.iter().enumerate() {
        let around = &line[i.saturating_sub(reach)..(i + reach + 1).min(line.len())];
        let mean = around.iter().sum::<f32>() / around.len() as f32;
        if !in_bar && value < mean - margin {
            in_bar = true;
            counted += 1;
        } else if in_bar && value > mean + margin {
            in_bar = false;
        }
    }
    counted > bars * 14 / 10
}

#[cfg(test)]
mod tests {
    use rxing::helpers::detect_in_luma;

    use super::super::tests::symbol;
    use super::*;

    fn read(image: &GrayImage, format: BarcodeFormat) -> RXingResult {
        let (width, height) = image.dimensions();
        detect_in_luma(image.as_raw().clone(), width, height, Some(format)).unwrap()
    }

    #[test]
    fn a_upc_e_across_an_ean_13_has_too_many_bars_and_a_true_one_not() {
        let upc_e = symbol(BarcodeFormat::UPC_E, "01234565");
        assert!(!has_too_many_bars(
            &upc_e,
            &read(&upc_e, BarcodeFormat::UPC_E)
        ));
        let ean_8 = symbol(BarcodeFormat::EAN_8, "96385074");
        assert!(!has_too_many_bars(
            &ean_8,
            &read(&ean_8, BarcodeFormat::EAN_8)
        ));
        // What rxing read in ean13-4/01: a UPC-E from the EAN-13's start guard to its end.
        let ean_13 = symbol(BarcodeFormat::EAN_13, "9780441014989");
        let whole = read(&ean_13, BarcodeFormat::EAN_13);
        let misread = RXingResult::new(
            "17804419",
            Vec::new(),
            whole.getPoints().to_vec(),
            BarcodeFormat::UPC_E,
        );
        assert!(has_too_many_bars(&ean_13, &misread));
    }
}
