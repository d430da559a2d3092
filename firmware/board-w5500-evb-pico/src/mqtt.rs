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
//!
//! The packets are written and read by `weir_netproto::mqtt`; here are the socket, the
//! session's states and timers, and what the node is told.

use embassy_time::Timer;
use heapless::String;
use weir_contract::topic::{topic, Channel, TopicBuf, MAX_TOPIC_LEN};
use weir_contract::{Message, Status, TerminalId};
use weir_netproto::mqtt::{self, DecodeError, PacketType, QoS};
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
/// The configuration image's longest password (`Provision::password`).
const PASSWORD_MAX_LEN: usize = 64;
/// The longest fixed header.
const FIXED_HEADER_MAX_LEN: usize = 5;
/// The longest CONNECT: fixed and variable header, then client id, will topic, will, user
/// name and password, each after its two length bytes.
const CONNECT_MAX_LEN: usize = FIXED_HEADER_MAX_LEN
    + 10
    + (2 + "weir-node-".len() + TerminalId::MAX_LEN)
    + (2 + MAX_TOPIC_LEN)
    + (2 + WILL_LEN)
    + (2 + TerminalId::MAX_LEN)
    + (2 + PASSWORD_MAX_LEN);
/// The longest SUBSCRIBE: a packet id, then four topic filters (ack, config, firmware,
/// chunk), each with its length and QoS.
const SUBSCRIBE_MAX_LEN: usize = FIXED_HEADER_MAX_LEN + 2 + 4 * (2 + MAX_TOPIC_LEN + 1);
/// The longest PUBLISH before its payload: the topic and a packet id.
const PUBLISH_HEAD_MAX_LEN: usize = FIXED_HEADER_MAX_LEN + 2 + MAX_TOPIC_LEN + 2;

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
    topics: [TopicBuf; 7],
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
            t(Channel::ALL[0])?,
            t(Channel::ALL[1])?,
            t(Channel::ALL[2])?,
            t(Channel::ALL[3])?,
            t(Channel::ALL[4])?,
            t(Channel::ALL[5])?,
            t(Channel::ALL[6])?,
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
        let i = Channel::ALL.iter().position(|&a| a == c).unwrap_or(0);
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

    /// Writes one packet, whose bytes are `parts` one after the other. `false` if the socket
    /// is still sending or has no room.
    fn send(&mut self, parts: &[&[u8]]) -> bool {
        if !self.ready_to_send() {
            return false;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut chip = self.net.chip();
        if chip.tx_free(socket::MQTT) < len {
            return false;
        }
        chip.send(socket::MQTT, parts);
        self.sending = true;
        self.last_tx = now_ms();
        true
    }

    fn send_connect(&mut self) -> bool {
        let p = self.p;
        // Client id `weir-node-{id}`; user name the terminal id.
        let mut client = String::<{ 10 + TerminalId::MAX_LEN }>::new();
        let _ = client.push_str("weir-node-");
        let _ = client.push_str(&p.terminal);
        let (will, will_len) = &self.will;
        let connect = mqtt::Connect {
            client_id: &client,
            keep_alive_s: KEEP_ALIVE_S,
            clean_session: false,
            will: Some(mqtt::Will {
                topic: self.topic(Channel::Status),
                payload: &will[..*will_len],
                qos: QoS::AtLeastOnce,
                retain: true,
            }),
            user_name: Some(&p.terminal),
            password: Some(p.password.as_bytes()),
        };
        let mut buf = [0u8; CONNECT_MAX_LEN];
        let Ok(len) = connect.encode(&mut buf) else {
            return false;
        };
        self.send(&[&buf[..len]])
    }

    fn send_subscribe(&mut self) -> bool {
        let id = self.packet_id();
        self.subscribe_id = id;
        let filters = [
            (self.topic(Channel::Ack), QoS::AtLeastOnce),
            (self.topic(Channel::Config), QoS::AtLeastOnce),
            (self.topic(Channel::Firmware), QoS::AtLeastOnce),
            (self.topic(Channel::Chunk), QoS::AtLeastOnce),
        ];
        let subscribe = mqtt::Subscribe {
            packet_id: id,
            filters: &filters,
        };
        let mut buf = [0u8; SUBSCRIBE_MAX_LEN];
        let Ok(len) = subscribe.encode(&mut buf) else {
            return false;
        };
        self.send(&[&buf[..len]])
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
                && self.send(&[&mqtt::PINGREQ])
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
        let mut head = [0u8; FIXED_HEADER_MAX_LEN];
        let peek = available.min(FIXED_HEADER_MAX_LEN);
        self.net.chip().peek(socket::MQTT, 0, &mut head[..peek]);
        let header = match mqtt::FixedHeader::decode(&head[..peek]) {
            Ok(header) => header,
            // The length is not all here yet.
            Err(DecodeError::Incomplete) => return Found::Nothing,
            // Malformed: five length bytes.
            Err(_) => return self.fail(Broker::Unreachable),
        };
        self.last_rx = now;
        self.ping_sent = false;
        let kind = header.packet_type();
        let len = header.remaining_len;
        if len > RX_LEN {
            self.net.chip().consume(socket::MQTT, header.len);
            self.skip = len;
            return Found::Nothing;
        }
        if available < header.packet_len() {
            return Found::Nothing;
        }
        if kind == Some(PacketType::Publish) && !self.ready_to_send() {
            // Its PUBACK could not leave yet: take it at the next look.
            return Found::Nothing;
        }
        {
            let mut chip = self.net.chip();
            chip.peek(socket::MQTT, header.len, &mut self.rx[..len]);
            chip.consume(socket::MQTT, header.packet_len());
        }
        let body = &self.rx[..len];
        match kind {
            Some(PacketType::ConnAck) if self.state == State::AwaitConnack => {
                if !mqtt::ConnAck::decode(body).is_ok_and(|ack| ack.accepted()) {
                    return self.fail(Broker::Refused);
                }
                if !self.send_subscribe() {
                    return self.fail(Broker::Unreachable);
                }
                self.state = State::AwaitSuback;
                Found::Nothing
            }
            Some(PacketType::SubAck) if self.state == State::AwaitSuback => {
                let Ok(ack) = mqtt::SubAck::decode(body) else {
                    return Found::Nothing;
                };
                // One return code for each of the two filters.
                if ack.packet_id != self.subscribe_id || ack.return_codes.len() < 2 {
                    return Found::Nothing;
                }
                if !ack.all_granted() {
                    return self.fail(Broker::Refused);
                }
                self.state = State::Up;
                self.backoff_ms = BACKOFF_MS.0;
                self.net.broker_state.set(Broker::Up);
                Found::Connected
            }
            Some(PacketType::Publish) => self.incoming(header.flags(), len),
            // PUBACK, PINGRESP, anything else: nothing to do.
            _ => Found::Nothing,
        }
    }

    /// An incoming PUBLISH of `len` bytes in `self.rx`: acknowledged, then handed over if it
    /// is on the ack or config topic.
    fn incoming(&mut self, flags: u8, len: usize) -> Found {
        let Ok(publish) = mqtt::Publish::decode(flags, &self.rx[..len]) else {
            return Found::Nothing;
        };
        let start = len - publish.payload.len();
        let channel = [
            Channel::Ack,
            Channel::Config,
            Channel::Firmware,
            Channel::Chunk,
        ]
        .into_iter()
        .find(|&c| self.topic(c).as_bytes() == publish.topic);
        if let Some(packet_id) = publish.packet_id {
            // PUBACK (QoS 1; the subscriptions ask for no more).
            if !self.send(&[&mqtt::PubAck { packet_id }.to_bytes()]) {
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
        let packet_id = self.packet_id();
        let publish = mqtt::Publish {
            topic: self.topic(channel).as_bytes(),
            qos: QoS::AtLeastOnce,
            retain,
            dup: false,
            packet_id: Some(packet_id),
            payload,
        };
        // The head holds the longest topic: this cannot fail.
        let mut head = [0u8; PUBLISH_HEAD_MAX_LEN];
        let Ok(head_len) = publish.encode_header(&mut head) else {
            return Err(Error::Busy);
        };
        // The payload goes from where it is, after the head.
        if self.send(&[&head[..head_len], payload]) {
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
