//! HTTP-level tests against the in-process service: every status the API promises, with its
//! problem+json body, and nothing written to disk when a submission is refused.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{
    Client, EAN, body, ean_png, files, jpeg, json_of, multipart, png, png_bomb, problem, status,
    strings_at, symbol, url,
};
use rxing::BarcodeFormat;
use salvo::http::header::{CONTENT_TYPE, LOCATION};
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use serde_json::{Value, json};
use uuid::Uuid;

/// Records of open pipelines are not readable unless the config says so.
const PUBLIC_READS: &str = r#"
[auth]
read = "public"
"#;

#[tokio::test]
async fn put_stores_once_and_a_retry_answers_the_same_record() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let id = Uuid::new_v4();
    let labels = json!({"class": 1});
    let mut res = client
        .put(&id.to_string(), &ean_png(), labels.clone())
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    assert_eq!(
        res.headers().get(LOCATION).unwrap(),
        &format!("/api/v1/submissions/{id}")
    );
    let record = json_of(&mut res).await;
    assert_eq!(record["id"], id.to_string());
    assert_eq!(record["labels"], json!({"class": 1}));
    assert_eq!(record["image"]["format"], "png");
    assert_eq!(record["barcodes"][0]["text"], EAN);
    assert_eq!(record["barcodes"][0]["format"], "EAN_13");
    assert_eq!(record["barcodes"][0]["kind"], "product");
    assert_eq!(record["stored"][0]["actor"], "disk");
    let data = dir.path().join("data");
    let stored = files(&data);
    let names: Vec<String> = stored
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into())
        .collect();
    assert_eq!(names, [format!("{id}.json"), format!("{id}.png")]);

    let mut again = client.put(&id.to_string(), &ean_png(), labels).await;
    assert_eq!(again.status_code, Some(StatusCode::OK));
    assert_eq!(json_of(&mut again).await, record);
    assert_eq!(files(&data), stored, "a retry stores nothing twice");
}

#[tokio::test]
async fn the_same_id_with_other_content_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let id = Uuid::new_v4().to_string();
    let first = client.put(&id, &ean_png(), json!({"class": 1})).await;
    assert_eq!(first.status_code, Some(StatusCode::CREATED));
    let before = files(&dir.path().join("data"));
    let mut res = client.put(&id, &ean_png(), json!({"class": 2})).await;
    problem(&mut res, 409, "submission.conflict").await;
    assert_eq!(files(&dir.path().join("data")), before);
}

#[tokio::test]
async fn post_chooses_a_time_ordered_id_and_reports_a_duplicate_image() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let mut first = client
        .post_json("/api/v1/submissions", &body(&ean_png(), json!({})))
        .await;
    assert_eq!(first.status_code, Some(StatusCode::CREATED));
    let first = json_of(&mut first).await;
    let id: Uuid = first["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert!(first.get("duplicate_of").is_none());
    let mut second = client
        .send(TestClient::put(url("/api/v1/submissions")).json(&body(&ean_png(), json!({}))))
        .await;
    assert_eq!(second.status_code, Some(StatusCode::CREATED));
    assert_eq!(json_of(&mut second).await["duplicate_of"], first["id"]);
    assert_eq!(files(&dir.path().join("data")).len(), 4, "both are stored");
}

#[tokio::test]
async fn multipart_raw_and_data_url_bodies_merge_typed_query_labels() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let image = ean_png();

    let labels = r#"{"color": "red", "class": 9}"#;
    let mut res = client
        .post_form(
            "/api/v1/submissions?class=3&filename=a.jpg&ok=true",
            &image,
            &[("labels", labels)],
        )
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    let record = json_of(&mut res).await;
    assert_eq!(
        record["labels"],
        json!({"class": 9, "filename": "a.jpg", "ok": true, "color": "red"})
    );
    assert_eq!(record["barcodes"][0]["text"], EAN);

    let mut raw = client
        .send(
            TestClient::post(url("/api/v1/submissions?class=3"))
                .add_header(CONTENT_TYPE, "image/png", true)
                .body(image.clone()),
        )
        .await;
    assert_eq!(raw.status_code, Some(StatusCode::CREATED));
    assert_eq!(json_of(&mut raw).await["labels"], json!({"class": 3}));

    let data_url = format!("data:image/png;base64,{}", STANDARD.encode(&image));
    let mut res = client
        .post_json("/api/v1/submissions", &json!({"image": data_url}))
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    assert_eq!(json_of(&mut res).await["barcodes"][0]["text"], EAN);
}

#[tokio::test]
async fn query_labels_keep_every_digit_without_a_schema() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let query = "gtin=0012345678905&big=99999999999999999999&exp=1e5&class=3&ratio=2.5&ok=true";
    let mut res = client
        .send(
            TestClient::post(url(&format!("/api/v1/submissions?{query}")))
                .add_header(CONTENT_TYPE, "image/png", true)
                .body(ean_png()),
        )
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    let labels = json_of(&mut res).await["labels"].clone();
    assert_eq!(
        labels,
        json!({"gtin": "0012345678905", "big": "99999999999999999999", "exp": "1e5",
               "class": 3, "ratio": 2.5, "ok": true})
    );
}

#[tokio::test]
async fn a_form_field_takes_the_type_the_schema_gives_it() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[pipelines.products]
validators = ["labels"]
actors = ["disk"]

