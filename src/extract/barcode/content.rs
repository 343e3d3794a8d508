//! What a symbol holds, exactly: no reader's rendering of it. Code 39 in full-ASCII mode is
//! decoded from its shift pairs, GS1 content (FNC1 in first position) is flagged instead
//! of being shown as a leading group separator, and a symbol's place in a structured-append
//! sequence is reported beside its text.

use librarian_model::Sequence;
use rxing::{BarcodeFormat, RXingResult, RXingResultMetadataType, RXingResultMetadataValue};

use super::gs1::{self, GS};

/// The content of a read, whether it is GS1, and its place in a sequence.
pub struct Content {
    pub text: String,
    pub gs1: bool,
    pub sequence: Option<Sequence>,
}

impl Content {
    /// GS1 element strings, which no reader here places in a sequence.
    fn gs1(text: String) -> Self {
        Self {
            text,
            gs1: true,
            sequence: None,
        }
    }
}

/// The content of an rxing read; None when what was read cannot be a symbol's content (a
/// DataBar Expanded rendering that is no GS1 element strings).
pub fn of(result: &RXingResult) -> Option<Content> {
    let guessed = utf8_read_as_latin1(result.getText());
    let text = guessed.as_deref().unwrap_or(result.getText());
    let format = *result.getBarcodeFormat();
    let identifier = symbology_identifier(result);
    // `]A4` to `]A7`: the reader decoded full ASCII itself (zxing-cpp does).
    let already_full_ascii = matches!(identifier.as_str(), "]A4" | "]A5" | "]A6" | "]A7");
    if format == BarcodeFormat::CODE_39
        && !already_full_ascii
        && let Some(decoded) = code39_full_ascii(text)
    {
        return Some(Content {
            text: decoded,
            gs1: false,
            sequence: None,
        });
    }
    // Asked to keep Code 128's separators, rxing writes the first FNC1 as the identifier.
    if format == BarcodeFormat::CODE_128
        && identifier == "]C1"
        && let Some(rest) = text.strip_prefix("]C1")
    {
        return Some(Content::gs1(rest.to_owned()));
    }
    // rxing's Aztec decoder writes the first FNC1, the GS1 flag, as a group separator.
    if format == BarcodeFormat::AZTEC
        && let Some(rest) = text.strip_prefix(GS)
    {
        return Some(Content::gs1(rest.to_owned()));
    }
    // DataBar is GS1 content: rxing renders Expanded with parentheses, and gives Omni's GTIN
    // without its identifier `01` (zxing-cpp gives both as the element strings).
    if format == BarcodeFormat::RSS_EXPANDED {
        return Some(Content::gs1(gs1::from_rendering(text)?));
    }
    if format == BarcodeFormat::RSS_14 && text.len() == 14 {
        return Some(Content::gs1(format!("01{text}")));
    }
    Some(Content {
        text: text.to_owned(),
        gs1: is_gs1_identifier(&identifier),
        sequence: sequence(result),
    })
}

/// A QR Code's place in a structured-append sequence. rxing's two QR readers fill the same
/// metadata differently: its port of zxing-cpp (tried first) gives the index from 0 and the
/// count, -1 and -1 when there is no sequence; its port of ZXing (the fallback) gives the
/// sequence byte (index in the high half, count - 1 in the low) and the parity byte, and only
/// for a symbol in a sequence. A count of 2 to 16 above the index is the first reader's.
fn sequence(result: &RXingResult) -> Option<Sequence> {
    let metadata = result.getRXingResultMetadata();
    let Some(RXingResultMetadataValue::StructuredAppendSequence(first)) =
        metadata.get(&RXingResultMetadataType::STRUCTURED_APPEND_SEQUENCE)
    else {
        return None;
    };
    let Some(RXingResultMetadataValue::StructuredAppendParity(second)) =
        metadata.get(&RXingResultMetadataType::STRUCTURED_APPEND_PARITY)
    else {
        return None;
    };
    let (first, second) = (u32::try_from(*first).ok()?, u32::try_from(*second).ok()?);
    let place = |position: u32, total: u32, id: String| {
        (position <= total).then_some(Sequence {
            position,
            total,
            id,
        })
    };
    if (2..=16).contains(&second) && first < second {
        return place(first + 1, second, String::new());
    }
    place((first >> 4) + 1, (first & 0x0f) + 1, second.to_string())
}

/// Text a writer put in UTF-8 without an ECI saying so, which rxing reads as ISO-8859-1 (the
/// standards' default): `GrÃ¼Ãe` for `Grüße`. rxing's own writers and zxing-cpp's do this, and
/// zxing-cpp reads such bytes as UTF-8; so does this, when they are valid UTF-8 with at least
/// one character beyond ASCII (Latin-1 text almost never is).
fn utf8_read_as_latin1(text: &str) -> Option<String> {
    if text.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(c).ok()).collect();
    String::from_utf8(bytes?).ok()
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

/// The digits of Code 32, the Italian pharmacode, in the order of their base-32 values.
const CODE32_DIGITS: &str = "0123456789BCDFGHJKLMNPQRSTUVWXYZ";

