//! Ingest: the gateway's own MQTT session, decoding, and acknowledgement after commit.
//!
//! The session is persistent and acknowledges to the broker manually: a PUBACK leaves only
//! after the message is committed (or kept as a dead letter), so a gateway killed at any
//! instant gets its uncommitted messages again from the broker. The node's own ack
//! (`.../ack`) is published after commit too.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use rumqttc::mqttbytes::v4::{Packet, Publish};
use rumqttc::mqttbytes::QoS;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use weir_contract::topic::{self, Channel};
use weir_contract::{Ack, Encoding, Message, Status, Telemetry, TerminalId, Timestamp};

mod session;

use crate::live::LiveEvent;
use crate::metrics::Metrics;
use weir_store::writer::{Committed, Item, Job, Outcome};

/// Where and how the gateway's MQTT session connects.
#[derive(Clone, Debug)]
pub struct Session {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Credentials, if the broker wants them.
    pub credentials: Option<(String, String)>,
    /// Stable client id (the session is persistent).
    pub client_id: String,
    /// Topic prefix.
    pub prefix: String,
    /// Keep alive, seconds.
    pub keep_alive_s: u16,
}

impl Session {
    /// Options for another connection of the gateway's own, beside the ingest session: client
    /// id `{client_id}-{suffix}`, a clean session, the same login and keep alive.
    pub fn side_connection(&self, suffix: &str) -> rumqttc::MqttOptions {
        let mut opts = rumqttc::MqttOptions::new(
            format!("{}-{suffix}", self.client_id),
            self.host.clone(),
            self.port,
        );
        opts.set_keep_alive(Duration::from_secs(u64::from(self.keep_alive_s.max(5))))
            .set_clean_session(true);
        if let Some((user, password)) = &self.credentials {
            opts.set_credentials(user, password);
        }
        opts
    }
}

/// What ingest keeps with each message until its commit is reported.
#[derive(Debug)]
pub struct Token {
    /// For the broker PUBACK: the packet id, on connection `generation` (QoS 0: none).
    pkid: Option<u16>,
    generation: u64,
    /// For the node's ack: which terminal, boot, seq, in which encoding.
    node_ack: Option<(TerminalId, u32, u32, Encoding)>,
}

/// The connection acknowledgements go to: its generation and its writer task.
type Link = Arc<Mutex<Option<(u64, mpsc::UnboundedSender<bytes::BytesMut>)>>>;

/// Runs the session until `cancel`; then stops taking messages, waits for the writer to commit
/// what it has, acknowledges it, and disconnects.
pub async fn run(
    session: Session,
    jobs: mpsc::Sender<Job<Token>>,
    committed: mpsc::UnboundedReceiver<Committed<Token>>,
    metrics: Arc<Metrics>,
    live: broadcast::Sender<LiveEvent>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let filters: Vec<String> = [Channel::Telemetry, Channel::Status]
        .into_iter()
        .map(|c| topic::filter_all(&session.prefix, c).map(|t| t.to_string()))
        .collect::<Result<_, _>>()?;
    run_filtered(session, filters, jobs, committed, metrics, live, cancel).await
}

