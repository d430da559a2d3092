//! Any bytes as everything one client sends on its connection to the embedded broker, served
//! by the broker's real connection code (`Broker::serve_connection`, the path a TCP or TLS
//! client takes after the listener's accept) over an in-memory stream, with Weir's policy.
//!
//! Checked on every input:
//! * no panic, in the connection or in the broker's shared state (router, sessions, limits);
//! * the broker closes the connection by itself once the client falls silent: at once for a
//!   connection that never got an accepting CONNACK, otherwise when the keep alive (at most
//!   `max_keep_alive_s` x 1.5) runs out, and at once after a packet it cannot decode;
//! * everything the broker sent decodes as MQTT 3.1.1 packets, a CONNACK first;
//! * no single allocation above `ALLOCATION_LIMIT`, however large a length the client
//!   declares, and the connection count back to zero once it is closed.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet};
use rumqttc::mqttbytes::Error as CodecError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_broker::{Broker, BrokerConfig, WeirPolicy};

/// Counts the largest allocation made while a connection is served.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest single allocation a connection may cause: the broker's read buffer grown to
/// the largest packet it accepts (`max_packet_size`, 64 KiB by default) and one more read
/// chunk, doubled as a `BytesMut` grows; its 64 KiB write batch fits too.
const ALLOCATION_LIMIT: usize = 4 * 64 * 1024;

/// The duplex stream's buffer each way; the broker's socket buffer, as it were.
const PIPE: usize = 64 * 1024;

const SERVICE_USER: &str = "weir-gateway";
const SERVICE_PASS: &[u8] = b"service-secret";
const TERMINALS: [(&str, &[u8]); 2] = [("HY-001", b"pw-001"), ("HY-002", b"pw-002")];

/// One runtime for all inputs, its clock paused: the broker's timers fire as soon as nothing
/// else can happen.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime")
});

fn broker() -> (Broker, BrokerConfig) {
    let policy = WeirPolicy::new("weir", SERVICE_USER, SERVICE_PASS, |id, pw| {
        TERMINALS.iter().any(|(t, p)| *t == id.as_str() && *p == pw)
    })
    .expect("a valid prefix");
    let config = BrokerConfig::default();
    let broker = Broker::new(config.clone(), Arc::new(policy)).expect("the default config");
    (broker, config)
}

/// Whether the client's bytes hold a packet the codec refuses (past any it accepts), within
/// the broker's packet size limit.
fn has_undecodable_packet(mut sent: BytesMut, max: usize) -> bool {
    loop {
        match Packet::read(&mut sent, max) {
            Ok(_) => {}
            Err(CodecError::InsufficientBytes(_)) => return false,
            Err(_) => return true,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (broker, config) = broker();
    let max_packet = config.max_packet_size;
    let keep_alive = config.keep_alive_timeout(0);
    let connect_timeout = config.connect_timeout();
    LARGEST.store(0, Relaxed);
    let (closed_after, answer) = RUNTIME.block_on(async {
        let (client, server) = tokio::io::duplex(PIPE);
        let (mut from_broker, mut to_broker) = tokio::io::split(client);
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn({
            let broker = broker.clone();
            let shutdown = shutdown.clone();
            async move { broker.serve_connection(server, shutdown).await }
        });
        // The client reads all the broker says, so that the broker never waits on it.
        let reading = tokio::spawn(async move {
            let mut answer = Vec::new();
            let _ = from_broker.read_to_end(&mut answer).await;
            answer
        });
        // The broker may close before it has read everything: a broken pipe is fine.
        let _ = to_broker.write_all(data).await;
        let _ = to_broker.flush().await;
        // Silent from here on, the stream left open: the broker must close it.
        let silent_since = Instant::now();
        let limit = keep_alive + connect_timeout;
        let closed_after = match tokio::time::timeout(limit, serving).await {
            Ok(joined) => {
                joined.expect("the connection task panicked");
                Some(silent_since.elapsed())
            }
            Err(_) => None,
        };
        shutdown.cancel();
        drop(to_broker);
        let answer = reading.await.expect("the reader ends");
        (closed_after, answer)
    });
    let Some(closed_after) = closed_after else {
        panic!("the broker kept a silent connection open past its keep alive");
    };
    let largest = LARGEST.load(Relaxed);
    assert!(
        largest <= ALLOCATION_LIMIT,
        "an allocation of {largest} bytes, over {ALLOCATION_LIMIT}"
    );
    assert_eq!(broker.stats().snapshot().connections_current, 0);

    // What the broker said: MQTT 3.1.1 packets, the first a CONNACK.
    let mut answer = BytesMut::from(&answer[..]);
    let mut accepted = false;
    let mut first = true;
    while !answer.is_empty() {
        let packet = Packet::read(&mut answer, usize::MAX)
            .unwrap_or_else(|e| panic!("the broker sent bytes that are no packet: {e:?}"));
        if first {
            let Packet::ConnAck(connack) = &packet else {
                panic!("the broker's first packet is {packet:?}");
            };
            accepted = connack.code == ConnectReturnCode::Success;
            first = false;
        }
    }
    if !accepted {
        assert!(
            closed_after <= connect_timeout,
            "a connection without an accepted CONNECT stayed open {closed_after:?}"
        );
    }
    if has_undecodable_packet(BytesMut::from(data), max_packet) {
        assert!(
            closed_after < Duration::from_secs(1),
            "a connection with an undecodable packet stayed open {closed_after:?}"
        );
    }
});
