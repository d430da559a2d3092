//! The node's MQTT link in the simulator: rumqttc, with the protocol's session settings.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event as MqttEvent, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use weir_contract::topic::{self, Channel};
use weir_contract::{Ack, Message, Status, Telemetry, TerminalId};
use weir_node::{Event, Uplink};

/// Where and as whom a node connects.
#[derive(Clone, Debug)]
pub struct UplinkConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The terminal, also the MQTT user name.
    pub id: TerminalId,
    /// The terminal's password; `None` connects without credentials (test brokers).
    pub password: Option<String>,
    /// Topic prefix.
    pub prefix: String,
    /// Where to log each telemetry message's delivery (first publication to the ack that
    /// covers it), if anywhere: `boot seq readings first_publish_wall_ms ack_wall_ms first_ts
    /// last_ts` (the times of its first and last reading, Unix seconds).
    pub delivery_log: Option<PathBuf>,
}

/// Telemetry published and not yet acknowledged: (boot, seq) -> (readings, first
/// publication in wall ms, first and last reading's time); and the log the deliveries go to.
#[derive(Debug)]
struct Deliveries {
    waiting: BTreeMap<(u32, u32), (usize, i64, i64, i64)>,
    log: std::fs::File,
}

impl Deliveries {
    fn published(&mut self, payload: &[u8]) {
        if let Ok(t) = Telemetry::decode_unvalidated(payload) {
            let first = t.readings.first().map_or(0, |r| r.ts.unix());
            let last = t.readings.last().map_or(0, |r| r.ts.unix());
            self.waiting.entry((t.boot, t.seq)).or_insert((
                t.readings.len(),
                crate::timeline::wall_now_ms(),
                first,
                last,
            ));
        }
    }

    fn acked(&mut self, ack: Ack) {
        let now = crate::timeline::wall_now_ms();
        let covered: Vec<(u32, u32)> = self
            .waiting
            .range((ack.boot, 0)..=(ack.boot, ack.seq))
            .map(|(k, _)| *k)
            .collect();
        let mut lines = String::new();
        for k in covered {
            if let Some((n, at, first, last)) = self.waiting.remove(&k) {
                lines.push_str(&format!("{} {} {n} {at} {now} {first} {last}\n", k.0, k.1));
            }
        }
        if !lines.is_empty() {
            let _ = self.log.write_all(lines.as_bytes());
        }
    }
}

/// Whether the link may be up now; a scripted dead link says no for a while.
pub type Gate = Arc<dyn Fn() -> bool + Send + Sync>;

/// Why a publication failed.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// Not connected to the broker.
    #[error("not connected")]
    Down,
    /// The outgoing queue is full (the broker is slow to acknowledge).
    #[error("the outgoing queue is full")]
    Busy,
}

enum LinkEvent {
    Connected,
    Disconnected,
    Message(Channel, Bytes),
}

/// A terminal's MQTT connection, driven by its own task.
///
/// Persistent session, QoS 1, subscriptions to `ack` and `config` at each connection, and the
/// last will `Status::offline()` retained on `status`. Dropping it cuts the connection
/// without a goodbye, as a power cut would (the broker then publishes the last will).
pub struct MqttUplink {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    connected: Arc<AtomicBool>,
    telemetry_topic: String,
    status_topic: String,
    update_topic: String,
    current: Bytes,
    task: JoinHandle<()>,
    deliveries: Option<Arc<Mutex<Deliveries>>>,
}