/// [`run`], subscribed to `filters` (at least one) instead of every terminal's telemetry and
/// status: a gateway of a cluster takes only its share of the terminals (`crate::cluster`).
pub async fn run_filtered(
    session: Session,
    filters: Vec<String>,
    jobs: mpsc::Sender<Job<Token>>,
    committed: mpsc::UnboundedReceiver<Committed<Token>>,
    metrics: Arc<Metrics>,
    live: broadcast::Sender<LiveEvent>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !filters.is_empty(),
        "ingest needs at least one topic filter"
    );
    let link: Link = Arc::new(Mutex::new(None));
    let mut acker = tokio::spawn(acknowledge(
        link.clone(),
        session.prefix.clone(),
        committed,
        metrics.clone(),
        live,
    ));
    let _watch =
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(watch_the_store(metrics.clone())));
    let mut jobs = Some(jobs);
    let mut generation = 0u64;
    // Every message is decoded into this one (see `Telemetry::decode_received_into`).
    let mut scratch = Box::<Telemetry>::default();
    let mut backoff = Duration::from_millis(200);
    let keep_alive = Duration::from_secs(u64::from(session.keep_alive_s.max(5)));
    'connect: loop {
        if jobs.is_none() {
            break;
        }
        let (mut reader, mut write_half) = tokio::select! {
            _ = cancel.cancelled() => { drop(jobs.take()); break 'connect; }
            c = session::connect(&session, &filters) => match c {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "ingest: cannot reach the broker; retrying in {backoff:?}");
                    tokio::select! {
                        _ = cancel.cancelled() => { drop(jobs.take()); break 'connect; }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue 'connect;
                }
            }
        };
        backoff = Duration::from_millis(200);
        generation += 1;
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<bytes::BytesMut>();
        let writer = tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if let Err(e) = write_half.write_all(&bytes).await {
                    tracing::warn!(error = %e, "ingest: writing to the broker failed");
                    break;
                }
            }
            let _ = write_half.shutdown().await;
        });
        if let Ok(mut l) = link.lock() {
            *l = Some((generation, out_tx.clone()));
        }
        let mut ping = tokio::time::interval(keep_alive / 2);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    tracing::info!("ingest: stopping; committing and acknowledging what arrived");
                    // The writer thread ends once every sender is gone; the acker then ends.
                    drop(jobs.take());
                    let _ = (&mut acker).await;
                    let mut bye = bytes::BytesMut::new();
                    let _ = rumqttc::mqttbytes::v4::Disconnect.write(&mut bye);
                    let _ = out_tx.send(bye);
                    drop(out_tx);
                    if let Ok(mut l) = link.lock() {
                        *l = None;
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
                    // Read until the broker closes: closing a socket with unread data sends a
                    // reset, and a broker that has not yet read the last acks and the
                    // DISCONNECT loses them with it. What it sends meanwhile is not
                    // acknowledged, so it is delivered again after the restart.
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        while reader.next().await.is_ok() {}
                    })
                    .await;
                    return Ok(());
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > keep_alive * 3 / 2 {
                        tracing::warn!("ingest: the broker stopped answering; reconnecting");
                        break;
                    }
                    let mut out = session::Outgoing::default();
                    out.ping();
                    let _ = out_tx.send(out.take());
                }
                packet = reader.next() => match packet {
                    Ok(Packet::Publish(p)) => {
                        last_heard = tokio::time::Instant::now();
                        let Some(tx) = &jobs else { continue };
                        metrics.messages_received.fetch_add(1, Relaxed);
                        let job = classify(&session.prefix, p, generation, &metrics, &mut scratch);
                        metrics.store_handed();
                        if tx.send(job).await.is_err() {
                            anyhow::bail!("the store writer stopped");
                        }
                    }
                    Ok(Packet::SubAck(ack)) => {
                        last_heard = tokio::time::Instant::now();
                        if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                            anyhow::bail!("the broker refused the gateway's subscriptions ({} filters, such as {:?}): check its ACL", filters.len(), &filters[..filters.len().min(4)]);
                        }
                    }
                    Ok(_) => last_heard = tokio::time::Instant::now(),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "ingest: broker connection lost; reconnecting");
                        break;
                    }
                }
            }
        }
        // Messages of this connection not yet acknowledged will be sent again by the broker.
        if let Ok(mut l) = link.lock() {
            *l = None;
        }
        drop(out_tx);
        let _ = writer.await;
    }
    let _ = acker.await;
    Ok(())
}

/// Says in the log when the store stops committing while messages wait (a full disk, an I/O
/// error): nothing is acknowledged meanwhile, so the nodes keep their readings. The same
/// state is `weir_store_stalled_seconds` in /metrics.
async fn watch_the_store(metrics: Arc<Metrics>) {
    const AFTER_S: f64 = 10.0;
    let mut told = false;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let stalled = metrics.store_stalled_s();
        let waiting = metrics.store_waiting.load(Relaxed);
        if stalled >= AFTER_S && !told {
            tracing::error!(
                stalled_s = stalled.round(),
                waiting,
                "the store has committed nothing for {stalled:.0} s while {waiting} messages wait: \
                 nothing is acknowledged until it can write again (disk full? see the store writer's errors)"
            );
            told = true;
        } else if stalled < AFTER_S && told {
            tracing::warn!("the store commits again");
            told = false;
        }
    }
}

