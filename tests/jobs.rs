//! Asynchronous submissions on the local queue, in process: 202 with the job, the job's state
//! and events, 303 to the record, rejections and failures kept in the job, idempotency, the
//! queue's bound, and jobs that outlive the process that queued them.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Client, EAN, app, ean_png, json_of, png, problem, status};
use librarian::app::App;
use librarian::auth::tokens;
use salvo::http::header::LOCATION;
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use serde_json::{Value, json};
use uuid::Uuid;

/// Records and jobs of open pipelines readable by anyone.
const PUBLIC_READS: &str = r#"
[auth]
read = "public"
"#;

/// A pipeline `shelf` that wants an EAN-13 in every photo, with public reads.
const SHELF: &str = r#"
[auth]
read = "public"
[pipelines.shelf]
validators = ["has_code"]
extractors = ["barcode"]
actors = ["disk"]
[validators.has_code]
kind = "barcode"
required = true
formats = ["EAN_13"]
"#;

fn location(res: &Response) -> String {
    let value = res.headers().get(LOCATION).expect("a Location header");
    value.to_str().unwrap().to_owned()
}

/// A photo with no barcode in it.
fn blank_png() -> Vec<u8> {
    png(&image::GrayImage::from_pixel(320, 240, image::Luma([255])))
}

/// Submits asynchronously and returns the job the 202 answered with.
async fn queued(client: &Client, pipeline: &str, image: &[u8], labels: Value) -> Value {
    let mut res = client.submit_async(pipeline, image, labels).await;
    assert_eq!(status(&res), 202, "{:?}", res.take_string().await);
    let preference = res
        .headers()
        .get("preference-applied")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(preference.as_deref(), Some("respond-async"));
    let job = json_of(&mut res).await;
    assert_eq!(
        location(&res),
        format!("/api/v1/jobs/{}", job["id"].as_str().unwrap())
    );
    job
}

#[tokio::test]
async fn an_async_submission_is_answered_202_and_its_job_leads_to_the_record_a_sync_one_stores() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), SHELF).await;
    let labels = json!({"gtin": "0012345678905", "count": 3});
    let job = queued(&client, "shelf", &ean_png(), labels.clone()).await;
    assert_eq!(job["pipeline"], "shelf");
    assert_eq!(job["state"], "queued");
    assert_eq!(job["attempts"], 0);
    let id = job["id"].as_str().unwrap();

    let res = client.finished_job(id).await;
    assert_eq!(status(&res), 303);
    assert_eq!(location(&res), format!("/api/v1/submissions/{id}"));
    let mut stored = client.record(id).await;
    assert_eq!(status(&stored), 200);
    let stored = json_of(&mut stored).await;

    let mut now = client.submit("shelf", &ean_png(), labels.clone()).await;
    assert_eq!(status(&now), 201);
    let now = json_of(&mut now).await;
    for field in ["pipeline", "labels", "image", "barcodes"] {
        assert_eq!(stored[field], now[field], "{field} differs");
    }
    assert_eq!(stored["barcodes"][0]["text"], EAN);
    assert_eq!(stored["labels"], labels);

    let metrics = client.get("/metrics").await.take_string().await.unwrap();
    for line in [
        r#"librarian_jobs_total{state="queued"} 1"#,
        r#"librarian_jobs_total{state="stored"} 1"#,
        r#"librarian_queue_depth{state="queued"} 0"#,
        "librarian_job_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn a_pipeline_in_async_mode_queues_every_submission() {
    let dir = tempfile::tempdir().unwrap();
    let toml =
        format!("{PUBLIC_READS}\n[pipelines.later]\nactors = [\"disk\"]\nmode = \"async\"\n");
    let client = Client::start(dir.path(), &toml).await;
    let mut res = client.submit("later", &ean_png(), json!({})).await;
    assert_eq!(status(&res), 202);
    let job = json_of(&mut res).await;
    let res = client.finished_job(job["id"].as_str().unwrap()).await;
    assert_eq!(status(&res), 303);
}

