//! A webhook receiver on a loopback port: it keeps every request and answers each with the
//! status the test sets, on a runtime of its own so that the tests may block.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use salvo::conn::TcpListener;
use salvo::prelude::*;
use salvo::server::ServerHandle;

/// One request as it arrived, and the status it was answered with.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    /// How long each answer takes (a slow receiver).
    delay: Duration,
}

#[salvo::async_trait]
impl Handler for Recorder {
    async fn handle(
        &self,
        req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = req.payload().await.map(|b| b.to_vec()).unwrap_or_default();
        tokio::time::sleep(self.delay).await;
        let answered = self.status.load(Ordering::SeqCst);
        self.received.lock().unwrap().push(Received {
            headers,
            body,
            answered,
        });
        res.status_code(StatusCode::from_u16(answered).unwrap());
    }
}

pub struct Receiver {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    handle: ServerHandle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    /// Listens on `port` (see `servers::free_port`), answering every request with `status`.
    pub fn start(port: u16, status: u16) -> Self {
        Self::start_slow(port, status, Duration::ZERO)
    }

    /// [`Receiver::start`], each answer taking `delay`.
    pub fn start_slow(port: u16, status: u16, delay: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let recorder = Recorder {
            received: received.clone(),
            status: status.clone(),
            delay,
        };
        let handle = runtime.block_on(async {
            let acceptor = TcpListener::new(("127.0.0.1", port)).bind().await;
            let server = Server::new(acceptor);
            let handle = server.handle();
            tokio::spawn(server.serve(Router::with_path("{**rest}").goal(recorder)));
            handle
        });
        Self {
            port,
            received,
            status,
            handle,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Answers the requests from now on with `status`.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (at most 60 s) until `count` requests arrived; returns them all.
    pub fn until(&self, count: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{count} requests within 60 s; received {}",
                received.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.handle.stop_forceful();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
