use librarian_model::{Facts, Finding, normalize_gtin};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BuildError, Stage, Validator};

/// What a label is held against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LabelCheck {
    /// The label (string or number) is a GTIN equal to a detected EAN/UPC code.
    Gtin,
    /// The label is a box `{x, y, w, h}` in pixels that lies inside the image.
    BoxInsideImage,
    /// The label's value (a string or a number) appears in the text an `ocr` extractor read,
    /// ignoring case and spaces: `best_before = "12.05.2027"` against `BEST BEFORE 12.05. 2027`.
    TextContains,
}

/// A label must agree with the image facts or the barcodes found; runs after extraction.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelMatchesConfig {
    /// The label: a top-level name (`gtin`) or a JSON pointer (`/product/gtin`).
    pub label: String,
    pub check: LabelCheck,
    /// Reject submissions without the label; by default a missing label passes.
    #[serde(default)]
    pub required: bool,
}

pub struct LabelMatches {
    config: LabelMatchesConfig,
    pointer: String,
}

impl LabelMatches {
    pub fn new(config: LabelMatchesConfig) -> Result<Self, BuildError> {
        if config.label.is_empty() {
            return Err(BuildError::BadValue("`label` must name a label".into()));
        }
        let pointer = if config.label.starts_with('/') {
            config.label.clone()
        } else {
            format!("/{}", config.label.replace('~', "~0").replace('/', "~1"))
        };
        Ok(Self { config, pointer })
    }

    fn finding(&self, code: &str, message: String) -> Finding {
        Finding::new(code, Some(self.pointer.clone()), message)
    }

    fn check_gtin(&self, value: &Value, facts: &Facts<'_>) -> Option<Finding> {
        let text = match value {
            Value::String(s) => s.trim().to_owned(),
            // A number has lost its leading zeros; a GTIN is at most 14 digits.
            Value::Number(n) => format!("{:0>14}", n.to_string()),
            _ => String::new(),
        };
        let Some(wanted) = normalize_gtin(&text) else {
            return Some(self.finding(
                "label.not_a_gtin",
                format!("`{text}` is not a GTIN of 8, 12, 13 or 14 digits"),
            ));
        };
        let found: Vec<String> = facts.barcodes.iter().filter_map(|b| b.gtin()).collect();
        if found.contains(&wanted) {
            return None;
        }
        let disputed: Vec<String> = facts
            .barcodes
            .iter()
            .filter(|b| !b.conflicting_texts.is_empty())
            .map(|b| format!("{} or {}", b.text, b.conflicting_texts.join(" or ")))
            .collect();
        let seen = if !found.is_empty() {
            format!("the image shows {}", found.join(", "))
        } else if !disputed.is_empty() {
            format!(
                "the product code's reads disagree ({}); a clearer photo settles it",
                disputed.join("; ")
            )
        } else {
            "no EAN/UPC code was found in the image".to_owned()
        };
        Some(self.finding(
            "label.gtin_mismatch",
            format!("GTIN {wanted} does not match: {seen}"),
        ))
    }

    fn check_text(&self, value: &Value, facts: &Facts<'_>) -> Option<Finding> {
        let wanted = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Some(self.finding(
                    "label.not_text",
                    "the label must be a string or a number to be found in the text".into(),
                ));
            }
        };
        let folded = |text: &str| -> String {
            text.chars()
                .filter(|c| !c.is_whitespace())
                .flat_map(char::to_lowercase)
                .collect()
        };
        let read = facts.text.map_or("", |t| t.text.as_str());
        let needle = folded(&wanted);
        if needle.is_empty() || folded(read).contains(&needle) {
            return None;
        }
        let seen = match read.trim().is_empty() {
            true => "no text was read in the image".to_owned(),
            false => "it is not in the text read in the image".to_owned(),
        };
        Some(self.finding("label.not_in_text", format!("`{}`: {seen}", wanted.trim())))
    }

    fn check_box(&self, value: &Value, facts: &Facts<'_>) -> Option<Finding> {
        let side = |key: &str| value.get(key).and_then(Value::as_f64);
        let (Some(x), Some(y), Some(w), Some(h)) = (side("x"), side("y"), side("w"), side("h"))
        else {
            return Some(self.finding(
                "label.not_a_box",
                "the label must be an object with numbers x, y, w and h".into(),
            ));
        };
        let (width, height) = (f64::from(facts.image.width), f64::from(facts.image.height));
        let inside =
            x >= 0.0 && y >= 0.0 && w > 0.0 && h > 0.0 && x + w <= width && y + h <= height;
        (!inside).then(|| {
            self.finding(
                "label.box_outside_image",
                format!(
                    "box x={x} y={y} w={w} h={h} does not lie inside the {width}x{height} image"
                ),
            )
        })
    }
}

impl Validator for LabelMatches {
    /// A box is checked against the image header, so its finding comes back with the other
    /// label and header findings, before any pixel is decoded; a GTIN needs the barcodes.
    fn stage(&self) -> Stage {
        match self.config.check {
            LabelCheck::Gtin | LabelCheck::TextContains => Stage::Extracted,
            LabelCheck::BoxInsideImage => Stage::Header,
        }
    }