/// Decodes one incoming message into a job for the writer.
fn classify(
    prefix: &str,
    p: Publish,
    generation: u64,
    metrics: &Metrics,
    scratch: &mut Telemetry,
) -> Job<Token> {
    let pkid = (p.qos != QoS::AtMostOnce).then_some(p.pkid);
    let received_at = weir_store::now();
    let refuse = |p: Publish,
                  terminal: Option<String>,
                  e: &weir_contract::Error,
                  node_ack: Option<(TerminalId, u32, u32, Encoding)>| {
        let reason = e.code();
        metrics.reject(reason);
        tracing::warn!(topic = %p.topic, terminal = terminal.as_deref().unwrap_or("?"), %e, "refused a message");
        Job {
            item: Item::Refused {
                terminal,
                topic: p.topic,
                payload: p.payload.to_vec(),
                reason,
                detail: e.to_string(),
                message: node_ack.as_ref().map(|(_, boot, seq, _)| (*boot, *seq)),
            },
            token: Token {
                pkid,
                generation,
                node_ack,
            },
            received_at,
        }
    };
    let (terminal, channel) = match topic::parse(prefix, &p.topic) {
        Ok(parsed) => parsed,
        Err(e) => return refuse(p, None, &e, None),
    };
    match channel {
        Channel::Telemetry => {
            match scratch.decode_received_into(&p.payload, Timestamp::from_unix(received_at)) {
                Ok(()) => {
                    let telemetry = &*scratch;
                    let encoding = Encoding::detect(&p.payload).unwrap_or(Encoding::Json);
                    let node_ack =
                        Some((terminal.clone(), telemetry.boot, telemetry.seq, encoding));
                    let raw = p.payload.clone();
                    Job {
                        item: Item::Telemetry {
                            terminal,
                            telemetry: telemetry.into(),
                            topic: p.topic,
                            raw,
                        },
                        token: Token {
                            pkid,
                            generation,
                            node_ack,
                        },
                        received_at,
                    }
                }
                Err(e) => {
                    // A message that decodes but breaks a rule is acknowledged all the same:
                    // sending it again cannot make it valid.
                    let node_ack = Telemetry::decode_unvalidated(&p.payload).ok().map(|t| {
                        let enc = Encoding::detect(&p.payload).unwrap_or(Encoding::Json);
                        (terminal.clone(), t.boot, t.seq, enc)
                    });
                    refuse(p, Some(terminal.to_string()), &e, node_ack)
                }
            }
        }
        Channel::Status => match Status::decode(&p.payload) {
            Ok(status) => Job {
                item: Item::Status { terminal, status },
                token: Token {
                    pkid,
                    generation,
                    node_ack: None,
                },
                received_at,
            },
            Err(e) => refuse(p, Some(terminal.to_string()), &e, None),
        },
        // Ingest subscribes to none of these (the firmware service takes `update` on its own
        // connection); a broker may still route them here.
        Channel::Ack | Channel::Config | Channel::Firmware | Channel::Chunk | Channel::Update => {
            let e = weir_contract::Error {
                field: weir_contract::Field::Top("topic"),
                reason: weir_contract::Reason::BadTopic("ingest takes only telemetry and status"),
            };
            refuse(p, Some(terminal.to_string()), &e, None)
        }
    }
}

