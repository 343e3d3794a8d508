//! Load benchmark: starts the release binary on a free port with the default disk pipeline,
//! drives it with concurrent clients sending JSON PUTs of a base64 photo, and prints
//! throughput, latency percentiles, status counts and the server's peak memory.
//!
//! `[BENCH_LIBRARIAN_BIN=path] cargo bench --bench load -- [--clients 8] [--seconds 20] [--requests N] [--payload crop|phone|both|bombs] [--async] [--amqp URL --state MONGODB_URI [--worker-processes 2]] [--s3 ENDPOINT [--s3-bucket submissions]] [--webhook-ms 100] [--ocr]`
//!
//! `--async` sends every photo with `Prefer: respond-async`: the latencies are those of the
//! 202s while the server's workers are saturated, and the run waits until the queue is empty
//! to print how long the workers took to store what was acknowledged. `--requests` ends a
//! payload's run after that many requests (or `--seconds`, whichever comes first).
//!
//! `--amqp` (with `--async`) is the scale-out: the queue on that RabbitMQ broker, the jobs'
//! state in MongoDB at `--state`, an API process with no workers and `--worker-processes`
//! `librarian worker` processes of one job each. The broker and MongoDB are yours to start.
//! `--kill-worker-halfway` kills one worker with SIGKILL once half of the acknowledged jobs
//! are stored, starts another, and counts the records against the 202s at the end.
//!
//! `--webhook-ms` tells a webhook notifier of every stored record, against a receiver in this
//! process that takes that long to answer each call; after the run it waits until every
//! record's event arrived and prints the delivery rate.
//!
//! `--ocr` adds an `ocr` extractor to the default pipeline (a binary built with
//! `--features ocr`; alone, not with `--s3` or `--webhook-ms`).
//!
//! `--s3` stores each record in that S3 endpoint's bucket too (path style, credentials from
//! the standard AWS environment variables), after the disk copy that the bench counts.
//!
//! A soak is a long run: `--seconds 600` reports resident memory a fifth into the run and at
//! its end, so that growth shows.
//!
//! Payloads are generated: `crop` is a 640 x 480 PNG with an EAN-13, `phone` a 4000 x 3000
//! JPEG (12 MP) with an EAN-13 small in the frame. `bombs` sends, from `--clients` clients in
//! turn, images that decode far larger than they are (a 16-bit RGBA PNG and a lossless WebP of
//! 100 MP, a JPEG whose header claims 10000 x 10000), while one more client sends the `crop`
//! photo twice a second: its latency and the server's peak memory are what count.

mod support;
// The tests' webhook receiver; the tests use more of it than the bench does.
#[allow(dead_code)]
#[path = "../tests/common/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use rxing::{BarcodeFormat, MultiFormatWriter, Writer};
use support::{arg, percentile};

fn photo(width: u32, height: u32, code_width: i32, format: ImageFormat) -> Vec<u8> {
    let matrix = MultiFormatWriter
        .encode(
            "5449000000996",
            &BarcodeFormat::EAN_13,
            code_width,
            code_width / 2,
        )
        .unwrap();
    let code = DynamicImage::from(&matrix).into_luma8();
    // Sensor noise, so that the JPEG weighs what a phone's does (a few MB for 12 MP).
    let mut noise: u32 = 0x2545_f491;
    let mut canvas = GrayImage::from_fn(width, height, |x, y| {
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        Luma([140 + ((x / 7 + y / 5) % 60) as u8 + (noise % 24) as u8])
    });
    let margin = GrayImage::from_pixel(code.width() + 40, code.height() + 40, Luma([255]));
    let (x, y) = (i64::from(width / 3), i64::from(height / 2));
    image::imageops::overlay(&mut canvas, &margin, x - 20, y - 20);
    image::imageops::overlay(&mut canvas, &code, x, y);
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(canvas)
        .to_rgb8()
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

/// A memory figure of the server from /proc: `VmHWM` (peak) or `VmRSS` (now), in MiB.
fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

struct Outcome {
    ms: Vec<f64>,
    statuses: BTreeMap<String, usize>,
    elapsed: f64,
    /// The server's resident memory, sampled every second.
    rss: Vec<f64>,
}

impl Outcome {
    /// Resident memory once warmed up (a fifth into the run) and at the end, in MiB.
    fn rss_warm_and_end(&self) -> (f64, f64) {
        let at = |i: usize| self.rss.get(i).copied().unwrap_or(0.0);
        (at(self.rss.len() / 5), at(self.rss.len().saturating_sub(1)))
    }
}

/// A PNG of `side` x `side` 16-bit RGBA zeros, written row by row (it compresses to well under
/// a megabyte).
fn png_bomb(side: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Sixteen);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().unwrap();
    let mut stream = writer.stream_writer().unwrap();
    let row = vec![0u8; side as usize * 8];
    for _ in 0..side {
        std::io::Write::write_all(&mut stream, &row).unwrap();
    }
    stream.finish().unwrap();
    writer.finish().unwrap();
    out
}

