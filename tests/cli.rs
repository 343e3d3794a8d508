//! The command line, run as a user runs it: the real binary, real files, real environment.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::process::{
    BIN, Server, one_record_each, run, serve, serve_with_env, stderr, stdout, submit_async,
    until_healthy, until_stored,
};
use common::servers::free_port;
use common::{files, png, symbol};
use librarian::jobs::LocalQueue;
use rxing::BarcodeFormat;
use serde_json::{Value, json};

fn check(dir: &Path, file: &str, text: &str, env: &[(&str, &str)]) -> Output {
    std::fs::write(dir.join(file), text).unwrap();
    run(dir, &["config", "check", "--config", file], env)
}

#[test]
fn scan_prints_one_json_line_per_image() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ean.png"),
        png(&symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160)),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("qr.png"),
        png(&symbol(BarcodeFormat::QR_CODE, "hello", 150, 150)),
    )
    .unwrap();
    let output = run(dir.path(), &["scan", "ean.png", "qr.png"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["path"], "ean.png");
    assert_eq!(lines[0]["barcodes"][0]["text"], "5449000000996");
    assert_eq!(lines[0]["barcodes"][0]["format"], "EAN_13");
    assert_eq!(lines[0]["barcodes"][0]["kind"], "product");
    assert!(lines[0]["barcodes"][0]["points"].is_array());
    assert!(lines[0]["ms"].is_number());
    assert_eq!(lines[1]["barcodes"][0]["text"], "hello");
    assert!(
        files(&dir.path().join("data")).is_empty(),
        "scan stores nothing"
    );
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[server]
max_body_bytes = 1000
[actors.disk]
kind = "disk"
dir = "records"
"#;
    let output = check(
        dir.path(),
        "librarian.toml",
        toml,
        &[("LIBRARIAN_SERVER__BIND", "0.0.0.0:9000")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let effective: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(effective["server"]["max_body_bytes"], 1000, "from the file");
    assert_eq!(
        effective["server"]["bind"], "0.0.0.0:9000",
        "the environment wins over the file"
    );
    assert_eq!(effective["actors"]["disk"]["dir"], "records");
    assert_eq!(effective["pipelines"]["default"]["actors"][0], "disk");
}

#[test]
fn yaml_json_dotenv_and_environment_layers() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "server:\n  max_body_bytes: 1234\npipelines:\n  products:\n    actors: [disk]\n";
    let output = check(dir.path(), "c.yaml", yaml, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let effective: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(effective["server"]["max_body_bytes"], 1234);
    assert!(
        effective["pipelines"]["products"].is_object()
            && effective["pipelines"]["default"].is_object()
    );

    std::fs::write(
        dir.path().join(".env"),
        "LIBRARIAN_SERVER__MAX_BODY_BYTES=777\nLIBRARIAN_SERVER__BIND=127.0.0.1:7000\n",
    )
    .unwrap();
    let output = check(
        dir.path(),
        "c.json",
        r#"{"server": {"max_body_bytes": 55}}"#,
        &[("LIBRARIAN_SERVER__BIND", "127.0.0.1:7001")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let effective: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        effective["server"]["max_body_bytes"], 777,
        ".env wins over the file"
    );
    assert_eq!(
        effective["server"]["bind"], "127.0.0.1:7001",
        "the environment wins over .env"
    );
}

#[test]
fn env_only_configuration_builds_named_components() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("LIBRARIAN_PIPELINES__SHELF__ACTORS", "[shelf]"),
        ("LIBRARIAN_PIPELINES__SHELF__VALIDATORS", "[big]"),
        ("LIBRARIAN_ACTORS__SHELF__KIND", "disk"),
        ("LIBRARIAN_ACTORS__SHELF__DIR", "shelf-data"),
        ("LIBRARIAN_VALIDATORS__BIG__KIND", "image"),
        ("LIBRARIAN_VALIDATORS__BIG__MIN_WIDTH", "800"),
    ];
    let output = run(dir.path(), &["config", "check"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let effective: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(effective["pipelines"]["shelf"]["actors"][0], "shelf");
    assert_eq!(effective["validators"]["big"]["min_width"], 800);
    assert_eq!(effective["actors"]["shelf"]["dir"], "shelf-data");
}

#[test]
fn bad_configs_are_refused_with_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"
[validators.x]
kind = "no-such-kind"
"#,
            "no-such-kind",
        ),
        (
            r#"
[validators.x]
kind = "image"
max_widht = 3
"#,
            "max_widht",
        ),
        (
            r#"
[pipelines.default]
actors = ["archive"]
"#,
            "pipelines.default.actors[0]: no actor named `archive`",
        ),
        (
            r#"
[pipelines.default]
validators = ["labels"]
actors = ["disk"]
[validators.labels]
kind = "json-schema"
schema = { type = 12 }
"#,
            "validators.labels: invalid JSON Schema",
        ),
        (
            r#"
[server]
max_body_bytes = "big"
"#,
            "server.max_body_bytes",
        ),
        (
            r#"
[server]
bind = "everywhere"
"#,
            "server.bind",
        ),
        (
            r#"
[server]
body_timeout = 20000
"#,
            "server.body_timeout",
        ),
        (
            r#"
[server]
body_timeout = "soon"
"#,
            "server.body_timeout",
        ),
        (
            r#"
[server]
body_timeout_ms = 20000
"#,
            "body_timeout_ms",
        ),
        (
            r#"
[server]
image_workers = 0
"#,
            "server.image_workers",
        ),
        (
            r#"
[server]
image_time_budget = "0s"
"#,
            "server.image_time_budget",
        ),
        (
            r#"
[rate_limit]
requests_per_minute = 0
"#,
            "rate_limit.requests_per_minute",
        ),
        (
            r#"
[rate_limit]
burst = 0
"#,
            "rate_limit.burst",
        ),
        (
            r#"
[serverr]
bind = "127.0.0.1:1"
"#,
            "serverr",
        ),
        (
            r#"
[validators.labels]
kind = "json-schema"
schema = { type = "object" }
schema_file = "labels.json"
"#,
            "validators.labels: give exactly one of `schema` and `schema_file`",
        ),
        (
            r#"
[validators.labels]
kind = "json-schema"
"#,
            "validators.labels: give exactly one of `schema` and `schema_file`",
        ),
        (
            r#"
[auth.jwt]
algorithm = "RS256"
secret = "a-provider-secret-of-32-bytes-or-more"
"#,
            "auth.jwt: HS256 takes `secret`; RS256 and ES256 take `public_key_file`",
        ),
        (
            r#"
[auth]
mode = "jwt"
"#,
            "auth.jwt: mode \"jwt\" needs `secret` (HS256) or `public_key_file`",
        ),
        (
            r#"
[auth.jwt]
leeway_s = 60
"#,
            "leeway_s",
        ),
        (
            r#"
[pipelines.default]
notify = ["hook"]
"#,
            "pipelines.default.notify[0]: no notifier named `hook`",
        ),
        (
            r#"
[pipelines.default]
notify = ["hook"]
[notifiers.hook]
kind = "webhook"
url = "ftp://example.org/"
"#,
            "notifiers.hook: url: `ftp://example.org/` is not an http:// or https:// URL",
        ),
        (
            r#"
[notifiers."../hook"]
kind = "webhook"
url = "https://example.org/"
"#,
            "notifiers.../hook: a notifier name may hold only letters",
        ),
        (
            r#"
[pipelines.default]
extractors = ["text"]
[extractors.text]
kind = "ocr"
psm = 1
"#,
            "extractors.text: psm must be one of 3..=13, not 1",
        ),
    ];
    // The disk-only build has no email notifier to check the address of.
    #[cfg(feature = "email")]
    let cases = [
        cases.as_slice(),
        &[(
            r#"
[pipelines.default]
notify = ["mail"]
[notifiers.mail]
kind = "email"
host = "smtp.example.org"
from = "not an address"
"#,
            "notifiers.mail: from:",
        )],
    ]
    .concat();
    for (toml, expected) in cases {
        let output = check(dir.path(), "bad.toml", toml, &[]);
        assert!(!output.status.success(), "refused: {toml}");
        let message = stderr(&output);
        assert!(
            message.contains(expected),
            "`{expected}` named in: {message}"
        );
    }
    let missing = run(
        dir.path(),
        &["config", "check", "--config", "nope.toml"],
        &[],
    );
    assert!(stderr(&missing).contains("nope.toml"));
}

