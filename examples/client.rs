//! A Rust client: submits a photo under a fresh UUID and retries with the same id when the
//! network or the server fails, which the idempotent PUT makes safe.
//!
//! `cargo run --example client -- PHOTO [URL]`

use std::time::Duration;

use base64::Engine;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let photo = args.next().ok_or("usage: client PHOTO [URL]")?;
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let image = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&photo)?);
    let id = uuid::Uuid::new_v4();
    let body = json!({"image": image, "labels": {"source": "example client"}});
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for attempt in 1..=5 {
        match agent
            .put(format!("{url}/api/v1/submissions/{id}"))
            .send_json(&body)
        {
            Ok(mut response) if response.status().is_server_error() => {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(2);
                eprintln!(
                    "attempt {attempt}: {}; retrying in {wait} s",
                    response.status()
                );
                let _ = response.body_mut().read_to_string();
                std::thread::sleep(Duration::from_secs(wait));
            }
            Ok(mut response) => {
                println!(
                    "{} {}",
                    response.status(),
                    response.body_mut().read_to_string()?
                );
                return Ok(());
            }
            Err(error) => {
                eprintln!("attempt {attempt}: {error}; retrying");
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
    Err("gave up after 5 attempts".into())
}
