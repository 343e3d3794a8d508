//! Middleware every request passes: an id and one log line per request, the cap on
//! submissions in flight, rate limits, and draining the body of a request refused early.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use salvo::http::header::{HeaderName, HeaderValue, LOCATION};
use salvo::prelude::*;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::problem::Problem;
use crate::config::{Config, DEFAULT_PIPELINE};
use crate::metrics::Metrics;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The pipeline a request concerns: the route's, else `?pipeline=`, else `default`.
pub fn pipeline_of(req: &Request) -> String {
    req.param::<String>("name")
        .or_else(|| req.query::<String>("pipeline"))
        .unwrap_or_else(|| DEFAULT_PIPELINE.to_owned())
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(req: &Request) -> Option<String> {
    let header = req.header::<String>("authorization")?;
    header.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

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
        let pipeline = req.param::<String>("name").unwrap_or_default();
        tracing::info!(
            request_id = %id,
            pipeline,
            method = %req.method(),
            path = req.uri().path(),
            status,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            record,
            "request"
        );
    }
}

/// Reads and drops whatever of the request body the handlers left unread: a refusal (busy,
/// rate limited, unauthorised) is answered before the upload ends, and closing the connection
/// on a client still sending would give it a broken pipe instead of the answer. At most
/// `limit` bytes are drained, for at most [`DRAIN_TIME`].
pub struct DrainUnreadBody {
    pub limit: usize,
}

const DRAIN_TIME: Duration = Duration::from_secs(30);

#[async_trait]
impl Handler for DrainUnreadBody {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        ctrl.call_next(req, depot, res).await;
        let mut body = req.take_body();
        let mut drained = 0;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while drained <= self.limit
                && let Some(Ok(frame)) = body.frame().await
            {
                drained += frame.data_ref().map_or(0, |data| data.len());
            }
        })
        .await;
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

type Limiter = DefaultKeyedRateLimiter<String>;

fn limiter(requests_per_minute: u32, burst: u32) -> Option<Arc<Limiter>> {
    let rate = NonZeroU32::new(requests_per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Some(Arc::new(Limiter::keyed(
        Quota::per_minute(rate).allow_burst(burst),
    )))
}

/// Limits submissions per client and pipeline: a bearer token when there is one (hashed, never
/// kept), else the client's IP address, taken from `X-Forwarded-For` only when the connection
/// comes from a trusted proxy.
pub struct RateLimit {
    pipelines: HashMap<String, Option<Arc<Limiter>>>,
    trusted_proxies: Vec<IpAddr>,
}

impl RateLimit {
    pub fn new(config: &Config) -> Self {
        let global = limiter(
            config.rate_limit.requests_per_minute,
            config.rate_limit.burst,
        );
        let pipelines = config
            .pipelines
            .iter()
            .map(|(name, p)| {
                let own = match &p.rate_limit {
                    Some(quota) => limiter(quota.requests_per_minute, quota.burst),
                    None => global.clone(),
                };
                (name.clone(), own)
            })
            .collect();
        Self {
            pipelines,
            trusted_proxies: config.rate_limit.trusted_proxies.clone(),
        }
    }
}

/// Who is asking: a token's digest, else an address.
fn client_key(req: &Request, trusted_proxies: &[IpAddr]) -> String {
    if let Some(token) = bearer(req) {
        return format!(
            "token:{}",
            hex::encode(&Sha256::digest(token.as_bytes())[..12])
        );
    }
    let peer = req.remote_addr().ip();
    let forwarded = peer
        .filter(|ip| trusted_proxies.contains(ip))
        .and_then(|_| {
            let header = req.header::<String>("x-forwarded-for")?;
            // The nearest address that is not one of our proxies is the client.
            header
                .split(',')
                .rev()
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .find(|ip| !trusted_proxies.contains(ip))
        });
    match forwarded.or(peer) {
        Some(ip) => format!("ip:{ip}"),
        None => "unknown".to_owned(),
    }
}

#[async_trait]
impl Handler for RateLimit {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let pipeline = pipeline_of(req);
        let Some(Some(limiter)) = self.pipelines.get(&pipeline) else {
            ctrl.call_next(req, depot, res).await;
            return;
        };
        let key = format!("{pipeline}/{}", client_key(req, &self.trusted_proxies));
        if let Err(not_until) = limiter.check_key(&key) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let detail = format!("too many submissions from this client; retry in {seconds} s");
            res.render(
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate.limited", detail)
                    .retry_after(seconds.max(1) as u32),
            );
            ctrl.skip_rest();
            return;
        }
        ctrl.call_next(req, depot, res).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, headers: &[(&'static str, &str)]) -> Request {
        let mut req = Request::new();
        *req.remote_addr_mut() =
            salvo::conn::SocketAddr::from(peer.parse::<std::net::SocketAddr>().unwrap());
        for (name, value) in headers {
            req.headers_mut().insert(*name, value.parse().unwrap());
        }
        req
    }

    #[test]
    fn the_client_is_the_token_else_the_address_behind_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let direct = request("192.0.2.7:5000", &[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_key(&direct, &[proxy]),
            "ip:192.0.2.7",
            "an untrusted peer cannot claim another address"
        );
        let proxied = request(
            "10.0.0.1:5000",
            &[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.0.0.1")],
        );
        assert_eq!(client_key(&proxied, &[proxy]), "ip:203.0.113.9");
        let token = request("192.0.2.7:5000", &[("authorization", "Bearer s3cret")]);
        let key = client_key(&token, &[]);
        assert!(key.starts_with("token:") && !key.contains("s3cret"));
    }
}
