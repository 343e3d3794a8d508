//! The security review's findings, one scenario each: authorization decided on the pipeline a
//! request really uses, rate limits that cannot be sidestepped, credentials, slow clients,
//! decoding limits, and the headers that protect browsers.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use common::{
    Client, JWT_SECRET, body, files, jpeg, jwt, jwt_auth_toml, png, png_header_only, problem,
    status, symbol, url,
};
use librarian::auth::tokens;
use librarian::config::{Config, Overrides};
use rxing::BarcodeFormat;
use salvo::conn::tcp::TcpAcceptor;
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

fn photo(text: &str) -> Vec<u8> {
    png(&symbol(BarcodeFormat::EAN_13, text, 380, 160))
}

/// `[auth] mode = "tokens"` with an open pipeline `open` and a token for everything.
async fn tokens_and_an_open_pipeline(dir: &Path) -> (Client, String) {
    let toml = r#"
[auth]
mode = "tokens"
[pipelines.open]
actors = ["disk"]
auth = "none"
"#;
    let client = Client::start(dir, toml).await;
    let token = tokens::create(&dir.join("tokens.json"), "alice", None, vec![]).unwrap();
    (client, token)
}

#[tokio::test]
async fn a_submission_is_authorized_against_the_pipeline_it_is_stored_in() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = tokens_and_an_open_pipeline(dir.path()).await;
    let id = Uuid::new_v4();
    let request = TestClient::put(url(&format!("/api/v1/submissions/{id}?pipeline=open")))
        .json(&body(&photo("5449000000996"), json!({})));
    let mut res = client.send(request).await;
    problem(&mut res, 401, "auth.required").await;
    assert!(files(&dir.path().join("data")).is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_record_is_read_only_by_callers_of_its_own_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (client, token) = tokens_and_an_open_pipeline(dir.path()).await;
    let id = Uuid::new_v4();
    let put = TestClient::put(url(&format!("/api/v1/submissions/{id}")))
        .json(&body(&photo("5449000000996"), json!({"secret": "label"})));
    assert_eq!(status(&client.with_token(&token).send(put).await), 201);
    for path in [
        format!("/api/v1/submissions/{id}"),
        format!("/api/v1/submissions/{id}?pipeline=open"),
        format!("/api/v1/submissions/{id}/image"),
        format!("/api/v1/submissions/{id}/image?pipeline=open"),
    ] {
        let mut res = client.get(&path).await;
        let answer = problem(&mut res, 404, "record.not_found").await;
        assert!(!answer.to_string().contains("label"), "{path}: {answer}");
    }
    let mut res = client
        .with_token(&token)
        .get(&format!("/api/v1/submissions/{id}"))
        .await;
    assert_eq!(status(&res), 200);
    assert_eq!(
        res.take_json::<Value>().await.unwrap()["labels"]["secret"],
        "label"
    );
}

#[tokio::test]
async fn a_pipeline_query_that_names_no_pipeline_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = tokens_and_an_open_pipeline(dir.path()).await;
    let id = Uuid::new_v4();
    for request in [
        TestClient::get(url("/api/v1/submissions?pipeline=nope")),
        TestClient::get(url(&format!("/api/v1/submissions/{id}?pipeline=nope"))),
        TestClient::get(url(&format!(
            "/api/v1/submissions/{id}/image?pipeline=nope"
        ))),
        TestClient::post(url("/api/v1/scan?pipeline=nope"))
            .json(&body(&photo("5449000000996"), json!({}))),
    ] {
        let mut res = client.send(request).await;
        problem(&mut res, 404, "pipeline.not_found").await;
    }
}

/// A label value that cannot occur by chance in a problem (not hex, so never part of
/// a UUID), so its absence proves the record was not revealed.
const SECRET_LABEL: &str = "zulu-quokka";

/// An open `default` and a protected `secret` that store into the same `disk` actor.
async fn a_secret_pipeline_beside_an_open_one(dir: &Path) -> (Client, String, Uuid) {
    let toml = r#"
[pipelines.default]
read = "public"
[pipelines.secret]
actors = ["disk"]
auth = "tokens"
"#;
    let client = Client::start(dir, toml).await;
    let token = tokens::create(&dir.join("tokens.json"), "spy", None, vec![]).unwrap();
    let id = Uuid::new_v4();
    let put = TestClient::put(url(&format!("/api/v1/pipelines/secret/submissions/{id}"))).json(
        &body(&photo("5449000000996"), json!({"agent": SECRET_LABEL})),
    );
    assert_eq!(status(&client.with_token(&token).send(put).await), 201);
    (client, token, id)
}

