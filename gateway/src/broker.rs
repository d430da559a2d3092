//! The embedded MQTT broker, with the terminal registry as its password file and ACL.
//!
//! A node logs in with its terminal id and the password `weir terminal add` printed; it may
//! publish only its own telemetry and status and subscribe only to its own ack and config
//! (`weir_broker::WeirPolicy`). The gateway's own session logs in with a service user name
//! that no terminal id can equal and a password made fresh at every start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use weir_broker::{Broker, WeirPolicy};

use crate::config::MqttConfig;
use crate::metrics::Metrics;
use weir_store::{auth, terminals, Store};

/// The service user name: a colon is never part of a terminal id.
const SERVICE_USER: &str = "weir:gateway";

/// The running embedded broker.
#[derive(Debug)]
pub struct Embedded {
    /// Where nodes connect.
    pub addr: SocketAddr,
    /// Where nodes connect with TLS, when configured.
    pub tls_addr: Option<SocketAddr>,
    /// The gateway's own user name and password on it.
    pub service_credentials: (String, String),
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

impl Embedded {
    /// Stops the broker (after the gateway's session has said goodbye) and waits for it.
    pub async fn stopped(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Remembers passwords that verified, so a node reconnecting every few seconds does not cost
/// an argon2 hash each time. Keyed by terminal; valid while the stored hash is unchanged.
#[derive(Default)]
struct Verified(Mutex<HashMap<String, (String, [u8; 32])>>);

impl Verified {
    fn check(&self, store: &Store, id: &str, password: &[u8]) -> bool {
        let Ok(Some(hash)) = store.with(|c| terminals::password_hash(c, id)) else {
            // As much work as for a registered terminal, so the answer's time does not tell
            // which terminal ids exist.
            auth::verify_unknown(password);
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(password).into();
        if let Ok(cache) = self.0.lock() {
            if cache
                .get(id)
                .is_some_and(|(h, d)| *h == hash && *d == digest)
            {
                return true;
            }
        }
        let ok = auth::verify_password(password, &hash);
        if ok {
            if let Ok(mut cache) = self.0.lock() {
                cache.insert(id.to_owned(), (hash, digest));
            }
        }
        ok
    }
}

/// Starts the embedded broker on `mqtt.listen`. It runs until [`Embedded::stopped`].
pub async fn start(
    mqtt: &MqttConfig,
    store: Arc<Store>,
    metrics: &Metrics,
) -> anyhow::Result<Embedded> {
    let service_password = auth::new_secret("");
    let verified = Verified::default();
    let policy = WeirPolicy::new(
        &mqtt.topic_prefix,
        SERVICE_USER,
        service_password.as_bytes(),
        move |id, password| verified.check(&store, id.as_str(), password),
    )
    .map_err(|e| anyhow::anyhow!("mqtt.topic_prefix: {}", e.reason))?;
    let broker_config = mqtt.embedded();
    let tls = broker_config.tls.clone();
    let broker =
        Broker::new(broker_config, Arc::new(policy)).context("configuring the embedded broker")?;
    let _ = metrics.broker.set(broker.stats());
    let listener = broker
        .bind(mqtt.listen)
        .await
        .with_context(|| format!("listening for MQTT on {} (mqtt.listen)", mqtt.listen))?;
    let addr = listener.local_addr();
    let tls_listener = match &tls {
        Some(tls) => Some(broker.bind_tls(tls).await.with_context(|| {
            format!(
                "MQTT over TLS on {} (mqtt.tls_listen, mqtt.tls_cert, mqtt.tls_key)",
                tls.listen
            )
        })?),
        None => None,
    };
    let tls_addr = tls_listener.as_ref().map(|l| l.local_addr());
    let stop = CancellationToken::new();
    let plain = listener.run(stop.clone());
    let tls_stop = stop.clone();
    let task = tokio::spawn(async move {
        match tls_listener {
            Some(t) => {
                tokio::join!(plain, t.run(tls_stop));
            }
            None => plain.await,
        }
    });
    Ok(Embedded {
        addr,
        tls_addr,
        service_credentials: (SERVICE_USER.into(), service_password),
        task,
        stop,
    })
}
