//! Serving until a stop signal, then stopping without dropping anyone: the listening socket is
//! closed at once (new connections are refused, not left waiting in a backlog nobody
//! accepts), requests on open connections are still answered, with `Connection: close`, until
//! none is in flight, and only then are idle connections closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use salvo::conn::tcp::{TcpAcceptor, TcpCoupler};
use salvo::conn::{Accepted, Acceptor, Holding, StraightStream};
use salvo::fuse::ArcFusePolicy;
use salvo::http::header::{CONNECTION, HeaderValue};
use salvo::prelude::*;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

/// How long requests on open connections are still answered after a stop signal when none is
/// in flight: a client that sent one just then gets its answer, not a closed connection.
const LINGER: Duration = Duration::from_millis(500);

/// Whether the server is draining, and how many requests it is answering.
#[derive(Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
}

impl Lifecycle {
    /// Waits until no request is in flight (at least [`LINGER`], at most `grace`).
    async fn drain(&self, grace: Duration) {
        self.draining.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        tokio::time::sleep(LINGER.min(grace)).await;
        while self.active.load(Ordering::SeqCst) > 0 {
            if tokio::time::timeout_at(deadline, self.idle.notified())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Counts requests in flight; while draining, asks each client to close its connection.
pub struct Track(pub Arc<Lifecycle>);

#[async_trait]
impl Handler for Track {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        self.0.active.fetch_add(1, Ordering::SeqCst);
        ctrl.call_next(req, depot, res).await;
        if self.0.draining.load(Ordering::SeqCst) {
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A TCP acceptor whose listening socket is dropped when `closed` turns true.
struct ClosableAcceptor {
    inner: Option<TcpAcceptor>,
    holdings: Vec<Holding>,
    closed: watch::Receiver<bool>,
}

impl Acceptor for ClosableAcceptor {
    type Coupler = TcpCoupler<StraightStream<TcpStream>>;
    type Stream = StraightStream<TcpStream>;

    fn holdings(&self) -> &[Holding] {
        &self.holdings
    }

    async fn accept(
        &mut self,
        fuse_policy: Option<ArcFusePolicy>,
    ) -> std::io::Result<Accepted<Self::Coupler, Self::Stream>> {
        if let Some(inner) = self.inner.as_mut() {
            tokio::select! {
                accepted = inner.accept(fuse_policy) => return accepted,
                _ = self.closed.wait_for(|closed| *closed) => {}
            }
        }
        self.inner = None;
        std::future::pending().await
    }
}

/// Serves `service` on `acceptor` until `stop` resolves, then stops as described above,
/// giving requests in flight at most `grace`.
pub async fn serve_until(
    acceptor: TcpAcceptor,
    service: Service,
    lifecycle: Arc<Lifecycle>,
    grace: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let (close, closed) = watch::channel(false);
    let acceptor = ClosableAcceptor {
        holdings: acceptor.holdings().to_vec(),
        inner: Some(acceptor),
        closed,
    };
    let server = Server::new(acceptor);
    let handle = server.handle();
    tokio::spawn(async move {
        stop.await;
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            "stopping: new connections refused, requests in flight finishing"
        );
        let _ = close.send(true);
        lifecycle.drain(grace).await;
        handle.stop_graceful(LINGER);
    });
    server.serve(service).await;
}