[validators.labels]
kind = "json-schema"
schema = { type = "object", required = ["gtin"], properties = { gtin = { type = "string" }, count = { type = "integer" } } }
"#;
    let client = Client::start(dir.path(), extra).await;
    let fields = [("gtin", "8413000065504"), ("count", "2")];
    let mut res = client
        .post_form(
            "/api/v1/pipelines/products/submissions",
            &ean_png(),
            &fields,
        )
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    let labels = json_of(&mut res).await["labels"].clone();
    assert_eq!(labels, json!({"gtin": "8413000065504", "count": 2}));
}

#[tokio::test]
async fn json_numbers_are_kept_exactly_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let image = STANDARD.encode(ean_png());
    let exact = format!(
        r#"{{"image": "{image}", "labels": {{"max": 9223372036854775807, "min": -9223372036854775808, "f": 0.1}}}}"#
    );
    let mut res = client
        .send(TestClient::post(url("/api/v1/submissions")).raw_json(exact))
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    let record: Value = res.take_json().await.unwrap();
    assert_eq!(record["labels"]["max"], json!(i64::MAX));
    assert_eq!(record["labels"]["min"], json!(i64::MIN));
    let before = files(&dir.path().join("data")).len();
    let wide = format!(r#"{{"image": "{image}", "labels": {{"code": 99999999999999999999}}}}"#);
    let as_text = serde_json::to_string(
        &json!({"image": image, "labels": r#"{"code": 18446744073709551616}"#}),
    )
    .unwrap();
    for body in [wide, as_text] {
        let mut res = client
            .send(TestClient::post(url("/api/v1/submissions")).raw_json(body))
            .await;
        let problem = problem(&mut res, 422, "labels.integer_too_wide").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("send it as a string")
        );
    }
    let parts = [("labels", r#"{"code": -99999999999999999999}"#)];
    let mut res = client
        .post_form("/api/v1/submissions", &ean_png(), &parts)
        .await;
    problem(&mut res, 422, "labels.integer_too_wide").await;
    assert_eq!(
        files(&dir.path().join("data")).len(),
        before,
        "nothing stored"
    );
}

/// A test's configuration is its own: run again with `LIBRARIAN_*` variables that would break
/// any config that read them (an unknown key, an address that is none), a test still passes.
#[test]
fn the_tests_ignore_librarian_variables_of_the_environment() {
    let rerun = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "json_numbers_are_kept_exactly_or_refused"])
        .env("LIBRARIAN_TEST_TOOLS", "/nowhere")
        .env("LIBRARIAN_SERVER__BIND", "not an address")
        .env("LIBRARIAN_CONFIG", "/nowhere.toml")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&rerun.stdout);
    assert!(
        rerun.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    assert!(out.contains("1 passed"), "{out}");
}

/// Labels `levels` objects deep, the labels object itself counted.
fn nested_labels(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!({ "a": value });
    }
    value
}

#[tokio::test]
async fn labels_that_could_not_be_read_back_are_refused_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), PUBLIC_READS).await;
    let deep = nested_labels(127).to_string();
    let mut as_string = client
        .post_json(
            "/api/v1/submissions",
            &json!({"image": STANDARD.encode(ean_png()), "labels": deep}),
        )
        .await;
    problem(&mut as_string, 422, "labels.too_deep").await;
    let mut as_part = client
        .post_form("/api/v1/submissions", &ean_png(), &[("labels", &deep)])
        .await;
    problem(&mut as_part, 422, "labels.too_deep").await;
    assert!(files(&dir.path().join("data")).is_empty(), "nothing stored");

    let mut deepest = client
        .post_json("/api/v1/submissions", &body(&ean_png(), nested_labels(32)))
        .await;
    assert_eq!(deepest.status_code, Some(StatusCode::CREATED));
    let id = json_of(&mut deepest).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = client.get(&format!("/api/v1/submissions/{id}")).await;
    assert_eq!(read.status_code, Some(StatusCode::OK), "a 201 reads back");
}

#[tokio::test]
async fn labels_over_max_label_bytes_are_a_413() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(
        dir.path(),
        r#"
[server]
max_label_bytes = 1000
"#,
    )
    .await;
    let labels = json!({"note": "x".repeat(2000)});
    let mut res = client
        .post_json("/api/v1/submissions", &body(&ean_png(), labels))
        .await;
    problem(&mut res, 413, "labels.too_large").await;
    let mut query = client
        .send(
            TestClient::post(url(&format!(
                "/api/v1/submissions?note={}",
                "y".repeat(2000)
            )))
            .add_header(CONTENT_TYPE, "image/png", true)
            .body(ean_png()),
        )
        .await;
    problem(&mut query, 413, "labels.too_large").await;
    assert!(files(&dir.path().join("data")).is_empty());
}

#[tokio::test]
async fn a_pipelines_records_are_listed_under_its_own_route() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(
        dir.path(),
        r#"
[auth]
read = "public"
[pipelines.other]
actors = ["disk"]
"#,
    )
    .await;
    for path in ["/api/v1/submissions", "/api/v1/pipelines/other/submissions"] {
        let res = client.post_json(path, &body(&ean_png(), json!({}))).await;
        assert_eq!(res.status_code, Some(StatusCode::CREATED));
    }
    let mut res = client
        .get("/api/v1/pipelines/other/submissions?limit=1")
        .await;
    let page = json_of(&mut res).await;
    assert_eq!(page["records"].as_array().unwrap().len(), 1);
    assert_eq!(page["records"][0]["pipeline"], "other");
    let next = page["next"].as_str().unwrap();
    assert!(
        next.starts_with("/api/v1/pipelines/other/submissions?limit=1&before="),
        "{next}"
    );
    let mut missing = client.get("/api/v1/pipelines/nope/submissions").await;
    problem(&mut missing, 404, "pipeline.not_found").await;
}

