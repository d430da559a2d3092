//! Who may connect, and where each client may publish and subscribe.

mod common;

use common::*;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, SubscribeReasonCode};
use rumqttc::{ConnectionError, MqttOptions, QoS};

fn refusal(result: Result<Client, ConnectionError>) -> ConnectReturnCode {
    match result {
        Err(ConnectionError::ConnectionRefused(code)) => code,
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(_) => panic!("expected a refusal, the client was admitted"),
    }
}

#[tokio::test]
async fn anonymous_clients_are_refused_as_not_authorized() {
    let b = TestBroker::start().await;
    let anonymous = MqttOptions::new("anon", b.addr.ip().to_string(), b.addr.port());
    assert_eq!(
        refusal(try_connect(anonymous).await),
        ConnectReturnCode::NotAuthorized
    );
    assert_eq!(b.stats().connects_refused, 1);
    assert_eq!(b.stats().connections_total, 0);
}

#[tokio::test]
async fn a_wrong_password_is_refused_as_bad_credentials() {
    let b = TestBroker::start().await;
    let wrong = b.options("weir-node-HY-001", "HY-001", "pw-002");
    assert_eq!(
        refusal(try_connect(wrong).await),
        ConnectReturnCode::BadUserNamePassword
    );
    let wrong_service = b.options("gw", SERVICE_USER, "guess");
    assert_eq!(
        refusal(try_connect(wrong_service).await),
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(b.stats().connects_refused, 2);
}

#[tokio::test]
async fn a_username_that_is_not_a_well_formed_terminal_id_is_refused() {
    let b = TestBroker::start().await;
    for username in ["HY 001", "HY-001/#", "weir/terminals/HY-001", "浙江-001"] {
        let options = b.options("weird", username, "pw-001");
        assert_eq!(
            refusal(try_connect(options).await),
            ConnectReturnCode::BadUserNamePassword,
            "{username}"
        );
    }
}

#[tokio::test]
async fn node_telemetry_reaches_a_service_subscriber() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("weir-gateway-ingest")).await;
    let ack = gateway
        .subscribe("weir/terminals/+/telemetry", QoS::AtLeastOnce)
        .await;
    assert_eq!(
        ack.return_codes,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    node.publish_acked(&topic("HY-001", "telemetry"), b"\x01reading", false)
        .await;
    let got = gateway.next_publish().await;
    assert_eq!(got.topic, topic("HY-001", "telemetry"));
    assert_eq!(&got.payload[..], b"\x01reading");
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert!(!got.retain);
    assert_eq!(b.stats().acl_denied, 0);
}

#[tokio::test]
async fn a_node_publishing_to_another_terminals_topic_is_acked_but_not_delivered_and_is_counted() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("gw")).await;
    gateway.subscribe("#", QoS::AtLeastOnce).await;
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    // publish_acked waits for the PUBACK: 3.1.1 has no negative ack, the node gets one anyway.
    node.publish_acked(&topic("HY-002", "telemetry"), b"spoofed", false)
        .await;
    node.publish_acked(&topic("HY-001", "ack"), b"self-acked", false)
        .await;
    node.publish_acked(&topic("HY-001", "telemetry"), b"genuine", false)
        .await;
    // Messages from one publisher arrive in order: had the refused ones been routed, they
    // would come first.
    let got = gateway.next_publish().await;
    assert_eq!(payload_text(&got), "genuine");
    assert_eq!(b.stats().acl_denied, 2);
}

#[tokio::test]
async fn a_node_publishing_under_a_wrong_prefix_is_refused() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("gw")).await;
    gateway.subscribe("#", QoS::AtLeastOnce).await;
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    for t in [
        "other/terminals/HY-001/telemetry",
        "weir/terminals/HY-001/telemetry/extra",
        "weir/HY-001/telemetry",
        "weirterminals/HY-001/telemetry",
    ] {
        node.publish_acked(t, b"wrong", false).await;
    }
    node.publish_acked(&topic("HY-001", "status"), b"right", false)
        .await;
    assert_eq!(payload_text(&gateway.next_publish().await), "right");
    assert_eq!(b.stats().acl_denied, 4);
}

#[tokio::test]
async fn a_node_subscribing_to_another_terminals_ack_gets_the_failure_code() {
    let b = TestBroker::start().await;
    let mut node = connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    for (filter, expected) in [
        (topic("HY-002", "ack"), SubscribeReasonCode::Failure),
        (
            "weir/terminals/+/ack".to_owned(),
            SubscribeReasonCode::Failure,
        ),
        (topic("HY-001", "telemetry"), SubscribeReasonCode::Failure),
        (
            topic("HY-001", "ack"),
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
        ),
        (
            topic("HY-001", "config"),
            SubscribeReasonCode::Success(QoS::AtLeastOnce),
        ),
    ] {
        let ack = node.subscribe(&filter, QoS::AtLeastOnce).await;
        assert_eq!(ack.return_codes, [expected], "{filter}");
    }
    assert_eq!(b.stats().acl_denied, 3);

    // The refused subscription delivers nothing; the granted one does.
    let mut gateway = connect(b.service_options("gw")).await;
    gateway
        .publish_acked(&topic("HY-002", "ack"), b"not yours", false)
        .await;
    gateway
        .publish_acked(&topic("HY-001", "ack"), b"yours", false)
        .await;
    assert_eq!(payload_text(&node.next_publish().await), "yours");
}

#[tokio::test]
async fn subscriptions_are_granted_at_most_qos_1() {
    let b = TestBroker::start().await;
    let mut gateway = connect(b.service_options("gw")).await;
    let ack = gateway.subscribe("weir/#", QoS::ExactlyOnce).await;
    assert_eq!(
        ack.return_codes,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let ack = gateway.subscribe("x/#", QoS::AtMostOnce).await;
    assert_eq!(
        ack.return_codes,
        [SubscribeReasonCode::Success(QoS::AtMostOnce)]
    );
}
