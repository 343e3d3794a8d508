//! Every problem code the API answers, with the status it is answered with: the one table
//! the README's error table and the OpenAPI document are checked against (`tests/codes.rs`).

use salvo::http::StatusCode;

/// A problem code and its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    pub name: &'static str,
    pub status: StatusCode,
}

const fn code(name: &'static str, status: StatusCode) -> Code {
    Code { name, status }
}

pub const BODY_MALFORMED_JSON: Code = code("body.malformed_json", StatusCode::BAD_REQUEST);
pub const BODY_MALFORMED_MULTIPART: Code =
    code("body.malformed_multipart", StatusCode::BAD_REQUEST);
pub const BODY_UNREADABLE: Code = code("body.unreadable", StatusCode::BAD_REQUEST);
pub const IMAGE_BAD_BASE64: Code = code("image.bad_base64", StatusCode::BAD_REQUEST);
pub const IMAGE_MISSING: Code = code("image.missing", StatusCode::BAD_REQUEST);
pub const LABELS_NOT_OBJECT: Code = code("labels.not_object", StatusCode::BAD_REQUEST);
pub const LABELS_MALFORMED_JSON: Code = code("labels.malformed_json", StatusCode::BAD_REQUEST);
pub const ID_INVALID: Code = code("id.invalid", StatusCode::BAD_REQUEST);
pub const QUERY_INVALID: Code = code("query.invalid", StatusCode::BAD_REQUEST);
pub const SCAN_TOO_MANY_IMAGES: Code = code("scan.too_many_images", StatusCode::BAD_REQUEST);
pub const REQUEST_INVALID: Code = code("request.invalid", StatusCode::BAD_REQUEST);
pub const AUTH_REQUIRED: Code = code("auth.required", StatusCode::UNAUTHORIZED);
pub const AUTH_INVALID: Code = code("auth.invalid", StatusCode::UNAUTHORIZED);
pub const AUTH_EXPIRED: Code = code("auth.expired", StatusCode::UNAUTHORIZED);
pub const AUTH_REVOKED: Code = code("auth.revoked", StatusCode::UNAUTHORIZED);
pub const AUTH_FORBIDDEN: Code = code("auth.forbidden", StatusCode::FORBIDDEN);
pub const READ_CLOSED: Code = code("read.closed", StatusCode::FORBIDDEN);
pub const ORIGIN_FORBIDDEN: Code = code("origin.forbidden", StatusCode::FORBIDDEN);
pub const PIPELINE_NOT_FOUND: Code = code("pipeline.not_found", StatusCode::NOT_FOUND);
pub const RECORD_NOT_FOUND: Code = code("record.not_found", StatusCode::NOT_FOUND);
pub const JOB_NOT_FOUND: Code = code("job.not_found", StatusCode::NOT_FOUND);
pub const ROUTE_NOT_FOUND: Code = code("route.not_found", StatusCode::NOT_FOUND);
pub const ROUTE_METHOD_NOT_ALLOWED: Code =
    code("route.method_not_allowed", StatusCode::METHOD_NOT_ALLOWED);
pub const BODY_TOO_SLOW: Code = code("body.too_slow", StatusCode::REQUEST_TIMEOUT);
pub const SUBMISSION_CONFLICT: Code = code("submission.conflict", StatusCode::CONFLICT);
pub const BODY_TOO_LARGE: Code = code("body.too_large", StatusCode::PAYLOAD_TOO_LARGE);
pub const LABELS_TOO_LARGE: Code = code("labels.too_large", StatusCode::PAYLOAD_TOO_LARGE);
pub const ACTOR_IMAGE_TOO_LARGE: Code =
    code("actor.image_too_large", StatusCode::PAYLOAD_TOO_LARGE);
pub const BODY_UNSUPPORTED_TYPE: Code =
    code("body.unsupported_type", StatusCode::UNSUPPORTED_MEDIA_TYPE);
pub const IMAGE_METADATA_UNREADABLE: Code = code(
    "image.metadata_unreadable",
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
);
pub const IMAGE_UNKNOWN_FORMAT: Code =
    code("image.unknown_format", StatusCode::UNSUPPORTED_MEDIA_TYPE);
pub const IMAGE_UNDECODABLE: Code = code("image.undecodable", StatusCode::UNSUPPORTED_MEDIA_TYPE);
pub const IMAGE_FORMAT_NOT_ALLOWED: Code = code(
    "image.format_not_allowed",
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
);
pub const VALIDATION_FAILED: Code = code("validation.failed", StatusCode::UNPROCESSABLE_ENTITY);
pub const LABELS_TOO_DEEP: Code = code("labels.too_deep", StatusCode::UNPROCESSABLE_ENTITY);
pub const LABELS_INTEGER_TOO_WIDE: Code =
    code("labels.integer_too_wide", StatusCode::UNPROCESSABLE_ENTITY);
pub const IMAGE_TOO_MANY_PIXELS: Code =
    code("image.too_many_pixels", StatusCode::UNPROCESSABLE_ENTITY);