#[tokio::test]
async fn malformed_input_is_a_400_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let submit = || TestClient::post(url("/api/v1/submissions"));
    let cases: Vec<(salvo::test::RequestBuilder, &str)> = vec![
        (submit().raw_json("{\"image\": "), "body.malformed_json"),
        (
            submit().json(&json!({"image": "%%% not base64 %%%"})),
            "image.bad_base64",
        ),
        (
            submit().json(&json!({"labels": {"class": 1}})),
            "image.missing",
        ),
        (
            submit().json(&json!({"image": STANDARD.encode(ean_png()), "labels": [1, 2]})),
            "labels.not_object",
        ),
        (
            submit()
                .add_header(CONTENT_TYPE, "multipart/form-data; boundary=zz", true)
                .body("--zz\r\nnonsense"),
            "body.malformed_multipart",
        ),
        (
            TestClient::put(url("/api/v1/submissions/not-a-uuid"))
                .json(&body(&ean_png(), json!({}))),
            "id.invalid",
        ),
    ];
    for (request, code) in cases {
        let mut res = client.send(request).await;
        problem(&mut res, 400, code).await;
    }
    assert!(files(&dir.path().join("data")).is_empty());
}

#[tokio::test]
async fn unknown_pipelines_records_and_routes_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let mut res = client
        .post_json(
            "/api/v1/pipelines/nope/submissions",
            &body(&ean_png(), json!({})),
        )
        .await;
    problem(&mut res, 404, "pipeline.not_found").await;
    let mut res = client
        .get(&format!("/api/v1/submissions/{}", Uuid::new_v4()))
        .await;
    problem(&mut res, 404, "record.not_found").await;
    let mut res = client
        .get(&format!("/api/v1/submissions/{}/image", Uuid::new_v4()))
        .await;
    problem(&mut res, 404, "record.not_found").await;
    let mut res = client.get("/api/v2/nothing").await;
    problem(&mut res, 404, "route.not_found").await;
    let mut res = client
        .send(TestClient::delete(url("/api/v1/submissions")))
        .await;
    problem(&mut res, 405, "route.method_not_allowed").await;
    assert_eq!(res.headers()["allow"], "GET, HEAD, POST, PUT");
    assert!(files(&dir.path().join("data")).is_empty());
}

#[tokio::test]
async fn a_known_path_asked_with_another_method_says_which_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    for (method, path, allow) in [
        ("TRACE", "/healthz".to_owned(), "GET, HEAD"),
        ("GET", "/api/v1/scan".to_owned(), "POST"),
        (
            "DELETE",
            format!("/api/v1/submissions/{}", Uuid::new_v4()),
            "GET, HEAD, PUT",
        ),
    ] {
        let request = TestClient::get(url(&path));
        let mut res = match method {
            "GET" => client.send(request).await,
            "DELETE" => client.send(TestClient::delete(url(&path))).await,
            _ => {
                let mut req = request.build();
                *req.method_mut() = salvo::http::Method::TRACE;
                librarian::http::service(client.app.clone())
                    .handle(req)
                    .await
            }
        };
        problem(&mut res, 405, "route.method_not_allowed").await;
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
    }
    let res = client.send(TestClient::options(url("/api/v1/scan"))).await;
    assert_eq!(
        res.status_code,
        Some(StatusCode::NO_CONTENT),
        "OPTIONS without CORS"
    );
    assert_eq!(res.headers()["allow"], "POST");
}

#[tokio::test]
async fn a_body_over_the_configured_limit_is_a_413() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(
        dir.path(),
        r#"
[server]
max_body_bytes = 2000
"#,
    )
    .await;
    let big = body(&vec![7u8; 5000], json!({}));
    let mut res = client.post_json("/api/v1/submissions", &big).await;
    let problem_body = problem(&mut res, 413, "body.too_large").await;
    assert!(problem_body["detail"].as_str().unwrap().contains("2000"));
    let raw = TestClient::post(url("/api/v1/submissions"))
        .add_header(CONTENT_TYPE, "image/png", true)
        .body(vec![0u8; 3000]);
    let mut raw = client.send(raw).await;
    problem(&mut raw, 413, "body.too_large").await;
    assert!(files(&dir.path().join("data")).is_empty());
}

#[tokio::test]
async fn what_is_not_an_accepted_image_is_a_415() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[pipelines.jpeg-only]
validators = ["jpeg"]
actors = ["disk"]
[validators.jpeg]
kind = "image"
formats = ["jpeg"]
"#;
    let client = Client::start(dir.path(), extra).await;
    let mut res = client
        .send(TestClient::post(url("/api/v1/submissions")).text("hello"))
        .await;
    problem(&mut res, 415, "body.unsupported_type").await;
    let mut res = client
        .post_json(
            "/api/v1/submissions",
            &body(b"\x89PNG\r\n\x1a\n but no chunk follows", json!({})),
        )
        .await;
    problem(&mut res, 415, "image.undecodable").await;
    let mut res = client
        .post_json("/api/v1/submissions", &body(&[0x13u8; 64], json!({})))
        .await;
    problem(&mut res, 415, "image.unknown_format").await;
    let photo = jpeg(&symbol(BarcodeFormat::EAN_13, EAN, 380, 160));
    let truncated = &photo[..photo.len() / 2];
    let mut res = client
        .post_json("/api/v1/submissions", &body(truncated, json!({})))
        .await;
    problem(&mut res, 415, "image.undecodable").await;
    let mut res = client
        .post_json(
            "/api/v1/pipelines/jpeg-only/submissions",
            &body(&ean_png(), json!({})),
        )
        .await;
    problem(&mut res, 415, "image.format_not_allowed").await;
    let ok = client
        .post_json(
            "/api/v1/pipelines/jpeg-only/submissions",
            &body(&photo, json!({})),
        )
        .await;
    assert_eq!(ok.status_code, Some(StatusCode::CREATED));
    assert_eq!(
        files(&dir.path().join("data")).len(),
        2,
        "only the accepted submission is stored"
    );
}

