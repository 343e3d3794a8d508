//! The validator trait and Librarian's built-in validators.
//!
//! A validator accepts or rejects a submission with reasons; it never changes data. Each kind
//! has a typed config; [`ValidatorConfig`] gathers them in one closed enum and [`build`] is
//! the one place that turns a config into a component.

mod barcode;
mod image;
mod json_schema;
mod label_matches;
mod text;

use std::path::{Path, PathBuf};

use librarian_model::{Facts, Finding, ImageFormat};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::barcode::BarcodeRuleConfig;
pub use crate::image::ImageRuleConfig;
pub use crate::json_schema::JsonSchemaConfig;
pub use crate::label_matches::{LabelCheck, LabelMatchesConfig};
pub use crate::text::TextRuleConfig;

/// When a validator can run: the flow runs cheap stages first and decodes pixels only when
/// every check of the earlier stages passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Needs only the labels.
    Labels,
    /// Needs the image header facts (format, size, bytes), no pixels.
    Header,
    /// Needs facts the extractors derived (barcodes, text).
    Extracted,
}

pub trait Validator: Send + Sync {
    fn stage(&self) -> Stage;

    /// Every reason to reject; empty when the submission passes.
    fn check(&self, facts: &Facts<'_>) -> Vec<Finding>;

    /// Whether an image of this format may be submitted at all (refused with 415 otherwise).
    fn accepts_format(&self, _format: ImageFormat) -> bool {
        true
    }

    /// The largest image, in pixels, this validator lets through, for the decoder's limits.
    fn max_pixels(&self) -> Option<u64> {
        None
    }

    /// The JSON Schema the labels must follow, so a UI can build its form from it.
    fn label_schema(&self) -> Option<&Value> {
        None
    }
}

/// A validator's configuration, chosen by `kind`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ValidatorConfig {
    /// Labels must follow a JSON Schema (drafts 4 to 2020-12), given as exactly one of
    /// `schema` and `schema_file`.
    JsonSchema(JsonSchemaConfig),
    /// Limits on the image, read from its header before any pixel is decoded.
    Image(ImageRuleConfig),
    /// Rules on the barcodes found in the image.
    Barcode(BarcodeRuleConfig),
    /// A label must agree with the image facts, the barcodes found or the text read.
    LabelMatches(LabelMatchesConfig),
    /// Rules on the text an `ocr` extractor read.
    Text(TextRuleConfig),
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read schema file {}: {source}", .path.display())]
    SchemaUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("schema file {} is not JSON: {source}", .path.display())]
    SchemaNotJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid JSON Schema: {0}")]
    InvalidSchema(#[source] jsonschema::ValidationError<'static>),
    #[error("{0}")]
    BadValue(String),
}

/// Builds the validator a config describes; relative files are read from `base_dir`.
pub fn build(config: &ValidatorConfig, base_dir: &Path) -> Result<Box<dyn Validator>, BuildError> {
    Ok(match config {
        ValidatorConfig::JsonSchema(c) => {
            Box::new(json_schema::JsonSchemaValidator::new(c, base_dir)?)
        }
        ValidatorConfig::Image(c) => Box::new(image::ImageRule::new(c.clone())?),
        ValidatorConfig::Barcode(c) => Box::new(barcode::BarcodeRule::new(c.clone())?),
        ValidatorConfig::LabelMatches(c) => Box::new(label_matches::LabelMatches::new(c.clone())?),
        ValidatorConfig::Text(c) => Box::new(text::TextRule::new(c.clone())?),
    })
}

/// Checks that a range's lower bound is not above its upper bound.
fn check_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), BuildError> {
    match (min, max) {
        (Some(lo), Some(hi)) if lo > hi => Err(BuildError::BadValue(format!(
            "min_{name} ({lo}) is greater than max_{name} ({hi})"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use librarian_model::{Barcode, ImageFacts, ImageFormat, Labels};

    pub fn image(width: u32, height: u32) -> ImageFacts {
        ImageFacts {
            format: ImageFormat::Jpeg,
            width,
            height,
            bytes: 1000,
            sha256: "00".repeat(32),
        }
    }

    pub fn labels(value: serde_json::Value) -> Labels {
        value
            .as_object()
            .cloned()
            .expect("labels must be an object")
    }

    pub fn barcode(format: &str, text: &str) -> Barcode {
        Barcode {
            text: text.into(),
            format: format.parse().expect("a known barcode format"),
            kind: "product".into(),
            points: vec![[0.0, 0.0], [10.0, 0.0]],
            conflicting_texts: vec![],
            gs1: false,
            sequence: None,
        }
    }
}
