//! Types shared by validators, extractors and actors: the record and the facts it holds.
//! Defined once here so that every crate of the workspace speaks the same language.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Labels are always a JSON object.
pub type Labels = Map<String, Value>;

/// Image formats Librarian accepts. Closed, so configs naming another format are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
    Bmp,
    Tiff,
}

impl ImageFormat {
    pub const ALL: [ImageFormat; 6] = [
        Self::Jpeg,
        Self::Png,
        Self::Webp,
        Self::Gif,
        Self::Bmp,
        Self::Tiff,
    ];

    /// File extension used when storing the original bytes.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Bmp => "image/bmp",
            Self::Tiff => "image/tiff",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
        })
    }
}

/// Facts read from the image header and bytes, before any pixel is decoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageFacts {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub sha256: String,
}

impl ImageFacts {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// A barcode symbology, by the name the config, the API and the records use (rxing's):
/// `EAN_13`, `QR_CODE`, … One type for the extractor, the validators, the records and the
/// metrics, so a name is checked once, when the config is read.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum BarcodeFormat {
    #[serde(rename = "AZTEC")]
    Aztec,
    #[serde(rename = "CODABAR")]
    Codabar,
    #[serde(rename = "CODE_39")]
    Code39,
    #[serde(rename = "CODE_93")]
    Code93,
    #[serde(rename = "CODE_128")]
    Code128,
    #[serde(rename = "DATA_MATRIX")]
    DataMatrix,
    #[serde(rename = "DX_FILM_EDGE")]
    DxFilmEdge,
    #[serde(rename = "EAN_8")]
    Ean8,
    #[serde(rename = "EAN_13")]
    Ean13,
    #[serde(rename = "ITF")]
    Itf,
    #[serde(rename = "MAXICODE")]
    Maxicode,
    #[serde(rename = "MICRO_QR_CODE")]
    MicroQrCode,
    #[serde(rename = "PDF_417")]
    Pdf417,
    #[serde(rename = "QR_CODE")]
    QrCode,
    #[serde(rename = "RECTANGULAR_MICRO_QR_CODE")]
    RectangularMicroQrCode,
    #[serde(rename = "RSS_14")]
    Rss14,
    #[serde(rename = "RSS_EXPANDED")]
    RssExpanded,
    #[serde(rename = "TELEPEN")]
    Telepen,
    #[serde(rename = "UPC_A")]
    UpcA,
    #[serde(rename = "UPC_E")]
    UpcE,
    #[serde(rename = "UPC_EAN_EXTENSION")]
    UpcEanExtension,
}

impl BarcodeFormat {
    pub const ALL: [Self; 21] = [
        Self::Aztec,
        Self::Codabar,
        Self::Code39,
        Self::Code93,
        Self::Code128,
        Self::DataMatrix,
        Self::DxFilmEdge,
        Self::Ean8,
        Self::Ean13,
        Self::Itf,
        Self::Maxicode,
        Self::MicroQrCode,
        Self::Pdf417,
        Self::QrCode,
        Self::RectangularMicroQrCode,
        Self::Rss14,
        Self::RssExpanded,
        Self::Telepen,
        Self::UpcA,
        Self::UpcE,
        Self::UpcEanExtension,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Aztec => "AZTEC",
            Self::Codabar => "CODABAR",
            Self::Code39 => "CODE_39",
            Self::Code93 => "CODE_93",
            Self::Code128 => "CODE_128",
            Self::DataMatrix => "DATA_MATRIX",
            Self::DxFilmEdge => "DX_FILM_EDGE",
            Self::Ean8 => "EAN_8",
            Self::Ean13 => "EAN_13",
            Self::Itf => "ITF",
            Self::Maxicode => "MAXICODE",
            Self::MicroQrCode => "MICRO_QR_CODE",
            Self::Pdf417 => "PDF_417",
            Self::QrCode => "QR_CODE",
            Self::RectangularMicroQrCode => "RECTANGULAR_MICRO_QR_CODE",
            Self::Rss14 => "RSS_14",
            Self::RssExpanded => "RSS_EXPANDED",
            Self::Telepen => "TELEPEN",
            Self::UpcA => "UPC_A",
            Self::UpcE => "UPC_E",
            Self::UpcEanExtension => "UPC_EAN_EXTENSION",
        }
    }

    /// EAN-8, EAN-13, UPC-A and UPC-E: the codes that carry a GTIN.
    pub fn is_product(self) -> bool {
        matches!(self, Self::Ean8 | Self::Ean13 | Self::UpcA | Self::UpcE)
    }
}

