//! The pixels of one image, decoded lazily at the sizes the extractors ask for: a large JPEG
//! is searched in a copy decoded at a fraction of its size and decoded in full only when an
//! extractor needs more.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::io::Cursor;
use std::time::{Duration, Instant};

use image::imageops::FilterType;
use image::{GrayImage, ImageReader, Limits};
use librarian_model::{ImageFacts, ImageFormat};

use super::{DECODE_PIXEL_LIMIT, ImageError, jpeg};

/// A grayscale copy of the image and how many of the original's pixels one of its pixels spans.
pub struct Scaled<'p> {
    pub image: Cow<'p, GrayImage>,
    pub scale: f32,
}

pub struct Pixels<'a> {
    bytes: &'a [u8],
    facts: &'a ImageFacts,
    full: OnceCell<GrayImage>,
    decoded: Cell<bool>,
    decode_time: Cell<Duration>,
}

impl<'a> Pixels<'a> {
    /// Refuses images above `max_pixels` (or the global limit) and truncated JPEGs; decodes
    /// nothing yet.
    pub fn new(
        bytes: &'a [u8],
        facts: &'a ImageFacts,
        max_pixels: u64,
    ) -> Result<Self, ImageError> {
        let limit = max_pixels.min(DECODE_PIXEL_LIMIT);
        if facts.pixels() > limit || facts.width == 0 || facts.height == 0 {
            return Err(ImageError::TooManyPixels {
                pixels: facts.pixels(),
                limit,
            });
        }
        if facts.format == ImageFormat::Jpeg {
            jpeg::check_complete(bytes)?;
        }
        Ok(Self {
            bytes,
            facts,
            full: OnceCell::new(),
            decoded: Cell::new(false),
            decode_time: Cell::new(Duration::ZERO),
        })
    }

    pub fn facts(&self) -> &ImageFacts {
        self.facts
    }

    /// Time spent decoding so far, for the metrics.
    pub fn decode_time(&self) -> Duration {
        self.decode_time.get()
    }

    /// Decodes the image once at the cheapest size if no extractor has, so that a broken file
    /// is refused even by a pipeline that reads nothing from its pixels.
    pub fn ensure_decoded(&self) -> Result<(), ImageError> {
        if self.decoded.get() {
            return Ok(());
        }
        if self.facts.format == ImageFormat::Jpeg
            && self
                .timed(|| jpeg::decode_scaled(self.bytes, self.facts, 8))?
                .is_some()
        {
            return Ok(());
        }
        self.full().map(|_| ())
    }

    fn timed<T>(&self, decode: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = decode();
        self.decode_time
            .set(self.decode_time.get() + started.elapsed());
        self.decoded.set(true);
        result
    }

    /// The whole image at full resolution, decoded on first use.
    pub fn full(&self) -> Result<&GrayImage, ImageError> {
        if let Some(image) = self.full.get() {
            return Ok(image);
        }
        let image = self.timed(|| decode_full(self.bytes, self.facts))?;
        Ok(self.full.get_or_init(|| image))
    }

    /// A copy whose longest side is at most `max_side`. A JPEG is decoded straight at 1/2, 1/4
    /// or 1/8 of its size (the largest that fits), so a 12 MP photo is never decoded in full
    /// for this; other formats are decoded in full and shrunk.
    pub fn reduced(&self, max_side: u32) -> Result<Scaled<'_>, ImageError> {
        let longest = self.facts.width.max(self.facts.height);
        if longest <= max_side {
            return Ok(Scaled {
                image: Cow::Borrowed(self.full()?),
                scale: 1.0,
            });
        }
        if self.facts.format == ImageFormat::Jpeg && self.full.get().is_none() {
            let divisor = [2, 4, 8]
                .into_iter()
                .find(|d| longest.div_ceil(*d) <= max_side)
                .unwrap_or(8);
            if let Some(image) =
                self.timed(|| jpeg::decode_scaled(self.bytes, self.facts, divisor))?
            {
                return Ok(shrunk(Cow::Owned(image), longest, max_side));
            }
        }
        Ok(shrunk(Cow::Borrowed(self.full()?), longest, max_side))
    }
}

/// `image` (a copy of a picture whose longest side is `longest`) resized to fit `max_side`.
fn shrunk(image: Cow<'_, GrayImage>, longest: u32, max_side: u32) -> Scaled<'_> {
    let (width, height) = image.dimensions();
    let own_longest = width.max(height);
    if own_longest <= max_side {
        return Scaled {
            scale: longest as f32 / own_longest as f32,
            image,
        };
    }
    let ratio = max_side as f32 / own_longest as f32;
    let resized = image::imageops::resize(
        image.as_ref(),
        ((width as f32 * ratio).round() as u32).max(1),
        ((height as f32 * ratio).round() as u32).max(1),
        FilterType::Triangle,
    );
    Scaled {
        scale: longest as f32 / resized.width().max(resized.height()) as f32,
        image: Cow::Owned(resized),
    }
}

fn decode_full(bytes: &[u8], facts: &ImageFacts) -> Result<GrayImage, ImageError> {
    if facts.format == ImageFormat::Jpeg {
        return jpeg::decode_full(bytes, facts);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| ImageError::UnknownFormat)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(facts.width);
    limits.max_image_height = Some(facts.height);
    // Room for the decoded image in its widest colour type (16-bit RGBA) and some slack.
    limits.max_alloc = Some(facts.pixels() * 8 + (64 << 20));
    reader.limits(limits);
    let decoded = reader
        .decode()
        .map_err(|e| ImageError::Undecodable(facts.format, e.to_string()))?;
    Ok(decoded.into_luma8())
}
