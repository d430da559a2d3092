//! The Weir gateway: MQTT ingest, the reading store, forwarding, alerts and the HTTP API.
//!
//! Cut by domain: `ingest/` takes messages from the broker, `store/` owns the database,
//! `forward/` copies readings to InfluxDB, `api/` serves HTTP, `broker` embeds the MQTT broker,
//! `node_config` publishes each node's retained config.

pub mod alerts;
pub mod api;
pub mod broker;
pub mod cluster;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod export;
pub mod firmware;
pub mod forward;
pub mod hj212;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod nodes;
pub mod pictures;
pub mod reports;
pub mod serve;

use std::sync::Arc;

/// Sets up logging to standard error with the configured filter (`RUST_LOG` wins if set).
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the gateway until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn serve_until_signal(config: Arc<config::Config>) -> anyhow::Result<()> {
    let running = serve::start(config.clone()).await?;
    tracing::info!(http = %running.http_addr, mqtt = ?running.mqtt_addr, "weir gateway running");
    let scheme = if config.http.tls() { "https" } else { "http" };
    eprintln!("weir: listening on {scheme}://{}", running.http_addr);
    if let Some(mqtt) = running.mqtt_addr {
        eprintln!("weir: MQTT broker on {mqtt}");
    }
    if let Some(mqtts) = running.mqtts_addr {
        eprintln!("weir: MQTT over TLS on {mqtts}");
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.cancel.cancel();
    running.done.await??;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
