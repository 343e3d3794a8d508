//! Authentication over HTTP: contributor tokens (missing, wrong, revoked, expired, rotated) and
//! JWTs (valid, expired, wrong audience, wrong signature, pipeline not allowed).

mod common;

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, Utc};
use common::{JWT_SECRET, app, files, jwt, png, strings_at, symbol};
use librarian::auth::tokens;
use rxing::BarcodeFormat;
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use serde_json::{Value, json};

const BASE: &str = "http://127.0.0.1:8080";

fn photo() -> Value {
    let image = png(&symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160));
    json!({"image": STANDARD.encode(image), "labels": {}})
}

/// Submits with this bearer token (or none) and returns the status and problem code.
async fn submit(service: &Service, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = TestClient::post(format!("{BASE}{path}")).json(&photo());
    if let Some(token) = token {
        request = request.add_header("authorization", format!("Bearer {token}"), true);
    }
    let mut res = request.send(service).await;
    let status = res.status_code.unwrap().as_u16();
    if status == 401 {
        assert_eq!(res.headers().get("www-authenticate").unwrap(), "Bearer");
    }
    let body: Value = res.take_json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(body["status"], status, "a problem+json body: {body}");
    }
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn service(dir: &Path, toml: &str) -> Service {
    librarian::http::service(app(dir, toml).await)
}

#[tokio::test]
async fn without_auth_configured_anyone_submits() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), "").await;
    assert_eq!(
        submit(&service, "/api/v1/submissions", None).await,
        (201, String::new())
    );
}

#[tokio::test]
async fn contributor_tokens_are_checked_revoked_expired_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[auth]\nmode = \"tokens\"\n[pipelines.open]\nactors = [\"disk\"]\nauth = \"none\"\nread = \"public\"\n";
    let service = service(dir.path(), extra).await;
    let file = dir.path().join("tokens.json");
    let plain = "/api/v1/submissions";

    assert_eq!(
        submit(&service, plain, None).await,
        (401, "auth.required".into())
    );
    assert_eq!(
        submit(&service, plain, Some("lib_nope_nope")).await,
        (401, "auth.invalid".into())
    );
    let alice = tokens::create(&file, "alice", None, vec![]).unwrap();
    assert_eq!(submit(&service, plain, Some(&alice)).await.0, 201);
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    assert_eq!(
        submit(&service, plain, Some(&forged)).await,
        (401, "auth.invalid".into())
    );

    let listed = tokens::list(&file).unwrap();
    assert!(
        !std::fs::read_to_string(&file)
            .unwrap()
            // The secret is URL-safe base64, which can hold `_` itself: all after the id.
            .contains(alice.splitn(3, '_').nth(2).unwrap()),
        "only a hash is stored"
    );
    assert_eq!(listed[0].name, "alice");

    tokens::revoke(&file, "alice").unwrap();
    assert_eq!(
        submit(&service, plain, Some(&alice)).await,
        (401, "auth.revoked".into())
    );

    let expired = tokens::create(
        &file,
        "old",
        Some(Utc::now() - Duration::minutes(1)),
        vec![],
    )
    .unwrap();
    assert_eq!(
        submit(&service, plain, Some(&expired)).await,
        (401, "auth.expired".into())
    );

    let bob = tokens::create(&file, "bob", None, vec![]).unwrap();
    let bob_new = tokens::rotate(&file, "bob", Duration::hours(1)).unwrap();
    assert_eq!(
        submit(&service, plain, Some(&bob)).await.0,
        201,
        "the old secret inside its grace period"
    );
    assert_eq!(submit(&service, plain, Some(&bob_new)).await.0, 201);
    let bob_newest = tokens::rotate(&file, "bob", Duration::zero()).unwrap();
    assert_eq!(
        submit(&service, plain, Some(&bob_new)).await,
        (401, "auth.expired".into()),
        "outside its grace period"
    );
    assert_eq!(submit(&service, plain, Some(&bob_newest)).await.0, 201);

    let carol = tokens::create(&file, "carol", None, vec!["open".into()]).unwrap();
    assert_eq!(
        submit(&service, plain, Some(&carol)).await,
        (403, "auth.forbidden".into())
    );
    assert_eq!(
        submit(&service, "/api/v1/pipelines/open/submissions", None)
            .await
            .0,
        201,
        "a pipeline can stay open"
    );
    let pipelines = TestClient::get(format!("{BASE}/api/v1/pipelines"))
        .send(&service)
        .await;
    assert_eq!(
        pipelines.status_code,
        Some(StatusCode::OK),
        "the pipeline list stays readable"
    );
    let mut history = TestClient::get(format!("{BASE}/api/v1/submissions"))
        .send(&service)
        .await;
    let listed: Value = history.take_json().await.unwrap();
    let pipelines = strings_at(&listed["records"], "pipeline");
    assert_eq!(
        pipelines,
        ["open"],
        "without a token, history lists only the open pipeline"
    );
    let protected = TestClient::get(format!("{BASE}/api/v1/submissions?pipeline=default"))
        .send(&service)
        .await;
    assert_eq!(
        protected.status_code,
        Some(StatusCode::UNAUTHORIZED),
        "records of the protected pipeline need a token"
    );
    assert_eq!(
        files(&dir.path().join("data")).len(),
        2 * 5,
        "only the five accepted submissions are stored"
    );
}

#[tokio::test]
async fn jwts_from_an_identity_provider() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[auth]\nmode = \"jwt\"\n[auth.jwt]\nsecret = \"{JWT_SECRET}\"\nissuer = \"https://id.example\"\naudience = \"librarian\"\nleeway_s = 5\n"
    );
    let service = service(dir.path(), &extra).await;
    let plain = "/api/v1/submissions";
    let exp = (Utc::now() + Duration::hours(1)).timestamp();
    let claims = |aud: &str, exp: i64, pipelines: Option<Vec<&str>>| {
        let mut c = json!({"sub": "dana", "iss": "https://id.example", "aud": aud, "exp": exp});
        if let Some(p) = pipelines {
            c["pipelines"] = json!(p);
        }
        c
    };
    let valid = jwt(JWT_SECRET, claims("librarian", exp, None));
    assert_eq!(submit(&service, plain, Some(&valid)).await.0, 201);
    let allowed = jwt(JWT_SECRET, claims("librarian", exp, Some(vec!["default"])));
    assert_eq!(submit(&service, plain, Some(&allowed)).await.0, 201);
    let expired = jwt(
        JWT_SECRET,
        claims("librarian", Utc::now().timestamp() - 600, None),
    );
    assert_eq!(
        submit(&service, plain, Some(&expired)).await,
        (401, "auth.expired".into())
    );
    let other_audience = jwt(JWT_SECRET, claims("someone-else", exp, None));
    assert_eq!(
        submit(&service, plain, Some(&other_audience)).await,
        (401, "auth.invalid".into())
    );
    let forged = jwt("not-the-secret", claims("librarian", exp, None));
    assert_eq!(
        submit(&service, plain, Some(&forged)).await,
        (401, "auth.invalid".into())
    );
    let elsewhere = jwt(JWT_SECRET, claims("librarian", exp, Some(vec!["products"])));
    assert_eq!(
        submit(&service, plain, Some(&elsewhere)).await,
        (403, "auth.forbidden".into())
    );
    assert_eq!(
        files(&dir.path().join("data")).len(),
        4,
        "two accepted submissions"
    );
}
