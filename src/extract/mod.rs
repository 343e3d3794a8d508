//! Extractors derive facts from the decoded image. They run on the blocking pool of
//! [`crate::imaging::DecodePool`], never on the async runtime.

mod analyze;
mod barcode;
mod ocr;

use librarian_model::{Barcode, Text};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::imaging::{ImageError, Pixels};

pub use analyze::{analyze, analyze_now};
pub use barcode::{BarcodeExtractor, BarcodeExtractorConfig};
pub use ocr::OcrExtractorConfig;

/// What extractors found in one image.
#[derive(Clone, Debug, Default)]
pub struct Extracted {
    pub barcodes: Vec<Barcode>,
    pub text: Option<Text>,
    /// Time spent decoding the pixels and running the extractors, for the metrics.
    pub decode_time: std::time::Duration,
    pub extract_time: std::time::Duration,
}

pub trait Extractor: Send + Sync {
    /// Adds what this extractor finds in the image to `found`, decoding the pixels at the
    /// sizes it needs; a decode error means the image is broken.
    fn extract(&self, pixels: &Pixels<'_>, found: &mut Extracted) -> Result<(), ImageError>;
}

/// An extractor's configuration, chosen by `kind`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExtractorConfig {
    /// Barcodes (1D and 2D) read with rxing (then zxing-cpp, in builds with that feature).
    Barcode(BarcodeExtractorConfig),
    /// Text and its lines, read with Tesseract (in builds with the cargo feature `ocr`, which
    /// the Docker image has).
    Ocr(OcrExtractorConfig),
}

/// Why an extractor's config cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("detect_max_side must be at least {min}, not {0}", min = barcode::MIN_DETECT_SIDE)]
    DetectMaxSideTooSmall(u32),
    #[error("{0}")]
    Ocr(String),
    /// The kind's cargo feature was off when this binary was built.
    #[error(
        "this build of librarian has no `{0}` extractor: it needs the cargo feature `{0}` \
         (`cargo build --release --features {0}`; the Docker image has it)"
    )]
    NotBuiltIn(&'static str),
}

/// Builds the extractor a config describes.
pub fn build(config: &ExtractorConfig) -> Result<Box<dyn Extractor>, BuildError> {
    Ok(match config {
        ExtractorConfig::Barcode(c) => Box::new(BarcodeExtractor::new(c)?),
        #[cfg(feature = "ocr")]
        ExtractorConfig::Ocr(c) => Box::new(ocr::OcrExtractor::new(c)?),
        #[cfg(not(feature = "ocr"))]
        ExtractorConfig::Ocr(c) => match c.problems() {
            Some(problem) => return Err(BuildError::Ocr(problem)),
            None => return Err(BuildError::NotBuiltIn("ocr")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detection_copy_too_small_is_refused_with_its_value() {
        let config: ExtractorConfig =
            serde_json::from_value(serde_json::json!({"kind": "barcode", "detect_max_side": 10}))
                .unwrap();
        let refused = build(&config).err().unwrap();
        assert!(matches!(refused, BuildError::DetectMaxSideTooSmall(10)));
        assert_eq!(
            refused.to_string(),
            "detect_max_side must be at least 64, not 10"
        );
    }
}
