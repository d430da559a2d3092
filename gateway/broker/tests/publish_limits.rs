//! What one client can make the broker route and keep: publishes per second, bytes per second,
//! and the bytes waiting in a session's queue.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet, Publish};
use rumqttc::QoS;
use weir_broker::BrokerConfig;

fn publish(topic: &str, qos: QoS, pkid: u16, payload: Vec<u8>) -> Packet {
    let mut p = Publish::from_bytes(topic, qos, Bytes::from(payload));
    p.pkid = pkid;
    Packet::Publish(p)
}

/// Sends `packets` in one write, as a flooding client would; the broker may close the
/// connection before reading them all.
async fn flood(raw: &mut Raw, packets: impl IntoIterator<Item = Packet>) {
    let mut buf = bytes::BytesMut::new();
    for p in packets {
        p.write(&mut buf, usize::MAX).unwrap();
    }
    use tokio::io::AsyncWriteExt;
    let _ = raw.stream.write_all(&buf).await;
}

async fn node(b: &TestBroker) -> Raw {
    let mut c = node_login("weir-node-HY-001", "HY-001", password_of("HY-001"));
    c.last_will = Some(offline_will("HY-001"));
    let (raw, ack) = Raw::handshake(b.addr, c).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    raw
}

#[tokio::test(start_paused = true)]
async fn a_node_publishing_faster_than_its_rate_is_disconnected_and_its_identity_stays_limited() {
    let b = TestBroker::start_with(BrokerConfig {
        max_publish_rate: 10,
        max_publish_burst: 20,
        ..BrokerConfig::default()
    })
    .await;
    let (mut gateway, _) = b.raw_service("gw", true).await;
    gateway.subscribe("weir/#", QoS::AtLeastOnce).await;

    let mut flooder = node(&b).await;
    let telemetry = topic("HY-001", "telemetry");
    flood(
        &mut flooder,
        (0..50).map(|n| publish(&telemetry, QoS::AtMostOnce, 0, vec![n])),
    )
    .await;
    flooder.expect_closed().await;
    // The burst got through, then the will: the connection ended without DISCONNECT.
    for n in 0..20 {
        assert_eq!(gateway.recv_publish().await.payload[..], [n]);
    }
    assert_eq!(
        gateway.recv_publish().await.topic,
        topic("HY-001", "status")
    );
    assert_eq!(b.stats().rate_limited_messages, 1);

    // Connecting again does not refill the budget: it belongs to the terminal, not to the
    // connection.
    let mut again = node(&b).await;
    again
        .send(publish(&telemetry, QoS::AtLeastOnce, 1, b"x".to_vec()))
        .await;
    again.expect_closed().await;
    assert_eq!(b.stats().rate_limited_messages, 2);

    // A second later there is room for ten more.
    tokio::time::advance(Duration::from_secs(1)).await;
    let mut later = node(&b).await;
    for pkid in 1..=10 {
        later
            .send(publish(&telemetry, QoS::AtLeastOnce, pkid, b"x".to_vec()))
            .await;
        assert!(matches!(later.recv().await, Some(Packet::PubAck(a)) if a.pkid == pkid));
    }
    assert_eq!(b.stats().rate_limited_messages, 2);
}

#[tokio::test(start_paused = true)]
async fn a_node_publishing_more_bytes_per_second_than_its_limit_is_disconnected() {
    let b = TestBroker::start_with(BrokerConfig {
        max_packet_size: 17 * 1024,
        max_publish_bytes_per_s: 1024,
        max_publish_bytes_burst: 40 * 1024,
        ..BrokerConfig::default()
    })
    .await;
    let mut flooder = node(&b).await;
    let telemetry = topic("HY-001", "telemetry");
    for pkid in 1..=2 {
        flooder
            .send(publish(
                &telemetry,
                QoS::AtLeastOnce,
                pkid,
                vec![0; 16 * 1024],
            ))
            .await;
        assert!(matches!(flooder.recv().await, Some(Packet::PubAck(_))));
    }
    flooder
        .send(publish(&telemetry, QoS::AtLeastOnce, 3, vec![0; 16 * 1024]))
        .await;
    flooder.expect_closed().await;
    let s = b.stats();
    assert_eq!((s.rate_limited_bytes, s.rate_limited_messages), (1, 0));
}

