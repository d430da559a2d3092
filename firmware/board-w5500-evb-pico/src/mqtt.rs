//! The uplink: a small MQTT 3.1.1 client on the W5500's TCP socket, for this terminal's four
//! topics only.
//!
//! What `weir_node::Uplink` asks for: a persistent session (clean session off), client id
//! `weir-node-{terminal id}` (docs/protocol.md's convention), user name the terminal id, the password from the configuration image, the last will
//! `Status::offline()` retained at QoS 1 on the status topic; after CONNACK, SUBSCRIBE to
//! ack and config at QoS 1, then `Event::Connected`; publications at QoS 1; reconnection by
//! itself with a growing pause; `next_event` cancel-safe.
//!
//! Cancel safety: all protocol work is synchronous (the chip is read and written in
//! microseconds); the only `await` in `next_event` is the pause between two looks at the
//! socket, where the state is whole in `self`. Dropping the future there loses nothing.
//!
//! Received QoS 1 messages are acknowledged (PUBACK) when they are handed to the node.
//! Outgoing QoS 1 publications are not resent by the client after a reconnection: the node
//! republishes everything still queued on every `Connected`, and the gateway keeps one copy of
//! each message, so a PUBACK is not waited for.

use embassy_time::Timer;
use heapless::String;
use weir_contract::topic::{topic, Channel, TopicBuf};
use weir_contract::{Message, Status, TerminalId};
use weir_node::provision::Provision;
use weir_node::{Event, Uplink};

use crate::net::{now_ms, Broker, Net};
use crate::w5500::{irq, mode, socket, status};

/// MQTT keep-alive, s: a PINGREQ after half of it without sending; the link is taken as dead
/// after one and a half without hearing from the broker.
const KEEP_ALIVE_S: u16 = 60;
/// How long a connection attempt (TCP, CONNACK, SUBACK) may take, ms.
const CONNECT_TIMEOUT_MS: u64 = 15_000;
/// Pause before reconnecting: doubles from the first to the last value after each failure.
const BACKOFF_MS: (u64, u64) = (2_000, 120_000);
/// How often the socket is looked at while waiting, ms.
const POLL_MS: u64 = 50;
/// Largest incoming packet kept (an ack or a configuration, with its topic); larger ones are
/// read and dropped.
const RX_LEN: usize = 1024;
/// The status payload of the last will, in the node's encoding.
const WILL_LEN: usize = 16;
/// Most pieces one packet is written from (CONNECT has eleven).
const MAX_PARTS: usize = 11;

/// Why a publication failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not connected.
    Down,
    /// The socket's transmit buffer is full for now.
    Busy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No connection; the next attempt at `retry_at`.
    Down,
    /// TCP handshake under way.
    Connecting,
    /// CONNECT sent.
    AwaitConnack,
    /// SUBSCRIBE sent.
    AwaitSuback,
    /// Subscribed; `Connected` reported.
    Up,
}

/// What one look at the socket found.
enum Found {
    Nothing,
    Connected,
    Disconnected,
    Message(Channel, usize, usize),
}

/// The MQTT uplink of one terminal.
pub struct Mqtt {
    net: &'static Net,
    p: &'static Provision,
    topics: [TopicBuf; 4],
    will: ([u8; WILL_LEN], usize),
    state: State,
    generation: u32,
    deadline: u64,
    retry_at: u64,
    backoff_ms: u64,
    last_tx: u64,
    last_rx: u64,
    ping_sent: bool,
    next_id: u16,
    subscribe_id: u16,
    /// A SEND is under way on the socket; the next one waits for its SEND_OK.
    sending: bool,
    /// Bytes of an oversized incoming packet still to drop.
    skip: usize,
    rx: [u8; RX_LEN],
}

