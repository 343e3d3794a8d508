//! Real servers for the storage tests, started on free loopback ports and stopped on drop:
//! a MongoDB wire-protocol server (secantusdb) and an S3 server (s3s-fs). `scripts/test`
//! installs both and names them in TEST_MONGO_SERVER and TEST_S3_SERVER.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

pub const S3_KEY: &str = "librarian-test-key";
pub const S3_SECRET: &str = "librarian-test-secret";
pub const BUCKET: &str = "submissions";

fn tool(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).unwrap_or_else(|| {
        panic!("{variable} is not set: run scripts/test, which installs the test servers")
    });
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "{variable}={} does not exist: run scripts/test",
        path.display()
    );
    path
}

/// A port no other test of this process was given, below the kernel's ephemeral range
/// (32768 and up on Linux). A port the kernel picked (`bind(0)`) was given out again to the
/// next caller once closed, so two servers of parallel tests could share it; and a client's
/// own outgoing port can then be the one polled, where a connection to oneself succeeds.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Each test binary starts at its own place, so test programs run side by side
    // (the browser tests, a second checkout) rarely try the same ports.
    let start = FIRST + (std::process::id() % u32::from(SPAN / 4)) as u16 * 4;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        let port = FIRST + (start - FIRST + offset) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether something other than this process's own socket listens on `port`.
fn listens(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port))
        .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok())
}

fn wait_for(port: u16, what: &str, child: &mut Child) {
    let started = Instant::now();
    while !listens(port) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start with {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server process that can be stopped and started again on the same port.
pub struct Server {
    name: &'static str,
    command: Box<dyn Fn() -> Command + Send>,
    child: Option<Child>,
    pub port: u16,
    /// The server's own files, if it keeps any, removed after it.
    files: Option<tempfile::TempDir>,
}

impl Server {
    fn launch(name: &'static str, port: u16, command: Box<dyn Fn() -> Command + Send>) -> Self {
        let mut server = Self {
            name,
            command,
            child: None,
            port,
            files: None,
        };
        server.start();
        server
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.name);
        // A group of its own, so that stopping it stops what it started (RabbitMQ runs
        // Erlang under a shell script, under `runuser`).
        let mut child = (self.command)()
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        wait_for(self.port, self.name, &mut child);
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
        }
        let started = Instant::now();
        while listens(self.port) && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        drop(self.files.take());
    }
}

/// secantusdb on a free port, in memory.
pub fn mongo() -> Server {
    let binary = tool("TEST_MONGO_SERVER");
    let port = free_port();
    Server::launch(
        "MongoDB (secantusdb)",
        port,
        Box::new(move || {
            let mut command = Command::new(&binary);
            command.args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--storage-path",
                ":memory:",
                "--cache-size",
                "256M",
            ]);
            command
        }),
    )
}

/// RabbitMQ (Debian's `rabbitmq-server`) on a free port, run in the foreground with every
/// file of its node in a fresh folder; as root, under the `rabbitmq` user, which owns it.
pub fn rabbitmq() -> Server {
    let script = tool("TEST_RABBITMQ_SERVER");
    let port = free_port();
    let dist_port = free_port();
    let files = tempfile::Builder::new()
        .prefix("librarian-rabbitmq-")
        .tempdir()
        .unwrap();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        let owned = Command::new("chown")
            .args(["rabbitmq:rabbitmq"])
            .arg(files.path())
            .status()
            .unwrap();
        assert!(owned.success(), "the rabbitmq user owns the node's folder");
    }
    let home = files.path().to_path_buf();
    let mut server = Server::launch(
        "RabbitMQ",
        port,
        Box::new(move || {
            let mut command = match root {
                true => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", "rabbitmq", "--", "env"]);
                    c
                }
                false => Command::new("env"),
            };
            let path = |name: &str| home.join(name).display().to_string();
            command.args([
                format!("HOME={}", path("")),
                format!("RABBITMQ_MNESIA_BASE={}", path("mnesia")),
                format!("RABBITMQ_LOG_BASE={}", path("log")),
                format!("RABBITMQ_NODENAME=librarian-{port}@localhost"),
                "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1".into(),
                format!("RABBITMQ_NODE_PORT={port}"),
                format!("RABBITMQ_DIST_PORT={dist_port}"),
                format!("RABBITMQ_ENABLED_PLUGINS_FILE={}", path("enabled_plugins")),
                format!("RABBITMQ_CONFIG_FILE={}", path("rabbitmq")),
                format!("RABBITMQ_ADVANCED_CONFIG_FILE={}", path("advanced.config")),
                format!("RABBITMQ_PID_FILE={}", path("pid")),
            ]);
            command.arg(&script);
            command
        }),
    );
    server.files = Some(files);
    server
}

