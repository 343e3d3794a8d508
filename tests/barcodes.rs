//! Barcode extraction on generated images: every common format, and the photo troubles the
//! extractor must survive (rotation, scaling, inversion, blur, noise, a code small in a large
//! photo, several codes at once), plus inputs known to hang or panic rxing.

mod common;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{inverted, jpeg, noisy, on_canvas, png, symbol, symbol_with};
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma};
use librarian::extract::{BarcodeExtractor, BarcodeExtractorConfig, Extractor};
use librarian::extract::{analyze, analyze_now};
use librarian::imaging::{DecodePool, ImageError, Pixels, probe};
use librarian_model::Barcode;
use rxing::{BarcodeFormat, EncodeHintValue, EncodeHints};

/// The codes the extractor reads in `image`, handed over as a PNG the way the service gets it.
fn read_with(config: &BarcodeExtractorConfig, image: &GrayImage) -> Vec<Barcode> {
    read_bytes(config, &png(image))
}

fn read_bytes(config: &BarcodeExtractorConfig, bytes: &[u8]) -> Vec<Barcode> {
    let extractor: Arc<dyn Extractor> = Arc::new(BarcodeExtractor::new(config).unwrap());
    let facts = probe(bytes).unwrap();
    analyze_now(bytes, &facts, u64::MAX, &[extractor])
        .unwrap()
        .barcodes
}

fn read(image: &GrayImage) -> Vec<Barcode> {
    read_with(&BarcodeExtractorConfig::default(), image)
}

fn texts(found: &[Barcode]) -> Vec<String> {
    let mut texts: Vec<String> = found
        .iter()
        .map(|b| format!("{} {}", b.format, b.text))
        .collect();
    texts.sort();
    texts
}

fn ean() -> GrayImage {
    symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160)
}

fn qr() -> GrayImage {
    symbol(
        BarcodeFormat::QR_CODE,
        "https://example.org/item/42",
        200,
        200,
    )
}

#[test]
fn reads_every_common_format() {
    let cases = [
        (BarcodeFormat::EAN_13, "4006381333931", 380, 160),
        (BarcodeFormat::EAN_8, "96385074", 300, 160),
        (BarcodeFormat::UPC_A, "036000291452", 380, 160),
        (BarcodeFormat::UPC_E, "01234565", 300, 160),
        (BarcodeFormat::CODE_128, "LIB-2026-0042", 420, 160),
        (BarcodeFormat::CODE_39, "LIBRARIAN", 520, 160),
        (BarcodeFormat::ITF, "00012345678905", 420, 160),
        (BarcodeFormat::QR_CODE, "hello librarian", 200, 200),
        (BarcodeFormat::DATA_MATRIX, "DM 12345", 160, 160),
        (BarcodeFormat::AZTEC, "aztec text", 200, 200),
        (BarcodeFormat::PDF_417, "pdf417 payload", 400, 200),
    ];
    for (format, text, width, height) in cases {
        let found = read(&symbol(format, text, width, height));
        assert_eq!(texts(&found), [format!("{format:?} {text}")], "{format:?}");
    }
}

#[test]
fn reports_kind_and_corner_points() {
    let found = read(&qr());
    assert_eq!(found[0].kind, "uri");
    assert!(found[0].points.len() >= 3);
    let isbn = read(&symbol(BarcodeFormat::EAN_13, "9780306406157", 380, 160));
    assert_eq!(isbn[0].kind, "isbn");
    let product = read(&ean());
    assert_eq!(product[0].kind, "product");
    assert_eq!(product[0].points.len(), 2, "a 1D code has its two ends");
}

#[test]
fn reads_rotated_codes() {
    for rotated in [
        imageops::rotate90(&ean()),
        imageops::rotate180(&ean()),
        imageops::rotate270(&ean()),
    ] {
        assert_eq!(texts(&read(&rotated)), ["EAN_13 5449000000996"]);
    }
    assert_eq!(
        texts(&read(&imageops::rotate90(&qr()))),
        ["QR_CODE https://example.org/item/42"]
    );
}