/// Every record answered 201 is readable with its photo, so a pipeline whose actors cannot
/// read records or photos back does not start.
#[cfg(all(feature = "mongo", feature = "s3"))]
#[test]
fn a_pipeline_that_cannot_read_back_what_it_stores_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s3_without_records = r#"
[actors.archive]
kind = "s3"
bucket = "photos"
record_json = false
"#;
    let mongo_without_photos = r#"
[actors.catalog]
kind = "mongo"
uri = "mongodb://127.0.0.1:1/"
"#;
    let pipeline = |actors: &str| {
        format!(
            r#"
[pipelines.default]
actors = {actors}
"#
        )
    };
    for (toml, expected) in [
        (
            pipeline(r#"["archive"]"#) + s3_without_records,
            "no actor of this pipeline reads records back",
        ),
        (
            pipeline(r#"["catalog"]"#) + mongo_without_photos,
            "no actor of this pipeline keeps the photos",
        ),
    ] {
        let output = check(dir.path(), "unreadable.toml", &toml, &[]);
        assert!(!output.status.success(), "refused: {toml}");
        let said = stderr(&output);
        assert!(
            said.contains(&format!("pipelines.default.actors: {expected}")),
            "{said}"
        );
    }
    let together =
        pipeline(r#"["catalog", "archive"]"#) + mongo_without_photos + s3_without_records;
    let output = check(dir.path(), "together.toml", &together, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// Only a build with the cargo feature `ocr` reads text; others refuse a config that asks for
/// it at start, saying how to get a build that has it.
#[cfg(not(feature = "ocr"))]
#[test]
fn a_build_without_ocr_refuses_an_ocr_extractor_and_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[pipelines.default]
extractors = ["text"]
[extractors.text]
kind = "ocr"
"#;
    let output = check(dir.path(), "ocr.toml", toml, &[]);
    assert!(!output.status.success(), "refused");
    let said = stderr(&output);
    assert!(
        said.contains("extractors.text: this build of librarian has no `ocr` extractor")
            && said.contains("--features ocr"),
        "{said}"
    );
}

/// A build without the default features serves disk only; a config that names a `mongo` or
/// `s3` actor, or an `amqp` or `email` notifier, is refused, saying how to get a build that
/// has it.
#[cfg(not(any(feature = "mongo", feature = "s3", feature = "amqp", feature = "email")))]
#[test]
fn a_disk_only_build_refuses_mongo_and_s3_and_says_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "mongo",
            r#"
[actors.elsewhere]
kind = "mongo"
uri = "mongodb://db/"
image = "gridfs"
"#,
        ),
        (
            "s3",
            r#"
[actors.elsewhere]
kind = "s3"
bucket = "photos"
"#,
        ),
    ];
    for (kind, actor) in cases {
        let toml = format!(
            r#"
[pipelines.default]
actors = ["elsewhere"]
{actor}"#
        );
        let output = check(dir.path(), "lean.toml", &toml, &[]);
        assert!(!output.status.success(), "refused: {toml}");
        let said = stderr(&output);
        assert!(
            said.contains(&format!(
                "actors.elsewhere: this build of librarian has no `{kind}` actor"
            )) && said.contains(&format!("--features {kind}")),
            "{said}"
        );
    }
    let notifiers = [
        ("amqp", "url = \"amqp://rabbit/%2f\""),
        (
            "email",
            "host = \"smtp.example.org\"\nfrom = \"l@example.org\"",
        ),
    ];
    for (kind, settings) in notifiers {
        let toml = format!(
            "[pipelines.default]\nnotify = [\"out\"]\n[notifiers.out]\nkind = \"{kind}\"\n{settings}\n"
        );
        let output = check(dir.path(), "lean.toml", &toml, &[]);
        assert!(!output.status.success(), "refused: {toml}");
        let said = stderr(&output);
        assert!(
            said.contains(&format!(
                "notifiers.out: this build of librarian has no `{kind}` notifier"
            )) && said.contains(&format!("--features {kind}")),
            "{said}"
        );
    }
}