#[tokio::test]
async fn every_failing_validator_is_named_in_one_422() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[pipelines.default]
validators = ["labels", "photo", "box", "has-code", "gtin"]
extractors = ["barcode"]
actors = ["disk"]
[validators.box]
kind = "label-matches"
label = "box"
check = "box-inside-image"
[validators.labels]
kind = "json-schema"
schema = { type = "object", required = ["class"], properties = { class = { type = "integer" }, gtin = { type = "string" } } }
[validators.photo]
kind = "image"
min_width = 100
max_pixels = 1000000
[validators.has-code]
kind = "barcode"
required = true
formats = ["QR_CODE"]
[validators.gtin]
kind = "label-matches"
label = "gtin"
check = "gtin"
"#;
    let client = Client::start(dir.path(), extra).await;
    let tiny = png(&image::GrayImage::from_pixel(40, 40, image::Luma([255])));
    let mut res = client
        .post_json(
            "/api/v1/submissions",
            &body(
                &tiny,
                json!({"class": "three", "box": {"x": 0, "y": 0, "w": 500, "h": 10}}),
            ),
        )
        .await;
    let cheap = problem(&mut res, 422, "validation.failed").await;
    let named: Vec<(&str, &str)> = cheap["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["validator"].as_str().unwrap(),
                e["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("labels", "labels.schema"),
            ("photo", "image.too_narrow"),
            ("box", "label.box_outside_image")
        ],
        "a box is checked with the labels and the header, in the first round"
    );
    assert_eq!(cheap["errors"][0]["path"], "/class");

    let mut res = client
        .send(TestClient::post(url("/api/v1/submissions")).json(&body(
            &ean_png(),
            json!({"class": 1, "gtin": "4006381333931"}),
        )))
        .await;
    let late = problem(&mut res, 422, "validation.failed").await;
    let named = strings_at(&late["errors"], "code");
    assert_eq!(
        named,
        [
            "barcode.format_not_allowed",
            "barcode.missing",
            "label.gtin_mismatch"
        ]
    );
    assert_eq!(late["errors"][2]["path"], "/gtin");
    assert_eq!(
        late["detail"], "the submission was rejected by 2 validator(s)",
        "three findings of two validators"
    );
    assert!(files(&dir.path().join("data")).is_empty());
}

#[tokio::test]
async fn hostile_images_cost_one_4xx_and_the_service_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let mut res = client
        .post_json("/api/v1/submissions", &body(&png_bomb(), json!({})))
        .await;
    let bomb = problem(&mut res, 422, "validation.failed").await;
    assert_eq!(bomb["errors"][0]["code"], "image.too_many_pixels");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut res = client
        .send(
            TestClient::post(url("/api/v1/submissions"))
                .add_header(CONTENT_TYPE, "image/jpeg", true)
                .body(garbage),
        )
        .await;
    problem(&mut res, 415, "image.unknown_format").await;
    let res = client
        .post_json("/api/v1/submissions", &body(&ean_png(), json!({})))
        .await;
    assert_eq!(
        res.status_code,
        Some(StatusCode::CREATED),
        "still serving after hostile input"
    );
    assert_eq!(files(&dir.path().join("data")).len(), 2);
}

#[tokio::test]
async fn records_images_and_history_read_back_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), PUBLIC_READS).await;
    let mut ids = Vec::new();
    for class in 0..3 {
        let image = png(&symbol(
            BarcodeFormat::QR_CODE,
            &format!("item {class}"),
            120,
            120,
        ));
        let mut res = client
            .post_json(
                "/api/v1/submissions",
                &body(&image, json!({"class": class})),
            )
            .await;
        ids.push(json_of(&mut res).await["id"].as_str().unwrap().to_owned());
    }
    let mut record = client.get(&format!("/api/v1/submissions/{}", ids[1])).await;
    assert_eq!(json_of(&mut record).await["labels"]["class"], 1);
    let mut image = client
        .get(&format!("/api/v1/submissions/{}/image", ids[1]))
        .await;
    assert_eq!(image.headers().get(CONTENT_TYPE).unwrap(), "image/png");
    let bytes = image.take_bytes(None).await.unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));

    let mut page = client.get("/api/v1/submissions?limit=2").await;
    let page = json_of(&mut page).await;
    let listed = strings_at(&page["records"], "id");
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let next = page["next"].as_str().unwrap();
    let mut rest = client.get(next).await;
    let rest = json_of(&mut rest).await;
    assert_eq!(rest["records"][0]["id"], ids[0]);
    assert_eq!(rest["next"], Value::Null);
    let mut bad = client.get("/api/v1/submissions?limit=0").await;
    problem(&mut bad, 400, "query.invalid").await;
}