#[tokio::test]
async fn the_service_is_not_rate_limited() {
    let b = TestBroker::start_with(BrokerConfig {
        max_publish_rate: 1,
        max_publish_burst: 1,
        ..BrokerConfig::default()
    })
    .await;
    let mut gateway = connect(b.service_options("gw")).await;
    for _ in 0..20 {
        gateway
            .publish_acked(&topic("HY-001", "ack"), b"ack", false)
            .await;
    }
    assert_eq!(b.stats().rate_limited_messages, 0);
}

#[tokio::test]
async fn a_session_queue_over_its_byte_bound_drops_its_oldest_messages_and_counts_them() {
    let b = TestBroker::start_with(BrokerConfig {
        max_packet_size: 2048,
        max_queued_bytes: 4096,
        ..BrokerConfig::default()
    })
    .await;
    let ack_topic = topic("HY-001", "ack");
    let mut c = node_login("weir-node-HY-001", "HY-001", password_of("HY-001"));
    c.clean_session = false;
    let (mut offline, _) = Raw::handshake(b.addr, c.clone()).await;
    offline.subscribe(&ack_topic, QoS::AtLeastOnce).await;
    offline.send(Packet::Disconnect).await;
    offline.expect_closed().await;

    // Each message is 25 bytes of topic and 1000 of payload: three fit in 4096 bytes.
    let mut gateway = connect(b.service_options("gw")).await;
    for n in 0..10u8 {
        gateway.publish_acked(&ack_topic, &[n; 1000], false).await;
    }
    let s = b.stats();
    assert_eq!((s.queued_dropped_for_bytes, s.queued_bytes), (7, 3 * 1025));

    let (mut back, ack) = Raw::handshake(b.addr, c).await;
    assert!(ack.session_present);
    for n in 7..10 {
        let p = back.recv_publish().await;
        assert_eq!(p.payload[0], n);
        back.ack(&p).await;
    }
    back.expect_silence().await;
    assert_eq!(b.stats().queued_bytes, 0);
}

#[tokio::test]
async fn a_terminal_flooding_large_messages_is_cut_off_and_the_gateways_queue_stays_bounded() {
    let b = TestBroker::start_with(BrokerConfig {
        max_packet_size: 17 * 1024,
        max_queued_bytes: 1024 * 1024,
        ..BrokerConfig::default()
    })
    .await;
    // The gateway's persistent session, offline for now: everything it may not miss waits.
    let (mut ingest, _) = b.raw_service("ingest", false).await;
    ingest
        .subscribe("weir/terminals/+/telemetry", QoS::AtLeastOnce)
        .await;
    ingest.send(Packet::Disconnect).await;
    ingest.expect_closed().await;

    // 800 messages of 16 KiB (12.5 MiB, more than the default 8 MiB burst) as fast as the
    // socket takes them.
    let mut flooder = node(&b).await;
    let telemetry = topic("HY-001", "telemetry");
    flood(
        &mut flooder,
        (1..=800).map(|pkid| publish(&telemetry, QoS::AtLeastOnce, pkid, vec![1; 16 * 1024])),
    )
    .await;
    while let Some(packet) = flooder.recv().await {
        assert!(matches!(packet, Packet::PubAck(_)), "{packet:?}");
    }
    let s = b.stats();
    assert_eq!(s.rate_limited_bytes, 1, "{s:?}");
    assert!(s.queued_bytes <= 1024 * 1024, "{s:?}");
    assert!(s.queued_dropped_for_bytes > 0, "{s:?}");
}

#[tokio::test]
async fn byte_limits_below_the_packet_size_are_refused_at_start() {
    let config = BrokerConfig {
        max_packet_size: 64 * 1024,
        max_publish_bytes_burst: 1024,
        ..BrokerConfig::default()
    };
    let err = weir_broker::Broker::new(config, policy()).unwrap_err();
    assert!(err.to_string().contains("max_publish_bytes_burst"), "{err}");
}
