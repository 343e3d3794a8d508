//! Barcode extraction with rxing: the first code (or every code) in the image, with corner
//! points in the original image's pixels. Large photos are searched in a shrunk copy first,
//! then in larger ones up to full size, only as long as nothing was found.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{GrayImage, imageops};
use librarian_model::{Barcode, BarcodeFormat as Format};
use rxing::client::result::{ParsedRXingResult, ParsedRXingResultType, parseRXingResult};
use rxing::common::{GlobalHistogramBinarizer, HybridBinarizer};
use rxing::multi::{GenericMultipleBarcodeReader, MultipleBarcodeReader};
use rxing::{
    BarcodeFormat, BinaryBitmap, DecodeHints, Luma8Source, MultiUseMultiFormatReader, RXingResult,
    Reader,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod aztec;
mod confirm;
mod content;
mod copies;
mod gs1;
#[cfg(feature = "zxing-cpp")]
mod second_engine;
mod vote;

use super::{BuildError, Extracted, Extractor};
use crate::imaging::{ImageError, Pixels};

/// Librarian's name of each format and rxing's: the one place they meet.
const RXING: [(Format, BarcodeFormat); 21] = [
    (Format::Aztec, BarcodeFormat::AZTEC),
    (Format::Codabar, BarcodeFormat::CODABAR),
    (Format::Code39, BarcodeFormat::CODE_39),
    (Format::Code93, BarcodeFormat::CODE_93),
    (Format::Code128, BarcodeFormat::CODE_128),
    (Format::DataMatrix, BarcodeFormat::DATA_MATRIX),
    (Format::DxFilmEdge, BarcodeFormat::DXFilmEdge),
    (Format::Ean8, BarcodeFormat::EAN_8),
    (Format::Ean13, BarcodeFormat::EAN_13),
    (Format::Itf, BarcodeFormat::ITF),
    (Format::Maxicode, BarcodeFormat::MAXICODE),
    (Format::MicroQrCode, BarcodeFormat::MICRO_QR_CODE),
    (Format::Pdf417, BarcodeFormat::PDF_417),
    (Format::QrCode, BarcodeFormat::QR_CODE),
    (
        Format::RectangularMicroQrCode,
        BarcodeFormat::RECTANGULAR_MICRO_QR_CODE,
    ),
    (Format::Rss14, BarcodeFormat::RSS_14),
    (Format::RssExpanded, BarcodeFormat::RSS_EXPANDED),
    (Format::Telepen, BarcodeFormat::TELEPEN),
    (Format::UpcA, BarcodeFormat::UPC_A),
    (Format::UpcE, BarcodeFormat::UPC_E),
    (Format::UpcEanExtension, BarcodeFormat::UPC_EAN_EXTENSION),
];

fn to_rxing(format: Format) -> BarcodeFormat {
    RXING
        .iter()
        .find(|(ours, _)| *ours == format)
        .map(|(_, theirs)| *theirs)
        .expect("every format has an rxing name")
}

fn from_rxing(format: BarcodeFormat) -> Option<Format> {
    RXING
        .iter()
        .find(|(_, theirs)| *theirs == format)
        .map(|(ours, _)| *ours)
}

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

/// Sigma, in the first copy's pixels, of the neighbourhood whose contrast a normalized copy
/// evens out: wider than several bars, narrower than a shadow's edge.
const NORMALIZING_SIGMA: f32 = 16.0;

/// Sigma of the slightly smoothed copy, in pixels: enough to merge sensor noise, too little
/// to merge bars.
const SMOOTHING_SIGMA: f32 = 1.0;

/// Reads every barcode in the image with rxing.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BarcodeExtractorConfig {
    /// Formats to look for (`EAN_13`, `QR_CODE`, …); empty means every format rxing reads
    /// except MaxiCode. Fewer formats read faster.
    #[serde(default)]
    pub formats: Vec<Format>,
    /// Longest side, in pixels, of the copy a large photo is first searched in (thoroughly);
    /// copies twice as large, up to full size, are searched more quickly after it.
    #[serde(default = "default_detect_max_side")]
    pub detect_max_side: u32,
    /// Search harder (more rows, rotated 1D codes): slower, finds more.
    #[serde(default = "yes")]
    pub try_harder: bool,
    /// Also look for light codes on a dark background.
    #[serde(default = "yes")]
    pub also_inverted: bool,
    /// Read every code in the image instead of stopping at the first: about twice as slow.
    #[serde(default)]
    pub all_codes: bool,
    /// Read a 6-character Code 39 whose text is an Italian pharmacode (Code 32: base 32, a
    /// valid check digit) as its 9 digits, `kind` `pharmacode`. Off by default: one in ten
    /// such texts of other Code 39 symbols would pass for one.
    #[serde(default)]
    pub code32: bool,
}