/// An SMTP server (PyPI aiosmtpd) on a free port that keeps every message it is sent in the
/// Maildir `mail` (one file per message under `mail/new`).
pub fn smtp(mail: &std::path::Path) -> Server {
    let binary = tool("TEST_SMTP_SERVER");
    let port = free_port();
    let mail = mail.to_path_buf();
    Server::launch(
        "SMTP (aiosmtpd)",
        port,
        Box::new(move || {
            let mut command = Command::new(&binary);
            command
                .args(["-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&mail);
            command
        }),
    )
}

pub fn amqp_url(server: &Server) -> String {
    format!("amqp://guest:guest@127.0.0.1:{}/%2f", server.port)
}

pub fn mongo_uri(server: &Server) -> String {
    format!("mongodb://127.0.0.1:{}/?directConnection=true", server.port)
}

/// s3s-fs on a free port, with the bucket `submissions` in a fresh folder.
pub fn s3(data: &std::path::Path) -> Server {
    let binary = tool("TEST_S3_SERVER");
    std::fs::create_dir_all(data.join(BUCKET)).unwrap();
    let port = free_port();
    let data = data.to_path_buf();
    Server::launch(
        "S3 (s3s-fs)",
        port,
        Box::new(move || {
            let mut command = Command::new(&binary);
            command.args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                S3_KEY,
                "--secret-key",
                S3_SECRET,
            ]);
            command.arg(&data);
            command
        }),
    )
}

pub fn s3_endpoint(server: &Server) -> String {
    format!("http://127.0.0.1:{}", server.port)
}

/// An SDK client for the test's own checks of what landed in S3.
pub fn s3_client(server: &Server) -> aws_sdk_s3::Client {
    let credentials = aws_sdk_s3::config::Credentials::new(S3_KEY, S3_SECRET, None, None, "test");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(s3_endpoint(server))
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// TOML for a mongo actor and an s3 actor against these servers.
pub fn actors_toml(mongo: &Server, s3: &Server, image: &str) -> String {
    format!(
        r#"
[actors.catalog]
kind = "mongo"
uri = "{}"
database = "librarian"
collection = "submissions"
image = "{image}"
server_selection_timeout = "1500ms"
connect_timeout = "1500ms"
operation_timeout = "10s"

[actors.archive]
kind = "s3"
bucket = "{BUCKET}"
prefix = "images/"
endpoint = "{}"
path_style = true
access_key_id = "{S3_KEY}"
secret_access_key = "{S3_SECRET}"
connect_timeout = "1500ms"
operation_timeout = "10s"
"#,
        mongo_uri(mongo),
        s3_endpoint(s3)
    )
}

/// A TLS front on a free loopback port for a plain server at `target`: its certificate names
/// `localhost` and is signed by a CA made for this test, whose PEM is `ca_pem`. It relays
/// while the runtime that started it runs.
pub struct TlsFront {
    pub port: u16,
    pub ca_pem: String,
}

pub async fn tls_front(target: u16) -> TlsFront {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};

    let mut authority = CertificateParams::new(Vec::<String>::new()).unwrap();
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(authority, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::from(key))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends its own connection: nothing to relay.
                let Ok(mut client) = acceptor.accept(client).await else {
                    return;
                };
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", target))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    TlsFront {
        port,
        ca_pem: ca.pem(),
    }
}
