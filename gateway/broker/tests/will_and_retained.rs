//! Retained messages and last wills.

mod common;

use std::time::Duration;

use common::*;
use rumqttc::mqttbytes::v4::{Connect, Packet};
use rumqttc::QoS;
use tokio_util::sync::CancellationToken;
use weir_broker::{Broker, BrokerConfig};

fn node_connect(client_id: &str, terminal: &str, keep_alive: u16) -> Connect {
    let pass = TERMINALS.iter().find(|(t, _)| *t == terminal).unwrap().1;
    let mut c = Connect::new(client_id);
    c.set_login(terminal, pass);
    c.keep_alive = keep_alive;
    c.last_will = Some(offline_will(terminal));
    c
}

#[tokio::test]
async fn a_retained_message_reaches_a_late_subscriber_until_an_empty_one_clears_it() {
    let b = TestBroker::start().await;
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    let status = topic("HY-001", "status");
    node.publish_acked(&status, b"{\"state\":\"online\"}", true)
        .await;

    let mut late = connect(b.service_options("late")).await;
    late.subscribe("weir/terminals/+/status", QoS::AtLeastOnce)
        .await;
    let got = late.next_publish().await;
    assert_eq!(got.topic, status);
    assert_eq!(payload_text(&got), "{\"state\":\"online\"}");
    assert!(
        got.retain,
        "sent because of the subscription: retain flag set"
    );

    // Forwarded to an existing subscription: retain flag cleared (MQTT-3.3.1-9).
    node.publish_acked(&status, b"{\"state\":\"online\",\"boot\":2}", true)
        .await;
    let live = late.next_publish().await;
    assert!(!live.retain);

    node.publish_acked(&status, b"", true).await;
    let cleared = late.next_publish().await;
    assert!(cleared.payload.is_empty());

    let mut later = connect(b.service_options("later")).await;
    later
        .subscribe("weir/terminals/+/status", QoS::AtLeastOnce)
        .await;
    node.publish_acked(&status, b"not retained", false).await;
    let first = later.next_publish().await;
    assert_eq!(
        payload_text(&first),
        "not retained",
        "no retained message left"
    );
    assert!(!first.retain);
}

#[tokio::test]
async fn a_retained_message_is_delivered_at_the_lower_of_its_qos_and_the_subscriptions() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("gw")).await;
    gateway
        .publish_acked(
            &topic("HY-001", "config"),
            b"{\"sample_interval_s\":60}",
            true,
        )
        .await;
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    node.subscribe(&topic("HY-001", "config"), QoS::AtMostOnce)
        .await;
    let got = node.next_publish().await;
    assert_eq!(got.qos, QoS::AtMostOnce);
    assert!(got.retain);
}

#[tokio::test]
async fn the_will_is_published_when_the_socket_drops() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("gw")).await;
    gateway
        .subscribe("weir/terminals/+/status", QoS::AtLeastOnce)
        .await;
    let (raw, ack) = Raw::handshake(b.addr, node_connect("weir-node-HY-001", "HY-001", 60)).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    drop(raw);
    let will = gateway.next_publish().await;
    assert_eq!(will.topic, topic("HY-001", "status"));
    assert_eq!(payload_text(&will), "{\"state\":\"offline\"}");

    // The will was retained: the gateway learns it even after a restart of its client.
    let mut restarted = connect(b.service_options("gw2")).await;
    restarted
        .subscribe(&topic("HY-001", "status"), QoS::AtLeastOnce)
        .await;
    assert_eq!(
        payload_text(&restarted.next_publish().await),
        "{\"state\":\"offline\"}"
    );
}

#[tokio::test]
async fn no_will_is_published_after_disconnect() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("gw")).await;
    gateway.subscribe("weir/#", QoS::AtLeastOnce).await;
    let (mut raw, _) = Raw::handshake(b.addr, node_connect("weir-node-HY-001", "HY-001", 60)).await;
    raw.send(Packet::Disconnect).await;
    // The broker closes after handling DISCONNECT, so a will would be routed by now.
    raw.expect_closed().await;
    gateway
        .publish_acked(&topic("HY-001", "ack"), b"after", false)
        .await;
    assert_eq!(payload_text(&gateway.next_publish().await), "after");
}

#[tokio::test]
async fn a_will_on_another_terminals_topic_is_refused_when_it_would_be_published() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("gw")).await;
    gateway.subscribe("weir/#", QoS::AtLeastOnce).await;
    let mut c = node_connect("weir-node-HY-001", "HY-001", 60);
    c.last_will = Some(offline_will("HY-002"));
    let (mut raw, ack) = Raw::handshake(b.addr, c).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    raw.send_bytes(&[0xF0, 0x00]).await; // reserved packet type: protocol error, no DISCONNECT
    raw.expect_closed().await;
    gateway
        .publish_acked(&topic("HY-001", "ack"), b"after", false)
        .await;
    assert_eq!(payload_text(&gateway.next_publish().await), "after");
    assert_eq!(b.stats().acl_denied, 1);
    assert_eq!(b.stats().protocol_errors, 1);
}

/// Serves a client on an in-process pipe, so that the test can run on paused time.
fn pipe(broker: &Broker, shutdown: &CancellationToken) -> Raw<tokio::io::DuplexStream> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (broker, shutdown) = (broker.clone(), shutdown.clone());
    tokio::spawn(async move { broker.serve_connection(server, shutdown).await });
    Raw::new(client)
}

async fn pipe_handshake(raw: &mut Raw<tokio::io::DuplexStream>, connect: Connect) {
    raw.send(Packet::Connect(connect)).await;
    match raw.recv_unbounded().await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_will_is_published_when_keep_alive_expires_and_not_while_the_client_pings() {
    let broker = Broker::new(BrokerConfig::default(), policy()).unwrap();
    let shutdown = CancellationToken::new();

    let mut gateway = pipe(&broker, &shutdown);
    let mut c = Connect::new("gw");
    c.set_login(SERVICE_USER, SERVICE_PASS);
    c.keep_alive = 0;
    pipe_handshake(&mut gateway, c).await;
    gateway.subscribe("weir/#", QoS::AtLeastOnce).await;

    let mut node = pipe(&broker, &shutdown);
    pipe_handshake(&mut node, node_connect("weir-node-HY-001", "HY-001", 10)).await;
    let connected_at = tokio::time::Instant::now();

    // Pinging every 10 s keeps the node connected well past 15 s.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        node.send(Packet::PingReq).await;
        assert_eq!(node.recv_unbounded().await, Some(Packet::PingResp));
    }
    assert!(connected_at.elapsed() >= Duration::from_secs(50));

    // Then silence: after 1.5 x 10 s the broker gives up and publishes the will.
    let silent_from = tokio::time::Instant::now();
    let will = tokio::time::timeout(Duration::from_secs(60), gateway.recv_unbounded())
        .await
        .expect("will not published")
        .expect("gateway pipe closed");
    let waited = silent_from.elapsed();
    match will {
        Packet::Publish(p) => assert_eq!(p.topic, topic("HY-001", "status")),
        other => panic!("expected the will, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_secs(15) && waited < Duration::from_secs(16),
        "{waited:?}"
    );
    assert_eq!(
        node.recv_unbounded().await,
        None,
        "the node's connection is closed"
    );
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_no_connect_is_closed_after_the_connect_timeout() {
    let broker = Broker::new(BrokerConfig::default(), policy()).unwrap();
    let shutdown = CancellationToken::new();
    let mut silent = pipe(&broker, &shutdown);
    let started = tokio::time::Instant::now();
    assert_eq!(silent.recv_unbounded().await, None);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}
