//! The pixels of one image, decoded once when an extractor first asks, in full or as a shrunk
//! copy for searching a large photo quickly.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::io::Cursor;
use std::time::{Duration, Instant};

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, ImageReader, Limits};
use librarian_model::{ImageFacts, ImageFormat};

use super::{DECODE_PIXEL_LIMIT, ImageError, jpeg, png};

/// A grayscale copy of the image and how many of the original's pixels one of its pixels spans.
pub struct Scaled<'p> {
    pub image: Cow<'p, GrayImage>,
    pub scale: f32,
}

pub struct Pixels<'a> {
    bytes: &'a [u8],
    facts: &'a ImageFacts,
    full: OnceCell<GrayImage>,
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
        within_limit(facts, max_pixels)?;
        if facts.format == ImageFormat::Jpeg {
            jpeg::check_complete(bytes, facts)?;
        }
        Ok(Self {
            bytes,
            facts,
            full: OnceCell::new(),
            decode_time: Cell::new(Duration::ZERO),
        })
    }

    pub fn facts(&self) -> &ImageFacts {
        self.facts
    }

    /// Time spent decoding and shrinking so far, for the metrics.
    pub fn decode_time(&self) -> Duration {
        self.decode_time.get()
    }

    fn timed<T>(&self, decode: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let result = decode();
        self.decode_time
            .set(self.decode_time.get() + started.elapsed());
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

    /// A copy whose longest side is at most `max_side` (the image itself when it is that
    /// small), shrunk by averaging so that thin bars survive.
    pub fn reduced(&self, max_side: u32) -> Result<Scaled<'_>, ImageError> {
        let full = self.full()?;
        let (width, height) = full.dimensions();
        let longest = width.max(height);
        if longest <= max_side {
            return Ok(Scaled {
                image: Cow::Borrowed(full),
                scale: 1.0,
            });
        }
        let scale = longest as f32 / max_side as f32;
        let size = |side: u32| ((side as f32 / scale).round() as u32).max(1);
        let image = self.timed(|| shrink(full, size(width), size(height)));
        Ok(Scaled {
            image: Cow::Owned(image),
            scale,
        })
    }
}

/// Refuses an image above `max_pixels` (or the global limit), or one with no pixel at all.
pub fn within_limit(facts: &ImageFacts, max_pixels: u64) -> Result<(), ImageError> {
    let limit = max_pixels.min(DECODE_PIXEL_LIMIT);
    if facts.pixels() > limit || facts.width == 0 || facts.height == 0 {
        return Err(ImageError::TooManyPixels {
            pixels: facts.pixels(),
            limit,
        });
    }
    Ok(())
}

fn shrink(image: &GrayImage, width: u32, height: u32) -> GrayImage {
    let source = ImageRef::new(image.width(), image.height(), image.as_raw(), PixelType::U8)
        .expect("a GrayImage holds one byte per pixel");
    let mut shrunk = Image::new(width, height, PixelType::U8);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    Resizer::new()
        .resize(&source, &mut shrunk, &options)
        .expect("same pixel type on both sides");
    GrayImage::from_raw(width, height, shrunk.into_vec()).expect("the size asked for")
}

fn decode_full(bytes: &[u8], facts: &ImageFacts) -> Result<GrayImage, ImageError> {
    match facts.format {
        ImageFormat::Jpeg => return jpeg::decode_full(bytes, facts),
        ImageFormat::Png => return png::decode_gray(bytes, facts),
        _ => {}
    }
    let decoded = limited_reader(bytes, facts)?
        .decode()
        .map_err(|e| ImageError::Undecodable(facts.format, e.to_string()))?;
    Ok(decoded.into_luma8())
}

/// A reader of `image` that decodes no more than the header declared: its size, and room for
/// the image in its widest colour type (16-bit RGBA) with some slack.
pub(super) fn limited_reader<'b>(
    bytes: &'b [u8],
    facts: &ImageFacts,
) -> Result<ImageReader<Cursor<&'b [u8]>>, ImageError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| ImageError::UnknownFormat)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(facts.width);
    limits.max_image_height = Some(facts.height);
    limits.max_alloc = Some(facts.pixels() * 8 + (64 << 20));
    reader.limits(limits);
    Ok(reader)
}
