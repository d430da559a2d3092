//! Password checks: how many run at once, how long a CONNECT waits for one, and how repeated
//! failures from one address are refused without one.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet};
use tokio::time::timeout;
use weir_broker::{BrokerConfig, Identity, Policy, Refusal, WeirPolicy};

/// Weir's policy with a password check that takes a while on its blocking thread, as argon2
/// does, and that counts how many checks run at once.
struct SlowPolicy {
    inner: Arc<WeirPolicy>,
    check_time: Duration,
    /// Held shut, every check waits until it opens (or 10 s pass).
    gate: (Mutex<bool>, Condvar),
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    checks: AtomicU64,
}

impl SlowPolicy {
    fn new(check_time: Duration) -> Arc<Self> {
        Arc::new(SlowPolicy {
            inner: policy(),
            check_time,
            gate: (Mutex::new(true), Condvar::new()),
            running: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            checks: AtomicU64::new(0),
        })
    }

    fn gated() -> Arc<Self> {
        let p = Self::new(Duration::ZERO);
        *p.gate.0.lock().unwrap() = false;
        p
    }

    fn open(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }

    fn checks(&self) -> u64 {
        self.checks.load(SeqCst)
    }
}

impl Policy for SlowPolicy {
    fn authenticate(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<Identity, Refusal> {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most_at_once.fetch_max(now, SeqCst);
        self.checks.fetch_add(1, SeqCst);
        std::thread::sleep(self.check_time);
        let open = self.gate.0.lock().unwrap();
        drop(
            self.gate
                .1
                .wait_timeout_while(open, Duration::from_secs(10), |open| !*open)
                .unwrap(),
        );
        self.running.fetch_sub(1, SeqCst);
        self.inner.authenticate(client_id, username, password)
    }

    fn may_publish(&self, who: &Identity, topic: &str) -> bool {
        self.inner.may_publish(who, topic)
    }

    fn may_subscribe(&self, who: &Identity, filter: &str) -> bool {
        self.inner.may_subscribe(who, filter)
    }
}

/// One CONNECT from `from`: the CONNACK's code, or `None` if the broker closed the socket or
/// did not answer within the test's patience.
async fn login_from(
    addr: SocketAddr,
    from: std::net::IpAddr,
    terminal: &str,
    password: &str,
) -> Option<ConnectReturnCode> {
    let attempt = async {
        let mut raw = Raw::tcp_from(addr, from).await;
        raw.send(Packet::Connect(node_login("node", terminal, password)))
            .await;
        match raw.recv_unbounded().await {
            Some(Packet::ConnAck(ConnAck { code, .. })) => Some(code),
            _ => None,
        }
    };
    timeout(PATIENCE, attempt).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_right_password_connects_while_128_clients_hammer_wrong_ones() {
    let policy = SlowPolicy::new(Duration::from_millis(20));
    let b = TestBroker::start_with_policy(
        BrokerConfig {
            max_concurrent_auth: 4,
            auth_failures_per_user: 3,
            ..BrokerConfig::default()
        },
        policy.clone(),
    )
    .await;

    // 128 clients, each from its own address, guess the password of the node's own terminal
    // as fast as the broker answers.
    let stop = Arc::new(AtomicBool::new(false));
    let mut storm = Vec::new();
    for i in 0..128u16 {
        let (addr, stop) = (b.addr, stop.clone());
        storm.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(SeqCst) {
                n += 1;
                login_from(addr, loopback(256 + i), "HY-001", &format!("guess-{i}-{n}")).await;
            }
        }));
    }
    eventually("the storm keeps the password checks busy", || {
        policy.checks() >= 100
    })
    .await;

    let checks_before = policy.checks();
    let node = try_connect(b.node_options("weir-node-HY-001", "HY-001")).await;
    assert!(node.is_ok(), "the node was refused: {:?}", node.err());
    assert!(
        policy.checks() > checks_before + 1,
        "the storm was still going while the node connected"
    );
    // Then each attacker's guesses are refused without a check.
    eventually("the attackers are refused without a check", || {
        b.stats().refused_auth_throttled > 0
    })
    .await;

    stop.store(true, SeqCst);
    for attacker in storm {
        attacker.await.unwrap();
    }
    let most = policy.most_at_once.load(SeqCst);
    assert!(most <= 4, "{most} password checks ran at once");
    assert_eq!(b.stats().connections_total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_finds_no_free_password_check_in_time_is_refused_as_server_unavailable() {
    let policy = SlowPolicy::gated();
    let b = TestBroker::start_with_policy(
        BrokerConfig {
            max_concurrent_auth: 1,
            auth_wait_ms: 100,
            ..BrokerConfig::default()
        },
        policy.clone(),
    )
    .await;
    let first = tokio::spawn(Raw::handshake(
        b.addr,
        node_login("first", "HY-001", password_of("HY-001")),
    ));
    eventually("the first check holds the only slot", || {
        policy.checks() == 1
    })
    .await;

    let (_, ack) = Raw::handshake(
        b.addr,
        node_login("second", "HY-002", password_of("HY-002")),
    )
    .await;
    assert_eq!(ack.code, ConnectReturnCode::ServiceUnavailable);
    assert_eq!(policy.checks(), 1, "the second CONNECT was not checked");
    assert_eq!(b.stats().refused_auth_busy, 1);

    policy.open();
    let (_, ack) = first.await.unwrap();
    assert_eq!(ack.code, ConnectReturnCode::Success);
}

#[tokio::test(start_paused = true)]
async fn failures_for_a_user_name_lock_it_out_from_that_address_only_until_the_window_passes() {
    let policy = SlowPolicy::new(Duration::ZERO);
    let b = TestBroker::start_with_policy(
        BrokerConfig {
            auth_failures_per_user: 3,
            auth_failure_window_s: 60,
            ..BrokerConfig::default()
        },
        policy.clone(),
    )
    .await;
    let (here, elsewhere) = (loopback(1), loopback(2));
    let right = password_of("HY-001");
    for _ in 0..3 {
        assert_eq!(
            login_from(b.addr, here, "HY-001", "wrong").await,
            Some(ConnectReturnCode::BadUserNamePassword)
        );
    }
    assert_eq!(
        login_from(b.addr, here, "HY-001", right).await,
        Some(ConnectReturnCode::ServiceUnavailable),
        "even the right password is refused from this address for now"
    );
    assert_eq!(policy.checks(), 3, "the refused CONNECT was not checked");
    assert_eq!(b.stats().refused_auth_throttled, 1);

    assert_eq!(
        login_from(b.addr, elsewhere, "HY-001", right).await,
        Some(ConnectReturnCode::Success),
        "another address is not locked out"
    );
    assert_eq!(
        login_from(b.addr, here, "HY-002", password_of("HY-002")).await,
        Some(ConnectReturnCode::Success),
        "another user name from this address is not locked out"
    );

    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        login_from(b.addr, here, "HY-001", right).await,
        Some(ConnectReturnCode::Success)
    );
}

