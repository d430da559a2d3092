//! The retained acks of the terminals a member takes over: where each node's unbroken run of
//! stored messages ends, as the member that held them last told the node.

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS, SubscribeFilter};
use weir_contract::topic::{self, Channel};
use weir_contract::{Ack, Message as _, TerminalId};

use crate::ingest::Session;

/// Most filters in one SUBSCRIBE: about 6 KB, under rumqttc's bound on a packet (10 KB).
const PER_SUBSCRIBE: usize = 200;

/// Each terminal's retained ack `{prefix}/terminals/{id}/ack`, read on a connection of its own
/// (`{session.client_id}-{suffix}`). Terminals without one are left out. Gives up after
/// `wait` without a complete answer.
pub async fn retained(
    session: &Session,
    suffix: &str,
    terminals: &[String],
    wait: Duration,
) -> anyhow::Result<BTreeMap<String, Ack>> {
    let mut out = BTreeMap::new();
    if terminals.is_empty() {
        return Ok(out);
    }
    let topics: BTreeMap<String, String> = terminals
        .iter()
        .filter_map(|t| {
            let id = TerminalId::new(t).ok()?;
            let topic = topic::topic(&session.prefix, &id, Channel::Ack).ok()?;
            Some((topic.to_string(), t.clone()))
        })
        .collect();
    let batches: Vec<Vec<SubscribeFilter>> = topics
        .keys()
        .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce))
        .collect::<Vec<_>>()
        .chunks(PER_SUBSCRIBE)
        .map(<[SubscribeFilter]>::to_vec)
        .collect();
    // Room for every SUBSCRIBE at once: they are queued from the task that polls the
    // connection, so a full queue would wait for ever.
    let (client, mut events) = AsyncClient::new(session.side_connection(suffix), batches.len() + 8);
    let mut subacks_due = batches.len();
    let deadline = tokio::time::Instant::now() + wait;
    let mut quiet_until: Option<tokio::time::Instant> = None;
    loop {
        let next = match quiet_until {
            // The broker sends retained messages right after each SUBACK: once every SUBACK
            // is in, a short silence means they have all come.
            Some(q) => q.min(deadline),
            None => deadline,
        };
        let ev = tokio::select! {
            ev = events.poll() => ev,
            _ = tokio::time::sleep_until(next) => break,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                for b in &batches {
                    client.subscribe_many(b.clone()).await?;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                subacks_due = subacks_due.saturating_sub(1);
                if subacks_due == 0 {
                    quiet_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let (Some(t), Ok(ack)) = (topics.get(&p.topic), Ack::decode(&p.payload)) {
                    out.insert(t.clone(), ack);
                }
                if subacks_due == 0 {
                    quiet_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
                }
            }
            Ok(_) => {}
            Err(e) => anyhow::bail!("reading the retained acks: {e}"),
        }
    }
    drop(events);
    anyhow::ensure!(
        subacks_due == 0,
        "the broker did not answer the subscriptions to the retained acks within {wait:?}"
    );
    Ok(out)
}