#[test]
fn reads_scaled_down_codes() {
    let small_ean = imageops::resize(&ean(), 230, 97, FilterType::Triangle);
    assert_eq!(texts(&read(&small_ean)), ["EAN_13 5449000000996"]);
    let small_qr = imageops::resize(&qr(), 110, 110, FilterType::Triangle);
    assert_eq!(
        texts(&read(&small_qr)),
        ["QR_CODE https://example.org/item/42"]
    );
}

#[test]
fn reads_inverted_codes_and_only_when_asked() {
    let light_on_dark = inverted(&qr());
    assert_eq!(
        texts(&read(&light_on_dark)),
        ["QR_CODE https://example.org/item/42"]
    );
    let plain = BarcodeExtractorConfig {
        also_inverted: false,
        ..Default::default()
    };
    assert!(read_with(&plain, &light_on_dark).is_empty());
    assert_eq!(texts(&read(&inverted(&ean()))), ["EAN_13 5449000000996"]);
}

#[test]
fn reads_blurred_and_noisy_codes() {
    assert_eq!(
        texts(&read(&imageops::blur(&ean(), 1.5))),
        ["EAN_13 5449000000996"]
    );
    assert_eq!(
        texts(&read(&imageops::blur(&qr(), 1.5))),
        ["QR_CODE https://example.org/item/42"]
    );
    assert_eq!(texts(&read(&noisy(&ean(), 60))), ["EAN_13 5449000000996"]);
    assert_eq!(
        texts(&read(&noisy(&qr(), 60))),
        ["QR_CODE https://example.org/item/42"]
    );
}

#[test]
fn stops_at_the_first_code_unless_every_code_is_asked_for() {
    let mut both = on_canvas(&ean(), 900, 400, 20, 100);
    imageops::overlay(&mut both, &qr(), 600, 80);
    assert_eq!(read(&both).len(), 1, "the first code ends the search");
    let every = BarcodeExtractorConfig {
        all_codes: true,
        ..Default::default()
    };
    assert_eq!(
        texts(&read_with(&every, &both)),
        [
            "EAN_13 5449000000996",
            "QR_CODE https://example.org/item/42"
        ]
    );
}

/// `ean()` with the lines in `rows` taken from another EAN-13 (4006381333931) drawn alike: one
/// symbol whose lines read two numbers.
fn ean_with_lines_of_another(rows: std::ops::Range<u32>) -> GrayImage {
    let mut code = ean();
    let other = symbol(BarcodeFormat::EAN_13, "4006381333931", 380, 160);
    let lines = imageops::crop_imm(&other, 0, rows.start, other.width(), rows.len() as u32);
    imageops::overlay(&mut code, &lines.to_image(), 0, i64::from(rows.start));
    code
}

#[test]
fn a_product_code_whose_lines_disagree_is_reported_as_a_conflict() {
    // The top half of the bars says one number, the bottom half another: the line read first
    // (the middle one) is contradicted by the lines above it.
    let found = read(&ean_with_lines_of_another(80..160));
    assert_eq!(found.len(), 1, "{found:?}");
    let mut all = found[0].conflicting_texts.clone();
    all.push(found[0].text.clone());
    all.sort();
    assert_eq!(all, ["4006381333931", "5449000000996"], "{found:?}");
    assert_eq!(found[0].gtin(), None, "a disputed read is no GTIN");
}

#[test]
fn a_product_code_misread_on_a_few_lines_is_read_as_nearly_every_line_reads_it() {
    // A strip of five lines through the middle, where the first read is made, says another
    // number (as a scratch or a glint can); the hundred lines around it agree on the code's.
    let scratched = ean_with_lines_of_another(78..83);
    // Upright too, where the lines across the code are the image's columns.
    for image in [imageops::rotate90(&scratched), scratched] {
        let found = read(&image);
        assert_eq!(texts(&found), ["EAN_13 5449000000996"], "{found:?}");
        assert!(found[0].conflicting_texts.is_empty(), "{found:?}");
    }
}

/// `code` with only three rows through its middle left; noise everywhere else but the margins.
fn on_one_line_only(code: &GrayImage) -> GrayImage {
    let middle = code.height() / 2;
    let mut state: u32 = 7;
    GrayImage::from_fn(code.width(), code.height(), |x, y| {
        if y.abs_diff(middle) <= 1 || x < 24 || x + 24 >= code.width() {
            *code.get_pixel(x, y)
        } else {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            image::Luma([if state.is_multiple_of(2) { 0 } else { 255 }])
        }
    })
}

