//! Generated photos of barcodes, for measuring on images nobody tuned for: every format rxing
//! can write, with random content, drawn under random conditions (size in the frame, rotation,
//! perspective, a label curved round a bottle, blur, sensor noise, uneven light and glare,
//! low contrast, inversion, JPEG quality, words and a second code nearby), and photos with no
//! code at all (bars and blocks that are not a symbol, and words). A set is its seed and size:
//! the same seed always draws the same photos, so a tuning set and a check set are two seeds.

use std::f32::consts::PI;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{GrayImage, Luma, RgbImage};
use imageproc::geometric_transformations::Projection;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rxing::{BarcodeFormat, EncodeHints, MultiFormatWriter, Writer};

use crate::manifest::{self, Case, NO_CODE};
use crate::parallel::on_two_threads;

/// The formats drawn, each as often as the others, and how often a photo has no code.
const FORMATS: [BarcodeFormat; 13] = [
    BarcodeFormat::EAN_13,
    BarcodeFormat::EAN_8,
    BarcodeFormat::UPC_A,
    BarcodeFormat::UPC_E,
    BarcodeFormat::CODE_128,
    BarcodeFormat::CODE_39,
    BarcodeFormat::CODE_93,
    BarcodeFormat::CODABAR,
    BarcodeFormat::ITF,
    BarcodeFormat::QR_CODE,
    BarcodeFormat::DATA_MATRIX,
    BarcodeFormat::AZTEC,
    BarcodeFormat::PDF_417,
];
const NO_CODE_SHARE: f64 = 0.08;

/// Label pixels per module: the symbol is drawn this fine, then sampled into the photo.
const FINE: u32 = 6;

/// Makes the set `seed` of `count` photos in `dir`, unless `dir` already has a manifest, and
/// returns its cases.
pub fn set(dir: &Path, seed: u64, count: usize) -> Vec<Case> {
    let manifest_path = dir.join("manifest.tsv");
    if manifest_path.exists() {
        return manifest::read(&manifest_path);
    }
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    eprintln!("drawing {count} photos (seed {seed}) in {}", dir.display());
    let indexes: Vec<usize> = (0..count).collect();
    let made = on_two_threads(&indexes, |&i| photo(seed, i, dir));
    manifest::write(dir, &made);
    made
}

/// Photo `index` of set `seed`: its own generator, so a photo does not depend on the others.
fn photo(seed: u64, index: usize, dir: &Path) -> Case {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003) ^ index as u64);
    let (width, height) = frame_size(&mut rng);
    let light = Light::random(&mut rng, width, height);
    let mut canvas = background(&mut rng, width, height);
    let placements = if rng.random_bool(NO_CODE_SHARE) {
        decoys(&mut rng, &mut canvas);
        Vec::new()
    } else {
        let format = FORMATS[rng.random_range(0..FORMATS.len())];
        let mut placed = vec![place_symbol(&mut rng, &mut canvas, format, 0.0..0.5)];
        if rng.random_bool(0.1) {
            let other = FORMATS[rng.random_range(0..FORMATS.len())];
            placed.push(place_symbol(&mut rng, &mut canvas, other, 0.55..1.0));
        }
        placed
    };
    if rng.random_bool(0.4) {
        words(&mut rng, &mut canvas);
    }
    // Focus blur up to half a module of the finest symbol: more and no reader stands a chance.
    let finest = placements.iter().map(|p| p.module).fold(4.0, f32::min);
    let photo = finish(&mut rng, &canvas, &light, 0.5 * finest);
    let quality = rng.random_range(35..=95);
    let name = format!("{seed}-{index:05}.jpg");
    let path = dir.join(&name);
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    JpegEncoder::new_with_quality(std::io::BufWriter::new(file), quality)
        .encode_image(&photo)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut codes = placements.into_iter();
    let (format, expected) = codes
        .next()
        .map(|p| (p.format, p.text))
        .unwrap_or_else(|| (NO_CODE.to_owned(), String::new()));
    Case {
        path,
        format,
        expected,
        other: codes.next().map(|p| (p.format, p.text)),
    }
}

fn frame_size(rng: &mut StdRng) -> (u32, u32) {
    let long = rng.random_range(640..=1600);
    let short = long * 3 / 4;
    if rng.random_bool(0.7) {
        (long, short)
    } else {
        (short, long)
    }
}