/// A lossless WebP of `side` x `side` white pixels.
fn webp_bomb(side: u32) -> Vec<u8> {
    let pixels = vec![255u8; side as usize * side as usize * 4];
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(&pixels, side, side, image::ExtendedColorType::Rgba8)
        .unwrap();
    out
}

/// A small JPEG whose frame header is made to claim `side` x `side`.
fn jpeg_bomb(side: u16) -> Vec<u8> {
    let mut bytes = photo(64, 48, 40, ImageFormat::Jpeg);
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bytes[sof + 5..sof + 7].copy_from_slice(&side.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&side.to_be_bytes());
    bytes
}

fn json_body(image: &[u8]) -> String {
    format!(
        r#"{{"image":"{}","labels":{{"class":1}}}}"#,
        base64::engine::general_purpose::STANDARD.encode(image)
    )
}

/// Drives the server with `clients` clients, each sending the bodies in turn, pausing
/// `pause` after each answer.
#[allow(clippy::too_many_arguments)]
fn drive(
    url: &str,
    bodies: &[String],
    clients: usize,
    seconds: u64,
    pause: Duration,
    server: u32,
    prefer_async: bool,
    limit: usize,
) -> Outcome {
    let sent_so_far = Arc::new(AtomicUsize::new(0));
    let ms = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (url, bodies, ms, statuses, sent_so_far) = (
                url.to_owned(),
                bodies.to_vec(),
                ms.clone(),
                statuses.clone(),
                sent_so_far.clone(),
            );
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .build()
                    .into();
                for body in bodies.iter().cycle() {
                    if Instant::now() >= deadline
                        || sent_so_far.fetch_add(1, Ordering::Relaxed) >= limit
                    {
                        break;
                    }
                    let sent = Instant::now();
                    let mut request = agent
                        .put(format!("{url}/api/v1/submissions/{}", uuid::Uuid::new_v4()))
                        .header("content-type", "application/json");
                    if prefer_async {
                        request = request.header("prefer", "respond-async");
                    }
                    let response = request.send(body.as_bytes());
                    let mut wait = Duration::ZERO;
                    let status = match response {
                        Ok(mut r) => {
                            let _ = r.body_mut().read_to_vec();
                            let code = r.status().as_u16();
                            let retry_after = r
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                            match (code, retry_after) {
                                (503, None) => "503 without Retry-After".to_owned(),
                                (503, Some(seconds)) => {
                                    wait = Duration::from_secs(seconds.min(5));
                                    "503".to_owned()
                                }
                                _ => code.to_string(),
                            }
                        }
                        Err(e) => format!("error: {e}"),
                    };
                    ms.lock()
                        .unwrap()
                        .push(sent.elapsed().as_secs_f64() * 1000.0);
                    // A well-behaved client waits as told before its next try.
                    std::thread::sleep(wait.max(pause));
                    *statuses.lock().unwrap().entry(status).or_insert(0) += 1;
                }
            })
        })
        .collect();
    let done = Arc::new(AtomicUsize::new(0));
    let sampling = done.clone();
    let sampler = std::thread::spawn(move || {
        let mut rss = Vec::new();
        while Instant::now() < deadline && sampling.load(Ordering::Relaxed) == 0 {
            rss.push(memory_mib(server, "VmRSS:"));
            std::thread::sleep(Duration::from_secs(1));
        }
        rss
    });
    for worker in workers {
        worker.join().unwrap();
    }
    done.store(1, Ordering::Relaxed);
    let rss = sampler.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let mut ms = Arc::try_unwrap(ms).unwrap().into_inner().unwrap();
    ms.sort_by(f64::total_cmp);
    let statuses = Arc::try_unwrap(statuses).unwrap().into_inner().unwrap();
    Outcome {
        ms,
        statuses,
        elapsed,
        rss,
    }
}

