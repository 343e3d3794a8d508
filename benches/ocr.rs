//! OCR benchmark: generated images of text with known content, read by Librarian's `ocr`
//! extractor and by the `tesseract` command line (the same engine, one process per image), in
//! one run; prints the character error rate and the time per image of each.
//!
//! `cargo bench --features ocr --bench ocr -- [--images 200] [--seed 1] [--psm 3]`
//!
//! Each image draws one to three lines of label-like words, dates and lot numbers in DejaVu
//! Sans (Debian's fonts-dejavu-core) at a random size (18 to 90 pixels), turned by up to 4
//! degrees, blurred, with sensor noise, uneven light, and saved as PNG or as JPEG of a random
//! quality, all drawn from the seed. The character error rate is the edit distance between the
//! text read and the text drawn (spaces and line breaks each folded to one space) over the
//! length of the text drawn, summed over every image.

#[path = "../tests/common/text.rs"]
mod text;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use image::{GrayImage, ImageFormat, Luma};
use imageproc::geometric_transformations::{Interpolation, rotate_about_center};
use librarian::extract::{ExtractorConfig, analyze_now, build};
use librarian::imaging::probe;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WORDS: [&str; 24] = [
    "BEST",
    "BEFORE",
    "USE",
    "BY",
    "LOT",
    "BATCH",
    "PRICE",
    "NET",
    "WEIGHT",
    "ORGANIC",
    "MILK",
    "COFFEE",
    "Chocolate",
    "Tomatoes",
    "Olive",
    "Oil",
    "Store",
    "in",
    "a",
    "cool",
    "dry",
    "place",
    "Ingredients:",
    "Sugar",
];

struct Args {
    images: usize,
    seed: u64,
    psm: u8,
}

fn args() -> Args {
    let mut args = Args {
        images: 200,
        seed: 1,
        psm: 3,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().expect("a value after the flag");
        match flag.as_str() {
            "--images" => args.images = value().parse().expect("a count"),
            "--seed" => args.seed = value().parse().expect("a number"),
            "--psm" => args.psm = value().parse().expect("a page segmentation mode"),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// A word, a date or a lot number.
fn token(rng: &mut StdRng) -> String {
    match rng.random_range(0..6) {
        0 => format!(
            "{:02}.{:02}.{}",
            rng.random_range(1..29),
            rng.random_range(1..13),
            rng.random_range(2024..2031)
        ),
        1 => format!("L{}", rng.random_range(1000..99999)),
        _ => WORDS[rng.random_range(0..WORDS.len())].to_owned(),
    }
}

/// One generated image, its encoded bytes and the text drawn on it.
fn generate(rng: &mut StdRng, font: &ab_glyph::FontVec) -> (Vec<u8>, &'static str, String) {
    let size = rng.random_range(18.0..90.0_f32);
    let lines: Vec<String> = (0..rng.random_range(1..4))
        .map(|_| {
            let words: Vec<String> = (0..rng.random_range(1..5)).map(|_| token(rng)).collect();
            words.join(" ")
        })
        .collect();
    let longest = lines.iter().map(|l| l.len()).max().unwrap_or(1) as f32;
    let width = (longest * size * 0.75) as u32 + 2 * size as u32;
    let height = (lines.len() as f32 * size * 1.6) as u32 + 2 * size as u32;
    let mut image = GrayImage::from_pixel(width, height, Luma([255]));
    for (n, line) in lines.iter().enumerate() {
        let y = (size + n as f32 * size * 1.6) as i32;
        text::draw(&mut image, font, line, size as i32, y, size);
    }
    let angle = rng.random_range(-4.0..4.0_f32).to_radians();
    let mut image = rotate_about_center(&image, angle, Interpolation::Bilinear, Luma([255]));
    let sigma = rng.random_range(0.0..1.5_f32);
    if sigma > 0.3 {
        image = image::imageops::blur(&image, sigma);
    }
    // Uneven light: darker towards one side, and noise on every pixel.
    let (shade, noise) = (rng.random_range(0.0..60.0_f32), rng.random_range(0..24_i32));
    for (x, _, pixel) in image.enumerate_pixels_mut() {
        let dark = shade * x as f32 / width as f32;
        let jitter = if noise > 0 {
            rng.random_range(-noise..=noise)
        } else {
            0
        };
        pixel.0[0] = (f32::from(pixel.0[0]) - dark + jitter as f32).clamp(0.0, 255.0) as u8;
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    let extension = if rng.random_bool(0.5) {
        let quality = rng.random_range(40..95);
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality);
        image.write_with_encoder(encoder).expect("JPEG encodes");
        "jpg"
    } else {
        image
            .write_to(&mut bytes, ImageFormat::Png)
            .expect("PNG encodes");
        "png"
    };
    (bytes.into_inner(), extension, lines.join("\n"))
}

/// Spaces and line breaks folded to one space, the ends trimmed.
fn folded(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Default)]
struct Tally {
    errors: usize,
    characters: usize,
    times: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, drawn: &str, read: &str, time: Duration) {
        let (drawn, read) = (folded(drawn), folded(read));
        self.errors += strsim::levenshtein(&drawn, &read);
        self.characters += drawn.chars().count();
        self.times.push(time);
    }

    fn row(&mut self, name: &str) -> String {
        self.times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = self
            .times
            .get(self.times.len() / 2)
            .copied()
            .unwrap_or_default();
        let mean = self.times.iter().sum::<Duration>() / self.times.len().max(1) as u32;
        format!(
            "| {name} | {} | {:.2}% | {:.0} | {:.0} |",
            self.times.len(),
            100.0 * self.errors as f64 / self.characters.max(1) as f64,
            ms(median),
            ms(mean)
        )
    }
}

fn tesseract_cli(path: &Path, psm: u8) -> String {
    let output = Command::new("tesseract")
        .arg(path)
        .arg("-")
        .args(["--psm", &psm.to_string(), "--dpi", "300", "-l", "eng"])
        .output()
        .expect("the tesseract command runs (Debian: apt install tesseract-ocr)");
    assert!(
        output.status.success(),
        "tesseract failed on {}",
        path.display()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn main() {
    let args = args();
    let font = text::font();
    let config: ExtractorConfig = serde_json::from_value(serde_json::json!({
        "kind": "ocr",
        "psm": args.psm,
        "min_confidence": 0.0,
    }))
    .expect("an ocr config");
    let extractor = build(&config).expect("the ocr extractor starts");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut rng = StdRng::seed_from_u64(args.seed);
    let (mut ours, mut cli) = (Tally::default(), Tally::default());
    for n in 0..args.images {
        let (bytes, extension, drawn) = generate(&mut rng, &font);
        let facts = probe(&bytes).expect("a generated image probes");
        let started = Instant::now();
        let found = analyze_now(&bytes, &facts, u64::MAX, std::slice::from_ref(&extractor))
            .expect("a generated image decodes");
        let read = found.text.map(|t| t.text).unwrap_or_default();
        ours.add(&drawn, &read, started.elapsed());
        let path = dir.path().join(format!("{n}.{extension}"));
        std::fs::write(&path, &bytes).expect("the image is written");
        let started = Instant::now();
        let read = tesseract_cli(&path, args.psm);
        cli.add(&drawn, &read, started.elapsed());
    }
    println!(
        "{} generated images, seed {}, psm {}",
        args.images, args.seed, args.psm
    );
    println!("| reader | images | character error rate | median ms | mean ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!("{}", ours.row("Librarian `ocr` extractor"));
    println!("{}", cli.row("`tesseract` command line"));
}