/// The photo's coverage of light: a slope across the frame and perhaps a glare spot.
struct Light {
    /// Brightness at the frame's centre and its change per pixel along x and y.
    base: f32,
    slope: (f32, f32),
    /// Centre, radius and strength of a bright spot.
    glare: Option<(f32, f32, f32, f32)>,
}

impl Light {
    fn random(rng: &mut StdRng, width: u32, height: u32) -> Self {
        let (w, h) = (width as f32, height as f32);
        let drop = if rng.random_bool(0.5) {
            rng.random_range(0.0..0.6)
        } else {
            0.0
        };
        let angle = rng.random_range(0.0..2.0 * PI);
        let span = w.max(h);
        Self {
            base: rng.random_range(0.75..1.05),
            slope: (drop * angle.cos() / span, drop * angle.sin() / span),
            glare: rng.random_bool(0.25).then(|| {
                (
                    rng.random_range(0.0..w),
                    rng.random_range(0.0..h),
                    rng.random_range(0.05..0.3) * w.min(h),
                    rng.random_range(40.0..160.0),
                )
            }),
        }
    }

    fn at(&self, x: f32, y: f32, width: u32, height: u32) -> (f32, f32) {
        let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
        let gain = self.base + self.slope.0 * (x - cx) + self.slope.1 * (y - cy);
        let added = self.glare.map_or(0.0, |(gx, gy, r, strength)| {
            let d2 = (x - gx).powi(2) + (y - gy).powi(2);
            strength * (-d2 / (2.0 * r * r)).exp()
        });
        (gain.max(0.2), added)
    }
}

/// A surface with slow shading and a texture, in gray (colour comes at the end).
fn background(rng: &mut StdRng, width: u32, height: u32) -> GrayImage {
    let level = rng.random_range(90.0..230.0f32);
    let waves: Vec<(f32, f32, f32, f32)> = (0..3)
        .map(|_| {
            (
                rng.random_range(0.002..0.05f32),
                rng.random_range(0.0..PI),
                rng.random_range(0.0..2.0 * PI),
                rng.random_range(0.0..25.0f32),
            )
        })
        .collect();
    GrayImage::from_fn(width, height, |x, y| {
        let shade: f32 = waves
            .iter()
            .map(|(freq, dir, phase, amp)| {
                let t = x as f32 * dir.cos() + y as f32 * dir.sin();
                amp * (t * freq + phase).sin()
            })
            .sum();
        Luma([(level + shade).clamp(0.0, 255.0) as u8])
    })
}

/// What was drawn where: the symbol's format and content.
struct Placed {
    /// Photo pixels per module.
    module: f32,
    format: String,
    text: String,
}

