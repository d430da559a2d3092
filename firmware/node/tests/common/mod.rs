//! A test rig for the node: RAM flash that can lose power at any write, a hand-driven clock,
//! scripted sensors and a recording uplink. Every part keeps its state in shared cells, so a
//! test can drop a node (a power cut) and start another on the same flash.
// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use futures::executor::block_on;
use weir_contract::topic::Channel;
use weir_contract::{Ack, Message, NodeConfig, Reading, Status, Telemetry, Timestamp};
use weir_node::{Clock, Event, Node, Partitions, RawReading, Sensors, Settings, Uplink};

pub const PAGE: usize = 4096;
/// 2026-09-21T13:46:40Z: the rig's UTC at monotonic time 0.
pub const T0: i64 = 1_790_000_000;

// ---------------------------------------------------------------------------------------
// Flash

/// Operations (writes and erases) left before the power fails; `None`: no cut planned.
pub type Power = Rc<Cell<Option<u32>>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestFlashError {
    PowerCut,
    OutOfBounds,
}

impl NorFlashError for TestFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            TestFlashError::PowerCut => NorFlashErrorKind::Other,
            TestFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
        }
    }
}

/// NOR flash in a shared buffer. When the power budget runs out, the operation that ran it
/// out is done by half (as a real write or erase cut short) and fails, and so does every
/// operation after it.
#[derive(Debug)]
pub struct TestFlash {
    bytes: Rc<RefCell<Vec<u8>>>,
    power: Power,
}

impl TestFlash {
    fn spend(&self) -> Result<bool, TestFlashError> {
        match self.power.get() {
            None => Ok(true),
            Some(0) => Err(TestFlashError::PowerCut),
            Some(n) => {
                self.power.set(Some(n - 1));
                Ok(n > 1)
            }
        }
    }
}

impl ErrorType for TestFlash {
    type Error = TestFlashError;
}

impl ReadNorFlash for TestFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), Self::Error> {
        if self.power.get() == Some(0) {
            return Err(TestFlashError::PowerCut);
        }
        let bytes = self.bytes.borrow();
        let start = offset as usize;
        let src = bytes
            .get(start..start + out.len())
            .ok_or(TestFlashError::OutOfBounds)?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.borrow().len()
    }
}

impl NorFlash for TestFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let whole = self.spend()?;
        let mut bytes = self.bytes.borrow_mut();
        let (from, to) = (from as usize, to as usize);
        if to > bytes.len() || !from.is_multiple_of(PAGE) || !to.is_multiple_of(PAGE) {
            return Err(TestFlashError::OutOfBounds);
        }
        let end = if whole { to } else { from + (to - from) / 2 };
        bytes[from..end].fill(0xFF);
        if whole {
            Ok(())
        } else {
            Err(TestFlashError::PowerCut)
        }
    }

    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error> {
        let whole = self.spend()?;
        let mut bytes = self.bytes.borrow_mut();
        let start = offset as usize;
        if start + data.len() > bytes.len()
            || !start.is_multiple_of(4)
            || !data.len().is_multiple_of(4)
        {
            return Err(TestFlashError::OutOfBounds);
        }
        let len = if whole {
            data.len()
        } else {
            (data.len() / 2) & !3
        };
        for (cell, b) in bytes[start..start + len].iter_mut().zip(data) {
            *cell &= *b;
        }
        if whole {
            Ok(())
        } else {
            Err(TestFlashError::PowerCut)
        }
    }
}

impl MultiwriteNorFlash for TestFlash {}

impl TestFlash {
    /// A flash over `bytes` that fails when `power` runs out.
    pub fn over(bytes: &Rc<RefCell<Vec<u8>>>, power: &Power) -> Self {
        TestFlash {
            bytes: bytes.clone(),
            power: power.clone(),
        }
    }
}

// The boot loader (embassy-boot's `BootLoader`) uses the blocking traits: the same flash
// (`ErrorType` is shared by both).

impl embedded_storage::nor_flash::ReadNorFlash for TestFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), Self::Error> {
        block_on(ReadNorFlash::read(self, offset, out))
    }

    fn capacity(&self) -> usize {
        ReadNorFlash::capacity(self)
    }
}