#[tokio::test]
async fn scan_reads_many_images_in_parallel_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let qr = png(&symbol(
        BarcodeFormat::QR_CODE,
        "https://example.org/a",
        150,
        150,
    ));
    let images = json!({"images": [STANDARD.encode(ean_png()), STANDARD.encode(qr), STANDARD.encode(b"nope")]});
    let mut res = client.post_json("/api/v1/scan", &images).await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    let results = json_of(&mut res).await["results"].clone();
    assert_eq!(results[0]["barcodes"][0]["text"], EAN);
    assert_eq!(results[1]["barcodes"][0]["text"], "https://example.org/a");
    assert_eq!(results[1]["barcodes"][0]["kind"], "uri");
    assert_eq!(results[2]["error"]["code"], "image.unknown_format");
    assert!(files(&dir.path().join("data")).is_empty());
}

/// `null` labels mean no labels, in a JSON body as in a multipart labels part.
#[tokio::test]
async fn null_labels_are_no_labels_in_every_body() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let photo = ean_png();
    let mut res = client
        .post_json(
            "/api/v1/submissions",
            &json!({"image": STANDARD.encode(&photo), "labels": null}),
        )
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    assert_eq!(json_of(&mut res).await["labels"], json!({}));
    let (content_type, form) = multipart(&[
        ("image", Some("a.png"), &photo),
        ("labels", None, b"null"),
        ("shelf", None, b"3"),
    ]);
    let mut res = client
        .send(
            TestClient::post(url("/api/v1/submissions"))
                .add_header(CONTENT_TYPE, &content_type, true)
                .body(form),
        )
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    assert_eq!(json_of(&mut res).await["labels"], json!({"shelf": 3}));
}

/// What /openapi.json refuses the server refuses too (found by the contract fuzzer): a
/// multipart part without a printable ASCII name, an empty file part in a scan, and a JSON
/// scan naming both `images` and `image`.
#[tokio::test]
async fn requests_the_document_refuses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let photo = png(&symbol(BarcodeFormat::QR_CODE, "named", 120, 120));
    for name in ["", "gr\u{f6}\u{df}e", "tab\there"] {
        let (content_type, form) =
            multipart(&[("image", Some("a.png"), &photo), (name, None, b"a label")]);
        for path in ["/api/v1/submissions", "/api/v1/scan"] {
            let mut res = client
                .send(
                    TestClient::post(url(path))
                        .add_header(CONTENT_TYPE, &content_type, true)
                        .body(form.clone()),
                )
                .await;
            problem(&mut res, 400, "body.malformed_multipart").await;
        }
    }
    assert!(files(&dir.path().join("data")).is_empty(), "nothing stored");

    let (content_type, form) = multipart(&[
        ("image", Some("a.png"), &photo),
        ("second", Some("b.png"), b""),
    ]);
    let mut res = client
        .send(
            TestClient::post(url("/api/v1/scan"))
                .add_header(CONTENT_TYPE, &content_type, true)
                .body(form),
        )
        .await;
    problem(&mut res, 400, "image.missing").await;

    let both = json!({"images": [STANDARD.encode(&photo)], "image": "%%"});
    let mut res = client.post_json("/api/v1/scan", &both).await;
    let said = problem(&mut res, 400, "body.malformed_json").await;
    assert!(
        said["detail"].as_str().unwrap().contains("not both"),
        "{said}"
    );
}

#[tokio::test]
async fn scan_answers_in_the_order_sent_naming_each_part() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let codes: Vec<Vec<u8>> = ["d", "a", "c", "b"]
        .iter()
        .map(|t| {
            png(&symbol(
                BarcodeFormat::QR_CODE,
                &format!("part {t}"),
                120,
                120,
            ))
        })
        .collect();
    let parts: Vec<(&str, Option<&str>, &[u8])> = vec![
        ("d", Some("d.png"), &codes[0]),
        ("note", None, b"a text part is no image"),
        ("a", Some("a.png"), &codes[1]),
        ("c", Some("c.png"), &codes[2]),
        ("b", Some("b.png"), &codes[3]),
    ];
    let (content_type, form) = multipart(&parts);
    for _ in 0..3 {
        let mut res = client
            .send(
                TestClient::post(url("/api/v1/scan"))
                    .add_header(CONTENT_TYPE, &content_type, true)
                    .body(form.clone()),
            )
            .await;
        assert_eq!(res.status_code, Some(StatusCode::OK));
        let results = json_of(&mut res).await["results"].clone();
        let seen: Vec<(String, String, String)> = results
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let text = r["barcodes"][0]["text"].as_str().unwrap_or_default();
                (
                    r["part"].as_str().unwrap().into(),
                    r["filename"].as_str().unwrap().into(),
                    text.into(),
                )
            })
            .collect();
        let expected: Vec<(String, String, String)> = ["d", "a", "c", "b"]
            .iter()
            .map(|t| (t.to_string(), format!("{t}.png"), format!("part {t}")))
            .collect();
        assert_eq!(seen, expected);
    }
    let images = json!({"images": [STANDARD.encode(&codes[1])]});
    let mut res = client
        .send(
            TestClient::post(url("/api/v1/scan"))
                .add_header(CONTENT_TYPE, "application/vnd.example+json", true)
                .body(images.to_string()),
        )
        .await;
    assert_eq!(
        res.status_code,
        Some(StatusCode::OK),
        "+json is JSON, as for submissions"
    );
    let results = json_of(&mut res).await["results"].clone();
    assert_eq!(results[0]["part"], "images[0]");
    assert_eq!(results[0]["barcodes"][0]["text"], "part a");
}

