//! What every request passes: an id and one log line per request, authentication (who calls,
//! never what they may do), draining the body of a request refused early; and the rate limits
//! the handlers apply once they know the pipeline a request really uses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http_body_util::BodyExt;
use salvo::http::ReqBody;
use salvo::http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HeaderName, HeaderValue, LOCATION};
use salvo::prelude::*;
use uuid::Uuid;

use super::codes;
use super::problem::{InternalCause, Problem};
use super::table;
use crate::auth::{Auth, Caller};
use crate::clock::ServiceClock;
use crate::config::Config;
use crate::metrics::Metrics;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The credential of an `Authorization: Bearer` header; the scheme is case-insensitive
/// (RFC 9110, section 11.1).
pub fn bearer(req: &Request) -> Option<String> {
    let header = req.header::<String>("authorization")?;
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// Finds out who calls and leaves the [`Caller`] in the depot. It decides nothing: each
/// handler authorizes against the pipeline it really uses, once that is known.
pub struct Authenticate(pub Arc<Auth>);

#[async_trait]
impl Handler for Authenticate {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let caller = self.0.authenticate(bearer(req).as_deref()).await;
        depot.insert_typed(caller);
        ctrl.call_next(req, depot, res).await;
    }
}

/// The caller the [`Authenticate`] guard found; anonymous on routes it does not guard.
pub fn caller(depot: &Depot) -> Caller {
    depot
        .get_typed::<Caller>()
        .cloned()
        .unwrap_or(Caller::Anonymous)
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
        let route = table::route_of(req.uri().path()).map(|(template, _)| template);
        self.0.request(req.method().as_str(), route, status);
        let pipeline = req.param::<String>("name").unwrap_or_default();
        if let Some(InternalCause(cause)) = res.extensions.get::<InternalCause>() {
            tracing::warn!(request_id = %id, pipeline, cause, "the answer's cause");
        }
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
/// `limit` bytes are drained, for at most [`DRAIN_TIME`]. A body that was never invited
/// (`Expect: 100-continue`) or that is declared larger than the limit is not read at all: the
/// connection is closed after the answer instead.
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
        if !matches!(body, ReqBody::Hyper { .. } | ReqBody::Boxed { .. }) {
            return;
        }
        let uninvited = req.headers().contains_key(EXPECT);
        let oversize = req
            .header::<u64>(CONTENT_LENGTH)
            .is_some_and(|n| n > self.limit as u64);
        if uninvited || oversize {
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return;
        }
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

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, ServiceClock, NoOpMiddleware<Nanos>>;

fn limiter(
    requests_per_minute: Option<NonZeroU32>,
    burst: NonZeroU32,
    clock: &ServiceClock,
) -> Option<Arc<Limiter>> {
    let rate = requests_per_minute?;
    let quota = Quota::per_minute(rate).allow_burst(burst);
    Some(Arc::new(Limiter::new(
        quota,
        DefaultKeyedStateStore::default(),
        clock.clone(),
    )))
}

/// How often buckets of idle clients are dropped, in seconds.
const SWEEP_EVERY_S: u64 = 60;

/// Limits submissions per client and pipeline, applied by the handlers to the pipeline a
/// request really uses. The client is the verified principal when there is one, else the
/// address: an unverified credential is no identity, so sending random ones gains nothing.
/// Buckets of clients idle long enough to be full again are dropped once a minute.
pub struct RateLimits {
    pipelines: HashMap<String, Option<Arc<Limiter>>>,
    trusted_proxies: Vec<IpAddr>,
    clock: ServiceClock,
    last_sweep_s: AtomicU64,
}

impl RateLimits {
    pub fn new(config: &Config, clock: &ServiceClock) -> Self {
        let global = limiter(
            config.rate_limit.requests_per_minute,
            config.rate_limit.burst,
            clock,
        );
        let pipelines = config
            .pipelines
            .iter()
            .map(|(name, p)| {
                let own = match &p.rate_limit {
                    Some(quota) => limiter(quota.requests_per_minute, quota.burst, clock),
                    None => global.clone(),
                };
                (name.clone(), own)
            })
            .collect();
        Self {
            pipelines,
            trusted_proxies: config.rate_limit.trusted_proxies.clone(),
            clock: clock.clone(),
            last_sweep_s: AtomicU64::new(0),
        }
    }

    /// Takes one submission from this client's bucket of `pipeline`.
    pub fn check(&self, pipeline: &str, caller: &Caller, req: &Request) -> Result<(), Problem> {
        let Some(Some(limiter)) = self.pipelines.get(pipeline) else {
            return Ok(());
        };
        self.sweep(Duration::from_secs(SWEEP_EVERY_S));
        let key = client_key(req, caller, &self.trusted_proxies);
        let Err(not_until) = limiter.check_key(&key) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(self.clock.now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let detail = format!("too many submissions from this client; retry in {seconds} s");
        Err(Problem::new(codes::RATE_LIMITED, detail).retry_after(seconds.max(1) as u32))
    }

    /// Drops full buckets, at most once per `every`.
    fn sweep(&self, every: Duration) {
        let now = self.clock.elapsed().as_secs();
        let last = self.last_sweep_s.load(Ordering::Relaxed);
        let due = now >= last + every.as_secs();
        if !due
            || self
                .last_sweep_s
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        for limiter in self.pipelines.values().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Who is asking: a verified principal, else an address.
fn client_key(req: &Request, caller: &Caller, trusted_proxies: &[IpAddr]) -> String {
    if let Caller::Principal(principal) = caller {
        return principal.key.clone();
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
    fn the_client_is_the_verified_principal_else_the_address_behind_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let anonymous = Caller::Anonymous;
        let direct = request("192.0.2.7:5000", &[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_key(&direct, &anonymous, &[proxy]),
            "ip:192.0.2.7",
            "an untrusted peer cannot claim another address"
        );
        let proxied = request(
            "10.0.0.1:5000",
            &[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.0.0.1")],
        );
        assert_eq!(client_key(&proxied, &anonymous, &[proxy]), "ip:203.0.113.9");
        let unverified = request("192.0.2.7:5000", &[("authorization", "Bearer random")]);
        let refused = Caller::Refused(crate::auth::Refusal::Unknown);
        assert_eq!(
            client_key(&unverified, &refused, &[]),
            "ip:192.0.2.7",
            "a credential nobody verified is no identity"
        );
        let verified = Caller::Principal(crate::auth::Principal {
            scheme: crate::config::auth::AuthMode::Tokens,
            key: "token:abc".into(),
            pipelines: None,
        });
        assert_eq!(client_key(&unverified, &verified, &[]), "token:abc");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer abc", "bearer abc", "BEARER  abc "] {
            let req = request("192.0.2.7:5000", &[("authorization", header)]);
            assert_eq!(bearer(&req).as_deref(), Some("abc"), "{header}");
        }
        let basic = request("192.0.2.7:5000", &[("authorization", "Basic abc")]);
        assert_eq!(bearer(&basic), None);
    }

    #[test]
    fn idle_clients_buckets_are_dropped() {
        let clock = ServiceClock::new();
        let limits = RateLimits {
            pipelines: HashMap::from([(
                "default".to_owned(),
                limiter(NonZeroU32::new(600), NonZeroU32::MIN, &clock),
            )]),
            trusted_proxies: Vec::new(),
            clock: clock.clone(),
            last_sweep_s: AtomicU64::new(0),
        };
        for i in 0..50 {
            let req = request(&format!("192.0.2.{i}:5000"), &[]);
            limits.check("default", &Caller::Anonymous, &req).unwrap();
        }
        let held = |l: &RateLimits| {
            l.pipelines
                .values()
                .flatten()
                .map(|l| l.len())
                .sum::<usize>()
        };
        assert_eq!(held(&limits), 50);
        // At 600 a minute a bucket of one is full again after 100 ms; governor keeps a key
        // one more interval before it counts as fresh.
        clock.advance(Duration::from_millis(300));
        limits.sweep(Duration::ZERO);
        assert_eq!(held(&limits), 0);
    }
}
