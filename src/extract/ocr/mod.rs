//! Text in the image, read with Tesseract (cargo feature `ocr`): the full text and each line
//! with its confidence and box in the original image's pixels. The image is the gray one the
//! barcode reader decoded, scaled to `max_side` for the engine and mapped back.

#[cfg(feature = "ocr")]
mod engine;
#[cfg(feature = "ocr")]
mod tsv;

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ocr")]
pub use engine::OcrExtractor;

/// Tesseract's page segmentation modes run on a whole image (`--psm`); 0 (orientation only)
/// and 1 and 2 (which need the `osd` data or read nothing) are not offered.
pub const PAGE_SEGMENTATION_MODES: std::ops::RangeInclusive<u8> = 3..=13;

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OcrExtractorConfig {
    /// Tesseract languages read, by their traineddata names (`eng`, `deu`, `fra`, …); each must
    /// be installed (Debian: `tesseract-ocr-<lang>`). Several are tried together.
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// Page segmentation mode, as Tesseract's `--psm`: 3 finds blocks of text by itself, 6 reads
    /// one uniform block, 7 one line, 11 sparse text anywhere (labels and packages).
    #[serde(default = "default_psm")]
    pub psm: u8,
    /// Lines read with a lower confidence (0 to 100, the mean of their words') are dropped.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f32,
    /// The image's longest side for the engine, in pixels: larger photos are scaled down (the
    /// boxes are mapped back), which bounds the time of a read.
    #[serde(default = "default_max_side")]
    pub max_side: u32,
    /// The resolution the engine assumes, in dots per inch, at `max_side`.
    #[serde(default = "default_dpi")]
    pub dpi: u32,
    /// Only these characters are recognised (Tesseract's `tessedit_char_whitelist`), e.g.
    /// `"0123456789./-"` for dates; unset, every character of the languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_chars: Option<String>,
    /// The folder holding the traineddata files; unset, Tesseract's own (`TESSDATA_PREFIX`, or
    /// where the system installed them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "path"))]
    pub tessdata: Option<PathBuf>,
}

fn default_languages() -> Vec<String> {
    vec!["eng".into()]
}
fn default_psm() -> u8 {
    3
}
fn default_min_confidence() -> f32 {
    50.0
}
fn default_max_side() -> u32 {
    2000
}
fn default_dpi() -> u32 {
    300
}

/// The smallest `max_side`: smaller copies leave no legible text.
pub const MIN_MAX_SIDE: u32 = 200;

impl OcrExtractorConfig {
    /// What the config says that cannot be right, before any engine is started.
    pub fn problems(&self) -> Option<String> {
        let language_name = |l: &String| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if self.languages.is_empty() || !self.languages.iter().all(language_name) {
            return Some(format!(
                "languages must name traineddata files (`eng`, `chi_sim`), not {:?}",
                self.languages
            ));
        }
        if !PAGE_SEGMENTATION_MODES.contains(&self.psm) {
            return Some(format!(
                "psm must be one of {}..={}, not {}",
                PAGE_SEGMENTATION_MODES.start(),
                PAGE_SEGMENTATION_MODES.end(),
                self.psm
            ));
        }
        if !(0.0..=100.0).contains(&self.min_confidence) {
            return Some(format!(
                "min_confidence must be within 0 and 100, not {}",
                self.min_confidence
            ));
        }
        if self.max_side < MIN_MAX_SIDE {
            return Some(format!(
                "max_side must be at least {MIN_MAX_SIDE}, not {}",
                self.max_side
            ));
        }
        if !(50..=1200).contains(&self.dpi) {
            return Some(format!("dpi must be within 50 and 1200, not {}", self.dpi));
        }
        None
    }
}
