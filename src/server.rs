//! Starting and stopping the gateway: bind, serve, and on shutdown stop accepting, drain in-flight
//! requests (streams included) within the grace period, then wait for background work.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::http::{self, AppState, Shared};
use crate::store::Store;
use crate::store::log::RequestLog;
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Gateway(#[from] crate::gateway::GatewayError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on `{addr}`: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// A running gateway.
pub struct Server {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    draining: Arc<AtomicBool>,
    tasks: TaskTracker,
    grace: Duration,
    request_log: Option<RequestLog>,
}

impl Server {
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::new());
        let store = Arc::new(Store::open(&config.store)?);
        let request_log = config
            .request_log
            .enabled
            .then(|| RequestLog::start(&config.store, &config.request_log, metrics.request_log.clone()))
            .transpose()?;
        let gateway = Arc::new(Gateway::new(config, metrics.clone(), Some(store.clone()))?);
        let draining = Arc::new(AtomicBool::new(false));
        let state = AppState::new(Shared {
            gateway,
            metrics,
            store,
            request_log: request_log.clone(),
            master_key: config.auth.master_key.as_ref().and_then(|k| k.expose()).map(Arc::from),
            max_body_bytes: config.server.max_body_bytes,
            keep_alive: Duration::from_secs(config.server.sse_keep_alive_secs.max(1)),
            draining: draining.clone(),
        });
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let backlog = config.server.backlog;
        let addr = serve(config.server.listen, backlog, http::app(state.clone()), &shutdown, &tasks).await?;
        let metrics_addr = match config.metrics.listen {
            Some(listen) => Some(serve(listen, backlog, http::metrics_app(state), &shutdown, &tasks).await?),
            None => None,
        };
        tracing::info!(%addr, ?metrics_addr, "cherrypick is listening");
        Ok(Self {
            addr,
            metrics_addr,
            shutdown,
            draining,
            tasks,
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            request_log,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops accepting, lets in-flight requests finish (up to the grace period), then returns.
    pub async fn shutdown(self) {
        self.draining.store(true, Ordering::Relaxed);
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(self.grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(grace = ?self.grace, "shutdown grace period over: dropping requests still in flight");
        } else {
            tracing::info!("shut down cleanly");
        }
        // Every answered request's row reaches the database (or the spool) before the process ends.
        if let Some(log) = &self.request_log {
            log.flush().await;
        }
    }
}

/// A listener with room for `backlog` connections waiting to be accepted: tokio's own `bind` asks for
/// 128, and a burst of new connections beyond that is dropped by the kernel and retried by clients
/// only after a second or more (measured: 10,000 connections at once lost 14% of them).
fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

async fn serve(
    addr: SocketAddr,
    backlog: u32,
    app: axum::Router,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<SocketAddr, StartError> {
    let listener = bind(addr, backlog).map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
    // Small SSE frames must leave at once: without TCP_NODELAY, Nagle's algorithm and delayed ACKs
    // hold a chunk back for up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = shutdown.clone();
    // Tracked by `tasks`, which shutdown waits on; the handle itself is not needed.
    drop(tasks.spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        if let Err(error) = served {
            tracing::error!(%error, "server stopped with an error");
        }
    }));
    Ok(bound)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