#[test]
fn a_file_with_many_mistakes_is_answered_with_all_of_them_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[server]
max_body_bytes = "big"
[auth.jwt]
secret = 918273645
[validators.photo]
kind = "image"
max_widht = 3
[validators.codes]
kind = "barcode"
formats = ["EAN13"]
[actors.disk]
kind = "disk"
dirr = "x"
[pipelines.products]
actors = ["disk"]
auht = "tokens"
"#;
    let output = check(dir.path(), "bad.toml", toml, &[]);
    assert!(!output.status.success());
    let said = stderr(&output);
    for key in [
        "server.max_body_bytes",
        "auth.jwt.secret",
        "validators.photo",
        "validators.codes",
        "actors.disk",
        "pipelines.products",
    ] {
        assert!(
            said.lines().any(|l| l.starts_with(key)),
            "`{key}` named as written, at once: {said}"
        );
    }
    assert!(
        !said.contains("default."),
        "no figment profile in key names: {said}"
    );
    assert!(
        !said.contains("918273645"),
        "a secret is never echoed: {said}"
    );
}

#[test]
fn a_secret_from_the_environment_is_any_string() {
    let dir = tempfile::tempdir().unwrap();
    // Digits with leading zeros: a number to figment, a string to the provider that signed.
    let secret = "0012345678901234567890123456789012345678";
    let env = [
        ("LIBRARIAN_AUTH__MODE", "jwt"),
        ("LIBRARIAN_AUTH__JWT__SECRET", secret),
    ];
    let (_server, address) = serve_with_env(dir.path(), &[], &env);
    std::fs::write(
        dir.path().join("photo.png"),
        png(&symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160)),
    )
    .unwrap();
    let exp = chrono::Utc::now().timestamp() + 600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "env", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let url = format!("http://{address}");
    let submit = ["submit", "photo.png", "--url", &url, "--token", &token];
    let sent = run(dir.path(), &submit, &[]);
    assert!(
        sent.status.success(),
        "the secret is the text given: {}",
        stdout(&sent)
    );
}

