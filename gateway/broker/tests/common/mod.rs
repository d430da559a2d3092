//! Helpers shared by the broker's black-box tests: a broker on a free loopback port with
//! Weir's policy, rumqttc clients whose events arrive on a channel, and a raw client that
//! speaks the codec for tests about exact packets.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, LastWill, Packet, PubAck, Publish, SubAck, Subscribe,
};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use weir_broker::{Broker, BrokerConfig, Policy, StatsSnapshot, WeirPolicy};

pub const SERVICE_USER: &str = "weir-gateway";
pub const SERVICE_PASS: &str = "service-secret";
/// Longest a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(5);
/// How long a test waits to be reasonably sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// Terminals known to the test registry, with their passwords.
pub const TERMINALS: [(&str, &str); 2] = [("HY-001", "pw-001"), ("HY-002", "pw-002")];

pub fn policy() -> Arc<WeirPolicy> {
    let policy = WeirPolicy::new("weir", SERVICE_USER, SERVICE_PASS.as_bytes(), |id, pw| {
        TERMINALS
            .iter()
            .any(|(t, p)| *t == id.as_str() && p.as_bytes() == pw)
    })
    .unwrap();
    Arc::new(policy)
}

pub fn topic(id: &str, channel: &str) -> String {
    format!("weir/terminals/{id}/{channel}")
}

pub struct TestBroker {
    pub addr: SocketAddr,
    pub broker: Broker,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl TestBroker {
    pub async fn start() -> Self {
        Self::start_with(BrokerConfig::default()).await
    }

    pub async fn start_with(config: BrokerConfig) -> Self {
        Self::start_with_policy(config, policy()).await
    }

    pub async fn start_with_policy(config: BrokerConfig, policy: Arc<dyn Policy>) -> Self {
        let broker = Broker::new(config, policy).unwrap();
        let listener = broker.bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.run(shutdown.clone()));
        TestBroker {
            addr,
            broker,
            shutdown,
            task,
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.broker.stats().snapshot()
    }

    pub fn options(&self, client_id: &str, user: &str, pass: &str) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, self.addr.ip().to_string(), self.addr.port());
        o.set_credentials(user, pass);
        o
    }

    pub fn service_options(&self, client_id: &str) -> MqttOptions {
        self.options(client_id, SERVICE_USER, SERVICE_PASS)
    }

    pub fn node_options(&self, client_id: &str, terminal: &str) -> MqttOptions {
        let pass = TERMINALS.iter().find(|(t, _)| *t == terminal).unwrap().1;
        self.options(client_id, terminal, pass)
    }

    /// A raw client logged in as the service.
    pub async fn raw_service(&self, client_id: &str, clean: bool) -> (Raw, ConnAck) {
        let mut c = Connect::new(client_id);
        c.clean_session = clean;
        c.set_login(SERVICE_USER, SERVICE_PASS);
        Raw::handshake(self.addr, c).await
    }
}

/// Waits until `condition` holds, checking every few milliseconds; panics after [`PATIENCE`]
/// saying what it waited for.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A loopback source address other than 127.0.0.1: all of 127.0.0.0/8 reaches the broker,
/// and each counts as its own address for the broker's per-address limits.
pub fn loopback(n: u16) -> IpAddr {
    let [a, b] = n.to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 0, a, b))
}

/// A connected rumqttc client whose events are collected on a channel.
pub struct Client {
    pub client: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
    pub session_present: bool,
}

/// Connects with `options`; panics unless the broker answers CONNACK 0.
pub async fn connect(options: MqttOptions) -> Client {
    match try_connect(options).await {
        Ok(c) => c,
        Err(e) => panic!("connection refused: {e}"),
    }
}

/// Connects with `options`; the error is the broker's refusal.
pub async fn try_connect(options: MqttOptions) -> Result<Client, ConnectionError> {
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let first = timeout(PATIENCE, eventloop.poll())
        .await
        .expect("no CONNACK in time")?;
    let session_present = match first {
        Event::Incoming(Packet::ConnAck(ack)) => ack.session_present,
        other => panic!("expected CONNACK, got {other:?}"),
    };
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(drive(eventloop, tx));
    Ok(Client {
        client,
        events,
        session_present,
    })
}

/// Polls the event loop until its first error; rumqttc would reconnect, tests do not.
async fn drive(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<Result<Event, ConnectionError>>,
) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if tx.send(event).is_err() || failed {
            return;
        }
    }
}

impl Client {
    /// The next incoming packet, skipping outgoing events.
    pub async fn next_incoming(&mut self) -> Packet {
        loop {
            let event = timeout(PATIENCE, self.events.recv())
                .await
                .expect("no event in time")
                .expect("event loop ended");
            match event {
                Ok(Event::Incoming(p)) => return p,
                Ok(Event::Outgoing(_)) => {}
                Err(e) => panic!("connection failed: {e}"),
            }
        }
    }

