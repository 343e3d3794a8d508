//! Notifiers against real receivers on loopback: a webhook receiver started by the test,
//! RabbitMQ and an SMTP server (aiosmtpd), with the binary run as a user runs it.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::process::{Server as Process, dead_letters, run, serve, stderr};
use common::receiver::{Received, Receiver};
use common::servers::free_port;
use common::{EAN, ean_png};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const SECRET: &str = "a-webhook-secret";

/// A folder with this config.
fn folder_with(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("librarian.toml"), config).unwrap();
    dir
}

/// A folder with a config whose default pipeline tells the webhook `hook` at `url`, and
/// `extra` TOML in `[outbox]`.
fn folder(url: &str, extra: &str) -> tempfile::TempDir {
    folder_with(&format!(
        r#"
[auth]
read = "public"
[pipelines.default]
notify = ["hook"]
[notifiers.hook]
kind = "webhook"
url = "{url}"
secret = "{SECRET}"
timeout = "1s"
[outbox]
retry_delay = "100ms"
max_retry_delay = "400ms"
{extra}
"#
    ))
}

/// A synchronous submission with the labels `{"gtin": "0012345678905", "n": n}`: its id.
fn submit(address: &str, n: usize) -> String {
    let body = json!({
        "image": STANDARD.encode(ean_png()),
        "labels": {"gtin": "0012345678905", "n": n},
    });
    let mut res = ureq::post(format!("http://{address}/api/v1/submissions"))
        .send_json(&body)
        .unwrap();
    assert_eq!(res.status(), 201);
    let record: Value = res.body_mut().read_json().unwrap();
    record["id"].as_str().unwrap().to_owned()
}

