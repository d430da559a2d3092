//! Sockets that have not logged in, and sockets from one address, are capped: idle or slow
//! sockets cannot take the slots nodes need.

mod common;

use std::time::Duration;

use common::*;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet};
use weir_broker::BrokerConfig;

#[tokio::test]
async fn sockets_beyond_the_pending_cap_are_closed_at_once_and_a_node_connects_when_the_idle_ones_go(
) {
    let b = TestBroker::start_with(BrokerConfig {
        max_pending_connections: 4,
        ..BrokerConfig::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(Raw::tcp(b.addr).await);
    }
    eventually("the broker holds the idle sockets", || {
        b.stats().connections_pending == 4
    })
    .await;

    // Closed well before the 10 s connect timeout would close them.
    for _ in 0..3 {
        Raw::tcp(b.addr).await.expect_closed().await;
    }
    // A node arriving now is turned away too: the cap is the same for everyone.
    let mut node = Raw::tcp(b.addr).await;
    node.send(Packet::Connect(node_login(
        "weir-node-HY-001",
        "HY-001",
        password_of("HY-001"),
    )))
    .await;
    node.expect_closed().await;
    assert_eq!(b.stats().refused_pending_limit, 4);

    drop(idle);
    eventually("the idle sockets' slots are free", || {
        b.stats().connections_pending == 0
    })
    .await;
    connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    let s = b.stats();
    assert_eq!((s.refused_pending_limit, s.connections_current), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn idle_sockets_give_their_slots_back_at_the_connect_timeout() {
    let b = TestBroker::start_with(BrokerConfig {
        max_pending_connections: 2,
        connect_timeout_s: 10,
        ..BrokerConfig::default()
    })
    .await;
    let mut idle = [Raw::tcp(b.addr).await, Raw::tcp(b.addr).await];
    Raw::tcp(b.addr).await.expect_closed().await;
    let started = tokio::time::Instant::now();
    for socket in &mut idle {
        assert_eq!(socket.recv_unbounded().await, None);
    }
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "closed by the timeout"
    );
    let (_node, ack) = Raw::handshake(
        b.addr,
        node_login("weir-node-HY-001", "HY-001", password_of("HY-001")),
    )
    .await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert_eq!(b.stats().refused_pending_limit, 1);
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_connections_and_others_are_not_affected() {
    let b = TestBroker::start_with(BrokerConfig {
        max_connections_per_address: 3,
        ..BrokerConfig::default()
    })
    .await;
    let (busy, other) = (loopback(1), loopback(2));
    let service = |id: &str| {
        let mut c = rumqttc::mqttbytes::v4::Connect::new(id);
        c.set_login(SERVICE_USER, SERVICE_PASS);
        c
    };
    let mut held = Vec::new();
    for n in 0..2 {
        held.push(
            Raw::handshake_from(b.addr, busy, service(&format!("s{n}")))
                .await
                .0,
        );
    }
    // A socket that has not logged in counts too.
    held.push(Raw::tcp_from(b.addr, busy).await);
    Raw::tcp_from(b.addr, busy).await.expect_closed().await;
    assert_eq!(b.stats().refused_address_limit, 1);

    let (_, ack) = Raw::handshake_from(b.addr, other, service("elsewhere")).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);

    drop(held.pop());
    eventually("the address's slot is free", || {
        b.stats().connections_pending == 0
    })
    .await;
    let (_, ack) = Raw::handshake_from(b.addr, busy, service("again")).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert_eq!(b.stats().refused_address_limit, 1);
}
