//! The embedded MQTT broker, with the terminal registry as its password file and ACL.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::Store;

/// The running embedded broker.
#[derive(Debug)]
pub struct Embedded {
    /// Where nodes connect.
    pub addr: SocketAddr,
    /// The gateway's own user name and password on it.
    pub service_credentials: (String, String),
    task: tokio::task::JoinHandle<()>,
}

impl Embedded {
    /// Waits until the broker has stopped.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Starts the embedded broker on `mqtt.listen`.
pub async fn start(
    config: &Config,
    store: Arc<Store>,
    cancel: CancellationToken,
) -> anyhow::Result<Embedded> {
    let _ = (config, store, cancel);
    anyhow::bail!("the embedded broker is not built yet; set mqtt.broker = \"external\"")
}