fn main() {
    let clients: usize = arg("--clients", "8")
        .parse()
        .expect("--clients is a number");
    let seconds: u64 = arg("--seconds", "20")
        .parse()
        .expect("--seconds is a number");
    let which = arg("--payload", "both");
    let prefer_async = std::env::args().any(|a| a == "--async");
    let limit: usize = match arg("--requests", "0")
        .parse()
        .expect("--requests is a number")
    {
        0 => usize::MAX,
        n => n,
    };
    let amqp = arg("--amqp", "");
    let processes: usize = arg("--worker-processes", "2")
        .parse()
        .expect("--worker-processes is a number");
    let binary = std::env::var("BENCH_LIBRARIAN_BIN").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        format!("{target}/release/librarian")
    });
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = vec!["serve", "-q", "--bind"];
    let bind = format!("127.0.0.1:{port}");
    serve.push(&bind);
    let mut config = String::new();
    if !amqp.is_empty() {
        let state = arg("--state", "");
        assert!(!state.is_empty(), "--amqp needs --state, a MongoDB URI");
        config += &format!(
            "[queue]\nkind = \"amqp\"\nurl = \"{amqp}\"\nqueue = \"bench-{port}\"\n[queue.state]\nuri = \"{state}\"\ncollection = \"bench-{port}\"\n"
        );
        serve.extend(["--workers", "0"]);
    }
    let s3 = arg("--s3", "");
    if !s3.is_empty() {
        let bucket = arg("--s3-bucket", "submissions");
        config += &format!(
            "[pipelines.default]\nactors = [\"disk\", \"archive\"]\n[actors.archive]\nkind = \"s3\"\nbucket = \"{bucket}\"\nprefix = \"bench-{port}/\"\nendpoint = \"{s3}\"\npath_style = true\n"
        );
    }
    let webhook_ms: u64 = arg("--webhook-ms", "0")
        .parse()
        .expect("--webhook-ms is a number");
    let hook = (webhook_ms > 0).then(|| {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        receiver::Receiver::start_slow(port, 200, Duration::from_millis(webhook_ms))
    });
    if let Some(hook) = &hook {
        let url = hook.url();
        config += &format!(
            "[pipelines.default]\nnotify = [\"hook\"]\n[notifiers.hook]\nkind = \"webhook\"\nurl = \"{url}\"\n"
        );
    }
    if std::env::args().any(|a| a == "--ocr") {
        assert!(s3.is_empty() && hook.is_none(), "--ocr goes alone");
        config += "[pipelines.default]\nextractors = [\"barcode\", \"text\"]\n[extractors.text]\nkind = \"ocr\"\n";
    }
    if !config.is_empty() {
        std::fs::write(dir.path().join("librarian.toml"), config).unwrap();
    }
    let start = |args: &[&str]| {
        Command::new(&binary)
            .current_dir(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} (build it: cargo build --release): {e}")
            })
    };
    let mut server = start(&serve);
    let workers: std::cell::RefCell<Vec<_>> = match amqp.is_empty() {
        true => Vec::new(),
        false => (0..processes)
            .map(|_| start(&["worker", "-q", "--workers", "1"]))
            .collect(),
    }
    .into();
    let kill_halfway = std::env::args().any(|a| a == "--kill-worker-halfway");
    let replace_a_worker = || {
        let mut workers = workers.borrow_mut();
        let first = &mut workers[0];
        let _ = first.kill();
        let _ = first.wait();
        workers[0] = start(&["worker", "-q", "--workers", "1"]);
    };
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while ureq::get(format!("{url}/healthz")).call().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server starts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    if which == "bombs" {
        bombs(&url, clients, seconds, server.id());
    } else {
        let pids: Vec<u32> = workers.borrow().iter().map(|w| w.id()).collect();
        let run = Run {
            url: &url,
            data: &dir.path().join("data"),
            clients,
            seconds,
            limit,
            server: server.id(),
            workers: &pids,
            prefer_async,
            kill_halfway: (kill_halfway && !pids.is_empty()).then_some(&replace_a_worker),
            hook: hook.as_ref(),
        };
        photos(&run, &which);
    }
    for process in workers.borrow_mut().iter_mut().chain([&mut server]) {
        let _ = process.kill();
        let _ = process.wait();
    }
}