/// The 9-digit pharmacode a Code 39 text holds, when it is Code 32: 6 characters of its
/// alphabet, a number below 10^9 in base 32, whose last digit is the check digit of the eight
/// before it (odd places as they are, even places doubled and their digits summed).
pub fn code32(text: &str) -> Option<String> {
    if text.len() != 6 {
        return None;
    }
    let value = text.chars().try_fold(0u64, |value, c| {
        let digit = CODE32_DIGITS.find(c)?;
        Some(value * 32 + digit as u64)
    })?;
    let digits = format!("{value:09}");
    let numbers: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = numbers[..8]
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                d
            } else {
                (2 * d) / 10 + (2 * d) % 10
            }
        })
        .sum();
    (digits.len() == 9 && sum % 10 == numbers[8]).then_some(digits)
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
        let content = of(&read("\u{1d}0108903819987659", BarcodeFormat::AZTEC, "")).unwrap();
        assert_eq!(
            (content.text.as_str(), content.gs1),
            ("0108903819987659", true)
        );
        let plain = of(&read("0108903819987659", BarcodeFormat::AZTEC, "]z0")).unwrap();
        assert!(!plain.gs1);
    }

    #[test]
    fn a_gs1_code_128_loses_the_identifier_rxing_writes_into_its_text() {
        let gs1 = of(&read("]C110ABC\u{1d}01089", BarcodeFormat::CODE_128, "]C1")).unwrap();
        assert_eq!((gs1.text.as_str(), gs1.gs1), ("10ABC\u{1d}01089", true));
        // Not GS1 (no FNC1 first): text that happens to start the same way is kept.
        let plain = of(&read("]C1X", BarcodeFormat::CODE_128, "]C0")).unwrap();
        assert_eq!((plain.text.as_str(), plain.gs1), ("]C1X", false));
    }

    #[test]
    fn utf8_without_an_eci_is_read_as_utf8_and_latin1_stays_latin1() {
        let as_latin1: String = "Grüße 東京".bytes().map(char::from).collect();
        let text = |t: &str| {
            of(&read(t, BarcodeFormat::DATA_MATRIX, "]d1"))
                .unwrap()
                .text
        };
        assert_eq!(text(&as_latin1), "Grüße 東京");
        assert_eq!(text("Grüße"), "Grüße", "Latin-1 bytes that are no UTF-8");
        assert_eq!(text("東京"), "東京", "decoded already by an ECI");
        assert_eq!(text("plain"), "plain");
    }

    #[test]
    fn gs1_is_read_from_the_symbology_identifier() {
        for (format, identifier) in [
            (BarcodeFormat::DATA_MATRIX, "]d2"),
            (BarcodeFormat::QR_CODE, "]Q3"),
            (BarcodeFormat::CODE_128, "]C1"),
        ] {
            assert!(
                of(&read("0108903819987659", format, identifier))
                    .unwrap()
                    .gs1,
                "{identifier}"
            );
        }
        assert!(
            !of(&read("0108903819987659", BarcodeFormat::DATA_MATRIX, "]d1"))
                .unwrap()
                .gs1
        );
    }

    fn in_sequence(text: &str, first: i32, second: i32) -> RXingResult {
        let mut read = read(text, BarcodeFormat::QR_CODE, "]Q1");
        read.putMetadata(
            RXingResultMetadataType::STRUCTURED_APPEND_SEQUENCE,
            RXingResultMetadataValue::StructuredAppendSequence(first),
        );
        read.putMetadata(
            RXingResultMetadataType::STRUCTURED_APPEND_PARITY,
            RXingResultMetadataValue::StructuredAppendParity(second),
        );
        read
    }

    #[test]
    fn both_qr_readers_conventions_of_a_sequence_are_understood() {
        let place = |first, second| {
            of(&in_sequence("part", first, second))
                .unwrap()
                .sequence
                .map(|s| (s.position, s.total, s.id))
        };
        assert_eq!(place(-1, -1), None, "no sequence (zxing-cpp's port)");
        assert_eq!(place(1, 3), Some((2, 3, String::new())), "index 1 of 3");
        // ZXing's port: 0x12 is index 1, count 3; 0xa7 the parity byte.
        assert_eq!(place(0x12, 0xa7), Some((2, 3, "167".to_owned())));
        assert_eq!(place(0x51, 0xa7), None, "index 5 of 2 is no place");
        assert_eq!(
            of(&read("part", BarcodeFormat::QR_CODE, "]Q1"))
                .unwrap()
                .sequence,
            None
        );
    }

    #[test]
    fn full_ascii_a_reader_decoded_already_is_not_decoded_twice() {
        // zxing-cpp decodes full ASCII itself and says so with `]A4`.
        let decoded = of(&read("A+B", BarcodeFormat::CODE_39, "]A4")).unwrap();
        assert_eq!(decoded.text, "A+B");
        let raw = of(&read("A+B", BarcodeFormat::CODE_39, "]A0")).unwrap();
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
    fn code_32_is_read_as_its_pharmacode_when_its_check_digit_holds() {
        // 012345676 (check 6) is 0CSSBD in base 32 with Code 32's digits.
        assert_eq!(code32("0CSSBD").as_deref(), Some("012345676"));
        assert_eq!(code32("0CSSBF"), None, "012345677: the check digit fails");
        assert_eq!(code32("0CSSB"), None, "five characters");
        assert_eq!(code32("0CSSBA"), None, "a vowel is no Code 32 digit");
        assert_eq!(code32("ZZZZZZ"), None, "beyond nine digits");
    }

    #[test]
    fn plain_code39_keeps_its_text() {
        assert_eq!(code39_full_ascii("CODE-39 1234"), None, "no shift at all");
        assert_eq!(code39_full_ascii("A+1"), None, "a shift before a digit");
        assert_eq!(code39_full_ascii("50%"), None, "a shift at the end");
        assert_eq!(code39_full_ascii("/P"), None, "no full-ASCII pair");
    }
}
