//! Times how fast a persistent subscriber drains a large offline queue, as the gateway's
//! benchmark does: `cargo run --release -p weir-broker --example drain -- [messages]`.
//!
//! A publisher queues N QoS 1 messages of about 100 bytes for an offline persistent session,
//! then the subscriber reconnects and acknowledges each one; first with a minimal client that
//! speaks the codec directly (the broker's own speed), then with rumqttc (what the gateway
//! uses).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck, Publish, Subscribe};
use rumqttc::{AsyncClient, Event, MqttOptions, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use weir_broker::{Broker, BrokerConfig, WeirPolicy};

const TOPIC: &str = "weir/terminals/HY-001/telemetry";

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a message count"))
        .unwrap_or(200_000);
    let policy = WeirPolicy::new("weir", "svc", b"svc", |_, _| false).unwrap();
    let broker = Broker::new(BrokerConfig::default(), Arc::new(policy)).unwrap();
    let listener = broker.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(listener.run(shutdown.clone()));

    for raw in [true, false] {
        let id = if raw { "raw-sub" } else { "rumqttc-sub" };
        // Subscribe with a persistent session, then go offline.
        let mut sub = RawClient::connect(addr, id).await;
        sub.send(Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![rumqttc::mqttbytes::v4::SubscribeFilter::new(
                TOPIC.into(),
                QoS::AtLeastOnce,
            )],
        }))
        .await;
        sub.next().await;
        drop(sub);
        tokio::time::sleep(Duration::from_millis(50)).await;

        let started = Instant::now();
        queue(addr, n).await;
        let queued_in = started.elapsed();

        let started = Instant::now();
        if raw {
            drain_raw(addr, id, n).await;
        } else {
            drain_rumqttc(addr, id, n).await;
        }
        let drained_in = started.elapsed();
        println!(
            "{:8} queued {n} in {:.2} s, drained in {:.2} s: {:.0} msg/s",
            if raw { "raw" } else { "rumqttc" },
            queued_in.as_secs_f64(),
            drained_in.as_secs_f64(),
            n as f64 / drained_in.as_secs_f64()
        );
    }
    println!("{:?}", broker.stats().snapshot());
    shutdown.cancel();
}

/// Publishes `n` messages at QoS 1, pipelined, and waits for every PUBACK.
async fn queue(addr: std::net::SocketAddr, n: usize) {
    let mut publisher = RawClient::connect(addr, "publisher-clean").await;
    let payload = Bytes::from(vec![b'x'; 100]);
    let mut buf = BytesMut::new();
    let mut acked = 0;
    let mut sent = 0;
    while acked < n {
        // Keep at most 1000 unacknowledged, like a client's in-flight window.
        while sent < n && sent - acked < 1000 {
            let mut p = Publish::from_bytes(TOPIC, QoS::AtLeastOnce, payload.clone());
            p.pkid = (sent % 65535 + 1) as u16;
            Packet::Publish(p).write(&mut buf, usize::MAX).unwrap();
            sent += 1;
        }
        publisher.stream.write_all(&buf).await.unwrap();
        buf.clear();
        if let Packet::PubAck(_) = publisher.next().await {
            acked += 1;
        }
        while let Some(Packet::PubAck(_)) = publisher.try_next() {
            acked += 1;
        }
    }
}

async fn drain_raw(addr: std::net::SocketAddr, id: &str, n: usize) {
    let mut sub = RawClient::connect(addr, id).await;
    let mut acks = BytesMut::new();
    let mut got = 0;
    while got < n {
        let handle = |p: Packet, acks: &mut BytesMut| {
            if let Packet::Publish(p) = p {
                Packet::PubAck(PubAck::new(p.pkid))
                    .write(acks, usize::MAX)
                    .unwrap();
                1
            } else {
                0
            }
        };
        got += handle(sub.next().await, &mut acks);
        while let Some(p) = sub.try_next() {
            got += handle(p, &mut acks);
        }
        sub.stream.write_all(&acks).await.unwrap();
        acks.clear();
    }
}

async fn drain_rumqttc(addr: std::net::SocketAddr, id: &str, n: usize) {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_credentials("svc", "svc");
    o.set_clean_session(false);
    let (_client, mut eventloop) = AsyncClient::new(o, 1000);
    let mut got = 0;
    while got < n {
        if let Event::Incoming(Packet::Publish(_)) = eventloop.poll().await.unwrap() {
            got += 1;
        }
    }
}

struct RawClient {
    stream: TcpStream,
    rbuf: BytesMut,
}

impl RawClient {
    async fn connect(addr: std::net::SocketAddr, id: &str) -> Self {
        let mut c = Connect::new(id);
        c.clean_session = id.ends_with("-clean");
        c.set_login("svc", "svc");
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut client = RawClient {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
        };
        client.send(Packet::Connect(c)).await;
        assert!(matches!(client.next().await, Packet::ConnAck(_)));
        client
    }

    async fn send(&mut self, p: Packet) {
        let mut buf = BytesMut::new();
        p.write(&mut buf, usize::MAX).unwrap();
        self.stream.write_all(&buf).await.unwrap();
    }

    fn try_next(&mut self) -> Option<Packet> {
        Packet::read(&mut self.rbuf, usize::MAX).ok()
    }

    async fn next(&mut self) -> Packet {
        loop {
            if let Some(p) = self.try_next() {
                return p;
            }
            self.rbuf.reserve(64 * 1024);
            assert!(self.stream.read_buf(&mut self.rbuf).await.unwrap() > 0);
        }
    }
}
