//! The submission input path over HTTP, in process: JSON (base64 or data: URL images),
//! multipart forms and raw image bodies, then the image header checks and, for whatever
//! parses as an image, decoding and barcode reading. The first byte picks the content type.
//! Any answer is fine but a server error other than 503 (busy, over budget).

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use librarian::app::App;
use librarian::config::{Config, Overrides};
use salvo::Service;
use salvo::test::TestClient;

struct Harness {
    runtime: tokio::runtime::Runtime,
    service: Service,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        librarian_fuzz::quiet_caught_panics();
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("librarian.toml");
        let toml = format!(
            "[server]\nimage_time_budget = \"10s\"\n[actors.disk]\nkind = \"disk\"\ndir = \"{}\"\n",
            dir.path().join("data").display()
        );
        std::fs::write(&file, toml).expect("config written");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let overrides = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let loaded = Config::load(&overrides).expect("config loads");
        let app = runtime.block_on(App::build(loaded)).expect("app builds");
        Harness {
            service: librarian::http::service(Arc::new(app)),
            runtime,
            _dir: dir,
        }
    })
}

const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "multipart/form-data; boundary=XyZ",
    "image/jpeg",
    "application/x-www-form-urlencoded",
];

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let harness = harness();
    let content_type = CONTENT_TYPES[usize::from(kind) % CONTENT_TYPES.len()];
    let status = harness.runtime.block_on(async {
        TestClient::post("http://127.0.0.1:5800/api/v1/submissions?class=3")
            .add_header("content-type", content_type, true)
            .body(body.to_vec())
            .send(&harness.service)
            .await
            .status_code
    });
    let status = status.expect("every request gets a status").as_u16();
    assert!(
        status < 500 || status == 503,
        "{status} for a {content_type} body of {} bytes",
        body.len()
    );
});
