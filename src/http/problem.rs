//! The one place where errors become HTTP answers: RFC 9457 problem+json with a stable `code`,
//! for errors raised by handlers and for statuses the framework raises (404, 405, …).

use librarian_model::Violation;
use salvo::http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use salvo::http::{ResBody, StatusCode};
use salvo::prelude::*;
use serde::Serialize;

use super::intake::InputError;
use crate::auth::{Denied, Refusal};
use crate::imaging::ImageError;
use crate::pipeline::SubmitError;
use librarian_actors::ActorError;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<Violation>,
    pub retry_after: Option<u32>,
    /// Answered with `WWW-Authenticate: Bearer`: the caller can fix it with a credential.
    pub challenge: bool,
    /// What went wrong inside (a store's own message, with its hosts and ports): logged with
    /// the request id, never sent to the caller.
    pub cause: Option<String>,
}

/// The internal cause of an answer, left in the response's extensions for the access log.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

/// The problem+json document: RFC 9457 members plus `code` and `errors`.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: &'a str,
    code: &'static str,
    #[serde(skip_serializing_if = "<[Violation]>::is_empty")]
    errors: &'a [Violation],
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            challenge: false,
            cause: None,
        }
    }

    /// A store that answers and refuses (its bucket is gone, its credentials are not
    /// allowed): not the client's fault and not worth a retry, so no `Retry-After`.
    fn refused(actor: &str, cause: ActorError) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "actor.refused",
            format!(
                "storage `{actor}` refuses to work (its configuration or permissions changed); \
                 nothing was kept, and retrying will not help until an operator fixes it"
            ),
        )
        .with_cause(cause.to_string())
    }

    pub fn with_cause(mut self, cause: String) -> Self {
        self.cause = Some(cause);
        self
    }

    fn challenge(mut self) -> Self {
        self.challenge = true;
        self
    }

    pub fn with_errors(mut self, errors: Vec<Violation>) -> Self {
        self.errors = errors;
        self
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// The problem for a status that the framework set without a body.
    fn for_status(status: StatusCode) -> Self {
        let (code, detail) = match status {
            StatusCode::NOT_FOUND => ("route.not_found", "no such route; see /openapi.json"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "route.method_not_allowed",
                "this route does not answer that method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "body.too_large",
                "the request body is larger than this server accepts",
            ),
            StatusCode::TOO_MANY_REQUESTS => ("rate.limited", "too many requests; retry later"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("body.unsupported_type", "unsupported content type")
            }
            s if s.is_server_error() => (
                "internal",
                "the server failed to answer; the error is logged",
            ),
            _ => ("request.invalid", "the request cannot be answered"),
        };
        Self::new(status, code, detail)
    }
}

impl Scribe for Problem {
    fn render(self, res: &mut Response) {
        res.status_code(self.status);
        let headers = res.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.challenge {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let body = Body {
            kind: format!("urn:librarian:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        if let Some(cause) = self.cause {
            res.extensions.insert(InternalCause(cause));
        }
        res.body(body);
    }
}

impl From<InputError> for Problem {
    fn from(e: InputError) -> Self {
        let detail = e.to_string();
        let (status, code) = match e {
            InputError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "body.malformed_json"),
            InputError::MalformedMultipart(_) => {
                (StatusCode::BAD_REQUEST, "body.malformed_multipart")
            }
            InputError::Unreadable(_) => (StatusCode::BAD_REQUEST, "body.unreadable"),
            InputError::BadBase64(_) => (StatusCode::BAD_REQUEST, "image.bad_base64"),
            InputError::MissingImage(_) => (StatusCode::BAD_REQUEST, "image.missing"),
            InputError::LabelsNotObject => (StatusCode::BAD_REQUEST, "labels.not_object"),
            InputError::MalformedLabels(_) => (StatusCode::BAD_REQUEST, "labels.malformed_json"),
            InputError::LabelsTooDeep => (StatusCode::UNPROCESSABLE_ENTITY, "labels.too_deep"),
            InputError::WideInteger(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "labels.integer_too_wide")
            }
            InputError::LabelsTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "labels.too_large")
            }
            InputError::BadId(_) => (StatusCode::BAD_REQUEST, "id.invalid"),
            InputError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body.too_large"),
            InputError::TooSlow(_) => (StatusCode::REQUEST_TIMEOUT, "body.too_slow"),
            InputError::UnsupportedType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "body.unsupported_type")
            }
        };
        Self::new(status, code, detail)
    }
}