fn default_detect_max_side() -> u32 {
    800
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
            all_codes: false,
            code32: false,
        }
    }
}

pub struct BarcodeExtractor {
    hints: DecodeHints,
    detect_max_side: u32,
    try_harder: bool,
    all_codes: bool,
    code32: bool,
    #[cfg(feature = "zxing-cpp")]
    second_engine: second_engine::SecondEngine,
}

/// Below this, the detection copy is too small to find a symbol in.
pub(super) const MIN_DETECT_SIDE: u32 = 64;

impl BarcodeExtractor {
    pub fn new(config: &BarcodeExtractorConfig) -> Result<Self, BuildError> {
        let formats: HashSet<BarcodeFormat> = if config.formats.is_empty() {
            DEFAULT_FORMATS.into_iter().collect()
        } else {
            config.formats.iter().map(|f| to_rxing(*f)).collect()
        };
        if config.detect_max_side < MIN_DETECT_SIDE {
            return Err(BuildError::DetectMaxSideTooSmall(config.detect_max_side));
        }
        Ok(Self {
            #[cfg(feature = "zxing-cpp")]
            second_engine: second_engine::SecondEngine::new(
                &formats,
                config.try_harder,
                config.also_inverted,
                config.all_codes,
            ),
            hints: DecodeHints {
                AlsoInverted: Some(config.also_inverted),
                PossibleFormats: Some(formats),
                // Code 128's separators (FNC1 after the first position) kept as group
                // separators, as the 2D readers keep them; otherwise rxing drops them.
                AssumeGs1: Some(true),
                ..Default::default()
            },
            detect_max_side: config.detect_max_side,
            try_harder: config.try_harder,
            all_codes: config.all_codes,
            code32: config.code32,
        })
    }

