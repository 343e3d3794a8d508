//! The email notifier against a real SMTP server on loopback (PyPI aiosmtpd, which keeps
//! every message it is sent in a Maildir).

mod common;

use std::time::{Duration, Instant};

use common::process::{run, serve, stderr};
use common::{ean_png, servers};
use serde_json::Value;

/// The message with its quoted-printable body decoded, as a mail client shows it: soft line
/// breaks joined, `=XX` turned into its byte.
fn quoted_printable_decoded(message: &str) -> String {
    let joined = message.replace("=\r\n", "").replace("=\n", "");
    let mut bytes = Vec::new();
    let mut rest = joined.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        let hex = tail
            .get(..2)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (first, hex) {
            (b'=', Some(byte)) => {
                bytes.push(byte);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(first);
                rest = tail;
            }
        }
    }
    String::from_utf8(bytes).unwrap()
}

#[test]
fn an_email_names_the_record_and_also_goes_to_the_address_in_a_label() {
    let mail = tempfile::tempdir().unwrap();
    let maildir = mail.path().join("maildir");
    let smtp = servers::smtp(&maildir);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[pipelines.default]
notify = ["mail"]
[notifiers.mail]
kind = "email"
host = "127.0.0.1"
port = {}
security = "none"
from = "Librarian <librarian@example.org>"
to = ["ops@example.org"]
to_label = "email"
[outbox]
public_url = "https://librarian.example.org/"
"#,
        smtp.port
    );
    std::fs::write(dir.path().join("librarian.toml"), config).unwrap();
    std::fs::write(dir.path().join("photo.png"), ean_png()).unwrap();
    let (_server, address) = serve(dir.path(), &[]);
    let labels = r#"{"email": "contributor@example.org", "gtin": "0012345678905"}"#;
    let url = format!("http://{address}");
    let submitted = run(
        dir.path(),
        &["submit", "photo.png", "--url", &url, "--labels", labels],
        &[],
    );
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let record: Value = serde_json::from_slice(&submitted.stdout).unwrap();
    let id = record["id"].as_str().unwrap();

    let started = Instant::now();
    let message = loop {
        let arrived = std::fs::read_dir(maildir.join("new"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .next();
        if let Some(entry) = arrived {
            break std::fs::read_to_string(entry.path()).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a message within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let message = quoted_printable_decoded(&message);
    let header = |name: &str| {
        message
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("to").contains("ops@example.org"), "{message}");
    assert!(
        header("to").contains("contributor@example.org"),
        "{message}"
    );
    assert!(
        header("from").contains("librarian@example.org"),
        "{message}"
    );
    assert!(header("subject").contains(id), "{message}");
    assert!(message.contains(&format!("Record:   {id}")), "{message}");
    assert!(message.contains(r#"  gtin: "0012345678905""#), "{message}");
    let link = format!("https://librarian.example.org/api/v1/submissions/{id}/image");
    assert!(message.contains(&link), "{message}");
}