#[tokio::test]
async fn pipelines_describe_their_schema_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[pipelines.products]
validators = ["labels"]
actors = ["disk"]
[validators.labels]
kind = "json-schema"
schema = { type = "object", properties = { class = { type = "integer" } } }
"#;
    let client = Client::start(dir.path(), extra).await;
    let mut list = client.get("/api/v1/pipelines").await;
    let names: Vec<String> = json_of(&mut list).await["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["default", "products"]);
    let mut one = client.get("/api/v1/pipelines/products").await;
    let spec = json_of(&mut one).await;
    assert_eq!(
        spec["label_schema"]["properties"]["class"]["type"],
        "integer"
    );
    assert_eq!(spec["image_field"], "image");
    assert_eq!(spec["limits"]["max_body_bytes"], 25 * 1024 * 1024);
}

#[tokio::test]
async fn health_docs_and_cors_preflight() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/",
        "/assets/app.js",
        "/assets/app.css",
    ] {
        let res = client.get(path).await;
        assert_eq!(res.status_code, Some(StatusCode::OK), "{path}");
    }
    let mut ready = client.get("/readyz").await;
    assert_eq!(json_of(&mut ready).await["actors"]["disk"], "ready");
    let preflight = client
        .send(
            TestClient::options(url(&format!("/api/v1/submissions/{}", Uuid::new_v4())))
                .add_header("origin", "http://labeller.example", true)
                .add_header("access-control-request-method", "PUT", true)
                .add_header("access-control-request-headers", "content-type", true),
        )
        .await;
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "*"
    );
    let methods = preflight
        .headers()
        .get("access-control-allow-methods")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("PUT"), "{methods}");
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let mut res = client.get("/openapi.json").await;
    let doc = json_of(&mut res).await;
    let id = Uuid::new_v4();
    for (path, method) in [
        ("/api/v1/submissions", "post"),
        ("/api/v1/submissions", "get"),
        ("/api/v1/submissions/{id}", "put"),
        ("/api/v1/submissions/{id}", "get"),
        ("/api/v1/submissions/{id}/image", "get"),
        ("/api/v1/pipelines", "get"),
        ("/api/v1/pipelines/{name}", "get"),
        ("/api/v1/pipelines/{name}/submissions", "post"),
        ("/api/v1/pipelines/{name}/submissions/{id}", "put"),
        ("/api/v1/scan", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is documented"
        );
        // and the route exists: it never answers route.not_found
        let concrete = path
            .replace("{id}", &id.to_string())
            .replace("{name}", "default");
        let request = match method {
            "get" => TestClient::get(url(&concrete)),
            "put" => TestClient::put(url(&concrete)),
            _ => TestClient::post(url(&concrete)),
        };
        let mut res = client.send(request.json(&json!({}))).await;
        if res.status_code == Some(StatusCode::NOT_FOUND) {
            assert_ne!(
                json_of(&mut res).await["code"],
                "route.not_found",
                "{method} {path} is routed"
            );
        }
    }
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(dir.path(), "").await;
    let echoed = client
        .send(TestClient::get(url("/healthz")).add_header("x-request-id", "phone-42-try-1", true))
        .await;
    assert_eq!(
        echoed.headers().get("x-request-id").unwrap(),
        "phone-42-try-1"
    );
    let mut missing = client.get("/api/v1/nothing").await;
    let made = missing
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(Uuid::parse_str(&made).is_ok(), "a new id is made: {made}");
    problem(&mut missing, 404, "route.not_found").await;
    let odd = client
        .send(TestClient::get(url("/healthz")).add_header("x-request-id", "has spaces", true))
        .await;
    assert_ne!(odd.headers().get("x-request-id").unwrap(), "has spaces");
}

#[tokio::test]
async fn submissions_beyond_the_in_flight_cap_get_503_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::start(
        dir.path(),
        r#"
[server]
max_in_flight = 2
[auth]
read = "public"
"#,
    )
    .await;
    let held = client
        .app
        .in_flight
        .clone()
        .acquire_many_owned(2)
        .await
        .unwrap();
    let mut res = client
        .post_json("/api/v1/submissions", &body(&ean_png(), json!({})))
        .await;
    problem(&mut res, 503, "server.busy").await;
    assert_eq!(res.headers().get("retry-after").unwrap(), "1");
    let reads = client.get("/api/v1/submissions").await;
    assert_eq!(
        reads.status_code,
        Some(StatusCode::OK),
        "reads are not capped"
    );
    assert!(files(&dir.path().join("data")).is_empty());
    drop(held);
    let res = client
        .post_json("/api/v1/submissions", &body(&ean_png(), json!({})))
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
}