impl fmt::Display for BarcodeFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BarcodeFormat {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown barcode format `{name}`; known: {}",
                    known.join(", ")
                )
            })
    }
}

/// One barcode found in the image. Points are in the original image's pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Barcode {
    pub text: String,
    pub format: BarcodeFormat,
    /// What the text means: product, isbn, uri, text, tel, email, geo, wifi, …
    pub kind: String,
    pub points: Vec<[f32; 2]>,
    /// Other texts read from this same symbol on other scan lines. When there are any, the
    /// reads disagree, no text won the vote of the lines across the symbol, and `text` is not
    /// to be trusted: it is no GTIN for the label checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicting_texts: Vec<String>,
    /// GS1 content (FNC1 in first position): `text` is GS1 element strings, each variable
    /// length one ended by a group separator (`\u001d`), never a rendering such as `(01)…`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gs1: bool,
    /// Where the symbol stands in a structured-append sequence (a message split over several
    /// symbols); `text` is this symbol's part only, without the sequence's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Sequence>,
}

/// One symbol's place in a structured-append sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// This symbol's position, from 1.
    pub position: u32,
    /// How many symbols the message has; 0 when the symbol does not say.
    pub total: u32,
    /// What tells this sequence from others (QR Code: its parity byte; Aztec: its message
    /// id), when the symbol has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

/// The text an OCR extractor read in the image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Text {
    /// Every line read, in reading order, one per line of this text.
    pub text: String,
    pub lines: Vec<TextLine>,
}

/// One line of text, with its place in the original image's pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextLine {
    pub text: String,
    /// The engine's confidence in the line's words, 0 to 100 (their mean).
    pub confidence: f32,
    #[serde(rename = "box")]
    pub bounds: PixelBox,
}

/// A rectangle in an image's pixels, as the `box-inside-image` label check reads one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Where an actor put a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub actor: String,
    pub location: String,
}

/// What is stored for an accepted submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: Uuid,
    pub pipeline: String,
    pub received_at: DateTime<Utc>,
    pub labels: Labels,
    pub image: ImageFacts,
    pub barcodes: Vec<Barcode>,
    /// The text read in the image, when the pipeline has an `ocr` extractor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
    /// What metadata was removed from the stored image, when the pipeline strips it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataReport>,
    /// An earlier record holding the same image bytes (by sha256), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Uuid>,
    #[serde(default)]
    pub stored: Vec<Stored>,
}

/// Metadata removed from a stored image, and facts the pipeline chose to keep from it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataReport {
    /// Kinds removed: `exif` (all but the orientation), `xmp`, `iptc`, `comment`, PNG text chunks.
    pub removed: Vec<String>,
    /// What was kept in the record, e.g. `capture_time`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub kept: Map<String, Value>,
}

impl Record {
    /// Two submissions are the same when their image bytes and labels are equal, numbers
    /// compared as numbers (`1` and `1.0` are one value in JSON).
    pub fn same_content(&self, sha256: &str, labels: &Labels) -> bool {
        self.image.sha256 == sha256 && same_labels(&self.labels, labels)
    }
}

/// Whether two label sets are equal as JSON values: numbers compared as numbers.
pub fn same_labels(x: &Labels, y: &Labels) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
}

fn same_value(a: &Value, b: &Value) -> bool {
    // Integers exactly (i64 and u64 both fit i128), other numbers as f64.
    let integer = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (integer(x), integer(y)) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(x), Value::Object(y)) => same_labels(x, y),
        _ => a == b,
    }
}

/// Everything a validator may look at. `barcodes` is empty and `text` none before extraction.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub labels: &'a Labels,
    pub image: &'a ImageFacts,
    pub barcodes: &'a [Barcode],
    pub text: Option<&'a Text>,
}

