//! A client's session: its subscriptions, the messages waiting for it and those sent but not
//! yet acknowledged. It outlives the connection when the client asked for a persistent session.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::LastWill;
use rumqttc::mqttbytes::QoS;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::policy::Identity;
use crate::wire::write_publish;

/// A published message, shared by every session it is delivered to.
#[derive(Debug)]
pub(crate) struct Message {
    pub topic: String,
    pub payload: Bytes,
}

/// The lower of two QoS levels (`QoS` is only `PartialOrd`).
pub(crate) fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) {
        a
    } else {
        b
    }
}

/// One message on its way to one client.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub msg: Arc<Message>,
    pub qos: QoS,
    /// Set only for retained messages sent because of a new subscription (MQTT-3.3.1-8/9).
    pub retain: bool,
}

impl Delivery {
    /// What the message counts against `max_queued_bytes`: its topic and payload. (Several
    /// queues may share one copy; each counts it whole, so the bound holds for each alone.)
    fn size(&self) -> usize {
        self.msg.topic.len() + self.msg.payload.len()
    }
}

/// Messages [`Session::enqueue`] dropped to stay within its bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// Because the queue held `max_queued` messages.
    pub for_count: u64,
    /// Because the queue held too many bytes for the new message (`max_queued_bytes`).
    pub for_bytes: u64,
}

impl std::ops::AddAssign for Dropped {
    fn add_assign(&mut self, other: Dropped) {
        self.for_count += other.for_count;
        self.for_bytes += other.for_bytes;
    }
}

/// A session queue's bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueBounds {
    pub max_queued: usize,
    pub max_queued_bytes: usize,
}

#[derive(Debug)]
struct Inflight {
    pkid: u16,
    delivery: Delivery,
}

/// The connection currently serving a session.
#[derive(Debug)]
pub(crate) struct Attachment {
    /// Tells connections apart, so that a connection that was taken over changes nothing.
    pub id: u64,
    /// Wakes the connection when messages are queued for it.
    pub notify: Arc<Notify>,
    /// Closes the connection when another one takes the session over.
    pub kick: CancellationToken,
    /// Published if the connection ends without DISCONNECT.
    pub will: Option<LastWill>,
}

/// What [`Session::fill`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Filled {
    /// PUBLISH packets written.
    pub written: u64,
    /// Whether more could be written now, were the buffer not full.
    pub more: bool,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub client_id: Arc<str>,
    pub identity: Identity,
    /// Ends with the connection (clean session) rather than outliving it.
    pub clean: bool,
    /// Filter -> granted QoS.
    pub subscriptions: HashMap<String, QoS>,
    /// Packet ids of QoS 2 messages received and routed but not yet released by PUBREL.
    pub incoming_qos2: HashSet<u16>,
    pub attachment: Option<Attachment>,
    /// When a connection last attached or detached.
    pub last_seen: Instant,
    queue: VecDeque<Delivery>,
    /// The size of what `queue` holds (see [`Delivery::size`]).
    queued_bytes: usize,
    /// Sent QoS 1 messages awaiting PUBACK, oldest first.
    inflight: VecDeque<Inflight>,
    /// How many of `inflight` were sent on the current connection; the rest are re-sent.
    inflight_sent: usize,
    next_pkid: u16,
    /// Whether messages are being dropped, so that it is logged once per episode.
    dropping: bool,
}