/// Draws a random `format` symbol into `canvas`, its centre at a random place whose x lies in
/// `across` (fractions of the width), so that a second symbol keeps apart from the first.
fn place_symbol(
    rng: &mut StdRng,
    canvas: &mut GrayImage,
    format: BarcodeFormat,
    across: std::ops::Range<f64>,
) -> Placed {
    // Content the writer refuses (rxing's DataMatrix writer cannot fit some in a rectangle)
    // is drawn again.
    let (text, matrix) = loop {
        let (text, hints) = content(rng, format);
        if let Ok(matrix) = MultiFormatWriter.encode_with_hints(&text, &format, 1, 1, &hints) {
            break (text, matrix);
        }
    };
    let one_d = matrix.getHeight() == 1;
    let (modules_x, modules_y) = (matrix.getWidth(), matrix.getHeight());
    let bars_height = if one_d {
        (modules_x as f32 * rng.random_range(0.15..0.6)).max(12.0) as u32
    } else {
        modules_y
    };
    let quiet = if one_d {
        rng.random_range(7..14)
    } else {
        rng.random_range(2..6)
    };
    let (label_w, label_h) = (
        (modules_x + 2 * quiet) * FINE,
        (bars_height + 2 * quiet) * FINE,
    );
    let ink = rng.random_range(0..90u8);
    let paper = rng.random_range(170..=255u8);
    let inverted = rng.random_bool(0.08);
    let (ink, paper) = if inverted { (paper, ink) } else { (ink, paper) };
    let label = GrayImage::from_fn(label_w, label_h, |x, y| {
        let (mx, my) = (x / FINE, y / FINE);
        let inside =
            mx >= quiet && mx < quiet + modules_x && my >= quiet && my < quiet + bars_height;
        let dark = inside && matrix.get(mx - quiet, if one_d { 0 } else { my - quiet });
        Luma([if dark { ink } else { paper }])
    });
    // Size: pixels per module in the photo, from barely readable to large, within the frame.
    let (w, h) = (canvas.width() as f32, canvas.height() as f32);
    let fit = 0.9 * w.min(h) / ((label_w.max(label_h)) as f32 / FINE as f32);
    let module = (rng.random_range(1.5f32.ln()..8.0f32.ln()).exp()).min(fit);
    let scale = module / FINE as f32;
    // Most photos are taken square to the code, some turned a quarter, a few at any angle.
    let angle = match rng.random_range(0..20) {
        0..11 => rng.random_range(-10.0..10.0f32),
        11..16 => 90.0 * rng.random_range(1..4) as f32 + rng.random_range(-10.0..10.0f32),
        _ => rng.random_range(0.0..360.0f32),
    }
    .to_radians();
    let curve = rng
        .random_bool(0.25)
        .then(|| rng.random_range(20.0..60.0f32).to_radians());
    let flat_w = curve.map_or(label_w as f32, |phi| label_w as f32 * phi.sin() / phi);
    let (half_w, half_h) = (flat_w * scale / 2.0, label_h as f32 * scale / 2.0);
    let reach = (half_w.powi(2) + half_h.powi(2)).sqrt();
    let mut span = |lo: f64, hi: f64, size: f32| {
        let (lo, hi) = (lo as f32 * size, hi as f32 * size);
        let (lo, hi) = (
            lo.max(reach.min(size / 2.0)),
            hi.min(size - reach.min(size / 2.0)),
        );
        if hi > lo {
            rng.random_range(lo..hi)
        } else {
            size / 2.0
        }
    };
    let cx = span(across.start, across.end, w);
    let cy = span(0.0, 1.0, h);
    let (sin, cos) = angle.sin_cos();
    let jitter = rng.random_range(0.0..0.12f32) * reach;
    let corners =
        [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)].map(|(sx, sy): (f32, f32)| {
            let (x, y) = (sx * half_w, sy * half_h);
            (
                cx + x * cos - y * sin + rng.random_range(-jitter..=jitter),
                cy + x * sin + y * cos + rng.random_range(-jitter..=jitter),
            )
        });
    let flat = [
        (0.0, 0.0),
        (flat_w, 0.0),
        (flat_w, label_h as f32),
        (0.0, label_h as f32),
    ];
    let to_label = Projection::from_control_points(corners, flat)
        .unwrap_or_else(|| Projection::scale(1.0 / scale, 1.0 / scale));
    draw(canvas, &label, to_label, curve, flat_w);
    Placed {
        module,
        format: format!("{format:?}"),
        text: expected(format, &text),
    }
}

/// Samples `label` into `canvas` through `to_label` (photo to flattened label) and, for a
/// curved label, the cylinder it is wrapped round; four samples per pixel keep fine bars from
/// aliasing.
fn draw(
    canvas: &mut GrayImage,
    label: &GrayImage,
    to_label: Projection,
    curve: Option<f32>,
    flat_w: f32,
) {
    let (lw, lh) = (label.width() as f32, label.height() as f32);
    let radius = curve.map(|phi| lw / (2.0 * phi));
    let unflatten = |fx: f32| match radius {
        Some(r) => {
            let t = ((fx - flat_w / 2.0) / r).clamp(-1.0, 1.0);
            lw / 2.0 + r * t.asin()
        }
        None => fx,
    };
    for y in 0..canvas.height() {
        for x in 0..canvas.width() {
            let mut sum = 0.0;
            let mut hits = 0;
            for (dx, dy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let (fx, fy) = to_label * (x as f32 + dx, y as f32 + dy);
                let lx = unflatten(fx);
                if fx >= 0.0 && fx < flat_w && lx >= 0.0 && lx < lw && fy >= 0.0 && fy < lh {
                    sum += f32::from(label.get_pixel(lx as u32, fy as u32).0[0]);
                    hits += 1;
                }
            }
            if hits > 0 {
                let under = f32::from(canvas.get_pixel(x, y).0[0]);
                let value = (sum + under * (4 - hits) as f32) / 4.0;
                canvas.put_pixel(x, y, Luma([value as u8]));
            }
        }
    }
}

