//! MongoDB and S3 actors against real servers: what lands where, GridFS and inline photos,
//! all-or-nothing storage when a server is down, readiness, and the release binary configured
//! only by environment variables.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::servers::{self, BUCKET, Server, actors_toml, mongo_uri, s3_client};
use common::{BASE, body, png, strings_at, symbol};
use mongodb::bson::{Bson, Document, doc};
use rxing::BarcodeFormat;
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use serde_json::{Value, json};
use uuid::Uuid;

fn ean_png() -> Vec<u8> {
    png(&symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160))
}

async fn collection(mongo: &Server) -> mongodb::Collection<Document> {
    let client = mongodb::Client::with_uri_str(mongo_uri(mongo))
        .await
        .unwrap();
    client.database("librarian").collection("submissions")
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
async fn service(dir: &Path, toml: &str) -> Service {
    common::service(dir, &format!("[auth]\nread = \"public\"\n{toml}")).await
}

async fn put(service: &Service, path: &str, body: &Value) -> (u16, Value) {
    let mut res = TestClient::put(format!("{BASE}{path}"))
        .json(body)
        .send(service)
        .await;
    let status = res.status_code.unwrap().as_u16();
    (status, res.take_json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn mongo_then_s3_keeps_a_queryable_document_and_the_photo() {
    let dir = tempfile::tempdir().unwrap();
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.path().join("s3"));
    let toml = format!(
        "[pipelines.default]\nvalidators = [\"photo\"]\nextractors = [\"barcode\"]\nactors = [\"catalog\", \"archive\"]\n{}",
        actors_toml(&mongo, &s3, "none")
    );
    let service = service(dir.path(), &toml).await;
    let id = Uuid::new_v4().to_string();
    let image = ean_png();
    let (status, record) = put(
        &service,
        &format!("/api/v1/submissions/{id}"),
        &body(&image, json!({"class": 3, "shelf": {"row": 2}})),
    )
    .await;
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["stored"][0]["actor"], "catalog");
    assert_eq!(
        record["stored"][1]["location"],
        format!("s3://{BUCKET}/images/{id}.png")
    );

    let found = collection(&mongo)
        .await
        .find_one(doc! {"labels.shelf.row": 2, "labels.class": 3})
        .await
        .unwrap()
        .expect("queryable by dotted label paths");
    assert_eq!(found.get_str("_id").unwrap(), id);
    assert!(
        matches!(found.get("received_at"), Some(Bson::DateTime(_))),
        "received_at is a BSON date"
    );
    assert_eq!(
        found
            .get_document("image")
            .unwrap()
            .get_str("format")
            .unwrap(),
        "png"
    );
    assert!(found.get("image_bytes").is_none());

    let object = s3_client(&s3)
        .get_object()
        .bucket(BUCKET)
        .key(format!("images/{id}.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_type(), Some("image/png"));
    let metadata = object.metadata().unwrap();
    assert_eq!(
        metadata.get("record-id").map(String::as_str),
        Some(id.as_str())
    );
    assert_eq!(
        metadata.get("sha256"),
        record["image"]["sha256"]
            .as_str()
            .map(str::to_owned)
            .as_ref()
    );
    assert_eq!(
        object.body.collect().await.unwrap().into_bytes().to_vec(),
        image
    );
    assert_eq!(
        keys(&s3, &id).await,
        [format!("images/{id}.json"), format!("images/{id}.png")]
    );

    let mut read = TestClient::get(format!("{BASE}/api/v1/submissions/{id}"))
        .send(&service)
        .await;
    assert_eq!(
        read.take_json::<Value>().await.unwrap(),
        record,
        "the record reads back from MongoDB as it was answered"
    );
    let mut photo = TestClient::get(format!("{BASE}/api/v1/submissions/{id}/image"))
        .send(&service)
        .await;
    assert_eq!(
        photo.take_bytes(None).await.unwrap().to_vec(),
        image,
        "the photo reads back from S3"
    );
    let mut history = TestClient::get(format!("{BASE}/api/v1/submissions?limit=5"))
        .send(&service)
        .await;
    assert_eq!(
        history.take_json::<Value>().await.unwrap()["records"][0]["id"],
        id
    );

    let (again, same) = put(
        &service,
        &format!("/api/v1/submissions/{id}"),
        &body(&image, json!({"class": 3, "shelf": {"row": 2}})),
    )
    .await;
    assert_eq!((again, &same), (200, &record));
    let (conflict, _) = put(
        &service,
        &format!("/api/v1/submissions/{id}"),
        &body(&image, json!({"class": 4})),
    )
    .await;
    assert_eq!(conflict, 409);
    assert_eq!(
        collection(&mongo)
            .await
            .count_documents(doc! {})
            .await
            .unwrap(),
        1
    );
}

/// A 20 MiB PNG of noise: big enough for GridFS chunks and S3 multipart uploads.
#[tokio::test(flavor = "multi_thread")]
async fn a_history_page_skips_a_document_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.path().join("s3"));
    let toml = format!(
        "[pipelines.default]\nextractors = []\nactors = [\"catalog\"]\n{}",
        actors_toml(&mongo, &s3, "inline")
    );
    let service = service(dir.path(), &toml).await;
    let mut ids = Vec::new();
    for class in 0..2 {
        let id = Uuid::new_v4().to_string();
        let path = format!("/api/v1/submissions/{id}");
        let (status, _) = put(&service, &path, &body(&ean_png(), json!({"class": class}))).await;
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
    let mut page = TestClient::get(format!("{BASE}/api/v1/submissions?limit=2"))
        .send(&service)
        .await;
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
    let mut rest = TestClient::get(format!("{BASE}{next}"))
        .send(&service)
        .await;
    let rest: Value = rest.take_json().await.unwrap();
    assert_eq!(rest["records"][0]["id"], ids[0].as_str());
    let mut metrics = TestClient::get(format!("{BASE}/metrics"))
        .send(&service)
        .await;
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
    let pipeline = "[pipelines.default]\nextractors = []\nactors = [\"archive\"]\n";
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
    let service = service(dir.path(), &format!("{pipeline}{actors}")).await;
    assert_eq!(ready(&service).await.0, 200);
    std::fs::remove_dir_all(dir.path().join("s3").join(BUCKET)).unwrap();
    let (status, problem) = ready(&service).await;
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
    let pipeline = "[pipelines.default]\nextractors = []\nactors = [\"archive\"]\n";
    let https = actors_toml(&mongo, &s3, "none").replace(
        &servers::s3_endpoint(&s3),
        &format!("https://localhost:{}", front.port),
    );
    let said = refused_start(dir.path(), &format!("{pipeline}{https}")).await;
    assert!(said.contains("could not connect to S3"), "{said}");

    std::fs::write(dir.path().join("not-a-ca.pem"), "no certificate here").unwrap();
    let wrong = https.replace(
        "path_style = true",
        "path_style = true\nca_file = \"not-a-ca.pem\"",
    );
    let said = refused_start(dir.path(), &format!("{pipeline}{wrong}")).await;
    assert!(
        said.contains("actors.archive") && said.contains("holds no PEM certificate"),
        "{said}"
    );

    let trusted = https.replace(
        "path_style = true",
        "path_style = true\nca_file = \"test-ca.pem\"",
    );
    let service = service(dir.path(), &format!("{pipeline}{trusted}")).await;
    let (status, created) = put(
        &service,
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
    let mut read = TestClient::get(format!("{BASE}/api/v1/submissions/{id}"))
        .send(&service)
        .await;
    assert_eq!(read.status_code.unwrap().as_u16(), 200);
    let record: Value = read.take_json().await.unwrap();
    assert_eq!(record["labels"]["over"], "tls");
}

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
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn gridfs_keeps_a_20_mib_photo_and_inline_a_small_one() {
    let dir = tempfile::tempdir().unwrap();
    let mongo = servers::mongo();
    let s3 = servers::s3(&dir.path().join("s3"));
    let mut toml = format!(
        "[server]\nmax_body_bytes = 67108864\n[pipelines.default]\nvalidators = []\nextractors = []\nactors = [\"catalog\"]\n{}",
        actors_toml(&mongo, &s3, "gridfs")
    );
    toml.push_str("[pipelines.inline]\nactors = [\"inline\"]\n[actors.inline]\nkind = \"mongo\"\n");
    toml.push_str(&format!(
        "uri = \"{}\"\ncollection = \"inline\"\nimage = \"inline\"\n",
        mongo_uri(&mongo)
    ));
    toml.push_str("[pipelines.big-s3]\nvalidators = []\nextractors = []\nactors = [\"archive\"]\n");
    let service = service(dir.path(), &toml).await;

    let big = big_png();
    assert!(big.len() > 20 * 1024 * 1024, "{} bytes", big.len());
    let id = Uuid::new_v4().to_string();
    let (status, record) = put(
        &service,
        &format!("/api/v1/submissions/{id}"),
        &body(&big, json!({})),
    )
    .await;
    assert_eq!(status, 201, "{record}");
    let mut photo = TestClient::get(format!("{BASE}/api/v1/submissions/{id}/image"))
        .send(&service)
        .await;
    assert_eq!(photo.take_bytes(None).await.unwrap().len(), big.len());
    let client = mongodb::Client::with_uri_str(mongo_uri(&mongo))
        .await
        .unwrap();
    let files = client
        .database("librarian")
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

    // Above multipart_threshold_bytes (16 MiB), S3 gets the photo in parts.
    let parts_id = Uuid::new_v4().to_string();
    let (status, _) = put(
        &service,
        &format!("/api/v1/pipelines/big-s3/submissions/{parts_id}"),
        &body(&big, json!({})),
    )
    .await;
    assert_eq!(status, 201);
    let object = s3_client(&s3)
        .head_object()
        .bucket(BUCKET)
        .key(format!("images/{parts_id}.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(object.content_length(), Some(big.len() as i64));
    assert_eq!(object.content_type(), Some("image/png"));
    assert_eq!(object.metadata().unwrap().get("record-id"), Some(&parts_id));

    let small = ean_png();
    let inline_id = Uuid::new_v4().to_string();
    let (status, _) = put(
        &service,
        &format!("/api/v1/pipelines/inline/submissions/{inline_id}"),
        &body(&small, json!({})),
    )
    .await;
    assert_eq!(status, 201);
    let stored = client
        .database("librarian")
        .collection::<Document>("inline")
        .find_one(doc! {"_id": &inline_id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.get_binary_generic("image_bytes").unwrap(), &small);
    let (too_big, problem) = put(
        &service,
        &format!("/api/v1/pipelines/inline/submissions/{}", Uuid::new_v4()),
        &body(&big, json!({})),
    )
    .await;
    assert_eq!(
        (too_big, problem["code"].as_str()),
        (413, Some("actor.image_too_large"))
    );
}

async fn ready(service: &Service) -> (u16, Value) {
    let mut res = TestClient::get(format!("{BASE}/readyz"))
        .send(service)
        .await;
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

#[tokio::test(flavor = "multi_thread")]
async fn a_server_down_means_503_nothing_kept_and_a_retry_stores_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut mongo = servers::mongo();
    let mut s3 = servers::s3(&dir.path().join("s3"));
    let toml = format!(
        "[pipelines.default]\nextractors = []\nactors = [\"catalog\", \"archive\"]\n[pipelines.s3-first]\nextractors = []\nactors = [\"archive\", \"catalog\"]\n{}",
        actors_toml(&mongo, &s3, "none")
    );
    let service = service(dir.path(), &toml).await;
    let image = ean_png();
    assert_eq!(ready(&service).await.0, 200);

    // S3 down: MongoDB stored first, and must not keep the record.
    s3.stop();
    let first = Uuid::new_v4().to_string();
    let (status, problem) = put(
        &service,
        &format!("/api/v1/submissions/{first}"),
        &body(&image, json!({"n": 1})),
    )
    .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "actor.unavailable");
    assert!(problem["detail"].as_str().unwrap().contains("archive"));
    assert_no_address(&problem);
    assert_eq!(
        collection(&mongo)
            .await
            .count_documents(doc! {"_id": &first})
            .await
            .unwrap(),
        0
    );
    let (status, problem) = ready(&service).await;
    assert_eq!(status, 503);
    assert!(
        problem["detail"].as_str().unwrap().contains("archive"),
        "{problem}"
    );
    s3.start();
    assert_eq!(ready(&service).await.0, 200);

    // MongoDB down: S3 stored first, and must not keep the photo.
    mongo.stop();
    let second = Uuid::new_v4().to_string();
    let path = format!("/api/v1/pipelines/s3-first/submissions/{second}");
    let (status, problem) = put(&service, &path, &body(&image, json!({"n": 2}))).await;
    assert_eq!(status, 503, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("catalog"));
    assert_no_address(&problem);
    assert!(
        keys(&s3, &second).await.is_empty(),
        "no object left in the bucket"
    );
    let (status, problem) = ready(&service).await;
    assert_eq!(status, 503);
    assert!(
        problem["detail"].as_str().unwrap().contains("catalog"),
        "{problem}"
    );
    assert_no_address(&problem);
    let mut history = TestClient::get(format!("{BASE}/api/v1/submissions"))
        .send(&service)
        .await;
    let problem: Value = history.take_json().await.unwrap();
    assert_eq!(problem["code"], "actor.read_failed", "{problem}");
    assert_no_address(&problem);

    // Back up: the same PUT stores exactly one record.
    mongo.start();
    let started = Instant::now();
    while ready(&service).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "MongoDB is ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = put(&service, &path, &body(&image, json!({"n": 2}))).await;
    assert_eq!(status, 201);
    let (status, _) = put(&service, &path, &body(&image, json!({"n": 2}))).await;
    assert_eq!(status, 200, "a second retry finds the stored record");
    assert_eq!(
        collection(&mongo)
            .await
            .count_documents(doc! {"_id": &second})
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        keys(&s3, &second).await,
        [
            format!("images/{second}.json"),
            format!("images/{second}.png")
        ]
    );
    let (status, _) = put(
        &service,
        &format!("/api/v1/submissions/{first}"),
        &body(&image, json!({"n": 1})),
    )
    .await;
    assert_eq!(status, 201, "the first submission, retried, lands too");
    assert_eq!(
        collection(&mongo)
            .await
            .count_documents(doc! {})
            .await
            .unwrap(),
        2
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
