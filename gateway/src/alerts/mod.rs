//! Maintenance alerts: rules evaluated as readings are committed, their lifecycle, incidents,
//! work orders and notifications. (Being written: this is the seam the rest of the gateway
//! uses.)

use std::sync::Arc;

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::config::Config;
use crate::live::LiveEvent;
use crate::store::Store;

/// The `[alerts]` configuration section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {}

/// The `[alerts]` section of `weir config`, commented.
pub const DEFAULT_CONFIG: &str = "\n[alerts]\n";

/// The alert tables, as named migrations.
pub fn migrations() -> Vec<(&'static str, String)> {
    Vec::new()
}

/// A handle on the running alert engine, cheap to clone.
#[derive(Clone, Debug)]
pub struct Alerts {
    _engine: (),
}

impl Alerts {
    /// Waits until the engine has stopped.
    pub async fn stopped(&self) {}
}

/// Starts the alert engine on the committed-data feed.
pub async fn start(
    config: Arc<Config>,
    store: Arc<Store>,
    live: broadcast::Receiver<LiveEvent>,
    cancel: CancellationToken,
) -> anyhow::Result<Alerts> {
    let _ = (config, store, live, cancel);
    Ok(Alerts { _engine: () })
}

/// The alert API routes, mounted under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
}
