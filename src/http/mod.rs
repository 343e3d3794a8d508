//! The HTTP API (v1): routes, CORS, and problem+json for every error.

mod guard;
mod intake;
mod problem;
mod routes;

use std::sync::Arc;

use salvo::affix_state;
use salvo::catcher::Catcher;
use salvo::cors::{AllowOrigin, Cors};
use salvo::http::Method;
use salvo::http::header::{CONTENT_TYPE, HeaderValue};
use salvo::prelude::*;

pub use guard::{bearer, pipeline_of};
pub use problem::Problem;

use crate::app::App;

const OPENAPI: &str = include_str!("assets/openapi.json");
const DOCS_PAGE: &str = include_str!("assets/docs.html");
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
async fn page_style(res: &mut Response) {
    asset(res, "text/css; charset=utf-8", PAGE_STYLE);
}

/// The router of every route of the design.
fn router(app: Arc<App>) -> Router {
    let submissions = Router::with_path("submissions")
        .get(routes::history)
        .post(routes::submit)
        .put(routes::submit)
        .push(
            Router::with_path("{id}")
                .get(routes::get_record)
                .put(routes::submit)
                .push(Router::with_path("image").get(routes::get_image)),
        );
    let pipelines = Router::with_path("pipelines")
        .get(routes::list_pipelines)
        .push(
            Router::with_path("{name}").get(routes::get_pipeline).push(
                Router::with_path("submissions")
                    .post(routes::submit)
                    .put(routes::submit)
                    .push(Router::with_path("{id}").put(routes::submit)),
            ),
        );
    let in_flight = guard::InFlight(app.in_flight.clone());
    let rate_limit = guard::RateLimit::new(&app.loaded.config);
    let submits = |req: &Request, _: &Depot| req.method() != Method::GET;
    let guarded = |req: &Request, _: &Depot| {
        req.method() != Method::GET || !req.uri().path().starts_with("/api/v1/pipelines")
    };
    let drain = guard::DrainUnreadBody {
        limit: app.loaded.config.server.max_body_bytes,
    };
    let api = Router::with_path("api/v1")
        .hoop_when(drain, submits)
        .hoop_when(rate_limit, submits)
        .hoop_when(app.auth.clone(), guarded)
        .hoop_when(in_flight, submits)
        .push(submissions)
        .push(pipelines)
        .push(Router::with_path("scan").post(routes::scan));
    Router::new()
        .hoop(affix_state::inject(app))
        .get(index)
        .push(api)
        .push(Router::with_path("healthz").get(routes::healthz))
        .push(Router::with_path("readyz").get(routes::readyz))
        .push(Router::with_path("metrics").get(routes::metrics))
        .push(Router::with_path("openapi.json").get(openapi))
        .push(Router::with_path("docs").get(docs))
        .push(Router::with_path("assets/app.js").get(page_script))
        .push(Router::with_path("assets/app.css").get(page_style))
}

fn cors(origins: &[String]) -> Cors {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::from(&origins.to_vec())
    };
    Cors::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::OPTIONS])
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
    let cors = cors(&app.loaded.config.server.cors_origins).into_handler();
    let access_log = guard::AccessLog(app.metrics.clone());
    Service::new(router(app))
        .hoop(access_log)
        .hoop(cors)
        .catcher(Catcher::default().hoop(problem::catch_status))
}