    /// The codes in `image`, points multiplied by `scale`, by the first of these that reads
    /// any: a quick look (few rows, local binarizer); a thorough one (every row, rotated 1D
    /// codes); the global histogram binarizer, which keeps the bars of a blurred 1D code apart
    /// better; a slightly smoothed copy, which sensor noise no longer breaks into false
    /// edges; a copy with white margins, for a tight crop; a sharpened copy, for a blurred
    /// photo; that copy with its contrast normalized, for a code in shadow or glare; and that
    /// copy sharpened again, for a blur one pass leaves merged. `look` says how many of these
    /// run.
    fn read(&self, image: &GrayImage, scale: f32, look: Look) -> Vec<Barcode> {
        let thorough = look == Look::Thorough;
        let attempts = [
            (Binarizer::Hybrid, false),
            (Binarizer::Hybrid, true),
            (Binarizer::Global, true),
        ];
        // Reads no second line confirmed; two attempts that agree confirm each other.
        let mut unconfirmed = Vec::new();
        for (binarizer, harder) in attempts {
            let skipped = (harder && (!self.try_harder || look == Look::Quick))
                || (binarizer == Binarizer::Global && !thorough);
            if skipped {
                continue;
            }
            let found = self.read_checked(image, scale, 0.0, binarizer, harder, &mut unconfirmed);
            if !found.is_empty() {
                return found;
            }
        }
        let found = self.read_aztec_anywhere(image, scale);
        if !found.is_empty() || !thorough {
            return found;
        }
        let smoothed = imageops::blur(image, SMOOTHING_SIGMA);
        let (hybrid, harder) = (Binarizer::Hybrid, self.try_harder);
        let reach = 3.0 * SMOOTHING_SIGMA;
        let found = self.read_checked(&smoothed, scale, reach, hybrid, harder, &mut unconfirmed);
        if !found.is_empty() {
            return found;
        }
        let (padded, margin) = copies::with_white_margins(image);
        let mut found = self.read_checked(&padded, scale, 0.0, hybrid, harder, &mut unconfirmed);
        for code in &mut found {
            for point in &mut code.points {
                point[0] -= margin as f32 * scale;
            }
        }
        if !found.is_empty() {
            return found;
        }
        let (sharp, factor, reach) = copies::sharpened(image);
        let scale = scale / factor as f32;
        let found = self.read_checked(&sharp, scale, reach, hybrid, harder, &mut unconfirmed);
        if !found.is_empty() {
            return found;
        }
        let sigma = NORMALIZING_SIGMA * factor as f32;
        let normalized = copies::contrast_normalized(&sharp, sigma);
        let found = self.read_checked(&normalized, scale, reach, hybrid, harder, &mut unconfirmed);
        if !found.is_empty() {
            return found;
        }
        let (sharper, reach) = copies::sharpened_again(&sharp, factor, reach);
        self.read_checked(&sharper, scale, reach, hybrid, harder, &mut unconfirmed)
    }

    /// The codes one attempt reads; a product code (or a very short 1D code) only when
    /// another scan line, or an earlier attempt, read the same. When another line reads
    /// another number, the lines across the code vote, and short of a landslide the code is
    /// reported with the conflicting numbers. `reach`: how many rows away a
    /// filter has carried each line's content, so that lines closer than that cannot confirm
    /// each other.
    fn read_checked(
        &self,
        image: &GrayImage,
        scale: f32,
        reach: f32,
        binarizer: Binarizer,
        try_harder: bool,
        unconfirmed: &mut Vec<confirm::LineRead>,
    ) -> Vec<Barcode> {
        let hints = DecodeHints {
            TryHarder: Some(try_harder),
            ..self.hints.clone()
        };
        let mut codes = Vec::new();
        for result in self.read_binarized(image, binarizer, &hints, self.all_codes) {
            if confirm::has_too_many_bars(image, &result) {
                continue;
            }
            let Some(mut code) = to_barcode(&result, scale) else {
                continue;
            };
            if confirm::needs_second_line(&result) {
                let read = confirm::LineRead::of(&result, scale, reach);
                match confirm::other_lines(self, image, &result, reach) {
                    Some(others) if others.is_empty() => {}
                    Some(others) => match vote::landslide(self, image, &result) {
                        // Its own kind too: the winner of a dispute over an EAN-13's
                        // prefix can be an ISBN where the first read was not.
                        Some(winner) => {
                            code.text = winner.clone();
                            code.kind = kind(&with_text(&result, &winner)).to_owned();
                        }
                        None => code.conflicting_texts = others,
                    },
                    None if unconfirmed.iter().any(|r| read.confirms(r)) => {}
                    None => {
                        unconfirmed.push(read);
                        continue;
                    }
                }
            }
            codes.push(code);
        }
        codes
    }