#[tokio::test]
async fn a_rejection_after_extraction_is_kept_in_the_job_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), SHELF).await;
    let job = queued(&client, "shelf", &blank_png(), json!({})).await;
    let id = job["id"].as_str().unwrap();
    let mut res = client.finished_job(id).await;
    assert_eq!(status(&res), 200);
    let job = json_of(&mut res).await;
    assert_eq!(job["state"], "rejected", "{job}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["problem"]["code"], "validation.failed");
    assert_eq!(job["problem"]["status"], 422);
    assert_eq!(job["problem"]["errors"][0]["validator"], "has_code");
    assert_eq!(status(&client.record(id).await), 404);
}

#[tokio::test]
async fn cheap_checks_answer_at_once_and_queue_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{SHELF}\n[pipelines.typed]\nvalidators = [\"labels\"]\nactors = [\"disk\"]\n\
         [validators.labels]\nkind = \"json-schema\"\nschema = {{ type = \"object\", required = [\"gtin\"] }}\n"
    );
    let client = Client::start(dir.path(), &toml).await;
    let mut res = client.submit_async("typed", &ean_png(), json!({})).await;
    problem(&mut res, 422, "validation.failed").await;
    let mut res = client
        .submit_async("typed", b"not an image", json!({"gtin": "1"}))
        .await;
    problem(&mut res, 415, "image.unknown_format").await;
    let queue = client.app.queue.as_ref().unwrap();
    assert_eq!(queue.depth().await.unwrap(), (0, 0), "nothing was queued");
}

#[tokio::test]
async fn the_same_id_and_content_answer_the_same_job_and_other_content_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    // No workers: the job stays queued while it is sent again.
    let service = service_without_workers(dir.path(), PUBLIC_READS).await;
    let id = Uuid::now_v7();
    let put = |labels: Value| {
        TestClient::put(common::url(&format!("/api/v1/submissions/{id}")))
            .add_header("prefer", "respond-async", true)
            .json(&common::body(&ean_png(), labels))
    };
    let mut first = put(json!({"n": 1})).send(&service).await;
    assert_eq!(status(&first), 202);
    let first = json_of(&mut first).await;
    assert_eq!(first["id"], id.to_string());
    let mut again = put(json!({"n": 1.0})).send(&service).await;
    assert_eq!(status(&again), 202);
    assert_eq!(json_of(&mut again).await, first, "the same job");
    let mut other = put(json!({"n": 2})).send(&service).await;
    problem(&mut other, 409, "submission.conflict").await;
}

/// The service of a config, with its queue open but no worker running.
async fn service_without_workers(dir: &Path, toml: &str) -> Service {
    librarian::http::service(app(dir, toml).await)
}

/// Sends `count` asynchronous submissions and returns their statuses.
async fn send_async(service: &Service, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for n in 0..count {
        let request = TestClient::post(common::url("/api/v1/submissions"))
            .add_header("prefer", "respond-async", true)
            .json(&common::body(&ean_png(), json!({"n": n})));
        let mut res = request.send(service).await;
        if status(&res) == 503 {
            assert!(res.headers().get("retry-after").is_some());
            problem(&mut res, 503, "queue.full").await;
        }
        statuses.push(status(&res));
    }
    statuses
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("{PUBLIC_READS}\n[queue]\nkind = \"local\"\nmax_queued = 2\n");
    let service = service_without_workers(dir.path(), &toml).await;
    assert_eq!(send_async(&service, 3).await, [202, 202, 503]);
}

#[tokio::test]
async fn a_queue_full_of_image_bytes_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = ean_png().len() * 2;
    let toml = format!("{PUBLIC_READS}\n[queue]\nkind = \"local\"\nmax_queued_bytes = {bytes}\n");
    let service = service_without_workers(dir.path(), &toml).await;
    assert_eq!(send_async(&service, 3).await, [202, 202, 503]);
}

#[tokio::test]
async fn queued_jobs_outlive_the_process_that_queued_them() {
    let dir = tempfile::tempdir().unwrap();
    let app: Arc<App> = app(dir.path(), PUBLIC_READS).await;
    let service = librarian::http::service(app.clone());
    let mut ids = Vec::new();
    for n in 0..3 {
        let request = TestClient::post(common::url("/api/v1/submissions"))
            .add_header("prefer", "respond-async", true)
            .json(&common::body(&ean_png(), json!({"n": n})));
        let mut res = request.send(&service).await;
        assert_eq!(status(&res), 202);
        ids.push(json_of(&mut res).await["id"].as_str().unwrap().to_owned());
    }
    // The process stops before any worker ran: the queue file is all that is left.
    drop(service);
    drop(app);
    let client = Client::start(dir.path(), PUBLIC_READS).await;
    for id in &ids {
        assert_eq!(status(&client.finished_job(id).await), 303, "job {id}");
        assert_eq!(status(&client.record(id).await), 200);
    }
}

