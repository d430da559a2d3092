//! The node: schedule, batching, the store-and-forward queue, acks, configuration, status.

use embedded_storage_async::nor_flash::MultiwriteNorFlash;
use sequential_storage::Error as FlashError;
use weir_contract::topic::Channel;
use weir_contract::{
    Ack, FirmwareChunk, FirmwareOffer, Message, NodeConfig, NodeState, Status, Telemetry,
    Timestamp, UpdateReport, EARLIEST_TIMESTAMP, FIRMWARE_LEN,
};

use crate::calibration::calibrate;
use crate::clock::Clock;
use crate::error::Error;
use crate::record::{
    decode_reading, encode_reading, MessageHeader, MESSAGE_HEADER_LEN, READING_RECORD_MAX,
};
use crate::select::{select, Either};
use crate::sensors::Sensors;
use crate::store::{key, max_readings_per_message, Partitions, Store};
use crate::update::{NoUpdates, Updates};
use crate::uplink::{Event, Uplink};
use crate::{ENCODING, FIRMWARE};

/// What a board fixes about its node, as opposed to what the gateway configures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Firmware version reported in [`Status`] (at most [`FIRMWARE_LEN`] bytes).
    pub firmware: &'static str,
    /// The configuration used until the gateway sends one, for example the tank geometry
    /// entered when the node was installed.
    pub factory_config: NodeConfig,
    /// How long to wait before trying again after a failed publication, ms.
    pub retry_ms: u64,
    /// Published messages whose acks have not advanced for this long are all published
    /// again, oldest first: a broker may have dropped them, and the gateway acknowledges
    /// only what it holds without a gap. Doubles after each such resend, ms.
    pub resend_ms: u64,
    /// The most `resend_ms` grows to, ms.
    pub resend_max_ms: u64,
    /// Status is published on connect and when it changes; and at least this often, s.
    pub status_refresh_s: u32,
    /// A new firmware image that has not confirmed itself (no ack from the gateway) after
    /// this long restarts the board, and the boot loader goes back to the previous image, s.
    pub trial_limit_s: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            firmware: FIRMWARE,
            factory_config: NodeConfig::default(),
            retry_ms: 5_000,
            resend_ms: 60_000,
            resend_max_ms: 30 * 60_000,
            status_refresh_s: 3600,
            trial_limit_s: 900,
        }
    }
}

/// Counters of what the node did since it started, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Readings sampled and written to flash.
    pub recorded: u32,
    /// Timestamp of the last reading written to flash.
    pub last_recorded: Option<Timestamp>,
    /// Samples skipped because UTC was unknown or went backwards.
    pub skipped: u32,
    /// Messages pushed to the queue.
    pub queued: u32,
    /// Successful publications of telemetry, first sends and resends.
    pub published: u32,
    /// Publications that failed (link down or busy).
    pub publish_failures: u32,
    /// Times the whole queue was published again because acks stopped advancing.
    pub resends: u32,
    /// Acks received.
    pub acks: u32,
    /// Messages freed by acks.
    pub freed: u32,
    /// Configurations applied.
    pub configs_applied: u32,
    /// Configurations refused (invalid).
    pub configs_refused: u32,
    /// Status messages published.
    pub statuses: u32,
    /// Firmware update reports (requests for pieces, outcomes) published.
    pub update_reports: u32,
}

/// How long the node waits for a firmware piece before asking for it again, ms.
pub const UPDATE_RETRY_MS: u64 = 10_000;

/// Where the link stands.
#[derive(Clone, Copy, Debug, Default)]
struct Link {
    connected: bool,
    /// Every queued message up to this identity was published on the current connection.
    published_upto: Option<(u32, u32)>,
    /// No publication before this time, after a failure.
    retry_at_ms: u64,
    /// Everything queued is published again at this time unless an ack frees a message
    /// first (None: nothing published waits for an ack).
    resend_at_ms: Option<u64>,
    /// The wait before the next such resend.
    resend_wait_ms: u64,
}

/// What the node last said in its status, to tell a meaningful change.
#[derive(Clone, Copy, Debug, Default)]
struct StatusState {
    /// Published on the current connection as (backlog bucket, dropped).
    sent: Option<(u32, u32)>,
    next_refresh_ms: u64,
    retry_at_ms: u64,
}

