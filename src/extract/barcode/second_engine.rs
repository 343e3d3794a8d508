//! zxing-cpp as a second engine (cargo feature `zxing-cpp`), for the photos rxing reads
//! nothing in: its Aztec detector finds symbols in photos that rxing's does not (12 more of
//! the corpus's 26 Aztec images). Results are turned into rxing's, with its
//! conventions: a UPC-A as UPC-A in 12 digits (zxing-cpp calls it an EAN-13 with a leading
//! zero), UPC-E in 8 digits (zxing-cpp prints it expanded), Codabar without start and stop.

use image::GrayImage;
use librarian_model::{Sequence, upca_to_upce};
use rxing::{BarcodeFormat, Point, RXingResult};
use rxing::{RXingResultMetadataType, RXingResultMetadataValue};
use zxingcpp::{BarcodeFormat as Format, ImageFormat, ImageView, TextMode};

use super::confirm;

/// Each rxing format and zxing-cpp's name for it.
const FORMATS: [(BarcodeFormat, Format); 17] = [
    (BarcodeFormat::AZTEC, Format::Aztec),
    (BarcodeFormat::CODABAR, Format::Codabar),
    (BarcodeFormat::CODE_39, Format::Code39),
    (BarcodeFormat::CODE_93, Format::Code93),
    (BarcodeFormat::CODE_128, Format::Code128),
    (BarcodeFormat::DATA_MATRIX, Format::DataMatrix),
    (BarcodeFormat::EAN_8, Format::EAN8),
    (BarcodeFormat::EAN_13, Format::EAN13),
    (BarcodeFormat::ITF, Format::ITF),
    (BarcodeFormat::PDF_417, Format::PDF417),
    (BarcodeFormat::QR_CODE, Format::QRCode),
    (BarcodeFormat::MICRO_QR_CODE, Format::MicroQRCode),
    (BarcodeFormat::RSS_14, Format::DataBar),
    (BarcodeFormat::RSS_EXPANDED, Format::DataBarExp),
    (BarcodeFormat::UPC_A, Format::UPCA),
    (BarcodeFormat::UPC_E, Format::UPCE),
    (BarcodeFormat::MAXICODE, Format::MaxiCode),
];

/// One code zxing-cpp read: as rxing would report it, and its place in a structured-append
/// sequence (which rxing's results have no room for: zxing-cpp reads it from every format
/// that has one, and names the sequence).
pub struct Read {
    pub result: RXingResult,
    pub sequence: Option<Sequence>,
}

/// zxing-cpp's sequence index counts from 0 (-1 for none); its size is 0 when unknown.
fn sequence(found: &zxingcpp::Barcode) -> Option<Sequence> {
    let position = u32::try_from(found.sequence_index()).ok()? + 1;
    let total = u32::try_from(found.sequence_size()).unwrap_or(0);
    Some(Sequence {
        position,
        total,
        id: found.sequence_id(),
    })
}

/// How the extractor asks zxing-cpp to read.
pub struct SecondEngine {
    formats: Vec<Format>,
    /// Whether UPC-A is asked for, so that an EAN-13 with a leading zero is one.
    upc_a: bool,
    try_harder: bool,
    also_inverted: bool,
    all_codes: bool,
}