#[tokio::test]
async fn the_events_stream_tells_each_change_and_a_late_client_gets_the_state_first() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), SHELF).await;
    let job = queued(&client, "shelf", &ean_png(), json!({})).await;
    let id = job["id"].as_str().unwrap();
    let events = client.job_events(id).await;
    let seen: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}{}",
                e["state"].as_str().unwrap(),
                e["stage"]
                    .as_str()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(seen.last().map(String::as_str), Some("stored"), "{seen:?}");
    let order = [
        "queued",
        "running",
        "running/decode",
        "running/validate",
        "running/store",
        "stored",
    ];
    let rank = |s: &str| {
        order
            .iter()
            .position(|o| *o == s)
            .unwrap_or_else(|| panic!("unknown event {s}"))
    };
    assert!(
        seen.windows(2).all(|w| rank(&w[0]) < rank(&w[1])),
        "in order, each once: {seen:?}"
    );
    assert!(seen.contains(&"running/store".to_owned()), "{seen:?}");

    let late = client.job_events(id).await;
    assert_eq!(late.len(), 1, "one event for a finished job: {late:?}");
    assert_eq!(late[0]["state"], "stored");
}

#[tokio::test]
async fn a_store_that_keeps_failing_is_retried_then_the_job_failed() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("blocked");
    let toml = format!(
        "{PUBLIC_READS}\n[queue]\nkind = \"local\"\nmax_attempts = 3\nretry_delay = \"20ms\"\n\
         [actors.blocked]\nkind = \"disk\"\ndir = \"{}\"\n[pipelines.stuck]\nactors = [\"blocked\"]\n",
        blocked.display()
    );
    let client = Client::start(dir.path(), &toml).await;
    // The disk actor's folder becomes a file after the start: every store fails with a 5xx.
    std::fs::remove_dir_all(&blocked).unwrap();
    std::fs::write(&blocked, b"").unwrap();
    let job = queued(&client, "stuck", &ean_png(), json!({})).await;
    let mut res = client.finished_job(job["id"].as_str().unwrap()).await;
    assert_eq!(status(&res), 200);
    let job = json_of(&mut res).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["problem"]["status"], 503);
    assert_eq!(job["problem"]["code"], "actor.unavailable");
    let text = job.to_string();
    assert!(
        !text.contains(&blocked.display().to_string()),
        "no path revealed: {text}"
    );
}

#[tokio::test]
async fn a_job_is_read_like_the_record_it_becomes() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "[auth]\nmode = \"tokens\"\n").await;
    let alice = tokens::create(&dir.path().join("tokens.json"), "alice", None, vec![]).unwrap();
    let mut refused = client.submit_async("default", &ean_png(), json!({})).await;
    problem(&mut refused, 401, "auth.required").await;

    let contributor = client.with_token(&alice);
    let job = queued(&contributor, "default", &ean_png(), json!({})).await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(status(&contributor.finished_job(id).await), 303);
    let mut hidden = client.job(id).await;
    problem(&mut hidden, 404, "job.not_found").await;
    let unknown = Uuid::now_v7();
    let mut missing = contributor.job(&unknown.to_string()).await;
    problem(&mut missing, 404, "job.not_found").await;
    let mut events = client.get(&format!("/api/v1/jobs/{id}/events")).await;
    problem(&mut events, 404, "job.not_found").await;
}

#[tokio::test]
async fn respond_async_is_read_among_other_preferences_and_nothing_else_is_taken_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), PUBLIC_READS).await;
    for (prefer, expected) in [
        ("handling=lenient, Respond-Async", 202),
        ("wait=5; x=1,respond-async", 202),
        ("respond-asynchronously", 201),
        ("handling=respond-async", 201),
    ] {
        let request = TestClient::post(common::url("/api/v1/submissions"))
            .add_header("prefer", prefer, true)
            .json(&common::body(&ean_png(), json!({"prefer": prefer})));
        assert_eq!(
            status(&client.send(request).await),
            expected,
            "Prefer: {prefer}"
        );
    }
}