/// One reason a validator rejected a submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable machine code, e.g. `labels.schema`, `image.too_small`.
    pub code: String,
    /// JSON pointer into the labels (or `/image`, `/barcodes`) the finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn new(code: &str, path: Option<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            path,
            message: message.into(),
        }
    }
}

/// A finding together with the name of the configured validator that made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub validator: String,
    #[serde(flatten)]
    pub finding: Finding,
}

impl Barcode {
    /// The code as a 14-digit GTIN, for product formats (EAN-8, EAN-13, UPC-A, UPC-E) read
    /// without conflict.
    pub fn gtin(&self) -> Option<String> {
        if !self.conflicting_texts.is_empty() {
            return None;
        }
        let digits = match self.format {
            BarcodeFormat::Ean13 | BarcodeFormat::Ean8 | BarcodeFormat::UpcA => self.text.clone(),
            BarcodeFormat::UpcE => upce_to_upca(&self.text)?,
            _ => return None,
        };
        normalize_gtin(&digits)
    }
}

/// The GS1 check digit of `body` (the digits before it: weights 3 and 1 from the right);
/// None when `body` is not all digits.
pub fn gs1_check_digit(body: &str) -> Option<char> {
    let digits: Option<Vec<u32>> = body.chars().map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits?
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| d * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    char::from_digit((10 - sum % 10) % 10, 10)
}

/// Left-pads a GTIN-8/12/13/14 to 14 digits; None when it is not one.
pub fn normalize_gtin(text: &str) -> Option<String> {
    let valid = matches!(text.len(), 8 | 12 | 13 | 14) && text.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| format!("{text:0>14}"))
}

/// Expands an 8-digit UPC-E (number system, six digits, check digit) to its UPC-A form,
/// following the GS1 zero-suppression rules.
fn upce_to_upca(upce: &str) -> Option<String> {
    let d: Vec<char> = upce.chars().collect();
    if d.len() != 8 || !d.iter().all(char::is_ascii_digit) {
        return None;
    }
    let (sys, m, check) = (d[0], &d[1..7], d[7]);
    let body: String = match m[5] {
        '0' | '1' | '2' => [m[0], m[1], m[5], '0', '0', '0', '0', m[2], m[3], m[4]]
            .iter()
            .collect(),
        '3' => [m[0], m[1], m[2], '0', '0', '0', '0', '0', m[3], m[4]]
            .iter()
            .collect(),
        '4' => [m[0], m[1], m[2], m[3], '0', '0', '0', '0', '0', m[4]]
            .iter()
            .collect(),
        _ => [m[0], m[1], m[2], m[3], m[4], '0', '0', '0', '0', m[5]]
            .iter()
            .collect(),
    };
    Some(format!("{sys}{body}{check}"))
}