#[tokio::test]
async fn a_secret_record_in_a_shared_actor_is_not_read_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (client, token, id) = a_secret_pipeline_beside_an_open_one(dir.path()).await;
    for path in [
        format!("/api/v1/submissions/{id}"),
        format!("/api/v1/submissions/{id}/image"),
    ] {
        let mut res = client.get(&path).await;
        problem(&mut res, 404, "record.not_found").await;
        let res = client.with_token(&token).get(&path).await;
        assert_eq!(status(&res), 200, "{path} with the token");
    }
}

#[tokio::test]
async fn history_lists_only_pipelines_the_caller_may_read() {
    let dir = tempfile::tempdir().unwrap();
    let (client, token, id) = a_secret_pipeline_beside_an_open_one(dir.path()).await;
    let mut res = client.get("/api/v1/submissions").await;
    let page = res.take_json::<Value>().await.unwrap();
    assert_eq!(
        page["records"],
        json!([]),
        "the secret record is not listed"
    );
    let mut res = client.with_token(&token).get("/api/v1/submissions").await;
    let page = res.take_json::<Value>().await.unwrap();
    assert_eq!(page["records"][0]["id"], id.to_string());
    let mut res = client.get("/api/v1/submissions?pipeline=secret").await;
    problem(&mut res, 401, "auth.required").await;
}

#[tokio::test]
async fn a_duplicate_or_a_replay_never_reveals_a_record_of_another_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, secret_id) = a_secret_pipeline_beside_an_open_one(dir.path()).await;
    let same_photo = body(&photo("5449000000996"), json!({"agent": SECRET_LABEL}));
    let post = TestClient::post(url("/api/v1/submissions")).json(&same_photo);
    let mut res = client.send(post).await;
    assert_eq!(status(&res), 201);
    let record = res.take_json::<Value>().await.unwrap();
    assert_eq!(record["duplicate_of"], Value::Null, "{record}");

    let replay =
        TestClient::put(url(&format!("/api/v1/submissions/{secret_id}"))).json(&same_photo);
    let mut res = client.send(replay).await;
    let answer = problem(&mut res, 409, "submission.conflict").await;
    assert!(!answer.to_string().contains(SECRET_LABEL), "{answer}");
}

#[tokio::test]
async fn a_jwt_for_one_pipeline_cannot_reach_another_through_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[auth]
mode = "jwt"
[auth.jwt]
secret = "{JWT_SECRET}"
[pipelines.products]
actors = ["disk"]
"#
    );
    let client = Client::start(dir.path(), &toml).await;
    let exp = (Utc::now() + chrono::Duration::hours(1)).timestamp();
    let token = jwt(
        JWT_SECRET,
        json!({"sub": "p", "exp": exp, "pipelines": ["products"]}),
    );
    let image = body(&photo("5449000000996"), json!({}));
    let sideways = TestClient::post(url("/api/v1/submissions?pipeline=products")).json(&image);
    let mut res = client.with_token(&token).send(sideways).await;
    problem(&mut res, 403, "auth.forbidden").await;
    let own = TestClient::post(url("/api/v1/pipelines/products/submissions")).json(&image);
    assert_eq!(status(&client.with_token(&token).send(own).await), 201);
}

#[tokio::test]
async fn a_jwt_must_carry_the_configured_claims_and_be_valid_already() {
    let dir = tempfile::tempdir().unwrap();
    let toml = jwt_auth_toml();
    let client = Client::start(dir.path(), &toml).await;
    let now = Utc::now().timestamp();
    let full =
        json!({"sub": "s", "iss": "https://id.example", "aud": "librarian", "exp": now + 3600});
    let image = body(&photo("5449000000996"), json!({}));
    let submit = |claims: Value| {
        let token = jwt(JWT_SECRET, claims);
        let client = &client;
        let request = TestClient::post(url("/api/v1/submissions")).json(&image);
        async move { client.with_token(&token).send(request).await }
    };
    assert_eq!(status(&submit(full.clone()).await), 201);
    for missing in ["iss", "aud"] {
        let mut claims = full.clone();
        claims.as_object_mut().unwrap().remove(missing);
        let mut res = submit(claims).await;
        problem(&mut res, 401, "auth.invalid").await;
    }
    let mut early = full.clone();
    early["nbf"] = json!(now + 86_400);
    let mut res = submit(early).await;
    problem(&mut res, 401, "auth.invalid").await;
}

