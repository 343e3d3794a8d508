//! The HTTP API (v1): routes, CORS, security headers, and problem+json for every error.

pub mod codes;
mod guard;
mod headers;
mod intake;
mod jobs;
mod lifecycle;
mod problem;
mod routes;
pub mod table;

use std::sync::Arc;

use salvo::affix_state;
use salvo::catcher::Catcher;
use salvo::cors::{AllowOrigin, Cors};
use salvo::http::Method;
use salvo::http::header::{CONTENT_TYPE, HeaderValue};
use salvo::prelude::*;

pub use guard::bearer;
pub use lifecycle::{Lifecycle, serve_until};
pub use problem::Problem;

use crate::app::App;

const OPENAPI: &str = include_str!("assets/openapi.json");
const DOCS_PAGE: &str = include_str!("assets/docs.html");
const DOCS_SCRIPT: &str = include_str!("assets/docs.js");
const DOCS_STYLE: &str = include_str!("assets/docs.css");
const INDEX_PAGE: &str = include_str!("assets/index.html");
const PAGE_SCRIPT: &str = include_str!("assets/app.js");
const PAGE_STYLE: &str = include_str!("assets/app.css");

fn asset(res: &mut Response, content_type: &'static str, body: &'static str) {
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.body(body);
}

#[handler]
async fn openapi(res: &mut Response) {
    asset(res, "application/json", OPENAPI);
}

#[handler]
async fn docs(res: &mut Response) {
    asset(res, "text/html; charset=utf-8", DOCS_PAGE);
}

#[handler]
async fn index(res: &mut Response) {
    asset(res, "text/html; charset=utf-8", INDEX_PAGE);
}

#[handler]
async fn page_script(res: &mut Response) {
    asset(res, "text/javascript; charset=utf-8", PAGE_SCRIPT);
}

#[handler]
async fn docs_script(res: &mut Response) {
    asset(res, "text/javascript; charset=utf-8", DOCS_SCRIPT);
}

#[handler]
async fn docs_style(res: &mut Response) {
    asset(res, "text/css; charset=utf-8", DOCS_STYLE);
}

#[handler]
async fn page_style(res: &mut Response) {
    asset(res, "text/css; charset=utf-8", PAGE_STYLE);
}

/// A route that answers GET, and HEAD the same way (the server sends the headers only).
fn get_or_head(handler: impl Handler) -> Router {
    Router::new()
        .filter_fn(|req, _| matches!(*req.method(), Method::GET | Method::HEAD))
        .goal(handler)
}

/// The router of every route of the design.
fn router(app: Arc<App>) -> Router {
    let submissions = Router::with_path("submissions")
        .push(get_or_head(routes::history))
        .post(routes::submit)
        .put(routes::submit)
        .push(
            Router::with_path("{id}")
                .push(get_or_head(routes::get_record))
                .put(routes::submit)
                .push(Router::with_path("image").push(get_or_head(routes::get_image))),
        );
    let pipelines = Router::with_path("pipelines")
        .push(get_or_head(routes::list_pipelines))
        .push(
            Router::with_path("{name}")
                .push(get_or_head(routes::get_pipeline))
                .push(
                    Router::with_path("submissions")
                        .push(get_or_head(routes::history))
                        .post(routes::submit)
                        .put(routes::submit)
                        .push(Router::with_path("{id}").put(routes::submit)),
                ),
        );
    let config = &app.loaded.config;
    let rate_limits = Arc::new(guard::RateLimits::new(config, &app.clock));
    let sends = |req: &Request, _: &Depot| !matches!(*req.method(), Method::GET | Method::HEAD);
    let drain = guard::DrainUnreadBody {
        limit: config.server.max_body_bytes,
    };
    let origins = headers::SameOriginOrAllowed::new(&config.server.cors_origins);
    let api = Router::with_path("api/v1")
        .hoop_when(drain, sends)
        .hoop_when(origins, sends)
        .hoop(guard::Authenticate(app.auth.clone()))
        .push(submissions)
        .push(pipelines)
        .push(
            Router::with_path("jobs/{id}")
                .push(get_or_head(jobs::get_job))
                .push(Router::with_path("events").push(get_or_head(jobs::job_events))),
        )
        .push(Router::with_path("scan").post(routes::scan));
    Router::new()
        .hoop(affix_state::inject(app).inject(rate_limits))
        .push(get_or_head(index))
        .push(api)
        .push(Router::with_path("healthz").push(get_or_head(routes::healthz)))
        .push(Router::with_path("readyz").push(get_or_head(routes::readyz)))
        .push(Router::with_path("metrics").push(get_or_head(routes::metrics)))
        .push(Router::with_path("openapi.json").push(get_or_head(openapi)))
        .push(Router::with_path("docs").push(get_or_head(docs)))
        .push(Router::with_path("assets/app.js").push(get_or_head(page_script)))
        .push(Router::with_path("assets/docs.js").push(get_or_head(docs_script)))
        .push(Router::with_path("assets/app.css").push(get_or_head(page_style)))
        .push(Router::with_path("assets/docs.css").push(get_or_head(docs_style)))
}

fn cors(origins: &[String]) -> Cors {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::from(&origins.to_vec())
    };
    Cors::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::OPTIONS,
        ])
        .allow_headers(vec!["content-type", "authorization"])
        .expose_headers(vec![
            salvo::http::header::LOCATION,
            salvo::http::header::RETRY_AFTER,
        ])
        .max_age(600)
}

/// The whole service: routes, CORS on every route (preflight included) and problem+json for
/// statuses raised outside the handlers.
pub fn service(app: Arc<App>) -> Service {
    service_with(app, Arc::default())
}

/// The service, its requests tracked by `lifecycle` so that a stop can drain them.
pub fn service_with(app: Arc<App>, lifecycle: Arc<Lifecycle>) -> Service {
    let cors = cors(&app.loaded.config.server.cors_origins).into_handler();
    let access_log = guard::AccessLog(app.metrics.clone());
    Service::new(router(app))
        .hoop(lifecycle::Track(lifecycle))
        .hoop(access_log)
        .hoop(headers::SecurityHeaders)
        .hoop(cors)
        .catcher(Catcher::default().hoop(problem::catch_status))
}