/// Bars of random widths and blocks of random cells: what a reader must not take for a code.
fn decoys(rng: &mut StdRng, canvas: &mut GrayImage) {
    let (w, h) = (canvas.width(), canvas.height());
    let bars_x = rng.random_range(0..w / 2);
    let bars_y = rng.random_range(0..h / 2);
    let bar_h = rng.random_range(h / 8..h / 3);
    let mut x = bars_x;
    let end = (bars_x + rng.random_range(w / 6..w / 2)).min(w);
    let mut dark = true;
    while x < end {
        let width = rng.random_range(1..8);
        if dark {
            fill(canvas, x, bars_y, width, bar_h, rng.random_range(0..60));
        }
        dark = !dark;
        x += width;
    }
    let cell = rng.random_range(3..12);
    let cells = rng.random_range(8..30);
    let (bx, by) = (rng.random_range(0..w / 2 + 1), rng.random_range(h / 2..h));
    for i in 0..cells {
        for j in 0..cells {
            if rng.random_bool(0.5) {
                fill(canvas, bx + i * cell, by + j * cell, cell, cell, 20);
            }
        }
    }
}

/// Lines of word-shaped dark blocks, as printed text beside a code looks to a reader.
fn words(rng: &mut StdRng, canvas: &mut GrayImage) {
    let (w, h) = (canvas.width(), canvas.height());
    let size = rng.random_range(6..20);
    let mut y = rng.random_range(0..h / 2);
    for _ in 0..rng.random_range(1..6) {
        let mut x = rng.random_range(0..w / 3);
        while x < w * 9 / 10 && rng.random_bool(0.9) {
            let letters = rng.random_range(2..9);
            for _ in 0..letters {
                let stroke = (size / 5).max(1);
                let glyph_h = size - rng.random_range(0..size / 3 + 1);
                fill(canvas, x, y + size - glyph_h, stroke, glyph_h, 30);
                fill(canvas, x, y + size - stroke, size / 2, stroke, 30);
                x += size * 2 / 3;
            }
            x += size;
        }
        y += size * 2;
    }
}

fn fill(canvas: &mut GrayImage, x: u32, y: u32, w: u32, h: u32, level: u8) {
    for yy in y..(y + h).min(canvas.height()) {
        for xx in x..(x + w).min(canvas.width()) {
            canvas.put_pixel(xx, yy, Luma([level]));
        }
    }
}

/// The photo as a camera records it: light, blur, a colour cast and sensor noise.
fn finish(rng: &mut StdRng, canvas: &GrayImage, light: &Light, max_blur: f32) -> RgbImage {
    let sigma = if rng.random_bool(0.3) {
        0.0
    } else {
        rng.random_range(0.0..max_blur.max(0.3))
    };
    let blurred = if sigma > 0.0 {
        image::imageops::blur(canvas, sigma)
    } else {
        canvas.clone()
    };
    let noise = rng.random_range(0.0..14.0f32);
    let cast = [
        rng.random_range(0.85..1.0f32),
        rng.random_range(0.85..1.0f32),
        rng.random_range(0.8..1.0f32),
    ];
    let (width, height) = canvas.dimensions();
    let mut seed = rng.random::<u64>() | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    RgbImage::from_fn(width, height, |x, y| {
        let (gain, added) = light.at(x as f32, y as f32, width, height);
        let value = f32::from(blurred.get_pixel(x, y).0[0]) * gain + added;
        // The sum of three uniform draws: close enough to a Gaussian for sensor noise.
        let grain = (next() + next() + next() - 1.5) * 2.0 * noise;
        image::Rgb(cast.map(|c| (value * c + grain).clamp(0.0, 255.0) as u8))
    })
}