#[test]
fn describe_prints_every_kind_with_options_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["describe"], &[]);
    assert!(output.status.success());
    let text = stdout(&output);
    for kind in ["json-schema", "image", "barcode", "label-matches", "disk"] {
        assert!(
            text.contains(&format!("kind = \"{kind}\"")),
            "{kind} described"
        );
    }
    assert!(
        text.contains("detect_max_side: integer, default 800"),
        "{text}"
    );
    assert!(text.contains("dir: path, default \"data\""), "{text}");
    assert!(
        text.contains("operation_timeout: duration, default \"30s\""),
        "{text}"
    );
    assert!(
        text.contains("A relative path is read from the config file's folder"),
        "the rule for paths is stated: {text}"
    );
    assert!(text.contains("[queue]\n\n  kind = \"local\""), "{text}");
    assert!(text.contains("max_queued: integer, default 1000"), "{text}");
    for kind in ["webhook", "amqp", "email"] {
        assert!(
            text.contains(&format!("kind = \"{kind}\"")),
            "{kind} described"
        );
    }
    assert!(text.contains("[notifiers.<name>]"), "{text}");
    assert!(text.contains("[outbox]\n  Where events wait"), "{text}");
    assert!(text.contains("max_attempts: integer, default 10"), "{text}");
    let actors = stdout(&run(dir.path(), &["describe", "actors"], &[]));
    assert!(actors.contains("[actors.<name>]") && !actors.contains("json-schema"));
}