    /// Aztec symbols away from the image's centre, where rxing's own search does not reach:
    /// an upright copy of the photo around each bullseye found, read for Aztec only.
    fn read_aztec_anywhere(&self, image: &GrayImage, scale: f32) -> Vec<Barcode> {
        let wanted = self.hints.PossibleFormats.as_ref();
        if !wanted.is_some_and(|formats| formats.contains(&BarcodeFormat::AZTEC)) {
            return Vec::new();
        }
        let hints = DecodeHints {
            PossibleFormats: Some(HashSet::from([BarcodeFormat::AZTEC])),
            ..self.hints.clone()
        };
        let (width, height) = image.dimensions();
        // The bullseye search and the ring tracing are rxing's code too: a panic costs the
        // Aztec search, not the read.
        let found = catch_unwind(AssertUnwindSafe(|| {
            let Ok(source) = Luma8Source::new_with_slice(image.as_raw(), width, height) else {
                return Vec::new();
            };
            let bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
            let matrix = bitmap.get_black_matrix();
            for bullseye in aztec::bullseyes(matrix) {
                let Some(upright) = aztec::Upright::of(image, matrix, &bullseye) else {
                    continue;
                };
                let results = self.read_binarized(&upright.image, Binarizer::Hybrid, &hints, false);
                let mut codes: Vec<Barcode> = results
                    .iter()
                    .filter_map(|result| to_barcode(result, 1.0))
                    .collect();
                for point in codes.iter_mut().flat_map(|code| code.points.iter_mut()) {
                    *point = upright.to_photo(*point).map(|v| v * scale);
                }
                if !codes.is_empty() {
                    return codes;
                }
            }
            Vec::new()
        }));
        found.unwrap_or_else(|_| {
            tracing::warn!(
                width,
                height,
                "rxing panicked; no Aztec symbol read from this image"
            );
            Vec::new()
        })
    }

