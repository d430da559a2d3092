//! Persistent sessions, redelivery, takeover and queue bounds.

mod common;

use common::*;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet};
use rumqttc::QoS;
use weir_broker::BrokerConfig;

fn persistent_node(b: &TestBroker) -> rumqttc::MqttOptions {
    let mut o = b.node_options("weir-node-HY-001", "HY-001");
    o.set_clean_session(false);
    o
}

#[tokio::test]
async fn a_persistent_session_receives_what_was_published_while_it_was_offline_in_order() {
    let b = TestBroker::start().await;
    let ack_topic = topic("HY-001", "ack");
    let mut node = connect(persistent_node(&b)).await;
    assert!(!node.session_present);
    node.subscribe(&ack_topic, QoS::AtLeastOnce).await;
    node.client.disconnect().await.unwrap();
    node.closed().await;

    let mut gateway = connect(b.service_options("gw")).await;
    for seq in 0..50 {
        gateway
            .publish_acked(&ack_topic, format!("{seq}").as_bytes(), false)
            .await;
    }
    // QoS 0 messages are not kept for an offline session.
    gateway
        .client
        .publish(&ack_topic, QoS::AtMostOnce, false, "qos0")
        .await
        .unwrap();
    gateway.publish_acked(&ack_topic, b"last", false).await;

    let mut node = connect(persistent_node(&b)).await;
    assert!(node.session_present);
    for seq in 0..50 {
        assert_eq!(payload_text(&node.next_publish().await), format!("{seq}"));
    }
    assert_eq!(payload_text(&node.next_publish().await), "last");
}

#[tokio::test]
async fn a_clean_session_is_forgotten_at_disconnect() {
    let b = TestBroker::start().await;
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    node.subscribe(&topic("HY-001", "ack"), QoS::AtLeastOnce)
        .await;
    assert!(b.broker.has_session("weir-node-HY-001"));
    node.client.disconnect().await.unwrap();
    node.closed().await;
    assert!(!b.broker.has_session("weir-node-HY-001"));

    // Asking for a clean session also discards a persistent one.
    let mut node = connect(persistent_node(&b)).await;
    node.subscribe(&topic("HY-001", "ack"), QoS::AtLeastOnce)
        .await;
    drop(node);
    let clean = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    assert!(!clean.session_present);
}

#[tokio::test]
async fn unacknowledged_messages_are_sent_again_with_dup_after_reconnect_then_the_queue() {
    let b = TestBroker::start().await;
    let (mut sub, ack) = b.raw_service("gw-persistent", false).await;
    assert!(!ack.session_present);
    sub.subscribe("weir/terminals/+/telemetry", QoS::AtLeastOnce)
        .await;

    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    let telemetry = topic("HY-001", "telemetry");
    for n in 0..3 {
        node.publish_acked(&telemetry, format!("m{n}").as_bytes(), false)
            .await;
    }
    let first: Vec<_> = [
        sub.recv_publish().await,
        sub.recv_publish().await,
        sub.recv_publish().await,
    ]
    .into();
    assert!(first.iter().all(|p| !p.dup));
    sub.ack(&first[0]).await;
    // A PINGRESP after the PUBACK proves the broker has handled it.
    sub.send(Packet::PingReq).await;
    assert_eq!(sub.recv().await, Some(Packet::PingResp));
    drop(sub);

    node.publish_acked(&telemetry, b"m3", false).await;

    let (mut sub, ack) = b.raw_service("gw-persistent", false).await;
    assert!(ack.session_present);
    let again = [sub.recv_publish().await, sub.recv_publish().await];
    for (resent, original) in again.iter().zip(&first[1..]) {
        assert!(resent.dup, "{resent:?}");
        assert_eq!(resent.pkid, original.pkid);
        assert_eq!(resent.payload, original.payload);
    }
    let queued = sub.recv_publish().await;
    assert_eq!(payload_text(&queued), "m3");
    assert!(!queued.dup);
}