/// What a run of the photo payloads drives and watches.
struct Run<'a> {
    url: &'a str,
    /// Where the records land (the built-in disk actor), to count them.
    data: &'a std::path::Path,
    clients: usize,
    seconds: u64,
    limit: usize,
    server: u32,
    /// `librarian worker` processes, if any.
    workers: &'a [u32],
    prefer_async: bool,
    /// Kills a worker and starts another, once half of the acknowledged jobs are stored.
    kill_halfway: Option<&'a dyn Fn()>,
    /// The receiver of the webhook notifier, if any.
    hook: Option<&'a receiver::Receiver>,
}

fn statuses_of(outcome: &Outcome) -> String {
    let statuses: Vec<String> = outcome
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    statuses.join(", ")
}

/// A value of the server's /metrics: the first sample whose line starts with `series`.
fn metric(url: &str, series: &str) -> f64 {
    let text = ureq::get(format!("{url}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The records stored in `data` (so that the jobs of worker processes count).
fn records(data: &std::path::Path) -> usize {
    std::fs::read_dir(data).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

/// Waits until the queue is empty; returns the seconds it took.
fn drained(url: &str) -> f64 {
    let started = Instant::now();
    while metric(url, r#"librarian_queue_depth{state="queued"}"#)
        + metric(url, r#"librarian_queue_depth{state="running"}"#)
        > 0.0
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed().as_secs_f64()
}

/// Waits until the receiver has an event for each of `stored` records, then prints how long
/// that took from the first request and the delivery rate.
fn delivered(hook: &receiver::Receiver, stored: usize, started: Instant) {
    while hook.received().len() < stored {
        std::thread::sleep(Duration::from_millis(100));
    }
    let seconds = started.elapsed().as_secs_f64();
    let received = hook.received();
    let mut ids: Vec<String> = received
        .iter()
        .filter_map(|r| r.json()["record"]["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    println!(
        "|   (webhook: {} events for {stored} records ({} distinct) within {seconds:.1} s of the first request: {:.1} per second) |",
        received.len(),
        ids.len(),
        received.len() as f64 / seconds
    );
}

fn photos(run: &Run, which: &str) {
    let payloads = [
        ("crop", photo(640, 480, 300, ImageFormat::Png)),
        ("phone", photo(4000, 3000, 600, ImageFormat::Jpeg)),
    ];
    println!(
        "| payload | photo bytes | clients | seconds | requests | per second | p50 ms | p90 ms | p99 ms | statuses | server peak RSS MiB | RSS warm / end MiB |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |");
    for (name, bytes) in payloads
        .iter()
        .filter(|(n, _)| which == "both" || which == *n)
    {
        let body = [json_body(bytes)];
        let (before, started) = (records(run.data), Instant::now());
        let outcome = drive(
            run.url,
            &body,
            run.clients,
            run.seconds,
            Duration::ZERO,
            run.server,
            run.prefer_async,
            run.limit,
        );
        let (warm, end) = outcome.rss_warm_and_end();
        println!(
            "| {name} | {} | {} | {} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {warm:.0} / {end:.0} |",
            bytes.len(),
            run.clients,
            run.seconds,
            outcome.ms.len(),
            outcome.ms.len() as f64 / outcome.elapsed,
            percentile(&outcome.ms, 0.5),
            percentile(&outcome.ms, 0.9),
            percentile(&outcome.ms, 0.99),
            statuses_of(&outcome),
            memory_mib(run.server, "VmHWM:")
        );
        if run.prefer_async {
            let accepted = outcome.statuses.get("202").copied().unwrap_or(0);
            if let Some(replace) = run.kill_halfway {
                while records(run.data) < before + accepted / 2 {
                    std::thread::sleep(Duration::from_millis(100));
                }
                replace();
                println!("|   (a worker was killed with SIGKILL halfway and another started) |");
            }
            let seconds = drained(run.url);
            let stored = records(run.data);
            println!(
                "|   (records stored in this run: {} for {accepted} jobs acknowledged with 202, all within {:.1} s of the first request) |",
                stored - before,
                started.elapsed().as_secs_f64()
            );
            let workers: Vec<String> = run
                .workers
                .iter()
                .map(|&pid| format!("{:.0}", memory_mib(pid, "VmHWM:")))
                .collect();
            println!(
                "|   (async: the queue emptied {seconds:.1} s after the last 202 (or the kill); {stored} records stored in all so far; worker processes' peak RSS MiB: [{}]) |",
                workers.join(", ")
            );
        }
        if let Some(hook) = run.hook {
            delivered(hook, records(run.data), started);
        }
    }
}

fn bombs(url: &str, clients: usize, seconds: u64, server: u32) {
    let bombs = [
        ("png 16-bit RGBA 10000 x 10000", png_bomb(10_000)),
        ("webp lossless 10000 x 10000", webp_bomb(10_000)),
        ("jpeg claiming 10000 x 10000", jpeg_bomb(10_000)),
    ];
    for (name, bytes) in &bombs {
        println!("- {name}: {} bytes", bytes.len());
    }
    let bodies: Vec<String> = bombs.iter().map(|(_, b)| json_body(b)).collect();
    let normal = [json_body(&photo(640, 480, 300, ImageFormat::Png))];
    let (url_bombs, url_normal) = (url.to_owned(), url.to_owned());
    let attack = std::thread::spawn(move || {
        drive(
            &url_bombs,
            &bodies,
            clients,
            seconds,
            Duration::ZERO,
            server,
            false,
            usize::MAX,
        )
    });
    let meanwhile = std::thread::spawn(move || {
        let pause = Duration::from_millis(500);
        drive(
            &url_normal,
            &normal,
            1,
            seconds,
            pause,
            server,
            false,
            usize::MAX,
        )
    });
    let (attack, meanwhile) = (attack.join().unwrap(), meanwhile.join().unwrap());
    println!();
    println!(
        "| clients sending bombs | seconds | bomb answers | normal submissions | normal p50 ms | normal p99 ms | normal max ms | server peak RSS MiB |"
    );
    println!("| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |");
    println!(
        "| {clients} | {seconds} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        statuses_of(&attack),
        statuses_of(&meanwhile),
        percentile(&meanwhile.ms, 0.5),
        percentile(&meanwhile.ms, 0.99),
        meanwhile.ms.last().copied().unwrap_or(0.0),
        memory_mib(server, "VmHWM:")
    );
}
