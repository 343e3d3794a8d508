//! Authentication over HTTP: contributor tokens (missing, wrong, revoked, expired, rotated) and
//! JWTs (valid, expired, wrong audience, wrong signature, pipeline not allowed).

mod common;

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use common::{Client, JWT_SECRET, ean_png, files, json_of, jwt, jwt_auth_toml, status, strings_at};
use librarian::auth::tokens;
use salvo::test::ResponseExt;
use serde_json::{Value, json};

/// Submits a photo to a pipeline and returns the status and problem code.
async fn submit(client: &Client, pipeline: &str) -> (u16, String) {
    let mut res = client.submit(pipeline, &ean_png(), json!({})).await;
    let status = status(&res);
    if status == 401 {
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
    }
    let body: Value = res.take_json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(body["status"], status, "a problem+json body: {body}");
    }
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

fn refused(code: &str) -> (u16, String) {
    (401, code.into())
}

/// Records stored in the test's data folder (each is an image and a JSON file).
fn stored(dir: &Path) -> usize {
    files(&dir.join("data")).len() / 2
}

/// Tokens guard the default pipeline; `open` needs none and its records are public.
const TOKENS: &str = r#"
[auth]
mode = "tokens"
[pipelines.open]
actors = ["disk"]
auth = "none"
read = "public"
"#;

/// A service of [`TOKENS`] and the file its tokens are kept in.
async fn with_tokens(dir: &Path) -> (Client, PathBuf) {
    (Client::start(dir, TOKENS).await, dir.join("tokens.json"))
}

#[tokio::test]
async fn without_auth_configured_anyone_submits() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    assert_eq!(submit(&client, "default").await, (201, String::new()));
}

#[tokio::test]
async fn a_protected_pipeline_needs_a_token_it_knows() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _) = with_tokens(dir.path()).await;
    assert_eq!(submit(&client, "default").await, refused("auth.required"));
    let unknown = client.with_token("lib_nope_nope");
    assert_eq!(submit(&unknown, "default").await, refused("auth.invalid"));
    assert_eq!(stored(dir.path()), 0);
}

#[tokio::test]
async fn a_token_is_accepted_and_a_forged_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (client, file) = with_tokens(dir.path()).await;
    let alice = tokens::create(&file, "alice", None, vec![]).unwrap();
    assert_eq!(submit(&client.with_token(&alice), "default").await.0, 201);
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    let forger = client.with_token(&forged);
    assert_eq!(submit(&forger, "default").await, refused("auth.invalid"));
    assert_eq!(stored(dir.path()), 1);
}

#[tokio::test]
async fn only_a_hash_of_a_token_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let alice = tokens::create(&file, "alice", None, vec![]).unwrap();
    // The secret is URL-safe base64, which can hold `_` itself: all after the id.
    let secret = alice.splitn(3, '_').nth(2).unwrap();
    assert!(!std::fs::read_to_string(&file).unwrap().contains(secret));
    assert_eq!(tokens::list(&file).unwrap()[0].name, "alice");
}

#[tokio::test]
async fn a_revoked_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (client, file) = with_tokens(dir.path()).await;
    let alice = tokens::create(&file, "alice", None, vec![]).unwrap();
    tokens::revoke(&file, "alice").unwrap();
    let revoked = client.with_token(&alice);
    assert_eq!(submit(&revoked, "default").await, refused("auth.revoked"));
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (client, file) = with_tokens(dir.path()).await;
    let a_minute_ago = Some(Utc::now() - Duration::minutes(1));
    let old = tokens::create(&file, "old", a_minute_ago, vec![]).unwrap();
    let expired = client.with_token(&old);
    assert_eq!(submit(&expired, "default").await, refused("auth.expired"));
}

#[tokio::test]
async fn a_rotated_tokens_old_secret_works_inside_its_grace_period_only() {
    let dir = tempfile::tempdir().unwrap();
    let (client, file) = with_tokens(dir.path()).await;
    let bob = tokens::create(&file, "bob", None, vec![]).unwrap();
    let bob_new = tokens::rotate(&file, "bob", Duration::hours(1)).unwrap();
    assert_eq!(submit(&client.with_token(&bob), "default").await.0, 201);
    assert_eq!(submit(&client.with_token(&bob_new), "default").await.0, 201);
    let bob_newest = tokens::rotate(&file, "bob", Duration::zero()).unwrap();
    let outside_grace = client.with_token(&bob_new);
    assert_eq!(
        submit(&outside_grace, "default").await,
        refused("auth.expired")
    );
    assert_eq!(
        submit(&client.with_token(&bob_newest), "default").await.0,
        201
    );
}