#[test]
fn serve_with_no_config_then_submit_from_the_cli_lands_in_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, address) = serve(dir.path(), &[]);
    let url = format!("http://{address}");
    std::fs::write(
        dir.path().join("photo.png"),
        png(&symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160)),
    )
    .unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let args = [
        "submit",
        "photo.png",
        "--labels",
        "{\"class\": 1}",
        "--url",
        &url,
        "--id",
        &id,
    ];
    let output = run(dir.path(), &args, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let record: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(record["barcodes"][0]["text"], "5449000000996");
    let names: Vec<String> = files(&dir.path().join("data"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into())
        .collect();
    assert_eq!(names, [format!("{id}.json"), format!("{id}.png")]);
    let healthy = run(
        dir.path(),
        &["health", "--url", &format!("{url}/healthz")],
        &[],
    );
    assert!(healthy.status.success(), "{}", stderr(&healthy));
    let again = run(dir.path(), &args, &[]);
    assert!(
        again.status.success(),
        "a repeated submit is answered with the stored record"
    );
    let refused = run(
        dir.path(),
        &["submit", "photo.png", "--labels", "[1]", "--url", &url],
        &[],
    );
    assert!(!refused.status.success());
    let nobody = format!("http://127.0.0.1:{}/healthz", free_port());
    assert!(
        !run(dir.path(), &["health", "--url", &nobody], &[])
            .status
            .success()
    );
}

#[test]
fn submit_sends_a_token_from_its_flag_or_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("librarian.toml"),
        r#"
[auth]
mode = "tokens"
"#,
    )
    .unwrap();
    let created = run(dir.path(), &["token", "create", "--name", "cli"], &[]);
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    let (_server, address) = serve(dir.path(), &[]);
    let url = format!("http://{address}");
    std::fs::write(
        dir.path().join("photo.png"),
        png(&symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160)),
    )
    .unwrap();
    let submit = ["submit", "photo.png", "--url", &url];
    let refused = run(dir.path(), &submit, &[]);
    assert!(!refused.status.success());
    assert!(
        stdout(&refused).contains("auth.required"),
        "{}",
        stdout(&refused)
    );
    let with_flag = [&submit[..], &["--token", &token]].concat();
    let flagged = run(dir.path(), &with_flag, &[]);
    assert!(flagged.status.success(), "{}", stdout(&flagged));
    let from_env = run(dir.path(), &submit, &[("SUBMIT_LIBRARIAN_TOKEN", &token)]);
    assert!(from_env.status.success(), "{}", stdout(&from_env));
    let checked = run(
        dir.path(),
        &["config", "check"],
        &[("SUBMIT_LIBRARIAN_TOKEN", &token)],
    );
    assert!(
        checked.status.success(),
        "the client's variable is no config key: {}",
        stderr(&checked)
    );
}

#[cfg(feature = "mongo")]
#[test]
fn a_store_that_does_not_answer_at_start_is_no_configuration_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let toml = format!(
        r#"
[pipelines.default]
actors = ["catalog"]
[actors.catalog]
kind = "mongo"
uri = "mongodb://127.0.0.1:{port}/"
image = "gridfs"
server_selection_timeout = "300ms"
connect_timeout = "300ms"
"#
    );
    std::fs::write(dir.path().join("librarian.toml"), toml).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let output = run(dir.path(), &["serve", "--bind", &address], &[]);
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(said.contains("cannot start"), "{said}");
    assert!(
        said.contains("actors.catalog: could not connect to MongoDB"),
        "{said}"
    );
    assert!(!said.contains("invalid configuration"), "{said}");
    let checked = run(dir.path(), &["config", "check"], &[]);
    assert!(
        checked.status.success(),
        "the file itself is valid: {}",
        stderr(&checked)
    );
}

#[test]
fn an_unknown_barcode_format_is_refused_by_config_check_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    for (section, kind) in [("validators", "barcode"), ("extractors", "barcode")] {
        let text = format!(
            r#"
[{section}.codes]
kind = "{kind}"
formats = ["EAN13"]
[pipelines.default]
validators = ["photo"]
actors = ["disk"]
"#
        );
        let text = text.replace(
            "validators = [\"photo\"]",
            if section == "validators" {
                "validators = [\"codes\"]"
            } else {
                "extractors = [\"codes\"]"
            },
        );
        let output = check(dir.path(), "librarian.toml", &text, &[]);
        assert!(!output.status.success(), "{section}: EAN13 accepted");
        let said = stderr(&output);
        assert!(said.contains("EAN13") && said.contains("EAN_13"), "{said}");
    }
    let fine = r#"
