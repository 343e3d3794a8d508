//! Aztec symbols anywhere in the photo. rxing's Aztec detector starts its search for the
//! bullseye from the middle of the image, so it reads a symbol only near the centre; zxing-cpp
//! scans the rows for the bullseye instead. This does the same (the published approach: seven
//! runs of one module each, crossing the centre, checked again down the column), then
//! resamples the photo around each bullseye found into an upright copy with the bullseye in
//! the middle, where rxing looks for it and where its detector, which copes badly with
//! rotation and blur, finds square modules of eight pixels.

use image::{GrayImage, Luma};
use rxing::Point;
use rxing::common::cpp_essentials::{FindConcentricPatternCorners, LocateConcentricPattern};
use rxing::common::{BitMatrix, PerspectiveTransform, Quadrilateral};

/// Runs of the bullseye's pattern through its centre: the centre module and three rings on
/// each side (in a compact symbol the outermost of its rings lies beyond them).
const PATTERN_RUNS: usize = 7;

/// How far a run may stray from the pattern's mean width, as a fraction of it: rotation
/// and blur change every run of a square ring alike, binarization shifts single edges.
const RUN_TOLERANCE: f32 = 0.5;

/// Half the side of the upright copy of a symbol, in modules: symbols up to 80 modules (of
/// 151 at most; a full-range symbol of 14 layers) fit.
const UPRIGHT_HALF_MODULES: f32 = 40.0;

/// Pixels per module in the upright copy: enough for rxing's detector to find its way around
/// the bullseye.
const UPRIGHT_MODULE_PIXELS: f32 = 8.0;

/// Half the side of the square on which the bullseye's corners are fitted, in modules: the
/// middle of its third ring from the centre, whose edges are traced on both sides.
const FITTED_RING_HALF_MODULES: f32 = 3.0;

/// Bullseyes tried per image, the most often crossed first: more are marks that merely
/// look like one.
const MAX_CANDIDATES: usize = 4;

/// Places a row scan keeps track of: a page tiled with small look-alikes would otherwise make
/// every new crossing search an ever longer list.
const MAX_TRACKED: usize = 256;

/// Smallest pattern, in pixels, that can be a bullseye (a module a pixel wide).
const MIN_PATTERN_WIDTH: u32 = PATTERN_RUNS as u32;

/// A bullseye's centre and module size, in the pixels of the matrix it was found in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bullseye {
    pub x: f32,
    pub y: f32,
    pub module: f32,
    /// Rows whose runs crossed it: how sure the search is.
    hits: u32,
}

/// Centres of patterns in `matrix` that cross like a bullseye both along a row and down
/// the column through the centre, most often found first; at most [`MAX_CANDIDATES`].
pub fn bullseyes(matrix: &BitMatrix) -> Vec<Bullseye> {
    let height = matrix.getHeight();
    let mut found: Vec<Bullseye> = Vec::new();
    let mut runs = Vec::new();
    for y in 0..height {
        row_runs(matrix, y, &mut runs);
        for window in runs.windows(PATTERN_RUNS) {
            let Some((x, module)) = centre_of(window) else {
                continue;
            };
            let column = column_runs_through(matrix, x as u32, y, module, height);
            let Some((centre_y, vertical_module)) = column else {
                continue;
            };
            if !similar(module, vertical_module) {
                continue;
            }
            let module = (module + vertical_module) / 2.0;
            let tracked = found.len();
            match found.iter_mut().find(|b| b.near(x, centre_y)) {
                Some(known) => known.hits += 1,
                None if tracked < MAX_TRACKED => found.push(Bullseye {
                    x,
                    y: centre_y,
                    module,
                    hits: 1,
                }),
                None => {}
            }
        }
    }
    found.sort_by_key(|b| std::cmp::Reverse(b.hits));
    found.truncate(MAX_CANDIDATES);
    found
}

impl Bullseye {
    fn near(&self, x: f32, y: f32) -> bool {
        (self.x - x).abs() < 2.0 * self.module && (self.y - y).abs() < 2.0 * self.module
    }
}

/// A symbol made upright: the photo around the bullseye resampled so that the bullseye sits
/// at the centre, square to the axes, eight pixels to the module; and the transform that
/// takes the copy's points back into the photo.
pub struct Upright {
    pub image: GrayImage,
    to_photo: PerspectiveTransform,
}