#[test]
fn a_product_code_read_on_a_single_line_only_is_not_trusted() {
    // One clean line through bars that are noise everywhere else: a read no second line can
    // confirm, which is how checksum-valid misreads look.
    let lonely = on_one_line_only(&ean());
    assert!(read(&lonely).is_empty(), "{:?}", read(&lonely));
    assert_eq!(texts(&read(&ean())), ["EAN_13 5449000000996"]);
}

#[test]
fn a_one_character_1d_code_read_on_a_single_line_only_is_not_trusted() {
    // A few stray stripes read as a short Code 39 often enough (in a corner of an Aztec
    // photo, say) that a short 1D read, too, needs a second line.
    let code = symbol(BarcodeFormat::CODE_39, "7", 160, 80);
    let lonely = on_one_line_only(&code);
    assert!(read(&lonely).is_empty(), "{:?}", read(&lonely));
    assert_eq!(texts(&read(&code)), ["CODE_39 7"]);
}

/// A phone photo of an Aztec code from ZXing's black-box tests (tests/fixtures/README.md):
/// rxing's own search misses it (the bullseye is off the image's centre); the search for
/// bullseyes anywhere reads it, in both builds.
#[test]
fn an_aztec_photo_whose_symbol_is_off_centre_is_read() {
    let found = read_bytes(
        &BarcodeExtractorConfig::default(),
        include_bytes!("fixtures/aztec-photo.png"),
    );
    assert_eq!(texts(&found), ["AZTEC mailto:zxing@googlegroups.com"]);
}

#[test]
fn a_code_cropped_without_quiet_zones_is_read() {
    // rxing's 1D readers want white beside the guards; a tight crop has none.
    let code = ean();
    let dark = |x: u32| (0..code.height()).any(|y| code.get_pixel(x, y).0[0] < 128);
    let first = (0..code.width()).find(|&x| dark(x)).unwrap();
    let last = (0..code.width()).rev().find(|&x| dark(x)).unwrap();
    let tight = imageops::crop_imm(&code, first, 0, last + 1 - first, code.height()).to_image();
    let found = read(&tight);
    assert_eq!(texts(&found), ["EAN_13 5449000000996"]);
    for [x, _] in &found[0].points {
        assert!(
            (0.0..tight.width() as f32).contains(x),
            "point x {x} inside the crop"
        );
    }
}

#[test]
fn a_large_photo_is_searched_in_a_shrunk_copy_first_with_points_in_its_own_pixels() {
    let photo = on_canvas(
        &symbol(BarcodeFormat::EAN_13, "5449000000996", 1600, 600),
        4000,
        3000,
        1000,
        1200,
    );
    let bytes = jpeg(&photo);
    let facts = probe(&bytes).unwrap();
    let pixels = Pixels::new(&bytes, &facts, u64::MAX).unwrap();
    let reduced = pixels.reduced(1600).unwrap();
    assert_eq!(reduced.image.dimensions(), (1600, 1200));
    assert_eq!(reduced.scale, 2.5);
    let found = read_bytes(&BarcodeExtractorConfig::default(), &bytes);
    assert_eq!(texts(&found), ["EAN_13 5449000000996"]);
    for [x, _] in &found[0].points {
        assert!(
            (1000.0..2700.0).contains(x),
            "point x {x} lies on the code in the photo's own pixels"
        );
    }
}

#[test]
fn finds_a_small_code_in_a_phone_sized_photo_with_points_in_its_pixels() {
    let photo = on_canvas(&ean(), 4000, 3000, 2600, 1900);
    let found = read(&photo);
    assert_eq!(texts(&found), ["EAN_13 5449000000996"]);
    for [x, y] in &found[0].points {
        assert!(
            (2600.0..3100.0).contains(x) && (1900.0..2150.0).contains(y),
            "point {x},{y} lies on the code in the photo"
        );
    }
}