[validators.codes]
kind = "barcode"
formats = ["EAN_13"]
"#;
    let output = check(dir.path(), "librarian.toml", fine, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_json_object_in_an_environment_variable_is_read_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let schema =
        r#"{"type": "object", "required": ["gtin"], "properties": {"gtin": {"type": "string"}}}"#;
    let output = run(
        dir.path(),
        &["config", "check"],
        &[
            ("LIBRARIAN_VALIDATORS__LABELS__KIND", "json-schema"),
            ("LIBRARIAN_VALIDATORS__LABELS__SCHEMA", schema),
            (
                "LIBRARIAN_PIPELINES__DEFAULT__VALIDATORS",
                "[\"labels\", \"photo\"]",
            ),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let config: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        config["validators"]["labels"]["schema"],
        serde_json::from_str::<Value>(schema).unwrap()
    );
    assert_eq!(
        config["pipelines"]["default"]["validators"],
        json!(["labels", "photo"])
    );
}

#[test]
fn one_environment_variable_adjusts_a_built_in_component() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        dir.path(),
        &["config", "check"],
        &[("LIBRARIAN_ACTORS__DISK__DIR", "/srv/records")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let effective: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        effective["actors"]["disk"],
        serde_json::json!({"kind": "disk", "dir": "/srv/records"})
    );
}

/// Relative paths in a config file are read from its folder, wherever the server is started;
/// a `--data-dir` on the command line is the shell's, from the working directory.
#[test]
fn relative_paths_in_a_config_file_are_read_from_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("etc");
    std::fs::create_dir(&folder).unwrap();
    let file = folder.join("librarian.toml");
    let toml = r#"
[server]
orphans_file = "orphans.jsonl"
[actors.disk]
dir = "records"
"#;
    std::fs::write(&file, toml).unwrap();
    let output = run(
        dir.path(),
        &["config", "check", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let effective: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let at = |key: &str| folder.join(key).to_str().unwrap().to_owned();
    assert_eq!(effective["actors"]["disk"]["dir"], at("records"));
    assert_eq!(effective["server"]["orphans_file"], at("orphans.jsonl"));
}

#[test]
fn the_example_configs_are_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let dir = tempfile::tempdir().unwrap();
    let check_example = |file: &str| {
        let example = examples.join(file);
        let args = ["config", "check", "--config", example.to_str().unwrap()];
        run(dir.path(), &args, &[])
    };
    for file in ["local.toml", "multi-pipeline.toml"] {
        let output = check_example(file);
        assert!(output.status.success(), "{file}: {}", stderr(&output));
    }
    // The production example stores in MongoDB and S3: valid where the build has them, and
    // refused with how to get them where it does not.
    let output = check_example("production.toml");
    let full_build = cfg!(all(feature = "mongo", feature = "s3"));
    assert_eq!(output.status.success(), full_build, "{}", stderr(&output));
    if !full_build {
        assert!(stderr(&output).contains("this build of librarian has no"));
    }
    let env_file = std::fs::read_to_string(examples.join("env-only.env")).unwrap();
    let env: Vec<(&str, &str)> = env_file
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_once('=').unwrap())
        .map(|(k, v)| {
            if k == "LIBRARIAN_ACTORS__SHELF__DIR" {
                (k, "shelf")
            } else {
                (k, v)
            }
        })
        .collect();
    let output = run(dir.path(), &["config", "check"], &env);
    assert!(output.status.success(), "env-only.env: {}", stderr(&output));
    let effective: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        effective["server"]["cors_origins"][0],
        "https://labels.example.org"
    );
    assert_eq!(effective["validators"]["has_code"]["formats"][1], "UPC_A");
}

