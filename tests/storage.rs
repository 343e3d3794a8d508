//! MongoDB and S3 actors against real servers: what lands where, GridFS and inline photos,
//! all-or-nothing storage when a server is down, readiness, and the release binary configured
//! only by environment variables.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::servers::{self, BUCKET, Server, actors_toml, mongo_uri, s3_client};
use common::{Client, body, ean_png, strings_at, url};
use mongodb::bson::{Bson, Document, doc};
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use serde_json::{Value, json};
use uuid::Uuid;

async fn database(mongo: &Server) -> mongodb::Database {
    let client = mongodb::Client::with_uri_str(mongo_uri(mongo))
        .await
        .unwrap();
    client.database("librarian")
}

async fn collection(mongo: &Server) -> mongodb::Collection<Document> {
    database(mongo).await.collection("submissions")
}

async fn keys(s3: &Server, id: &str) -> Vec<String> {
    let listed = s3_client(s3)
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(format!("images/{id}"))
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// Reading records back is what these tests check, so every pipeline here is readable.
async fn readable(dir: &Path, toml: &str) -> Client {
    let toml = format!(
        r#"
[auth]
read = "public"
{toml}"#
    );
    Client::start(dir, &toml).await
}

async fn put(client: &Client, path: &str, body: &Value) -> (u16, Value) {
    let mut res = client.send(TestClient::put(url(path)).json(body)).await;
    let status = res.status_code.unwrap().as_u16();
    (status, res.take_json().await.unwrap_or(Value::Null))
}

/// One record stored by a pipeline that writes to MongoDB, then S3.
struct StoredInBoth {
    client: Client,
    mongo: Server,
    s3: Server,
    id: String,
    image: Vec<u8>,
    /// The record as the 201 answered it.
    record: Value,
    _dir: tempfile::TempDir,
}

const NESTED_LABELS: &str = r#"{"class": 3, "shelf": {"row": 2}}"#;

async fn stored_in_both() -> StoredInBoth {
    let dir = tempfile::tempdir().unwrap();
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.path().join("s3"));
    let toml = format!(
        r#"
[pipelines.default]
validators = ["photo"]
extractors = ["barcode"]
actors = ["catalog", "archive"]
{}"#,
        actors_toml(&mongo, &s3, "none")
    );
    let client = readable(dir.path(), &toml).await;
    let id = Uuid::new_v4().to_string();
    let image = ean_png();
    let labels: Value = serde_json::from_str(NESTED_LABELS).unwrap();
    let path = format!("/api/v1/submissions/{id}");
    let (status, record) = put(&client, &path, &body(&image, labels)).await;
    assert_eq!(status, 201, "{record}");
    StoredInBoth {
        client,
        mongo,
        s3,
        id,
        image,
        record,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_then_s3_names_both_places_in_the_record() {
    let both = stored_in_both().await;
    assert_eq!(both.record["stored"][0]["actor"], "catalog");
    assert_eq!(
        both.record["stored"][1]["location"],
        format!("s3://{BUCKET}/images/{}.png", both.id)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_keeps_a_document_queryable_by_label_paths_without_the_photo() {
    let both = stored_in_both().await;
    let found = collection(&both.mongo)
        .await
        .find_one(doc! {"labels.shelf.row": 2, "labels.class": 3})
        .await
        .unwrap()
        .expect("queryable by dotted label paths");
    assert_eq!(found.get_str("_id").unwrap(), both.id);
    assert!(
        matches!(found.get("received_at"), Some(Bson::DateTime(_))),
        "received_at is a BSON date"
    );
    let image = found.get_document("image").unwrap();
    assert_eq!(image.get_str("format").unwrap(), "png");
    assert!(found.get("image_bytes").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_keeps_the_photo_with_its_id_and_hash_and_the_record_beside_it() {
    let both = stored_in_both().await;
    let id = &both.id;
    let object = s3_client(&both.s3)
        .get_object()
        .bucket(BUCKET)
        .key(format!("images/{id}.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_type(), Some("image/png"));
    let metadata = object.metadata().unwrap();
    assert_eq!(metadata.get("record-id"), Some(id));
    let sha256 = both.record["image"]["sha256"].as_str().unwrap();
    assert_eq!(metadata.get("sha256").map(String::as_str), Some(sha256));
    let bytes = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.to_vec(), both.image);
    assert_eq!(
        keys(&both.s3, id).await,
        [format!("images/{id}.json"), format!("images/{id}.png")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_record_the_photo_and_history_read_back() {
    let both = stored_in_both().await;
    let mut read = both.client.record(&both.id).await;
    assert_eq!(
        read.take_json::<Value>().await.unwrap(),
        both.record,
        "the record reads back from MongoDB as it was answered"
    );
    let path = format!("/api/v1/submissions/{}/image", both.id);
    let mut photo = both.client.get(&path).await;
    assert_eq!(
        photo.take_bytes(None).await.unwrap().to_vec(),
        both.image,
        "the photo reads back from S3"
    );
    let mut history = both.client.history("limit=5").await;
    let page = history.take_json::<Value>().await.unwrap();
    assert_eq!(page["records"][0]["id"], both.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_answers_the_record_and_other_content_is_a_conflict() {
    let both = stored_in_both().await;
    let path = format!("/api/v1/submissions/{}", both.id);
    let labels: Value = serde_json::from_str(NESTED_LABELS).unwrap();
    let (again, same) = put(&both.client, &path, &body(&both.image, labels)).await;
    assert_eq!((again, &same), (200, &both.record));
    let other = body(&both.image, json!({"class": 4}));
    let (conflict, _) = put(&both.client, &path, &other).await;
    assert_eq!(conflict, 409);
    assert_eq!(documents(&both.mongo, doc! {}).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_history_page_skips_a_document_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.path().join("s3"));
    let toml = format!(
        r#"
[pipelines.default]
extractors = []
actors = ["catalog"]
{}"#,
        actors_toml(&mongo, &s3, "inline")
    );
    let client = readable(dir.path(), &toml).await;
    let mut ids = Vec::new();
    for class in 0..2 {
        let id = Uuid::new_v4().to_string();
        let path = format!("/api/v1/submissions/{id}");
        let (status, _) = put(&client, &path, &body(&ean_png(), json!({"class": class}))).await;
        assert_eq!(status, 201);
        ids.push(id);
    }
    // A document written by hand (or an older version) that is no record.
    let broken = Uuid::new_v4().to_string();
    collection(&mongo)
        .await
        .insert_one(doc! {"_id": &broken, "id": &broken, "pipeline": "default",
        "received_at": mongodb::bson::DateTime::now(), "labels": "not an object"})
        .await
        .unwrap();
    let mut page = client.get("/api/v1/submissions?limit=2").await;
    assert_eq!(page.status_code, Some(StatusCode::OK));
    let page: Value = page.take_json().await.unwrap();
    let listed = strings_at(&page["records"], "id");
    assert_eq!(
        listed,
        [ids[1].as_str()],
        "the broken newest one is left out"
    );
    let next = page["next"]
        .as_str()
        .expect("the page was full: a next page");
    assert!(
        next.ends_with(&ids[1]),
        "the next page starts after the last examined: {next}"
    );
    let mut rest = client.get(next).await;
    let rest: Value = rest.take_json().await.unwrap();
    assert_eq!(rest["records"][0]["id"], ids[0].as_str());
    let mut metrics = client.get("/metrics").await;
    let metrics = metrics.take_string().await.unwrap();
    assert!(
        metrics.contains("librarian_history_records_skipped_total 1"),
        "the skip is counted"
    );
}

/// The error `App::build` gives for this config, which must not start.
async fn refused_start(dir: &Path, toml: &str) -> String {
    let file = dir.join("librarian.toml");
    std::fs::write(&file, toml).unwrap();
    let overrides = librarian::config::Overrides {
        config_file: Some(file),
        ignore_environment: true,
        ..Default::default()
    };
    let loaded = librarian::config::Config::load(&overrides).unwrap();
    match librarian::app::App::build(loaded).await {
        Ok(_) => panic!("the app started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_is_checked_at_start_and_readyz_names_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.path().join("s3"));
    let pipeline = r#"
[pipelines.default]
extractors = []
actors = ["archive"]
"#;
    let actors = actors_toml(&mongo, &s3, "none");
    let missing = actors.replace(
        &format!("bucket = \"{BUCKET}\""),
        "bucket = \"no-such-bucket\"",
    );
    let said = refused_start(dir.path(), &format!("{pipeline}{missing}")).await;
    assert!(
        said.contains("actors.archive") && said.contains("NoSuchBucket"),
        "{said}"
    );
    let elsewhere = actors.replace(
        &servers::s3_endpoint(&s3),
        &format!("http://127.0.0.1:{}", servers::free_port()),
    );
    let said = refused_start(dir.path(), &format!("{pipeline}{elsewhere}")).await;
    assert!(said.contains("could not connect to S3"), "{said}");
    assert!(
        said.len() > "S3 head bucket: dispatch failure".len() + 40,
        "a cause, not only 'dispatch failure': {said}"
    );

    // Started, then the bucket goes: /readyz names the actor and S3's verdict. (s3s-fs
    // recreates a bucket's folder on a write, so the answer to a submission is checked in
    // the problem mapping's unit test.)
    let client = readable(dir.path(), &format!("{pipeline}{actors}")).await;
    assert_eq!(ready(&client).await.0, 200);
    std::fs::remove_dir_all(dir.path().join("s3").join(BUCKET)).unwrap();
    let (status, problem) = ready(&client).await;
    assert_eq!(status, 503);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("archive") && detail.contains("NoSuchBucket"),
        "{detail}"
    );
}

/// The S3 actor behind HTTPS with a private CA: refused at start without `ca_file` (the
/// system's store does not know the CA), stores and reads back with it.
#[tokio::test(flavor = "multi_thread")]
async fn s3_over_https_trusts_the_ca_named_by_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.path().join("s3"));
    let front = servers::tls_front(s3.port).await;
    std::fs::write(dir.path().join("test-ca.pem"), &front.ca_pem).unwrap();
    let pipeline = r#"
[pipelines.default]
extractors = []
actors = ["archive"]
"#;
    let https = actors_toml(&mongo, &s3, "none").replace(
        &servers::s3_endpoint(&s3),
        &format!("https://localhost:{}", front.port),
    );
    let said = refused_start(dir.path(), &format!("{pipeline}{https}")).await;
    assert!(said.contains("could not connect to S3"), "{said}");

    std::fs::write(dir.path().join("not-a-ca.pem"), "no certificate here").unwrap();
    let wrong = https.replace(
        "path_style = true",
        r#"
path_style = true
ca_file = "not-a-ca.pem""#,
    );
    let said = refused_start(dir.path(), &format!("{pipeline}{wrong}")).await;
    assert!(
        said.contains("actors.archive") && said.contains("holds no PEM certificate"),
        "{said}"
    );

    let trusted = https.replace(
        "path_style = true",
        r#"
path_style = true
ca_file = "test-ca.pem""#,
    );
    let client = readable(dir.path(), &format!("{pipeline}{trusted}")).await;
    let (status, created) = put(
        &client,
        "/api/v1/submissions/8d4f2c1e-7a3b-4c5d-9e6f-0a1b2c3d4e5f",
        &body(&ean_png(), json!({"over": "tls"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        keys(&s3, id).await,
        [format!("images/{id}.json"), format!("images/{id}.png")],
        "written through the TLS front into s3s-fs"
    );
    let mut read = client.get(&format!("/api/v1/submissions/{id}")).await;
    assert_eq!(read.status_code.unwrap().as_u16(), 200);
    let record: Value = read.take_json().await.unwrap();
    assert_eq!(record["labels"]["over"], "tls");
}

/// A PNG of noise over 20 MiB: big enough for GridFS chunks and S3 multipart uploads.
fn big_png() -> Vec<u8> {
    let mut state = 0x9e37_79b9u32;
    let image = image::RgbImage::from_fn(2700, 2700, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    let big = out.into_inner();
    assert!(big.len() > 20 * 1024 * 1024, "{} bytes", big.len());
    big
}

/// A service for large photos (64 MiB bodies): `default` stores in MongoDB with GridFS,
/// `inline` in MongoDB inside the document, `big-s3` in S3.
async fn large_photos(dir: &Path) -> (Client, Server, Server) {
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.join("s3"));
    let toml = format!(
        r#"
[server]
max_body_bytes = 67108864
[pipelines.default]
validators = []
extractors = []
actors = ["catalog"]
[pipelines.inline]
actors = ["inline"]
[pipelines.big-s3]
validators = []
extractors = []
actors = ["archive"]
[actors.inline]
kind = "mongo"
uri = "{}"
collection = "inline"
image = "inline"
{}"#,
        mongo_uri(&mongo),
        actors_toml(&mongo, &s3, "gridfs")
    );
    (readable(dir, &toml).await, mongo, s3)
}

#[tokio::test(flavor = "multi_thread")]
async fn gridfs_keeps_a_20_mib_photo_and_gives_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (client, mongo, _s3) = large_photos(dir.path()).await;
    let big = big_png();
    let id = Uuid::new_v4().to_string();
    let path = format!("/api/v1/submissions/{id}");
    let (status, record) = put(&client, &path, &body(&big, json!({}))).await;
    assert_eq!(status, 201, "{record}");
    let mut photo = client.get(&format!("{path}/image")).await;
    assert_eq!(photo.take_bytes(None).await.unwrap().len(), big.len());
    let files = database(&mongo)
        .await
        .collection::<Document>("images.files");
    let file = files
        .find_one(doc! {"_id": &id})
        .await
        .unwrap()
        .expect("a GridFS file under the record id");
    assert_eq!(
        file.get_i64("length")
            .unwrap_or_else(|_| i64::from(file.get_i32("length").unwrap())),
        big.len() as i64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_gets_a_photo_over_the_multipart_threshold_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _mongo, s3) = large_photos(dir.path()).await;
    // Above multipart_threshold_bytes (16 MiB).
    let big = big_png();
    let id = Uuid::new_v4().to_string();
    let path = format!("/api/v1/pipelines/big-s3/submissions/{id}");
    let (status, _) = put(&client, &path, &body(&big, json!({}))).await;
    assert_eq!(status, 201);
    let object = s3_client(&s3)
        .head_object()
        .bucket(BUCKET)
        .key(format!("images/{id}.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_length(), Some(big.len() as i64));
    assert_eq!(object.content_type(), Some("image/png"));
    assert_eq!(object.metadata().unwrap().get("record-id"), Some(&id));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inline_mongo_photo_is_kept_in_the_document_and_a_big_one_is_a_413() {
    let dir = tempfile::tempdir().unwrap();
    let (client, mongo, _s3) = large_photos(dir.path()).await;
    let small = ean_png();
    let id = Uuid::new_v4().to_string();
    let path = format!("/api/v1/pipelines/inline/submissions/{id}");
    let (status, _) = put(&client, &path, &body(&small, json!({}))).await;
    assert_eq!(status, 201);
    let stored = database(&mongo)
        .await
        .collection::<Document>("inline")
        .find_one(doc! {"_id": &id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.get_binary_generic("image_bytes").unwrap(), &small);
    let other = format!("/api/v1/pipelines/inline/submissions/{}", Uuid::new_v4());
    let (too_big, problem) = put(&client, &other, &body(&big_png(), json!({}))).await;
    assert_eq!(
        (too_big, problem["code"].as_str()),
        (413, Some("actor.image_too_large"))
    );
}

async fn ready(client: &Client) -> (u16, Value) {
    let mut res = client.get("/readyz").await;
    (
        res.status_code.unwrap().as_u16(),
        res.take_json().await.unwrap(),
    )
}

/// A problem tells which store failed, never where it lives: hosts and ports are for the log.
fn assert_no_address(problem: &Value) {
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        !detail.contains("127.0.0.1") && !detail.contains("localhost"),
        "an internal address in {detail}"
    );
}

/// MongoDB and S3 servers, and a service whose `default` pipeline stores in MongoDB then S3
/// and whose `s3-first` pipeline in S3 then MongoDB.
async fn two_stores(dir: &Path) -> (Client, Server, Server) {
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.join("s3"));
    let toml = format!(
        r#"
[pipelines.default]
extractors = []
actors = ["catalog", "archive"]
[pipelines.s3-first]
extractors = []
actors = ["archive", "catalog"]
{}"#,
        actors_toml(&mongo, &s3, "none")
    );
    let client = readable(dir, &toml).await;
    assert_eq!(ready(&client).await.0, 200);
    (client, mongo, s3)
}

/// Waits until the service says every store answers again.
async fn until_ready(client: &Client) {
    let started = Instant::now();
    while ready(client).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stores are ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn documents(mongo: &Server, filter: Document) -> u64 {
    collection(mongo)
        .await
        .count_documents(filter)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_down_means_503_nothing_kept_in_mongo_and_a_retry_stores_once() {
    let dir = tempfile::tempdir().unwrap();
    let (client, mongo, mut s3) = two_stores(dir.path()).await;
    s3.stop();
    let id = Uuid::new_v4().to_string();
    let path = format!("/api/v1/submissions/{id}");
    let submission = body(&ean_png(), json!({"n": 1}));
    let (status, problem) = put(&client, &path, &submission).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "actor.unavailable");
    assert!(problem["detail"].as_str().unwrap().contains("archive"));
    assert_no_address(&problem);
    assert_eq!(
        documents(&mongo, doc! {"_id": &id}).await,
        0,
        "MongoDB stored first and kept nothing"
    );
    let (status, problem) = ready(&client).await;
    assert_eq!(status, 503);
    assert!(
        problem["detail"].as_str().unwrap().contains("archive"),
        "{problem}"
    );

    s3.start();
    until_ready(&client).await;
    let (status, _) = put(&client, &path, &submission).await;
    assert_eq!(status, 201, "the submission, retried, lands");
    assert_eq!(documents(&mongo, doc! {}).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_down_means_503_nothing_kept_in_s3_and_a_retry_stores_once() {
    let dir = tempfile::tempdir().unwrap();
    let (client, mut mongo, s3) = two_stores(dir.path()).await;
    mongo.stop();
    let id = Uuid::new_v4().to_string();
    let path = format!("/api/v1/pipelines/s3-first/submissions/{id}");
    let submission = body(&ean_png(), json!({"n": 2}));
    let (status, problem) = put(&client, &path, &submission).await;
    assert_eq!(status, 503, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("catalog"));
    assert_no_address(&problem);
    assert!(
        keys(&s3, &id).await.is_empty(),
        "S3 stored first and kept nothing"
    );
    let (status, problem) = ready(&client).await;
    assert_eq!(status, 503);
    assert!(
        problem["detail"].as_str().unwrap().contains("catalog"),
        "{problem}"
    );
    assert_no_address(&problem);
    let mut history = client.history("").await;
    let problem: Value = history.take_json().await.unwrap();
    assert_eq!(problem["code"], "actor.read_failed", "{problem}");
    assert_no_address(&problem);

    mongo.start();
    until_ready(&client).await;
    let (status, _) = put(&client, &path, &submission).await;
    assert_eq!(status, 201);
    let (status, _) = put(&client, &path, &submission).await;
    assert_eq!(status, 200, "a second retry finds the stored record");
    assert_eq!(documents(&mongo, doc! {"_id": &id}).await, 1);
    assert_eq!(
        keys(&s3, &id).await,
        [format!("images/{id}.json"), format!("images/{id}.png")]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_release_binary_configured_by_environment_only_stores_in_both() {
    let binary = std::env::var("TEST_LIBRARIAN_RELEASE")
        .expect("TEST_LIBRARIAN_RELEASE names the release binary: run scripts/test");
    let dir = tempfile::tempdir().unwrap();
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.path().join("s3"));
    let address = format!("127.0.0.1:{}", servers::free_port());
    let env = [
        ("LIBRARIAN_SERVER__BIND", address.clone()),
        (
            "LIBRARIAN_PIPELINES__DEFAULT__ACTORS",
            "[catalog,archive]".into(),
        ),
        ("LIBRARIAN_ACTORS__CATALOG__KIND", "mongo".into()),
        ("LIBRARIAN_ACTORS__CATALOG__URI", mongo_uri(&mongo)),
        ("LIBRARIAN_ACTORS__ARCHIVE__KIND", "s3".into()),
        ("LIBRARIAN_ACTORS__ARCHIVE__BUCKET", BUCKET.into()),
        ("LIBRARIAN_ACTORS__ARCHIVE__PREFIX", "images/".into()),
        (
            "LIBRARIAN_ACTORS__ARCHIVE__ENDPOINT",
            servers::s3_endpoint(&s3),
        ),
        ("LIBRARIAN_ACTORS__ARCHIVE__PATH_STYLE", "true".into()),
        (
            "LIBRARIAN_ACTORS__ARCHIVE__ACCESS_KEY_ID",
            servers::S3_KEY.into(),
        ),
        (
            "LIBRARIAN_ACTORS__ARCHIVE__SECRET_ACCESS_KEY",
            servers::S3_SECRET.into(),
        ),
    ];
    let mut command = std::process::Command::new(binary);
    command
        .current_dir(dir.path())
        .args(["serve", "-q"])
        .stdout(std::process::Stdio::null());
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("LIBRARIAN_")) {
        command.env_remove(key);
    }
    let mut child = command.envs(env).spawn().unwrap();
    let url = format!("http://{address}");
    let started = Instant::now();
    while ureq::get(format!("{url}/readyz")).call().is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the release binary exited at start"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the release binary serves"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = Uuid::new_v4().to_string();
    let response = ureq::put(format!("{url}/api/v1/submissions/{id}"))
        .send_json(body(&ean_png(), json!({"class": 1})));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(response.unwrap().status().as_u16(), 201);
    assert_eq!(
        collection(&mongo)
            .await
            .count_documents(doc! {"_id": &id, "labels.class": 1})
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        keys(&s3, &id).await,
        [format!("images/{id}.json"), format!("images/{id}.png")]
    );
    assert!(!dir.path().join("data").exists(), "nothing on local disk");
}
