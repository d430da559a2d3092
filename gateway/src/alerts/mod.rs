//! Maintenance alerts: rules evaluated as readings are committed, their lifecycle, incidents,
//! work orders and notifications.
//!
//! - `rules/`: pure state machines, one file per rule, fed readings (or the time) and
//!   returning transitions.
//! - `engine`: the one task that owns rule state and active alerts; follows the live feed,
//!   runs the silence timers on the tokio clock, applies people's actions, persists first.
//! - the alert tables are the store's (`weir_store::{alerts, incidents, notifications}`).
//!   `notify/`: webhook, SMS and email, throttled and recorded.
//! - `preview`, `service`: rule previews over stored readings, and service times; their
//!   routes are in `api/alerts.rs` (docs/api.md, "Alerts").

pub mod config;
pub mod engine;
pub mod model;
pub mod notify;
pub mod preview;
pub mod rules;
pub mod service;
pub mod text;

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use config::AlertsConfig;
use engine::{Action, ActionError, AlertEvent, Clock, Command, Engine, Outputs};
use model::Alert;
use notify::Notice;

use crate::live::LiveEvent;
use weir_store::Store;

/// A handle on the running alert engine, cheap to clone.
#[derive(Clone, Debug)]
pub struct Alerts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<AlertsConfig>,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<AlertEvent>,
    notices: broadcast::Sender<Notice>,
    clock: Clock,
    stopped: watch::Receiver<()>,
}

impl Alerts {
    /// Waits until the engine has stopped.
    pub async fn stopped(&self) {
        let mut rx = self.inner.stopped.clone();
        // Ends when the engine drops the sender.
        while rx.changed().await.is_ok() {}
    }

    /// Alert and incident changes, as they are saved.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.inner.events.subscribe()
    }

    /// What the engine decides to tell people, before per-recipient throttling.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }

    /// The `[alerts]` configuration in force.
    pub fn config(&self) -> &AlertsConfig {
        &self.inner.config
    }

    /// The engine's clock, Unix seconds.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Applies a person's action to alert `id`.
    pub async fn act(&self, id: i64, action: Action, who: &str) -> Result<Alert, ActionError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ActionError::Internal(anyhow::anyhow!("the alert engine has stopped"));
        self.inner
            .commands
            .send(Command {
                id,
                action,
                who: who.to_string(),
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Starts the alert engine on the committed-data feed.
pub async fn start(
    config: AlertsConfig,
    store: Arc<Store>,
    live: broadcast::Receiver<LiveEvent>,
    cancel: CancellationToken,
) -> anyhow::Result<Alerts> {
    let cfg = Arc::new(config);
    cfg.validate()?;
    let clock = Clock::start();
    let (events, _) = broadcast::channel(1024);
    let (notices, _) = broadcast::channel(1024);
    let (notify_tx, notify_rx) = mpsc::unbounded_channel();
    let mut engine = Engine::load(
        cfg.clone(),
        store.clone(),
        clock,
        Outputs {
            events: events.clone(),
            notify: notify_tx,
            notices: notices.clone(),
        },
    )
    .await?;
    // Readings committed while the gateway was going down, before the engine saw them.
    engine.catch_up().await?;
    let (commands, commands_rx) = mpsc::channel(64);
    let (stop_tx, stopped) = watch::channel(());
    let notifier = notify::spawn(cfg.clone(), store, notify_rx, cancel.clone());
    tokio::spawn(async move {
        engine.run(live, commands_rx, cancel).await;
        let _ = notifier.await;
        drop(stop_tx);
    });
    Ok(Alerts {
        inner: Arc::new(Inner {
            config: cfg,
            commands,
            events,
            notices,
            clock,
            stopped,
        }),
    })
}