/// A sensor node: generic over its sensors `S`, clock `C`, uplink `U`, flash `F` and
/// firmware updater `O`.
///
/// Build it with [`Node::new`] (no firmware updates) or [`Node::with_updates`], then call
/// [`Node::run`] (or [`Node::step`] in a loop; with updates, restart the board when
/// [`Node::reboot_due`] says so).
pub struct Node<S, C, U, F: MultiwriteNorFlash, O = NoUpdates> {
    sensors: S,
    clock: C,
    uplink: U,
    store: Store<F>,
    settings: Settings,
    config: NodeConfig,
    started: bool,
    boot: u32,
    seq: u32,
    dropped: u32,
    /// The newest message dropped from the full queue; counted in `dropped` before it left.
    last_dropped: Option<(u32, u32)>,
    /// Readings in queued messages.
    buffered: u32,
    /// Messages in the queue.
    queued_messages: u32,
    /// Readings in the pending partition.
    pending: u32,
    /// Newest message in the queue.
    newest_queued: Option<(u32, u32)>,
    /// Timestamp of the newest reading in a queued message; pending records not after it
    /// were already batched (a power cut hit between queueing a message and freeing them).
    last_queued_ts: Option<i64>,
    /// Timestamp of the newest reading recorded; timestamps must increase.
    last_ts: Option<i64>,
    started_ms: u64,
    next_sample_ms: u64,
    next_publish_ms: u64,
    link: Link,
    status: StatusState,
    max_per_message: usize,
    /// The message being built; kept here rather than on the stack (about 6.7 KiB).
    telemetry: Telemetry,
    stats: Stats,
    updates: O,
    /// A firmware update report not yet published.
    update_out: Option<UpdateReport>,
    /// When to ask again for a firmware piece that has not come.
    update_retry_at_ms: u64,
}

impl<S, C, U, F: MultiwriteNorFlash, O> core::fmt::Debug for Node<S, C, U, F, O> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("boot", &self.boot)
            .field("seq", &self.seq)
            .field("config", &self.config)
            .field("buffered", &self.buffered)
            .field("pending", &self.pending)
            .field("dropped", &self.dropped)
            .field("connected", &self.link.connected)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What an uplink event means, decoded, so the uplink's buffer is free again.
// A firmware chunk (about 550 bytes) makes it large; it lives only on the stack of `step`.
#[allow(clippy::large_enum_variant)]
enum Incoming {
    Connected,
    Disconnected,
    Ack(Ack),
    Config(Result<NodeConfig, weir_contract::Error>),
    Offer(Option<FirmwareOffer>),
    Chunk(FirmwareChunk),
    Other,
}

impl Incoming {
    fn from_event(event: Event<'_>) -> Self {
        match event {
            Event::Connected => Incoming::Connected,
            Event::Disconnected => Incoming::Disconnected,
            Event::Message {
                channel: Channel::Ack,
                payload,
            } => Ack::decode(payload).map_or(Incoming::Other, Incoming::Ack),
            Event::Message {
                channel: Channel::Config,
                payload,
            } => Incoming::Config(NodeConfig::decode(payload)),
            Event::Message {
                channel: Channel::Firmware,
                payload: [],
            } => Incoming::Offer(None),
            Event::Message {
                channel: Channel::Firmware,
                payload,
            } => {
                FirmwareOffer::decode(payload).map_or(Incoming::Other, |o| Incoming::Offer(Some(o)))
            }
            Event::Message {
                channel: Channel::Chunk,
                payload,
            } => FirmwareChunk::decode(payload).map_or(Incoming::Other, Incoming::Chunk),
            Event::Message { .. } => Incoming::Other,
        }
    }
}

