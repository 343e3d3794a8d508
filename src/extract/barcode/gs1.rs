//! GS1 element strings from their human-readable rendering. rxing reports DataBar Expanded as
//! `(01)98898765432106(3202)012345`; the symbol holds `0198898765432106320201234515…`, each
//! variable-length element ended by a group separator unless it is the last. A rendering that
//! does not parse as element strings (a predefined length broken, a GTIN whose check digit
//! fails, digits outside any element) is no GS1 content: such reads come from the texture of a
//! background, not from a symbol.

use librarian_model::gs1_check_digit;

/// The group separator that stands for FNC1 inside GS1 content.
pub const GS: char = '\u{1d}';

/// Application identifiers whose data has a predefined length, by their first two digits,
/// with the length of identifier and data together (GS1 General Specifications, 7.8.5).
const PREDEFINED: [(&str, usize); 22] = [
    ("00", 20),
    ("01", 16),
    ("02", 16),
    ("03", 16),
    ("04", 18),
    ("11", 8),
    ("12", 8),
    ("13", 8),
    ("14", 8),
    ("15", 8),
    ("16", 8),
    ("17", 8),
    ("18", 8),
    ("19", 8),
    ("20", 4),
    ("31", 10),
    ("32", 10),
    ("33", 10),
    ("34", 10),
    ("35", 10),
    ("36", 10),
    ("41", 16),
];

/// The element strings of a rendering such as `(01)98898765432106(10)AB12`, or None when it
/// is not one.
pub fn from_rendering(rendering: &str) -> Option<String> {
    let mut content = String::new();
    let mut rest = rendering;
    let mut separator_due = false;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('(')?;
        let (ai, after) = inner.split_once(')')?;
        let valid_ai = (2..=4).contains(&ai.len()) && ai.bytes().all(|b| b.is_ascii_digit());
        let end = after.find('(').unwrap_or(after.len());
        let data = &after[..end];
        if !valid_ai || data.is_empty() {
            return None;
        }
        let predefined = PREDEFINED
            .iter()
            .find(|(prefix, _)| ai.starts_with(prefix))
            .map(|(_, length)| *length);
        if predefined.is_some_and(|length| ai.len() + data.len() != length) {
            return None;
        }
        if matches!(ai, "00" | "01" | "02") && !check_digit_holds(data) {
            return None;
        }
        if separator_due {
            content.push(GS);
        }
        content.push_str(ai);
        content.push_str(data);
        separator_due = predefined.is_none();
        rest = &after[end..];
    }
    (!content.is_empty()).then_some(content)
}

fn check_digit_holds(digits: &str) -> bool {
    let Some((body, check)) = digits.len().checked_sub(1).map(|n| digits.split_at(n)) else {
        return false;
    };
    gs1_check_digit(body).is_some_and(|c| check.starts_with(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendering_becomes_element_strings_with_separators_after_variable_ones() {
        assert_eq!(
            from_rendering("(01)98898765432106(3202)012345(15)991231").as_deref(),
            Some("0198898765432106320201234515991231")
        );
        assert_eq!(
            from_rendering("(01)98898765432106(10)AB12(21)X9").as_deref(),
            // The GTIN has a predefined length, the batch (10) does not.
            Some(concat!("0198898765432106", "10AB12\u{1d}", "21X9"))
        );
    }

    #[test]
    fn what_is_no_element_string_is_refused() {
        for rendering in [
            "(01)115288924456700",    // 15 digits where a GTIN has 14
            "(01)98898765432107",     // check digit
            "(01)98898765432106(22)", // no data
            "0198898765432106",       // no identifier
            "(1)5",                   // identifier too short
            "(01)98898765432106 (10)A",
            "",
        ] {
            assert_eq!(from_rendering(rendering), None, "{rendering}");
        }
    }
}
