//! What a client can make the broker keep: persistent sessions expire, and each identity holds
//! a bounded number of them.

mod common;

use std::time::Duration;

use common::*;
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet};
use rumqttc::QoS;
use weir_broker::BrokerConfig;

fn persistent(client_id: &str, terminal: &str) -> Connect {
    let mut c = node_login(client_id, terminal, password_of(terminal));
    c.clean_session = false;
    c
}

/// Connects with a persistent session, subscribes to the terminal's ack, and says goodbye.
async fn visit(b: &TestBroker, client_id: &str, terminal: &str) -> ConnAck {
    let (mut raw, ack) = Raw::handshake(b.addr, persistent(client_id, terminal)).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    raw.subscribe(&topic(terminal, "ack"), QoS::AtLeastOnce)
        .await;
    raw.send(Packet::Disconnect).await;
    raw.expect_closed().await;
    ack
}

#[tokio::test(start_paused = true)]
async fn a_persistent_session_expires_when_its_client_stays_away_for_the_expiry() {
    let b = TestBroker::start_with(BrokerConfig {
        session_expiry_s: 3600,
        ..BrokerConfig::default()
    })
    .await;
    visit(&b, "weir-node-HY-001", "HY-001").await;

    // Back just before the hour: the session is there, and the hour starts again.
    tokio::time::advance(Duration::from_secs(3599)).await;
    assert!(
        visit(&b, "weir-node-HY-001", "HY-001")
            .await
            .session_present
    );
    tokio::time::advance(Duration::from_secs(3599)).await;
    assert!(b.broker.has_session("weir-node-HY-001"));

    // Away a whole hour: gone, without anyone connecting.
    tokio::time::advance(Duration::from_secs(1)).await;
    eventually("the session expired", || {
        !b.broker.has_session("weir-node-HY-001")
    })
    .await;
    let s = b.stats();
    assert_eq!((s.sessions_expired, s.sessions), (1, 0));
    assert!(
        !visit(&b, "weir-node-HY-001", "HY-001")
            .await
            .session_present
    );
}

#[tokio::test]
async fn an_identity_holds_at_most_its_share_of_persistent_sessions_and_loses_its_oldest_offline_one(
) {
    let b = TestBroker::start_with(BrokerConfig {
        max_sessions_per_identity: 2,
        ..BrokerConfig::default()
    })
    .await;
    for client_id in ["a", "b", "c"] {
        visit(&b, client_id, "HY-001").await;
    }
    assert!(
        !b.broker.has_session("a"),
        "the oldest offline one made room"
    );
    assert!(b.broker.has_session("b") && b.broker.has_session("c"));
    assert_eq!(b.stats().sessions_evicted, 1);

    // With both its sessions connected, the identity gets no third.
    let (_b, ack) = Raw::handshake(b.addr, persistent("b", "HY-001")).await;
    assert!(ack.session_present);
    let (_c, ack) = Raw::handshake(b.addr, persistent("c", "HY-001")).await;
    assert!(ack.session_present);
    let (_, ack) = Raw::handshake(b.addr, persistent("d", "HY-001")).await;
    assert_eq!(ack.code, ConnectReturnCode::ServiceUnavailable);
    assert_eq!(b.stats().refused_session_limit, 1);

    // Other identities are not affected, nor are clean sessions.
    visit(&b, "a", "HY-002").await;
    let (_, ack) =
        Raw::handshake(b.addr, node_login("clean", "HY-001", password_of("HY-001"))).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert_eq!(b.stats().sessions, 4, "b, c, HY-002's a, the clean one");
}
