//! Helpers shared by the integration tests: generated barcode images and an in-process app.
#![allow(dead_code)] // each test binary uses a different part of these helpers

pub mod client;
pub mod process;
pub mod receiver;
pub mod servers;
#[cfg(feature = "ocr")]
pub mod text;

#[allow(unused_imports)] // as the helpers below, each test binary uses a part
pub use client::{Client, json_of, multipart};

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use jsonwebtoken::{EncodingKey, Header};
use librarian::app::App;
use librarian::config::{Config, Overrides};
use rxing::{BarcodeFormat, EncodeHints, MultiFormatWriter, Writer};
use salvo::http::header::CONTENT_TYPE;
use salvo::prelude::*;
use salvo::test::ResponseExt;
use serde_json::{Value, json};

/// The EAN-13 most tests submit.
pub const EAN: &str = "5449000000996";

/// A photo of [`EAN`].
pub fn ean_png() -> Vec<u8> {
    png(&symbol(BarcodeFormat::EAN_13, EAN, 380, 160))
}

/// A barcode symbol drawn by rxing's writer, black on white, with a white margin.
pub fn symbol(format: BarcodeFormat, text: &str, width: i32, height: i32) -> GrayImage {
    symbol_with(format, text, width, height, &EncodeHints::default())
}

/// A symbol drawn with these writer hints (GS1, error correction, …).
pub fn symbol_with(
    format: BarcodeFormat,
    text: &str,
    width: i32,
    height: i32,
    hints: &EncodeHints,
) -> GrayImage {
    let matrix = MultiFormatWriter
        .encode_with_hints(text, &format, width, height, hints)
        .expect("rxing writes the symbol");
    let drawn = DynamicImage::from(&matrix).into_luma8();
    let margin = 24;
    let mut framed = GrayImage::from_pixel(
        drawn.width() + 2 * margin,
        drawn.height() + 2 * margin,
        Luma([255]),
    );
    image::imageops::overlay(&mut framed, &drawn, margin.into(), margin.into());
    framed
}

pub fn encode(image: &GrayImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(image.clone())
        .write_to(&mut out, format)
        .expect("encode");
    out.into_inner()
}

pub fn png(image: &GrayImage) -> Vec<u8> {
    encode(image, ImageFormat::Png)
}

pub fn jpeg(image: &GrayImage) -> Vec<u8> {
    encode(image, ImageFormat::Jpeg)
}

/// Deterministic noise: each pixel moves by up to `amount` levels.
pub fn noisy(image: &GrayImage, amount: i32) -> GrayImage {
    let mut state: u32 = 0x2545_f491;
    let mut out = image.clone();
    for pixel in out.pixels_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let delta = (state % (2 * amount as u32 + 1)) as i32 - amount;
        pixel.0[0] = (i32::from(pixel.0[0]) + delta).clamp(0, 255) as u8;
    }
    out
}

/// The image placed at (x, y) on a larger mid-gray canvas, like a code in a phone photo.
pub fn on_canvas(image: &GrayImage, width: u32, height: u32, x: i64, y: i64) -> GrayImage {
    let mut canvas = GrayImage::from_pixel(width, height, Luma([170]));
    image::imageops::overlay(&mut canvas, image, x, y);
    canvas
}

pub fn inverted(image: &GrayImage) -> GrayImage {
    let mut out = image.clone();
    image::imageops::invert(&mut out);
    out
}

/// A 100000 x 100000 PNG header (with a valid CRC) and no pixel data: a decompression bomb.
pub fn png_bomb() -> Vec<u8> {
    png_header_only(100_000, 100_000, 8, 0)
}

/// A PNG that declares this size, bit depth and colour type and holds one tiny IDAT chunk.
pub fn png_header_only(width: u32, height: u32, depth: u8, colour: u8) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(b"IHDR");
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, colour, 0, 0, 0]);
    let crc = crc32(&ihdr);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc.to_be_bytes());
    // One tiny IDAT chunk: a decoder that trusted the header would allocate 10 GB for it.
    let mut idat = b"IDAT".to_vec();
    idat.extend_from_slice(&[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]);
    png.extend_from_slice(&((idat.len() - 4) as u32).to_be_bytes());
    png.extend_from_slice(&idat);
    png.extend_from_slice(&crc32(&idat).to_be_bytes());
    png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]);
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An app built from a TOML config written into `dir`, its disk actor writing to `dir/data`.
pub async fn app(dir: &Path, extra_toml: &str) -> Arc<App> {
    let data = dir.join("data");
    let toml = format!(
        "[actors.disk]\nkind = \"disk\"\ndir = \"{}\"\n{extra_toml}",
        data.display()
    );
    let file = dir.join("librarian.toml");
    std::fs::write(&file, toml).unwrap();
    // The caller's LIBRARIAN_* variables are no part of a test's configuration.
    let overrides = Overrides {
        config_file: Some(file),
        ignore_environment: true,
        ..Default::default()
    };
    let loaded = Config::load(&overrides).expect("test config loads");
    Arc::new(App::build(loaded).await.expect("test app builds"))
}

/// The address in-process requests are made to.
pub const BASE: &str = "http://127.0.0.1:8080";

pub fn url(path: &str) -> String {
    format!("{BASE}{path}")
}

/// A JSON submission body: the image in base64 and the labels.
pub fn body(image: &[u8], labels: Value) -> Value {
    json!({"image": STANDARD.encode(image), "labels": labels})
}

pub fn status(res: &Response) -> u16 {
    res.status_code.map_or(0, |s| s.as_u16())
}

/// The text at `field` of each item of a JSON array (ids of records, codes of findings).
pub fn strings_at<'v>(items: &'v Value, field: &str) -> Vec<&'v str> {
    let items = items.as_array().expect("a JSON array");
    items
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}

/// Files in a folder, sorted; empty when the folder does not exist.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// Asserts a problem+json answer with this status and code, and returns its body.
pub async fn problem(res: &mut Response, status: u16, code: &str) -> Value {
    let status_seen = res.status_code.map(|s| s.as_u16());
    if status_seen != Some(status) {
        panic!(
            "expected {status} {code}, got {status_seen:?}: {}",
            res.take_string().await.unwrap_or_default()
        );
    }
    let ctype = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(ctype, "application/problem+json");
    let body: Value = res.take_json().await.expect("problem body");
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a detail in {body}"
    );
    assert!(body["type"].as_str().is_some_and(|t| t.ends_with(code)));
    body
}

/// An HS256 secret of the length the server requires.
pub const JWT_SECRET: &str = "a-provider-secret-of-32-bytes-or-more";

/// `[auth]` for JWTs of the tests' identity provider: signed with [`JWT_SECRET`], issuer
/// `https://id.example` and audience `librarian` required.
pub fn jwt_auth_toml() -> String {
    format!(
        r#"
[auth]
mode = "jwt"
[auth.jwt]
secret = "{JWT_SECRET}"
issuer = "https://id.example"
audience = "librarian"
leeway = "5s"
"#
    )
}

pub fn jwt(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}
