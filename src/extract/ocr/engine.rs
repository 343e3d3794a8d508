//! The Tesseract engine behind the `ocr` extractor. Starting an engine loads its languages
//! (tens of MB, a good part of a second), so engines are kept and reused: one per read under
//! way, never shared by two at once.

use std::sync::Mutex;

use librarian_model::{PixelBox, Text, TextLine};
use tesseract::{PageSegMode, Tesseract};

use super::OcrExtractorConfig;
use super::tsv::{EngineLine, lines};
use crate::extract::{BuildError, Extracted, Extractor};
use crate::imaging::{ImageError, Pixels};

pub struct OcrExtractor {
    config: OcrExtractorConfig,
    /// Tesseract's name of the languages together: `eng+deu`.
    languages: String,
    /// Engines not reading now; a read takes one (or starts one) and gives it back.
    idle: Mutex<Vec<Tesseract>>,
}

impl OcrExtractor {
    /// Checks the config and starts one engine, so that a language that is not installed
    /// stops the start, not a contributor's request.
    pub fn new(config: &OcrExtractorConfig) -> Result<Self, BuildError> {
        if let Some(problem) = config.problems() {
            return Err(BuildError::Ocr(problem));
        }
        let extractor = Self {
            config: config.clone(),
            languages: config.languages.join("+"),
            idle: Mutex::default(),
        };
        let engine = extractor.start().map_err(BuildError::Ocr)?;
        extractor.give_back(engine);
        Ok(extractor)
    }

    fn start(&self) -> Result<Tesseract, String> {
        let tessdata = match &self.config.tessdata {
            Some(dir) => Some(
                dir.to_str()
                    .ok_or_else(|| format!("tessdata {} is not UTF-8", dir.display()))?,
            ),
            None => None,
        };
        let place = tessdata.unwrap_or("Tesseract's own tessdata folder");
        let mut engine = Tesseract::new(tessdata, Some(&self.languages)).map_err(|e| {
            format!(
                "cannot load the languages `{}` from {place}: {e} (each needs its traineddata \
                 file; on Debian, the package tesseract-ocr-<language>)",
                self.languages
            )
        })?;
        // Tesseract prints its diagnostics ("Empty page!!") to standard error, between the
        // service's structured log lines; what matters of them is logged here instead.
        engine = engine
            .set_variable("debug_file", "/dev/null")
            .map_err(|e| format!("debug_file: {e}"))?;
        if let Some(allowed) = &self.config.allow_chars {
            engine = engine
                .set_variable("tessedit_char_whitelist", allowed)
                .map_err(|e| format!("allow_chars: {e}"))?;
        }
        engine.set_page_seg_mode(page_seg_mode(self.config.psm));
        Ok(engine)
    }

    fn take(&self) -> Result<Tesseract, String> {
        let idle = self.idle.lock().expect("not poisoned").pop();
        idle.map_or_else(|| self.start(), Ok)
    }

    fn give_back(&self, engine: Tesseract) {
        self.idle.lock().expect("not poisoned").push(engine);
    }

    /// The lines of a gray image, in its pixels; the engine comes back when the read worked.
    fn read(&self, engine: Tesseract, image: &image::GrayImage) -> Result<Vec<EngineLine>, String> {
        let (width, height) = image.dimensions();
        let side = |n: u32| i32::try_from(n).map_err(|_| "the image is too large".to_owned());
        let mut engine = engine
            .set_frame(image.as_raw(), side(width)?, side(height)?, 1, side(width)?)
            .map_err(|e| e.to_string())?
            .set_source_resolution(self.config.dpi as i32)
            .recognize()
            .map_err(|e| e.to_string())?;
        let tsv = engine.get_tsv_text(0).map_err(|e| e.to_string())?;
        self.give_back(engine);
        Ok(lines(&tsv))
    }
}

fn page_seg_mode(psm: u8) -> PageSegMode {
    match psm {
        3 => PageSegMode::PsmAuto,
        4 => PageSegMode::PsmSingleColumn,
        5 => PageSegMode::PsmSingleBlockVertText,
        6 => PageSegMode::PsmSingleBlock,
        7 => PageSegMode::PsmSingleLine,
        8 => PageSegMode::PsmSingleWord,
        9 => PageSegMode::PsmCircleWord,
        10 => PageSegMode::PsmSingleChar,
        11 => PageSegMode::PsmSparseText,
        12 => PageSegMode::PsmSparseTextOsd,
        _ => PageSegMode::PsmRawLine,
    }
}

impl Extractor for OcrExtractor {
    fn extract(&self, pixels: &Pixels<'_>, found: &mut Extracted) -> Result<(), ImageError> {
        let (full_width, full_height) = pixels.full()?.dimensions();
        let scaled = pixels.reduced(self.config.max_side)?;
        let engine = self.take().map_err(|error| {
            tracing::error!(%error, "an OCR engine could not be started");
            ImageError::Busy
        })?;
        let read = self.read(engine, &scaled.image).unwrap_or_else(|error| {
            // A photo the engine cannot read holds no text it could give.
            tracing::warn!(%error, "the OCR engine failed on an image");
            Vec::new()
        });
        let to_full = |n: u32, limit: u32| ((n as f32 * scaled.scale).round() as u32).min(limit);
        let text = found.text.get_or_insert_with(Text::default);
        for line in read {
            if line.confidence < self.config.min_confidence {
                continue;
            }
            let (x, y) = (
                to_full(line.left, full_width),
                to_full(line.top, full_height),
            );
            let bounds = PixelBox {
                x,
                y,
                w: to_full(line.left + line.width, full_width) - x,
                h: to_full(line.top + line.height, full_height) - y,
            };
            if !text.text.is_empty() {
                text.text.push('\n');
            }
            text.text.push_str(&line.text);
            text.lines.push(TextLine {
                text: line.text,
                confidence: line.confidence,
                bounds,
            });
        }
        Ok(())
    }
}
