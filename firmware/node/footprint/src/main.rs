//! The node core on a bare Cortex-M4F with stand-in parts, to measure what the core costs:
//! the sensors, uplink and flash here are as small as possible, so the size is the core's
//! (plus `sequential-storage`, postcard and the contract).
#![no_std]
#![no_main]

use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Poll, Waker};

use cortex_m_rt::{entry, exception};
use panic_halt as _;
use static_cell::{ConstStaticCell, StaticCell};
use weir_contract::topic::Channel;
use weir_contract::{Quantity, Timestamp};
use weir_node::ram_flash::RamFlash;
use weir_node::{Clock, Event, Node, Partitions, RawReading, Sensors, Settings, Uplink};

/// Milliseconds, counted by the SysTick interrupt.
static TICKS: AtomicU32 = AtomicU32::new(0);
/// Where the stand-in uplink "sends" bytes, so they are not optimised away.
static SENT: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

struct Board;

impl Sensors for Board {
    async fn sample(&mut self) -> RawReading {
        let t = TICKS.load(Ordering::Relaxed) as f64;
        RawReading::new()
            .with(Quantity::Flow, t / 1e6)
            .with(Quantity::Volume, t / 1e3)
            .with(Quantity::Turbidity, t / 1e7)
            .with(Quantity::Sludge, 1.0 + t / 1e9)
            .with(Quantity::Supply, 12.0)
            .with(Quantity::Rssi, -70.0)
    }
}

impl Clock for Board {
    fn utc(&mut self) -> Option<Timestamp> {
        Some(Timestamp::from_unix(
            1_790_000_000 + i64::from(TICKS.load(Ordering::Relaxed) / 1000),
        ))
    }

    fn now_ms(&mut self) -> u64 {
        u64::from(TICKS.load(Ordering::Relaxed))
    }

    async fn sleep_until(&mut self, at_ms: u64) {
        while self.now_ms() < at_ms {
            core::hint::spin_loop();
        }
    }
}

struct Link;

impl Uplink for Link {
    type Error = ();

    async fn publish(&mut self, channel: Channel, payload: &[u8], _retain: bool) -> Result<(), ()> {
        let sum = payload
            .iter()
            .fold(channel as u32, |a, b| a.wrapping_add(u32::from(*b)));
        SENT.fetch_add(sum, Ordering::Relaxed);
        Ok(())
    }

    async fn next_event(&mut self) -> Event<'_> {
        core::future::pending().await
    }
}

/// Three partitions of two 4 KiB pages; on a board these are the real flash.
type Flash = RamFlash<8192>;
type BoardNode = Node<Board, Board, Link, &'static mut Flash>;

static SETTINGS: ConstStaticCell<Flash> = ConstStaticCell::new(Flash::new());
static PENDING: ConstStaticCell<Flash> = ConstStaticCell::new(Flash::new());
static QUEUE: ConstStaticCell<Flash> = ConstStaticCell::new(Flash::new());

/// The node lives in a static, so the linker's RAM figure includes it.
static NODE: StaticCell<BoardNode> = StaticCell::new();

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Builds the node in its static. Not inlined, so its stack frame is gone before the node
/// runs.
#[inline(never)]
fn init() -> &'static mut BoardNode {
    let partitions = Partitions {
        settings: SETTINGS.take(),
        pending: PENDING.take(),
        queue: QUEUE.take(),
    };
    NODE.init_with(|| {
        let Ok(node) = Node::new(Board, Board, Link, partitions, Settings::default()) else {
            panic!()
        };
        node
    })
}

#[entry]
fn main() -> ! {
    let node = init();
    let _ = block_on(node.run());
    panic!()
}