/// Back-pressure asks the caller to come back: counted as `busy`, not as a failure.
#[tokio::test]
async fn metrics_count_back_pressure_as_busy() {
    let dir = tempfile::tempdir().unwrap();
    let limited = r#"
[pipelines.limited]
actors = ["disk"]
rate_limit = { requests_per_minute = 1, burst = 1 }
"#;
    let client = Client::start(dir.path(), limited).await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let res = client
            .post_json(
                "/api/v1/pipelines/limited/submissions",
                &body(&ean_png(), json!({})),
            )
            .await;
        statuses.push(res.status_code.unwrap().as_u16());
    }
    assert_eq!(statuses, [201, 429]);
    let text = client.get("/metrics").await.take_string().await.unwrap();
    let busy =
        r#"librarian_submissions_total{pipeline="limited",outcome="busy",code="rate.limited"} 1"#;
    assert!(
        text.lines().any(|l| l == busy),
        "missing `{busy}` in:\n{text}"
    );
    assert!(!text.contains(r#"outcome="failed""#), "{text}");
}

#[tokio::test]
async fn metrics_count_a_known_mix_of_submissions() {
    let dir = tempfile::tempdir().unwrap();
    let strict = r#"
[pipelines.strict]
validators = ["labels"]
actors = ["disk"]
[validators.labels]
kind = "json-schema"
schema = { type = "object", required = ["class"] }
"#;
    let client = Client::start(dir.path(), strict).await;
    let id = Uuid::new_v4();
    let qr = png(&symbol(BarcodeFormat::QR_CODE, "metrics", 120, 120));
    let sends = [
        TestClient::put(url(&format!("/api/v1/submissions/{id}")))
            .json(&body(&ean_png(), json!({}))),
        TestClient::put(url(&format!("/api/v1/submissions/{id}")))
            .json(&body(&ean_png(), json!({}))),
        TestClient::post(url("/api/v1/submissions")).json(&body(&qr, json!({}))),
        TestClient::post(url("/api/v1/pipelines/strict/submissions")).json(&body(&qr, json!({}))),
        TestClient::post(url("/api/v1/submissions")).text("not a photo"),
    ];
    let mut statuses = Vec::new();
    for send in sends {
        statuses.push(client.send(send).await.status_code.unwrap().as_u16());
    }
    assert_eq!(statuses, [201, 200, 201, 422, 415]);
    let mut res = client.get("/metrics").await;
    assert!(
        res.headers()
            .get(CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let text = res.take_string().await.unwrap();
    assert!(
        text.trim_end().ends_with("# EOF"),
        "the body is OpenMetrics, as the type says"
    );
    for line in [
        r#"librarian_submissions_total{pipeline="default",outcome="stored",code=""} 2"#,
        r#"librarian_submissions_total{pipeline="default",outcome="replayed",code=""} 1"#,
        r#"librarian_submissions_total{pipeline="strict",outcome="rejected",code="validation.failed"} 1"#,
        r#"librarian_submissions_total{pipeline="default",outcome="refused",code="body.unsupported_type"} 1"#,
        r#"librarian_rejections_total{pipeline="strict",validator="labels",code="labels.schema"} 1"#,
        r#"librarian_barcodes_total{format="EAN_13"} 1"#,
        r#"librarian_barcodes_total{format="QR_CODE"} 1"#,
        r#"librarian_stage_seconds_count{stage="read",actor=""} 5"#,
        r#"librarian_stage_seconds_count{stage="decode",actor=""} 2"#,
        r#"librarian_stage_seconds_count{stage="extract",actor=""} 2"#,
        r#"librarian_stage_seconds_count{stage="validate",actor=""} 5"#,
        r#"librarian_stage_seconds_count{stage="store",actor="disk"} 2"#,
        r#"librarian_http_requests_total{method="PUT",route="/api/v1/submissions/{id}",status="201"} 1"#,
        r#"librarian_http_requests_total{method="PUT",route="/api/v1/submissions/{id}",status="200"} 1"#,
        r#"librarian_http_requests_total{method="POST",route="/api/v1/pipelines/{name}/submissions",status="422"} 1"#,
        "librarian_submissions_in_flight 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}

/// A service that lets a client submit twice at once and once a second after that, in
/// every pipeline but `open`.
async fn rate_limited(dir: &std::path::Path) -> Client {
    let toml = r#"
[auth]
read = "public"
[rate_limit]
requests_per_minute = 60
burst = 2
[pipelines.open]
actors = ["disk"]
rate_limit = {}
"#;
    Client::start(dir, toml).await
}

/// Submits until the default pipeline's burst of two is spent; both are stored.
async fn spend_the_burst(client: &Client) {
    for _ in 0..2 {
        let res = client.submit("default", &ean_png(), json!({})).await;
        assert_eq!(status(&res), 201);
    }
}

#[tokio::test]
async fn a_client_over_the_rate_limit_gets_429_with_retry_after_and_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let client = rate_limited(dir.path()).await;
    spend_the_burst(&client).await;
    let mut limited = client.submit("default", &ean_png(), json!({})).await;
    let retry = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(["1", "2"].contains(&retry.as_str()), "Retry-After {retry}");
    problem(&mut limited, 429, "rate.limited").await;
    let two_records = 4;
    assert_eq!(files(&dir.path().join("data")).len(), two_records);
}

#[tokio::test]
async fn a_limited_client_is_served_again_once_retry_after_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let client = rate_limited(dir.path()).await;
    spend_the_burst(&client).await;
    let limited = client.submit("default", &ean_png(), json!({})).await;
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    client
        .app
        .clock
        .advance(std::time::Duration::from_secs(retry));
    let again = client.submit("default", &ean_png(), json!({})).await;
    assert_eq!(status(&again), 201);
}

#[tokio::test]
async fn reads_are_not_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let client = rate_limited(dir.path()).await;
    spend_the_burst(&client).await;
    assert_eq!(status(&client.history("").await), 200);
}

#[tokio::test]
async fn a_pipeline_can_turn_the_rate_limit_off() {
    let dir = tempfile::tempdir().unwrap();
    let client = rate_limited(dir.path()).await;
    for _ in 0..5 {
        let res = client.submit("open", &ean_png(), json!({})).await;
        assert_eq!(status(&res), 201);
    }
}

#[tokio::test]
async fn a_credential_nobody_verified_is_no_rate_budget_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let client = rate_limited(dir.path()).await;
    spend_the_burst(&client).await;
    let someone_else = client.with_token("someone-else");
    let res = someone_else.submit("default", &ean_png(), json!({})).await;
    assert_eq!(status(&res), 429);
}

fn exif_with_gps() -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value);
    }
    let (exif_ifd, time_at, gps_ifd, degrees_at) = (50u32, 68u32, 88u32, 118u32);
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    entry(&mut t, 0x0112, 3, 1, [6, 0, 0, 0]);
    entry(&mut t, 0x8769, 4, 1, exif_ifd.to_le_bytes());
    entry(&mut t, 0x8825, 4, 1, gps_ifd.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    entry(&mut t, 0x9003, 2, 20, time_at.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(b"2026:11:22 10:00:00\0");
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, [b'N', 0, 0, 0]);
    entry(&mut t, 0x0002, 5, 3, degrees_at.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    for (n, d) in [(52u32, 1u32), (31, 1), (0, 1)] {
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&d.to_le_bytes());
    }
    assert_eq!(t.len(), 142);
    t
}

