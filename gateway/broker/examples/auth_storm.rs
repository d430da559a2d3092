//! The login storm of the security review, measured: 128 clients, each from its own loopback
//! address, send CONNECTs with wrong passwords as fast as the broker answers, while a node with
//! the right password connects now and then. Passwords are checked with argon2 at its default
//! parameters (19 MiB, 2 passes), as the gateway checks them.
//!
//! `cargo run --release -p weir-broker --example auth_storm -- [seconds] [--unbounded]`
//!
//! Prints the process's resident memory when idle and at its peak, the password checks run, how
//! the CONNECTs were answered, and how long the node waited for its CONNACK. `--unbounded`
//! lifts the limits on password checks (as before they existed), for comparison.
//! `--reuse-argon2-memory` checks into one 19 MiB block per thread, kept, instead of
//! allocating one per check: with glibc's malloc, freed blocks otherwise stay resident in the
//! threads' arenas (see the README's figures).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::cell::RefCell;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Block, Params};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;
use weir_broker::{Broker, BrokerConfig, WeirPolicy};

const ATTACKERS: u16 = 128;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let unbounded = args.iter().any(|a| a == "--unbounded");
    let reuse = args.iter().any(|a| a == "--reuse-argon2-memory");
    let seconds: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20);

    let salt = SaltString::from_b64("d2Vpci1zdG9ybS1zYWx0").unwrap();
    let hash = Argon2::default()
        .hash_password(b"right-password", &salt)
        .unwrap()
        .to_string();
    let checks = Arc::new(AtomicU64::new(0));
    let counted = checks.clone();
    // Every terminal id is checked against a hash, known or not, as the gateway should.
    let policy = WeirPolicy::new("weir", "svc", b"svc", move |id, password| {
        counted.fetch_add(1, Relaxed);
        let hash = PasswordHash::new(&hash).unwrap();
        let ok = if reuse {
            verify_in_kept_memory(password, &hash)
        } else {
            Argon2::default().verify_password(password, &hash).is_ok()
        };
        ok && id.as_str() == "HY-001"
    })
    .unwrap();
    let mut config = BrokerConfig::default();
    if unbounded {
        config.max_concurrent_auth = 100_000;
        config.auth_wait_ms = 600_000;
        config.auth_failures_per_address = u32::MAX;
        config.auth_failures_per_user = u32::MAX;
    }
    let broker = Broker::new(config, Arc::new(policy)).unwrap();
    let listener = broker.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(listener.run(shutdown.clone()));

    // One right login first, so that everything allocated once is in the idle figure.
    login(
        addr,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "HY-001",
        "right-password",
    )
    .await;
    let idle = memory("VmRSS");

    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let mut storm = Vec::new();
    for i in 0..ATTACKERS {
        let (stop, answers) = (stop.clone(), answers.clone());
        let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, i as u8 + 1));
        storm.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Relaxed) {
                n += 1;
                // A different terminal id each time, so that only the per-address limit bites.
                let user = format!("HY-{:03}", n % 999 + 1);
                let slot = match login(addr, from, &user, "guess").await {
                    Some(ConnectReturnCode::BadUserNamePassword) => 0,
                    Some(ConnectReturnCode::ServiceUnavailable) => 1,
                    Some(_) => 2,
                    None => 3,
                };
                answers[slot].fetch_add(1, Relaxed);
            }
        }));
    }

    let started = Instant::now();
    let mut node_waits = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = Instant::now();
        let code = login(
            addr,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "HY-001",
            "right-password",
        )
        .await;
        node_waits.push((code, t.elapsed()));
    }
    let peak = memory("VmHWM");
    stop.store(true, Relaxed);
    for attacker in storm {
        let _ = attacker.await;
    }

    println!(
        "password checks at once: {}; argon2 memory {}",
        if unbounded {
            "no limit".to_owned()
        } else {
            BrokerConfig::default().max_concurrent_auth.to_string()
        },
        if reuse {
            "kept per thread"
        } else {
            "allocated per check"
        }
    );
    println!("RSS idle {} MiB, peak {} MiB", idle / 1024, peak / 1024);
    println!(
        "{seconds} s: {} password checks; answers: {} bad credentials, {} server unavailable, {} other, {} none",
        checks.load(Relaxed),
        answers[0].load(Relaxed),
        answers[1].load(Relaxed),
        answers[2].load(Relaxed),
        answers[3].load(Relaxed),
    );
    for (code, waited) in &node_waits {
        println!("node with the right password: {code:?} after {waited:.2?}");
    }
    println!("{:?}", broker.stats().snapshot());
    shutdown.cancel();
}

/// One CONNECT from `from`; the CONNACK's code, or `None` if the connection closed first or
/// no answer came within 60 s.
async fn login(
    addr: SocketAddr,
    from: IpAddr,
    user: &str,
    password: &str,
) -> Option<ConnectReturnCode> {
    let attempt = async {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(from, 0)).ok()?;
        let mut stream = socket.connect(addr).await.ok()?;
        let mut connect = Connect::new("storm");
        connect.set_login(user, password);
        let mut buf = BytesMut::new();
        Packet::Connect(connect).write(&mut buf, usize::MAX).ok()?;
        stream.write_all(&buf).await.ok()?;
        buf.clear();
        loop {
            match Packet::read(&mut buf, 1024) {
                Ok(Packet::ConnAck(ConnAck { code, .. })) => return Some(code),
                Ok(_) => return None,
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(_) => return None,
            }
            if stream.read_buf(&mut buf).await.ok()? == 0 {
                return None;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), attempt)
        .await
        .ok()
        .flatten()
}

thread_local! {
    /// The argon2 working memory of this thread, kept between checks.
    static MEMORY: RefCell<Vec<Block>> =
        RefCell::new(vec![Block::default(); Params::DEFAULT_M_COST as usize]);
}

/// What `verify_password` does, computing into this thread's kept memory.
fn verify_in_kept_memory(password: &[u8], hash: &PasswordHash<'_>) -> bool {
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    MEMORY.with_borrow_mut(|memory| {
        Argon2::default()
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..])
            .is_ok()
    }) && out == expected.as_bytes()
}

/// A line of /proc/self/status in KiB (`VmRSS` now, `VmHWM` the peak).
fn memory(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}