impl Upright {
    /// The corners of the bullseye's third ring, traced in `matrix` (the binarized `photo`),
    /// map a square in the copy; the rest of the symbol follows from the same transform, as
    /// zxing-cpp samples a whole Aztec symbol from its bullseye.
    pub fn of(photo: &GrayImage, matrix: &BitMatrix, bullseye: &Bullseye) -> Option<Self> {
        let range = (bullseye.module * PATTERN_RUNS as f32).ceil() as i32;
        let seed = Point::new(bullseye.x, bullseye.y);
        // The centre found along a row and a column, moved to the middle of the centre module
        // by zxing-cpp's concentric pattern locator where its checks (both diagonals too) pass.
        let centre = LocateConcentricPattern::<true, PATTERN_RUNS, PATTERN_RUNS>(
            matrix,
            &[1; PATTERN_RUNS],
            seed,
            range,
        )
        .map_or(seed, |located| located.p);
        let ring = FindConcentricPatternCorners(matrix, centre, range, 3)?;
        let half = UPRIGHT_HALF_MODULES * UPRIGHT_MODULE_PIXELS;
        let (near, far) = (
            half - FITTED_RING_HALF_MODULES * UPRIGHT_MODULE_PIXELS,
            half + FITTED_RING_HALF_MODULES * UPRIGHT_MODULE_PIXELS,
        );
        let square = Quadrilateral::new(
            Point::new(near, near),
            Point::new(far, near),
            Point::new(far, far),
            Point::new(near, far),
        );
        let to_photo = PerspectiveTransform::quadrilateralToQuadrilateral(square, ring).ok()?;
        let side = (2.0 * half) as u32;
        let image = GrayImage::from_fn(side, side, |x, y| {
            let at = to_photo.transform_point(Point::new(x as f32 + 0.5, y as f32 + 0.5));
            Luma([bilinear(photo, at.x - 0.5, at.y - 0.5)])
        });
        Some(Self { image, to_photo })
    }

    /// A point of the upright copy in the photo.
    pub fn to_photo(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        let at = self.to_photo.transform_point(Point::new(x, y));
        [at.x, at.y]
    }
}

/// The photo's grey at a point between pixels; white outside the photo.
fn bilinear(photo: &GrayImage, x: f32, y: f32) -> u8 {
    let (width, height) = photo.dimensions();
    if !(x >= 0.0 && y >= 0.0 && x < (width - 1) as f32 && y < (height - 1) as f32) {
        return 255;
    }
    let (left, top) = (x.floor() as u32, y.floor() as u32);
    let (fx, fy) = (x - left as f32, y - top as f32);
    let at = |dx: u32, dy: u32| f32::from(photo.get_pixel(left + dx, top + dy)[0]);
    let upper = at(0, 0) * (1.0 - fx) + at(1, 0) * fx;
    let lower = at(0, 1) * (1.0 - fx) + at(1, 1) * fx;
    (upper * (1.0 - fy) + lower * fy).round() as u8
}

/// Widths of the runs of one row, starting with the first black run; each as (start, width).
fn row_runs(matrix: &BitMatrix, y: u32, runs: &mut Vec<(u32, u32)>) {
    runs.clear();
    let width = matrix.getWidth();
    let mut start = 0;
    for x in 1..=width {
        if x == width || matrix.get(x, y) != matrix.get(start, y) {
            runs.push((start, x - start));
            start = x;
        }
    }
}

/// The centre (x) and module width of seven runs of about equal width whose middle run is
/// black — or white, for a light symbol on a dark ground, which the matrix has not inverted.
fn centre_of(window: &[(u32, u32)]) -> Option<(f32, f32)> {
    let total: u32 = window.iter().map(|(_, w)| w).sum();
    if total < MIN_PATTERN_WIDTH {
        return None;
    }
    let module = total as f32 / PATTERN_RUNS as f32;
    if !window.iter().all(|(_, w)| fits(*w as f32, module)) {
        return None;
    }
    let (start, width) = window[PATTERN_RUNS / 2];
    Some((start as f32 + width as f32 / 2.0, module))
}

fn fits(width: f32, module: f32) -> bool {
    (width - module).abs() <= RUN_TOLERANCE * module
}

fn similar(a: f32, b: f32) -> bool {
    (a - b).abs() <= RUN_TOLERANCE * a.max(b)
}

/// Down the column `x`: the centre (y) and module height of the same pattern around row
/// `y`, when the column crosses three runs of about `module` above and below the middle one.
fn column_runs_through(
    matrix: &BitMatrix,
    x: u32,
    y: u32,
    module: f32,
    height: u32,
) -> Option<(f32, f32)> {
    let colour = matrix.get(x, y);
    let limit = (module * (1.0 + RUN_TOLERANCE)).ceil() as u32;
    // The middle run: rows of the same colour above and below.
    let mut top = y;
    while top > 0 && matrix.get(x, top - 1) == colour && y - top < limit {
        top -= 1;
    }
    let mut bottom = y;
    while bottom + 1 < height && matrix.get(x, bottom + 1) == colour && bottom - y < limit {
        bottom += 1;
    }
    let middle = bottom - top + 1;
    if !fits(middle as f32, module) {
        return None;
    }
    let mut total = middle;
    // Three runs each way, alternating colour from the middle run's.
    let (mut up, mut down) = (top, bottom);
    for step in 0..PATTERN_RUNS / 2 {
        let expected = if step % 2 == 0 { !colour } else { colour };
        let above = run_length(matrix, x, up, -1, expected, limit, height)?;
        let below = run_length(matrix, x, down, 1, expected, limit, height)?;
        if !fits(above as f32, module) || !fits(below as f32, module) {
            return None;
        }
        up -= above;
        down += below;
        total += above + below;
    }
    let module = total as f32 / PATTERN_RUNS as f32;
    Some(((top + bottom + 1) as f32 / 2.0, module))
}

