//! The RabbitMQ queue with real servers on loopback: an API process that only queues, worker
//! processes that store, RabbitMQ for the messages and MongoDB for the state of jobs.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::process::{
    Server as Process, command, dead_letters, job, job_state, one_record_each, run, serve, stderr,
    submit_async, until_stored,
};
use common::servers::{self, Server, amqp_url, mongo_uri};
use common::{files, png, symbol};
use rxing::BarcodeFormat;
use serde_json::Value;

/// A folder with a config whose queue is on `rabbit`, the jobs' state on `mongo`, and a
/// photo: small, or large and noisy enough that one worker takes a while for each.
fn folder(mongo: &Server, rabbit: &Server, large: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[auth]
read = "public"
[queue]
kind = "amqp"
url = "{}"
connect_timeout = "3s"
retry_delay = "200ms"
[queue.state]
uri = "{}"
"#,
        amqp_url(rabbit),
        mongo_uri(mongo)
    );
    std::fs::write(dir.path().join("librarian.toml"), config).unwrap();
    let code = symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160);
    let photo = match large {
        true => common::noisy(&common::on_canvas(&code, 2400, 1800, 900, 800), 40),
        false => code,
    };
    std::fs::write(dir.path().join("photo.png"), png(&photo)).unwrap();
    dir
}

/// `librarian worker` in `dir` with `workers` at once.
fn worker(dir: &Path, workers: &str) -> Process {
    let mut command = command(dir, &["worker", "-q", "--workers", workers], &[]);
    Process(command.stdout(Stdio::null()).spawn().unwrap())
}

/// Sends `count` photos with `submit --async`; returns their ids.
fn send(dir: &Path, address: &str, count: usize) -> Vec<String> {
    let url = format!("http://{address}");
    (0..count)
        .map(|n| {
            let id = uuid::Uuid::now_v7().to_string();
            let job = submit_async(dir, &url, &id, n);
            assert_eq!(job["state"], "queued");
            id
        })
        .collect()
}

/// Waits until every job is stored, then checks that each has one record in `dir/data`.
fn stored_once(dir: &Path, address: &str, ids: &[String]) {
    until_stored(address, ids);
    one_record_each(&dir.join("data"), ids);
}

/// The events of a job as the API sends them, read until its final one.
fn events(address: &str, id: &str) -> std::thread::JoinHandle<Vec<String>> {
    let url = format!("http://{address}/api/v1/jobs/{id}/events");
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let res = agent.get(url).call().unwrap();
        let lines = std::io::BufReader::new(res.into_body().into_reader()).lines();
        let states: Vec<String> = lines
            .map_while(Result::ok)
            .filter_map(|line| {
                let job: Value = serde_json::from_str(line.strip_prefix("data:")?.trim()).ok()?;
                Some(job["state"].as_str()?.to_owned())
            })
            .collect();
        states
    })
}

#[test]
fn an_api_replica_queues_and_a_worker_process_stores_each_job_once() {
    let (mongo, rabbit) = (servers::mongo(), servers::rabbitmq());
    let dir = folder(&mongo, &rabbit, false);
    let (_api, address) = serve(dir.path(), &["--workers", "0"]);
    let ids = send(dir.path(), &address, 4);
    let first = events(&address, &ids[0]);
    std::thread::sleep(Duration::from_millis(500));
    for id in &ids {
        assert_eq!(job_state(&address, id), "queued", "no worker runs yet");
    }
    let data = dir.path().join("data");
    assert!(
        !data.exists() || files(&data).is_empty(),
        "nothing stored by the API"
    );
    let _worker = worker(dir.path(), "2");
    stored_once(dir.path(), &address, &ids);
    let states = first.join().unwrap();
    assert_eq!(states.first().map(String::as_str), Some("queued"));
    assert_eq!(
        states.last().map(String::as_str),
        Some("stored"),
        "the API replica hears the worker's changes: {states:?}"
    );
    assert!(states.iter().any(|s| s == "running"), "{states:?}");
}

#[test]
fn a_job_whose_worker_is_killed_runs_again_on_another() {
    let (mongo, rabbit) = (servers::mongo(), servers::rabbitmq());
    let dir = folder(&mongo, &rabbit, true);
    let (_api, address) = serve(dir.path(), &["--workers", "0"]);
    let ids = send(dir.path(), &address, 4);
    let mut first = worker(dir.path(), "1");
    let started = Instant::now();
    let running = loop {
        if let Some(id) = ids.iter().find(|id| job_state(&address, id) == "running") {
            break id.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "a job runs");
        std::thread::sleep(Duration::from_millis(20));
    };
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let _second = worker(dir.path(), "2");
    stored_once(dir.path(), &address, &ids);
    let attempts = job(&address, &running)["attempts"].as_u64();
    assert!(
        attempts >= Some(2),
        "the job cut short ran again: {attempts:?}"
    );
}

