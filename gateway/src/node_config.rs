//! Each node's retained `{prefix}/terminals/{id}/config`: how often to sample and publish, the
//! sensor corrections and the tank geometry.
//!
//! The registry is the source: a node's setup (written by `weir node provision` or
//! `PUT /api/v1/terminals/{id}/config`) and its terminal's tank depth. A terminal with no setup
//! (a third-party logger, say) gets no config. The gateway publishes every config, retained,
//! each time its publisher connects to the broker (the embedded broker starts empty; an
//! external one may have lost its retained store), and a terminal's config again whenever it
//! changes. A node applies a config on receipt and keeps it across restarts; it writes flash
//! only when the config differs from what it has.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use rusqlite::Connection;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use weir_contract::topic::{self, Channel};
use weir_contract::{Encoding, Message as _, NodeConfig, TerminalId};

use crate::ingest::Session;
use weir_store::terminals::NodeSetup;
use weir_store::terminals::{self, Terminal};
use weir_store::Store;

/// The config of a node with `setup` at `terminal`.
pub fn of(terminal: &Terminal, setup: &NodeSetup) -> NodeConfig {
    let defaults = NodeConfig::default();
    NodeConfig {
        sample_interval_s: setup
            .sample_interval_s
            .unwrap_or(defaults.sample_interval_s),
        publish_interval_s: setup
            .publish_interval_s
            .unwrap_or(defaults.publish_interval_s),
        calibration: setup.calibration,
        tank_depth_m: terminal.tank_depth_m,
        sensor_height_m: setup.sensor_height_m,
    }
}

/// Terminal `id`'s config and whether its node was ever set up (provisioned or configured);
/// one never set up gets the defaults with the terminal's tank depth, what a change starts
/// from. `None` for an unknown terminal.
pub fn get(conn: &Connection, id: &str) -> anyhow::Result<Option<(NodeConfig, bool)>> {
    let Some(t) = terminals::get(conn, id)? else {
        return Ok(None);
    };
    let setup = terminals::setup(conn, id)?;
    let set_up = setup.is_some();
    Ok(Some((of(&t, &setup.unwrap_or_default()), set_up)))
}

/// Every terminal's config, for those with a node setup.
pub fn all(conn: &Connection) -> anyhow::Result<Vec<(String, NodeConfig)>> {
    let mut out = Vec::new();
    for t in terminals::list(conn)? {
        if let Some(setup) = terminals::setup(conn, &t.id)? {
            out.push((t.id.clone(), of(&t, &setup)));
        }
    }
    Ok(out)
}

/// Makes `config` terminal `id`'s: its setup's intervals, calibration and sensor height, and
/// the terminal's tank depth, in one transaction. The caller validates `config` first.
pub fn set(conn: &Connection, id: &str, config: &NodeConfig) -> anyhow::Result<()> {
    // IMMEDIATE: this reads, then writes; a deferred transaction would fail at once if the
    // store writer committed in between (see writer.rs).
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut setup = terminals::setup(&tx, id)?.unwrap_or_default();
    setup.sample_interval_s = Some(config.sample_interval_s);
    setup.publish_interval_s = Some(config.publish_interval_s);
    setup.calibration = config.calibration;
    setup.sensor_height_m = config.sensor_height_m;
    terminals::save_setup(&tx, id, &setup)?;
    terminals::set_tank_depth(&tx, id, config.tank_depth_m)?;
    tx.commit()?;
    Ok(())
}

/// Tells the publisher that a terminal's config changed.
#[derive(Clone, Debug, Default)]
pub struct Changed(Arc<Notify>);

impl Changed {
    /// Publishes the configs again (those that changed since the last time).
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// How often the registry is read again for changes made by another process (`weir node
/// provision` while the gateway runs).
const RECHECK: Duration = Duration::from_secs(60);

/// Publishes the configs until `cancel`, on its own connection (`{client_id}-config`, clean
/// session) with the gateway's credentials.
pub async fn run(session: Session, store: Arc<Store>, changed: Changed, cancel: CancellationToken) {
    let mut opts = MqttOptions::new(
        format!("{}-config", session.client_id),
        session.host.clone(),
        session.port,
    );
    opts.set_keep_alive(Duration::from_secs(u64::from(session.keep_alive_s.max(5))))
        .set_clean_session(true);
    if let Some((user, password)) = &session.credentials {
        opts.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(opts, 256);
    let (connected_tx, mut connected) = mpsc::unbounded_channel();
    let poll_cancel = cancel.clone();
    let poller = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = poll_cancel.cancelled() => return,
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = connected_tx.send(());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "node configs: broker connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                },
            }
        }
    });
    // What was published on the current connection, to send only changes.
    let mut sent: std::collections::HashMap<String, Vec<u8>> = Default::default();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(()) = connected.recv() => sent.clear(),
            _ = changed.0.notified() => {}
            _ = tokio::time::sleep(RECHECK) => {}
        }
        let configs = match store.run(|c| Ok(all(c))).await {
            Ok(Ok(configs)) => configs,
            Ok(Err(e)) | Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "node configs: reading the registry failed");
                continue;
            }
        };
        for (id, config) in configs {
            let mut buf = [0u8; 1024];
            let (Ok(terminal), Ok(n)) = (
                TerminalId::new(&id),
                config.encode(Encoding::Json, &mut buf),
            ) else {
                continue;
            };
            let payload = buf[..n].to_vec();
            if sent.get(&id) == Some(&payload) {
                continue;
            }
            let Ok(t) = topic::topic(&session.prefix, &terminal, Channel::Config) else {
                continue;
            };
            // The request queue may be full while the connection is down: give up on stop.
            let sent_ok = tokio::select! {
                _ = cancel.cancelled() => break,
                r = client.publish(t.as_str(), QoS::AtLeastOnce, true, payload.clone()) => r.is_ok(),
            };
            if sent_ok {
                tracing::debug!(terminal = %id, "node config published");
                sent.insert(id, payload);
            }
        }
    }
    let _ = client.disconnect().await;
    poller.abort();
}
