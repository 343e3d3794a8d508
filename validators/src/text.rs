use librarian_model::{Facts, Finding};
use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{BuildError, Stage, Validator};

/// The largest compiled `pattern`: a config cannot make every check slow or large.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Rules on the text an `ocr` extractor read; runs after extraction.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextRuleConfig {
    /// Some text must have been read.
    #[serde(default = "default_required")]
    pub required: bool,
    /// Fewest characters read, spaces not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_chars: Option<usize>,
    /// A regular expression (Rust `regex` syntax; `(?i)` for any case) that must match
    /// somewhere in the text, e.g. a date: `\d{2}[./]\d{2}[./]\d{2,4}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

fn default_required() -> bool {
    true
}

pub struct TextRule {
    config: TextRuleConfig,
    pattern: Option<Regex>,
}

impl TextRule {
    pub fn new(config: TextRuleConfig) -> Result<Self, BuildError> {
        let pattern = config
            .pattern
            .as_deref()
            .map(|p| {
                RegexBuilder::new(p)
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                    .map_err(|e| BuildError::BadValue(format!("pattern: {e}")))
            })
            .transpose()?;
        Ok(Self { config, pattern })
    }
}

impl Validator for TextRule {
    fn stage(&self) -> Stage {
        Stage::Extracted
    }

    fn check(&self, facts: &Facts<'_>) -> Vec<Finding> {
        let text = facts.text.map_or("", |t| t.text.as_str());
        let chars = text.chars().filter(|c| !c.is_whitespace()).count();
        let finding = |code: &str, message: String| {
            vec![Finding::new(code, Some("/text".to_owned()), message)]
        };
        if chars == 0 {
            return match self.config.required {
                true => finding(
                    "text.missing",
                    "no text was read in the image; a sharper, closer photo of the text helps"
                        .into(),
                ),
                false => Vec::new(),
            };
        }
        if let Some(min) = self.config.min_chars.filter(|min| chars < *min) {
            return finding(
                "text.too_short",
                format!("{chars} characters were read; at least {min} are needed"),
            );
        }
        if let Some(pattern) = self.pattern.as_ref().filter(|p| !p.is_match(text)) {
            return finding(
                "text.no_match",
                format!("the text read does not match `{pattern}`"),
            );
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use librarian_model::{PixelBox, Text, TextLine};
    use serde_json::json;

    use super::*;
    use crate::test_support::{image, labels};

    fn read(text: &str) -> Text {
        Text {
            text: text.into(),
            lines: vec![TextLine {
                text: text.into(),
                confidence: 90.0,
                bounds: PixelBox {
                    x: 0,
                    y: 0,
                    w: 10,
                    h: 10,
                },
            }],
        }
    }

    fn codes(config: serde_json::Value, text: Option<&Text>) -> Vec<String> {
        let rule = TextRule::new(serde_json::from_value(config).unwrap()).unwrap();
        let (labels, image) = (labels(json!({})), image(100, 50));
        let facts = Facts {
            labels: &labels,
            image: &image,
            barcodes: &[],
            text,
        };
        rule.check(&facts).into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn text_is_required_unless_said_otherwise() {
        assert_eq!(codes(json!({}), None), ["text.missing"]);
        assert_eq!(codes(json!({}), Some(&read("  \n "))), ["text.missing"]);
        assert!(codes(json!({"required": false}), None).is_empty());
        assert!(codes(json!({}), Some(&read("BEST BEFORE"))).is_empty());
    }

    #[test]
    fn spaces_do_not_count_as_characters() {
        let config = json!({"min_chars": 6});
        assert_eq!(
            codes(config.clone(), Some(&read("AB C D E"))),
            ["text.too_short"]
        );
        assert!(codes(config, Some(&read("AB CD EF"))).is_empty());
    }

    #[test]
    fn the_pattern_must_match_somewhere() {
        let config = json!({"pattern": r"\d{2}[./]\d{2}[./]\d{2,4}"});
        assert!(codes(config.clone(), Some(&read("BEST BEFORE 12.05.2027 L4"))).is_empty());
        assert_eq!(
            codes(config, Some(&read("BEST BEFORE MAY"))),
            ["text.no_match"]
        );
        let any_case = json!({"pattern": "(?i)best before"});
        assert!(codes(any_case, Some(&read("Best Before"))).is_empty());
    }

    #[test]
    fn a_pattern_that_is_not_a_regex_is_refused_with_why() {
        let config = serde_json::from_value(json!({"pattern": "(unclosed"})).unwrap();
        let error = TextRule::new(config).err().unwrap().to_string();
        assert!(error.starts_with("pattern: "), "{error}");
    }
}