impl Session {
    pub fn new(client_id: Arc<str>, identity: Identity, clean: bool) -> Self {
        Session {
            client_id,
            identity,
            clean,
            subscriptions: HashMap::new(),
            incoming_qos2: HashSet::new(),
            attachment: None,
            last_seen: Instant::now(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            inflight: VecDeque::new(),
            inflight_sent: 0,
            next_pkid: 1,
            dropping: false,
        }
    }

    /// Queues `delivery`, first dropping the oldest queued messages while the queue holds
    /// `max_queued` messages, or while the new one would take it past `max_queued_bytes`
    /// (a message larger than that alone is still queued, alone).
    pub fn enqueue(&mut self, delivery: Delivery, bounds: QueueBounds) -> Dropped {
        let mut dropped = Dropped::default();
        while self.queue.len() >= bounds.max_queued {
            self.pop_front();
            dropped.for_count += 1;
        }
        let size = delivery.size();
        while !self.queue.is_empty() && self.queued_bytes + size > bounds.max_queued_bytes {
            self.pop_front();
            dropped.for_bytes += 1;
        }
        if dropped != Dropped::default() && !self.dropping {
            self.dropping = true;
            tracing::warn!(
                client_id = %self.client_id,
                max_queued = bounds.max_queued,
                max_queued_bytes = bounds.max_queued_bytes,
                "session queue full: dropping its oldest messages"
            );
        }
        self.queued_bytes += size;
        self.queue.push_back(delivery);
        dropped
    }

    fn pop_front(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes -= d.size();
        Some(d)
    }

    /// The size of the messages waiting to be sent.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether the session is persistent, offline, and was last seen `expiry` or more ago.
    pub fn expired(&self, now: Instant, expiry: std::time::Duration) -> bool {
        !self.clean && self.attachment.is_none() && now.duration_since(self.last_seen) >= expiry
    }

    /// Messages waiting to be sent.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Starts serving the session on a new connection: every unacknowledged message is sent
    /// again, with DUP set.
    pub fn attach(&mut self, attachment: Attachment) {
        self.attachment = Some(attachment);
        self.last_seen = Instant::now();
        self.inflight_sent = 0;
    }

    /// Stops serving the session on its connection; returns that connection's attachment.
    pub fn detach(&mut self) -> Option<Attachment> {
        self.last_seen = Instant::now();
        self.attachment.take()
    }

    /// Removes the message acknowledged by PUBACK `pkid`; false if none had that id.
    pub fn acked(&mut self, pkid: u16) -> bool {
        // Acks come in order almost always, so the front is where to look first.
        let Some(i) = self.inflight.iter().position(|m| m.pkid == pkid) else {
            return false;
        };
        self.inflight.remove(i);
        if i < self.inflight_sent {
            self.inflight_sent -= 1;
        }
        true
    }

    /// Writes what may be sent now into `buf`, until it holds `high_water` bytes: first the
    /// unacknowledged messages not yet re-sent on this connection, then the queue while fewer
    /// than `max_inflight` QoS 1 messages await acknowledgement.
    pub fn fill(&mut self, buf: &mut BytesMut, max_inflight: usize, high_water: usize) -> Filled {
        let mut written = 0;
        while self.inflight_sent < self.inflight.len() {
            if buf.len() >= high_water {
                return Filled {
                    written,
                    more: true,
                };
            }
            let m = &self.inflight[self.inflight_sent];
            write(buf, &m.delivery, m.pkid, true);
            self.inflight_sent += 1;
            written += 1;
        }
        while let Some(next) = self.queue.front() {
            if next.qos != QoS::AtMostOnce && self.inflight.len() >= max_inflight {
                break;
            }
            if buf.len() >= high_water {
                return Filled {
                    written,
                    more: true,
                };
            }
            let Some(delivery) = self.pop_front() else {
                break;
            };
            if delivery.qos == QoS::AtMostOnce {
                write(buf, &delivery, 0, false);
            } else {
                let pkid = self.next_pkid();
                write(buf, &delivery, pkid, false);
                self.inflight.push_back(Inflight { pkid, delivery });
                self.inflight_sent += 1;
            }
            written += 1;
        }
        if self.queue.is_empty() {
            self.dropping = false;
        }
        Filled {
            written,
            more: false,
        }
    }

    /// A packet id not used by any message in flight.
    fn next_pkid(&mut self) -> u16 {
        loop {
            let pkid = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.iter().any(|m| m.pkid == pkid) {
                return pkid;
            }
        }
    }
}

fn write(buf: &mut BytesMut, d: &Delivery, pkid: u16, dup: bool) {
    write_publish(
        buf,
        &d.msg.topic,
        &d.msg.payload,
        d.qos,
        pkid,
        dup,
        d.retain,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{Packet, Publish};
    use weir_contract::TerminalId;

    fn session() -> Session {
        let id = Identity::Terminal(TerminalId::new("HY-001").unwrap());
        Session::new("c".into(), id, false)
    }

    fn delivery(n: u32, qos: QoS) -> Delivery {
        Delivery {
            msg: Arc::new(Message {
                topic: "t".into(),
                payload: Bytes::from(n.to_string()),
            }),
            qos,
            retain: false,
        }
    }

    fn bounds(max_queued: usize) -> QueueBounds {
        QueueBounds {
            max_queued,
            max_queued_bytes: usize::MAX,
        }
    }

    fn decode(buf: &mut BytesMut) -> Vec<Publish> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            match Packet::read(buf, usize::MAX).unwrap() {
                Packet::Publish(p) => out.push(p),
                other => panic!("{other:?}"),
            }
        }
        out
    }