    /// The next PUBLISH received, skipping acks and pings.
    pub async fn next_publish(&mut self) -> Publish {
        loop {
            match self.next_incoming().await {
                Packet::Publish(p) => return p,
                Packet::PubAck(_) | Packet::PingResp | Packet::PubRec(_) | Packet::PubComp(_) => {}
                Packet::SubAck(_) | Packet::UnsubAck(_) => {}
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }

    /// Subscribes and returns the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        self.client.subscribe(filter, qos).await.unwrap();
        loop {
            match self.next_incoming().await {
                Packet::SubAck(ack) => return ack,
                Packet::Publish(p) => panic!("PUBLISH {p:?} before SUBACK"),
                _ => {}
            }
        }
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK.
    pub async fn publish_acked(&mut self, topic: &str, payload: &[u8], retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .await
            .unwrap();
        loop {
            match self.next_incoming().await {
                Packet::PubAck(_) => return,
                Packet::Publish(p) => panic!("unexpected PUBLISH {p:?} while waiting for PUBACK"),
                _ => {}
            }
        }
    }

    /// Asserts that no PUBLISH arrives for a short while.
    pub async fn expect_silence(&mut self) {
        let deadline = tokio::time::Instant::now() + QUIET;
        while let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            if let Some(Ok(Event::Incoming(Packet::Publish(p)))) = event {
                panic!("unexpected PUBLISH {p:?}");
            }
        }
    }

    /// Waits until the connection fails and returns the error.
    pub async fn closed(&mut self) -> ConnectionError {
        loop {
            match timeout(PATIENCE, self.events.recv())
                .await
                .expect("connection still open")
            {
                Some(Err(e)) => return e,
                Some(Ok(_)) => {}
                None => panic!("event loop ended without an error"),
            }
        }
    }
}

/// A will on a node's status topic, as nodes set it.
pub fn offline_will(terminal: &str) -> LastWill {
    LastWill::new(
        topic(terminal, "status"),
        &b"{\"state\":\"offline\"}"[..],
        QoS::AtLeastOnce,
        true,
    )
}

/// A client speaking the codec directly, for exact protocol bytes and misbehaviour.
pub struct Raw<S = TcpStream> {
    pub stream: S,
    rbuf: BytesMut,
}

impl Raw<TcpStream> {
    pub async fn tcp(addr: SocketAddr) -> Self {
        Raw::new(TcpStream::connect(addr).await.unwrap())
    }

    /// A TCP connection from the source address `from` (see [`loopback`]).
    pub async fn tcp_from(addr: SocketAddr, from: IpAddr) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        Raw::new(socket.connect(addr).await.unwrap())
    }

    /// Connects from `from`, sends `connect` and returns the CONNACK.
    pub async fn handshake_from(
        addr: SocketAddr,
        from: IpAddr,
        connect: Connect,
    ) -> (Self, ConnAck) {
        let mut raw = Raw::tcp_from(addr, from).await;
        raw.send(Packet::Connect(connect)).await;
        match raw.recv().await {
            Some(Packet::ConnAck(ack)) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects, sends `connect` and returns the CONNACK.
    pub async fn handshake(addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let mut raw = Raw::tcp(addr).await;
        raw.send(Packet::Connect(connect)).await;
        match raw.recv().await {
            Some(Packet::ConnAck(ack)) => (raw, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    pub fn new(stream: S) -> Self {
        Raw {
            stream,
            rbuf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        packet.write(&mut buf, usize::MAX).unwrap();
        self.send_bytes(&buf).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next packet, or `None` once the broker closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        timeout(PATIENCE, self.recv_unbounded())
            .await
            .expect("nothing received in time")
    }

    /// The next packet, without a time limit (for tests on paused time).
    pub async fn recv_unbounded(&mut self) -> Option<Packet> {
        loop {
            match Packet::read(&mut self.rbuf, usize::MAX) {
                Ok(p) => return Some(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("undecodable packet from the broker: {e}"),
            }
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next PUBLISH; panics on anything else.
    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(p)) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        let mut s = Subscribe::new(filter, qos);
        s.pkid = 1;
        self.send(Packet::Subscribe(s)).await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) => ack,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub async fn ack(&mut self, publish: &Publish) {
        self.send(Packet::PubAck(PubAck::new(publish.pkid))).await;
    }

    /// Asserts that the broker closes the connection, sending nothing before.
    pub async fn expect_closed(&mut self) {
        if let Some(p) = self.recv().await {
            panic!("expected the connection to close, got {p:?}");
        }
    }

    /// Asserts that nothing arrives for a short while.
    pub async fn expect_silence(&mut self) {
        if let Ok(p) = timeout(QUIET, self.recv_unbounded()).await {
            panic!("expected silence, got {p:?}");
        }
    }
}

/// A CONNECT of terminal `terminal` with `password` (right or wrong).
pub fn node_login(client_id: &str, terminal: &str, password: &str) -> Connect {
    let mut c = Connect::new(client_id);
    c.set_login(terminal, password);
    c
}

/// The password of a terminal of the test registry.
pub fn password_of(terminal: &str) -> &'static str {
    TERMINALS.iter().find(|(t, _)| *t == terminal).unwrap().1
}

pub fn payload_text(p: &Publish) -> String {
    String::from_utf8(p.payload.to_vec()).unwrap()
}
