//! Protocol details: versions, QoS 2 publishers, wildcards, packet limits, flow control and
//! shutdown.

mod common;

use bytes::Bytes;
use common::*;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, PubRel, Publish, Unsubscribe};
use rumqttc::mqttbytes::Protocol;
use rumqttc::QoS;
use weir_broker::BrokerConfig;

fn publish(topic: &str, qos: QoS, pkid: u16, payload: &'static [u8]) -> Packet {
    let mut p = Publish::from_bytes(topic, qos, Bytes::from_static(payload));
    p.pkid = pkid;
    Packet::Publish(p)
}

#[tokio::test]
async fn an_mqtt_5_connect_is_refused_as_an_unacceptable_protocol_version() {
    let b = TestBroker::start().await;
    let mut c = Connect::new("v5-client");
    c.set_login("HY-001", "pw-001");
    c.protocol = Protocol::V5;
    let (mut raw, ack) = Raw::handshake(b.addr, c).await;
    assert_eq!(ack.code, ConnectReturnCode::RefusedProtocolVersion);
    raw.expect_closed().await;
    assert_eq!(b.stats().connects_refused, 1);
}

#[tokio::test]
async fn a_first_packet_other_than_connect_closes_the_connection() {
    let b = TestBroker::start().await;
    let mut raw = Raw::tcp(b.addr).await;
    raw.send(Packet::PingReq).await;
    raw.expect_closed().await;
    assert_eq!(b.stats().connections_total, 0);
}

#[tokio::test]
async fn a_qos_2_publisher_is_delivered_once_at_qos_1() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("gw")).await;
    gateway.subscribe("weir/#", QoS::ExactlyOnce).await;

    let mut c = Connect::new("logger");
    c.set_login("HY-001", "pw-001");
    let (mut logger, _) = Raw::handshake(b.addr, c).await;
    let telemetry = topic("HY-001", "telemetry");
    logger
        .send(publish(&telemetry, QoS::ExactlyOnce, 7, b"once"))
        .await;
    assert!(matches!(logger.recv().await, Some(Packet::PubRec(r)) if r.pkid == 7));
    // The same message again (as after a lost PUBREC): acknowledged, not routed again.
    let Packet::Publish(mut dup) = publish(&telemetry, QoS::ExactlyOnce, 7, b"once") else {
        unreachable!()
    };
    dup.dup = true;
    logger.send(Packet::Publish(dup)).await;
    assert!(matches!(logger.recv().await, Some(Packet::PubRec(r)) if r.pkid == 7));
    logger.send(Packet::PubRel(PubRel::new(7))).await;
    assert!(matches!(logger.recv().await, Some(Packet::PubComp(c)) if c.pkid == 7));
    // After PUBREL the id is free for a new message.
    logger
        .send(publish(&telemetry, QoS::ExactlyOnce, 7, b"twice"))
        .await;
    assert!(matches!(logger.recv().await, Some(Packet::PubRec(r)) if r.pkid == 7));

    let first = gateway.next_publish().await;
    assert_eq!(payload_text(&first), "once");
    assert_eq!(first.qos, QoS::AtLeastOnce);
    assert_eq!(payload_text(&gateway.next_publish().await), "twice");

    // rumqttc's own QoS 2 handshake completes too.
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    node.client
        .publish(&telemetry, QoS::ExactlyOnce, false, "rumqttc")
        .await
        .unwrap();
    loop {
        if let Packet::PubComp(_) = node.next_incoming().await {
            break;
        }
    }
    assert_eq!(payload_text(&gateway.next_publish().await), "rumqttc");
}

#[tokio::test]
async fn wildcard_subscriptions_match_per_the_spec_and_skip_dollar_topics() {
    let b = TestBroker::start().await;
    let (mut sub, _) = b.raw_service("sub", true).await;
    sub.subscribe("#", QoS::AtLeastOnce).await;
    let mut publisher = connect(b.service_options("pub")).await;
    publisher
        .publish_acked("$SYS/broker/uptime", b"hidden", false)
        .await;
    publisher.publish_acked("a/b", b"seen", false).await;
    assert_eq!(payload_text(&sub.recv_publish().await), "seen");

    let (mut dollar, _) = b.raw_service("dollar", true).await;
    dollar.subscribe("$SYS/+/uptime", QoS::AtLeastOnce).await;
    publisher
        .publish_acked("$SYS/broker/uptime", b"explicit", false)
        .await;
    assert_eq!(payload_text(&dollar.recv_publish().await), "explicit");

    let (mut plus, _) = b.raw_service("plus", true).await;
    plus.subscribe("weir/terminals/+/status", QoS::AtLeastOnce)
        .await;
    publisher
        .publish_acked(&topic("HY-001", "telemetry"), b"no", false)
        .await;
    publisher
        .publish_acked("weir/terminals/HY-001/status/x", b"no", false)
        .await;
    publisher
        .publish_acked(&topic("HY-001", "status"), b"yes", false)
        .await;
    assert_eq!(payload_text(&plus.recv_publish().await), "yes");
}

#[tokio::test]
async fn an_invalid_filter_gets_the_failure_code_and_a_publish_with_a_wildcard_disconnects() {
    let b = TestBroker::start().await;
    let (mut raw, _) = b.raw_service("svc", true).await;
    let ack = raw.subscribe("a/#/b", QoS::AtLeastOnce).await;
    assert_eq!(
        ack.return_codes,
        [rumqttc::mqttbytes::v4::SubscribeReasonCode::Failure]
    );
    raw.send(publish("a/+", QoS::AtMostOnce, 0, b"x")).await;
    raw.expect_closed().await;
    assert_eq!(b.stats().protocol_errors, 1);
}

