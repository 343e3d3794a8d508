use librarian_model::{Facts, Finding, ImageFormat};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{BuildError, Stage, Validator, check_range};

/// Limits on the image, all read from its header: no pixel is decoded to check them, so a
/// decompression bomb is refused before it costs memory.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageRuleConfig {
    /// Allowed formats; empty allows every format Librarian reads. Others are refused with 415.
    #[serde(default)]
    pub formats: Vec<ImageFormat>,
    /// Narrowest accepted image, in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_width: Option<u32>,
    /// Widest accepted image, in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_width: Option<u32>,
    /// Lowest accepted image height, in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_height: Option<u32>,
    /// Highest accepted image height, in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// Largest accepted file, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Largest accepted width x height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pixels: Option<u64>,
}

pub struct ImageRule {
    config: ImageRuleConfig,
}

impl ImageRule {
    pub fn new(config: ImageRuleConfig) -> Result<Self, BuildError> {
        check_range("width", config.min_width, config.max_width)?;
        check_range("height", config.min_height, config.max_height)?;
        if config.max_pixels == Some(0) || config.max_bytes == Some(0) {
            return Err(BuildError::BadValue(
                "max_pixels and max_bytes must be greater than 0".into(),
            ));
        }
        Ok(Self { config })
    }
}

impl Validator for ImageRule {
    fn stage(&self) -> Stage {
        Stage::Header
    }

    fn check(&self, facts: &Facts<'_>) -> Vec<Finding> {
        let c = &self.config;
        let img = facts.image;
        let mut findings = Vec::new();
        let mut limit = |broken: bool, code: &str, message: String| {
            if broken {
                findings.push(Finding::new(code, Some("/image".into()), message));
            }
        };
        if let Some(min) = c.min_width {
            limit(
                img.width < min,
                "image.too_narrow",
                format!(
                    "the image is {} pixels wide; at least {min} are required",
                    img.width
                ),
            );
        }
        if let Some(max) = c.max_width {
            limit(
                img.width > max,
                "image.too_wide",
                format!(
                    "the image is {} pixels wide; at most {max} are allowed",
                    img.width
                ),
            );
        }
        if let Some(min) = c.min_height {
            limit(
                img.height < min,
                "image.too_short",
                format!(
                    "the image is {} pixels high; at least {min} are required",
                    img.height
                ),
            );
        }
        if let Some(max) = c.max_height {
            limit(
                img.height > max,
                "image.too_tall",
                format!(
                    "the image is {} pixels high; at most {max} are allowed",
                    img.height
                ),
            );
        }
        if let Some(max) = c.max_bytes {
            limit(
                img.bytes > max,
                "image.too_many_bytes",
                format!(
                    "the image file has {} bytes; at most {max} are allowed",
                    img.bytes
                ),
            );
        }
        if let Some(max) = c.max_pixels {
            limit(
                img.pixels() > max,
                "image.too_many_pixels",
                format!(
                    "the image has {} pixels; at most {max} are allowed",
                    img.pixels()
                ),
            );
        }
        findings
    }

    fn accepts_format(&self, format: ImageFormat) -> bool {
        self.config.formats.is_empty() || self.config.formats.contains(&format)
    }

    fn max_pixels(&self) -> Option<u64> {
        self.config.max_pixels
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{image, labels};

    #[test]
    fn reports_every_broken_limit() {
        let rule = ImageRule::new(ImageRuleConfig {
            min_width: Some(200),
            max_height: Some(100),
            max_pixels: Some(1000),
            ..Default::default()
        })
        .unwrap();
        let labels = labels(json!({}));
        let image = image(100, 500);
        let facts = Facts {
            labels: &labels,
            image: &image,
            barcodes: &[],
            text: None,
        };
        let codes: Vec<_> = rule.check(&facts).into_iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            [
                "image.too_narrow",
                "image.too_tall",
                "image.too_many_pixels"
            ]
        );
    }

    #[test]
    fn formats_filter_and_empty_allows_all() {
        let only_png = ImageRule::new(ImageRuleConfig {
            formats: vec![ImageFormat::Png],
            ..Default::default()
        })
        .unwrap();
        assert!(only_png.accepts_format(ImageFormat::Png));
        assert!(!only_png.accepts_format(ImageFormat::Jpeg));
        let any = ImageRule::new(ImageRuleConfig::default()).unwrap();
        assert!(ImageFormat::ALL.iter().all(|f| any.accepts_format(*f)));
    }

    #[test]
    fn refuses_an_inverted_range() {
        let bad = ImageRule::new(ImageRuleConfig {
            min_width: Some(500),
            max_width: Some(100),
            ..Default::default()
        });
        assert!(matches!(bad, Err(BuildError::BadValue(m)) if m.contains("min_width")));
    }
}
