//! Request handlers. Each reads what it needs, calls the pipeline, and answers JSON or a
//! [`Problem`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use librarian_actors::{ActorError, HistoryCursor, HistoryQuery};
use librarian_model::Record;
use salvo::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderName, HeaderValue, IF_NONE_MATCH, LOCATION,
};
use salvo::prelude::*;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::codes;
use super::guard::{RateLimits, caller};
use super::intake::{
    BodyPace, Fields, Incoming, InputError, decode_image_text, multipart_parts, read_body,
    read_submission, receive,
};
use super::problem::Problem;
use crate::app::App;
use crate::auth::{Caller, Denied};
use crate::config::DEFAULT_PIPELINE;
use crate::config::auth::ReadAccess;
use crate::config::queue::SubmitMode;
use crate::jobs::{Enqueued, Job, NewJob, QueueError, Source};
use crate::metrics::{Outcome, Stage};
use crate::pipeline::{Accepted, Admission, Pipeline, SubmitError};

const PREFER: HeaderName = HeaderName::from_static("prefer");
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");
const MAX_PAGE: usize = 100;
/// What one history page may read of stored records, at least (four times
/// `server.max_label_bytes` when that is more), so a page's memory is bounded.
const HISTORY_PAGE_BYTES: usize = 4 << 20;
const MAX_SCAN_IMAGES: usize = 32;
const READY_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) fn app(depot: &Depot) -> Arc<App> {
    depot
        .get_typed::<Arc<App>>()
        .expect("the app is injected on the root router")
        .clone()
}

fn pipeline(app: &App, name: Option<&str>) -> Result<Arc<Pipeline>, Problem> {
    let name = name.unwrap_or(DEFAULT_PIPELINE);
    app.pipeline(name).cloned().ok_or_else(|| {
        Problem::new(
            codes::PIPELINE_NOT_FOUND,
            format!("no pipeline named `{name}`"),
        )
    })
}

/// The pipeline a `pipeline=` query names, if it names one: a name that is no pipeline is 404,
/// never a fallback to another.
fn named_pipeline(app: &App, req: &Request) -> Result<Option<Arc<Pipeline>>, Problem> {
    req.query::<String>("pipeline")
        .map(|name| pipeline(app, Some(&name)))
        .transpose()
}

/// What a submission is answered with: its record, or its job when it was queued.
enum Answer {
    Record(Box<Accepted>),
    Job(Job),
}

/// A submission's answer as the metrics count it.
fn counted(outcome: &Result<Answer, Problem>) -> Outcome<'_> {
    match outcome {
        Ok(Answer::Record(accepted)) if accepted.created => Outcome::Stored {
            barcodes: &accepted.record.barcodes,
        },
        Ok(Answer::Record(_)) => Outcome::Replayed,
        Ok(Answer::Job(_)) => Outcome::Queued,
        Err(p) if codes::BACK_PRESSURE.iter().any(|c| c.name == p.code) => {
            Outcome::Busy { code: p.code }
        }
        Err(p) if p.status == StatusCode::UNPROCESSABLE_ENTITY => Outcome::Rejected {
            code: p.code,
            findings: &p.errors,
        },
        Err(p) if p.status.is_server_error() => Outcome::Failed { code: p.code },
        Err(p) => Outcome::Refused { code: p.code },
    }
}

/// Whether the request asks for an asynchronous answer (RFC 7240 `Prefer: respond-async`).
fn prefers_async(req: &Request) -> bool {
    req.headers()
        .get_all(PREFER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|preference| {
            preference
                .split([';', '='])
                .next()
                .unwrap_or_default()
                .trim()
        })
        .any(|token| token.eq_ignore_ascii_case("respond-async"))
}

pub(super) fn parse_id(text: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(text).map_err(|_| InputError::BadId(text.to_owned()).into())
}

