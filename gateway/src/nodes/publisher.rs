//! Publishes each node's retained config (see `config`): at every connect, when a terminal's
//! config changes, and after a registry check every minute.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use weir_contract::topic::{self, Channel};
use weir_contract::{Encoding, Message as _, TerminalId};

use super::config;
use crate::ingest::Session;
use weir_store::Store;

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
    let opts = session.side_connection("config");
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
        let configs = match store.run(|c| Ok(config::all(c))).await {
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
