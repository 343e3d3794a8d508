//! Reads a submission from a request: a JSON body, a multipart form or a raw image body, with
//! labels from the query string merged in. The body limit is the config's, checked against
//! Content-Length before a byte is read.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use librarian_model::Labels;
use salvo::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use salvo::http::{ParseError, ReqBody};
use salvo::prelude::*;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::pipeline::Submission;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the multipart body cannot be read: {0}")]
    MalformedMultipart(String),
    #[error("the body could not be read: {0}")]
    Unreadable(String),
    #[error("the image is not valid base64 or a base64 data: URL ({0})")]
    BadBase64(String),
    #[error(
        "no image: send it in the `{0}` field (or its URL in `image_url`), or as the raw body \
         with an image/* content type"
    )]
    MissingImage(String),
    #[error("send the image in `{0}` or its URL in `image_url`, not both")]
    ImageTwice(String),
    #[error("`image_url` must be a string")]
    ImageUrlNotText,
    #[error("labels must be a JSON object")]
    LabelsNotObject,
    #[error("the labels are not valid JSON: {0}")]
    MalformedLabels(String),
    #[error("the labels nest deeper than {MAX_LABEL_DEPTH} levels")]
    LabelsTooDeep,
    #[error(
        "the label number {0} is an integer outside the 64-bit range, which no store keeps \
         exactly; send it as a string"
    )]
    WideInteger(String),
    #[error("the labels take {bytes} bytes as JSON; this server keeps at most {limit}")]
    LabelsTooLarge { bytes: usize, limit: usize },
    #[error("`{0}` is not a UUID")]
    BadId(String),
    #[error("the body is larger than {0} bytes, the limit of this server")]
    TooLarge(usize),
    #[error(
        "the body did not arrive in time: this server waits {} s for it, and one more second \
         for every {} bytes received", .0.timeout.as_secs(), .0.min_rate
    )]
    TooSlow(BodyPace),
    #[error(
        "content type `{0}` is not accepted: send application/json, multipart/form-data or image/*"
    )]
    UnsupportedType(String),
}

/// Standard or URL-safe alphabet, padding optional: what browsers and scripts send.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes plain base64 or a `data:<type>;base64,<data>` URL.
pub fn decode_image_text(text: &str) -> Result<Bytes, InputError> {
    let data = match text.trim().strip_prefix("data:") {
        Some(url) => {
            let (meta, data) = url
                .split_once(',')
                .ok_or_else(|| InputError::BadBase64("a data: URL needs a comma".into()))?;
            if !meta.ends_with(";base64") {
                return Err(InputError::BadBase64(
                    "the data: URL is not base64-encoded".into(),
                ));
            }
            data
        }
        None => text,
    };
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(InputError::BadBase64("it is empty".into()));
    }
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .map(Bytes::from)
        .map_err(|e| InputError::BadBase64(e.to_string()))
}

/// A query or form value as a label. With a schema for the label, it takes the type the schema
/// gives it (a string stays a string, digits and leading zeros and all). Without one, it
/// becomes a number only when the number's canonical text is exactly the text sent (so `007`,
/// `1e5` and 20-digit codes stay strings: nothing sent is lost), and `true`/`false` booleans.
pub fn typed_value(text: &str, schema: Option<&Value>) -> Value {
    let types: Vec<&str> = match schema.map(|s| &s["type"]) {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"string") {
        return text.into();
    }
    let wants = |kind| types.is_empty() || types.contains(&kind);
    if wants("integer") || wants("number") {
        if let Ok(n) = text.parse::<i64>()
            && (n.to_string() == text || !types.is_empty())
        {
            return n.into();
        }
        if let Ok(x) = text.parse::<f64>()
            && x.is_finite()
        {
            let value = Value::from(x);
            let canonical = value.to_string();
            if types.contains(&"number") || canonical == text {
                return value;
            }
        }
    }
    match text {
        "true" if wants("boolean") => true.into(),
        "false" if wants("boolean") => false.into(),
        _ => text.into(),
    }
}

/// How deep labels may nest, counting the labels object itself. Far below the 128 levels at
/// which the JSON readers of every store stop, with the record around the labels: a record
/// answered 201 must read back.
pub const MAX_LABEL_DEPTH: usize = 32;

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The same limits for labels from every input path: depth and size.
fn check_labels(labels: &Labels, max_bytes: usize) -> Result<(), InputError> {
    if 1 + labels.values().map(depth).max().unwrap_or(0) > MAX_LABEL_DEPTH {
        return Err(InputError::LabelsTooDeep);
    }
    let bytes = serde_json::to_vec(labels).map_or(usize::MAX, |json| json.len());
    if bytes > max_bytes {
        return Err(InputError::LabelsTooLarge {
            bytes,
            limit: max_bytes,
        });
    }
    Ok(())
}