/// The length of the run of `colour` that starts next to row `from`, going `direction`; none
/// when it runs off the matrix or longer than `limit`.
fn run_length(
    matrix: &BitMatrix,
    x: u32,
    from: u32,
    direction: i64,
    colour: bool,
    limit: u32,
    height: u32,
) -> Option<u32> {
    let mut length = 0;
    loop {
        let row = i64::from(from) + direction * i64::from(length + 1);
        if row < 0 || row >= i64::from(height) {
            return None;
        }
        if matrix.get(x, row as u32) != colour {
            return (length > 0).then_some(length);
        }
        length += 1;
        if length > limit {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rxing::Reader;
    use rxing::common::HybridBinarizer;
    use rxing::{BarcodeFormat, BinaryBitmap, DecodeHints, Luma8Source, MultiUseMultiFormatReader};

    use super::super::tests::symbol;
    use super::super::{BarcodeExtractor, BarcodeExtractorConfig, Look};
    use super::*;

    const TEXT: &str = "Librarian reads Aztec anywhere";

    /// An Aztec symbol turned by `degrees` and drawn with its centre at `centre` on a white
    /// page of `width` x `height`.
    fn page_with_aztec(width: u32, height: u32, centre: (f32, f32), degrees: f32) -> GrayImage {
        let drawn = symbol(BarcodeFormat::AZTEC, TEXT);
        let middle = (drawn.width() as f32 / 2.0, drawn.height() as f32 / 2.0);
        let (sin, cos) = degrees.to_radians().sin_cos();
        GrayImage::from_fn(width, height, |x, y| {
            let (dx, dy) = (x as f32 - centre.0, y as f32 - centre.1);
            let (sx, sy) = (
                cos * dx + sin * dy + middle.0,
                -sin * dx + cos * dy + middle.1,
            );
            Luma([bilinear(&drawn, sx, sy)])
        })
    }

    fn binarized(image: &GrayImage) -> BinaryBitmap<HybridBinarizer<Luma8Source<'_>>> {
        let source = Luma8Source::new_with_slice(image.as_raw(), image.width(), image.height());
        BinaryBitmap::new(HybridBinarizer::new(source.unwrap()))
    }

    #[test]
    fn the_bullseye_of_a_turned_symbol_is_found_where_it_is() {
        let page = page_with_aztec(640, 480, (150.0, 330.0), 17.0);
        let bitmap = binarized(&page);
        let found = bullseyes(bitmap.get_black_matrix());
        let first = found.first().expect("a bullseye");
        assert!((first.x - 150.0).abs() < first.module, "{first:?}");
        assert!((first.y - 330.0).abs() < first.module, "{first:?}");
    }

    #[test]
    fn a_page_without_concentric_squares_has_no_bullseye() {
        let page = GrayImage::from_fn(320, 240, |x, y| {
            Luma([if (x / 7 + y / 11) % 2 == 0 { 30 } else { 220 }])
        });
        assert!(bullseyes(binarized(&page).get_black_matrix()).is_empty());
    }

    #[test]
    fn an_aztec_symbol_off_centre_and_turned_is_read() {
        let page = page_with_aztec(640, 480, (150.0, 330.0), 17.0);
        let hints = DecodeHints {
            PossibleFormats: Some(HashSet::from([BarcodeFormat::AZTEC])),
            TryHarder: Some(true),
            ..Default::default()
        };
        let alone =
            MultiUseMultiFormatReader::default().decode_with_hints(&mut binarized(&page), &hints);
        assert!(alone.is_err(), "rxing alone reads it now: {alone:?}");
        let extractor = BarcodeExtractor::new(&BarcodeExtractorConfig::default()).unwrap();
        let codes = extractor.read(&page, 1.0, Look::Thorough);
        assert_eq!(codes.len(), 1, "{codes:?}");
        assert_eq!(codes[0].text, TEXT);
        // The corners lie around the centre in the page's pixels.
        let (xs, ys): (Vec<f32>, Vec<f32>) = codes[0].points.iter().map(|p| (p[0], p[1])).unzip();
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!(
            (mean(&xs) - 150.0).abs() < 10.0 && (mean(&ys) - 330.0).abs() < 10.0,
            "{:?}",
            codes[0].points
        );
    }
}