impl std::fmt::Debug for MqttUplink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttUplink")
            .field("topic", &self.telemetry_topic)
            .field("connected", &self.connected.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl MqttUplink {
    /// Starts connecting (and reconnecting, for as long as it lives) while `gate` allows.
    pub fn start(config: &UplinkConfig, gate: Gate) -> Result<Self, weir_contract::Error> {
        let topic_of = |channel| -> Result<String, weir_contract::Error> {
            Ok(topic::topic(&config.prefix, &config.id, channel)?.to_string())
        };
        let status_topic = topic_of(Channel::Status)?;
        let mut offline = [0u8; 16];
        let len = Status::offline().encode(weir_node::ENCODING, &mut offline)?;

        let mut options = MqttOptions::new(
            format!("weir-node-{}", config.id),
            config.host.clone(),
            config.port,
        );
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(false)
            .set_last_will(LastWill::new(
                status_topic.clone(),
                offline[..len].to_vec(),
                QoS::AtLeastOnce,
                true,
            ));
        if let Some(password) = &config.password {
            options.set_credentials(config.id.as_str(), password.clone());
        }
        let deliveries = config.delivery_log.as_ref().and_then(|path| {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            match log {
                Ok(log) => Some(Arc::new(Mutex::new(Deliveries {
                    waiting: BTreeMap::new(),
                    log,
                }))),
                Err(e) => {
                    tracing::warn!("opening {}: {e}; deliveries are not logged", path.display());
                    None
                }
            }
        });
        let (client, eventloop) = AsyncClient::new(options, 256);
        let (tx, events) = mpsc::unbounded_channel();
        let connected = Arc::new(AtomicBool::new(false));
        let subscriptions = [
            topic_of(Channel::Ack)?,
            topic_of(Channel::Config)?,
            topic_of(Channel::Firmware)?,
            topic_of(Channel::Chunk)?,
        ];
        let task = tokio::spawn(drive(
            eventloop,
            client.clone(),
            subscriptions,
            config.prefix.clone(),
            tx,
            connected.clone(),
            gate,
            deliveries.clone(),
        ));
        Ok(MqttUplink {
            client,
            events,
            connected,
            telemetry_topic: topic_of(Channel::Telemetry)?,
            update_topic: topic_of(Channel::Update)?,
            status_topic,
            current: Bytes::new(),
            task,
            deliveries,
        })
    }

    /// Disconnects cleanly (no last will) after what was published is sent.
    pub async fn disconnect(&mut self) {
        if self.connected.load(Ordering::Relaxed) {
            let _ = self.client.try_disconnect();
            // Lets the event loop send what is queued and the DISCONNECT.
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        }
        self.task.abort();
    }
}

impl Drop for MqttUplink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Uplink for MqttUplink {
    type Error = UplinkError;

    async fn publish(
        &mut self,
        channel: Channel,
        payload: &[u8],
        retain: bool,
    ) -> Result<(), UplinkError> {
        if !self.connected.load(Ordering::Relaxed) {
            return Err(UplinkError::Down);
        }
        let topic = match channel {
            Channel::Status => &self.status_topic,
            Channel::Update => &self.update_topic,
            _ => &self.telemetry_topic,
        };
        self.client
            .try_publish(topic.as_str(), QoS::AtLeastOnce, retain, payload.to_vec())
            .map_err(|_| UplinkError::Busy)?;
        if let (Channel::Telemetry, Some(d)) = (channel, &self.deliveries) {
            if let Ok(mut d) = d.lock() {
                d.published(payload);
            }
        }
        Ok(())
    }

    async fn next_event(&mut self) -> Event<'_> {
        match self.events.recv().await {
            Some(LinkEvent::Connected) => Event::Connected,
            Some(LinkEvent::Disconnected) => Event::Disconnected,
            Some(LinkEvent::Message(channel, payload)) => {
                self.current = payload;
                Event::Message {
                    channel,
                    payload: &self.current,
                }
            }
            // The event task ended: no more events.
            None => std::future::pending().await,
        }
    }
}

/// Polls the event loop: reports connections and incoming acks and configurations, and
/// drops the connection while the gate is closed.
#[allow(clippy::too_many_arguments)]
async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscriptions: [String; 4],
    prefix: String,
    tx: mpsc::UnboundedSender<LinkEvent>,
    connected: Arc<AtomicBool>,
    gate: Gate,
    deliveries: Option<Arc<Mutex<Deliveries>>>,
) {
    let mut backoff = Duration::from_millis(100);
    let lost = |tx: &mpsc::UnboundedSender<LinkEvent>| {
        if connected.swap(false, Ordering::Relaxed) {
            let _ = tx.send(LinkEvent::Disconnected);
        }
    };
    loop {
        if !gate() {
            lost(&tx);
            // Drop the connection as a dead link would; requests stay queued for later.
            eventloop.clean();
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let polled = tokio::select! {
            polled = eventloop.poll() => polled,
            () = gate_closes(&gate) => continue,
        };
        match polled {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                // Queued behind whatever the node published while the link was down: with
                // the request queue full, a subscription tried without waiting was lost, and
                // the node never heard an ack again.
                let (client, subscriptions) = (client.clone(), subscriptions.clone());
                tokio::spawn(async move {
                    for topic in subscriptions {
                        if client.subscribe(topic, QoS::AtLeastOnce).await.is_err() {
                            break;
                        }
                    }
                });
                connected.store(true, Ordering::Relaxed);
                let _ = tx.send(LinkEvent::Connected);
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                if let Ok((_, channel)) = topic::parse(&prefix, &p.topic) {
                    if let (Channel::Ack, Some(d), Ok(ack)) =
                        (channel, &deliveries, Ack::decode(&p.payload))
                    {
                        if let Ok(mut d) = d.lock() {
                            d.acked(ack);
                        }
                    }
                    let _ = tx.send(LinkEvent::Message(channel, p.payload));
                }
            }
            Ok(_) => {}
            Err(e) => {
                lost(&tx);
                tracing::debug!(error = %e, "link down");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn gate_closes(gate: &Gate) {
    while gate() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