/// The schema of the top-level label `name`, when the labels' schema says.
fn property<'a>(schema: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    schema?.get("properties")?.get(name)
}

/// The first integer in this JSON text that a 64-bit signed integer cannot hold. serde_json
/// would read it as a float and lose digits, and MongoDB keeps no wider integer.
fn wide_integer(json: &str) -> Option<&str> {
    let bytes = json.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'-' | b'0'..=b'9') => {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    i += 1;
                }
                let number = &json[start..i];
                if !number.contains(['.', 'e', 'E']) && number.parse::<i64>().is_err() {
                    return Some(number);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Labels from JSON text, every number kept exactly.
fn labels_from_json(text: &str) -> Result<Value, InputError> {
    if let Some(number) = wide_integer(text) {
        let shown: String = number.chars().take(40).collect();
        return Err(InputError::WideInteger(shown));
    }
    serde_json::from_str(text).map_err(|e| InputError::MalformedLabels(e.to_string()))
}

/// Labels from a JSON value: an object, or `null` for none.
fn labels_of(value: Value) -> Result<Labels, InputError> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Labels::new()),
        _ => Err(InputError::LabelsNotObject),
    }
}

fn labels_from_text(text: &str) -> Result<Labels, InputError> {
    labels_of(labels_from_json(text)?)
}

/// How fast a client must send its body: the deadline starts at `timeout` after the request
/// and moves one second later for every `min_rate` bytes received (Apache's
/// `RequestReadTimeout body=…,MinRate=…`), so a slow phone finishes while a stalled or
/// trickling upload is cut off.
#[derive(Clone, Copy, Debug)]
pub struct BodyPace {
    pub timeout: Duration,
    pub min_rate: u32,
}

/// Reads the whole body into memory, within the size limit and the pace, so that what follows
/// never waits on the client. A Content-Length over the limit is refused before a byte is read
/// (and so before `100 Continue` is sent).
pub async fn receive(req: &mut Request, limit: usize, pace: BodyPace) -> Result<(), InputError> {
    refuse_declared_oversize(req, limit)?;
    let mut body = req.take_body();
    let started = tokio::time::Instant::now();
    let mut received = BytesMut::new();
    loop {
        let earned = received.len() as f64 / f64::from(pace.min_rate.max(1));
        let deadline = started + pace.timeout + Duration::from_secs_f64(earned);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(InputError::TooSlow(pace)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(InputError::Unreadable(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if received.len() + data.len() > limit {
                return Err(InputError::TooLarge(limit));
            }
            received.extend_from_slice(&data);
        }
    }
    req.replace_body(ReqBody::Once(received.freeze()));
    Ok(())
}

/// Refuses a body whose Content-Length is over the limit, without reading it.
fn refuse_declared_oversize(req: &Request, limit: usize) -> Result<(), InputError> {
    match req.header::<u64>(CONTENT_LENGTH) {
        Some(declared) if declared > limit as u64 => Err(InputError::TooLarge(limit)),
        _ => Ok(()),
    }
}

/// Refuses an oversize body by its Content-Length, then reads it under the same limit.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Bytes, InputError> {
    refuse_declared_oversize(req, limit)?;
    match req.payload_with_max_size(limit).await {
        Ok(bytes) => Ok(bytes.clone()),
        Err(ParseError::PayloadTooLarge) => Err(InputError::TooLarge(limit)),
        Err(e) => Err(InputError::Unreadable(e.to_string())),
    }
}

/// The JSON field of a photo's URL, instead of the photo.
pub const IMAGE_URL: &str = "image_url";

pub struct Fields<'a> {
    pub image: &'a str,
    pub labels: &'a str,
    /// The largest labels object kept, as JSON bytes (`server.max_label_bytes`).
    pub max_label_bytes: usize,
    /// The labels' JSON Schema, which types labels sent as text.
    pub schema: Option<&'a Value>,
}

/// A submission as it arrived: with its image, or with the URL its job fetches the image from.
pub enum Incoming {
    Image(Submission),
    Url { url: String, labels: Labels },
}

/// Where a body has its photo.
enum Photo {
    Bytes(Bytes),
    Url(String),
}