pub const IMAGE_TIMEOUT: Code = code("image.timeout", StatusCode::UNPROCESSABLE_ENTITY);
pub const IMAGE_TOO_LARGE_TO_DECODE: Code = code(
    "image.too_large_to_decode",
    StatusCode::UNPROCESSABLE_ENTITY,
);
pub const FETCH_REFUSED: Code = code("fetch.refused", StatusCode::UNPROCESSABLE_ENTITY);
pub const FETCH_UNUSABLE: Code = code("fetch.unusable", StatusCode::UNPROCESSABLE_ENTITY);
pub const RATE_LIMITED: Code = code("rate.limited", StatusCode::TOO_MANY_REQUESTS);
pub const AUTH_THROTTLED: Code = code("auth.throttled", StatusCode::TOO_MANY_REQUESTS);
pub const INTERNAL: Code = code("internal", StatusCode::INTERNAL_SERVER_ERROR);
pub const ACTOR_REFUSED: Code = code("actor.refused", StatusCode::INTERNAL_SERVER_ERROR);
pub const ACTOR_UNAVAILABLE: Code = code("actor.unavailable", StatusCode::SERVICE_UNAVAILABLE);
pub const ACTOR_READ_FAILED: Code = code("actor.read_failed", StatusCode::SERVICE_UNAVAILABLE);
pub const ACTOR_NOT_READY: Code = code("actor.not_ready", StatusCode::SERVICE_UNAVAILABLE);
pub const SERVER_BUSY: Code = code("server.busy", StatusCode::SERVICE_UNAVAILABLE);
pub const IMAGE_BUSY: Code = code("image.busy", StatusCode::SERVICE_UNAVAILABLE);
pub const SUBMISSION_IN_PROGRESS: Code =
    code("submission.in_progress", StatusCode::SERVICE_UNAVAILABLE);
pub const AUTH_BUSY: Code = code("auth.busy", StatusCode::SERVICE_UNAVAILABLE);
pub const QUEUE_FULL: Code = code("queue.full", StatusCode::SERVICE_UNAVAILABLE);
pub const QUEUE_UNAVAILABLE: Code = code("queue.unavailable", StatusCode::SERVICE_UNAVAILABLE);
pub const FETCH_FAILED: Code = code("fetch.failed", StatusCode::SERVICE_UNAVAILABLE);
pub const OUTBOX_UNAVAILABLE: Code = code("outbox.unavailable", StatusCode::SERVICE_UNAVAILABLE);

/// The codes that ask the caller to come back later: back-pressure, which the metrics count
/// as `busy`, apart from failures.
pub const BACK_PRESSURE: [Code; 7] = [
    RATE_LIMITED,
    AUTH_THROTTLED,
    SERVER_BUSY,
    IMAGE_BUSY,
    SUBMISSION_IN_PROGRESS,
    AUTH_BUSY,
    QUEUE_FULL,
];

/// `request.invalid` and `internal` also stand for any other 4xx and 5xx the framework sets.
pub const ALL: [Code; 56] = [
    BODY_MALFORMED_JSON,
    BODY_MALFORMED_MULTIPART,
    BODY_UNREADABLE,
    IMAGE_BAD_BASE64,
    IMAGE_MISSING,
    LABELS_NOT_OBJECT,
    LABELS_MALFORMED_JSON,
    ID_INVALID,
    QUERY_INVALID,
    SCAN_TOO_MANY_IMAGES,
    REQUEST_INVALID,
    AUTH_REQUIRED,
    AUTH_INVALID,
    AUTH_EXPIRED,
    AUTH_REVOKED,
    AUTH_FORBIDDEN,
    READ_CLOSED,
    ORIGIN_FORBIDDEN,
    PIPELINE_NOT_FOUND,
    RECORD_NOT_FOUND,
    JOB_NOT_FOUND,
    ROUTE_NOT_FOUND,
    ROUTE_METHOD_NOT_ALLOWED,
    BODY_TOO_SLOW,
    SUBMISSION_CONFLICT,
    BODY_TOO_LARGE,
    LABELS_TOO_LARGE,
    ACTOR_IMAGE_TOO_LARGE,
    BODY_UNSUPPORTED_TYPE,
    IMAGE_METADATA_UNREADABLE,
    IMAGE_UNKNOWN_FORMAT,
    IMAGE_UNDECODABLE,
    IMAGE_FORMAT_NOT_ALLOWED,
    VALIDATION_FAILED,
    LABELS_TOO_DEEP,
    LABELS_INTEGER_TOO_WIDE,
    IMAGE_TOO_MANY_PIXELS,
    IMAGE_TIMEOUT,
    IMAGE_TOO_LARGE_TO_DECODE,
    RATE_LIMITED,
    AUTH_THROTTLED,
    INTERNAL,
    ACTOR_REFUSED,
    ACTOR_UNAVAILABLE,
    ACTOR_READ_FAILED,
    ACTOR_NOT_READY,
    SERVER_BUSY,
    IMAGE_BUSY,
    SUBMISSION_IN_PROGRESS,
    AUTH_BUSY,
    QUEUE_FULL,
    QUEUE_UNAVAILABLE,
    FETCH_REFUSED,
    FETCH_UNUSABLE,
    FETCH_FAILED,
    OUTBOX_UNAVAILABLE,
];
