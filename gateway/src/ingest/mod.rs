//! Ingest: the gateway's own MQTT session, decoding, and acknowledgement after commit.
//!
//! The session is persistent and acknowledges to the broker manually: a PUBACK leaves only
//! after the message is committed (or kept as a dead letter), so a gateway killed at any
//! instant gets its uncommitted messages again from the broker. The node's own ack
//! (`.../ack`) is published after commit too.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use weir_contract::topic::{self, Channel};
use weir_contract::{Ack, Encoding, Message, Status, Telemetry, TerminalId, Timestamp};

use crate::live::LiveEvent;
use crate::metrics::Metrics;
use crate::store::writer::{Committed, Item, Job, Outcome};

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

/// What ingest keeps with each message until its commit is reported.
#[derive(Debug)]
pub struct Token {
    /// For the broker PUBACK.
    publish: Option<Publish>,
    /// For the node's ack: which terminal, boot, seq, in which encoding.
    node_ack: Option<(TerminalId, u32, u32, Encoding)>,
}

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
    let mut opts = MqttOptions::new(&session.client_id, &session.host, session.port);
    opts.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(u64::from(session.keep_alive_s.max(5))))
        .set_max_packet_size(
            weir_contract::MAX_PAYLOAD + 1024,
            weir_contract::MAX_PAYLOAD + 1024,
        )
        .set_inflight(1000);
    if let Some((user, pass)) = &session.credentials {
        opts.set_credentials(user, pass);
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
    let acker = tokio::spawn(acknowledge(
        client.clone(),
        session.prefix.clone(),
        committed,
        metrics.clone(),
        live,
    ));
    let mut jobs = Some(jobs);
    let mut acker = Some(acker);
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::select! {
            _ = cancel.cancelled(), if jobs.is_some() => {
                tracing::info!("ingest: stopping; committing and acknowledging what arrived");
                // The writer ends once every sender is gone; the acker then ends too.
                jobs = None;
            }
            done = async { acker.as_mut().expect("acker runs until stopped").await }, if jobs.is_none() && acker.is_some() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "ingest: the acknowledging task failed");
                }
                let _ = client.disconnect().await;
                // Let the event loop send the last acks and the DISCONNECT.
                let _ = tokio::time::timeout(Duration::from_secs(2), drain(&mut eventloop)).await;
                return Ok(());
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff = Duration::from_millis(200);
                    tracing::info!(session_present = ack.session_present, "ingest: connected to the broker");
                    for channel in [Channel::Telemetry, Channel::Status] {
                        let filter = topic::filter_all(&session.prefix, channel)?;
                        client.subscribe(filter.as_str(), QoS::AtLeastOnce).await?;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let Some(tx) = &jobs else { continue };
                    metrics.messages_received.fetch_add(1, Relaxed);
                    let job = classify(&session.prefix, p, &metrics);
                    if tx.send(job).await.is_err() {
                        anyhow::bail!("the store writer stopped");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "ingest: broker connection lost; reconnecting in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

async fn drain(eventloop: &mut EventLoop) {
    while eventloop.poll().await.is_ok() {}
}

/// Decodes one incoming message into a job for the writer.
fn classify(prefix: &str, p: Publish, metrics: &Metrics) -> Job<Token> {
    let received_at = crate::store::now();
    let refuse = |p: Publish, terminal: Option<String>, e: &weir_contract::Error, node_ack| {
        let reason = e.code();
        metrics.reject(reason);
        tracing::warn!(topic = %p.topic, terminal = terminal.as_deref().unwrap_or("?"), %e, "refused a message");
        Job {
            item: Item::Refused {
                terminal,
                topic: p.topic.clone(),
                payload: p.payload.to_vec(),
                reason,
                detail: e.to_string(),
            },
            token: Token {
                publish: Some(p),
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
            match Telemetry::decode_received(&p.payload, Timestamp::from_unix(received_at)) {
                Ok(telemetry) => {
                    let encoding = Encoding::detect(&p.payload).unwrap_or(Encoding::Json);
                    let node_ack =
                        Some((terminal.clone(), telemetry.boot, telemetry.seq, encoding));
                    let raw = p.payload.clone();
                    Job {
                        item: Item::Telemetry {
                            terminal,
                            telemetry: Box::new(telemetry),
                            raw,
                        },
                        token: Token {
                            publish: Some(p),
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
                    publish: Some(p),
                    node_ack: None,
                },
                received_at,
            },
            Err(e) => refuse(p, Some(terminal.to_string()), &e, None),
        },
        // The gateway subscribes to neither; a broker may still route them here.
        Channel::Ack | Channel::Config => {
            let e = weir_contract::Error {
                field: weir_contract::Field::Top("topic"),
                reason: weir_contract::Reason::BadTopic("nodes do not publish on ack or config"),
            };
            refuse(p, Some(terminal.to_string()), &e, None)
        }
    }
}

/// Acknowledges committed messages to the broker and the nodes, and tells the live view.
async fn acknowledge(
    client: AsyncClient,
    prefix: String,
    mut committed: mpsc::UnboundedReceiver<Committed<Token>>,
    metrics: Arc<Metrics>,
    live: broadcast::Sender<LiveEvent>,
) {
    while let Some(batch) = committed.recv().await {
        metrics.commits.fetch_add(1, Relaxed);
        // Per (terminal, boot): the highest seq committed in this batch.
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
                } => {
                    messages.push((terminal.clone(), *boot, *seq));
                    metrics
                        .readings_stored
                        .fetch_add(*new_readings as u64, Relaxed);
                    metrics
                        .duplicate_readings
                        .fetch_add(*duplicate_readings as u64, Relaxed);
                }
                Outcome::DuplicateMessage { .. } => {
                    metrics.duplicate_messages.fetch_add(1, Relaxed);
                }
                Outcome::UnknownTerminal => metrics.reject("unknown_terminal"),
                Outcome::DeadLettered | Outcome::StatusSaved => {}
            }
            if matches!(outcome, Outcome::UnknownTerminal) {
                continue;
            }
            if let Some((terminal, boot, seq, enc)) = &token.node_ack {
                let e = node_acks
                    .entry((terminal.clone(), *boot))
                    .or_insert((*seq, *enc));
                if *seq >= e.0 {
                    *e = (*seq, *enc);
                }
            }
        }
        for (token, _) in batch.outcomes {
            if let Some(p) = token.publish {
                if let Err(e) = client.ack(&p).await {
                    tracing::warn!(error = %e, "could not acknowledge to the broker");
                }
            }
        }
        for ((terminal, boot), (seq, enc)) in node_acks {
            let Ok(t) = topic::topic(&prefix, &terminal, Channel::Ack) else {
                continue;
            };
            let mut buf = [0u8; 64];
            let Ok(n) = (Ack { boot, seq }).encode(enc, &mut buf) else {
                continue;
            };
            if let Err(e) = client
                .publish(t.as_str(), QoS::AtLeastOnce, true, buf[..n].to_vec())
                .await
            {
                tracing::warn!(error = %e, %terminal, "could not publish the node's ack");
            }
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