    fn check(&self, facts: &Facts<'_>) -> Vec<Finding> {
        let labels = Value::Object(facts.labels.clone());
        let finding = match labels.pointer(&self.pointer) {
            None | Some(Value::Null) if self.config.required => Some(self.finding(
                "label.missing",
                format!("the label `{}` is required", self.config.label),
            )),
            None | Some(Value::Null) => None,
            Some(value) => match self.config.check {
                LabelCheck::Gtin => self.check_gtin(value, facts),
                LabelCheck::BoxInsideImage => self.check_box(value, facts),
                LabelCheck::TextContains => self.check_text(value, facts),
            },
        };
        finding.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{barcode, image, labels};

    fn run(
        check: LabelCheck,
        label_json: Value,
        codes: &[librarian_model::Barcode],
    ) -> Vec<String> {
        let rule = LabelMatches::new(LabelMatchesConfig {
            label: "l".into(),
            check,
            required: true,
        })
        .unwrap();
        let labels = labels(json!({ "l": label_json }));
        let image = image(100, 50);
        let facts = Facts {
            labels: &labels,
            image: &image,
            barcodes: codes,
            text: None,
        };
        rule.check(&facts).into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn gtin_label_must_equal_a_detected_product_code() {
        let ean = [barcode("EAN_13", "0036000291452")];
        let upca = [barcode("UPC_A", "036000291452")];
        assert!(run(LabelCheck::Gtin, json!("036000291452"), &ean).is_empty());
        assert!(run(LabelCheck::Gtin, json!(36000291452_u64), &upca).is_empty());
        assert_eq!(
            run(LabelCheck::Gtin, json!("5449000000996"), &ean),
            ["label.gtin_mismatch"]
        );
        let mut disputed = barcode("EAN_13", "0036000291452");
        disputed.conflicting_texts = vec!["0036000291469".into()];
        assert_eq!(
            run(LabelCheck::Gtin, json!("036000291452"), &[disputed]),
            ["label.gtin_mismatch"],
            "a read other lines contradict proves no GTIN"
        );
        assert_eq!(
            run(LabelCheck::Gtin, json!("abc"), &ean),
            ["label.not_a_gtin"]
        );
    }

    /// The codes of a `text-contains` check of `label_json` against `read`.
    fn contains(label_json: Value, read: Option<&str>) -> Vec<String> {
        let rule = LabelMatches::new(LabelMatchesConfig {
            label: "best_before".into(),
            check: LabelCheck::TextContains,
            required: true,
        })
        .unwrap();
        let labels = labels(json!({ "best_before": label_json }));
        let text = read.map(|t| librarian_model::Text {
            text: t.into(),
            lines: Vec::new(),
        });
        let image = image(100, 50);
        let facts = Facts {
            labels: &labels,
            image: &image,
            barcodes: &[],
            text: text.as_ref(),
        };
        rule.check(&facts).into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_text_label_must_appear_in_the_text_read_ignoring_case_and_spaces() {
        let read = Some("Best Before\n12.05. 2027  LOT A4");
        assert!(contains(json!("12.05.2027"), read).is_empty());
        assert!(contains(json!("lot a4"), read).is_empty());
        assert!(
            contains(json!(2027), read).is_empty(),
            "a number as its text"
        );
        assert_eq!(contains(json!("13.05.2027"), read), ["label.not_in_text"]);
        assert_eq!(contains(json!("12.05.2027"), None), ["label.not_in_text"]);
        assert_eq!(contains(json!(["12"]), read), ["label.not_text"]);
        assert_eq!(contains(json!(null), read), ["label.missing"]);
    }

    #[test]
    fn box_label_must_lie_inside_the_image() {
        assert!(
            run(
                LabelCheck::BoxInsideImage,
                json!({"x": 0, "y": 0, "w": 100, "h": 50}),
                &[]
            )
            .is_empty()
        );
        assert_eq!(
            run(
                LabelCheck::BoxInsideImage,
                json!({"x": 10, "y": 0, "w": 100, "h": 5}),
                &[]
            ),
            ["label.box_outside_image"]
        );
        assert_eq!(
            run(LabelCheck::BoxInsideImage, json!([1, 2]), &[]),
            ["label.not_a_box"]
        );
    }

    #[test]
    fn a_required_label_must_be_present() {
        let rule = LabelMatches::new(LabelMatchesConfig {
            label: "gtin".into(),
            check: LabelCheck::Gtin,
            required: true,
        })
        .unwrap();
        let labels = labels(json!({}));
        let image = image(1, 1);
        let codes: Vec<_> = rule
            .check(&Facts {
                labels: &labels,
                image: &image,
                barcodes: &[],
                text: None,
            })
            .into_iter()
            .map(|f| f.code)
            .collect();
        assert_eq!(codes, ["label.missing"]);
    }
}