impl core::fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mqtt")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Mqtt {
    /// The uplink of the terminal in `p`, over `net`. `None` if the topic prefix or terminal
    /// id cannot form topics (the configuration image was checked, so not expected).
    pub fn new(net: &'static Net, p: &'static Provision) -> Option<Self> {
        let id = TerminalId::new(&p.terminal).ok()?;
        let t = |c| topic(&p.topic_prefix, &id, c).ok();
        let topics = [
            t(Channel::Telemetry)?,
            t(Channel::Status)?,
            t(Channel::Ack)?,
            t(Channel::Config)?,
        ];
        let mut will = [0u8; WILL_LEN];
        let will_len = Status::offline()
            .encode(weir_node::ENCODING, &mut will)
            .ok()?;
        Some(Mqtt {
            net,
            p,
            topics,
            will: (will, will_len),
            state: State::Down,
            generation: net.generation.get(),
            deadline: 0,
            retry_at: 0,
            backoff_ms: BACKOFF_MS.0,
            last_tx: 0,
            last_rx: 0,
            ping_sent: false,
            next_id: 1,
            subscribe_id: 0,
            sending: false,
            skip: 0,
            rx: [0; RX_LEN],
        })
    }

    fn topic(&self, c: Channel) -> &str {
        let i = match c {
            Channel::Telemetry => 0,
            Channel::Status => 1,
            Channel::Ack => 2,
            Channel::Config => 3,
        };
        &self.topics[i]
    }

    fn packet_id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Closes the connection after a failure and schedules the next attempt.
    /// `Disconnected` is due if the node was told `Connected`.
    fn fail(&mut self, why: Broker) -> Found {
        let was_up = self.state == State::Up;
        self.net.chip().close(socket::MQTT);
        self.state = State::Down;
        self.sending = false;
        self.skip = 0;
        let now = now_ms();
        self.retry_at = now + self.backoff_ms;
        self.backoff_ms = (self.backoff_ms * 2).min(BACKOFF_MS.1);
        if why != Broker::Refused && !was_up {
            // Perhaps the name now points elsewhere: resolve it again.
            self.net.broker.set(None);
        }
        self.net.broker_state.set(why);
        if was_up {
            Found::Disconnected
        } else {
            Found::Nothing
        }
    }

    /// Whether the previous SEND has left, so another may start.
    fn ready_to_send(&mut self) -> bool {
        if self.sending && self.net.chip().take_irq(socket::MQTT, irq::SEND_OK) != 0 {
            self.sending = false;
        }
        !self.sending
    }

    /// Writes one packet: fixed header `first`, then `parts` as its body. `false` if the
    /// socket is still sending or has no room.
    fn send_packet(&mut self, first: u8, parts: &[&[u8]]) -> bool {
        if !self.ready_to_send() {
            return false;
        }
        let body: usize = parts.iter().map(|p| p.len()).sum();
        let mut head = [first, 0, 0, 0, 0];
        let mut n = 1;
        let mut rest = body;
        loop {
            let mut byte = (rest % 128) as u8;
            rest /= 128;
            if rest > 0 {
                byte |= 0x80;
            }
            head[n] = byte;
            n += 1;
            if rest == 0 || n == head.len() {
                break;
            }
        }
        let mut chip = self.net.chip();
        if chip.tx_free(socket::MQTT) < n + body {
            return false;
        }
        let mut all: [&[u8]; MAX_PARTS + 1] = [&[]; MAX_PARTS + 1];
        all[0] = &head[..n];
        let count = parts.len().min(MAX_PARTS);
        all[1..=count].copy_from_slice(&parts[..count]);
        chip.send(socket::MQTT, &all[..=count]);
        self.sending = true;
        self.last_tx = now_ms();
        true
    }

    fn send_connect(&mut self) -> bool {
        let p = self.p;
        let mut will_topic = String::<{ weir_contract::topic::MAX_TOPIC_LEN }>::new();
        let _ = will_topic.push_str(self.topic(Channel::Status));
        let (will, will_len) = self.will;
        let will = &will[..will_len];
        // User name, password, will retained at QoS 1, will; clean session off.
        let flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04;
        let [ka_hi, ka_lo] = KEEP_ALIVE_S.to_be_bytes();
        let header = [0, 4, b'M', b'Q', b'T', b'T', 4, flags, ka_hi, ka_lo];
        // Client id `weir-node-{id}`; user name the terminal id.
        let mut client = String::<{ 10 + weir_contract::TerminalId::MAX_LEN }>::new();
        let _ = client.push_str("weir-node-");
        let _ = client.push_str(&p.terminal);
        let client = client.as_bytes();
        let id = p.terminal.as_bytes();
        let password = p.password.as_bytes();
        let wt = will_topic.as_bytes();
        let len = |s: &[u8]| (s.len() as u16).to_be_bytes();
        let (l_client, l_id, l_wt, l_will, l_pw) =
            (len(client), len(id), len(wt), len(will), len(password));
        self.send_packet(
            0x10,
            &[
                &header, &l_client, client, &l_wt, wt, &l_will, will, &l_id, id, &l_pw, password,
            ],
        )
    }

    fn send_subscribe(&mut self) -> bool {
        let id = self.packet_id();
        self.subscribe_id = id;
        let mut body = [0u8; 2 + 2 * (2 + weir_contract::topic::MAX_TOPIC_LEN + 1)];
        body[..2].copy_from_slice(&id.to_be_bytes());
        let mut n = 2;
        for c in [Channel::Ack, Channel::Config] {
            let t = self.topic(c).as_bytes();
            body[n..n + 2].copy_from_slice(&(t.len() as u16).to_be_bytes());
            body[n + 2..n + 2 + t.len()].copy_from_slice(t);
            body[n + 2 + t.len()] = 1; // QoS 1
            n += 3 + t.len();
        }
        self.send_packet(0x82, &[&body[..n]])
    }

    /// One look at the connection: starts, advances or drops it, and takes at most one
    /// incoming packet.
    fn poll(&mut self) -> Found {
        let now = now_ms();
        let generation = self.net.generation.get();
        if generation != self.generation {
            // The address changed or was lost: whatever connection there was is gone.
            self.generation = generation;
            if self.state != State::Down {
                return self.fail(Broker::Connecting);
            }
        }
        if self.state == State::Down {
            let (Some(_), Some(broker)) = (self.net.ip.get(), self.net.broker.get()) else {
                return Found::Nothing;
            };
            if now < self.retry_at {
                return Found::Nothing;
            }
            let port = self.net.ephemeral_port();
            let mut chip = self.net.chip();
            if !chip.open(socket::MQTT, mode::TCP, port) {
                drop(chip);
                return self.fail(Broker::Unreachable);
            }
            chip.connect(socket::MQTT, broker, self.p.broker.port);
            drop(chip);
            // The LED keeps showing the last outcome until this attempt has one.
            self.state = State::Connecting;
            self.deadline = now + CONNECT_TIMEOUT_MS;
            return Found::Nothing;
        }
        let sr = self.net.chip().status(socket::MQTT);
        if self.state == State::Connecting {
            if sr == status::ESTABLISHED {
                self.last_rx = now;
                if !self.send_connect() {
                    return self.fail(Broker::Unreachable);
                }
                self.state = State::AwaitConnack;
                return Found::Nothing;
            }
            if sr == status::CLOSED || now > self.deadline {
                return self.fail(Broker::Unreachable);
            }
            return Found::Nothing;
        }
        if sr != status::ESTABLISHED {
            return self.fail(Broker::Unreachable);
        }
        if self.state != State::Up && now > self.deadline {
            return self.fail(Broker::Unreachable);
        }
        if self.state == State::Up {
            if now.saturating_sub(self.last_rx) > u64::from(KEEP_ALIVE_S) * 1500 {
                return self.fail(Broker::Unreachable);
            }
            if now.saturating_sub(self.last_tx) >= u64::from(KEEP_ALIVE_S) * 500
                && !self.ping_sent
                && self.send_packet(0xC0, &[])
            {
                self.ping_sent = true;
            }
        }
        self.read_packet(now)
    }

    /// Takes one whole packet from the socket if there is one.
    fn read_packet(&mut self, now: u64) -> Found {
        let available = self.net.chip().rx_available(socket::MQTT);
        if self.skip > 0 {
            let n = self.skip.min(available);
            if n > 0 {
                self.net.chip().consume(socket::MQTT, n);
                self.skip -= n;
            }
            return Found::Nothing;
        }
        if available < 2 {
            return Found::Nothing;
        }
        let mut head = [0u8; 5];
        let peek = available.min(5);
        self.net.chip().peek(socket::MQTT, 0, &mut head[..peek]);
        // Remaining length: one to four bytes, seven bits each.
        let mut len = 0usize;
        let mut header = 1;
        loop {
            if header >= peek {
                if header >= 5 {
                    // Malformed: five length bytes.
                    return self.fail(Broker::Unreachable);
                }
                // The length is not all here yet.
                return Found::Nothing;
            }
            let b = head[header];
            len |= usize::from(b & 0x7F) << (7 * (header - 1));
            header += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        self.last_rx = now;
        self.ping_sent = false;
        let kind = head[0];
        if len > RX_LEN {
            self.net.chip().consume(socket::MQTT, header);
            self.skip = len;
            return Found::Nothing;
        }
        if available < header + len {
            return Found::Nothing;
        }
        if kind >> 4 == 3 && !self.ready_to_send() {
            // Its PUBACK could not leave yet: take it at the next look.
            return Found::Nothing;
        }
        {
            let mut chip = self.net.chip();
            chip.peek(socket::MQTT, header, &mut self.rx[..len]);
            chip.consume(socket::MQTT, header + len);
        }
        let body = &self.rx[..len];
        match kind >> 4 {
            // CONNACK
            2 if self.state == State::AwaitConnack => {
                if body.len() < 2 || body[1] != 0 {
                    return self.fail(Broker::Refused);
                }
                if !self.send_subscribe() {
                    return self.fail(Broker::Unreachable);
                }
                self.state = State::AwaitSuback;
                Found::Nothing
            }
            // SUBACK
            9 if self.state == State::AwaitSuback => {
                if body.len() < 4 || body[..2] != self.subscribe_id.to_be_bytes() {
                    return Found::Nothing;
                }
                if body[2..].iter().any(|&rc| rc & 0x80 != 0) {
                    return self.fail(Broker::Refused);
                }
                self.state = State::Up;
                self.backoff_ms = BACKOFF_MS.0;
                self.net.broker_state.set(Broker::Up);
                Found::Connected
            }
            // PUBLISH
            3 => self.incoming(kind, len),
            // PUBACK, PINGRESP, anything else: nothing to do.
            _ => Found::Nothing,
        }
    }

    /// An incoming PUBLISH of `len` bytes in `self.rx`: acknowledged, then handed over if it
    /// is on the ack or config topic.
    fn incoming(&mut self, flags: u8, len: usize) -> Found {
        let body = &self.rx[..len];
        if body.len() < 2 {
            return Found::Nothing;
        }
        let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let qos = (flags >> 1) & 0x03;
        let id_len = if qos > 0 { 2 } else { 0 };
        let start = 2 + topic_len + id_len;
        if start > len {
            return Found::Nothing;
        }
        let topic = &body[2..2 + topic_len];
        let channel = [Channel::Ack, Channel::Config]
            .into_iter()
            .find(|&c| self.topic(c).as_bytes() == topic);
        if qos > 0 {
            let id = [body[2 + topic_len], body[3 + topic_len]];
            // PUBACK (QoS 1; the subscriptions ask for no more).
            if !self.send_packet(0x40, &[&id]) {
                return self.fail(Broker::Unreachable);
            }
        }
        match channel {
            Some(c) => Found::Message(c, start, len - start),
            None => Found::Nothing,
        }
    }

    /// Waits until the previous SEND left, for at most two seconds.
    async fn wait_sent(&mut self) -> Result<(), Error> {
        let deadline = now_ms() + 2000;
        while !self.ready_to_send() {
            if self.net.chip().status(socket::MQTT) != status::ESTABLISHED {
                return Err(Error::Down);
            }
            if now_ms() > deadline {
                return Err(Error::Busy);
            }
            Timer::after_millis(5).await;
        }
        Ok(())
    }
}

