//! Barcode extraction with rxing: every code in the image, with corner points in the
//! original image's pixels. Large photos are read at a reduced size first, and at full size
//! only when nothing was found.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::GrayImage;
use image::imageops::FilterType;
use librarian_model::Barcode;
use rxing::client::result::{ParsedRXingResult, ParsedRXingResultType, parseRXingResult};
use rxing::common::{GlobalHistogramBinarizer, HybridBinarizer};
use rxing::multi::{GenericMultipleBarcodeReader, MultipleBarcodeReader};
use rxing::{
    BarcodeFormat, BinaryBitmap, DecodeHints, Luma8Source, MultiUseMultiFormatReader, RXingResult,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BuildError, Extracted, Extractor};

/// Formats read when none are named. MaxiCode is left out: rxing's MaxiCode reader can loop
/// forever on narrow images, so it must be asked for by name.
const DEFAULT_FORMATS: [BarcodeFormat; 16] = [
    BarcodeFormat::AZTEC,
    BarcodeFormat::CODABAR,
    BarcodeFormat::CODE_39,
    BarcodeFormat::CODE_93,
    BarcodeFormat::CODE_128,
    BarcodeFormat::DATA_MATRIX,
    BarcodeFormat::EAN_8,
    BarcodeFormat::EAN_13,
    BarcodeFormat::ITF,
    BarcodeFormat::PDF_417,
    BarcodeFormat::QR_CODE,
    BarcodeFormat::MICRO_QR_CODE,
    BarcodeFormat::RSS_14,
    BarcodeFormat::RSS_EXPANDED,
    BarcodeFormat::UPC_A,
    BarcodeFormat::UPC_E,
];

/// Reads every barcode in the image with rxing.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BarcodeExtractorConfig {
    /// Formats to look for, by rxing name (`EAN_13`, `QR_CODE`, …); empty means every format
    /// rxing reads except MaxiCode. Fewer formats read faster.
    #[serde(default)]
    pub formats: Vec<String>,
    /// Longest side, in pixels, of the copy a large photo is first searched in.
    #[serde(default = "default_detect_max_side")]
    pub detect_max_side: u32,
    /// Search harder (more rows, rotated 1D codes): slower, finds more.
    #[serde(default = "yes")]
    pub try_harder: bool,
    /// Also look for light codes on a dark background.
    #[serde(default = "yes")]
    pub also_inverted: bool,
}

fn default_detect_max_side() -> u32 {
    1600
}
fn yes() -> bool {
    true
}

impl Default for BarcodeExtractorConfig {
    fn default() -> Self {
        Self {
            formats: Vec::new(),
            detect_max_side: default_detect_max_side(),
            try_harder: true,
            also_inverted: true,
        }
    }
}

pub struct BarcodeExtractor {
    formats: HashSet<BarcodeFormat>,
    detect_max_side: u32,
    try_harder: bool,
    also_inverted: bool,
}

impl BarcodeExtractor {
    pub fn new(config: &BarcodeExtractorConfig) -> Result<Self, BuildError> {
        let formats = if config.formats.is_empty() {
            DEFAULT_FORMATS.into_iter().collect()
        } else {
            config
                .formats
                .iter()
                .map(|name| parse_format(name))
                .collect::<Result<_, _>>()?
        };
        if config.detect_max_side < 64 {
            return Err(BuildError("detect_max_side must be at least 64".into()));
        }
        Ok(Self {
            formats,
            detect_max_side: config.detect_max_side,
            try_harder: config.try_harder,
            also_inverted: config.also_inverted,
        })
    }

    fn hints(&self) -> DecodeHints {
        DecodeHints {
            TryHarder: Some(self.try_harder),
            AlsoInverted: Some(self.also_inverted),
            PossibleFormats: Some(self.formats.clone()),
            ..Default::default()
        }
    }

    /// Every code rxing finds in `image`, points multiplied by `scale`.
    /// Every code rxing finds in `image`, points multiplied by `scale`. The local (hybrid)
    /// binarizer suits uneven light; when it finds nothing, the global histogram one is
    /// tried, which keeps the bars of a blurred 1D code apart better, and last a slightly
    /// smoothed copy, which sensor noise no longer breaks into false edges.
    fn read(&self, image: &GrayImage, scale: f32) -> Vec<Barcode> {
        let mut found = self.read_binarized(image, scale, false);
        if found.is_empty() {
            found = self.read_binarized(image, scale, true);
        }
        if found.is_empty() {
            found = self.read_binarized(&image::imageops::blur(image, 1.0), scale, false);
        }
        found
    }

