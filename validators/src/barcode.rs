use librarian_model::{BarcodeFormat, Facts, Finding};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{BuildError, Stage, Validator, check_range};

/// Rules on the barcodes the extractors found; runs after extraction.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BarcodeRuleConfig {
    /// At least one barcode (of an allowed format) must be found.
    #[serde(default)]
    pub required: bool,
    /// Allowed formats (`EAN_13`, `QR_CODE`, …); empty allows every format.
    #[serde(default)]
    pub formats: Vec<BarcodeFormat>,
    /// Fewest barcodes of an allowed format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<usize>,
    /// Most barcodes of an allowed format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<usize>,
}

pub struct BarcodeRule {
    config: BarcodeRuleConfig,
}

impl BarcodeRule {
    pub fn new(config: BarcodeRuleConfig) -> Result<Self, BuildError> {
        check_range("count", config.min_count, config.max_count)?;
        Ok(Self { config })
    }
}

impl Validator for BarcodeRule {
    fn stage(&self) -> Stage {
        Stage::Extracted
    }

    fn check(&self, facts: &Facts<'_>) -> Vec<Finding> {
        let c = &self.config;
        let allowed = |format: BarcodeFormat| c.formats.is_empty() || c.formats.contains(&format);
        let names = || {
            let names: Vec<&str> = c.formats.iter().map(|f| f.name()).collect();
            names.join(", ")
        };
        let path = || Some("/barcodes".to_owned());
        let mut findings = Vec::new();
        for (i, code) in facts.barcodes.iter().enumerate() {
            if !allowed(code.format) {
                findings.push(Finding::new(
                    "barcode.format_not_allowed",
                    Some(format!("/barcodes/{i}")),
                    format!(
                        "a {} barcode was found; allowed formats are {}",
                        code.format,
                        names()
                    ),
                ));
            }
        }
        let count = facts.barcodes.iter().filter(|b| allowed(b.format)).count();
        let min = c.min_count.unwrap_or(0).max(usize::from(c.required));
        if count < min {
            let what = if c.formats.is_empty() {
                "barcode".to_owned()
            } else {
                format!("barcode ({})", names())
            };
            findings.push(Finding::new(
                "barcode.missing",
                path(),
                format!("{count} {what} found; at least {min} required"),
            ));
        }
        if let Some(max) = c.max_count.filter(|max| count > *max) {
            findings.push(Finding::new(
                "barcode.too_many",
                path(),
                format!("{count} barcodes found; at most {max} allowed"),
            ));
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{barcode, image, labels};

    fn codes(rule: &BarcodeRule, found: &[librarian_model::Barcode]) -> Vec<String> {
        let labels = labels(json!({}));
        let image = image(10, 10);
        let facts = Facts {
            labels: &labels,
            image: &image,
            barcodes: found,
            text: None,
        };
        rule.check(&facts).into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn required_wants_one_of_an_allowed_format() {
        let rule = BarcodeRule::new(BarcodeRuleConfig {
            required: true,
            formats: vec![BarcodeFormat::Ean13],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(codes(&rule, &[]), ["barcode.missing"]);
        assert_eq!(
            codes(&rule, &[barcode("QR_CODE", "hi")]),
            ["barcode.format_not_allowed", "barcode.missing"]
        );
        assert!(codes(&rule, &[barcode("EAN_13", "5449000000996")]).is_empty());
    }

    #[test]
    fn max_count_limits_the_number() {
        let rule = BarcodeRule::new(BarcodeRuleConfig {
            max_count: Some(1),
            ..Default::default()
        })
        .unwrap();
        let two = [barcode("EAN_13", "5449000000996"), barcode("QR_CODE", "x")];
        assert_eq!(codes(&rule, &two), ["barcode.too_many"]);
    }
}