impl Uplink for Mqtt {
    type Error = Error;

    async fn publish(
        &mut self,
        channel: Channel,
        payload: &[u8],
        retain: bool,
    ) -> Result<(), Error> {
        if self.state != State::Up {
            return Err(Error::Down);
        }
        self.wait_sent().await?;
        if self.state != State::Up {
            return Err(Error::Down);
        }
        let id = self.packet_id().to_be_bytes();
        let mut topic_copy = String::<{ weir_contract::topic::MAX_TOPIC_LEN }>::new();
        let _ = topic_copy.push_str(self.topic(channel));
        let t = topic_copy.as_bytes();
        let len = (t.len() as u16).to_be_bytes();
        // QoS 1.
        let first = 0x32 | u8::from(retain);
        if self.send_packet(first, &[&len, t, &id, payload]) {
            Ok(())
        } else {
            Err(Error::Busy)
        }
    }

    async fn next_event(&mut self) -> Event<'_> {
        loop {
            match self.poll() {
                Found::Nothing => {}
                Found::Connected => return Event::Connected,
                Found::Disconnected => return Event::Disconnected,
                Found::Message(channel, start, len) => {
                    return Event::Message {
                        channel,
                        payload: &self.rx[start..start + len],
                    }
                }
            }
            Timer::after_millis(POLL_MS).await;
        }
    }
}