/// Random content a real symbol of `format` could hold, and the writer hints it needs.
fn content(rng: &mut StdRng, format: BarcodeFormat) -> (String, EncodeHints) {
    let digits = |rng: &mut StdRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(b'0' + rng.random_range(0..10)))
            .collect()
    };
    let from = |rng: &mut StdRng, alphabet: &str, n: usize| -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        (0..n)
            .map(|_| chars[rng.random_range(0..chars.len())])
            .collect()
    };
    let mut hints = EncodeHints {
        Margin: Some("0".to_owned()),
        ..Default::default()
    };
    let text = match format {
        BarcodeFormat::EAN_13 => with_check(&digits(rng, 12)),
        BarcodeFormat::EAN_8 => with_check(&digits(rng, 7)),
        BarcodeFormat::UPC_A => with_check(&digits(rng, 11)),
        BarcodeFormat::UPC_E => upc_e(rng),
        BarcodeFormat::ITF => {
            let n = 2 * rng.random_range(3..9);
            digits(rng, n)
        }
        BarcodeFormat::CODE_39 | BarcodeFormat::CODE_93 => {
            let n = rng.random_range(3..16);
            from(rng, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. ", n)
                .trim()
                .to_owned()
                + "X"
        }
        BarcodeFormat::CODABAR => {
            let n = rng.random_range(4..16);
            let stops = ["A", "B", "C", "D"];
            let (start, stop) = (stops[rng.random_range(0..4)], stops[rng.random_range(0..4)]);
            format!("{start}{}{stop}", from(rng, "0123456789-$:/.+", n))
        }
        BarcodeFormat::CODE_128 => {
            let n = rng.random_range(3..24);
            match rng.random_range(0..3) {
                0 => digits(rng, n),
                _ => {
                    from(
                        rng,
                        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-./:+ ",
                        n,
                    )
                    .trim()
                    .to_owned()
                        + "0"
                }
            }
        }
        _ => {
            let n = match rng.random_range(0..4) {
                0 => rng.random_range(1..12),
                1 | 2 => rng.random_range(12..60),
                _ => rng.random_range(60..220),
            };
            match rng.random_range(0..10) {
                0 => {
                    hints.CharacterSet = Some("UTF-8".to_owned());
                    // rxing's DataMatrix writer takes other character sets in its minimal mode.
                    hints.DataMatrixCompact = Some(true);
                    from(rng, "Grüße àéîõü ñandú Ωμέγα Köln 東京 ", n)
                        .trim()
                        .to_owned()
                        + "!"
                }
                1 | 2 => format!(
                    "https://{}.example/{}",
                    from(rng, "abcdefghijklmnopqrstuvwxyz", 6),
                    from(rng, "abcdefghijklmnopqrstuvwxyz0123456789", n / 2 + 1)
                ),
                3 => digits(rng, n),
                _ => {
                    from(
                        rng,
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,-:;/",
                        n,
                    )
                    .trim()
                    .to_owned()
                        + "."
                }
            }
        }
    };
    // A rectangular DataMatrix holds at most 49 codewords (and rxing's writer panics on more).
    if format == BarcodeFormat::DATA_MATRIX
        && text.is_ascii()
        && text.len() <= 30
        && rng.random_bool(0.3)
    {
        hints.DataMatrixShape = Some(rxing::datamatrix::encoder::SymbolShapeHint::FORCE_RECTANGLE);
    }
    (text, hints)
}

/// What a reader should report for `text` written as `format`: ZXing's conventions (Codabar
/// without its start and stop characters).
fn expected(format: BarcodeFormat, text: &str) -> String {
    match format {
        BarcodeFormat::CODABAR => text[1..text.len() - 1].to_owned(),
        _ => text.to_owned(),
    }
}

/// `digits` followed by their GS1 check digit.
fn with_check(digits: &str) -> String {
    let check = librarian_model::gs1_check_digit(digits).expect("digits");
    format!("{digits}{check}")
}

/// A UPC-E: a UPC-A that zero-suppression compresses, written in its 8 digits.
fn upc_e(rng: &mut StdRng) -> String {
    loop {
        let d: Vec<u8> = (0..6).map(|_| rng.random_range(0..10)).collect();
        let s = |i: usize| char::from(b'0' + d[i]);
        let body: String = match d[5] {
            0..=2 => [s(0), s(1), s(5), '0', '0', '0', '0', s(2), s(3), s(4)]
                .iter()
                .collect(),
            3 => [s(0), s(1), s(2), '0', '0', '0', '0', '0', s(3), s(4)]
                .iter()
                .collect(),
            4 => [s(0), s(1), s(2), s(3), '0', '0', '0', '0', '0', s(4)]
                .iter()
                .collect(),
            _ => [s(0), s(1), s(2), s(3), s(4), '0', '0', '0', '0', s(5)]
                .iter()
                .collect(),
        };
        if let Some(upc_e) = librarian_model::upca_to_upce(&with_check(&format!("0{body}"))) {
            return upc_e;
        }
    }
}