#[test]
fn a_small_upright_1d_code_in_a_phone_sized_photo_is_read_in_a_larger_copy() {
    // Too small at the first level; in the larger copies only the thorough look turns
    // upright 1D codes, so the copy twice as large gets it too.
    let code = imageops::resize(&ean(), 600, 292, FilterType::Triangle);
    let photo = on_canvas(&imageops::rotate90(&code), 4000, 3000, 2600, 1900);
    assert_eq!(texts(&read(&photo)), ["EAN_13 5449000000996"]);
}

#[test]
fn the_format_filter_leaves_other_codes_out() {
    let mut both = on_canvas(&ean(), 900, 400, 20, 100);
    imageops::overlay(&mut both, &qr(), 600, 80);
    let only_qr = BarcodeExtractorConfig {
        formats: vec![librarian_model::BarcodeFormat::QrCode],
        ..Default::default()
    };
    assert_eq!(
        texts(&read_with(&only_qr, &both)),
        ["QR_CODE https://example.org/item/42"]
    );
}

#[tokio::test]
async fn inputs_that_trouble_rxing_return_within_the_budget_with_no_code() {
    let budget = Duration::from_secs(5);
    let pool = DecodePool::new(NonZeroUsize::new(2).unwrap(), budget, 256 << 20);
    let extractor: Arc<dyn Extractor> =
        Arc::new(BarcodeExtractor::new(&BarcodeExtractorConfig::default()).unwrap());
    let narrow = png(&GrayImage::from_fn(8, 518, |x, y| {
        image::Luma([if (x + y / 3) % 2 == 0 { 0 } else { 255 }])
    }));
    let single = png(&GrayImage::from_pixel(1, 1, image::Luma([0])));
    let random = png(&GrayImage::from_fn(300, 200, |x, y| {
        image::Luma([((x * 7919 + y * 104_729) % 251) as u8])
    }));
    for (name, bytes) in [
        ("8x518", narrow),
        ("1x1", single),
        ("random pixels", random),
    ] {
        let facts = probe(&bytes).unwrap();
        let started = Instant::now();
        let result = analyze(
            &pool,
            bytes.into(),
            facts,
            u64::MAX,
            Arc::from([extractor.clone()]),
        )
        .await;
        assert!(
            started.elapsed() <= budget + Duration::from_secs(1),
            "{name} returned within the budget"
        );
        match result {
            Ok(found) => assert!(found.barcodes.is_empty(), "{name}: no code"),
            Err(e) => assert!(matches!(e, ImageError::Timeout(_)), "{name}: {e}"),
        }
    }
    let empty = probe(&[]);
    assert!(
        matches!(empty, Err(ImageError::UnknownFormat)),
        "an empty body is no image"
    );
}

/// The EAN-13 shrunk to `width` px, on a white margin, under a Gaussian blur of `sigma` px.
fn small_blurred_ean(width: u32, sigma: f32) -> GrayImage {
    let height = width * 160 / 380;
    let small = imageops::resize(&ean(), width, height, FilterType::Triangle);
    imageops::blur(&on_canvas(&small, width + 60, height + 40, 30, 20), sigma)
}

#[test]
fn a_small_blurred_code_is_read_in_a_sharpened_copy() {
    // At 2 to 2.5 px a module, this much blur merges the thin bars for every other attempt.
    for (width, sigma) in [(260, 0.9), (280, 1.0), (320, 1.2)] {
        let photo = small_blurred_ean(width, sigma);
        let found = read(&photo);
        assert_eq!(
            texts(&found),
            ["EAN_13 5449000000996"],
            "{width} px, sigma {sigma}"
        );
        // Points are in the photo's pixels, not the enlarged copy's.
        for [x, y] in &found[0].points {
            assert!(*x < photo.width() as f32 && *y < photo.height() as f32);
        }
    }
}

#[test]
fn a_small_code_blurred_further_is_read_in_a_copy_sharpened_twice() {
    // A blur one unsharp mask leaves merged: 2.1 to 2.5 px a module, sigma 1.15 to 1.5.
    for (width, sigma) in [(270, 1.15), (280, 1.25), (320, 1.5)] {
        let photo = small_blurred_ean(width, sigma);
        assert_eq!(
            texts(&read(&photo)),
            ["EAN_13 5449000000996"],
            "{width} px, sigma {sigma}"
        );
    }
}