#[tokio::test]
async fn a_short_hs256_secret_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("librarian.toml");
    std::fs::write(
        &file,
        r#"
[auth]
mode = "jwt"
[auth.jwt]
secret = "short"
"#,
    )
    .unwrap();
    let overrides = Overrides {
        config_file: Some(file),
        ignore_environment: true,
        ..Default::default()
    };
    let loaded = Config::load(&overrides).unwrap();
    let refused = librarian::app::App::build(loaded)
        .await
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("32 bytes"), "{refused}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let (client, token) = tokens_and_an_open_pipeline(dir.path()).await;
    let res = client
        .send(
            TestClient::post(url("/api/v1/submissions"))
                .json(&body(&photo("5449000000996"), json!({})))
                .add_header("authorization", format!("bearer {token}"), true),
        )
        .await;
    assert_eq!(status(&res), 201);
}

#[tokio::test]
async fn wrong_secrets_for_a_token_id_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let (client, token) = tokens_and_an_open_pipeline(dir.path()).await;
    let id = token.split('_').nth(1).unwrap();
    let image = body(&photo("5449000000996"), json!({}));
    let mut codes = Vec::new();
    for attempt in 0..12 {
        let wrong = format!("lib_{id}_wrong{attempt}");
        let request = TestClient::post(url("/api/v1/submissions")).json(&image);
        let mut res = client.with_token(&wrong).send(request).await;
        let answer: Value = res.take_json().await.unwrap();
        codes.push(answer["code"].as_str().unwrap().to_owned());
    }
    assert_eq!(codes[..10], vec!["auth.invalid"; 10]);
    assert_eq!(codes[10..], vec!["auth.throttled"; 2], "{codes:?}");
}

#[tokio::test]
async fn rate_limits_key_on_the_address_not_on_unverified_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(
        dir.path(),
        r#"
[rate_limit]
requests_per_minute = 1
burst = 1
"#,
    )
    .await;
    let image = body(&photo("5449000000996"), json!({}));
    let first = TestClient::post(url("/api/v1/submissions")).json(&image);
    assert_eq!(
        status(&client.with_token("random-1").send(first).await),
        201
    );
    for (path, token) in [
        ("/api/v1/submissions", Some("random-2")),
        ("/api/v1/submissions?pipeline=nope", None),
    ] {
        let request = TestClient::post(url(path)).json(&image);
        let mut res = client.called_with(token).send(request).await;
        problem(&mut res, 429, "rate.limited").await;
    }
}

#[tokio::test]
async fn head_answers_wherever_get_does() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    for path in [
        "/healthz",
        "/",
        "/api/v1/pipelines",
        "/openapi.json",
        "/metrics",
    ] {
        let res = client.send(TestClient::head(url(path))).await;
        assert_eq!(status(&res), 200, "HEAD {path}");
    }
}

#[tokio::test]
async fn answers_carry_headers_that_protect_browsers() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let mut res = client
        .send(
            TestClient::post(url("/api/v1/submissions"))
                .json(&body(&photo("5449000000996"), json!({}))),
        )
        .await;
    let id = res.take_json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        format!("/api/v1/submissions/{id}/image"),
        format!("/api/v1/submissions/{id}"),
    ] {
        let res = client.get(&path).await;
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
        assert!(
            res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
    }
    for path in ["/", "/docs"] {
        let res = client.get(path).await;
        let policy = res.headers()["content-security-policy"].to_str().unwrap();
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
    }
}

#[tokio::test]
async fn a_page_of_a_foreign_origin_cannot_submit() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[server]
cors_origins = ["https://app.example.org"]
"#;
    let client = Client::start(dir.path(), toml).await;
    let image = body(&photo("5449000000996"), json!({}));
    let mut res = client
        .send(
            TestClient::post(url("/api/v1/submissions"))
                .json(&image)
                .add_header("origin", "https://evil.example", true),
        )
        .await;
    problem(&mut res, 403, "origin.forbidden").await;
    assert!(files(&dir.path().join("data")).is_empty());
    let allowed = client
        .send(
            TestClient::post(url("/api/v1/submissions"))
                .json(&image)
                .add_header("origin", "https://app.example.org", true),
        )
        .await;
    assert_eq!(status(&allowed), 201);
}

#[tokio::test]
async fn an_image_that_needs_more_than_the_decode_memory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[server]
decode_memory_bytes = 67108864
"#;
    let client = Client::start(dir.path(), toml).await;
    // 8000 x 8000 WebP: decoded whole to RGBA, about 300 MiB, over a 64 MiB budget.
    let webp = webp_header_only(8000, 8000);
    let mut res = client
        .send(TestClient::post(url("/api/v1/submissions")).json(&body(&webp, json!({}))))
        .await;
    let answer = problem(&mut res, 422, "image.too_large_to_decode").await;
    assert!(
        answer["detail"].as_str().unwrap().contains("64 MiB"),
        "{answer}"
    );
}

