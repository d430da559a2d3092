//! The firmware service: offers each terminal its target image (retained on
//! `.../firmware`), sends the piece a node asks for on `.../chunk`, and records the node's
//! progress and outcome (`.../update`) in the store, on its own MQTT connection.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weir_contract::firmware::version;
use weir_contract::topic::{self, Channel};
use weir_contract::{
    Encoding, FirmwareChunk, FirmwareOffer, Message as _, TerminalId, UpdateReport, UpdateState,
    CHUNK_LEN,
};
use weir_store::firmware::{self as store_fw, Target, TargetState};
use weir_store::Store;

use super::FirmwareConfig;
use crate::ingest::Session;
use crate::metrics::Metrics;

/// Progress is written to the store at every this many bytes downloaded (and at each state
/// change), not at every piece.
const PROGRESS_STEP: u32 = 16 * 1024;

enum Incoming {
    Connected,
    Report(String, UpdateReport),
}

/// Pieces per second over all terminals: a token bucket.
struct Rate {
    per_s: f64,
    tokens: f64,
    at: Instant,
}

impl Rate {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_s).min(self.per_s);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Service {
    config: FirmwareConfig,
    prefix: String,
    client: AsyncClient,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    targets: HashMap<String, Target>,
    /// What is retained on each terminal's firmware topic, as published on this connection.
    retained: HashMap<String, Vec<u8>>,
    images: HashMap<String, (Arc<Vec<u8>>, Vec<u8>)>,
    rate: Rate,
}

/// Runs the service until `cancel`, on connection `{client_id}-firmware` (clean session).
pub async fn run(
    config: FirmwareConfig,
    session: Session,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let opts = session.side_connection("firmware");
    let (client, mut events) = AsyncClient::new(opts, 1024);
    let Ok(filter) = topic::filter_all(&session.prefix, Channel::Update) else {
        return;
    };
    let (tx, mut rx) = mpsc::channel(1024);
    let poll_cancel = cancel.clone();
    let prefix = session.prefix.clone();
    let sub_client = client.clone();
    let poller = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = poll_cancel.cancelled() => return,
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub_client.try_subscribe(filter.as_str(), QoS::AtLeastOnce);
                        let _ = tx.send(Incoming::Connected).await;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Ok((terminal, Channel::Update)) = topic::parse(&prefix, &p.topic) else {
                            continue;
                        };
                        match UpdateReport::decode(&p.payload) {
                            Ok(r) => {
                                let _ = tx.send(Incoming::Report(terminal.as_str().to_string(), r)).await;
                            }
                            Err(e) => tracing::warn!(terminal = %terminal, error = %e, "firmware: update report refused"),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "firmware: broker connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                },
            }
        }
    });
    let mut service = Service {
        rate: Rate {
            per_s: f64::from(config.max_chunks_per_s),
            tokens: f64::from(config.max_chunks_per_s),
            at: Instant::now(),
        },
        config,
        prefix: session.prefix.clone(),
        client: client.clone(),
        store,
        metrics,
        targets: HashMap::new(),
        retained: HashMap::new(),
        images: HashMap::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(service.config.poll_s)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => service.sync().await,
            Some(incoming) = rx.recv() => match incoming {
                Incoming::Connected => {
                    service.retained.clear();
                    service.sync().await;
                }
                Incoming::Report(terminal, report) => service.report(&terminal, report).await,
            },
        }
    }
    let _ = client.disconnect().await;
    poller.abort();
}

