//! Who may read records back: each pipeline's `read` permission, its defaults, what the
//! pipeline list tells a client, and thumbnails that are small and cacheable.

mod common;

use std::path::Path;

use common::{Client, body, png, problem, status, strings_at, symbol, url};
use image::GenericImageView;
use librarian::auth::tokens;
use rxing::BarcodeFormat;
use salvo::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG};
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use serde_json::{Value, json};
use uuid::Uuid;

const DEFAULT_IS_PUBLIC: &str = r#"
[pipelines.default]
read = "public"
"#;

/// A QR code on a 1000 x 600 canvas: large enough that a thumbnail must shrink it.
fn wide_photo() -> Vec<u8> {
    let code = symbol(BarcodeFormat::QR_CODE, "thumbnail", 300, 300);
    png(&common::on_canvas(&code, 1000, 600, 100, 100))
}

/// Stores one record in `pipeline` (with `token` when it needs one) and returns its id.
async fn stored(client: &Client, pipeline: &str, token: Option<&str>) -> Uuid {
    let id = Uuid::new_v4();
    let put = TestClient::put(url(&format!(
        "/api/v1/pipelines/{pipeline}/submissions/{id}"
    )))
    .json(&body(&wide_photo(), json!({"shelf": "007"})));
    assert_eq!(status(&client.called_with(token).send(put).await), 201);
    id
}

async fn get(client: &Client, path: &str, token: Option<&str>) -> Response {
    client.called_with(token).get(path).await
}

async fn access_of(client: &Client, pipeline: &str) -> Value {
    let mut res = get(client, &format!("/api/v1/pipelines/{pipeline}"), None).await;
    res.take_json::<Value>().await.unwrap()["access"].clone()
}

#[tokio::test]
async fn an_open_pipeline_is_not_readable_until_its_config_says_public() {
    let dir = tempfile::tempdir().unwrap();
    let closed = Client::start(dir.path(), "").await;
    let id = stored(&closed, "default", None).await;
    assert_eq!(
        access_of(&closed, "default").await,
        json!({"submit": "none", "read": "closed"})
    );
    for path in [
        format!("/api/v1/submissions/{id}"),
        format!("/api/v1/submissions/{id}/image"),
        format!("/api/v1/submissions/{id}/image?max_side=320"),
    ] {
        problem(
            &mut get(&closed, &path, None).await,
            404,
            "record.not_found",
        )
        .await;
    }
    for path in [
        "/api/v1/submissions",
        "/api/v1/pipelines/default/submissions",
    ] {
        problem(&mut get(&closed, path, None).await, 403, "read.closed").await;
    }

    closed.stop().await;
    let public = Client::start(dir.path(), DEFAULT_IS_PUBLIC).await;
    assert_eq!(access_of(&public, "default").await["read"], "public");
    let mut res = get(&public, &format!("/api/v1/submissions/{id}"), None).await;
    assert_eq!(status(&res), 200);
    assert_eq!(
        res.take_json::<Value>().await.unwrap()["labels"]["shelf"],
        "007"
    );
}

#[tokio::test]
async fn a_protected_pipeline_guards_its_reads_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[auth]
read = "public"
[pipelines.secret]
actors = ["disk"]
auth = "tokens"
[pipelines.gallery]
actors = ["disk"]
auth = "tokens"
read = "public"
"#;
    let client = Client::start(dir.path(), toml).await;
    let token = tokens::create(&dir.path().join("tokens.json"), "t", None, vec![]).unwrap();
    assert_eq!(
        access_of(&client, "secret").await,
        json!({"submit": "tokens", "read": "tokens"}),
        "[auth] read does not open a pipeline with its own auth"
    );
    assert_eq!(
        access_of(&client, "gallery").await,
        json!({"submit": "tokens", "read": "public"})
    );
    assert_eq!(access_of(&client, "default").await["read"], "public");

    let secret = stored(&client, "secret", Some(&token)).await;
    let shown = stored(&client, "gallery", Some(&token)).await;
    let record = |id: Uuid| format!("/api/v1/submissions/{id}");
    problem(
        &mut get(&client, &record(secret), None).await,
        404,
        "record.not_found",
    )
    .await;
    assert_eq!(
        status(&get(&client, &record(secret), Some(&token)).await),
        200
    );
    assert_eq!(status(&get(&client, &record(shown), None).await), 200);
    let mut anonymous = get(&client, "/api/v1/pipelines/secret/submissions", None).await;
    problem(&mut anonymous, 401, "auth.required").await;
    let mut listed = get(&client, "/api/v1/submissions", None).await;
    let page = listed.take_json::<Value>().await.unwrap();
    let pipelines = strings_at(&page["records"], "pipeline");
    assert_eq!(
        pipelines,
        ["gallery"],
        "anonymous history lists the public pipelines only"
    );
    let put = TestClient::post(url("/api/v1/pipelines/gallery/submissions"))
        .json(&body(&wide_photo(), json!({})));
    problem(&mut client.send(put).await, 401, "auth.required").await;
}

/// The image route's thumbnail: the photo shrunk to `max_side`, a JPEG, cacheable by its hash.
async fn thumbnail_of(dir: &Path, toml: &str) -> (Client, Uuid) {
    let client = Client::start(dir, toml).await;
    let id = stored(&client, "default", None).await;
    (client, id)
}

#[tokio::test]
async fn thumbnails_are_small_jpegs_that_caches_may_keep() {
    let dir = tempfile::tempdir().unwrap();
    let (client, id) = thumbnail_of(dir.path(), DEFAULT_IS_PUBLIC).await;
    let path = format!("/api/v1/submissions/{id}/image?max_side=320");
    let mut res = get(&client, &path, None).await;
    assert_eq!(status(&res), 200);
    let headers = res.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "image/jpeg");
    assert!(
        headers[CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    let etag = headers[ETAG].to_str().unwrap().to_owned();
    let bytes = res.take_bytes(None).await.unwrap();
    let small = image::load_from_memory(&bytes).unwrap();
    assert_eq!(
        small.dimensions(),
        (320, 192),
        "the longer side is 320, proportions kept"
    );

    let again = TestClient::get(url(&path)).add_header("if-none-match", &etag, true);
    assert_eq!(status(&client.send(again).await), 304);
    let mut full = get(&client, &format!("/api/v1/submissions/{id}/image"), None).await;
    assert_ne!(
        full.headers()[ETAG].to_str().unwrap(),
        etag,
        "each size has its own tag"
    );
    let original = image::load_from_memory(&full.take_bytes(None).await.unwrap()).unwrap();
    assert_eq!(original.dimensions(), (1000, 600));
    for wrong in ["0", "5000", "big", ""] {
        let path = format!("/api/v1/submissions/{id}/image?max_side={wrong}");
        problem(&mut get(&client, &path, None).await, 400, "query.invalid").await;
    }
}

#[tokio::test]
async fn a_protected_thumbnail_is_cached_privately() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[pipelines.default]
read = "tokens"
"#;
    let (client, id) = thumbnail_of(dir.path(), toml).await;
    let token = tokens::create(&dir.path().join("tokens.json"), "t", None, vec![]).unwrap();
    let path = format!("/api/v1/submissions/{id}/image?max_side=64");
    problem(
        &mut get(&client, &path, None).await,
        404,
        "record.not_found",
    )
    .await;
    let res = get(&client, &path, Some(&token)).await;
    assert_eq!(status(&res), 200);
    assert!(
        res.headers()[CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("private")
    );
}
