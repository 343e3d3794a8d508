//! The one place where errors become HTTP answers: RFC 9457 problem+json with a stable `code`,
//! for errors raised by handlers and for statuses the framework raises (404, 405, …).

use librarian_model::Violation;
use salvo::http::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use salvo::http::{Method, ResBody, StatusCode};
use salvo::prelude::*;
use serde::Serialize;

use super::codes::{self, Code};
use super::intake::InputError;
use super::table;
use crate::auth::{Denied, Refusal};
use crate::fetch::FetchError;
use crate::imaging::ImageError;
use crate::jobs::QueueError;
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
    /// The problem+json document, as answered (and as a scan reports one image's failure).
    pub fn document(&self) -> impl Serialize + '_ {
        Body {
            kind: format!("urn:librarian:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        }
    }

    /// A problem answered with its code's status (see [`codes`]).
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            status: code.status,
            code: code.name,
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
            codes::ACTOR_REFUSED,
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

    /// The problem for a status that the framework set without a body.
    fn for_status(status: StatusCode) -> Self {
        let (code, detail) = match status {
            StatusCode::NOT_FOUND => (codes::ROUTE_NOT_FOUND, "no such route; see /openapi.json"),
            StatusCode::METHOD_NOT_ALLOWED => (
                codes::ROUTE_METHOD_NOT_ALLOWED,
                "this route does not answer that method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                codes::BODY_TOO_LARGE,
                "the request body is larger than this server accepts",
            ),
            StatusCode::TOO_MANY_REQUESTS => {
                (codes::RATE_LIMITED, "too many requests; retry later")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                (codes::BODY_UNSUPPORTED_TYPE, "unsupported content type")
            }
            s if s.is_server_error() => (
                codes::INTERNAL,
                "the server failed to answer; the error is logged",
            ),
            _ => (codes::REQUEST_INVALID, "the request cannot be answered"),
        };
        // The generic codes keep the status the framework chose.
        Self {
            status,
            ..Self::new(code, detail)
        }
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
        let body = serde_json::to_vec(&self.document()).unwrap_or_default();
        if let Some(cause) = self.cause {
            res.extensions.insert(InternalCause(cause));
        }
        res.body(body);
    }
}

impl From<InputError> for Problem {
    fn from(e: InputError) -> Self {
        let detail = e.to_string();
        let code = match e {
            InputError::MalformedJson(_) => codes::BODY_MALFORMED_JSON,
            InputError::MalformedMultipart(_) => codes::BODY_MALFORMED_MULTIPART,
            InputError::Unreadable(_) => codes::BODY_UNREADABLE,
            InputError::BadBase64(_) => codes::IMAGE_BAD_BASE64,
            InputError::MissingImage(_) => codes::IMAGE_MISSING,
            InputError::ImageTwice(_) | InputError::ImageUrlNotText => codes::BODY_MALFORMED_JSON,
            InputError::LabelsNotObject => codes::LABELS_NOT_OBJECT,
            InputError::MalformedLabels(_) => codes::LABELS_MALFORMED_JSON,
            InputError::LabelsTooDeep => codes::LABELS_TOO_DEEP,
            InputError::WideInteger(_) => codes::LABELS_INTEGER_TOO_WIDE,
            InputError::LabelsTooLarge { .. } => codes::LABELS_TOO_LARGE,
            InputError::BadId(_) => codes::ID_INVALID,
            InputError::TooLarge(_) => codes::BODY_TOO_LARGE,
            InputError::TooSlow(_) => codes::BODY_TOO_SLOW,
            InputError::UnsupportedType(_) => codes::BODY_UNSUPPORTED_TYPE,
        };
        Self::new(code, detail)
    }
}

impl From<Denied> for Problem {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Required => {
                Self::new(codes::AUTH_REQUIRED, "send `Authorization: Bearer <token>`").challenge()
            }
            Denied::Forbidden => Self::new(
                codes::AUTH_FORBIDDEN,
                "this credential may not use this pipeline",
            ),
            Denied::Closed => Self::new(
                codes::READ_CLOSED,
                "this pipeline's records are not readable through the API (its `read` is `closed`)",
            ),
            Denied::Refused(refusal) => refusal.into(),
        }
    }
}

impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unknown => {
                Self::new(codes::AUTH_INVALID, "this token is not valid").challenge()
            }
            Refusal::Revoked => {
                Self::new(codes::AUTH_REVOKED, "this token was revoked").challenge()
            }
            Refusal::Expired => {
                Self::new(codes::AUTH_EXPIRED, "this token has expired").challenge()
            }
            Refusal::Throttled(seconds) => Self::new(
                codes::AUTH_THROTTLED,
                format!("too many wrong secrets for this token; retry in {seconds} s"),
            )
            .retry_after(seconds),
            Refusal::Busy => Self::new(
                codes::AUTH_BUSY,
                "every credential check is busy; retry shortly",
            )
            .retry_after(1),
        }
    }
}

