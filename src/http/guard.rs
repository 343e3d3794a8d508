//! Middleware every request passes: an id and one log line per request, and the cap on
//! submissions in flight.

use std::sync::Arc;
use std::time::Instant;

use salvo::http::header::{HeaderName, HeaderValue, LOCATION};
use salvo::prelude::*;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::problem::Problem;
use crate::metrics::Metrics;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's id is kept when it is short printable ASCII; otherwise a new one is made.
fn request_id(req: &Request) -> String {
    req.header::<String>(REQUEST_ID)
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// Gives every request an `X-Request-Id` (the caller's or a new one), returns it, counts it,
/// and logs one line per request: never a body, a token or a secret.
pub struct AccessLog(pub Arc<Metrics>);

#[async_trait]
impl Handler for AccessLog {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let started = Instant::now();
        let id = request_id(req);
        if let Ok(value) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(REQUEST_ID, value);
        }
        ctrl.call_next(req, depot, res).await;
        let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
        let record = res
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        self.0
            .request(req.method().as_str(), req.uri().path(), status);
        tracing::info!(
            request_id = %id,
            method = %req.method(),
            path = req.uri().path(),
            status,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            record,
            "request"
        );
    }
}

/// Admits at most the configured number of submissions at once; the next one is answered 503
/// with Retry-After at once, so a burst cannot queue without bound or exhaust memory.
pub struct InFlight(pub Arc<Semaphore>);

#[async_trait]
impl Handler for InFlight {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let Ok(_permit) = self.0.clone().try_acquire_owned() else {
            let detail = "the server is handling as many submissions as it may; retry shortly";
            res.render(
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "server.busy", detail).retry_after(1),
            );
            ctrl.skip_rest();
            return;
        };
        ctrl.call_next(req, depot, res).await;
    }
}
