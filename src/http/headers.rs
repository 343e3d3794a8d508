//! Headers that protect browsers: every answer is `nosniff` and may not be framed, the pages
//! run only their own scripts, and a page of a foreign origin cannot submit.

use salvo::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, HeaderValue, ORIGIN, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use salvo::prelude::*;

use super::codes;
use super::problem::Problem;

/// The contributor page and `/docs`: their own scripts and styles only, photos previewed from
/// `blob:` URLs, no plugin, no framing.
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; \
                           base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// Everything else (records, stored images, JSON): nothing runs even when opened directly.
const DATA_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

pub struct SecurityHeaders;

#[async_trait]
impl Handler for SecurityHeaders {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        ctrl.call_next(req, depot, res).await;
        let html = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let policy = if html { PAGE_POLICY } else { DATA_POLICY };
        let headers = res.headers_mut();
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
}

/// Refuses a request that sends a body from a browser page of an origin `cors_origins` does
/// not allow. CORS alone cannot: a multipart or `text/plain` POST is a "simple request" that
/// the browser sends without asking first, and only the answer is hidden from the page.
/// Requests without `Origin` (scripts, curl) and from the server's own origin (the
/// contributor page; compared with the `Host` header) pass.
pub struct SameOriginOrAllowed {
    /// `None`: every origin is allowed (`"*"`).
    allowed: Option<Vec<String>>,
}

impl SameOriginOrAllowed {
    pub fn new(cors_origins: &[String]) -> Self {
        let any = cors_origins.iter().any(|o| o == "*");
        Self {
            allowed: (!any).then(|| cors_origins.to_vec()),
        }
    }

    fn admits(&self, req: &Request) -> bool {
        let Some(allowed) = &self.allowed else {
            return true;
        };
        let Some(origin) = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok()) else {
            return true;
        };
        if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        let host = req.headers().get(HOST).and_then(|v| v.to_str().ok());
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
    }
}

#[async_trait]
impl Handler for SameOriginOrAllowed {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        if self.admits(req) {
            ctrl.call_next(req, depot, res).await;
            return;
        }
        res.render(Problem::new(
            codes::ORIGIN_FORBIDDEN,
            "pages of this origin may not send to this server (server.cors_origins)",
        ));
        ctrl.skip_rest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&'static str, &str)]) -> Request {
        let mut req = Request::new();
        for (name, value) in headers {
            req.headers_mut().insert(*name, value.parse().unwrap());
        }
        req
    }

    #[test]
    fn only_listed_origins_and_the_servers_own_may_send() {
        let guard = SameOriginOrAllowed::new(&["https://app.example.org".into()]);
        let host = ("host", "librarian.example.org");
        assert!(
            guard.admits(&request(&[host])),
            "no Origin: not a browser page"
        );
        assert!(guard.admits(&request(&[host, ("origin", "https://app.example.org")])));
        assert!(guard.admits(&request(&[
            host,
            ("origin", "https://librarian.example.org")
        ])));
        assert!(!guard.admits(&request(&[host, ("origin", "https://evil.example")])));
        assert!(!guard.admits(&request(&[host, ("origin", "null")])));
        let open = SameOriginOrAllowed::new(&["*".into()]);
        assert!(open.admits(&request(&[host, ("origin", "https://evil.example")])));
    }
}