pub async fn read_submission(
    req: &mut Request,
    fields: &Fields<'_>,
    limit: usize,
) -> Result<Incoming, InputError> {
    let mut labels: Labels = req
        .queries()
        .iter()
        .map(|(k, v)| (k.clone(), typed_value(v, property(fields.schema, k))))
        .collect();
    let content_type = req.content_type();
    let essence = content_type
        .as_ref()
        .map(|m| m.essence_str().to_ascii_lowercase())
        .unwrap_or_default();
    let (image, body_labels) = if essence == "application/json" || essence.ends_with("+json") {
        read_json(req, fields, limit).await?
    } else if essence == "multipart/form-data" {
        let (image, labels) = read_multipart(req, fields, limit).await?;
        (Photo::Bytes(image), labels)
    } else if essence.starts_with("image/") || essence == "application/octet-stream" {
        (Photo::Bytes(read_body(req, limit).await?), Labels::new())
    } else {
        let shown = if essence.is_empty() {
            "(none)".to_owned()
        } else {
            essence
        };
        return Err(InputError::UnsupportedType(shown));
    };
    labels.extend(body_labels);
    check_labels(&labels, fields.max_label_bytes)?;
    match image {
        Photo::Bytes(image) if image.is_empty() => {
            Err(InputError::MissingImage(fields.image.to_owned()))
        }
        Photo::Bytes(image) => Ok(Incoming::Image(Submission { image, labels })),
        Photo::Url(url) => Ok(Incoming::Url { url, labels }),
    }
}

async fn read_json(
    req: &mut Request,
    fields: &Fields<'_>,
    limit: usize,
) -> Result<(Photo, Labels), InputError> {
    let body = read_body(req, limit).await?;
    let not_object = || {
        InputError::MalformedJson(format!(
            "expected an object with `{}` and `{}`",
            fields.image, fields.labels
        ))
    };
    // Fields as raw JSON text, so the labels' numbers are checked as they were written.
    let text = std::str::from_utf8(&body).map_err(|e| InputError::MalformedJson(e.to_string()))?;
    if !text.trim_start().starts_with('{') {
        return Err(not_object());
    }
    let mut object: HashMap<String, &RawValue> =
        serde_json::from_str(text).map_err(|e| InputError::MalformedJson(e.to_string()))?;
    let url = object
        .remove(IMAGE_URL)
        .map(|raw| serde_json::from_str(raw.get()));
    let image = match (object.remove(fields.image), url) {
        (Some(_), Some(_)) => return Err(InputError::ImageTwice(fields.image.to_owned())),
        (None, Some(Ok(Value::String(url)))) => Photo::Url(url),
        (None, Some(_)) => return Err(InputError::ImageUrlNotText),
        (Some(raw), None) => match serde_json::from_str(raw.get()) {
            Ok(Value::String(text)) => Photo::Bytes(decode_image_text(&text)?),
            _ => return Err(InputError::MissingImage(fields.image.to_owned())),
        },
        (None, None) => return Err(InputError::MissingImage(fields.image.to_owned())),
    };
    // The labels as JSON, or as a string holding their JSON text.
    let labels = match object.remove(fields.labels) {
        None => Labels::new(),
        Some(raw) => match labels_from_json(raw.get())? {
            Value::String(text) => labels_from_text(&text)?,
            value => labels_of(value)?,
        },
    };
    Ok((image, labels))
}

/// One part of a multipart body.
pub struct Part {
    /// The form field's name.
    pub name: String,
    /// The file's name, for a file part.
    pub filename: Option<String>,
    pub bytes: Bytes,
}

impl Part {
    pub fn text(&self) -> Result<&str, InputError> {
        std::str::from_utf8(&self.bytes).map_err(|_| {
            InputError::MalformedMultipart(format!("the text part `{}` is not UTF-8", self.name))
        })
    }
}

/// Parts a multipart body may hold; each costs a little bookkeeping whatever its size.
const MAX_PARTS: usize = 256;

