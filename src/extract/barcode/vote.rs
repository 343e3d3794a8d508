//! A disputed product code put to the vote of the lines across it. A checksum-valid misread
//! comes from a line through a blemish, a glint or noise, and few lines repeat it; the true
//! number is read on most of the others. In the corpus's four disputes (`upca-1/4`,
//! `upca-3/16`, `upce-2/14`, `upce-2/35`) the true number had 5 to 13 times the lines of every
//! other number together; a dispute between two halves of a code stays one.

use std::collections::{HashMap, HashSet};

use image::{GrayImage, imageops};
use rxing::{DecodeHints, RXingResult};

use super::confirm::{Placement, band};
use super::{BarcodeExtractor, Binarizer, copies};

/// A number wins with at least this many times the lines of all others together, and at
/// least `MIN_LINES`: between the 5.1 times of the corpus's narrowest true win (`upce-2/35`)
/// and the 3.1 times the misread of `upce-2/14` had when its lines were cut to the code's
/// surroundings.
const LANDSLIDE: usize = 4;

/// Fewer lines than this are too few to outvote anything.
const MIN_LINES: usize = 12;

/// Lines read in each copy at most, spread evenly across the code: a code filling a 12 MP
/// photo has thousands. Also the most lines of the image the copies are made from, so that
/// they stay small.
const MAX_LINES_PER_COPY: u32 = 240;

/// The number nearly every line across the code reads, if one does. Each line is read in the
/// image as it is, in a copy enlarged twice and in a sharpened one (the copies that read the
/// disputed codes on most lines, and the misreads on few).
pub fn landslide(
    extractor: &BarcodeExtractor,
    image: &GrayImage,
    result: &RXingResult,
) -> Option<String> {
    let placed = Placement::of(result);
    // As many lines as the code is long, which a code's height rarely exceeds, and no more
    // than are read. The whole width along the code, as the read that started the dispute
    // saw it: a global threshold depends on everything on the line, and cut to the code's
    // surroundings the lines of `upce-2/14` favoured its misread.
    let depth = placed.length().min(MAX_LINES_PER_COPY as f32);
    let along = if placed.vertical {
        image.height()
    } else {
        image.width()
    };
    let region = band(
        image,
        placed.vertical,
        0.0,
        along as f32,
        placed.line - depth / 2.0,
        depth,
    )?;
    let (width, height) = region.dimensions();
    let enlarged = imageops::resize(
        &region,
        width * 2,
        height * 2,
        imageops::FilterType::CatmullRom,
    );
    let (sharpened, _, _) = copies::sharpened(&region);
    let hints = DecodeHints {
        PossibleFormats: Some(HashSet::from([*result.getBarcodeFormat()])),
        ..extractor.hints.clone()
    };
    let mut votes: HashMap<String, usize> = HashMap::new();
    for copy in [&region, &enlarged, &sharpened] {
        let (width, height) = copy.dimensions();
        let step = height.div_ceil(MAX_LINES_PER_COPY).max(1);
        for y in (0..height).step_by(step as usize) {
            let row = imageops::crop_imm(copy, 0, y, width, 1).to_image();
            for read in extractor.read_binarized(&row, Binarizer::Global, &hints, false) {
                *votes.entry(read.getText().to_owned()).or_default() += 1;
            }
        }
    }
    let total: usize = votes.values().sum();
    let (winner, won) = votes.into_iter().max_by_key(|(_, lines)| *lines)?;
    let others = total - won;
    tracing::debug!(
        winner,
        won,
        others,
        "a disputed product code put to the vote"
    );
    (won >= MIN_LINES && won >= LANDSLIDE * others).then_some(winner)
}