/// Compresses a 12-digit UPC-A to its 8-digit UPC-E form, when the zero-suppression rules
/// allow one: readers that print UPC-E expanded are brought to the form the others print.
pub fn upca_to_upce(upca: &str) -> Option<String> {
    let d = upca.as_bytes();
    if d.len() != 12 || !d.iter().all(u8::is_ascii_digit) || !matches!(d[0], b'0' | b'1') {
        return None;
    }
    let body = &d[1..11];
    let zeros = |range: std::ops::Range<usize>| body[range].iter().all(|&b| b == b'0');
    // The rules of `upce_to_upca`, backwards; the first that fits is the one a writer uses.
    let middle: [u8; 6] = if body[2] <= b'2' && zeros(3..7) {
        [body[0], body[1], body[7], body[8], body[9], body[2]]
    } else if zeros(3..8) {
        [body[0], body[1], body[2], body[8], body[9], b'3']
    } else if zeros(4..9) {
        [body[0], body[1], body[2], body[3], body[9], b'4']
    } else if zeros(5..9) && body[9] >= b'5' {
        [body[0], body[1], body[2], body[3], body[4], body[9]]
    } else {
        return None;
    };
    let upce: String = [d[0]]
        .iter()
        .chain(&middle)
        .chain(&d[11..])
        .map(|&b| b as char)
        .collect();
    (upce_to_upca(&upce).as_deref() == Some(upca)).then_some(upce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gs1_check_digits() {
        assert_eq!(gs1_check_digit("544900000099"), Some('6'));
        assert_eq!(gs1_check_digit("9889876543210"), Some('6'));
        assert_eq!(gs1_check_digit("03600029145"), Some('2'));
        assert_eq!(gs1_check_digit("12a"), None);
    }

    #[test]
    fn numbers_equal_as_json_values_are_the_same_labels() {
        let labels = |v: Value| v.as_object().unwrap().clone();
        let stored = labels(serde_json::json!({"class": 1, "box": [0.5, 2], "n": {"k": -3}}));
        let record = Record {
            id: Uuid::nil(),
            pipeline: "default".into(),
            received_at: DateTime::<Utc>::MIN_UTC,
            labels: stored,
            image: ImageFacts {
                format: ImageFormat::Png,
                width: 1,
                height: 1,
                bytes: 1,
                sha256: "s".into(),
            },
            barcodes: vec![],
            text: None,
            metadata: None,
            duplicate_of: None,
            stored: vec![],
        };
        let same = labels(serde_json::json!({"class": 1.0, "box": [0.5, 2.0], "n": {"k": -3.0}}));
        assert!(record.same_content("s", &same));
        let other = labels(serde_json::json!({"class": 1.5, "box": [0.5, 2], "n": {"k": -3}}));
        assert!(!record.same_content("s", &other));
        let more = labels(serde_json::json!({"class": 1, "box": [0.5, 2], "n": {"k": -3}, "x": 1}));
        assert!(!record.same_content("s", &more));
        assert!(!record.same_content("t", &same), "other image bytes");
        let big = |n: Value| labels(serde_json::json!({ "n": n }));
        let record = Record {
            labels: big(serde_json::json!(u64::MAX)),
            ..record
        };
        assert!(
            !record.same_content("s", &big(serde_json::json!(i64::MAX))),
            "integers compare exactly, not as the same f64"
        );
    }

    fn code(format: &str, text: &str) -> Barcode {
        Barcode {
            text: text.into(),
            format: format.parse().unwrap(),
            kind: "product".into(),
            points: vec![],
            conflicting_texts: vec![],
            gs1: false,
            sequence: None,
        }
    }

    #[test]
    fn gtin_pads_every_product_format_to_fourteen_digits() {
        assert_eq!(
            code("EAN_13", "5449000000996").gtin().unwrap(),
            "05449000000996"
        );
        assert_eq!(
            code("UPC_A", "036000291452").gtin().unwrap(),
            "00036000291452"
        );
        assert_eq!(code("EAN_8", "96385074").gtin().unwrap(), "00000096385074");
        assert_eq!(code("QR_CODE", "5449000000996").gtin(), None);
    }

    #[test]
    fn barcode_format_names_read_back_and_unknown_ones_list_the_known() {
        for format in BarcodeFormat::ALL {
            assert_eq!(format.name().parse::<BarcodeFormat>(), Ok(format));
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{}\"", format.name()));
        }
        let refused = "EAN13".parse::<BarcodeFormat>().unwrap_err();
        assert!(refused.contains("EAN_13"), "{refused}");
    }

    #[test]
    fn upce_expands_by_the_zero_suppression_rules() {
        // 0 123456 5 -> 0 12345 00006 5 (last digit 6: manufacturer digits kept, item 0000x)
        assert_eq!(upce_to_upca("01234565").unwrap(), "012345000065");
        // last digit 0: XX000-00YYY
        assert_eq!(upce_to_upca("01234500").unwrap(), "012000003450");
        assert_eq!(upce_to_upca("0123"), None);
    }

    #[test]
    fn upca_compresses_back_to_upce_when_the_rules_allow() {
        for upce in [
            "01234565", "01234500", "01234531", "01234542", "05096893", "04963406",
        ] {
            let upca = upce_to_upca(upce).unwrap();
            assert_eq!(upca_to_upce(&upca).as_deref(), Some(upce), "{upca}");
        }
        // Five digits of item number: no UPC-E form.
        assert_eq!(upca_to_upce("036000291452"), None);
        assert_eq!(upca_to_upce("0360002914"), None);
    }
}