    fn read_binarized(
        &self,
        image: &GrayImage,
        binarizer: Binarizer,
        hints: &DecodeHints,
        all_codes: bool,
    ) -> Vec<RXingResult> {
        let (width, height) = image.dimensions();
        if width == 0 || height == 0 {
            return Vec::new();
        }
        // rxing can panic on unusual inputs; a panic costs this read, never the worker.
        let results = catch_unwind(AssertUnwindSafe(|| {
            let source = Luma8Source::new_with_slice(image.as_raw(), width, height)?;
            match binarizer {
                Binarizer::Hybrid => decode(
                    &mut BinaryBitmap::new(HybridBinarizer::new(source)),
                    hints,
                    all_codes,
                ),
                Binarizer::Global => decode(
                    &mut BinaryBitmap::new(GlobalHistogramBinarizer::new(source)),
                    hints,
                    all_codes,
                ),
            }
        }));
        match results {
            Ok(Ok(found)) => found,
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

/// One code, or with `all_codes` every code: rxing's multiple reader searches the surroundings
/// of each code found again, which costs about twice a single read.
fn decode<B: rxing::Binarizer>(
    bitmap: &mut BinaryBitmap<B>,
    hints: &DecodeHints,
    all_codes: bool,
) -> Result<Vec<RXingResult>, rxing::Exceptions> {
    let mut reader = MultiUseMultiFormatReader::default();
    if all_codes {
        GenericMultipleBarcodeReader::new(reader).decode_multiple_with_hints(bitmap, hints)
    } else {
        reader.decode_with_hints(bitmap, hints).map(|r| vec![r])
    }
}

/// How hard one copy of the photo is searched.
#[derive(Clone, Copy, PartialEq)]
enum Look {
    /// Every attempt: the first copy, where blur and noise matter least.
    Thorough,
    /// The quick and the thorough look: the copy twice as large.
    QuickAndThorough,
    /// The quick look: larger copies, where a thorough look costs most of a second and, on
    /// the phone photos, found nothing the copy twice as large had not.
    Quick,
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Binarizer {
    Hybrid,
    Global,
}

impl Extractor for BarcodeExtractor {
    /// A large photo is searched at `detect_max_side` with every attempt, then at twice that
    /// size and so on up to full size with fewer (see `Look`), for codes too small in the
    /// frame to survive shrinking.
    fn extract(&self, pixels: &Pixels<'_>, found: &mut Extracted) -> Result<(), ImageError> {
        let facts = pixels.facts();
        let longest = facts.width.max(facts.height);
        let first = self.detect_max_side.min(longest);
        let mut side = first;
        let mut codes = loop {
            let level = pixels.reduced(side)?;
            let look = if side == first {
                Look::Thorough
            } else if side <= first.saturating_mul(2) {
                Look::QuickAndThorough
            } else {
                Look::Quick
            };
            let codes = self.read(&level.image, level.scale, look);
            if !codes.is_empty() || side >= longest {
                break codes;
            }
            side = side.saturating_mul(2).min(longest);
        };
        // Not asked to settle a dispute: of the corpus's disputed reads, zxing-cpp agrees with
        // the right line on upca-1/4 but repeats rxing's misread of a damaged UPC-E on upce-2/14.
        #[cfg(feature = "zxing-cpp")]
        if codes.is_empty() {
            let second = self.second_engine.read(pixels.full()?);
            codes = second
                .into_iter()
                .filter_map(|read| {
                    let code = to_barcode(&read.result, 1.0)?;
                    Some(Barcode {
                        sequence: read.sequence,
                        ..code
                    })
                })
                .collect();
        }
        if self.code32 {
            for code in codes.iter_mut().filter(|c| c.format == Format::Code39) {
                if let Some(pharmacode) = content::code32(&code.text) {
                    (code.text, code.kind) = (pharmacode, "pharmacode".to_owned());
                }
            }
        }
        let mut seen = HashSet::new();
        codes.retain(|c| seen.insert((c.format, c.text.clone())));
        found.barcodes.extend(codes);
        Ok(())
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

/// The same read of the same symbol, with another text.
fn with_text(result: &RXingResult, text: &str) -> RXingResult {
    RXingResult::new(
        text,
        text.as_bytes().to_vec(),
        result.getPoints().to_vec(),
        *result.getBarcodeFormat(),
    )
}

/// A read as the record keeps it; none for a format Librarian has no name for.
fn to_barcode(result: &RXingResult, scale: f32) -> Option<Barcode> {
    let content = content::of(result)?;
    // What the text means is read from the content, not from the symbol's raw shift pairs.
    let kind = match content.text == result.getText() {
        true => kind(result),
        false => kind(&with_text(result, &content.text)),
    };
    Some(Barcode {
        text: content.text,
        gs1: content.gs1,
        sequence: content.sequence,
        format: from_rxing(*result.getBarcodeFormat())?,
        kind: kind.to_owned(),
        conflicting_texts: Vec::new(),
        points: result
            .getPoints()
            .iter()
            .map(|p| [p.x * scale, p.y * scale])
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use image::{DynamicImage, Luma};
    use rxing::{MultiFormatWriter, Writer};

    use super::*;

    /// `text` drawn as a `format` symbol with a white margin, as rxing's writer draws it.
    pub(super) fn symbol(format: BarcodeFormat, text: &str) -> GrayImage {
        symbol_with(format, text, &rxing::EncodeHints::default())
    }

    /// As [`symbol`], drawn with these writer hints (for the second engine's tests).
    #[cfg_attr(not(feature = "zxing-cpp"), allow(dead_code))]
    pub(super) fn symbol_with(
        format: BarcodeFormat,
        text: &str,
        hints: &rxing::EncodeHints,
    ) -> GrayImage {
        let matrix = MultiFormatWriter
            .encode_with_hints(text, &format, 300, 120, hints)
            .unwrap();
        let drawn = DynamicImage::from(&matrix).into_luma8();
        let mut framed =
            GrayImage::from_pixel(drawn.width() + 40, drawn.height() + 40, Luma([255]));
        imageops::overlay(&mut framed, &drawn, 20, 20);
        framed
    }

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