impl embedded_storage::nor_flash::NorFlash for TestFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        block_on(NorFlash::erase(self, from, to))
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error> {
        block_on(NorFlash::write(self, offset, data))
    }
}

// ---------------------------------------------------------------------------------------
// Clock, sensors, uplink

pub struct TestClock {
    now_ms: Rc<Cell<u64>>,
    utc_known: Rc<Cell<bool>>,
}

impl Clock for TestClock {
    fn utc(&mut self) -> Option<Timestamp> {
        self.utc_known
            .get()
            .then(|| Timestamp::from_unix(T0 + (self.now_ms.get() / 1000) as i64))
    }

    fn now_ms(&mut self) -> u64 {
        self.now_ms.get()
    }

    /// Time jumps to the deadline: the tests run hours in milliseconds.
    async fn sleep_until(&mut self, at_ms: u64) {
        if at_ms > self.now_ms.get() {
            self.now_ms.set(at_ms);
        }
    }
}

pub struct TestSensors {
    raw: Rc<RefCell<RawReading>>,
    now_ms: Rc<Cell<u64>>,
    sampled: Rc<RefCell<Vec<i64>>>,
    recorded: Rc<RefCell<Vec<i64>>>,
}

impl Sensors for TestSensors {
    async fn sample(&mut self) -> RawReading {
        self.sampled
            .borrow_mut()
            .push((self.now_ms.get() / 1000) as i64);
        *self.raw.borrow()
    }

    fn recorded(&mut self, reading: &Reading) {
        self.recorded.borrow_mut().push(reading.ts.unix() - T0);
    }
}

#[derive(Debug)]
pub enum LinkEvent {
    Connected,
    Disconnected,
    Message(Channel, Vec<u8>),
}

#[derive(Debug, Default)]
pub struct Link {
    /// Publications fail while down.
    pub up: bool,
    /// If set, publications succeed this many more times, then fail (a busy link).
    pub publishes_left: Option<usize>,
    pub sent: Vec<(Channel, Vec<u8>, bool)>,
    pub events: VecDeque<LinkEvent>,
    /// Every ack the gateway sent, as (boot, seq), delivered to the node or not yet.
    pub acks_sent: Vec<(u32, u32)>,
    /// The acks the node took from the link, in order.
    pub acks_delivered: Vec<(u32, u32)>,
    /// The gateway acks each telemetry message as soon as it is published.
    pub auto_ack: bool,
    /// How much of `sent` the automatic acks have looked at.
    auto_acked: usize,
}

pub struct TestUplink {
    link: Rc<RefCell<Link>>,
    current: Vec<u8>,
}

impl Uplink for TestUplink {
    type Error = ();

    async fn publish(&mut self, channel: Channel, payload: &[u8], retain: bool) -> Result<(), ()> {
        let mut link = self.link.borrow_mut();
        if !link.up || link.publishes_left == Some(0) {
            return Err(());
        }
        if let Some(left) = &mut link.publishes_left {
            *left -= 1;
        }
        link.sent.push((channel, payload.to_vec(), retain));
        Ok(())
    }