/// Acknowledges committed messages to the broker and the nodes, and tells the live view.
async fn acknowledge(
    link: Link,
    prefix: String,
    mut committed: mpsc::UnboundedReceiver<Committed<Token>>,
    metrics: Arc<Metrics>,
    live: broadcast::Sender<LiveEvent>,
) {
    // Kept across batches: packet ids go on counting (a broker may still hold an earlier
    // batch's ids in flight), and each node's ack only ever moves forward, so a late replay
    // of an old message does not pull the retained ack back.
    let mut out = session::Outgoing::default();
    let mut highest: HashMap<TerminalId, (u32, u32)> = HashMap::new();
    while let Some(batch) = committed.recv().await {
        metrics.commits.fetch_add(1, Relaxed);
        metrics.store_committed(batch.outcomes.len() as u64);
        metrics
            .ack_gaps_passed_over
            .fetch_add(batch.gaps_passed_over as u64, Relaxed);
        metrics
            .ack_held_above_gaps
            .store(batch.held_above_gaps as u64, Relaxed);
        // Per (terminal, boot): how far the node may be acknowledged after this batch.
        let mut node_acks: BTreeMap<(TerminalId, u32), (u32, Encoding)> = BTreeMap::new();
        let mut messages = Vec::new();
        for (token, outcome) in &batch.outcomes {
            match outcome {
                Outcome::Stored {
                    terminal,
                    boot,
                    seq,
                    new_readings,
                    duplicate_readings,
                    expired_readings,
                    ..
                } => {
                    messages.push((terminal.clone(), *boot, *seq));
                    metrics
                        .readings_stored
                        .fetch_add(*new_readings as u64, Relaxed);
                    metrics
                        .duplicate_readings
                        .fetch_add(*duplicate_readings as u64, Relaxed);
                    metrics
                        .duplicate_readings_in_new_messages
                        .fetch_add(*duplicate_readings as u64, Relaxed);
                    metrics
                        .expired_readings
                        .fetch_add(*expired_readings as u64, Relaxed);
                }
                Outcome::DuplicateMessage {
                    duplicate_readings, ..
                } => {
                    metrics.duplicate_messages.fetch_add(1, Relaxed);
                    metrics
                        .duplicate_readings
                        .fetch_add(*duplicate_readings as u64, Relaxed);
                }
                Outcome::UnknownTerminal => metrics.reject("unknown_terminal"),
                Outcome::DeadLettered { .. } | Outcome::StatusSaved => {}
            }
            // The writer says how far the node may be acknowledged: up to where it holds
            // the node's messages without a gap, never simply up to this message.
            let ack = match outcome {
                Outcome::Stored { ack, .. }
                | Outcome::DuplicateMessage { ack, .. }
                | Outcome::DeadLettered { ack } => *ack,
                Outcome::UnknownTerminal | Outcome::StatusSaved => None,
            };
            if let (Some((terminal, boot, _, enc)), Some(seq)) = (&token.node_ack, ack) {
                let e = node_acks
                    .entry((terminal.clone(), *boot))
                    .or_insert((seq, *enc));
                if seq >= e.0 {
                    *e = (seq, *enc);
                }
            }
        }
        // Everything for the broker goes out in one write, on the connection the messages
        // came on; if it is gone, the broker sends them again and they are acked then.
        let current = link.lock().ok().and_then(|l| l.clone());
        if let Some((generation, tx)) = current {
            for (token, _) in &batch.outcomes {
                if let (Some(pkid), true) = (token.pkid, token.generation == generation) {
                    out.puback(pkid);
                }
            }
            for ((terminal, boot), (seq, enc)) in node_acks {
                // An ack of an older boot (a late replay) is sent but not retained: the
                // retained ack stays the current boot's.
                let (seq, retain) = match highest.get_mut(&terminal) {
                    Some((b, s)) if *b == boot => {
                        *s = (*s).max(seq);
                        (*s, true)
                    }
                    Some((b, _)) if *b > boot => (seq, false),
                    _ => {
                        highest.insert(terminal.clone(), (boot, seq));
                        (seq, true)
                    }
                };
                let Ok(t) = topic::topic(&prefix, &terminal, Channel::Ack) else {
                    continue;
                };
                let mut buf = [0u8; 64];
                let Ok(n) = (Ack { boot, seq }).encode(enc, &mut buf) else {
                    continue;
                };
                tracing::debug!(%terminal, boot, seq, "node ack");
                out.publish(t.as_str(), buf[..n].to_vec(), retain);
            }
            let _ = tx.send(out.take());
        } else {
            tracing::debug!(outcomes = batch.outcomes.len(), "no link: acks not sent");
        }
        if !messages.is_empty() || !batch.statuses.is_empty() {
            let _ = live.send(LiveEvent::Committed {
                messages: Arc::new(messages),
                readings: Arc::new(batch.readings),
                statuses: Arc::new(batch.statuses),
            });
        }
    }
}