#[tokio::test]
async fn a_success_resets_the_failures_of_its_user_name() {
    let b = TestBroker::start_with(BrokerConfig {
        auth_failures_per_user: 3,
        ..BrokerConfig::default()
    })
    .await;
    let here = loopback(1);
    let right = password_of("HY-001");
    use ConnectReturnCode::{BadUserNamePassword as Bad, ServiceUnavailable, Success};
    // Two failures, a success, two failures, a success: never three in a row.
    for (password, expected) in [
        ("wrong", Bad),
        ("wrong", Bad),
        (right, Success),
        ("wrong", Bad),
        ("wrong", Bad),
        (right, Success),
        ("wrong", Bad),
        ("wrong", Bad),
        ("wrong", Bad),
        (right, ServiceUnavailable),
    ] {
        assert_eq!(
            login_from(b.addr, here, "HY-001", password).await,
            Some(expected)
        );
    }
}

#[tokio::test]
async fn failures_from_one_address_lock_out_every_user_name_from_it() {
    let b = TestBroker::start_with(BrokerConfig {
        auth_failures_per_address: 3,
        ..BrokerConfig::default()
    })
    .await;
    let (attacker, neighbour) = (loopback(7), loopback(8));
    for name in ["HY-001", "HY-002", "HY-003"] {
        assert_eq!(
            login_from(b.addr, attacker, name, "guess").await,
            Some(ConnectReturnCode::BadUserNamePassword)
        );
    }
    assert_eq!(
        login_from(b.addr, attacker, "HY-002", password_of("HY-002")).await,
        Some(ConnectReturnCode::ServiceUnavailable),
        "a valid login does not reset the address's failures"
    );
    assert_eq!(
        login_from(b.addr, neighbour, "HY-002", password_of("HY-002")).await,
        Some(ConnectReturnCode::Success)
    );
    assert_eq!(b.stats().refused_auth_throttled, 1);
}