impl From<Denied> for Problem {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Required => Self::new(
                StatusCode::UNAUTHORIZED,
                "auth.required",
                "send `Authorization: Bearer <token>`",
            )
            .challenge(),
            Denied::Forbidden => Self::new(
                StatusCode::FORBIDDEN,
                "auth.forbidden",
                "this credential may not use this pipeline",
            ),
            Denied::Closed => Self::new(
                StatusCode::FORBIDDEN,
                "read.closed",
                "this pipeline's records are not readable through the API (its `read` is `closed`)",
            ),
            Denied::Refused(refusal) => refusal.into(),
        }
    }
}

impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Self {
        let unauthorized = |code, detail| Self::new(StatusCode::UNAUTHORIZED, code, detail);
        match refusal {
            Refusal::Unknown => unauthorized("auth.invalid", "this token is not valid").challenge(),
            Refusal::Revoked => unauthorized("auth.revoked", "this token was revoked").challenge(),
            Refusal::Expired => unauthorized("auth.expired", "this token has expired").challenge(),
            Refusal::Throttled(seconds) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "auth.throttled",
                format!("too many wrong secrets for this token; retry in {seconds} s"),
            )
            .retry_after(seconds),
            Refusal::Busy => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "auth.busy",
                "every credential check is busy; retry shortly",
            )
            .retry_after(1),
        }
    }
}

impl From<ImageError> for Problem {
    fn from(e: ImageError) -> Self {
        let detail = e.to_string();
        let (status, code) = match e {
            ImageError::UnknownFormat => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "image.unknown_format")
            }
            ImageError::Undecodable(..) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "image.undecodable")
            }
            ImageError::TooManyPixels { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "image.too_many_pixels")
            }
            ImageError::Timeout(_) => (StatusCode::UNPROCESSABLE_ENTITY, "image.timeout"),
            ImageError::TooLargeToDecode { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "image.too_large_to_decode",
            ),
            ImageError::Busy => {
                return Self::new(StatusCode::SERVICE_UNAVAILABLE, "image.busy", detail)
                    .retry_after(2);
            }
        };
        Self::new(status, code, detail)
    }
}

impl From<SubmitError> for Problem {
    fn from(e: SubmitError) -> Self {
        let detail = e.to_string();
        match e {
            SubmitError::Image(e) => e.into(),
            SubmitError::FormatNotAllowed(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "image.format_not_allowed",
                detail,
            ),
            SubmitError::Rejected(errors) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation.failed",
                detail,
            )
            .with_errors(errors),
            SubmitError::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, "submission.conflict", detail)
            }
            SubmitError::InProgress(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "submission.in_progress",
                detail,
            )
            .retry_after(1),
            SubmitError::Unstrippable(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "image.metadata_unreadable",
                detail,
            ),
            SubmitError::TooLargeFor { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "actor.image_too_large",
                detail,
            ),
            SubmitError::ActorFailed { actor, cause } => match cause {
                ActorError::Refused(_) => Self::refused(&actor, cause),
                _ => Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "actor.unavailable",
                    format!(
                        "storage `{actor}` failed and nothing was kept; send the same \
                         submission again later (the server's log has the cause under this \
                         request's id)"
                    ),
                )
                .with_cause(cause.to_string())
                .retry_after(5),
            },
            SubmitError::ReadFailed { actor, cause } => match cause {
                ActorError::Refused(_) => Self::refused(&actor, cause),
                _ => Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "actor.read_failed",
                    format!(
                        "storage `{actor}` could not be read; try again later (the server's \
                         log has the cause under this request's id)"
                    ),
                )
                .with_cause(cause.to_string())
                .retry_after(5),
            },
        }
    }
}

/// Turns an error status without a body, set by the framework or a middleware, into a problem.
#[handler]
pub async fn catch_status(res: &mut Response, ctrl: &mut FlowCtrl) {
    let status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
    let empty = matches!(res.body, ResBody::None) || res.body.is_error();
    if empty && (status.is_client_error() || status.is_server_error()) {
        res.render(Problem::for_status(status));
        ctrl.skip_rest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_refuses_is_not_answered_as_retryable() {
        let refused = SubmitError::ActorFailed {
            actor: "archive".into(),
            cause: ActorError::Refused("S3 put: AccessDenied: no".into()),
        };
        let problem = Problem::from(refused);
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem.code, "actor.refused");
        assert_eq!(problem.retry_after, None);
        let down = SubmitError::ActorFailed {
            actor: "archive".into(),
            cause: ActorError::Io(std::io::Error::other("connect 10.0.0.7:9000 refused")),
        };
        let problem = Problem::from(down);
        assert_eq!(problem.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem.retry_after, Some(5));
        assert!(!problem.detail.contains("10.0.0.7"), "{}", problem.detail);
        assert!(problem.cause.is_some_and(|c| c.contains("10.0.0.7")));
    }
}
