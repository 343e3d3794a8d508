//! What a symbol holds, exactly: no reader's rendering of it. Code 39 in full-ASCII mode is
//! decoded from its shift pairs, and GS1 content (FNC1 in first position) is flagged instead
//! of being shown as a leading group separator.

use rxing::{BarcodeFormat, RXingResult, RXingResultMetadataType, RXingResultMetadataValue};

/// The group separator that stands for FNC1 inside GS1 content.
pub const GS: char = '\u{1d}';

/// The content of a read and whether it is GS1.
pub struct Content {
    pub text: String,
    pub gs1: bool,
}

/// The content of an rxing read.
pub fn of(result: &RXingResult) -> Content {
    let text = result.getText();
    let format = *result.getBarcodeFormat();
    let identifier = symbology_identifier(result);
    // `]A4` to `]A7`: the reader decoded full ASCII itself (zxing-cpp does).
    let already_full_ascii = matches!(identifier.as_str(), "]A4" | "]A5" | "]A6" | "]A7");
    if format == BarcodeFormat::CODE_39
        && !already_full_ascii
        && let Some(decoded) = code39_full_ascii(text)
    {
        return Content {
            text: decoded,
            gs1: false,
        };
    }
    // rxing's Aztec decoder writes the first FNC1, the GS1 flag, as a group separator.
    if format == BarcodeFormat::AZTEC
        && let Some(rest) = text.strip_prefix(GS)
    {
        return Content {
            text: rest.to_owned(),
            gs1: true,
        };
    }
    Content {
        text: text.to_owned(),
        gs1: is_gs1_identifier(&identifier),
    }
}

fn symbology_identifier(result: &RXingResult) -> String {
    match result
        .getRXingResultMetadata()
        .get(&RXingResultMetadataType::SYMBOLOGY_IDENTIFIER)
    {
        Some(RXingResultMetadataValue::SymbologyIdentifier(id)) => id.clone(),
        _ => String::new(),
    }
}

/// The ISO/IEC 15424 identifiers that say the content is GS1: Code 128 `]C1`, DataMatrix
/// `]d2`, QR Code `]Q3`, Aztec `]z1` (and their ECI variants), DataBar `]e0`.
pub fn is_gs1_identifier(id: &str) -> bool {
    matches!(
        id,
        "]C1" | "]d2" | "]d5" | "]Q3" | "]Q5" | "]z1" | "]z4" | "]e0"
    )
}

/// Code 39 full ASCII: the text with its shift pairs (`+A` for `a`, `$M` for a carriage
/// return, …) decoded, when it has any and every one is a valid pair. Otherwise `None`: the
/// symbol is plain Code 39 and its text stays as read.
pub fn code39_full_ascii(text: &str) -> Option<String> {
    if !text.contains(['+', '$', '%', '/']) {
        return None;
    }
    let mut decoded = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if !matches!(c, '+' | '$' | '%' | '/') {
            decoded.push(c);
            continue;
        }
        let next = chars.next().filter(char::is_ascii_uppercase)?;
        let offset = next as u8 - b'A';
        let byte = match (c, next) {
            ('+', _) => b'a' + offset,
            ('$', _) => 1 + offset,
            ('%', 'A'..='E') => 0x1b + offset,
            ('%', 'F'..='J') => b';' + (offset - 5),
            ('%', 'K'..='O') => b'[' + (offset - 10),
            ('%', 'P'..='T') => b'{' + (offset - 15),
            ('%', 'U') => 0,
            ('%', 'V') => b'@',
            ('%', 'W') => b'`',
            ('%', 'X'..='Z') => 0x7f,
            ('/', 'A'..='O') => b'!' + offset,
            ('/', 'Z') => b':',
            _ => return None,
        };
        decoded.push(char::from(byte));
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, format: BarcodeFormat, identifier: &str) -> RXingResult {
        let mut read = RXingResult::new(text, text.as_bytes().to_vec(), Vec::new(), format);
        read.putMetadata(
            RXingResultMetadataType::SYMBOLOGY_IDENTIFIER,
            RXingResultMetadataValue::SymbologyIdentifier(identifier.to_owned()),
        );
        read
    }

    #[test]
    fn a_gs1_aztec_code_loses_its_leading_separator_and_is_flagged() {
        let content = of(&read("\u{1d}0108903819987659", BarcodeFormat::AZTEC, ""));
        assert_eq!(
            (content.text.as_str(), content.gs1),
            ("0108903819987659", true)
        );
        let plain = of(&read("0108903819987659", BarcodeFormat::AZTEC, "]z0"));
        assert!(!plain.gs1);
    }

    #[test]
    fn gs1_is_read_from_the_symbology_identifier() {
        for (format, identifier) in [
            (BarcodeFormat::DATA_MATRIX, "]d2"),
            (BarcodeFormat::QR_CODE, "]Q3"),
            (BarcodeFormat::CODE_128, "]C1"),
        ] {
            assert!(
                of(&read("0108903819987659", format, identifier)).gs1,
                "{identifier}"
            );
        }
        assert!(!of(&read("0108903819987659", BarcodeFormat::DATA_MATRIX, "]d1")).gs1);
    }

    #[test]
    fn full_ascii_a_reader_decoded_already_is_not_decoded_twice() {
        // zxing-cpp decodes full ASCII itself and says so with `]A4`.
        let decoded = of(&read("A+B", BarcodeFormat::CODE_39, "]A4"));
        assert_eq!(decoded.text, "A+B");
        let raw = of(&read("A+B", BarcodeFormat::CODE_39, "]A0"));
        assert_eq!(raw.text, "Ab");
    }

    #[test]
    fn full_ascii_shift_pairs_are_decoded() {
        assert_eq!(code39_full_ascii("12+A+B").as_deref(), Some("12ab"));
        assert_eq!(code39_full_ascii("$M$J").as_deref(), Some("\r\n"));
        assert_eq!(
            code39_full_ascii("%F%K%P%U%V%W%X").as_deref(),
            Some(";[{\0@`\x7f")
        );
        assert_eq!(code39_full_ascii("/A/O/Z").as_deref(), Some("!/:"));
        assert_eq!(code39_full_ascii("%A%E").as_deref(), Some("\x1b\x1f"));
    }

    #[test]
    fn plain_code39_keeps_its_text() {
        assert_eq!(code39_full_ascii("CODE-39 1234"), None, "no shift at all");
        assert_eq!(code39_full_ascii("A+1"), None, "a shift before a digit");
        assert_eq!(code39_full_ascii("50%"), None, "a shift at the end");
        assert_eq!(code39_full_ascii("/P"), None, "no full-ASCII pair");
    }
}
