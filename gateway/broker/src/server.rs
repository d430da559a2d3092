//! The broker handle, its TCP listener and graceful shutdown.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, Slots};
use crate::auth::AuthGate;
use crate::config::{BrokerConfig, ConfigError, TlsConfig};
use crate::connection::{self, Arrival};
use crate::policy::Policy;
use crate::rate::PublishLimits;
use crate::router::Router;
use crate::stats::Stats;
use crate::tls::{self, TlsError};

/// What every connection of one broker shares.
pub(crate) struct Shared {
    pub config: BrokerConfig,
    pub policy: Arc<dyn Policy>,
    pub stats: Arc<Stats>,
    pub router: Router,
    pub auth: AuthGate,
    pub admission: Arc<Admission>,
    pub publish_limits: PublishLimits,
    /// Source of connection ids and of generated client ids.
    pub next_id: AtomicU64,
}

impl Shared {
    /// Forgets what has expired. Run periodically by every listener.
    fn sweep(&self) {
        let now = tokio::time::Instant::now();
        self.auth.prune(now);
        self.router.sweep(now);
        self.publish_limits.prune(now);
    }
}

/// How often a listener forgets what has expired.
const SWEEP_PERIOD: Duration = Duration::from_secs(10);

/// An embedded MQTT 3.1.1 broker. Cheap to clone; clones share sessions and counters.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use weir_broker::{Broker, BrokerConfig, WeirPolicy};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let policy = WeirPolicy::new("weir", "weir-gateway", b"secret", |_id, _pw| false)?;
/// let config = BrokerConfig::default();
/// let broker = Broker::new(config.clone(), Arc::new(policy))?;
/// let listener = broker.bind(config.listen).await?;
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// listener.run(shutdown).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("config", &self.shared.config)
            .field("stats", &self.shared.stats)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker with `config` that admits clients and checks topics with `policy`.
    pub fn new(config: BrokerConfig, policy: Arc<dyn Policy>) -> Result<Self, ConfigError> {
        config.validate()?;
        let stats = Arc::new(Stats::default());
        let router = Router::new(policy.clone(), stats.clone(), &config);
        Ok(Broker {
            shared: Arc::new(Shared {
                auth: AuthGate::new(&config),
                admission: Arc::new(Admission::new(&config, stats.clone())),
                publish_limits: PublishLimits::new(&config),
                config,
                policy,
                stats,
                router,
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// The settings the broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    /// The broker's counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// Whether a session of any identity is kept for `client_id`, connected or not.
    pub fn has_session(&self, client_id: &str) -> bool {
        self.shared.router.has_session(client_id)
    }

    /// Binds a TCP listener; [`Listener::run`] then accepts clients on it.
    pub async fn bind(&self, addr: impl ToSocketAddrs) -> io::Result<Listener> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Listener {
            broker: self.clone(),
            listener,
            local_addr,
            tls: None,
        })
    }

    /// Binds a listener for MQTT over TLS as `tls` says, with its certificate chain and key
    /// (read now: a missing or unusable file is an error naming it). [`Listener::run`] then
    /// accepts clients on it, under the same rules and limits as on a plain listener.
    pub async fn bind_tls(&self, tls: &TlsConfig) -> Result<Listener, TlsError> {
        let acceptor = tls::acceptor(tls)?;
        let bind_error = |source| TlsError::Bind {
            addr: tls.listen,
            source,
        };
        let listener = TcpListener::bind(tls.listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Listener {
            broker: self.clone(),
            listener,
            local_addr,
            tls: Some(acceptor),
        })
    }

    /// Serves one client on an already accepted stream (an in-process pipe, a stream the
    /// caller accepted itself), until the client leaves or `shutdown` is cancelled.
    ///
    /// The caller is the one to bound such connections: they are not counted against
    /// `max_connections`, `max_pending_connections` or `max_connections_per_address`, and
    /// their failed logins all count against one unknown address.
    pub async fn serve_connection<S>(&self, stream: S, shutdown: CancellationToken)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let arrival = Arrival {
            peer: None,
            slots: None,
            connect_by: Instant::now() + self.shared.config.connect_timeout(),
        };
        connection::serve(self.shared.clone(), stream, arrival, shutdown).await;
    }
}

/// A bound TCP listener of a [`Broker`], plain or TLS.
pub struct Listener {
    broker: Broker,
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptor>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// The address the broker listens on (with the real port if bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts and serves clients until `shutdown` is cancelled, then stops accepting, closes
    /// every connection and returns when all are closed. Sessions stay in the [`Broker`].
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        let max_connections = self.broker.shared.config.max_connections;
        let tls = self.tls.is_some();
        tracing::info!(addr = %self.local_addr, tls, "MQTT broker listening");
        let mut sweep = tokio::time::interval(SWEEP_PERIOD);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = sweep.tick() => {
                    self.broker.shared.sweep();
                    continue;
                }
                accepted = self.listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            };
            if tracker.len() >= max_connections {
                tracing::warn!(%peer, max_connections, "too many connections: closing a new one");
                self.broker.shared.stats.refused();
                continue;
            }
            let slots: Slots = match self.broker.shared.admission.admit(peer.ip()) {
                Ok(slots) => slots,
                Err(why) => {
                    // Debug, not warn: a flood of these would flood the log too; the counters
                    // say how many.
                    tracing::debug!(%peer, ?why, "closing a new connection at once");
                    continue;
                }
            };
            // Small packets (acks) must not wait for Nagle's algorithm.
            let _ = socket.set_nodelay(true);
            let shared = self.broker.shared.clone();
            let shutdown = shutdown.clone();
            let arrival = Arrival {
                peer: Some(peer.ip()),
                slots: Some(slots),
                connect_by: Instant::now() + shared.config.connect_timeout(),
            };
            let tls = self.tls.clone();
            tracker.spawn(async move {
                tracing::debug!(%peer, "connection accepted");
                let Some(acceptor) = tls else {
                    connection::serve(shared, socket, arrival, shutdown).await;
                    return;
                };
                let handshake = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    handshake = tokio::time::timeout_at(arrival.connect_by, acceptor.accept(socket)) => handshake,
                };
                match handshake {
                    Ok(Ok(stream)) => connection::serve(shared, stream, arrival, shutdown).await,
                    Ok(Err(e)) => {
                        // Debug: scanners and clients with the wrong CA would flood the log.
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        shared.stats.tls_failed();
                    }
                    Err(_elapsed) => {
                        tracing::debug!(%peer, "no TLS handshake within the connect timeout");
                        shared.stats.tls_failed();
                    }
                }
            });
        }
        drop(self.listener);
        tracker.close();
        tracker.wait().await;
        tracing::info!("MQTT broker stopped");
    }
}