#[tokio::test]
async fn a_rumqttc_client_holding_its_acks_gets_the_messages_again_after_reconnect() {
    let b = TestBroker::start().await;
    let ack_topic = topic("HY-001", "ack");
    let mut options = persistent_node(&b);
    options.set_manual_acks(true);
    let mut node = connect(options.clone()).await;
    node.subscribe(&ack_topic, QoS::AtLeastOnce).await;

    let mut gateway = connect(b.service_options("gw")).await;
    gateway.publish_acked(&ack_topic, b"a1", false).await;
    gateway.publish_acked(&ack_topic, b"a2", false).await;
    let a1 = node.next_publish().await;
    let _a2 = node.next_publish().await;
    node.client.ack(&a1).await.unwrap();
    node.client.disconnect().await.unwrap();
    node.closed().await;

    let mut node = connect(options).await;
    assert!(node.session_present);
    let again = node.next_publish().await;
    assert_eq!(payload_text(&again), "a2");
    assert!(again.dup);
}

#[tokio::test]
async fn a_second_connection_with_the_same_client_id_takes_the_session_over() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("gw")).await;
    gateway.subscribe("weir/#", QoS::AtLeastOnce).await;

    let mut c = Connect::new("weir-node-HY-001");
    c.set_login("HY-001", "pw-001");
    c.clean_session = false;
    c.last_will = Some(offline_will("HY-001"));
    let (mut first, ack) = Raw::handshake(b.addr, c.clone()).await;
    assert!(!ack.session_present);
    first
        .subscribe(&topic("HY-001", "ack"), QoS::AtLeastOnce)
        .await;

    c.last_will = None;
    let (mut second, ack) = Raw::handshake(b.addr, c).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert!(ack.session_present, "the subscription lives on");
    first.expect_closed().await;
    // The first connection ended without DISCONNECT: its will is published.
    let will = gateway.next_publish().await;
    assert_eq!(will.topic, topic("HY-001", "status"));

    gateway
        .publish_acked(&topic("HY-001", "ack"), b"to the new one", false)
        .await;
    assert_eq!(payload_text(&second.recv_publish().await), "to the new one");
    assert_eq!(b.stats().connections_current, 2);
}

#[tokio::test]
async fn a_client_id_in_use_by_another_identity_is_refused() {
    let b = TestBroker::start().await;
    let mut c = Connect::new("weir-node-HY-001");
    c.set_login("HY-001", "pw-001");
    let (mut owner, _) = Raw::handshake(b.addr, c).await;
    let mut thief = Connect::new("weir-node-HY-001");
    thief.set_login("HY-002", "pw-002");
    let (_, ack) = Raw::handshake(b.addr, thief).await;
    assert_eq!(ack.code, ConnectReturnCode::NotAuthorized);
    // The owner is still connected.
    owner.send(Packet::PingReq).await;
    assert_eq!(owner.recv().await, Some(Packet::PingResp));
}

#[tokio::test]
async fn the_service_takes_back_its_client_id_from_a_node_that_took_it() {
    let b = TestBroker::start().await;
    let mut c = Connect::new("weir-gateway");
    c.set_login("HY-001", "pw-001");
    c.clean_session = false;
    let (mut squatter, ack) = Raw::handshake(b.addr, c).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    let (mut service, ack) = b.raw_service("weir-gateway", false).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    // A fresh session: nothing of the node's carried over.
    assert!(!ack.session_present);
    // The node was cut off; the service's connection works.
    assert_eq!(squatter.recv().await, None);
    service.send(Packet::PingReq).await;
    assert_eq!(service.recv().await, Some(Packet::PingResp));
    // And the node cannot take it back.
    let mut again = Connect::new("weir-gateway");
    again.set_login("HY-001", "pw-001");
    let (_, ack) = Raw::handshake(b.addr, again).await;
    assert_ne!(ack.code, ConnectReturnCode::Success);
}