#[test]
fn a_dim_code_in_uneven_light_is_read_in_a_contrast_normalized_copy() {
    // Bars and spaces a few grey levels apart, the light falling off across the code: every
    // block looks flat to the local binarizer, and no one threshold fits the whole code.
    for (contrast, falloff) in [(14.0, 0.5), (18.0, 0.6), (22.0, 0.7)] {
        let code = on_canvas(&ean(), 440, 200, 30, 20);
        let photo = GrayImage::from_fn(440, 200, |x, y| {
            let ink = 1.0 - f32::from(code[(x, y)][0]) / 255.0;
            let light = 1.0 - falloff * x as f32 / 440.0;
            Luma([((200.0 - contrast * ink) * light) as u8])
        });
        assert_eq!(
            texts(&read(&photo)),
            ["EAN_13 5449000000996"],
            "contrast {contrast}, falloff {falloff}"
        );
    }
}

#[test]
fn code_39_in_full_ascii_mode_is_reported_as_the_text_it_holds() {
    // The writer encodes lower case as shift pairs (`+S+H…`).
    let code = symbol(BarcodeFormat::CODE_39, "Shelf 12a", 640, 160);
    assert_eq!(texts(&read(&code)), ["CODE_39 Shelf 12a"]);
}

#[test]
fn what_a_full_ascii_code_39_means_is_read_from_its_content() {
    let code = symbol(BarcodeFormat::CODE_39, "http://ab.cd/x", 900, 160);
    let found = read(&code);
    assert_eq!(texts(&found), ["CODE_39 http://ab.cd/x"]);
    assert_eq!(found[0].kind, "uri", "not the text of the raw shift pairs");
}

#[test]
fn plain_code_39_with_a_lone_shift_character_keeps_its_text() {
    let code = symbol(BarcodeFormat::CODE_39, "50% OFF/2", 640, 160);
    assert_eq!(texts(&read(&code)), ["CODE_39 50% OFF/2"]);
}

#[test]
fn gs1_data_matrix_is_flagged_and_keeps_its_separators() {
    // A batch (AI 10, variable length, so ended by a separator), then a GTIN (AI 01).
    let content = "10ABC123\u{1d}0108903819987659";
    let hints = EncodeHints::default()
        .with(EncodeHintValue::DataMatrixCompact(true))
        .with(EncodeHintValue::Gs1Format(true));
    let code = symbol_with(BarcodeFormat::DATA_MATRIX, content, 160, 160, &hints);
    let found = read(&code);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].text.as_str(), found[0].gs1), (content, true));
}

#[test]
fn a_code_without_gs1_is_not_flagged() {
    let found = read(&symbol(BarcodeFormat::DATA_MATRIX, "10ABC123", 160, 160));
    assert_eq!((found[0].text.as_str(), found[0].gs1), ("10ABC123", false));
    let json = serde_json::to_value(&found[0]).unwrap();
    assert!(
        json.get("gs1").is_none(),
        "the flag is left out when false: {json}"
    );
}

/// A generator of images that hold no product code: noise, stripes, text-like marks, and
/// symbols of the other formats with random content, turned and noisy.
fn no_product_code(seed: u64, count: usize) -> Vec<(String, GrayImage)> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let others = [
        (BarcodeFormat::QR_CODE, 200, 200),
        (BarcodeFormat::DATA_MATRIX, 160, 160),
        (BarcodeFormat::AZTEC, 200, 200),
        (BarcodeFormat::PDF_417, 400, 200),
        (BarcodeFormat::CODE_128, 420, 160),
        (BarcodeFormat::CODE_39, 520, 160),
    ];
    (0..count)
        .map(|i| {
            let pick = next() as usize;
            let image = match pick % 4 {
                0 => {
                    // Vertical stripes of random widths: bars with no code in them.
                    let widths: Vec<u32> = (0..60).map(|_| 1 + (next() % 6) as u32).collect();
                    GrayImage::from_fn(480, 240, |x, _| {
                        let mut edge = 0;
                        let bar = widths.iter().position(|w| {
                            edge += w;
                            x < edge
                        });
                        Luma([if bar.unwrap_or(0) % 2 == 0 { 20 } else { 235 }])
                    })
                }
                1 => noisy(&GrayImage::from_pixel(400, 300, Luma([128])), 120),
                _ => {
                    let (format, width, height) = others[(next() % others.len() as u64) as usize];
                    let text = format!("{:X}", next() % 1_000_000_000);
                    let drawn = symbol(format, &text, width, height);
                    let drawn = if next() % 2 == 0 {
                        imageops::rotate90(&drawn)
                    } else {
                        drawn
                    };
                    noisy(&drawn, 12)
                }
            };
            (format!("seed {seed} image {i}"), image)
        })
        .collect()
}