fn exif_of(jpeg: &[u8]) -> Option<exif::Exif> {
    use img_parts::ImageEXIF;
    let parsed = img_parts::jpeg::Jpeg::from_bytes(jpeg.to_vec().into()).unwrap();
    exif::Reader::new().read_raw(parsed.exif()?.to_vec()).ok()
}

#[tokio::test]
async fn stripping_removes_the_gps_position_keeps_pixels_orientation_and_capture_time() {
    use img_parts::ImageEXIF;
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[pipelines.private]
extractors = ["barcode"]
actors = ["disk"]
strip_metadata = true
keep_metadata = ["capture_time"]
"#;
    let client = Client::start(dir.path(), extra).await;
    let mut photo = img_parts::jpeg::Jpeg::from_bytes(
        jpeg(&symbol(BarcodeFormat::EAN_13, EAN, 380, 160)).into(),
    )
    .unwrap();
    photo.set_exif(Some(exif_with_gps().into()));
    let original = photo.encoder().bytes().to_vec();
    let sent = exif_of(&original).expect("the test photo carries EXIF");
    assert!(
        sent.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
            .is_some(),
        "and a GPS position"
    );

    let mut res = client
        .post_json(
            "/api/v1/pipelines/private/submissions",
            &body(&original, json!({})),
        )
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    let record = json_of(&mut res).await;
    assert_eq!(record["metadata"]["removed"], json!(["exif"]));
    assert_eq!(
        record["metadata"]["kept"]["capture_time"],
        "2026-11-22 10:00:00"
    );
    assert_eq!(record["barcodes"][0]["text"], EAN);
    let stored = std::fs::read(
        dir.path()
            .join("data")
            .join(format!("{}.jpg", record["id"].as_str().unwrap())),
    )
    .unwrap();
    let kept = exif_of(&stored).expect("the orientation is kept");
    assert!(
        kept.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
            .is_none(),
        "no GPS tag is stored"
    );
    assert!(
        kept.get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY)
            .is_none()
    );
    assert_eq!(
        kept.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
            .unwrap()
            .value
            .get_uint(0),
        Some(6)
    );
    let pixels = |bytes: &[u8]| {
        image::load_from_memory(bytes)
            .unwrap()
            .into_luma8()
            .into_raw()
    };
    assert_eq!(
        pixels(&stored),
        pixels(&original),
        "pixels are not re-encoded"
    );
    assert_eq!(
        record["image"]["bytes"],
        stored.len(),
        "the record describes the stored file"
    );
}

#[tokio::test]
async fn stripping_removes_trailing_images_extended_xmp_and_other_app_segments() {
    use img_parts::ImageEXIF;
    use img_parts::jpeg::{Jpeg, JpegSegment, markers};
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
[pipelines.private]
actors = ["disk"]
strip_metadata = true
"#;
    let client = Client::start(dir.path(), extra).await;
    let photo = || Jpeg::from_bytes(jpeg(&symbol(BarcodeFormat::EAN_13, EAN, 380, 160)).into());
    let mut first = photo().unwrap();
    let where_ = b"http://ns.adobe.com/xmp/extension/\0<exif:GPSLatitude>52,31N</exif:GPSLatitude>";
    let segments = first.segments_mut();
    segments.insert(
        1,
        JpegSegment::new_with_contents(markers::APP1, where_[..].into()),
    );
    segments.insert(
        1,
        JpegSegment::new_with_contents(markers::APP4, b"GPS 52,31N"[..].into()),
    );
    // A second image after the first one's end, as multi-picture and motion-photo files are
    // built, with the GPS position in its own EXIF.
    let mut second = photo().unwrap();
    second.set_exif(Some(exif_with_gps().into()));
    let mut sent = first.encoder().bytes().to_vec();
    sent.extend_from_slice(&second.encoder().bytes());

    let mut res = client
        .post_json(
            "/api/v1/pipelines/private/submissions",
            &body(&sent, json!({})),
        )
        .await;
    assert_eq!(res.status_code, Some(StatusCode::CREATED));
    let record = json_of(&mut res).await;
    let mut removed: Vec<String> =
        serde_json::from_value(record["metadata"]["removed"].clone()).unwrap();
    removed.sort();
    assert_eq!(removed, ["app4", "trailer", "xmp"]);
    let id = record["id"].as_str().unwrap();
    let stored = std::fs::read(dir.path().join("data").join(format!("{id}.jpg"))).unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(
        !text.contains("52,31N") && !text.contains("Exif"),
        "no position anywhere"
    );
    assert!(exif_of(&stored).is_none());
    assert_eq!(stored.len(), record["image"]["bytes"]);
}