impl From<FetchError> for Problem {
    fn from(e: FetchError) -> Self {
        let code = match &e {
            FetchError::NotHttp(_) | FetchError::TooLong | FetchError::NotPublic(_) => {
                codes::FETCH_REFUSED
            }
            transient if transient.is_transient() => codes::FETCH_FAILED,
            _ => codes::FETCH_UNUSABLE,
        };
        Self::new(code, e.to_string())
    }
}

impl From<QueueError> for Problem {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Full => Self::new(codes::QUEUE_FULL, e.to_string()).retry_after(5),
            _ => Self::new(
                codes::QUEUE_UNAVAILABLE,
                "the queue of asynchronous submissions could not be used; nothing was queued, \
                 send it again later (the server's log has the cause under this request's id)",
            )
            .with_cause(e.to_string())
            .retry_after(5),
        }
    }
}

impl From<ImageError> for Problem {
    fn from(e: ImageError) -> Self {
        let detail = e.to_string();
        let code = match e {
            ImageError::UnknownFormat => codes::IMAGE_UNKNOWN_FORMAT,
            ImageError::Undecodable(..) => codes::IMAGE_UNDECODABLE,
            ImageError::TooManyPixels { .. } => codes::IMAGE_TOO_MANY_PIXELS,
            ImageError::Timeout(_) => codes::IMAGE_TIMEOUT,
            ImageError::TooLargeToDecode { .. } => codes::IMAGE_TOO_LARGE_TO_DECODE,
            ImageError::Busy => {
                return Self::new(codes::IMAGE_BUSY, detail).retry_after(2);
            }
        };
        Self::new(code, detail)
    }
}

impl From<SubmitError> for Problem {
    fn from(e: SubmitError) -> Self {
        let detail = e.to_string();
        match e {
            SubmitError::Image(e) => e.into(),
            SubmitError::FormatNotAllowed(_) => Self::new(codes::IMAGE_FORMAT_NOT_ALLOWED, detail),
            SubmitError::Rejected(errors) => {
                Self::new(codes::VALIDATION_FAILED, detail).with_errors(errors)
            }
            SubmitError::Conflict(_) => Self::new(codes::SUBMISSION_CONFLICT, detail),
            SubmitError::InProgress(_) => {
                Self::new(codes::SUBMISSION_IN_PROGRESS, detail).retry_after(1)
            }
            SubmitError::Unstrippable(_) => Self::new(codes::IMAGE_METADATA_UNREADABLE, detail),
            SubmitError::TooLargeFor { .. } => Self::new(codes::ACTOR_IMAGE_TOO_LARGE, detail),
            SubmitError::ActorFailed { actor, cause } => match cause {
                ActorError::Refused(_) => Self::refused(&actor, cause),
                _ => Self::new(
                    codes::ACTOR_UNAVAILABLE,
                    format!(
                        "storage `{actor}` failed and nothing was kept; send the same \
                         submission again later (the server's log has the cause under this \
                         request's id)"
                    ),
                )
                .with_cause(cause.to_string())
                .retry_after(5),
            },
            SubmitError::Outbox(cause) => Self::new(
                codes::OUTBOX_UNAVAILABLE,
                "the outbox of this pipeline's notifications cannot be written, so nothing was \
                 stored; send the same submission again later",
            )
            .with_cause(cause.to_string())
            .retry_after(5),
            SubmitError::ReadFailed { actor, cause } => match cause {
                ActorError::Refused(_) => Self::refused(&actor, cause),
                _ => Self::new(
                    codes::ACTOR_READ_FAILED,
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
/// A path the API has, asked with a method it does not answer, is 405 with `Allow` (the router
/// says 404 for it); `OPTIONS` there, when it is no CORS preflight, is 204 with `Allow`.
#[handler]
pub async fn catch_status(req: &mut Request, res: &mut Response, ctrl: &mut FlowCtrl) {
    let mut status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
    let empty = matches!(res.body, ResBody::None) || res.body.is_error();
    if !(empty && (status.is_client_error() || status.is_server_error())) {
        return;
    }
    let known = table::route_of(req.uri().path());
    if let Some((_, methods)) = known
        && matches!(
            status,
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
        )
    {
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(methods));
        if req.method() == Method::OPTIONS {
            res.status_code(StatusCode::NO_CONTENT);
            ctrl.skip_rest();
            return;
        }
        status = StatusCode::METHOD_NOT_ALLOWED;
    }
    res.render(Problem::for_status(status));
    ctrl.skip_rest();
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