#[tokio::test]
async fn a_full_offline_queue_drops_its_oldest_messages_and_counts_them() {
    let b = TestBroker::start_with(BrokerConfig {
        max_queued: 5,
        ..BrokerConfig::default()
    })
    .await;
    let ack_topic = topic("HY-001", "ack");
    let mut node = connect(persistent_node(&b)).await;
    node.subscribe(&ack_topic, QoS::AtLeastOnce).await;
    node.client.disconnect().await.unwrap();
    node.closed().await;

    let mut gateway = connect(b.service_options("gw")).await;
    for seq in 0..8 {
        gateway
            .publish_acked(&ack_topic, format!("{seq}").as_bytes(), false)
            .await;
    }
    assert_eq!(b.stats().queued_dropped, 3);
    let mut node = connect(persistent_node(&b)).await;
    for seq in 3..8 {
        assert_eq!(payload_text(&node.next_publish().await), format!("{seq}"));
    }
    node.expect_silence().await;
}

#[tokio::test]
async fn a_persistent_session_without_a_client_id_is_refused() {
    let b = TestBroker::start().await;
    let mut c = Connect::new("");
    c.set_login("HY-001", "pw-001");
    c.clean_session = false;
    let (_, ack) = Raw::handshake(b.addr, c).await;
    assert_eq!(ack.code, ConnectReturnCode::BadClientId);
    let mut c = Connect::new("");
    c.set_login("HY-001", "pw-001");
    let (_, ack) = Raw::handshake(b.addr, c).await;
    assert_eq!(
        ack.code,
        ConnectReturnCode::Success,
        "a clean one gets an id"
    );
}

#[tokio::test]
async fn a_node_may_not_take_another_terminals_node_client_id_and_that_node_still_connects() {
    let b = TestBroker::start().await;
    // HY-001's credentials asking for HY-002's client id, with a persistent session.
    let mut squatter = node_login("weir-node-HY-002", "HY-001", password_of("HY-001"));
    squatter.clean_session = false;
    let (_squatter, ack) = Raw::handshake(b.addr, squatter).await;
    assert_eq!(ack.code, ConnectReturnCode::NotAuthorized);

    let mut real = b.node_options("weir-node-HY-002", "HY-002");
    real.set_clean_session(false);
    let real = connect(real).await;
    assert!(!real.session_present);
}

#[tokio::test]
async fn a_session_belongs_to_the_identity_that_made_it_whoever_asks_for_its_client_id() {
    let b = TestBroker::start().await;
    let options = |terminal: &str| {
        // A client id that no policy reserves, as a third-party data logger might use.
        let mut o = b.node_options("datalogger", terminal);
        o.set_clean_session(false);
        o
    };
    // The squatter comes first, with other credentials, and stays connected.
    let mut squatter = connect(options("HY-001")).await;
    assert!(!squatter.session_present);

    // The real node gets its own session, and neither connection ends the other.
    let mut real = connect(options("HY-002")).await;
    assert!(!real.session_present, "not the squatter's session");
    real.subscribe(&topic("HY-002", "ack"), QoS::AtLeastOnce)
        .await;
    squatter
        .publish_acked(&topic("HY-001", "telemetry"), b"still here", false)
        .await;
    real.client.disconnect().await.unwrap();
    real.closed().await;

    // While the real node is away, the gateway queues a message for it.
    let mut gateway = connect(b.service_options("gw")).await;
    gateway
        .publish_acked(&topic("HY-002", "ack"), b"for HY-002", false)
        .await;

    // The squatter, connecting again, resumes only its own session: nothing of HY-002's.
    drop(squatter);
    let mut squatter = connect(options("HY-001")).await;
    assert!(squatter.session_present);
    squatter.expect_silence().await;

    let mut real = connect(options("HY-002")).await;
    assert!(real.session_present);
    assert_eq!(payload_text(&real.next_publish().await), "for HY-002");
}
