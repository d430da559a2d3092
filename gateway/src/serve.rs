//! Starting and stopping the gateway: store, writer, broker, ingest, forwarder, HJ 212 uplink,
//! cameras, HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::{BrokerMode, Config, BOOTSTRAP_TOKEN_VAR};
use crate::ingest::{self, Session};
use crate::metrics::Metrics;
use weir_store::writer::{self, WriterSettings};
use weir_store::Store;

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    /// Where the HTTP server listens.
    pub http_addr: SocketAddr,
    /// Where the embedded broker listens (None with an external broker).
    pub mqtt_addr: Option<SocketAddr>,
    /// Where the embedded broker listens with TLS, when configured.
    pub mqtts_addr: Option<SocketAddr>,
    /// The database.
    pub store: Arc<Store>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Cancel to stop; then await `done`.
    pub cancel: CancellationToken,
    /// Ends when everything has stopped: the HTTP server, ingest (after committing and
    /// acknowledging what arrived), the broker and the forwarder.
    pub done: JoinHandle<anyhow::Result<()>>,
}

/// Committed transactions kept for receivers of the live events that have not read them yet.
const LIVE_EVENTS_KEPT: usize = 64;

/// Starts every part of the gateway.
pub async fn start(config: Arc<Config>) -> anyhow::Result<Running> {
    let tz = jiff::tz::TimeZone::get(&config.site.timezone).with_context(|| {
        format!(
            "site.timezone: {:?} is not an IANA time zone",
            config.site.timezone
        )
    })?;
    let store = Store::open(&config.database_path(), config.store.synchronous)?;
    let metrics = Arc::new(Metrics::new());
    metrics.ack_max_held.store(
        u64::from(config.store.ack_max_held),
        std::sync::atomic::Ordering::Relaxed,
    );
    // Committed transactions for the alert engine and the live feeds. One holds up to
    // `store.batch_max_messages` messages' readings (about 1 MB at 2,000 messages of 4), and a
    // receiver that falls behind keeps every event it has not read: 64 of them bound that to
    // about 64 MB. The engine then catches up from the store; a live feed skips readings.
    let (live, _) = broadcast::channel(LIVE_EVENTS_KEPT);
    let cancel = CancellationToken::new();

    // The writer thread, fed by ingest (in a cluster, one per member's session held: see
    // `crate::cluster`).
    let writer_settings = WriterSettings {
        batch_max: config.store.batch_max_messages,
        dead_letters_max: config.store.dead_letters_max,
        raw_retention_days: config.store.raw_retention_days,
        acks: config.store.ack_limits(),
    };
    let (jobs_tx, jobs_rx) = mpsc::channel(8192);
    let (committed_tx, committed_rx) = mpsc::unbounded_channel();
    let writer = if config.cluster.enabled {
        None
    } else {
        let writer_conn = store
            .connect()
            .context("opening the store writer's connection")?;
        Some(
            writer::spawn(writer_conn, writer_settings, jobs_rx, committed_tx)
                .context("starting the store writer thread")?,
        )
    };

    // The broker, and the gateway's session on it.
    let (session, (mqtt_addr, mqtts_addr), broker) = match config.mqtt.broker {
        BrokerMode::External => {
            let credentials = (!config.mqtt.username.is_empty())
                .then(|| (config.mqtt.username.clone(), config.mqtt.password.clone()));
            (
                Session {
                    host: config.mqtt.host.clone(),
                    port: config.mqtt.port,
                    credentials,
                    client_id: config.mqtt.client_id.clone(),
                    prefix: config.mqtt.topic_prefix.clone(),
                    keep_alive_s: config.mqtt.keep_alive_s,
                },
                (None, None),
                None,
            )
        }
        BrokerMode::Embedded => {
            let embedded = crate::broker::start(&config.mqtt, store.clone(), &metrics).await?;
            let session = Session {
                host: "127.0.0.1".into(),
                port: embedded.addr.port(),
                credentials: Some(embedded.service_credentials.clone()),
                client_id: config.mqtt.client_id.clone(),
                prefix: config.mqtt.topic_prefix.clone(),
                keep_alive_s: config.mqtt.keep_alive_s,
            };
            (
                session,
                (Some(embedded.addr), embedded.tls_addr),
                Some(embedded),
            )
        }
    };
    // In a cluster, this member's side connections (config publisher, firmware service) are
    // named after it, so that members do not take each other's; its terminals' sessions are
    // named by `crate::cluster`.
    let session = if config.cluster.enabled {
        Session {
            client_id: format!("{}-{}", session.client_id, config.cluster.instance),
            ..session
        }
    } else {
        session
    };
    let node_configs = crate::nodes::publisher::Changed::default();
    let config_publisher = tokio::spawn(crate::nodes::publisher::run(
        session.clone(),
        store.clone(),
        node_configs.clone(),
        cancel.child_token(),
    ));
    let firmware = tokio::spawn(crate::firmware::service::run(
        config.firmware.clone(),
        session.clone(),
        store.clone(),
        metrics.clone(),
        cancel.child_token(),
    ));
    let ingest_cancel = CancellationToken::new();
    let ingest = if config.cluster.enabled {
        // Each member's MQTT session is `{mqtt.client_id}-{member}`.
        let ctx = crate::cluster::Context {
            config: config.cluster.clone(),
            session: Session {
                client_id: config.mqtt.client_id.clone(),
                ..session
            },
            store: store.clone(),
            writer: writer_settings,
            metrics: metrics.clone(),
            live: live.clone(),
            http: config.http.listen.to_string(),
        };
        tokio::spawn(crate::cluster::run(ctx, ingest_cancel.clone()))
    } else {
        tokio::spawn(ingest::run(
            session,
            jobs_tx,
            committed_rx,
            metrics.clone(),
            live.clone(),
            ingest_cancel.clone(),
        ))
    };

    let retention = (config.store.raw_retention_days > 0).then(|| {
        tokio::spawn(weir_store::retention::run(
            store.clone(),
            config.store.raw_retention_days,
            // Every consumer of commit order that runs holds retention back.
            {
                let mut consumers = vec![weir_store::cursors::ALERTS];
                if config.influx.enabled {
                    consumers.push(weir_store::cursors::INFLUX);
                }
                if config.hj212.enabled {
                    consumers.push(weir_store::cursors::HJ212);
                }
                consumers
            },
            {
                let metrics = metrics.clone();
                move |p| {
                    metrics
                        .pruned_readings
                        .fetch_add(p.readings, std::sync::atomic::Ordering::Relaxed);
                }
            },
            cancel.child_token(),
        ))
    });

    // Pictures: the cameras' task, picture retention, and files a crash left without a row.
    let pictures = crate::pictures::Pictures::new(store.clone(), &config.pictures, metrics.clone());
    crate::pictures::sweep(&store).await;
    let cameras = tokio::spawn(crate::pictures::camera::run(
        pictures.clone(),
        cancel.child_token(),
    ));
    let picture_retention = (config.pictures.retention_days > 0).then(|| {
        let metrics = metrics.clone();
        tokio::spawn(weir_store::retention::run_pictures(
            store.clone(),
            config.pictures.retention_days,
            move |n| {
                metrics
                    .pictures_pruned
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            },
            cancel.child_token(),
        ))
    });

    let forwarder = config.influx.enabled.then(|| {
        tokio::spawn(crate::forward::influx::run(
            config.influx.clone(),
            store.clone(),
            metrics.clone(),
            cancel.child_token(),
        ))
    });

    if config.hj212.enabled {
        let at = crate::hj212::uplink::start_position(&store)
            .await
            .context("reading the HJ 212 uplink's place")?;
        tracing::info!(after_reading = at, "HJ 212 uplink resumes");
    }
    let hj212 = config.hj212.enabled.then(|| {
        tokio::spawn(crate::hj212::uplink::run(
            config.hj212.clone(),
            tz.clone(),
            store.clone(),
            metrics.clone(),
            cancel.child_token(),
        ))
    });

    let alerts = crate::alerts::start(
        config.alerts.clone(),
        store.clone(),
        live.subscribe(),
        cancel.child_token(),
    )
    .await?;

    // HTTP (HTTPS when a certificate is configured; read before listening, so a bad file
    // stops the start with its key's name).
    let tls = if config.http.tls() {
        Some(api::server::tls_acceptor(
            &config.http.tls_cert,
            &config.http.tls_key,
        )?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("listening for HTTP on {} (http.listen)", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let state = AppState {
        store: store.clone(),
        config: config.clone(),
        metrics: metrics.clone(),
        live,
        bootstrap_token: std::env::var(BOOTSTRAP_TOKEN_VAR)
            .ok()
            .filter(|t| !t.is_empty()),
        tz,
        alerts: alerts.clone(),
        node_configs,
        logins: Arc::new(api::login_guard::LoginGuard::new(
            api::login_guard::LoginLimits {
                max_concurrent: config.http.max_password_checks,
                queue_wait: std::time::Duration::from_secs(2),
                max_failures: config.http.login_max_failures,
                window: std::time::Duration::from_secs(
                    u64::from(config.http.login_lockout_min) * 60,
                ),
                max_tracked: 100_000,
            },
            metrics.clone(),
        )),
        logins_changed: tokio::sync::broadcast::channel(16).0,
        pictures,
    };
    let http = tokio::spawn(api::serve(listener, state, tls, cancel.clone()));

    let stop = cancel.clone();
    let done = tokio::spawn(async move {
        stop.cancelled().await;
        // Stop taking messages; commit and acknowledge what arrived; then the rest.
        ingest_cancel.cancel();
        let ingest_result = ingest.await.context("the ingest task failed")?;
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        let _ = config_publisher.await;
        let _ = firmware.await;
        if let Some(b) = broker {
            b.stopped().await;
        }
        if let Some(f) = forwarder {
            let _ = f.await;
        }
        if let Some(u) = hj212 {
            let _ = u.await;
        }
        if let Some(r) = retention {
            let _ = r.await;
        }
        let _ = cameras.await;
        if let Some(r) = picture_retention {
            let _ = r.await;
        }
        alerts.stopped().await;
        http.await
            .context("the HTTP task failed")?
            .context("serving HTTP")?;
        ingest_result
    });
    Ok(Running {
        http_addr,
        mqtt_addr,
        mqtts_addr,
        store,
        metrics,
        cancel,
        done,
    })
}
