//! Phone-sized photos made from the corpus: each chosen image is enlarged to cover a third to
//! two thirds of a 4000 x 3000 frame, placed off-centre on a textured background, given
//! sensor noise and saved as a JPEG at quality 90, as a phone camera would.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{Rgb, RgbImage};

use crate::manifest::{self, Case};
use crate::parallel::on_two_threads;

const WIDTH: u32 = 4000;
const HEIGHT: u32 = 3000;

/// A small deterministic generator, so that every run makes the same photos.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Makes the photos in `dir` from every `every`-th case, unless `dir` already has a manifest,
/// and returns the cases of the photo set.
pub fn photos(cases: &[Case], dir: &Path, every: usize) -> Vec<Case> {
    let manifest_path = dir.join("manifest.tsv");
    if manifest_path.exists() {
        return manifest::read(&manifest_path);
    }
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let chosen: Vec<(usize, &Case)> = cases.iter().enumerate().step_by(every.max(1)).collect();
    eprintln!(
        "making {} phone-sized photos in {}",
        chosen.len(),
        dir.display()
    );
    let made = on_two_threads(&chosen, |(i, c)| photo(*i, c, dir));
    manifest::write(dir, &made);
    made
}

fn photo(index: usize, case: &Case, dir: &Path) -> Case {
    let source = image::open(&case.path)
        .unwrap_or_else(|e| panic!("{}: {e}", case.path.display()))
        .to_rgb8();
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0x2545_F491));
    let fraction = 0.33 + noise.below(34) as f64 / 100.0;
    let scale = (WIDTH as f64 * fraction / f64::from(source.width()))
        .min(HEIGHT as f64 * 0.9 / f64::from(source.height()));
    let (width, height) = (
        ((f64::from(source.width()) * scale) as u32).max(1),
        ((f64::from(source.height()) * scale) as u32).max(1),
    );
    let enlarged = image::imageops::resize(&source, width, height, FilterType::Triangle);
    let mut frame = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let shade = 90 + ((x / 40 + y / 23) % 50) as u8 + ((x + 2 * y) / 100 % 30) as u8;
        Rgb([shade, shade.saturating_sub(12), shade.saturating_sub(25)])
    });
    let left = noise.below(u64::from(WIDTH - width + 1));
    let top = noise.below(u64::from(HEIGHT - height + 1));
    image::imageops::overlay(&mut frame, &enlarged, left as i64, top as i64);
    for pixel in frame.pixels_mut() {
        let delta = noise.below(13) as i16 - 6;
        for channel in &mut pixel.0 {
            *channel = (i16::from(*channel) + delta).clamp(0, 255) as u8;
        }
    }
    let name = format!("{index:04}.jpg");
    let path = dir.join(&name);
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 90)
        .encode_image(&frame)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Case {
        path,
        format: case.format.clone(),
        expected: case.expected.clone(),
        other: case.other.clone(),
    }
}
