//! The HTTP server, on an accept loop of our own so that every connection is bounded: at most
//! `http.max_connections` at once and `http.max_connections_per_address` from one address
//! (the rest are closed at once and counted), a request's headers within
//! `http.header_timeout_s` (a half-sent request is closed, not kept), TLS when
//! `http.tls_cert` and `http.tls_key` are set. Each request carries its peer's address
//! (axum's `ConnectInfo`), for the login throttle.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// The limits, from `[http]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_per_address: usize,
    /// Time to send a request's headers (and to finish a TLS handshake).
    pub header_timeout: Duration,
}

/// The TLS acceptor for a certificate chain and private key in PEM files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "http.tls_cert: reading certificates from {}",
                cert.display()
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "http.tls_cert: {} holds no certificate",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("http.tls_key: reading a private key from {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("http.tls_cert and http.tls_key do not make a certificate and its key")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Per-address connection counts; a slot gives its place back when dropped.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

struct Slot {
    _permit: OwnedSemaphorePermit,
    addr: IpAddr,
    table: Arc<PerAddress>,
    counters: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.table.0.lock() {
            if let Some(n) = m.get_mut(&self.addr) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.addr);
                }
            }
        }
        self.counters.http_connections.fetch_sub(1, Relaxed);
    }
}

/// Serves `app` on `listener` until `cancel`, then lets the requests under way finish.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    counters: Arc<Metrics>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let table = Arc::new(PerAddress::default());
    let tasks = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: the connections we hold will end.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = admit(&permits, &table, &counters, limits, peer.ip()) else {
            counters.http_refused.fetch_add(1, Relaxed);
            drop(stream);
            continue;
        };
        counters.http_accepted.fetch_add(1, Relaxed);
        let app = app.clone();
        let tls = tls.clone();
        let counters = counters.clone();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let _slot = slot;
            connection(stream, peer, app, limits, tls, &counters, cancel).await;
        });
    }
    tasks.close();
    tasks.wait().await;
    Ok(())
}

fn admit(
    permits: &Arc<Semaphore>,
    table: &Arc<PerAddress>,
    counters: &Arc<Metrics>,
    limits: ConnLimits,
    addr: IpAddr,
) -> Option<Slot> {
    let permit = permits.clone().try_acquire_owned().ok()?;
    let mut m = table.0.lock().ok()?;
    let n = m.entry(addr).or_default();
    if *n >= limits.max_per_address {
        return None;
    }
    *n += 1;
    counters.http_connections.fetch_add(1, Relaxed);
    Some(Slot {
        _permit: permit,
        addr,
        table: table.clone(),
        counters: counters.clone(),
    })
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    counters: &Metrics,
    cancel: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve(TokioIo::new(stream), peer, app, limits, cancel).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve(TokioIo::new(tls), peer, app, limits, cancel).await,
                Ok(Err(e)) => {
                    counters.http_tls_failed.fetch_add(1, Relaxed);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    counters.http_tls_failed.fetch_add(1, Relaxed);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

async fn serve<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: ConnLimits,
    cancel: CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        call(app.clone(), req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

fn call(
    mut app: Router,
    req: hyper::Request<Incoming>,
) -> impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> {
    tower_service::Service::call(&mut app, req)
}