#[handler]
pub async fn submit(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), Problem> {
    let app = app(depot);
    let pipeline = pipeline(&app, req.param::<String>("name").as_deref())?;
    let outcome = accept(&app, depot, &pipeline, req).await;
    app.metrics.submission(&pipeline.name, counted(&outcome));
    match outcome? {
        Answer::Record(accepted) => {
            res.status_code(if accepted.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            });
            set_location(res, &format!("/api/v1/submissions/{}", accepted.record.id));
            res.render(Json(&accepted.record));
        }
        Answer::Job(job) => {
            res.status_code(StatusCode::ACCEPTED);
            set_location(res, &format!("/api/v1/jobs/{}", job.id));
            res.headers_mut().insert(
                PREFERENCE_APPLIED,
                HeaderValue::from_static("respond-async"),
            );
            res.render(Json(&job));
        }
    }
    Ok(())
}

pub(super) fn set_location(res: &mut Response, location: &str) {
    res.headers_mut().insert(
        LOCATION,
        HeaderValue::from_str(location).expect("a path is a header value"),
    );
}

/// Lets a request use a pipeline: the caller must be allowed to, and within its rate.
fn admit(depot: &Depot, pipeline: &Pipeline, req: &Request) -> Result<(), Problem> {
    let caller = caller(depot);
    pipeline.authorize_submit(&caller)?;
    let limits = depot
        .get_typed::<Arc<RateLimits>>()
        .expect("the rate limits are injected on the root router");
    limits.check(&pipeline.name, &caller, req)
}

/// Receives the whole body within the server's pace, holding an upload slot (not a slot of
/// the submissions being handled) while it arrives.
async fn receive_body(app: &App, req: &mut Request) -> Result<(), Problem> {
    let Ok(_upload) = app.uploads.clone().try_acquire_owned() else {
        return Err(busy("receiving as many uploads"));
    };
    let server = &app.loaded.config.server;
    let pace = BodyPace {
        timeout: server.body_timeout,
        min_rate: server.min_body_rate,
    };
    Ok(receive(req, server.max_body_bytes, pace).await?)
}

/// One of the submissions handled at once; the next one is answered 503 with Retry-After at
/// once, so a burst cannot queue without bound or exhaust memory.
fn handling_slot(app: &App) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
    app.in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| busy("handling as many submissions"))
}

/// 503 `server.busy`: the server is `doing` as it may at once.
fn busy(doing: &str) -> Problem {
    let detail = format!("the server is {doing} as it may; retry shortly");
    Problem::new(codes::SERVER_BUSY, detail).retry_after(1)
}

/// Admits, reads the submission and hands it to the pipeline: to complete now, or, when the
/// request prefers it or the pipeline is asynchronous, to the queue once the cheap checks pass.
async fn accept(
    app: &App,
    depot: &Depot,
    pipeline: &Pipeline,
    req: &mut Request,
) -> Result<Answer, Problem> {
    let id = req
        .param::<String>("id")
        .map(|id| parse_id(&id))
        .transpose()?;
    admit(depot, pipeline, req)?;
    let queue = match pipeline.mode == SubmitMode::Async || prefers_async(req) {
        true => Some(
            app.queue
                .clone()
                .ok_or_else(|| Problem::from(QueueError::Closed))?,
        ),
        false => None,
    };
    let fields = Fields {
        image: &pipeline.image_field,
        labels: &pipeline.labels_field,
        schema: pipeline.label_schema(),
        max_label_bytes: app.loaded.config.server.max_label_bytes,
    };
    let started = Instant::now();
    receive_body(app, req).await?;
    let _slot = handling_slot(app)?;
    let incoming = read_submission(req, &fields, app.loaded.config.server.max_body_bytes).await;
    app.metrics.stage(Stage::Read, None, started.elapsed());
    let source = match (incoming?, &queue) {
        (Incoming::Image(submission), None) => {
            return Ok(Answer::Record(Box::new(
                pipeline.submit(submission, id).await?,
            )));
        }
        (Incoming::Image(submission), Some(_)) => match pipeline.admit(submission, id).await? {
            Admission::Replayed(accepted) => return Ok(Answer::Record(Box::new(accepted))),
            Admission::Ready(prepared) => Source::Prepared(prepared),
        },
        // The photo is not here: its job fetches it, and every check waits for it.
        (Incoming::Url { url, labels }, _) => {
            crate::fetch::check_url(&url, &pipeline.fetch)?;
            Source::Url {
                url,
                labels,
                received_at: crate::pipeline::received_now(),
            }
        }
    };
    let queue = match queue {
        Some(queue) => queue,
        None => app
            .queue
            .clone()
            .ok_or_else(|| Problem::from(QueueError::Closed))?,
    };
    let new = NewJob {
        id: id.unwrap_or_else(Uuid::now_v7),
        pipeline: pipeline.name.clone(),
        source,
    };
    match queue.enqueue(new).await? {
        Enqueued::Queued(job) => {
            app.metrics.job("queued");
            Ok(Answer::Job(job))
        }
        Enqueued::Same(job) => Ok(Answer::Job(job)),
        Enqueued::Conflict(id) => Err(SubmitError::Conflict(id).into()),
    }
}