#[test]
fn images_without_a_product_code_never_report_one() {
    // Product codes and GS1 DataBar: what a GTIN check would take for a product.
    let product = [
        librarian_model::BarcodeFormat::Ean13,
        librarian_model::BarcodeFormat::Ean8,
        librarian_model::BarcodeFormat::UpcA,
        librarian_model::BarcodeFormat::UpcE,
        librarian_model::BarcodeFormat::Rss14,
        librarian_model::BarcodeFormat::RssExpanded,
    ];
    let every_code = BarcodeExtractorConfig {
        all_codes: true,
        also_inverted: true,
        ..BarcodeExtractorConfig::default()
    };
    for (name, image) in no_product_code(0x5eed_2026, 16) {
        let found = read_with(&every_code, &image);
        // A code whose lines disagree comes with its conflicting texts and is no GTIN to any
        // check (see "Product codes need two lines"); a trusted one here is a false read.
        let false_reads: Vec<_> = found
            .iter()
            .filter(|b| product.contains(&b.format) && b.conflicting_texts.is_empty())
            .collect();
        assert!(false_reads.is_empty(), "{name}: {false_reads:?}");
    }
}

#[test]
fn gs1_code_128_keeps_its_fnc1_separators_and_is_flagged() {
    // rxing's Code 128 writer takes `ñ` for FNC1: first position (GS1), then a separator.
    let written = "\u{f1}10ABC123\u{f1}0108903819987659";
    let found = read(&symbol(BarcodeFormat::CODE_128, written, 640, 160));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].text.as_str(), found[0].gs1),
        ("10ABC123\u{1d}0108903819987659", true)
    );
}

#[test]
fn utf8_text_is_read_as_written_with_or_without_an_eci() {
    // rxing writes an ECI into QR, Aztec and PDF417, none into DataMatrix (UTF-8 bytes alone).
    let text = "Grüße aus Köln, 東京 ½";
    for (format, width, height) in [
        (BarcodeFormat::QR_CODE, 240, 240),
        (BarcodeFormat::DATA_MATRIX, 240, 240),
        (BarcodeFormat::AZTEC, 240, 240),
        (BarcodeFormat::PDF_417, 600, 240),
    ] {
        let hints = EncodeHints::default()
            .with(EncodeHintValue::CharacterSet("UTF-8".to_owned()))
            .with(EncodeHintValue::DataMatrixCompact(true));
        let found = read(&symbol_with(format, text, width, height, &hints));
        let read: Vec<&str> = found.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(read, [text], "{format}");
    }
}