impl<S, C, U, F> Node<S, C, U, F, NoUpdates>
where
    S: Sensors,
    C: Clock,
    U: Uplink,
    F: MultiwriteNorFlash,
{
    /// Builds a node from its parts; reads nothing yet. Fails if a flash partition is
    /// unusable (too small, pages too small for a message).
    ///
    /// The node is large (about 10 KiB, most of it the message being built and a flash
    /// buffer), so on a microcontroller build it straight into a static (for example with
    /// `static_cell`), then call [`Node::run`].
    pub fn new(
        sensors: S,
        clock: C,
        uplink: U,
        flash: Partitions<F>,
        settings: Settings,
    ) -> Result<Self, Error<F::Error>> {
        Node::with_updates(sensors, clock, uplink, flash, settings, NoUpdates)
    }
}

impl<S, C, U, F, O> Node<S, C, U, F, O>
where
    S: Sensors,
    C: Clock,
    U: Uplink,
    F: MultiwriteNorFlash,
    O: Updates,
{
    /// [`Node::new`] with a firmware updater (for example [`crate::update::Updater`]).
    pub fn with_updates(
        sensors: S,
        clock: C,
        uplink: U,
        flash: Partitions<F>,
        settings: Settings,
        updates: O,
    ) -> Result<Self, Error<F::Error>> {
        let store = Store::open(flash)?;
        let config = settings.factory_config;
        Ok(Node {
            sensors,
            clock,
            uplink,
            store,
            settings,
            config,
            started: false,
            boot: 0,
            seq: 0,
            dropped: 0,
            last_dropped: None,
            buffered: 0,
            queued_messages: 0,
            pending: 0,
            newest_queued: None,
            last_queued_ts: None,
            last_ts: None,
            started_ms: 0,
            next_sample_ms: 0,
            next_publish_ms: 0,
            link: Link::default(),
            status: StatusState::default(),
            max_per_message: max_readings_per_message::<F>(),
            telemetry: Telemetry {
                boot: 0,
                seq: 0,
                readings: heapless::Vec::new(),
            },
            stats: Stats::default(),
            updates,
            update_out: None,
            update_retry_at_ms: 0,
        })
    }

    /// Starts the node (once; [`Node::run`] and [`Node::step`] call it if needed): counts
    /// this boot, loads the configuration and finds what is still queued from before. The
    /// first sample is taken at once.
    pub async fn start(&mut self) -> Result<(), Error<F::Error>> {
        if self.started {
            return Ok(());
        }
        let store = &mut self.store;
        self.boot = store.counter(key::BOOT).await?.unwrap_or(0).wrapping_add(1);
        store.set_counter(key::BOOT, self.boot).await?;
        (self.dropped, self.last_dropped) = store.drops().await?;
        if let Some(config) = store.config().await? {
            self.config = config;
        }
        self.scan_queue().await?;
        self.scan_pending().await?;
        self.updates.start().await?;
        let now = self.clock.now_ms();
        self.started_ms = now;
        self.next_sample_ms = now;
        self.next_publish_ms = now + self.publish_ms();
        self.started = true;
        Ok(())
    }

    /// Counts the queued messages and their readings, and finishes a drop that a power cut
    /// interrupted: a message already counted as dropped leaves the queue now.
    async fn scan_queue(&mut self) -> Result<(), Error<F::Error>> {
        let Store { queue, msg_buf, .. } = &mut self.store;
        let mut it = queue.iter().await?;
        while let Some(entry) = it.next(&mut msg_buf.0).await? {
            if let Some(h) = MessageHeader::read(&entry) {
                if self.last_dropped.is_some_and(|d| h.id() <= d) {
                    entry.pop().await?;
                    continue;
                }
                self.buffered += u32::from(h.count);
                self.queued_messages += 1;
                self.newest_queued = Some(h.id());
                self.last_queued_ts = self.last_queued_ts.max(Some(h.last_ts));
            }
        }
        self.last_ts = self.last_queued_ts;
        Ok(())
    }

    /// Counts the pending readings and frees those a queued message already holds.
    async fn scan_pending(&mut self) -> Result<(), Error<F::Error>> {
        let Store {
            pending, rec_buf, ..
        } = &mut self.store;
        let mut it = pending.iter().await?;
        while let Some(entry) = it.next(&mut rec_buf.0).await? {
            match decode_reading(&entry) {
                Some(r) if self.last_ts.is_none_or(|t| r.ts.unix() > t) => {
                    self.pending += 1;
                    self.last_ts = Some(r.ts.unix());
                }
                _ => {
                    entry.pop().await?;
                }
            }
        }
        Ok(())
    }

    /// Runs the node for ever; returns only if the flash fails.
    pub async fn run(&mut self) -> Result<core::convert::Infallible, Error<F::Error>> {
        loop {
            self.step().await?;
        }
    }

    /// Does what is due (sample, batch, publish), then waits for the next deadline or an
    /// uplink event, and handles the event.
    pub async fn step(&mut self) -> Result<(), Error<F::Error>> {
        self.start().await?;
        let now = self.clock.now_ms();
        // Batch before sampling: a publication at 00:05 holds 00:00 to 00:04, and the
        // 00:05 reading opens the next batch.
        if now >= self.next_publish_ms {
            self.next_publish_ms = next_slot(self.next_publish_ms, now, self.publish_ms());
            self.close_batch().await?;
        }
        if now >= self.next_sample_ms {
            self.next_sample_ms = next_slot(self.next_sample_ms, now, self.sample_ms());
            self.sample().await?;
            if self.pending as usize >= self.max_per_message {
                self.close_batch().await?;
            }
        }
        if self.link.connected {
            if self.status_due(now) {
                self.publish_status().await;
            }
            if self.link.resend_at_ms.is_some_and(|at| now >= at) {
                self.resend_all(now);
            }
            if self.has_unpublished() && now >= self.link.retry_at_ms {
                self.publish_queued().await?;
            }
            if self.update_out.is_none() && now >= self.update_retry_at_ms {
                self.update_out = self.updates.retry();
            }
            self.publish_update().await;
        }

        let deadline = self.next_deadline();
        let event = match select(self.uplink.next_event(), self.clock.sleep_until(deadline)).await {
            Either::First(event) => Incoming::from_event(event),
            Either::Second(()) => return Ok(()),
        };
        self.handle(event).await
    }

    fn sample_ms(&self) -> u64 {
        u64::from(self.config.sample_interval_s) * 1000
    }

    fn publish_ms(&self) -> u64 {
        u64::from(self.config.publish_interval_s) * 1000
    }

    fn has_unpublished(&self) -> bool {
        self.newest_queued
            .is_some_and(|newest| self.link.published_upto.is_none_or(|p| newest > p))
    }

    /// Publishes the pending firmware update report, if any; asks again for a piece that
    /// has not come after a while.
    async fn publish_update(&mut self) {
        let Some(report) = &self.update_out else {
            return;
        };
        let now = self.clock.now_ms();
        let mut buf = [0u8; 64];
        let Ok(len) = report.encode(ENCODING, &mut buf) else {
            self.update_out = None;
            return;
        };
        if self
            .uplink
            .publish(Channel::Update, &buf[..len], false)
            .await
            .is_ok()
        {
            self.update_out = None;
            self.stats.update_reports += 1;
        }
        self.update_retry_at_ms = now + UPDATE_RETRY_MS;
    }

    /// Whether the board should restart now: a verified firmware image is marked for the
    /// boot loader (which installs it), or a new image on trial has not confirmed itself
    /// within [`Settings::trial_limit_s`] (the boot loader goes back to the previous one).
    pub fn reboot_due(&mut self) -> bool {
        if self.updates.reboot_due() {
            return true;
        }
        self.updates.on_trial()
            && self.clock.now_ms().saturating_sub(self.started_ms)
                >= u64::from(self.settings.trial_limit_s) * 1000
    }

    /// The firmware updater.
    pub fn updates_mut(&mut self) -> &mut O {
        &mut self.updates
    }

    fn next_deadline(&mut self) -> u64 {
        let mut deadline = self.next_sample_ms.min(self.next_publish_ms);
        if self.link.connected {
            if self.has_unpublished() {
                deadline = deadline.min(self.link.retry_at_ms);
            }
            if let Some(at) = self.link.resend_at_ms {
                deadline = deadline.min(at);
            }
            let status_at = if self.status.sent.is_none() || self.status_changed() {
                self.status.retry_at_ms
            } else {
                self.status.next_refresh_ms
            };
            deadline = deadline.min(status_at);
        }
        deadline
    }

    /// Samples the sensors and writes the reading to flash.
    async fn sample(&mut self) -> Result<(), Error<F::Error>> {
        let raw = self.sensors.sample().await;
        let ts = match self.clock.utc() {
            Some(ts) if ts >= EARLIEST_TIMESTAMP && self.last_ts.is_none_or(|t| ts.unix() > t) => {
                ts
            }
            // Unknown time, or the clock went back: such a reading could not be stored.
            _ => {
                self.stats.skipped += 1;
                return Ok(());
            }
        };
        let reading = calibrate(&raw, &self.config, ts);
        let mut record = [0u8; READING_RECORD_MAX];
        let len = encode_reading(&reading, &mut record);
        match self.store.pending.push(&record[..len], false).await {
            Err(FlashError::FullStorage) => {
                // The pending partition is smaller than a message: batch early.
                self.close_batch().await?;
                self.store.pending.push(&record[..len], false).await?;
            }
            other => other?,
        }
        self.pending += 1;
        self.last_ts = Some(ts.unix());
        self.stats.recorded += 1;
        self.stats.last_recorded = Some(ts);
        self.sensors.recorded(&reading);
        Ok(())
    }

    /// Turns the pending readings (up to a message's worth) into a queued message.
    async fn close_batch(&mut self) -> Result<(), Error<F::Error>> {
        if self.pending == 0 {
            return Ok(());
        }
        self.telemetry.readings.clear();
        let mut consumed = 0usize;
        {
            let Store {
                pending, rec_buf, ..
            } = &mut self.store;
            let mut it = pending.iter().await?;
            while self.telemetry.readings.len() < self.max_per_message {
                let Some(entry) = it.next(&mut rec_buf.0).await? else {
                    break;
                };
                consumed += 1;
                let Some(r) = decode_reading(&entry) else {
                    continue;
                };
                let after_queued = self.last_queued_ts.is_none_or(|t| r.ts.unix() > t);
                let ascending = self.telemetry.readings.last().is_none_or(|l| r.ts > l.ts);
                if after_queued && ascending {
                    // Cannot fail: the loop stops at the message's capacity.
                    let _ = self.telemetry.readings.push(r);
                }
            }
        }
        if let Some(last) = self.telemetry.readings.last() {
            let header = MessageHeader {
                boot: self.boot,
                seq: self.seq,
                count: self.telemetry.readings.len() as u16,
                last_ts: last.ts.unix(),
            };
            self.telemetry.boot = header.boot;
            self.telemetry.seq = header.seq;
            self.push_message(&header).await?;
            self.seq = self.seq.wrapping_add(1);
            self.buffered += u32::from(header.count);
            self.queued_messages += 1;
            self.newest_queued = Some(header.id());
            self.last_queued_ts = Some(header.last_ts);
            self.stats.queued += 1;
        }
        // Only now free the readings: a power cut before this point leaves them in both
        // partitions, and `scan_pending` frees them at the next start.
        let Store {
            pending, rec_buf, ..
        } = &mut self.store;
        let mut it = pending.iter().await?;
        for _ in 0..consumed {
            match it.next(&mut rec_buf.0).await? {
                Some(entry) => {
                    entry.pop().await?;
                }
                None => break,
            }
        }
        self.pending = self.pending.saturating_sub(consumed as u32);
        Ok(())
    }

    /// Encodes `self.telemetry` and pushes it to the queue, dropping the oldest messages
    /// while the queue is full.
    async fn push_message(&mut self, header: &MessageHeader) -> Result<(), Error<F::Error>> {
        loop {
            let buf = &mut self.store.msg_buf.0;
            let len = self
                .telemetry
                .encode(ENCODING, &mut buf[MESSAGE_HEADER_LEN..])
                .map_err(Error::Encode)?;
            header.write(&mut buf[..MESSAGE_HEADER_LEN]);
            match self
                .store
                .queue
                .push(&buf[..MESSAGE_HEADER_LEN + len], false)
                .await
            {
                Ok(()) => return Ok(()),
                Err(FlashError::FullStorage) => {}
                Err(e) => return Err(e.into()),
            }
            // Full: drop the oldest message (this overwrites the encoded one; it is encoded
            // again on the next turn). Its readings are counted, with its identity, before it
            // leaves the queue: after a power cut between the two, the next start finishes
            // the drop, so the count is exactly what was dropped.
            let oldest = match self.store.queue.peek(&mut self.store.msg_buf.0).await? {
                Some(bytes) => MessageHeader::read(bytes),
                None => {
                    return Err(Error::Partition {
                        name: "queue",
                        why: "full, yet holds no message to drop",
                    })
                }
            };
            if let Some(oldest) = &oldest {
                self.dropped = self.dropped.saturating_add(u32::from(oldest.count));
                self.last_dropped = Some(oldest.id());
                self.store.set_drops(self.dropped, oldest.id()).await?;
            }
            // An unreadable record is not a message: dropped without counting.
            self.store.queue.pop(&mut self.store.msg_buf.0).await?;
            if let Some(oldest) = oldest {
                self.buffered = self.buffered.saturating_sub(u32::from(oldest.count));
                self.queued_messages = self.queued_messages.saturating_sub(1);
            }
        }
    }

    /// Publishes queued messages not yet sent on this connection, oldest first, until done,
    /// until a publication fails, or until the next sample is due.
    async fn publish_queued(&mut self) -> Result<(), Error<F::Error>> {
        let resend_wait = self.resend_wait();
        let mut sent = 0u32;
        let Store { queue, msg_buf, .. } = &mut self.store;
        let mut it = queue.iter().await?;
        loop {
            let Some(entry) = it.next(&mut msg_buf.0).await? else {
                // Everything queued is published, even if the newest message was freed by
                // an ack before it was resent: nothing is left to publish.
                self.link.published_upto = self.link.published_upto.max(self.newest_queued);
                break;
            };
            let Some(header) = MessageHeader::read(&entry) else {
                continue;
            };
            if self.link.published_upto.is_some_and(|p| header.id() <= p) {
                continue;
            }
            // At least one message each time: a node whose sampling falls behind (a slow
            // sensor, or a simulated one at many times real speed on a loaded machine) must
            // not starve its uplink, or it would keep sampling and never send.
            if sent > 0 && self.clock.now_ms() >= self.next_sample_ms {
                break;
            }
            let payload = &entry[MESSAGE_HEADER_LEN..];
            match self
                .uplink
                .publish(Channel::Telemetry, payload, false)
                .await
            {
                Ok(()) => {
                    sent += 1;
                    self.link.published_upto = Some(header.id());
                    self.stats.published += 1;
                    if self.link.resend_at_ms.is_none() {
                        self.link.resend_at_ms = Some(self.clock.now_ms() + resend_wait);
                    }
                }
                Err(_) => {
                    self.stats.publish_failures += 1;
                    self.link.retry_at_ms = self.clock.now_ms() + self.settings.retry_ms;
                    break;
                }
            }
        }
        Ok(())
    }

    async fn handle(&mut self, event: Incoming) -> Result<(), Error<F::Error>> {
        match event {
            Incoming::Connected => {
                // Republish everything still queued: whatever was in flight may be lost.
                self.link = Link {
                    connected: true,
                    ..Link::default()
                };
                self.status = StatusState::default();
            }
            Incoming::Disconnected => self.link.connected = false,
            Incoming::Ack(ack) => {
                self.free_acked(ack).await?;
                // The gateway stored what this image sent: if it is a new one on trial, it
                // has proved itself.
                if let Some(report) = self.updates.confirm().await? {
                    self.update_out = Some(report);
                }
            }
            Incoming::Offer(offer) => {
                if let Some(report) = self.updates.offer(offer.as_ref()).await? {
                    self.update_out = Some(report);
                }
            }
            Incoming::Chunk(chunk) => {
                if let Some(report) = self.updates.chunk(&chunk).await? {
                    self.update_out = Some(report);
                }
            }
            Incoming::Config(Ok(config)) => self.apply_config(config).await?,
            Incoming::Config(Err(_)) => self.stats.configs_refused += 1,
            Incoming::Other => {}
        }
        Ok(())
    }

    /// The wait before publishing everything again, as it stands.
    fn resend_wait(&self) -> u64 {
        if self.link.resend_wait_ms == 0 {
            self.settings.resend_ms
        } else {
            self.link.resend_wait_ms
        }
    }

    /// Acks stopped advancing: publish everything queued again, oldest first, and wait
    /// longer before the next time.
    fn resend_all(&mut self, now: u64) {
        if self.queued_messages == 0 {
            self.link.resend_at_ms = None;
            return;
        }
        self.stats.resends += 1;
        self.link.published_upto = None;
        self.link.resend_wait_ms = (self.resend_wait() * 2).min(self.settings.resend_max_ms);
        self.link.resend_at_ms = Some(now + self.resend_wait());
    }

    /// Frees every queued message of `ack.boot` up to `ack.seq`, and nothing else.
    async fn free_acked(&mut self, ack: Ack) -> Result<(), Error<F::Error>> {
        self.stats.acks += 1;
        let freed_before = self.stats.freed;
        let Store { queue, msg_buf, .. } = &mut self.store;
        let mut it = queue.iter().await?;
        while let Some(entry) = it.next(&mut msg_buf.0).await? {
            let Some(header) = MessageHeader::read(&entry) else {
                continue;
            };
            // The queue is in (boot, seq) order: nothing further can be covered.
            if header.id() > (ack.boot, ack.seq) {
                break;
            }
            if header.boot == ack.boot {
                entry.pop().await?;
                self.buffered = self.buffered.saturating_sub(u32::from(header.count));
                self.queued_messages = self.queued_messages.saturating_sub(1);
                self.stats.freed += 1;
            }
        }
        if self.queued_messages == 0 {
            self.newest_queued = None;
            self.link.resend_at_ms = None;
            self.link.resend_wait_ms = 0;
        } else if self.stats.freed != freed_before {
            // The acks advance: the gateway is keeping up; wait the shortest time again.
            self.link.resend_wait_ms = 0;
            let published = self.link.published_upto.is_some();
            self.link.resend_at_ms =
                published.then(|| self.clock.now_ms() + self.settings.resend_ms);
        }
        Ok(())
    }

    async fn apply_config(&mut self, config: NodeConfig) -> Result<(), Error<F::Error>> {
        // The config is retained: it arrives at every connection. Write flash only when it
        // changes.
        if config == self.config {
            return Ok(());
        }
        self.store.set_config(&config).await?;
        self.config = config;
        let now = self.clock.now_ms();
        self.next_sample_ms = self.next_sample_ms.min(now + self.sample_ms());
        self.next_publish_ms = self.next_publish_ms.min(now + self.publish_ms());
        self.stats.configs_applied += 1;
        Ok(())
    }

    /// The backlog in coarse steps: 0 while it is what one publication holds, else its
    /// binary order of magnitude, so the status is not republished at every reading.
    fn backlog_bucket(&self) -> u32 {
        let backlog = self.buffered + self.pending;
        let normal = 2 * (self.config.publish_interval_s / self.config.sample_interval_s).max(1);
        if backlog <= normal {
            0
        } else {
            32 - backlog.leading_zeros()
        }
    }

    fn status_changed(&self) -> bool {
        self.status.sent != Some((self.backlog_bucket(), self.dropped))
    }

    fn status_due(&self, now: u64) -> bool {
        now >= self.status.retry_at_ms
            && (self.status_changed() || now >= self.status.next_refresh_ms)
    }

    /// The status the node would publish now.
    pub fn status(&mut self) -> Status {
        let uptime_ms = self.clock.now_ms().saturating_sub(self.started_ms);
        let mut firmware = heapless::String::<FIRMWARE_LEN>::new();
        for c in self.settings.firmware.chars() {
            if firmware.push(c).is_err() {
                break;
            }
        }
        Status {
            state: NodeState::Online,
            firmware: Some(firmware),
            boot: Some(self.boot),
            buffered: Some(self.buffered + self.pending),
            dropped: Some(self.dropped),
            uptime_s: Some((uptime_ms / 1000).min(u64::from(u32::MAX)) as u32),
        }
    }

    async fn publish_status(&mut self) {
        let status = self.status();
        let mut buf = [0u8; 96];
        let Ok(len) = status.encode(ENCODING, &mut buf) else {
            return;
        };
        let now = self.clock.now_ms();
        match self
            .uplink
            .publish(Channel::Status, &buf[..len], true)
            .await
        {
            Ok(()) => {
                self.status.sent = Some((self.backlog_bucket(), self.dropped));
                self.status.next_refresh_ms =
                    now + u64::from(self.settings.status_refresh_s) * 1000;
                self.stats.statuses += 1;
            }
            Err(_) => self.status.retry_at_ms = now + self.settings.retry_ms,
        }
    }

    /// Batches the pending readings now, whatever the schedule, and publishes what it can;
    /// for a clean shutdown. Returns once the publications are handed to the uplink.
    pub async fn flush(&mut self) -> Result<(), Error<F::Error>> {
        self.start().await?;
        self.close_batch().await?;
        if self.link.connected && self.has_unpublished() {
            self.link.retry_at_ms = 0;
            // Not interrupted by a due sample: the node is stopping.
            let next_sample = core::mem::replace(&mut self.next_sample_ms, u64::MAX);
            let result = self.publish_queued().await;
            self.next_sample_ms = next_sample;
            result?;
        }
        Ok(())
    }

    /// Waits for the next uplink event and handles it, then publishes what is queued if
    /// the link is up; never samples. For a clean shutdown: after [`Node::flush`], call it
    /// until [`Node::buffered`] is 0 (every message acknowledged) or time runs out.
    pub async fn handle_next_event(&mut self) -> Result<(), Error<F::Error>> {
        self.start().await?;
        let event = Incoming::from_event(self.uplink.next_event().await);
        self.handle(event).await?;
        if self.link.connected && self.has_unpublished() {
            let next_sample = core::mem::replace(&mut self.next_sample_ms, u64::MAX);
            let result = self.publish_queued().await;
            self.next_sample_ms = next_sample;
            result?;
        }
        Ok(())
    }

    /// Publishes [`Status::offline()`] (retained), for a clean shutdown: the broker does not
    /// send the last will when a client disconnects cleanly.
    pub async fn go_offline(&mut self) -> Result<(), U::Error> {
        let mut buf = [0u8; 16];
        let len = Status::offline()
            .encode(ENCODING, &mut buf)
            .unwrap_or_default();
        self.uplink
            .publish(Channel::Status, &buf[..len], true)
            .await
    }

    /// Stops the node and gives its parts back.
    pub fn release(self) -> (S, C, U, Partitions<F>) {
        (self.sensors, self.clock, self.uplink, self.store.close())
    }

    /// This boot's number (0 until started).
    pub fn boot(&self) -> u32 {
        self.boot
    }

    /// The next message's sequence number.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// The configuration in force.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Readings in queued messages, waiting for an ack.
    pub fn buffered(&self) -> u32 {
        self.buffered
    }

    /// Readings sampled and not yet in a message.
    pub fn pending(&self) -> u32 {
        self.pending
    }

    /// Readings dropped because the queue was full, since the flash was new.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Whether the uplink reported a connection.
    pub fn is_connected(&self) -> bool {
        self.link.connected
    }

    /// What the node did since it started.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How many readings one message carries at most with this flash.
    pub fn max_readings_per_message(&self) -> usize {
        self.max_per_message
    }

    /// The sensors.
    pub fn sensors_mut(&mut self) -> &mut S {
        &mut self.sensors
    }

    /// The clock.
    pub fn clock_mut(&mut self) -> &mut C {
        &mut self.clock
    }

    /// The uplink.
    pub fn uplink_mut(&mut self) -> &mut U {
        &mut self.uplink
    }
}

/// The first slot of a `period` grid starting at `slot` that is after `now`: missed slots
/// are skipped, not caught up.
fn next_slot(slot: u64, now: u64, period: u64) -> u64 {
    if now < slot {
        return slot;
    }
    slot + ((now - slot) / period + 1) * period
}

#[cfg(test)]
mod tests {
    use super::next_slot;

    #[test]
    fn missed_slots_are_skipped_not_caught_up() {
        assert_eq!(next_slot(0, 0, 60), 60);
        assert_eq!(next_slot(60, 59, 60), 60);
        assert_eq!(next_slot(60, 61, 60), 120);
        assert_eq!(next_slot(60, 250, 60), 300);
    }
}