/// A sample of the server's metrics, 0 when it has none yet.
fn metric(address: &str, series: &str) -> f64 {
    let text = ureq::get(format!("http://{address}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn deliveries(address: &str, outcome: &str) -> f64 {
    metric(
        address,
        &format!(r#"librarian_notifier_deliveries_total{{notifier="hook",outcome="{outcome}"}}"#),
    )
}

/// Waits (at most 60 s) until `done` holds.
fn until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks the signature as a receiver following Standard Webhooks does.
fn assert_signed(request: &Received) {
    let (id, timestamp) = (
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(request.header("webhook-signature"), expected);
    let sent: i64 = timestamp.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - sent).abs() < 120);
}

#[test]
fn a_webhook_gets_each_stored_record_once_signed() {
    let receiver = Receiver::start(free_port(), 200);
    let dir = folder(&receiver.url(), "");
    let (_server, address) = serve(dir.path(), &[]);
    let ids = [submit(&address, 1), submit(&address, 2)];
    let received = receiver.until(2);
    until("both counted as delivered", || {
        deliveries(&address, "delivered") == 2.0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.received().len(), 2, "each event once");
    let mut told: Vec<String> = Vec::new();
    for request in &received {
        assert_signed(request);
        let event = request.json();
        assert_eq!(event["type"], "record.stored");
        assert_eq!(event["pipeline"], "default");
        assert_eq!(request.header("webhook-id"), event["id"].as_str().unwrap());
        assert_eq!(
            request.header("idempotency-key"),
            event["id"].as_str().unwrap()
        );
        assert_eq!(request.header("content-type"), "application/json");
        let record = &event["record"];
        assert_eq!(record["labels"]["gtin"], "0012345678905", "labels as sent");
        assert_eq!(record["barcodes"][0]["text"], EAN);
        let id = record["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/submissions/{id}/image");
        assert_eq!(event["image_url"], path);
        let image = ureq::get(format!("http://{address}{path}")).call().unwrap();
        assert_eq!(image.status(), 200);
        told.push(id);
    }
    told.sort();
    let mut sent = ids.to_vec();
    sent.sort();
    assert_eq!(told, sent);
    assert_eq!(deliveries(&address, "retried"), 0.0);
}

#[test]
fn a_receiver_that_fails_gets_the_same_event_until_it_answers() {
    let receiver = Receiver::start(free_port(), 500);
    let dir = folder(&receiver.url(), "");
    let (_server, address) = serve(dir.path(), &[]);
    let id = submit(&address, 1);
    receiver.until(3);
    receiver.answer(200);
    until("delivered once the receiver answers", || {
        deliveries(&address, "delivered") == 1.0
    });
    let received = receiver.received();
    assert!(received.len() >= 4);
    assert_eq!(received.last().unwrap().answered, 200);
    let first = &received[0];
    for request in &received {
        assert_eq!(request.header("webhook-id"), first.header("webhook-id"));
        assert_eq!(request.json()["record"]["id"], id.as_str());
        assert_signed(request);
    }
    assert!(deliveries(&address, "retried") >= 3.0);
}

#[test]
fn a_receiver_that_is_down_gets_the_event_once_it_is_up() {
    let port = free_port();
    let dir = folder(&format!("http://127.0.0.1:{port}/hook"), "");
    let (_server, address) = serve(dir.path(), &[]);
    let id = submit(&address, 1);
    until("attempts fail while the receiver is down", || {
        deliveries(&address, "retried") >= 2.0
    });
    let receiver = Receiver::start(port, 200);
    let received = receiver.until(1);
    assert_eq!(received[0].json()["record"]["id"], id.as_str());
    until("counted as delivered", || {
        deliveries(&address, "delivered") == 1.0
    });
}

#[test]
fn an_event_refused_max_attempts_times_is_a_dead_letter_until_retried() {
    let receiver = Receiver::start(free_port(), 500);
    let dir = folder(&receiver.url(), "max_attempts = 3");
    let (_server, address) = serve(dir.path(), &[]);
    let id = submit(&address, 1);
    receiver.until(3);
    until("a dead letter", || deliveries(&address, "dead") == 1.0);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(receiver.received().len(), 3, "no attempt after the last");
    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["record"], id.as_str());
    assert_eq!(dead[0]["notifier"], "hook");
    assert_eq!(dead[0]["type"], "record.stored");
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["last_error"], "the receiver answered 500");

    receiver.answer(200);
    let retried = run(dir.path(), &["outbox", "retry", "--all"], &[]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    let received = receiver.until(4);
    assert_eq!(received[3].answered, 200);
    assert_eq!(
        received[3].header("webhook-id"),
        received[0].header("webhook-id")
    );
    until("delivered", || deliveries(&address, "delivered") == 1.0);
    assert!(dead_letters(dir.path()).is_empty());
}

#[test]
fn a_410_stops_an_event_at_once_and_retry_needs_a_dead_letter() {
    let receiver = Receiver::start(free_port(), 410);
    let dir = folder(&receiver.url(), "");
    let (_server, address) = serve(dir.path(), &[]);
    submit(&address, 1);
    until("a dead letter", || deliveries(&address, "dead") == 1.0);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(receiver.received().len(), 1);
    let dead = dead_letters(dir.path());
    assert_eq!(dead[0]["attempts"], 1);
    assert!(dead[0]["last_error"].as_str().unwrap().contains("410"));

    let unknown = uuid::Uuid::now_v7().to_string();
    let refused = run(dir.path(), &["outbox", "retry", "--event", &unknown], &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("no dead letter of event"),
        "{}",
        stderr(&refused)
    );
    let neither = run(dir.path(), &["outbox", "retry"], &[]);
    assert!(!neither.status.success(), "retry names an event or --all");
}

#[test]
fn events_waiting_when_the_server_is_killed_are_delivered_after_the_restart() {
    let port = free_port();
    let dir = folder(&format!("http://127.0.0.1:{port}/hook"), "");
    let (server, address) = serve(dir.path(), &[]);
    let mut ids: Vec<String> = (0..3).map(|n| submit(&address, n)).collect();
    until("each event tried once", || {
        deliveries(&address, "retried") >= 3.0
    });
    drop::<Process>(server); // SIGKILL
    let receiver = Receiver::start(port, 200);
    let (_server, _address) = serve(dir.path(), &[]);
    let received = receiver.until(3);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(receiver.received().len(), 3, "each event once");
    let mut told: Vec<String> = received
        .iter()
        .map(|r| r.json()["record"]["id"].as_str().unwrap().to_owned())
        .collect();
    told.sort();
    ids.sort();
    assert_eq!(told, ids);
}

#[test]
fn a_rejection_is_told_to_a_notifier_that_asks_for_it_and_only_then() {
    let receiver = Receiver::start(free_port(), 200);
    let dir = folder_with(&format!(
        r#"
[auth]
read = "public"
[pipelines.default]
notify = ["hook"]
validators = ["photo", "labels"]
[validators.labels]
kind = "json-schema"
schema = {{ type = "object", required = ["gtin"] }}
[notifiers.hook]
kind = "webhook"
url = "{}"
events = ["submission.rejected"]
"#,
        receiver.url()
    ));
    let (_server, address) = serve(dir.path(), &[]);
    submit(&address, 1);
    let body = json!({"image": STANDARD.encode(ean_png()), "labels": {"n": 2}});
    let refused = ureq::post(format!("http://{address}/api/v1/submissions"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(&body)
        .unwrap();
    assert_eq!(refused.status(), 422);
    let received = receiver.until(1);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        receiver.received().len(),
        1,
        "the stored record is not told"
    );
    let event = received[0].json();
    assert_eq!(event["type"], "submission.rejected");
    assert_eq!(event["submission"]["labels"]["n"], 2);
    assert_eq!(event["submission"]["violations"][0]["validator"], "labels");
    assert!(event.get("record").is_none());
    assert_eq!(
        received[0].header("webhook-signature"),
        "",
        "no secret, no signature"
    );
}