/// Every part of a multipart body, in the order sent, the body read within `limit` first.
pub async fn multipart_parts(req: &mut Request, limit: usize) -> Result<Vec<Part>, InputError> {
    let body = read_body(req, limit).await?;
    let boundary = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multra::parse_boundary(ct).ok())
        .ok_or_else(|| InputError::MalformedMultipart("no boundary in the content type".into()))?;
    let malformed = |e: multra::Error| InputError::MalformedMultipart(e.to_string());
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multra::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        if parts.len() == MAX_PARTS {
            return Err(InputError::MalformedMultipart(format!(
                "more than {MAX_PARTS} parts"
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        // RFC 7578 field names; a label, or the image field, needs a name to be found by.
        if name.is_empty() || !name.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(InputError::MalformedMultipart(format!(
                "part {} has no name, or one that is not printable ASCII",
                parts.len() + 1
            )));
        }
        let filename = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(malformed)?;
        parts.push(Part {
            name,
            filename,
            bytes,
        });
    }
    Ok(parts)
}

/// A file (or base64 text) part named like the image field, a `labels` part holding JSON;
/// any other text part is one more label, typed like a query value (the last one sent wins).
async fn read_multipart(
    req: &mut Request,
    fields: &Fields<'_>,
    limit: usize,
) -> Result<(Bytes, Labels), InputError> {
    let mut image = None;
    let mut labels = Labels::new();
    let mut labels_text = None;
    for part in multipart_parts(req, limit).await? {
        if part.name == fields.image {
            if image.is_none() {
                image = Some(match part.filename {
                    Some(_) => part.bytes,
                    None => decode_image_text(part.text()?)?,
                });
            }
        } else if part.name == fields.labels {
            labels_text = Some(part.text()?.to_owned());
        } else if part.filename.is_none() {
            let value = typed_value(part.text()?, property(fields.schema, &part.name));
            labels.insert(part.name, value);
        }
    }
    let image = image.ok_or_else(|| InputError::MissingImage(fields.image.to_owned()))?;
    if let Some(text) = labels_text {
        labels.extend(labels_from_text(&text)?);
    }
    Ok((image, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_plain_base64_data_urls_and_url_safe_text() {
        assert_eq!(&decode_image_text("aGk=").unwrap()[..], b"hi");
        assert_eq!(&decode_image_text("aGk").unwrap()[..], b"hi");
        assert_eq!(
            &decode_image_text("data:image/png;base64,aGk=").unwrap()[..],
            b"hi"
        );
        assert_eq!(&decode_image_text("_-8").unwrap()[..], &[0xff, 0xef]);
        assert!(matches!(
            decode_image_text("data:image/png,hi"),
            Err(InputError::BadBase64(_))
        ));
        assert!(matches!(
            decode_image_text("not base64!"),
            Err(InputError::BadBase64(_))
        ));
    }

    #[test]
    fn integers_wider_than_64_bits_are_found_outside_strings_only() {
        assert_eq!(
            wide_integer(r#"{"a": 99999999999999999999}"#),
            Some("99999999999999999999")
        );
        assert_eq!(
            wide_integer(r#"{"a": [1, -9223372036854775809]}"#),
            Some("-9223372036854775809")
        );
        assert_eq!(
            wide_integer(r#"{"a": 9223372036854775807, "b": -9223372036854775808}"#),
            None
        );
        assert_eq!(
            wide_integer(r#"{"a": 1e400, "b": 123456789012345678901.5}"#),
            None
        );
        assert_eq!(
            wide_integer(r#"{"a": "99999999999999999999", "b\"": "\"1"}"#),
            None
        );
    }

    #[test]
    fn labels_are_limited_in_depth_and_size() {
        let nested = |levels: usize| {
            let mut value = json!(1);
            for _ in 0..levels {
                value = json!({ "a": value });
            }
            value.as_object().unwrap().clone()
        };
        assert!(check_labels(&nested(MAX_LABEL_DEPTH), 1 << 20).is_ok());
        assert!(matches!(
            check_labels(&nested(MAX_LABEL_DEPTH + 1), 1 << 20),
            Err(InputError::LabelsTooDeep)
        ));
        let long = json!({ "note": "x".repeat(100) });
        assert!(matches!(
            check_labels(long.as_object().unwrap(), 64),
            Err(InputError::LabelsTooLarge { limit: 64, .. })
        ));
    }

    #[test]
    fn without_a_schema_only_canonical_numbers_become_numbers() {
        assert_eq!(typed_value("3", None), Value::from(3));
        assert_eq!(typed_value("-12", None), Value::from(-12));
        assert_eq!(typed_value("2.5", None), Value::from(2.5));
        assert_eq!(typed_value("true", None), Value::from(true));
        for kept in [
            "a.jpg",
            "NaN",
            "007",
            "0012345678905",
            "99999999999999999999",
            "1e5",
            "2.50",
            "+3",
            "-0",
            "True",
        ] {
            assert_eq!(typed_value(kept, None), Value::from(kept), "{kept}");
        }
    }

    #[test]
    fn with_a_schema_a_label_takes_its_propertys_type() {
        let string = json!({"type": "string"});
        assert_eq!(
            typed_value("8413000065504", Some(&string)),
            Value::from("8413000065504")
        );
        assert_eq!(typed_value("true", Some(&string)), Value::from("true"));
        let integer = json!({"type": "integer"});
        assert_eq!(typed_value("007", Some(&integer)), Value::from(7));
        assert_eq!(
            typed_value("seven", Some(&integer)),
            Value::from("seven"),
            "left for the schema to refuse"
        );
        let number = json!({"type": ["number", "null"]});
        assert_eq!(typed_value("1e5", Some(&number)), Value::from(100000.0));
        let boolean = json!({"type": "boolean"});
        assert_eq!(typed_value("1", Some(&boolean)), Value::from("1"));
        assert_eq!(typed_value("false", Some(&boolean)), Value::from(false));
    }
}