    fn payloads(ps: &[Publish]) -> Vec<String> {
        ps.iter()
            .map(|p| String::from_utf8(p.payload.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn a_full_queue_drops_its_oldest_message() {
        let mut s = session();
        let dropped: u64 = (0..5)
            .map(|n| {
                s.enqueue(delivery(n, QoS::AtLeastOnce), bounds(3))
                    .for_count
            })
            .sum();
        assert_eq!(dropped, 2);
        let mut buf = BytesMut::new();
        s.fill(&mut buf, 10, usize::MAX);
        assert_eq!(payloads(&decode(&mut buf)), ["2", "3", "4"]);
    }

    #[test]
    fn a_queue_over_its_byte_bound_drops_its_oldest_messages_and_keeps_count_of_its_bytes() {
        let mut s = session();
        // Topic "t" and a payload of one or two digits: 2 or 3 bytes each.
        let b = QueueBounds {
            max_queued: 100,
            max_queued_bytes: 6,
        };
        let mut dropped = Dropped::default();
        for n in [1, 2, 3, 10] {
            dropped += s.enqueue(delivery(n, QoS::AtLeastOnce), b);
        }
        assert_eq!(
            dropped,
            Dropped {
                for_count: 0,
                for_bytes: 2
            }
        );
        assert_eq!(s.queued_bytes(), 5);
        let mut buf = BytesMut::new();
        s.fill(&mut buf, 10, usize::MAX);
        assert_eq!(payloads(&decode(&mut buf)), ["3", "10"]);
        assert_eq!(s.queued_bytes(), 0);
    }

    #[test]
    fn no_more_than_max_inflight_messages_await_acknowledgement() {
        let mut s = session();
        for n in 0..5 {
            s.enqueue(delivery(n, QoS::AtLeastOnce), bounds(100));
        }
        let mut buf = BytesMut::new();
        let f = s.fill(&mut buf, 2, usize::MAX);
        assert_eq!(
            f,
            Filled {
                written: 2,
                more: false
            }
        );
        let sent = decode(&mut buf);
        assert_eq!(payloads(&sent), ["0", "1"]);
        assert_eq!(s.fill(&mut buf, 2, usize::MAX).written, 0);
        assert!(s.acked(sent[0].pkid));
        assert!(!s.acked(sent[0].pkid), "an id is acknowledged once");
        s.fill(&mut buf, 2, usize::MAX);
        assert_eq!(payloads(&decode(&mut buf)), ["2"]);
    }

    #[test]
    fn qos0_messages_are_not_held_back_by_the_inflight_limit_unless_behind_a_qos1_one() {
        let mut s = session();
        s.enqueue(delivery(0, QoS::AtLeastOnce), bounds(100));
        s.enqueue(delivery(1, QoS::AtMostOnce), bounds(100));
        s.enqueue(delivery(2, QoS::AtLeastOnce), bounds(100));
        s.enqueue(delivery(3, QoS::AtMostOnce), bounds(100));
        let mut buf = BytesMut::new();
        s.fill(&mut buf, 1, usize::MAX);
        // Order is kept: "3" waits behind "2", which waits for a free slot.
        assert_eq!(payloads(&decode(&mut buf)), ["0", "1"]);
    }

    #[test]
    fn a_new_connection_gets_unacknowledged_messages_again_with_dup_then_the_queue() {
        let mut s = session();
        for n in 0..4 {
            s.enqueue(delivery(n, QoS::AtLeastOnce), bounds(100));
        }
        let mut buf = BytesMut::new();
        s.fill(&mut buf, 2, usize::MAX);
        let first = decode(&mut buf);
        s.acked(first[0].pkid);
        s.attach(Attachment {
            id: 2,
            notify: Arc::default(),
            kick: CancellationToken::new(),
            will: None,
        });
        s.fill(&mut buf, 2, usize::MAX);
        let again = decode(&mut buf);
        assert_eq!(payloads(&again), ["1", "2"]);
        assert!(again[0].dup && again[0].pkid == first[1].pkid);
        assert!(!again[1].dup);
    }

    #[test]
    fn filling_stops_at_the_high_water_mark_and_says_there_is_more() {
        let mut s = session();
        for n in 0..10 {
            s.enqueue(delivery(n, QoS::AtMostOnce), bounds(100));
        }
        let mut buf = BytesMut::new();
        let f = s.fill(&mut buf, 100, 1);
        assert_eq!(
            f,
            Filled {
                written: 1,
                more: true
            }
        );
        assert_eq!(s.queued(), 9);
    }

    #[test]
    fn packet_ids_skip_zero_and_ids_still_in_flight() {
        let mut s = session();
        s.next_pkid = u16::MAX;
        for n in 0..3 {
            s.enqueue(delivery(n, QoS::AtLeastOnce), bounds(100));
        }
        let mut buf = BytesMut::new();
        s.fill(&mut buf, 100, usize::MAX);
        let ids: Vec<u16> = decode(&mut buf).iter().map(|p| p.pkid).collect();
        assert_eq!(ids, [u16::MAX, 1, 2]);
        s.next_pkid = 1;
        s.enqueue(delivery(3, QoS::AtLeastOnce), bounds(100));
        s.fill(&mut buf, 100, usize::MAX);
        assert_eq!(decode(&mut buf)[0].pkid, 3);
    }
}