/// A lossless WebP header declaring this size, with no image data.
fn webp_header_only(width: u32, height: u32) -> Vec<u8> {
    let bits = (width - 1) | ((height - 1) << 14);
    let mut vp8l = vec![0x2f];
    vp8l.extend_from_slice(&bits.to_le_bytes());
    vp8l.extend_from_slice(&[0; 8]);
    let mut chunk = b"VP8L".to_vec();
    chunk.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
    chunk.extend_from_slice(&vp8l);
    let mut webp = b"RIFF".to_vec();
    webp.extend_from_slice(&((4 + chunk.len()) as u32).to_le_bytes());
    webp.extend_from_slice(b"WEBP");
    webp.extend_from_slice(&chunk);
    webp
}

#[tokio::test]
async fn scan_decodes_no_more_pixels_than_a_submission_may() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    // 15000 x 15000 16-bit RGBA: 225 MP, above the default 100 MP of the `photo` validator.
    let huge = png_header_only(15_000, 15_000, 16, 6);
    let mut res = client
        .send(
            TestClient::post(url("/api/v1/scan")).json(&json!({"images": [STANDARD.encode(huge)]})),
        )
        .await;
    let answer: Value = res.take_json().await.unwrap();
    assert_eq!(
        answer["results"][0]["error"]["code"], "image.too_many_pixels",
        "{answer}"
    );
}

/// A small real JPEG whose frame header is made to claim `width` x `height`.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = jpeg(&symbol(BarcodeFormat::EAN_13, "5449000000996", 95, 40));
    let sof = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline frame header");
    bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    bytes
}

#[tokio::test]
async fn a_jpeg_far_too_short_for_its_size_is_refused_undecoded() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let bomb = jpeg_claiming(10_000, 10_000);
    assert!(bomb.len() < 4096);
    let mut res = client
        .send(TestClient::post(url("/api/v1/submissions")).json(&body(&bomb, json!({}))))
        .await;
    problem(&mut res, 415, "image.undecodable").await;
    assert!(files(&dir.path().join("data")).is_empty());
}

/// The service on a real loopback socket, for what only a real connection shows.
async fn listening(dir: &Path, toml: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TcpAcceptor::try_from(listener).unwrap();
    let app = common::app(dir, toml).await;
    tokio::spawn(Server::new(acceptor).serve(librarian::http::service(app)));
    addr
}

/// Sends raw bytes and reads the answer until the server closes or `wait` passes.
async fn exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn json_request(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_hold_no_submission_slot_and_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[server]
max_in_flight = 2
body_timeout = "1500ms"
"#;
    let addr = listening(dir.path(), toml).await;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = "POST /api/v1/submissions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{";
        stream.write_all(head.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let image = serde_json::to_vec(&body(&photo("5449000000996"), json!({}))).unwrap();
    let answer = exchange(
        addr,
        &json_request("/api/v1/submissions", &image),
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let mut first = stalled.remove(0);
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut bytes)).await;
    let cut = String::from_utf8_lossy(&bytes);
    assert!(cut.starts_with("HTTP/1.1 408"), "{cut}");
    assert!(cut.contains("body.too_slow"), "{cut}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_upload_is_cut_off_like_a_stalled_one() {
    let dir = tempfile::tempdir().unwrap();
    let addr = listening(
        dir.path(),
        r#"
[server]
body_timeout = "1500ms"
"#,
    )
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = "POST /api/v1/submissions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 500 ms: each earns a quarter of a millisecond at 4096 bytes/s.
    for _ in 0..5 {
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes)).await;
    let cut = String::from_utf8_lossy(&bytes);
    assert!(cut.starts_with("HTTP/1.1 408"), "{cut}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off near the deadline"
    );
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let addr = listening(
        dir.path(),
        r#"
[server]
max_body_bytes = 1000
"#,
    )
    .await;
    let request = "POST /api/v1/submissions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: image/png\r\ncontent-length: 50000000\r\nexpect: 100-continue\r\n\r\n";
    let started = std::time::Instant::now();
    let answer = exchange(addr, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "no 100 Continue first: {answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at once, connection closed"
    );
    let without_expect = "POST /api/v1/submissions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: image/png\r\ncontent-length: 50000000\r\n\r\n";
    let started = std::time::Instant::now();
    let answer = exchange(addr, without_expect.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "nothing drained"
    );
}
