//! The `ocr` extractor on generated images: text rendered with a Debian font at a known place,
//! read back with its lines and boxes, and held against labels by the text validators.

mod common;

use common::text::{Bounds, draw, font};
use common::{Client, json_of, png, problem, strings_at};
use image::{GrayImage, Luma};
use serde_json::{Value, json};

const PIPELINE: &str = r#"
[pipelines.default]
validators = ["best-before", "has-text"]
extractors = ["text"]
actors = ["disk"]
[extractors.text]
kind = "ocr"
max_side = 1000
[validators.best-before]
kind = "label-matches"
label = "best_before"
check = "text-contains"
[validators.has-text]
kind = "text"
min_chars = 8
"#;

/// A white page with these lines, each `size` pixels high, and where each was inked.
fn page(
    width: u32,
    height: u32,
    lines: &[(&str, i32, i32)],
    size: f32,
) -> (GrayImage, Vec<Bounds>) {
    let font = font();
    let mut image = GrayImage::from_pixel(width, height, Luma([255]));
    let bounds = lines
        .iter()
        .map(|(text, x, y)| draw(&mut image, &font, text, *x, *y, size))
        .collect();
    (image, bounds)
}

/// Whether a read box holds the inked bounds, give or take `slack` pixels on each side.
fn holds(read: &Value, inked: Bounds, slack: i64) {
    let side = |k: &str| read[k].as_i64().unwrap();
    let (x, y, w, h) = (side("x"), side("y"), side("w"), side("h"));
    let [ix, iy, iw, ih] = inked.map(i64::from);
    let near = |a: i64, b: i64| (a - b).abs() <= slack;
    assert!(
        near(x, ix) && near(y, iy) && near(x + w, ix + iw) && near(y + h, iy + ih),
        "read box {read} against inked {inked:?}"
    );
}

async fn submitted(client: &Client, image: &GrayImage, labels: Value) -> (u16, Value) {
    let mut res = client.submit("default", &png(image), labels).await;
    let status = res.status_code.unwrap().as_u16();
    (status, json_of(&mut res).await)
}

#[tokio::test]
async fn the_lines_of_a_label_are_read_with_their_boxes_in_the_photos_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), PIPELINE).await;
    let lines = [("BEST BEFORE", 120, 150), ("12.05.2027 LOT A4", 120, 300)];
    let (image, inked) = page(1600, 600, &lines, 72.0);
    let (status, record) = submitted(&client, &image, json!({"best_before": "12.05.2027"})).await;
    assert_eq!(status, 201, "{record}");
    let text = &record["text"];
    assert_eq!(text["text"], "BEST BEFORE\n12.05.2027 LOT A4");
    let read = text["lines"].as_array().unwrap();
    assert_eq!(read.len(), 2, "{text}");
    for (line, (drawn, inked)) in read.iter().zip(lines.iter().zip(inked)) {
        assert_eq!(line["text"], drawn.0);
        let confidence = line["confidence"].as_f64().unwrap();
        assert!((50.0..=100.0).contains(&confidence), "{line}");
        // Read at 1000 of 1600 pixels: a pixel there is 1.6 here.
        holds(&line["box"], inked, 6);
    }
}

#[tokio::test]
async fn a_label_that_is_not_in_the_text_and_a_photo_without_text_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), PIPELINE).await;
    let (image, _) = page(1600, 600, &[("BEST BEFORE 12.05.2027", 100, 200)], 72.0);
    let mut res = client
        .submit(
            "default",
            &png(&image),
            json!({"best_before": "13.05.2027"}),
        )
        .await;
    let refused = problem(&mut res, 422, "validation.failed").await;
    assert_eq!(
        strings_at(&refused["errors"], "code"),
        ["label.not_in_text"]
    );
    assert_eq!(refused["errors"][0]["path"], "/best_before");

    let blank = GrayImage::from_pixel(800, 600, Luma([255]));
    let mut res = client
        .submit(
            "default",
            &png(&blank),
            json!({"best_before": "12.05.2027"}),
        )
        .await;
    let refused = problem(&mut res, 422, "validation.failed").await;
    assert_eq!(
        strings_at(&refused["errors"], "code"),
        ["label.not_in_text", "text.missing"]
    );
}

#[tokio::test]
async fn a_large_photo_is_read_scaled_down_and_its_boxes_mapped_back() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), PIPELINE).await;
    let (image, inked) = page(4000, 3000, &[("LOT 2027-A4", 1500, 1400)], 160.0);
    let (status, record) = submitted(&client, &image, json!({})).await;
    assert_eq!(status, 201, "{record}");
    let lines = record["text"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{record}");
    assert_eq!(lines[0]["text"], "LOT 2027-A4");
    // Read at a quarter of the size: each pixel there is four here.
    holds(&lines[0]["box"], inked[0], 12);
}

#[tokio::test]
async fn allow_chars_keeps_the_engine_to_those_characters() {
    let dir = tempfile::tempdir().unwrap();
    let digits = r#"
[pipelines.default]
validators = []
extractors = ["digits"]
actors = ["disk"]
[extractors.digits]
kind = "ocr"
psm = 7
allow_chars = "0123456789."
"#;
    let client = Client::start(dir.path(), digits).await;
    let (image, _) = page(1200, 200, &[("12.05.2027", 100, 50)], 72.0);
    let (status, record) = submitted(&client, &image, json!({})).await;
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["text"]["text"], "12.05.2027");
}

#[test]
fn a_language_that_is_not_installed_stops_the_start_with_what_to_install() {
    let config: librarian::extract::ExtractorConfig =
        serde_json::from_value(json!({"kind": "ocr", "languages": ["xyz"]})).unwrap();
    let refused = librarian::extract::build(&config).err().expect("refused");
    let message = refused.to_string();
    assert!(
        message.contains("cannot load the languages `xyz`")
            && message.contains("tesseract-ocr-<language>"),
        "{message}"
    );
    let config: librarian::extract::ExtractorConfig =
        serde_json::from_value(json!({"kind": "ocr", "psm": 0})).unwrap();
    let refused = librarian::extract::build(&config).err().expect("refused");
    assert_eq!(refused.to_string(), "psm must be one of 3..=13, not 0");
}