/// Sends a GET for `path` on an open keep-alive connection and reads one answer: its head
/// (returned, lowercased) and its body.
fn get_on(stream: &mut std::net::TcpStream, address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let request = format!("GET {path} HTTP/1.1\r\nhost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head
}

#[test]
fn sigterm_lets_a_submission_in_flight_finish_then_exits_0() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .args(["serve", "--bind", &address, "-q"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server starts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut kept_alive = std::net::TcpStream::connect(&address).unwrap();
    assert!(get_on(&mut kept_alive, &address, "/healthz").starts_with("http/1.1 200"));
    let image = png(&symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160));
    let id = uuid::Uuid::new_v4();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let head = format!(
        "PUT /api/v1/submissions/{id} HTTP/1.1\r\nhost: {address}\r\ncontent-type: image/png\r\ncontent-length: {}\r\n\r\n",
        image.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let half = image.len() / 2;
    stream.write_all(&image[..half]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running while a submission is in flight"
    );
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "a new connection is refused at once"
    );
    let answer = get_on(&mut kept_alive, &address, "/healthz");
    assert!(
        answer.starts_with("http/1.1 200") && answer.contains("connection: close"),
        "a request on an open connection is answered, and the client asked to close: {answer}"
    );
    stream.write_all(&image[half..]).unwrap();
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the submission in flight completes: {}",
        answer.lines().next().unwrap_or("")
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the server exits after its last submission"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(dir.path().join("data").join(format!("{id}.json")).exists());
}

#[test]
fn token_commands_create_list_rotate_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let empty = run(dir.path(), &["token", "list"], &[]);
    assert!(empty.status.success());
    assert!(stderr(&empty).contains("no tokens"), "{}", stderr(&empty));
    let unchecked = run(dir.path(), &["token", "create", "--name", "early"], &[]);
    assert!(unchecked.status.success());
    assert!(
        stderr(&unchecked).contains("no pipeline of this configuration checks tokens"),
        "{}",
        stderr(&unchecked)
    );
    let nope = run(
        dir.path(),
        &["token", "create", "--name", "x", "--pipelines", "nope"],
        &[],
    );
    assert!(!nope.status.success());
    assert!(
        stderr(&nope).contains("no pipeline named `nope`"),
        "{}",
        stderr(&nope)
    );
    std::fs::write(
        dir.path().join("librarian.toml"),
        r#"
[auth]
mode = "tokens"
[pipelines.a]
actors = ["disk"]
[pipelines.b]
actors = ["disk"]
"#,
    )
    .unwrap();
    let created = run(
        dir.path(),
        &[
            "token",
            "create",
            "--name",
            "field-team",
            "--expires",
            "30d",
            "--pipelines",
            "a,b",
        ],
        &[],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let secret = stdout(&created).trim().to_owned();
    assert!(secret.starts_with("lib_"), "{secret}");
    let listed = stdout(&run(dir.path(), &["token", "list"], &[]));
    let entry: Value = serde_json::from_str(listed.lines().nth(1).unwrap()).unwrap();
    assert_eq!(entry["name"], "field-team");
    assert_eq!(entry["pipelines"], serde_json::json!(["a", "b"]));
    assert!(entry["expires_at"].is_string());
    assert!(
        !listed.contains(&secret[secret.len() - 20..]),
        "no secret is listed"
    );
    let rotated = run(
        dir.path(),
        &["token", "rotate", "field-team", "--grace", "10m"],
        &[],
    );
    assert!(rotated.status.success() && stdout(&rotated).trim() != secret);
    assert!(
        run(dir.path(), &["token", "revoke", "field-team"], &[])
            .status
            .success()
    );
    let revoked: Value = serde_json::from_str(
        stdout(&run(dir.path(), &["token", "list"], &[]))
            .lines()
            .nth(1)
            .unwrap(),
    )
    .unwrap();
    assert!(revoked["revoked_at"].is_string());
    assert!(
        !run(dir.path(), &["token", "revoke", "nobody"], &[])
            .status
            .success()
    );
}

#[test]
fn an_upload_refused_before_its_end_is_read_through_so_the_client_gets_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("limited.toml"),
        r#"
[rate_limit]
requests_per_minute = 1
burst = 1
"#,
    )
    .unwrap();
    let (_server, address) = serve(dir.path(), &["--config", "limited.toml"]);
    // The first upload uses the client's one request a minute; the second is refused at once,
    // while 8 MB of it are still to come, as from a phone on a slow network.
    let upload = |body: &[u8]| -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address)?;
        write!(
            stream,
            "POST /api/v1/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )?;
        for chunk in body.chunks(64 * 1024) {
            stream.write_all(chunk)?;
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut answer = vec![0; 4096];
        let read = stream.read(&mut answer)?;
        Ok(String::from_utf8_lossy(&answer[..read]).into_owned())
    };
    let photo = png(&symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160));
    let first = upload(&photo).unwrap();
    assert!(first.starts_with("HTTP/1.1 201"), "{first}");
    let big = vec![7u8; 8 << 20];
    let refused = upload(&big).expect("the whole body is sent and the answer read");
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after"),
        "{refused}"
    );
}

