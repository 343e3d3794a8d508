//! Removes metadata that can identify a contributor (EXIF with GPS position and camera serial,
//! XMP, IPTC, comments, PNG text) from JPEG, PNG and WebP files without touching their pixels.
//! The orientation tag stays, so photos still display upright; a pipeline may keep the capture
//! time in the record. In a JPEG, only the application segments that decoding needs are kept
//! (JFIF, the ICC colour profile, Adobe's colour transform), and nothing after the image's end:
//! a trailing image (MPF, motion photos) carries an EXIF of its own.

use bytes::Bytes;
use img_parts::jpeg::markers;
use img_parts::{DynImage, ImageEXIF};
use librarian_model::MetadataReport;

use crate::imaging::jpeg_end;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Facts a pipeline may keep in the record when it strips metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeepMetadata {
    /// EXIF DateTimeOriginal, as `capture_time`.
    CaptureTime,
}

#[derive(Debug, thiserror::Error)]
#[error("the image's metadata cannot be read, so it cannot be removed: {0}")]
pub struct StripError(#[source] img_parts::Error);

const XMP_PREFIX: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const EXTENDED_XMP_PREFIX: &[u8] = b"http://ns.adobe.com/xmp/extension/\0";
const ICC_PREFIX: &[u8] = b"ICC_PROFILE\0";

/// What a JPEG application segment is called in `metadata.removed`, or `None` when decoding
/// needs it and it stays.
fn removed_name(marker: u8, contents: &[u8]) -> Option<String> {
    match marker {
        markers::APP0 | markers::APP14 => None,
        markers::APP2 if contents.starts_with(ICC_PREFIX) => None,
        markers::APP1 if contents.starts_with(b"Exif\0\0") => Some("exif".into()),
        markers::APP1
            if contents.starts_with(XMP_PREFIX) || contents.starts_with(EXTENDED_XMP_PREFIX) =>
        {
            Some("xmp".into())
        }
        markers::APP2 if contents.starts_with(b"MPF\0") => Some("mpf".into()),
        markers::APP13 => Some("iptc".into()),
        markers::COM => Some("comment".into()),
        markers::APP0..=markers::APP15 => Some(format!("app{}", marker - markers::APP0)),
        _ => None,
    }
}

/// Pushes `name` once.
fn note(report: &mut MetadataReport, name: String) {
    if !report.removed.contains(&name) {
        report.removed.push(name);
    }
}

/// The file without its identifying metadata, and what was removed and kept.
pub fn strip(bytes: &Bytes, keep: &[KeepMetadata]) -> Result<(Bytes, MetadataReport), StripError> {
    let mut report = MetadataReport::default();
    let mut source = bytes.clone();
    if let Some(end) = jpeg_end(bytes)
        && end < bytes.len()
    {
        source.truncate(end);
        note(&mut report, "trailer".into());
    }
    let Some(mut image) = DynImage::from_bytes(source).map_err(StripError)? else {
        // GIF and BMP carry no EXIF; TIFF is kept as sent (documented).
        return Ok((bytes.clone(), report));
    };
    // What replaces the EXIF, set after the segments are sifted so the sifting need not tell it
    // from the original.
    let mut replacement = None;
    if let Some(exif) = image.exif() {
        note(&mut report, "exif".into());
        let parsed = exif::Reader::new().read_raw(exif.to_vec()).ok();
        let field = |tag| {
            parsed
                .as_ref()
                .and_then(|p| p.get_field(tag, exif::In::PRIMARY))
        };
        let orientation = field(exif::Tag::Orientation).and_then(|f| f.value.get_uint(0));
        if keep.contains(&KeepMetadata::CaptureTime)
            && let Some(time) = field(exif::Tag::DateTimeOriginal)
        {
            let text = time.display_value().to_string();
            report.kept.insert("capture_time".into(), text.into());
        }
        replacement = Some(orientation.map(|o| orientation_only_exif(o as u16)));
    }
    match &mut image {
        DynImage::Jpeg(jpeg) => {
            let mut removed = Vec::new();
            jpeg.segments_mut().retain(|s| {
                let name = removed_name(s.marker(), s.contents());
                removed.extend(name.clone());
                name.is_none()
            });
            for name in removed {
                note(&mut report, name);
            }
        }
        DynImage::Png(png) => {
            for kind in [*b"tEXt", *b"zTXt", *b"iTXt", *b"tIME"] {
                if png.chunk_by_type(kind).is_some() {
                    png.remove_chunks_by_type(kind);
                    report
                        .removed
                        .push(String::from_utf8_lossy(&kind).into_owned());
                }
            }
        }
        DynImage::WebP(webp) => {
            if webp.has_chunk(*b"XMP ") {
                webp.remove_chunks_by_id(*b"XMP ");
                report.removed.push("xmp".into());
            }
        }
    }
    if let Some(exif) = replacement {
        image.set_exif(exif);
    }
    Ok((image.encoder().bytes(), report))
}

/// A little-endian TIFF structure with one entry, the orientation.
fn orientation_only_exif(orientation: u16) -> Bytes {
    let mut tiff = Vec::with_capacity(26);
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // IFD0 right after the header
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // one value
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // padding of the 4-byte value field
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    Bytes::from(tiff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_orientation_exif_reads_back() {
        let exif = exif::Reader::new()
            .read_raw(orientation_only_exif(6).to_vec())
            .unwrap();
        let orientation = exif
            .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
            .unwrap();
        assert_eq!(orientation.value.get_uint(0), Some(6));
        assert_eq!(exif.fields().count(), 1);
    }
}