impl Service {
    /// Reads the targets and makes each terminal's retained offer match its target.
    async fn sync(&mut self) {
        let targets = match self.store.run(store_fw::targets).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "firmware: reading the rollout failed");
                return;
            }
        };
        self.targets = targets
            .into_iter()
            .map(|t| (t.terminal.clone(), t))
            .collect();
        let ids: Vec<String> = self.targets.keys().cloned().collect();
        for id in ids {
            self.offer(&id).await;
        }
    }

    /// Publishes the terminal's offer (or withdraws it, once the update is over) if it
    /// changed.
    async fn offer(&mut self, id: &str) {
        let Some(target) = self.targets.get(id) else {
            return;
        };
        let payload = if target.state.is_final() {
            Vec::new()
        } else {
            let Some(signature) = self.image(&target.version.clone()).await.map(|i| i.1) else {
                return;
            };
            let target = &self.targets[id];
            let offer = FirmwareOffer {
                version: version(&target.version),
                size: target.size,
                signature: heapless::Vec::from_slice(&signature).unwrap_or_default(),
            };
            let mut buf = [0u8; 256];
            match offer.encode(Encoding::Binary, &mut buf) {
                Ok(n) => buf[..n].to_vec(),
                Err(_) => return,
            }
        };
        if self.retained.get(id) == Some(&payload) {
            return;
        }
        let Ok(terminal) = TerminalId::new(id) else {
            return;
        };
        let Ok(t) = topic::topic(&self.prefix, &terminal, Channel::Firmware) else {
            return;
        };
        if self
            .client
            .publish(t.as_str(), QoS::AtLeastOnce, true, payload.clone())
            .await
            .is_ok()
        {
            self.retained.insert(id.to_string(), payload);
        }
    }

    /// The image of `version` (bytes, signature), from memory or the store.
    async fn image(&mut self, version: &str) -> Option<(Arc<Vec<u8>>, Vec<u8>)> {
        if let Some(i) = self.images.get(version) {
            return Some(i.clone());
        }
        let v = version.to_string();
        let loaded = self
            .store
            .run(move |c| {
                let Some(img) = store_fw::get(c, &v)? else {
                    return Ok(None);
                };
                Ok(store_fw::bytes(c, &v)?.map(|b| (b, img.signature)))
            })
            .await;
        let (bytes, signature) = match loaded {
            Ok(Some(i)) => i,
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "firmware: reading image {version} failed");
                return None;
            }
        };
        while self.images.len() >= self.config.max_cached_images as usize {
            let Some(k) = self.images.keys().next().cloned() else {
                break;
            };
            self.images.remove(&k);
        }
        let entry = (Arc::new(bytes), signature);
        self.images.insert(version.to_string(), entry.clone());
        Some(entry)
    }

    async fn record(&mut self, id: &str, state: TargetState, offset: u32) {
        let Some(target) = self.targets.get_mut(id) else {
            return;
        };
        target.state = state;
        target.offset = offset;
        let (terminal, version) = (id.to_string(), target.version.clone());
        let at = weir_store::now();
        if let Err(e) = self
            .store
            .run(move |c| store_fw::set_state(c, &terminal, &version, state, offset, at))
            .await
        {
            tracing::error!(error = %format!("{e:#}"), "firmware: recording progress failed");
        }
    }

    async fn report(&mut self, id: &str, report: UpdateReport) {
        let Some(target) = self.targets.get(id) else {
            return;
        };
        // Only the terminal's own target is served and recorded.
        if target.version != report.version.as_str() {
            self.metrics.firmware_stray_reports.fetch_add(1, Relaxed);
            return;
        }
        let (state, size, offset_before) = (target.state, target.size, target.offset);
        match report.state {
            UpdateState::Fetching => {
                if state.is_final() || report.offset >= size {
                    return;
                }
                if !self.rate.take() {
                    self.metrics.firmware_chunks_dropped.fetch_add(1, Relaxed);
                    return;
                }
                let Some((bytes, _)) = self.image(report.version.as_str()).await else {
                    return;
                };
                let at = report.offset as usize;
                let end = (at + CHUNK_LEN).min(bytes.len());
                let chunk = FirmwareChunk {
                    version: report.version.clone(),
                    offset: report.offset,
                    data: heapless::Vec::from_slice(&bytes[at..end]).unwrap_or_default(),
                };
                let mut buf = [0u8; CHUNK_LEN + 64];
                let (Ok(n), Ok(terminal)) = (
                    chunk.encode(Encoding::Binary, &mut buf),
                    TerminalId::new(id),
                ) else {
                    return;
                };
                let Ok(t) = topic::topic(&self.prefix, &terminal, Channel::Chunk) else {
                    return;
                };
                if self
                    .client
                    .publish(t.as_str(), QoS::AtLeastOnce, false, buf[..n].to_vec())
                    .await
                    .is_ok()
                {
                    self.metrics.firmware_chunks_sent.fetch_add(1, Relaxed);
                }
                let step = |o: u32| o / PROGRESS_STEP;
                if state != TargetState::Downloading || step(report.offset) != step(offset_before) {
                    self.record(id, TargetState::Downloading, report.offset)
                        .await;
                }
            }
            UpdateState::Installing => self.record(id, TargetState::Installing, size).await,
            UpdateState::Installed => {
                self.record(id, TargetState::Installed, size).await;
                self.offer(id).await;
            }
            UpdateState::Refused => {
                tracing::warn!(terminal = id, version = %report.version, "firmware: the node refused the image");
                self.record(id, TargetState::Refused, 0).await;
                self.offer(id).await;
            }
            UpdateState::RolledBack => {
                tracing::warn!(terminal = id, version = %report.version, "firmware: the image did not confirm; the node rolled back");
                self.record(id, TargetState::RolledBack, size).await;
                self.offer(id).await;
            }
        }
    }
}