#[handler]
pub async fn metrics(depot: &mut Depot, res: &mut Response) {
    let app = app(depot);
    let in_flight = app.in_flight_cap - app.in_flight.available_permits();
    if let Some(queue) = &app.queue {
        match queue.depth().await {
            Ok((queued, running)) => app.metrics.queue_depth(queued, running),
            Err(error) => tracing::warn!(%error, "the queue's depth could not be read"),
        }
    }
    res.headers_mut().insert(
        CONTENT_TYPE,
        // prometheus-client writes OpenMetrics text (with `# EOF`); the type must say so, or a
        // 0.0.4 parser reads the counters as untyped.
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res.body(app.metrics.render(in_flight));
}

/// A read of one pipeline, boxed so that `read_any` can ask each pipeline in turn.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The first answer of the pipelines' readers, `default` first.
async fn read_any<'a, T>(
    app: &'a App,
    op: impl Fn(&'a Pipeline) -> BoxFuture<'a, Result<Option<T>, SubmitError>>,
) -> Result<Option<T>, Problem> {
    let others = app
        .pipelines
        .values()
        .filter(|p| p.name != DEFAULT_PIPELINE);
    for pipeline in std::iter::once(app.default_pipeline()).chain(others) {
        if let Some(found) = op(pipeline).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The record with this id when the caller may read its pipeline (and it is in the pipeline
/// `pipeline=` names, if any). A record the caller may not read is answered as missing, so
/// nothing tells whether a protected pipeline holds it.
async fn readable_record(
    app: &App,
    depot: &Depot,
    req: &Request,
    id: Uuid,
) -> Result<Record, Problem> {
    let only = named_pipeline(app, req)?;
    let caller = caller(depot);
    let record = read_any(app, |p| Box::pin(p.record(id))).await?;
    record
        .filter(|r| only.as_ref().is_none_or(|p| p.name == r.pipeline))
        .filter(|r| {
            app.access(&r.pipeline)
                .authorize_read(&caller, &r.pipeline)
                .is_ok()
        })
        .ok_or_else(|| Problem::new(codes::RECORD_NOT_FOUND, format!("no record with id {id}")))
}

#[handler]
pub async fn get_record(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), Problem> {
    let app = app(depot);
    let id = parse_id(&req.param::<String>("id").unwrap_or_default())?;
    let record = readable_record(&app, depot, req, id).await?;
    res.render(Json(record));
    Ok(())
}

/// The largest side a thumbnail may ask for; larger asks get the stored image itself.
const MAX_THUMBNAIL_SIDE: u32 = 1024;

#[handler]
pub async fn get_image(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), Problem> {
    let app = app(depot);
    let id = parse_id(&req.param::<String>("id").unwrap_or_default())?;
    let max_side = match req.query::<String>("max_side") {
        None => None,
        Some(text) => Some(
            text.parse::<u32>()
                .ok()
                .filter(|n| (16..=MAX_THUMBNAIL_SIDE).contains(n))
                .ok_or_else(|| {
                    Problem::new(
                        codes::QUERY_INVALID,
                        format!("max_side must be a number from 16 to {MAX_THUMBNAIL_SIDE}"),
                    )
                })?,
        ),
    };
    let record = readable_record(&app, depot, req, id).await?;
    // A record's image never changes, so its hash (and the size asked) names the answer.
    let etag = match max_side {
        Some(side) => format!("\"{}-{side}\"", record.image.sha256),
        None => format!("\"{}\"", record.image.sha256),
    };
    let public = app.access(&record.pipeline).read == ReadAccess::Public;
    let cache = match public {
        true => "public, max-age=31536000, immutable",
        false => "private, max-age=31536000, immutable",
    };
    let headers = res.headers_mut();
    headers.insert(
        ETAG,
        HeaderValue::from_str(&etag).expect("hex is a header value"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    let cached = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if cached {
        res.status_code(StatusCode::NOT_MODIFIED);
        return Ok(());
    }
    let bytes = read_any(&app, |p| Box::pin(p.image(&record)))
        .await?
        .ok_or_else(|| Problem::new(codes::RECORD_NOT_FOUND, format!("no image for id {id}")))?;
    let (body, mime) = match max_side {
        Some(side) => {
            let small = app
                .decode_pool
                .thumbnail(bytes.into(), record.image.clone(), side)
                .await?;
            (small, "image/jpeg")
        }
        None => (bytes, record.image.format.mime()),
    };
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(mime));
    res.body(body);
    Ok(())
}

/// The pipelines a history page lists: the one `pipeline=` names (which the caller must be
/// allowed to read), else every pipeline the caller may read.
fn listed_pipelines(
    app: &App,
    caller: &Caller,
    only: Option<&Pipeline>,
) -> Result<Vec<String>, Problem> {
    if let Some(pipeline) = only {
        pipeline.authorize_read(caller)?;
        return Ok(vec![pipeline.name.clone()]);
    }
    let mut readable = Vec::new();
    let mut denials = Vec::new();
    for (name, pipeline) in &app.pipelines {
        match pipeline.authorize_read(caller) {
            Ok(()) => readable.push(name.clone()),
            Err(denied) => denials.push(denied),
        }
    }
    if readable.is_empty() {
        // The answer that helps most: a credential to fix or to send before "not allowed".
        let rank = |d: &Denied| match d {
            Denied::Refused(_) => 0,
            Denied::Required => 1,
            Denied::Forbidden => 2,
            Denied::Closed => 3,
        };
        let denied = denials
            .into_iter()
            .min_by_key(rank)
            .unwrap_or(Denied::Closed);
        return Err(denied.into());
    }
    Ok(readable)
}

#[handler]
pub async fn history(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), Problem> {
    let app = app(depot);
    let route = req.param::<String>("name");
    let only = match &route {
        Some(name) => Some(pipeline(&app, Some(name))?),
        None => named_pipeline(&app, req)?,
    };
    let pipelines = listed_pipelines(&app, &caller(depot), only.as_deref())?;
    let reader = only.unwrap_or_else(|| app.default_pipeline().clone());
    let limit = match req.query::<String>("limit") {
        None => 20,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    codes::QUERY_INVALID,
                    format!("limit must be a number from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let before = match req.query::<String>("before") {
        None => None,
        Some(text) => Some(parse_cursor(&text)?),
    };
    let query = HistoryQuery {
        pipelines,
        limit,
        before,
        max_bytes: HISTORY_PAGE_BYTES.max(4 * app.loaded.config.server.max_label_bytes),
    };
    let page = reader.history(&query).await?;
    for skipped in &page.skipped {
        tracing::warn!(
            record = %skipped.id,
            reason = %skipped.reason,
            "a record was left out of a history page"
        );
    }
    app.metrics.history_skipped(page.skipped.len());
    let records = page.records;
    let next = page.last.filter(|_| page.more).map(|last| {
        match (&route, req.query::<String>("pipeline")) {
            (Some(name), _) => {
                format!("/api/v1/pipelines/{name}/submissions?limit={limit}&before={last}")
            }
            (None, Some(name)) => {
                format!("/api/v1/submissions?pipeline={name}&limit={limit}&before={last}")
            }
            (None, None) => format!("/api/v1/submissions?limit={limit}&before={last}"),
        }
    });
    res.render(Json(json!({ "records": records, "next": next })));
    Ok(())
}

fn parse_cursor(text: &str) -> Result<HistoryCursor, Problem> {
    if let Ok(id) = Uuid::parse_str(text) {
        return Ok(HistoryCursor::Record(id));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| HistoryCursor::Time(t.to_utc()))
        .map_err(|_| {
            Problem::new(
                codes::QUERY_INVALID,
                "before must be a record id or an RFC 3339 time",
            )
        })
}

/// One image of a scan and what names it in the request.
struct ScanInput {
    /// The multipart field, `images[i]` of a JSON body, or `body`.
    part: String,
    filename: Option<String>,
    bytes: bytes::Bytes,
}

/// Barcode extraction only: one image or many (a JSON `images` array or several file parts),
/// decoded in parallel on the bounded pool; nothing is stored. Results come in the order the
/// images were sent, each naming its part.
#[handler]
pub async fn scan(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), Problem> {
    let app = app(depot);
    let pipeline = named_pipeline(&app, req)?.unwrap_or_else(|| app.default_pipeline().clone());
    admit(depot, &pipeline, req)?;
    receive_body(&app, req).await?;
    let _slot = handling_slot(&app)?;
    let inputs = scan_inputs(req, &pipeline, app.loaded.config.server.max_body_bytes).await?;
    if inputs.len() > MAX_SCAN_IMAGES {
        return Err(Problem::new(
            codes::SCAN_TOO_MANY_IMAGES,
            format!("at most {MAX_SCAN_IMAGES} images per scan"),
        ));
    }
    let mut jobs = JoinSet::new();
    let mut results: Vec<Value> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        results.push(json!({"index": index, "part": input.part, "filename": input.filename}));
        let pipeline = pipeline.clone();
        jobs.spawn(async move {
            let started = Instant::now();
            let result = pipeline.scan(input.bytes).await;
            (index, result, started.elapsed())
        });
    }
    while let Some(done) = jobs.join_next().await {
        let Ok((index, result, elapsed)) = done else {
            continue;
        };
        let entry = &mut results[index];
        entry["ms"] = json!((elapsed.as_secs_f64() * 1e4).round() / 10.0);
        match result {
            Ok((facts, found)) => {
                entry["image"] = json!(facts);
                entry["barcodes"] = json!(found.barcodes);
            }
            Err(e) => {
                entry["error"] = json!(Problem::from(e).document());
            }
        }
    }
    res.render(Json(json!({ "results": results })));
    Ok(())
}

/// The images of a scan, read by the submissions' own intake: the same content types, limits
/// and multipart parser.
async fn scan_inputs(
    req: &mut Request,
    pipeline: &Pipeline,
    limit: usize,
) -> Result<Vec<ScanInput>, Problem> {
    let essence = req
        .content_type()
        .map(|m| m.essence_str().to_ascii_lowercase())
        .unwrap_or_default();
    if essence == "multipart/form-data" {
        let mut inputs = Vec::new();
        for part in multipart_parts(req, limit).await? {
            let bytes = match (&part.filename, part.name == pipeline.image_field) {
                (Some(_), _) => part.bytes,
                (None, true) => decode_image_text(part.text()?)?,
                (None, false) => continue,
            };
            // As in a submission: an empty image is no image, whatever the other parts hold.
            if bytes.is_empty() {
                return Err(InputError::MissingImage(part.name).into());
            }
            inputs.push(ScanInput {
                part: part.name,
                filename: part.filename,
                bytes,
            });
        }
        if inputs.is_empty() {
            return Err(InputError::MissingImage(pipeline.image_field.clone()).into());
        }
        return Ok(inputs);
    }
    if essence == "application/json" || essence.ends_with("+json") {
        let body = read_body(req, limit).await?;
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| InputError::MalformedJson(e.to_string()))?;
        let field = pipeline.image_field.as_str();
        // Which of two images the caller meant cannot be guessed: one key, as the document says.
        if field != "images" && value.get("images").is_some() && value.get(field).is_some() {
            return Err(InputError::MalformedJson(format!(
                "send `images` (an array) or `{field}` (one image), not both"
            ))
            .into());
        }
        let named: Vec<(String, &str)> = match (&value["images"], &value[field]) {
            (Value::Array(items), _) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| Some((format!("images[{i}]"), item.as_str()?)))
                .collect(),
            (_, Value::String(one)) => vec![(pipeline.image_field.clone(), one.as_str())],
            _ => return Err(InputError::MissingImage("images".into()).into()),
        };
        return named
            .into_iter()
            .map(|(part, text)| {
                Ok(ScanInput {
                    part,
                    filename: None,
                    bytes: decode_image_text(text)?,
                })
            })
            .collect();
    }
    let fields = Fields {
        image: &pipeline.image_field,
        labels: &pipeline.labels_field,
        schema: pipeline.label_schema(),
        // A scan keeps no labels: only the body's limit applies.
        max_label_bytes: limit,
    };
    let Incoming::Image(submission) = read_submission(req, &fields, limit).await? else {
        return Err(InputError::MissingImage(pipeline.image_field.clone()).into());
    };
    Ok(vec![ScanInput {
        part: "body".into(),
        filename: None,
        bytes: submission.image,
    }])
}

fn pipeline_spec(app: &App, pipeline: &Pipeline) -> Value {
    let config = &app.loaded.config;
    let components =
        |names: &mut dyn Iterator<Item = &String>, section: &dyn Fn(&str) -> Value| -> Vec<Value> {
            names
                .map(|n| json!({"name": n, "config": section(n)}))
                .collect()
        };
    json!({
        "name": pipeline.name,
        "submit": format!("/api/v1/pipelines/{}/submissions", pipeline.name),
        "image_field": pipeline.image_field,
        "labels_field": pipeline.labels_field,
        "label_schema": pipeline.label_schema(),
        "access": pipeline.access,
        "mode": pipeline.mode,
        "async_above_bytes": config.pipelines.get(&pipeline.name).and_then(|p| p.async_above_bytes),
        "limits": {
            "max_body_bytes": config.server.max_body_bytes,
            "max_pixels": pipeline.max_pixels(),
            "formats": librarian_model::ImageFormat::ALL.iter()
                .filter(|f| pipeline.validators.iter().all(|v| v.component.accepts_format(**f)))
                .collect::<Vec<_>>(),
        },
        "validators": components(&mut pipeline.validators.iter().map(|v| &v.name), &|n| json!(config.validators[n])),
        "extractors": components(&mut pipeline.extractors.iter().map(|e| &e.name), &|n| json!(config.extractors[n])),
        "actors": pipeline.actors.iter().map(|a| &a.name).collect::<Vec<_>>(),
    })
}

#[handler]
pub async fn list_pipelines(depot: &mut Depot, res: &mut Response) {
    let app = app(depot);
    let specs: Vec<Value> = app
        .pipelines
        .values()
        .map(|p| pipeline_spec(&app, p))
        .collect();
    res.render(Json(json!({ "pipelines": specs })));
}

#[handler]
pub async fn get_pipeline(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), Problem> {
    let app = app(depot);
    let pipeline = pipeline(&app, req.param::<String>("name").as_deref())?;
    res.render(Json(pipeline_spec(&app, &pipeline)));
    Ok(())
}

#[handler]
pub async fn healthz(res: &mut Response) {
    res.render(Json(json!({"status": "alive"})));
}

/// Ready when every configured actor answers within a short timeout.
#[handler]
pub async fn readyz(depot: &mut Depot, res: &mut Response) -> Result<(), Problem> {
    let app = app(depot);
    let mut seen = std::collections::BTreeMap::new();
    for actor in app.pipelines.values().flat_map(|p| p.actors.iter()) {
        seen.entry(actor.name.clone())
            .or_insert_with(|| actor.component.clone());
    }
    let mut actors = serde_json::Map::new();
    for (name, actor) in seen {
        let cause = match tokio::time::timeout(READY_TIMEOUT, actor.ready()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(ActorError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", READY_TIMEOUT.as_secs()),
            ))),
        };
        if let Some(cause) = cause {
            // A refusal is the store's verdict and names no host; other causes (connection
            // errors name hosts and ports) go to the log, not the answer.
            let detail = match &cause {
                ActorError::Refused(verdict) => format!("actor `{name}` is not ready: {verdict}"),
                _ => format!("actor `{name}` is not ready; the server's log says why"),
            };
            let cause = cause.to_string();
            return Err(Problem::new(codes::ACTOR_NOT_READY, detail)
                .with_cause(cause)
                .retry_after(5));
        }
        actors.insert(name, "ready".into());
    }
    res.render(Json(json!({"status": "ready", "actors": actors})));
    Ok(())
}