#[test]
fn rabbitmq_down_means_503_and_nothing_queued_until_it_is_back() {
    let (mongo, mut rabbit) = (servers::mongo(), servers::rabbitmq());
    let dir = folder(&mongo, &rabbit, false);
    let (_api, address) = serve(dir.path(), &["--workers", "0"]);
    rabbit.stop();
    let url = format!("http://{address}");
    let id = uuid::Uuid::now_v7().to_string();
    let args = ["submit", "photo.png", "--async", "--url", &url, "--id", &id];
    let refused = run(dir.path(), &args, &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("503 Service Unavailable"),
        "{}",
        stderr(&refused)
    );
    let res = ureq::get(format!("{url}/api/v1/jobs/{id}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(res.status(), 404, "nothing was queued");
    let start = run(dir.path(), &["serve", "--bind", "127.0.0.1:0"], &[]);
    assert!(
        !start.status.success(),
        "a server does not start without its queue"
    );
    assert!(stderr(&start).contains("queue"), "{}", stderr(&start));
    rabbit.start();
    let again = run(dir.path(), &args, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(job_state(&address, &id), "queued");
}

/// A consumer's queue bound to `key` on the topic exchange `librarian.events`, declared as
/// the notifier declares it: the broker keeps only what is published after the binding.
async fn bound_consumer(url: &str, key: &str) -> (lapin::Connection, lapin::Consumer) {
    use lapin::options::{
        BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::FieldTable;
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let exchange = "librarian.events";
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mine = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("".into(), mine, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            no_ack,
            FieldTable::default(),
        )
        .await
        .unwrap();
    (connection, consumer)
}

#[test]
fn an_amqp_notifier_publishes_each_stored_record_under_its_routing_key() {
    use futures_util::StreamExt;
    let rabbit = servers::rabbitmq();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[pipelines.default]
notify = ["bus"]
[notifiers.bus]
kind = "amqp"
url = "{}"
"#,
        amqp_url(&rabbit)
    );
    std::fs::write(dir.path().join("librarian.toml"), config).unwrap();
    std::fs::write(
        dir.path().join("photo.png"),
        png(&symbol(BarcodeFormat::EAN_13, "5449000000996", 300, 100)),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_connection, mut consumer) =
        runtime.block_on(bound_consumer(&amqp_url(&rabbit), "default.record.stored"));
    let (_server, address) = serve(dir.path(), &[]);
    let submitted = run(
        dir.path(),
        &["submit", "photo.png", "--url", &format!("http://{address}")],
        &[],
    );
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let record: Value = serde_json::from_slice(&submitted.stdout).unwrap();
    let next = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), consumer.next()).await });
    let delivery = next.unwrap().unwrap().unwrap();
    assert_eq!(delivery.routing_key.as_str(), "default.record.stored");
    assert_eq!(delivery.properties.delivery_mode(), &Some(2), "persistent");
    let event: Value = serde_json::from_slice(&delivery.data).unwrap();
    assert_eq!(event["type"], "record.stored");
    assert_eq!(event["record"]["id"], record["id"]);
    assert_eq!(
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        event["id"].as_str()
    );
}

#[test]
fn with_a_rabbitmq_queue_the_outbox_is_in_mongodb_shared_by_api_and_workers() {
    use common::receiver::Receiver;
    let (mongo, rabbit) = (servers::mongo(), servers::rabbitmq());
    let receiver = Receiver::start(servers::free_port(), 500);
    let dir = folder(&mongo, &rabbit, false);
    let notify = format!(
        r#"
[pipelines.default]
notify = ["hook"]
[notifiers.hook]
kind = "webhook"
url = "{}"
timeout = "1s"
[outbox]
max_attempts = 2
retry_delay = "100ms"
max_retry_delay = "200ms"
"#,
        receiver.url()
    );
    let config = dir.path().join("librarian.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, base + &notify).unwrap();
    let (_api, address) = serve(dir.path(), &["--workers", "0"]);
    let _worker = worker(dir.path(), "1");
    let ids = send(dir.path(), &address, 2);
    stored_once(dir.path(), &address, &ids);

    // Two events, each refused twice: two dead letters, listed from MongoDB by any process.
    receiver.until(4);
    let started = Instant::now();
    let dead = loop {
        let dead = dead_letters(dir.path());
        if dead.len() == 2 {
            break dead;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{dead:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut records: Vec<&str> = dead.iter().filter_map(|l| l["record"].as_str()).collect();
    records.sort();
    let mut sent: Vec<&str> = ids.iter().map(String::as_str).collect();
    sent.sort();
    assert_eq!(records, sent);
    assert!(dead.iter().all(|l| l["attempts"] == 2));
    assert!(
        !dir.path().join("outbox").exists(),
        "no letter on local disk"
    );

    receiver.answer(200);
    let retried = run(dir.path(), &["outbox", "retry", "--all"], &[]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    let received = receiver.until(6);
    std::thread::sleep(Duration::from_millis(500));
    let received_now = receiver.received();
    assert_eq!(received_now.len(), 6, "each revived letter sent once");
    let first: Vec<String> = received[..4]
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    for again in &received_now[4..] {
        assert_eq!(again.answered, 200);
        assert!(first.contains(&again.header("webhook-id").to_owned()));
    }
    assert!(dead_letters(dir.path()).is_empty());
}