impl SecondEngine {
    pub fn new<'f>(
        formats: impl IntoIterator<Item = &'f BarcodeFormat>,
        try_harder: bool,
        also_inverted: bool,
        all_codes: bool,
    ) -> Self {
        let formats: Vec<Format> = formats
            .into_iter()
            .filter_map(|f| FORMATS.iter().find(|(r, _)| r == f).map(|(_, z)| *z))
            .collect();
        Self {
            upc_a: formats.contains(&Format::UPCA),
            formats,
            try_harder,
            also_inverted,
            all_codes,
        }
    }

    /// The codes in `image`, as rxing would report them. zxing-cpp reports its own failures
    /// as errors (it catches its C++ exceptions); those read as nothing found.
    pub fn read(&self, image: &GrayImage) -> Vec<Read> {
        let (width, height) = image.dimensions();
        let Ok(view) = ImageView::from_slice(image.as_raw(), width, height, ImageFormat::Lum)
        else {
            return Vec::new();
        };
        // The content itself, as rxing reports it: not zxing-cpp's default human-readable
        // rendering (`(01)…` for GS1, `<GS>` for separators).
        let reader = zxingcpp::read()
            .text_mode(TextMode::Plain)
            .formats(&self.formats)
            .try_harder(self.try_harder)
            .try_rotate(self.try_harder)
            .try_invert(self.also_inverted);
        // Every symbol is asked for and the first kept, the setting the README's numbers
        // were measured with (zxing-cpp's own default).
        let wanted = if self.all_codes { usize::MAX } else { 1 };
        match reader.from(view) {
            Ok(found) => found
                .iter()
                .filter_map(|b| {
                    let result = self.as_rxing(b)?;
                    Some(Read {
                        result,
                        sequence: sequence(b),
                    })
                })
                .filter(|read| on_lines_apart(&read.result))
                .take(wanted)
                .collect(),
            Err(error) => {
                tracing::debug!(%error, "zxing-cpp read nothing");
                Vec::new()
            }
        }
    }

    /// A read, with zxing-cpp's corners as its points.
    fn as_rxing(&self, found: &zxingcpp::Barcode) -> Option<RXingResult> {
        let mut format = [found.format(), found.symbology()]
            .into_iter()
            .find_map(|f| FORMATS.iter().find(|(_, z)| *z == f))
            .map(|(r, _)| *r)?;
        let mut text = found.text();
        let upc_a = |text: &str| {
            text.strip_prefix('0')
                .filter(|t| t.len() == 12)
                .map(str::to_owned)
        };
        match format {
            BarcodeFormat::EAN_13 if self.upc_a => {
                if let Some(short) = upc_a(&text) {
                    (format, text) = (BarcodeFormat::UPC_A, short);
                }
            }
            BarcodeFormat::UPC_A => text = upc_a(&text).unwrap_or(text),
            BarcodeFormat::UPC_E => text = upca_to_upce(&upc_a(&text)?)?,
            _ => {}
        }
        let ends = |c: Option<char>| c.is_some_and(|c| "ABCD".contains(c));
        if format == BarcodeFormat::CODABAR
            && ends(text.chars().next())
            && ends(text.chars().last())
        {
            text = text[1..text.len() - 1].to_owned();
        }
        let position = found.position();
        let corners = [
            position.top_left,
            position.top_right,
            position.bottom_right,
            position.bottom_left,
        ];
        let points = corners
            .iter()
            .map(|p| Point::new(p.x as f32, p.y as f32))
            .collect();
        let mut read = RXingResult::new(&text, text.as_bytes().to_vec(), points, format);
        // Says whether the content is GS1, as rxing's own reads do.
        read.putMetadata(
            RXingResultMetadataType::SYMBOLOGY_IDENTIFIER,
            RXingResultMetadataValue::SymbologyIdentifier(found.symbology_identifier()),
        );
        Some(read)
    }
}

/// zxing-cpp accepts a product code on two neighbouring rows; rxing's reads must agree on
/// lines more than `MIN_LINES_APART` apart (see `confirm`), and so must these. The corners of
/// a 1D read span the rows that agreed.
fn on_lines_apart(read: &RXingResult) -> bool {
    if !confirm::needs_second_line(read) {
        return true;
    }
    let span = |axis: fn(&Point) -> f32| {
        let values = read.getPoints().iter().map(axis);
        values.clone().fold(f32::MIN, f32::max) - values.fold(f32::MAX, f32::min)
    };
    span(|p| p.x).min(span(|p| p.y)) > confirm::MIN_LINES_APART
}

#[cfg(test)]
mod tests {
    use super::super::tests::{symbol, symbol_with};
    use super::*;

    #[test]
    fn reads_are_reported_in_rxings_conventions() {
        let engine = SecondEngine::new(
            &[
                BarcodeFormat::EAN_13,
                BarcodeFormat::UPC_A,
                BarcodeFormat::UPC_E,
                BarcodeFormat::CODABAR,
            ],
            true,
            true,
            false,
        );
        for (format, text) in [
            (BarcodeFormat::UPC_A, "036000291452"),
            (BarcodeFormat::UPC_E, "01234565"),
            (BarcodeFormat::CODABAR, "A40156B"),
            (BarcodeFormat::EAN_13, "5449000000996"),
        ] {
            let found = engine.read(&symbol(format, text));
            let found: Vec<_> = found
                .iter()
                .map(|r| (*r.result.getBarcodeFormat(), r.result.getText().to_owned()))
                .collect();
            let expected = if format == BarcodeFormat::CODABAR {
                "40156"
            } else {
                text
            };
            assert_eq!(found, [(format, expected.to_owned())]);
        }
    }

    #[test]
    fn an_ean13_with_a_leading_zero_is_a_upc_a_only_when_upc_a_is_asked_for() {
        let code = symbol(BarcodeFormat::UPC_A, "036000291452");
        let ean_only = SecondEngine::new(&[BarcodeFormat::EAN_13], true, true, false);
        let found = ean_only.read(&code);
        assert_eq!(found.len(), 1);
        let read = &found[0].result;
        assert_eq!(
            (*read.getBarcodeFormat(), read.getText()),
            (BarcodeFormat::EAN_13, "0036000291452")
        );
    }

    #[test]
    fn gs1_content_is_the_content_not_its_rendering() {
        use rxing::{EncodeHintValue, EncodeHints};
        let content = "10ABC123\u{1d}0108903819987659";
        let hints = EncodeHints::default()
            .with(EncodeHintValue::DataMatrixCompact(true))
            .with(EncodeHintValue::Gs1Format(true));
        let framed = symbol_with(BarcodeFormat::DATA_MATRIX, content, &hints);
        let engine = SecondEngine::new(&[BarcodeFormat::DATA_MATRIX], true, false, false);
        let found = engine.read(&framed);
        assert_eq!(found.len(), 1);
        let read = super::super::content::of(&found[0].result).unwrap();
        assert_eq!((read.text.as_str(), read.gs1), (content, true));
    }
}