    fn read_binarized(&self, image: &GrayImage, scale: f32, global: bool) -> Vec<Barcode> {
        let (width, height) = image.dimensions();
        if width == 0 || height == 0 {
            return Vec::new();
        }
        let hints = self.hints();
        // rxing can panic on unusual inputs; a panic costs this read, never the worker.
        let results = catch_unwind(AssertUnwindSafe(|| {
            let source = Luma8Source::new_with_slice(image.as_raw(), width, height)?;
            let mut reader =
                GenericMultipleBarcodeReader::new(MultiUseMultiFormatReader::default());
            if global {
                let mut bitmap = BinaryBitmap::new(GlobalHistogramBinarizer::new(source));
                reader.decode_multiple_with_hints(&mut bitmap, &hints)
            } else {
                let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
                reader.decode_multiple_with_hints(&mut bitmap, &hints)
            }
        }));
        match results {
            Ok(Ok(found)) => found.iter().map(|r| to_barcode(r, scale)).collect(),
            Ok(Err(_not_found)) => Vec::new(),
            Err(_) => {
                tracing::warn!(
                    width,
                    height,
                    "rxing panicked; no barcode read from this image"
                );
                Vec::new()
            }
        }
    }
}

impl Extractor for BarcodeExtractor {
    fn extract(&self, image: &GrayImage, found: &mut Extracted) {
        let (width, height) = image.dimensions();
        let longest = width.max(height);
        let mut codes = Vec::new();
        if longest > self.detect_max_side {
            let scale = self.detect_max_side as f32 / longest as f32;
            let small = image::imageops::resize(
                image,
                ((width as f32 * scale).round() as u32).max(1),
                ((height as f32 * scale).round() as u32).max(1),
                FilterType::Triangle,
            );
            codes = self.read(&small, 1.0 / scale);
        }
        if codes.is_empty() {
            codes = self.read(image, 1.0);
        }
        let mut seen = HashSet::new();
        codes.retain(|c| seen.insert((c.format.clone(), c.text.clone())));
        found.barcodes.extend(codes);
    }
}

/// Parses a format name as the config and the API write it: `EAN_13`, `QR_CODE`, …
pub fn parse_format(name: &str) -> Result<BarcodeFormat, BuildError> {
    match BarcodeFormat::from(name.to_ascii_lowercase().as_str()) {
        BarcodeFormat::UNSUPORTED_FORMAT => Err(BuildError(format!(
            "unknown barcode format `{name}`; known: {}",
            DEFAULT_FORMATS
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ")
                + ", MAXICODE"
        ))),
        format => Ok(format),
    }
}

/// What the text means, by rxing's result parser. The parser panics on some texts (it mixes
/// byte and character offsets on non-ASCII vCard-like fields); such a text is plain `text`.
fn kind(result: &RXingResult) -> &'static str {
    let Ok(parsed) = catch_unwind(AssertUnwindSafe(|| parseRXingResult(result).getType())) else {
        return "text";
    };
    match parsed {
        ParsedRXingResultType::Addressbook => "contact",
        ParsedRXingResultType::EmailAddress => "email",
        ParsedRXingResultType::Product => "product",
        ParsedRXingResultType::Uri => "uri",
        ParsedRXingResultType::Text => "text",
        ParsedRXingResultType::Geo => "geo",
        ParsedRXingResultType::Tel => "tel",
        ParsedRXingResultType::Sms => "sms",
        ParsedRXingResultType::Calendar => "calendar",
        ParsedRXingResultType::Wifi => "wifi",
        ParsedRXingResultType::Isbn => "isbn",
        ParsedRXingResultType::Vin => "vin",
        ParsedRXingResultType::Other => "other",
    }
}

fn to_barcode(result: &RXingResult, scale: f32) -> Barcode {
    Barcode {
        text: result.getText().to_owned(),
        format: format!("{:?}", result.getBarcodeFormat()),
        kind: kind(result).to_owned(),
        points: result
            .getPoints()
            .iter()
            .map(|p| [p.x * scale, p.y * scale])
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(text: &str, format: BarcodeFormat) -> RXingResult {
        RXingResult::new(text, text.as_bytes().to_vec(), Vec::new(), format)
    }

    #[test]
    fn a_text_that_panics_the_result_parser_is_plain_text() {
        let panicking = result(
            "MECARD:N:\u{f6}\u{f6}\u{f6}\u{f6}\u{f6}\u{f6}\u{f6}\u{f6};",
            BarcodeFormat::QR_CODE,
        );
        assert!(
            catch_unwind(AssertUnwindSafe(|| parseRXingResult(&panicking))).is_err(),
            "rxing still panics here"
        );
        assert_eq!(kind(&panicking), "text");
        assert_eq!(
            kind(&result("MECARD:N:Jorg;TEL:123;;", BarcodeFormat::QR_CODE)),
            "contact"
        );
    }
}
