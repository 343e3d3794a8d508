//! `image_url`: a photo fetched by its job, from a real HTTP server on loopback; loopback is
//! refused unless the pipeline allows private addresses.

mod common;

use common::{Client, EAN, ean_png, json_of, problem, status};
use salvo::test::ResponseExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Public reads; private fetches allowed when `allow_private`, with a small `max_bytes`.
fn config(allow_private: bool) -> String {
    format!(
        r#"
[auth]
read = "public"
[pipelines.default.fetch]
allow_private = {allow_private}
max_bytes = 100000
timeout = "5s"
"#
    )
}

/// An HTTP server on a free loopback port: `/photo.png` is an EAN-13 photo, `/page` HTML,
/// `/huge.png` more bytes than `max_bytes`, `/moved` a redirect to the photo, anything else
/// 404. Returns its port.
async fn photo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let photo = ean_png();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let photo = photo.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or_default();
                let (status, kind, body, extra): (&str, &str, Vec<u8>, String) = match path {
                    "/photo.png" => ("200 OK", "image/png", photo, String::new()),
                    "/page" => (
                        "200 OK",
                        "text/html",
                        b"<html></html>".to_vec(),
                        String::new(),
                    ),
                    "/huge.png" => ("200 OK", "image/png", vec![0; 200_000], String::new()),
                    "/moved" => (
                        "302 Found",
                        "text/plain",
                        Vec::new(),
                        format!("location: http://localhost:{port}/photo.png\r\n"),
                    ),
                    _ => ("404 Not Found", "text/plain", Vec::new(), String::new()),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    port
}

/// Sends `image_url` (no `Prefer`): the submission is queued all the same.
async fn send_url(client: &Client, url: &str) -> salvo::Response {
    let body = json!({"image_url": url, "labels": {"gtin": "0012345678905"}});
    client.post_json("/api/v1/submissions", &body).await
}

/// The job of a URL sent, once final (the 303 of a stored one is answered as `stored`).
async fn final_job(client: &Client, url: &str) -> Value {
    let mut res = send_url(client, url).await;
    assert_eq!(status(&res), 202, "{:?}", res.take_string().await);
    let id = json_of(&mut res).await["id"].as_str().unwrap().to_owned();
    let mut done = client.finished_job(&id).await;
    match status(&done) {
        303 => json!({"id": id, "state": "stored"}),
        _ => json_of(&mut done).await,
    }
}

#[tokio::test]
async fn a_photo_by_url_is_fetched_by_its_job_and_stored_with_its_barcode() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), &config(true)).await;
    let port = photo_server().await;
    for path in ["photo.png", "moved"] {
        let job = final_job(&client, &format!("http://127.0.0.1:{port}/{path}")).await;
        assert_eq!(job["state"], "stored", "{job}");
        let mut record = client.record(job["id"].as_str().unwrap()).await;
        let record = json_of(&mut record).await;
        assert_eq!(record["barcodes"][0]["text"], EAN);
        assert_eq!(record["labels"]["gtin"], "0012345678905");
        assert_eq!(record["image"]["sha256"].as_str().map(str::len), Some(64));
    }
}

#[tokio::test]
async fn loopback_is_refused_at_once_or_when_the_job_resolves_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), &config(false)).await;
    let port = photo_server().await;
    for address in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let mut res = send_url(&client, &format!("http://{address}/photo.png")).await;
        problem(&mut res, 422, "fetch.refused").await;
    }
    // A name is resolved by the job, and what it resolves to is checked.
    let job = final_job(&client, &format!("http://localhost:{port}/photo.png")).await;
    assert_eq!(job["state"], "rejected", "{job}");
    assert_eq!(job["problem"]["code"], "fetch.refused");
    assert!(
        !dir.path().join("data").exists() || common::files(&dir.path().join("data")).is_empty()
    );
}

#[tokio::test]
async fn what_is_no_photo_rejects_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), &config(true)).await;
    let port = photo_server().await;
    for path in ["page", "huge.png", "gone.png"] {
        let job = final_job(&client, &format!("http://127.0.0.1:{port}/{path}")).await;
        assert_eq!(job["state"], "rejected", "{path}: {job}");
        assert_eq!(job["problem"]["code"], "fetch.unusable", "{path}");
    }
}

#[tokio::test]
async fn a_url_that_is_no_http_url_or_comes_with_an_image_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), &config(true)).await;
    for url in ["ftp://example.com/a.png", "file:///etc/passwd", "photo.png"] {
        let mut res = send_url(&client, url).await;
        problem(&mut res, 422, "fetch.refused").await;
    }
    let long = format!("http://example.com/{}", "a".repeat(3000));
    let mut res = send_url(&client, &long).await;
    problem(&mut res, 422, "fetch.refused").await;
    let both = json!({"image_url": "http://example.com/a.png", "image": "aGVsbG8="});
    let mut res = client.post_json("/api/v1/submissions", &both).await;
    problem(&mut res, 400, "body.malformed_json").await;
}