/// A QR Code holding `text` as part `index` (from 0) of `total` of a structured-append
/// sequence with this parity byte. rxing's writer makes no such symbol, so its encoder's
/// steps are run by hand: the sequence header before the data.
fn qr_in_sequence(text: &str, index: usize, total: usize, parity: usize) -> GrayImage {
    use rxing::common::BitArray;
    use rxing::common::cpp_essentials::ByteMatrix;
    use rxing::qrcode::common::{ErrorCorrectionLevel, Mode, Version};
    use rxing::qrcode::encoder::{matrix_util, qrcode_encoder as encoder};
    let version = Version::getVersionForNumber(4).unwrap();
    let level = ErrorCorrectionLevel::M;
    let mut bits = BitArray::new();
    encoder::appendModeInfo(Mode::STRUCTURED_APPEND, &mut bits).unwrap();
    for (value, width) in [(index, 4), (total - 1, 4), (parity, 8)] {
        bits.appendBits(value, width).unwrap();
    }
    encoder::appendModeInfo(Mode::BYTE, &mut bits).unwrap();
    encoder::appendLengthInfo(text.len() as u32, version, Mode::BYTE, &mut bits).unwrap();
    for byte in text.bytes() {
        bits.appendBits(usize::from(byte), 8).unwrap();
    }
    let blocks = version.getECBlocksForLevel(level);
    let data_bytes = version.getTotalCodewords() - blocks.getTotalECCodewords();
    encoder::terminateBits(data_bytes, &mut bits).unwrap();
    let total_bytes = version.getTotalCodewords();
    let interleaved =
        encoder::interleaveWithECBytes(&bits, total_bytes, data_bytes, blocks.getNumBlocks())
            .unwrap();
    let side = version.getDimensionForVersion();
    let mut matrix = ByteMatrix::new(side, side);
    matrix_util::buildMatrix(&interleaved, &level, version, 2, &mut matrix).unwrap();
    let (module, quiet) = (6, 4);
    GrayImage::from_fn(
        (side + 2 * quiet) * module,
        (side + 2 * quiet) * module,
        |x, y| {
            let (mx, my) = (x / module, y / module);
            let inside = (quiet..quiet + side).contains(&mx) && (quiet..quiet + side).contains(&my);
            let dark = inside && matrix.get(mx - quiet, my - quiet) == 1;
            Luma([if dark { 0 } else { 255 }])
        },
    )
}

#[test]
fn a_qr_code_in_a_structured_append_sequence_reports_its_place_apart_from_its_text() {
    let found = read(&qr_in_sequence("second part", 1, 3, 0xa7));
    assert_eq!(texts(&found), ["QR_CODE second part"]);
    let place = found[0].sequence.as_ref().expect("a place in the sequence");
    assert_eq!((place.position, place.total), (2, 3));
    let json = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(json["sequence"]["position"], 2);
    let alone = read(&qr());
    assert!(alone[0].sequence.is_none(), "{:?}", alone[0].sequence);
    let json = serde_json::to_value(&alone[0]).unwrap();
    assert!(
        json.get("sequence").is_none(),
        "left out when there is none"
    );
}

#[test]
fn databar_is_read_as_its_gs1_element_strings() {
    for (fixture, format, content) in [
        (
            &include_bytes!("fixtures/databar.png")[..],
            librarian_model::BarcodeFormat::Rss14,
            "0109501101530003",
        ),
        (
            &include_bytes!("fixtures/databar-expanded.png")[..],
            librarian_model::BarcodeFormat::RssExpanded,
            "0198898765432106320201234515991231",
        ),
    ] {
        let found = read_bytes(&BarcodeExtractorConfig::default(), fixture);
        assert_eq!(found.len(), 1, "{format}: {found:?}");
        let code = &found[0];
        assert_eq!(
            (code.format, code.text.as_str(), code.gs1),
            (format, content, true)
        );
    }
}

#[test]
fn a_databar_read_on_a_single_line_only_is_not_trusted() {
    let expanded = image::load_from_memory(include_bytes!("fixtures/databar-expanded.png"))
        .unwrap()
        .into_luma8();
    let found = read(&on_one_line_only(&expanded));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn code_32_is_read_as_its_pharmacode_only_when_asked() {
    // The pharmacode 012345676 written as Code 32: Code 39 of its base-32 digits.
    let code = symbol(BarcodeFormat::CODE_39, "0CSSBD", 420, 160);
    assert_eq!(texts(&read(&code)), ["CODE_39 0CSSBD"], "off by default");
    let asked = BarcodeExtractorConfig {
        code32: true,
        ..BarcodeExtractorConfig::default()
    };
    let found = read_with(&asked, &code);
    assert_eq!(texts(&found), ["CODE_39 012345676"]);
    assert_eq!(found[0].kind, "pharmacode");
    let not_a_pharmacode = symbol(BarcodeFormat::CODE_39, "0CSSBF", 420, 160);
    assert_eq!(
        texts(&read_with(&asked, &not_a_pharmacode)),
        ["CODE_39 0CSSBF"]
    );
}