#[test]
fn a_dotenv_is_read_from_the_working_directory_only() {
    let dir = tempfile::tempdir().unwrap();
    let child = dir.path().join("child");
    std::fs::create_dir(&child).unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "LIBRARIAN_SERVER__MAX_BODY_BYTES=1234\n",
    )
    .unwrap();
    let effective = |at: &Path| -> Value {
        let output = run(at, &["config", "check"], &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_str(&stdout(&output)).unwrap()
    };
    assert_eq!(effective(dir.path())["server"]["max_body_bytes"], 1234);
    assert_eq!(
        effective(&child)["server"]["max_body_bytes"],
        26_214_400,
        "the parent folder's .env is not read"
    );
}

#[test]
fn the_server_logs_to_stderr_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let out = std::fs::File::create(dir.path().join("out")).unwrap();
    let err = std::fs::File::create(dir.path().join("err")).unwrap();
    let child = Command::new(BIN)
        .current_dir(dir.path())
        .args(["serve", "--bind", &address])
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let server = Server(child);
    until_healthy(&address);
    drop(server);
    let logged = std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert!(logged.contains("Librarian is serving"), "{logged}");
    assert!(
        logged.contains("/healthz"),
        "the request is logged: {logged}"
    );
    assert!(
        !logged.contains('\u{1b}'),
        "no escape codes in a file: {logged:?}"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("out")).unwrap(), "");
}

/// A server in `dir` with one queue worker, and a large noisy photo to send it: one worker
/// cannot keep up with a few of them sent at once.
fn serve_one_worker(dir: &Path) -> (Server, String) {
    let config = "[auth]\nread = \"public\"\n[queue]\nkind = \"local\"\nworkers = 1\n";
    std::fs::write(dir.join("librarian.toml"), config).unwrap();
    let code = symbol(BarcodeFormat::EAN_13, "5449000000996", 380, 160);
    let photo = common::noisy(&common::on_canvas(&code, 2400, 1800, 900, 800), 40);
    std::fs::write(dir.join("photo.png"), png(&photo)).unwrap();
    serve(dir, &[])
}

/// Sends `count` jobs at once with `submit --async`; returns their ids.
fn send_jobs(dir: &Path, address: &str, count: usize) -> Vec<String> {
    let url = format!("http://{address}");
    let ids: Vec<String> = (0..count)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    std::thread::scope(|threads| {
        for (n, id) in ids.iter().enumerate() {
            let url = &url;
            threads.spawn(move || submit_async(dir, url, id, n));
        }
    });
    ids
}

/// Restarts the server in `dir` and asserts that every job ends stored, with one record each.
fn restarted_stores_each_once(dir: &Path, ids: &[String]) {
    let (_server, address) = serve(dir, &[]);
    until_stored(&address, ids);
    one_record_each(&dir.join("data"), ids);
}

#[test]
fn jobs_acknowledged_before_a_kill_9_are_stored_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = serve_one_worker(dir.path());
    let ids = send_jobs(dir.path(), &address, 6);
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    restarted_stores_each_once(dir.path(), &ids);
}

#[test]
fn sigterm_lets_the_worker_finish_its_job_and_leaves_the_others_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = serve_one_worker(dir.path());
    let ids = send_jobs(dir.path(), &address, 6);
    let term = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server exits once its worker is done"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let queue = LocalQueue::open(&dir.path().join("queue.redb")).unwrap();
    assert_eq!(queue.requeue_running().unwrap(), 0, "no job was cut short");
    drop(queue);
    restarted_stores_each_once(dir.path(), &ids);
}