#[tokio::test]
async fn a_token_for_other_pipelines_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let (client, file) = with_tokens(dir.path()).await;
    let carol = tokens::create(&file, "carol", None, vec!["open".into()]).unwrap();
    let carol = client.with_token(&carol);
    assert_eq!(
        submit(&carol, "default").await,
        (403, "auth.forbidden".into())
    );
    assert_eq!(stored(dir.path()), 0);
}

#[tokio::test]
async fn a_pipeline_can_stay_open_and_list_only_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    let (client, file) = with_tokens(dir.path()).await;
    let alice = tokens::create(&file, "alice", None, vec![]).unwrap();
    assert_eq!(submit(&client.with_token(&alice), "default").await.0, 201);
    assert_eq!(submit(&client, "open").await.0, 201);
    assert_eq!(status(&client.get("/api/v1/pipelines").await), 200);
    let listed = json_of(&mut client.history("").await).await;
    assert_eq!(
        strings_at(&listed["records"], "pipeline"),
        ["open"],
        "without a token, history lists only the open pipeline"
    );
    let protected = client.history("pipeline=default").await;
    assert_eq!(
        status(&protected),
        401,
        "the protected records need a token"
    );
}

/// A JWT of the test's provider, for this audience, expiry and `pipelines` claim.
fn token(audience: &str, expires: i64, pipelines: Option<Vec<&str>>) -> String {
    let mut claims =
        json!({"sub": "dana", "iss": "https://id.example", "aud": audience, "exp": expires});
    if let Some(p) = pipelines {
        claims["pipelines"] = json!(p);
    }
    jwt(JWT_SECRET, claims)
}

fn in_an_hour() -> i64 {
    (Utc::now() + Duration::hours(1)).timestamp()
}

async fn with_jwts(dir: &Path) -> Client {
    let toml = jwt_auth_toml();
    Client::start(dir, &toml).await
}

#[tokio::test]
async fn a_valid_jwt_submits_with_or_without_a_pipelines_claim() {
    let dir = tempfile::tempdir().unwrap();
    let client = with_jwts(dir.path()).await;
    let any = client.with_token(&token("librarian", in_an_hour(), None));
    assert_eq!(submit(&any, "default").await.0, 201);
    let named = token("librarian", in_an_hour(), Some(vec!["default"]));
    assert_eq!(submit(&client.with_token(&named), "default").await.0, 201);
    assert_eq!(stored(dir.path()), 2);
}

#[tokio::test]
async fn an_expired_jwt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let client = with_jwts(dir.path()).await;
    let ten_minutes_ago = Utc::now().timestamp() - 600;
    let expired = client.with_token(&token("librarian", ten_minutes_ago, None));
    assert_eq!(submit(&expired, "default").await, refused("auth.expired"));
}

#[tokio::test]
async fn a_jwt_for_another_audience_or_signed_by_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let client = with_jwts(dir.path()).await;
    let elsewhere = client.with_token(&token("someone-else", in_an_hour(), None));
    assert_eq!(submit(&elsewhere, "default").await, refused("auth.invalid"));
    let claims = json!({"sub": "dana", "iss": "https://id.example", "aud": "librarian", "exp": in_an_hour()});
    let forged = client.with_token(&jwt("not-the-secret", claims));
    assert_eq!(submit(&forged, "default").await, refused("auth.invalid"));
    assert_eq!(stored(dir.path()), 0);
}

#[tokio::test]
async fn a_jwt_naming_other_pipelines_is_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let client = with_jwts(dir.path()).await;
    let products = token("librarian", in_an_hour(), Some(vec!["products"]));
    assert_eq!(
        submit(&client.with_token(&products), "default").await,
        (403, "auth.forbidden".into())
    );
}