    async fn next_event(&mut self) -> Event<'_> {
        let next = self.link.borrow_mut().events.pop_front();
        match next {
            None => core::future::pending().await,
            Some(LinkEvent::Connected) => Event::Connected,
            Some(LinkEvent::Disconnected) => Event::Disconnected,
            Some(LinkEvent::Message(channel, payload)) => {
                if channel == Channel::Ack {
                    let ack = Ack::decode(&payload).expect("the rig sends valid acks");
                    self.link
                        .borrow_mut()
                        .acks_delivered
                        .push((ack.boot, ack.seq));
                }
                self.current = payload;
                Event::Message {
                    channel,
                    payload: &self.current,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The rig

pub type TestNode<O = weir_node::update::NoUpdates> =
    Node<TestSensors, TestClock, TestUplink, TestFlash, O>;

/// Everything a node is built from, kept across node lifetimes.
pub struct Rig {
    pub settings_flash: Rc<RefCell<Vec<u8>>>,
    pub pending_flash: Rc<RefCell<Vec<u8>>>,
    pub queue_flash: Rc<RefCell<Vec<u8>>>,
    pub power: Power,
    pub now_ms: Rc<Cell<u64>>,
    pub utc_known: Rc<Cell<bool>>,
    pub raw: Rc<RefCell<RawReading>>,
    pub link: Rc<RefCell<Link>>,
    pub factory: NodeConfig,
    /// Seconds after T0 of every sample the node took, across boots.
    pub sampled: Rc<RefCell<Vec<i64>>>,
    /// Seconds after T0 of every reading the node reported as in flash
    /// ([`Sensors::recorded`]), across boots.
    pub recorded: Rc<RefCell<Vec<i64>>>,
    /// The ack the node was handling when a step failed (a power cut): it may be half done.
    pub interrupted_ack: Cell<Option<(u32, u32)>>,
}

impl Rig {
    /// A rig with a `queue_pages`-page message queue and two pages for the rest.
    pub fn new(queue_pages: usize) -> Self {
        let erased = |pages: usize| Rc::new(RefCell::new(vec![0xFF; pages * PAGE]));
        Rig {
            settings_flash: erased(2),
            pending_flash: erased(2),
            queue_flash: erased(queue_pages),
            power: Rc::new(Cell::new(None)),
            now_ms: Rc::new(Cell::new(0)),
            utc_known: Rc::new(Cell::new(true)),
            raw: Rc::new(RefCell::new(RawReading::new())),
            link: Rc::new(RefCell::new(Link::default())),
            factory: NodeConfig::default(),
            sampled: Rc::new(RefCell::new(Vec::new())),
            recorded: Rc::new(RefCell::new(Vec::new())),
            interrupted_ack: Cell::new(None),
        }
    }

    fn flash(&self, bytes: &Rc<RefCell<Vec<u8>>>) -> TestFlash {
        TestFlash {
            bytes: bytes.clone(),
            power: self.power.clone(),
        }
    }

    /// Starts a node with the default settings, but for resends when acks stop advancing:
    /// off, as most tests count publications without playing the gateway's acks
    /// ([`Rig::start_resending`] keeps them).
    pub fn try_start(&self) -> Result<TestNode, weir_node::Error<TestFlashError>> {
        self.try_start_with(
            weir_node::update::NoUpdates,
            Settings {
                resend_ms: u64::MAX / 4,
                resend_max_ms: u64::MAX / 4,
                ..Settings::default()
            },
        )
    }

    /// Starts a node with the default settings, resends included.
    pub fn start_resending(&self) -> TestNode {
        self.try_start_with(weir_node::update::NoUpdates, Settings::default())
            .expect("the node starts")
    }

    /// Starts a node with a firmware updater and these settings (the factory configuration
    /// is the rig's).
    pub fn try_start_with<O: weir_node::update::Updates>(
        &self,
        updates: O,
        settings: Settings,
    ) -> Result<TestNode<O>, weir_node::Error<TestFlashError>> {
        let partitions = Partitions {
            settings: self.flash(&self.settings_flash),
            pending: self.flash(&self.pending_flash),
            queue: self.flash(&self.queue_flash),
        };
        let settings = Settings {
            factory_config: self.factory,
            ..settings
        };
        let mut node = Node::with_updates(
            TestSensors {
                raw: self.raw.clone(),
                now_ms: self.now_ms.clone(),
                sampled: self.sampled.clone(),
                recorded: self.recorded.clone(),
            },
            TestClock {
                now_ms: self.now_ms.clone(),
                utc_known: self.utc_known.clone(),
            },
            TestUplink {
                link: self.link.clone(),
                current: Vec::new(),
            },
            partitions,
            settings,
            updates,
        )?;
        block_on(node.start())?;
        Ok(node)
    }

    /// Starts a node on the rig's flash (a fresh boot).
    pub fn start(&self) -> TestNode {
        self.try_start().expect("the node starts")
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    /// Steps the node until the clock reaches `until_ms`.
    pub fn run_until<O: weir_node::update::Updates>(&self, node: &mut TestNode<O>, until_ms: u64) {
        self.try_run_until(node, until_ms).expect("the node runs");
    }

    /// Steps the node for `ms` from now.
    pub fn run_for<O: weir_node::update::Updates>(&self, node: &mut TestNode<O>, ms: u64) {
        let until = self.now_ms() + ms;
        self.run_until(node, until);
    }

    pub fn try_run_until<O: weir_node::update::Updates>(
        &self,
        node: &mut TestNode<O>,
        until_ms: u64,
    ) -> Result<(), weir_node::Error<TestFlashError>> {
        for _ in 0..1_000_000 {
            if self.now_ms() >= until_ms && self.link.borrow().events.is_empty() {
                return Ok(());
            }
            let delivered = self.link.borrow().acks_delivered.len();
            if let Err(e) = block_on(node.step()) {
                // An ack taken from the link in the failed step was being handled.
                let link = self.link.borrow();
                if link.acks_delivered.len() > delivered {
                    self.interrupted_ack
                        .set(link.acks_delivered.last().copied());
                }
                return Err(e);
            }
            self.auto_ack();
        }
        panic!("the node did not reach {until_ms} ms in a million steps");
    }

    /// The link comes up.
    pub fn connect(&self) {
        let mut link = self.link.borrow_mut();
        link.up = true;
        link.events.push_back(LinkEvent::Connected);
    }

    /// The link goes down.
    pub fn disconnect(&self) {
        let mut link = self.link.borrow_mut();
        link.up = false;
        link.events.push_back(LinkEvent::Disconnected);
    }

    /// The gateway acknowledges everything of `boot` up to `seq`.
    pub fn ack(&self, boot: u32, seq: u32) {
        let mut buf = [0u8; 32];
        let len = Ack { boot, seq }
            .encode(weir_node::ENCODING, &mut buf)
            .unwrap();
        let mut link = self.link.borrow_mut();
        link.acks_sent.push((boot, seq));
        link.events
            .push_back(LinkEvent::Message(Channel::Ack, buf[..len].to_vec()));
    }

    /// With [`Link::auto_ack`], acks every telemetry message published since the last call.
    fn auto_ack(&self) {
        let fresh: Vec<(u32, u32)> = {
            let mut link = self.link.borrow_mut();
            if !link.auto_ack {
                return;
            }
            let start = link.auto_acked.min(link.sent.len());
            link.auto_acked = link.sent.len();
            link.sent[start..]
                .iter()
                .filter(|(c, _, _)| *c == Channel::Telemetry)
                .map(|(_, p, _)| {
                    let t = Telemetry::decode(p).expect("the node publishes valid telemetry");
                    (t.boot, t.seq)
                })
                .collect()
        };
        for (boot, seq) in fresh {
            self.ack(boot, seq);
        }
    }

    /// The gateway sends a configuration (as JSON, as an operator might).
    pub fn send_config(&self, json: &str) {
        self.link.borrow_mut().events.push_back(LinkEvent::Message(
            Channel::Config,
            json.as_bytes().to_vec(),
        ));
    }

    /// Every telemetry message published so far, in order, decoded.
    pub fn telemetry(&self) -> Vec<Telemetry> {
        self.link
            .borrow()
            .sent
            .iter()
            .filter(|(c, _, _)| *c == Channel::Telemetry)
            .map(|(_, p, retain)| {
                assert!(!retain, "telemetry is not retained");
                Telemetry::decode(p).expect("the node publishes valid telemetry")
            })
            .collect()
    }

    /// Every status published so far.
    pub fn statuses(&self) -> Vec<Status> {
        self.link
            .borrow()
            .sent
            .iter()
            .filter(|(c, _, _)| *c == Channel::Status)
            .map(|(_, p, retain)| {
                assert!(retain, "status is retained");
                Status::decode(p).unwrap()
            })
            .collect()
    }

    pub fn forget_sent(&self) {
        let mut link = self.link.borrow_mut();
        link.sent.clear();
        link.auto_acked = 0;
    }
}

/// Seconds after T0 of each reading of `messages`, in order.
pub fn reading_times(messages: &[Telemetry]) -> Vec<i64> {
    messages
        .iter()
        .flat_map(|m| m.readings.iter().map(|r| r.ts.unix() - T0))
        .collect()
}

/// Runs `f` to completion on the test's thread.
pub fn run<T>(f: impl core::future::Future<Output = T>) -> T {
    block_on(f)
}