#[tokio::test]
async fn unsubscribing_stops_delivery() {
    let b = TestBroker::start().await;
    let (mut raw, _) = b.raw_service("svc", true).await;
    raw.subscribe("a/+", QoS::AtLeastOnce).await;
    raw.subscribe("b", QoS::AtLeastOnce).await;
    let mut unsub = Unsubscribe::new("a/+");
    unsub.pkid = 9;
    raw.send(Packet::Unsubscribe(unsub)).await;
    assert!(matches!(raw.recv().await, Some(Packet::UnsubAck(a)) if a.pkid == 9));
    let mut publisher = connect(b.service_options("pub")).await;
    publisher.publish_acked("a/1", b"gone", false).await;
    publisher.publish_acked("b", b"kept", false).await;
    let p = raw.recv_publish().await;
    assert_eq!(payload_text(&p), "kept");
}

#[tokio::test]
async fn a_packet_over_the_size_limit_disconnects_the_client() {
    let b = TestBroker::start_with(BrokerConfig {
        max_packet_size: 1024,
        ..BrokerConfig::default()
    })
    .await;
    let mut gateway = connect(b.service_options("gw")).await;
    gateway.subscribe("weir/#", QoS::AtLeastOnce).await;
    let mut c = Connect::new("weir-node-HY-001");
    c.set_login("HY-001", "pw-001");
    c.last_will = Some(offline_will("HY-001"));
    let (mut node, _) = Raw::handshake(b.addr, c).await;
    let telemetry = topic("HY-001", "telemetry");
    node.send(publish(&telemetry, QoS::AtLeastOnce, 1, &[b'x'; 900]))
        .await;
    assert!(matches!(node.recv().await, Some(Packet::PubAck(_))));
    node.send(publish(&telemetry, QoS::AtLeastOnce, 2, &[b'x'; 2000]))
        .await;
    node.expect_closed().await;
    assert_eq!(gateway.next_publish().await.payload.len(), 900);
    // Disconnected without DISCONNECT: the will follows.
    assert_eq!(
        gateway.next_publish().await.topic,
        topic("HY-001", "status")
    );
    assert_eq!(b.stats().protocol_errors, 1);
}

#[tokio::test]
async fn no_more_than_max_inflight_messages_are_sent_before_acks_come_back() {
    let b = TestBroker::start_with(BrokerConfig {
        max_inflight: 1,
        service_max_inflight: 3,
        ..BrokerConfig::default()
    })
    .await;
    let (mut slow, _) = b.raw_service("slow", true).await;
    slow.subscribe("weir/#", QoS::AtLeastOnce).await;
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    for n in 0..10 {
        node.publish_acked(
            &topic("HY-001", "telemetry"),
            format!("{n}").as_bytes(),
            false,
        )
        .await;
    }
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(slow.recv_publish().await);
    }
    slow.expect_silence().await;
    // Each ack frees one slot.
    slow.ack(&received[0]).await;
    received.push(slow.recv_publish().await);
    slow.expect_silence().await;
    for i in 1..10 {
        slow.ack(&received[i]).await;
        if received.len() < 10 {
            received.push(slow.recv_publish().await);
        }
    }
    let order: Vec<String> = received.iter().map(payload_text).collect();
    let expected: Vec<String> = (0..10).map(|n| n.to_string()).collect();
    assert_eq!(order, expected, "in publish order");
    assert_eq!(b.stats().messages_out, 10);
}

/// A node gets `max_inflight` unacknowledged messages; the service (the gateway, which
/// acknowledges a store commit at once) gets `service_max_inflight`.
#[tokio::test]
async fn a_node_gets_max_inflight_and_the_service_its_own_window() {
    let b = TestBroker::start_with(BrokerConfig {
        max_inflight: 2,
        service_max_inflight: 5,
        ..BrokerConfig::default()
    })
    .await;
    let ack_topic = topic("HY-001", "ack");
    let mut c = Connect::new("weir-node-HY-001");
    c.set_login("HY-001", "pw-001");
    let (mut node, _) = Raw::handshake(b.addr, c).await;
    node.subscribe(&ack_topic, QoS::AtLeastOnce).await;
    let (mut gateway, _) = b.raw_service("gw", true).await;
    gateway.subscribe("weir/#", QoS::AtLeastOnce).await;
    let mut sender = connect(b.service_options("sender")).await;
    for n in 0..8 {
        sender
            .publish_acked(&ack_topic, format!("{n}").as_bytes(), false)
            .await;
    }
    for _ in 0..2 {
        node.recv_publish().await;
    }
    node.expect_silence().await;
    for _ in 0..5 {
        gateway.recv_publish().await;
    }
    gateway.expect_silence().await;
}

#[tokio::test]
async fn shutdown_closes_every_connection_and_returns() {
    let b = TestBroker::start().await;
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    let (mut raw, _) = b.raw_service("svc", true).await;
    assert_eq!(b.stats().connections_current, 2);
    b.shutdown.cancel();
    tokio::time::timeout(PATIENCE, b.task)
        .await
        .expect("the listener did not stop")
        .unwrap();
    raw.expect_closed().await;
    node.closed().await;
    assert_eq!(b.broker.stats().snapshot().connections_current, 0);
    assert!(tokio::net::TcpStream::connect(b.addr).await.is_err());
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_counted() {
    let b = TestBroker::start_with(BrokerConfig {
        max_connections: 1,
        ..BrokerConfig::default()
    })
    .await;
    let (_first, ack) = b.raw_service("first", true).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    let mut second = Raw::tcp(b.addr).await;
    second.expect_closed().await;
    assert_eq!(b.stats().connects_refused, 1);
}
