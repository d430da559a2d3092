//! `weir-bench province`: one gateway and a province's terminals (55,000 by default), each
//! publishing a message of four readings every five minutes (about 183 messages a second in
//! all), then 4G outages that cut a share of them at once and let them reconnect together.
//!
//! `weir serve` (the release binary next to this one) runs as its own process with the
//! embedded broker and limits raised for a province ([`PROVINCE_LIMITS`]); this process is the
//! load: one small MQTT 3.1.1 client per terminal, a tokio task on a plain socket with
//! rumqttc's packet codec (no event loop, no flash queue), which logs in with its terminal id,
//! keeps a persistent session, numbers its messages 0, 1, 2... in boot 1, keeps each until the
//! gateway's ack covers it and publishes the unacknowledged ones again after a reconnect, as a
//! node does.
//!
//! Phases:
//! 1. register the terminals in one transaction (one precomputed hash for all);
//! 2. connect them all: first `--argon2-terminals`, whose hash has argon2's default
//!    parameters (the cost of a first login, measured), then the rest, whose hash has the
//!    smallest parameters (so that the run does not spend its time on what the first part measured);
//! 3. `--idle-s` seconds all connected and silent (what the connections alone cost), then
//!    steady state for `--steady-s` seconds: publish-to-ack latency, CPU, memory, commits;
//! 4. for each `--storms` share: that share of the links goes silent at once (the sockets are
//!    kept open and unread, as when a 4G cell drops: the gateway sees nothing until the node
//!    comes back; or closed, `--cut close`), each node waits `--outage-s` and then a random
//!    delay up to `--reconnect-window-s` (a backoff with jitter), reconnects, takes its
//!    session over and publishes what it queued meanwhile; measured until every one of them
//!    is acked again.
//!
//! Needs one open file per client socket in this process and in the gateway (twice the
//! terminals while cut links are held, once with `--cut close`): 55,000 terminals need
//! `prlimit --nofile=111024` (raising the hard limit needs CAP_SYS_RESOURCE).
//! Client sockets are bound to several 127.0.0.x source addresses, as loopback has about
//! 28,000 ephemeral ports per address.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Packet, PubAck, Publish, Subscribe};
use rumqttc::mqttbytes::QoS;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::sleep_until;
use weir_contract::{Ack, Encoding, Message as _, Quantity, Reading, Telemetry, Timestamp};

use crate::measure::{free_port, percentile, process_cpu_seconds, process_rss_kib, Killed};

/// A province on one gateway.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Terminals.
    #[arg(long, default_value_t = 55_000)]
    terminals: usize,
    /// Seconds between a terminal's messages.
    #[arg(long, default_value_t = 300)]
    interval_s: u64,
    /// Seconds measured with every terminal connected and none publishing.
    #[arg(long, default_value_t = 30)]
    idle_s: u64,
    /// Seconds of steady state measured.
    #[arg(long, default_value_t = 180)]
    steady_s: u64,
    /// Terminals registered with argon2's default parameters (a real first login); the
    /// others get the smallest parameters.
    #[arg(long, default_value_t = 500)]
    argon2_terminals: usize,
    /// Shares of the links (percent) cut at once, one outage after the other.
    #[arg(long, value_delimiter = ',', default_value = "30,100")]
    storms: Vec<f64>,
    /// Seconds a cut link stays down before its node starts trying again.
    #[arg(long, default_value_t = 20)]
    outage_s: u64,
    /// Nodes reconnect at a random moment within this many seconds after the outage.
    #[arg(long, default_value_t = 60)]
    reconnect_window_s: u64,
    /// Most connection attempts at once while the province first connects (the terminals
    /// coming online over their first minutes); outages are not held to it.
    #[arg(long, default_value_t = 512)]
    connect_concurrency: usize,
    /// Client sockets per loopback source address.
    #[arg(long, default_value_t = 4000)]
    per_source_address: usize,
    /// How an outage cuts a link: `silent` keeps the socket open and unread (a 4G cell
    /// dropping: the gateway holds the dead link until the node's new connection takes its
    /// session over; two open files per node on both sides), `close` closes it (the gateway
    /// sees the link end at once).
    #[arg(long, value_enum, default_value_t = Cut::Silent)]
    cut: Cut,
    /// Longest wait for a phase (all connected, all recovered), seconds.
    #[arg(long, default_value_t = 900)]
    phase_timeout_s: u64,
}

/// The `[mqtt.limits]` a province's gateway raises, as environment overrides; `{n}` is the
/// number of terminals. Everything else keeps its default.
const PROVINCE_LIMITS: &[(&str, &str)] = &[
    // every node connected twice: after a 4G outage the gateway holds each node's dead link
    // (it sent no FIN) until the node's new connection takes its session over
    ("WEIR_MQTT__LIMITS__MAX_CONNECTIONS", "2n"),
    // nodes behind a carrier's NAT share an address (here the bench's source addresses),
    // their dead links too
    ("WEIR_MQTT__LIMITS__MAX_CONNECTIONS_PER_ADDRESS", "2n"),
    // a reconnect storm: up to a thousand nodes between TCP accept and CONNACK
    ("WEIR_MQTT__LIMITS__MAX_PENDING_CONNECTIONS", "1024"),
];

/// Phases, as recorded with each latency.
const CONNECT: u8 = 0;
const STEADY: u8 = 1;
/// Storm `k` is phase `STORM + k`.
const STORM: u8 = 2;

/// How an outage cuts a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Cut {
    Silent,
    Close,
}

/// An outage: which generation, the share of links it cuts.
#[derive(Clone, Copy, Debug, Default)]
struct Outage {
    generation: u32,
    share: f64,
}

/// What all the simulated nodes share.
struct Shared {
    gateway: SocketAddr,
    sources: Vec<Ipv4Addr>,
    password: String,
    interval: Duration,
    terminals: usize,
    outage_s: u64,
    window_s: u64,
    cut: Cut,
    /// Set when the steady state starts: the first publishes are due from then.
    start: watch::Receiver<Option<Instant>>,
    outage: watch::Receiver<Outage>,
    connect_gate: Semaphore,
    phase: AtomicU8,
    connected: AtomicUsize,
    logins: AtomicUsize,
    refused: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    published: AtomicU64,
    republished: AtomicU64,
    acked: AtomicU64,
    /// Nodes of the current outage reconnected and acked up to date again.
    recovered: AtomicUsize,
    reconnected: AtomicUsize,
    /// (phase, milliseconds from a message's making to its ack).
    latencies: Mutex<Vec<(u8, f32)>>,
}

impl Shared {
    /// Whether outage `o` cuts terminal `idx`'s link: a fixed spread over the terminals.
    fn cuts(&self, o: Outage, idx: usize) -> bool {
        let h = (idx as u64 ^ (u64::from(o.generation) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 40) as f64 / (1u64 << 24) as f64) < o.share / 100.0
    }
}

/// The id of terminal `idx` (0-based).
fn terminal_id(idx: usize) -> String {
    format!("PV-{:05}", idx + 1)
}

/// A message waiting for its ack.
struct Queued {
    seq: u32,
    made: Instant,
    payload: Bytes,
}

/// A tiny deterministic random source per node (xorshift).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Why a connection ended.
enum End {
    /// The link went down in an outage: the socket, if kept open (silent), unread.
    Cut(Option<TcpStream>),
    /// The connection closed or failed.
    Lost,
}

/// One simulated node.
struct Node {
    idx: usize,
    id: String,
    topic: String,
    ack_topic: String,
    shared: Arc<Shared>,
    queue: VecDeque<Queued>,
    next_seq: u32,
    next_publish: Option<Instant>,
    start: watch::Receiver<Option<Instant>>,
    outage: watch::Receiver<Outage>,
    rng: Rng,
    /// Cut by the current outage and not yet acked up to date again.
    affected: bool,
}

impl Node {
    fn new(shared: Arc<Shared>, idx: usize) -> Self {
        let id = terminal_id(idx);
        let mut outage = shared.outage.clone();
        outage.borrow_and_update();
        Node {
            idx,
            topic: format!("weir/terminals/{id}/telemetry"),
            ack_topic: format!("weir/terminals/{id}/ack"),
            id,
            start: shared.start.clone(),
            outage,
            shared,
            queue: VecDeque::new(),
            next_seq: 0,
            next_publish: None,
            rng: Rng(0x2545_F491_4F6C_DD1D ^ (idx as u64 + 1).wrapping_mul(0x9E37_79B9)),
            affected: false,
        }
    }

    /// When the schedule starts, this node's first publish: spread evenly over an interval.
    fn schedule(&mut self) {
        if self.next_publish.is_none() {
            if let Some(t0) = *self.start.borrow_and_update() {
                let offset = self.shared.interval.as_secs_f64() * self.idx as f64
                    / self.shared.terminals as f64;
                self.next_publish = Some(t0 + Duration::from_secs_f64(offset));
            }
        }
    }

    /// Makes the messages that are due; returns how many.
    fn make_due(&mut self) -> usize {
        let mut made = 0;
        let now = Instant::now();
        while let Some(at) = self.next_publish.filter(|at| *at <= now) {
            self.next_publish = Some(at + self.shared.interval);
            let seq = self.next_seq;
            self.next_seq += 1;
            let ts_end = weir_store::now() - (now - at).as_secs() as i64;
            let mut msg = Telemetry {
                boot: 1,
                seq,
                readings: Default::default(),
            };
            for j in 0..4i64 {
                let k = f64::from(seq) * 4.0 + j as f64;
                let reading = Reading::new(Timestamp::from_unix(ts_end - (3 - j) * 75))
                    .with(Quantity::Flow, 1.2 + (k % 17.0) * 0.01)
                    .with(Quantity::Volume, 1000.0 + k * 0.02)
                    .with(Quantity::Turbidity, 3.0 + (k % 7.0) * 0.1)
                    .with(Quantity::Sludge, 12.0 + (k % 5.0) * 0.1);
                let _ = msg.readings.push(reading);
            }
            let mut buf = [0u8; 512];
            let Ok(len) = msg.encode(Encoding::Binary, &mut buf) else {
                continue;
            };
            self.queue.push_back(Queued {
                seq,
                made: at,
                payload: Bytes::copy_from_slice(&buf[..len]),
            });
            made += 1;
        }
        made
    }

    /// Waits until `until`, making the messages that fall due meanwhile.
    async fn wait(&mut self, until: Instant) {
        loop {
            self.schedule();
            self.make_due();
            let next = self.next_publish.unwrap_or(until).min(until);
            tokio::select! {
                _ = sleep_until(next.into()) => {}
                _ = self.start.changed(), if self.next_publish.is_none() => {}
            }
            if Instant::now() >= until {
                return;
            }
        }
    }

    fn write_publish(&self, q: &Queued, dup: bool, wbuf: &mut BytesMut) {
        let mut p = Publish::new(self.topic.as_str(), QoS::AtLeastOnce, q.payload.to_vec());
        p.pkid = (q.seq % 65_535) as u16 + 1;
        p.dup = dup;
        let _ = p.write(wbuf);
    }

    /// Opens a socket from this node's source address and logs in.
    async fn login(&self) -> Result<TcpStream, ConnectReturnCode> {
        let s = &self.shared;
        let _permit = if s.phase.load(Relaxed) == CONNECT {
            s.connect_gate.acquire().await.ok()
        } else {
            None
        };
        let fail = || {
            s.failed.fetch_add(1, Relaxed);
            ConnectReturnCode::ServiceUnavailable
        };
        let socket = TcpSocket::new_v4().map_err(|_| fail())?;
        let src = s.sources[self.idx % s.sources.len()];
        socket
            .bind(SocketAddr::new(src.into(), 0))
            .map_err(|_| fail())?;
        let limit = Duration::from_secs(30);
        let mut stream = tokio::time::timeout(limit, socket.connect(s.gateway))
            .await
            .map_err(|_| fail())?
            .map_err(|_| fail())?;
        let _ = stream.set_nodelay(true);
        let mut connect = Connect::new(format!("weir-node-{}", self.id));
        connect.keep_alive = 600;
        connect.clean_session = false;
        connect.set_login(&self.id, &s.password);
        let mut buf = BytesMut::new();
        let _ = connect.write(&mut buf);
        stream.write_all(&buf).await.map_err(|_| fail())?;
        buf.clear();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match Packet::read(&mut buf, 1 << 16) {
                Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => {
                    return Ok(stream);
                }
                Ok(Packet::ConnAck(ack)) => {
                    s.refused.fetch_add(1, Relaxed);
                    return Err(ack.code);
                }
                Ok(_) | Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(_) => return Err(fail()),
            }
            match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Err(fail()),
            }
        }
    }

    /// Runs the node for ever.
    async fn run(mut self) {
        let mut held: Option<TcpStream> = None;
        let mut retries = 0u32;
        loop {
            self.schedule();
            self.make_due();
            let stream = match self.login().await {
                Ok(s) => s,
                Err(_) => {
                    // Exponential backoff with full jitter, 2 s to 60 s.
                    retries += 1;
                    let cap = (2u64 << retries.min(5)).min(60) as f64;
                    let d = Duration::from_secs_f64(1.0 + self.rng.unit() * cap);
                    self.wait(Instant::now() + d).await;
                    continue;
                }
            };
            retries = 0;
            // The new connection took the session over; the cut link may go now.
            drop(held.take());
            let s = self.shared.clone();
            s.logins.fetch_add(1, Relaxed);
            s.connected.fetch_add(1, Relaxed);
            if self.affected {
                s.reconnected.fetch_add(1, Relaxed);
            }
            let end = self.serve(stream).await;
            s.connected.fetch_sub(1, Relaxed);
            match end {
                End::Cut(stream) => {
                    held = stream;
                    let delay = s.outage_s as f64 + self.rng.unit() * s.window_s as f64;
                    self.wait(Instant::now() + Duration::from_secs_f64(delay))
                        .await;
                }
                End::Lost => {
                    s.lost.fetch_add(1, Relaxed);
                    let d = Duration::from_secs_f64(1.0 + self.rng.unit() * 4.0);
                    self.wait(Instant::now() + d).await;
                }
            }
        }
    }

    /// The node's side of one connection, until it ends.
    async fn serve(&mut self, mut stream: TcpStream) -> End {
        let s = self.shared.clone();
        let mut wbuf = BytesMut::new();
        let mut rbuf = BytesMut::with_capacity(256);
        let mut sub = Subscribe::new(self.ack_topic.as_str(), QoS::AtLeastOnce);
        sub.pkid = 1;
        let _ = sub.write(&mut wbuf);
        for q in &self.queue {
            self.write_publish(q, true, &mut wbuf);
            s.republished.fetch_add(1, Relaxed);
        }
        let mut sent = self.queue.len();
        self.check_recovered();
        loop {
            self.schedule();
            if self.make_due() > 0 {
                for q in self.queue.iter().skip(sent) {
                    self.write_publish(q, false, &mut wbuf);
                    s.published.fetch_add(1, Relaxed);
                }
                sent = self.queue.len();
            }
            loop {
                match Packet::read(&mut rbuf, 1 << 16) {
                    Ok(Packet::Publish(p)) => {
                        if p.qos != QoS::AtMostOnce {
                            let _ = PubAck::new(p.pkid).write(&mut wbuf);
                        }
                        if let Ok(ack) = Ack::decode(&p.payload) {
                            let before = self.queue.len();
                            self.acked(ack);
                            sent -= before - self.queue.len();
                        }
                    }
                    Ok(_) => {}
                    Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => break,
                    Err(_) => return End::Lost,
                }
            }
            if !wbuf.is_empty() {
                if stream.write_all(&wbuf).await.is_err() {
                    return End::Lost;
                }
                wbuf.clear();
            }
            let next = self
                .next_publish
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                read = stream.read_buf(&mut rbuf) => {
                    if !matches!(read, Ok(n) if n > 0) {
                        return End::Lost;
                    }
                }
                _ = sleep_until(next.into()) => {}
                _ = self.start.changed(), if self.next_publish.is_none() => {}
                changed = self.outage.changed() => {
                    let o = *self.outage.borrow_and_update();
                    if changed.is_ok() && s.cuts(o, self.idx) {
                        self.affected = true;
                        return End::Cut((s.cut == Cut::Silent).then_some(stream));
                    }
                }
            }
        }
    }

    /// The gateway acked `ack`: its messages up to `ack.seq` are done.
    fn acked(&mut self, ack: Ack) {
        if ack.boot != 1 {
            return;
        }
        let now = Instant::now();
        let phase = self.shared.phase.load(Relaxed);
        let mut done = Vec::new();
        while self.queue.front().is_some_and(|q| q.seq <= ack.seq) {
            if let Some(q) = self.queue.pop_front() {
                done.push((phase, (now - q.made).as_secs_f32() * 1000.0));
            }
        }
        if !done.is_empty() {
            self.shared.acked.fetch_add(done.len() as u64, Relaxed);
            if let Ok(mut l) = self.shared.latencies.lock() {
                l.extend(done);
            }
        }
        self.check_recovered();
    }

    fn check_recovered(&mut self) {
        if self.affected && self.queue.is_empty() {
            self.affected = false;
            self.shared.recovered.fetch_add(1, Relaxed);
        }
    }
}

/// Open files allowed to this process (soft limit), from /proc.
fn open_files_limit() -> u64 {
    crate::measure::proc_field("/proc/self/limits", "Max open files", 3)
}

/// The 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

/// Warnings and errors in the gateway's log, counted by message (fields and time left out).
fn log_summary(path: &std::path::Path) -> Vec<(String, usize)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for line in text.lines() {
        // Without the terminal's colour codes.
        let mut plain = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                plain.push(c);
            }
        }
        if !(plain.contains(" WARN ") || plain.contains(" ERROR ")) {
            continue;
        }
        let rest = plain.split_once(' ').map(|(_, r)| r).unwrap_or(&plain);
        let key = match rest.split_once('=') {
            Some((before, _)) => before.rsplit_once(' ').map(|(b, _)| b).unwrap_or(before),
            None => rest,
        };
        *counts.entry(key.trim().to_owned()).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// The gateway's /metrics as name -> value (unlabelled series only).
async fn scrape(http: &reqwest::Client, base: &str) -> HashMap<String, f64> {
    let Ok(r) = http.get(format!("{base}/metrics")).send().await else {
        return HashMap::new();
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            Some((name.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// CPU and memory of the gateway, sampled every second.
#[derive(Default)]
struct Samples(Vec<(Instant, f64, u64)>);

impl Samples {
    /// Highest share of one core over any 2-second window from `from` to `to`, percent, and
    /// the highest RSS, KiB.
    fn peaks(&self, from: Instant, to: Instant) -> (f64, u64) {
        let xs: Vec<_> = self
            .0
            .iter()
            .filter(|(t, _, _)| *t >= from && *t <= to)
            .collect();
        let cpu = xs
            .windows(3)
            .map(|w| (w[2].1 - w[0].1) / (w[2].0 - w[0].0).as_secs_f64() * 100.0)
            .fold(0.0, f64::max);
        let rss = xs.iter().map(|x| x.2).max().unwrap_or(0);
        (cpu, rss)
    }
}

/// Figures of one phase.
#[derive(Debug, Default, serde::Serialize)]
struct Phase {
    name: String,
    wall_s: f64,
    gateway_cpu_s: f64,
    /// Mean share of one core, percent.
    gateway_cpu_pct: f64,
    gateway_cpu_peak_pct: f64,
    gateway_rss_peak_mib: f64,
    bench_cpu_s: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    acked: usize,
    /// Differences of the gateway's counters over the phase.
    metrics: std::collections::BTreeMap<String, f64>,
}

/// Counters reported per phase.
const COUNTERS: &[&str] = &[
    "weir_messages_received_total",
    "weir_readings_stored_total",
    "weir_store_commits_total",
    "weir_broker_connections_total",
    "weir_broker_connects_refused_total",
    "weir_broker_refused_pending_limit_total",
    "weir_broker_refused_address_limit_total",
    "weir_broker_refused_auth_busy_total",
    "weir_broker_refused_auth_throttled_total",
    "weir_broker_refused_session_limit_total",
    "weir_broker_auth_checks_total",
    "weir_broker_rate_limited_messages_total",
    "weir_broker_protocol_errors_total",
];

struct Probe {
    pid: u32,
    http: reqwest::Client,
    base: String,
    samples: Arc<Mutex<Samples>>,
    shared: Arc<Shared>,
}

struct Mark {
    t: Instant,
    cpu: f64,
    bench_cpu: f64,
    metrics: HashMap<String, f64>,
}

impl Probe {
    async fn mark(&self) -> Mark {
        Mark {
            t: Instant::now(),
            cpu: process_cpu_seconds(self.pid),
            bench_cpu: crate::measure::cpu_self(),
            metrics: scrape(&self.http, &self.base).await,
        }
    }

    async fn phase(&self, name: &str, id: u8, from: &Mark) -> Phase {
        let to = self.mark().await;
        let wall = (to.t - from.t).as_secs_f64();
        let cpu = to.cpu - from.cpu;
        let (peak_cpu, peak_rss) = self.samples.lock().unwrap().peaks(from.t, to.t);
        let mut lat: Vec<f64> = self
            .shared
            .latencies
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == id)
            .map(|(_, ms)| f64::from(*ms))
            .collect();
        lat.sort_by(f64::total_cmp);
        let metrics = COUNTERS
            .iter()
            .map(|k| {
                let d = to.metrics.get(*k).unwrap_or(&0.0) - from.metrics.get(*k).unwrap_or(&0.0);
                ((*k).to_owned(), d)
            })
            .collect();
        Phase {
            name: name.to_owned(),
            wall_s: wall,
            gateway_cpu_s: cpu,
            gateway_cpu_pct: cpu / wall * 100.0,
            gateway_cpu_peak_pct: peak_cpu,
            gateway_rss_peak_mib: peak_rss as f64 / 1024.0,
            bench_cpu_s: to.bench_cpu - from.bench_cpu,
            latency_p50_ms: percentile(&lat, 50.0),
            latency_p99_ms: percentile(&lat, 99.0),
            latency_max_ms: lat.last().copied().unwrap_or(f64::NAN),
            acked: lat.len(),
            metrics,
        }
    }
}

/// Waits until `done` or the timeout; says which, printing progress every 10 s.
async fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> (bool, String)) -> bool {
    let t0 = Instant::now();
    let mut last = Instant::now();
    loop {
        let (ok, progress) = done();
        if ok {
            return true;
        }
        if t0.elapsed() > timeout {
            println!(
                "  {what}: gave up after {:.0} s ({progress})",
                timeout.as_secs_f64()
            );
            return false;
        }
        if last.elapsed() > Duration::from_secs(10) {
            println!(
                "  {what}: {progress} after {:.0} s",
                t0.elapsed().as_secs_f64()
            );
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn main(args: Args) -> anyhow::Result<()> {
    let n = args.terminals;
    anyhow::ensure!(
        n > 0 && args.interval_s > 0,
        "--terminals and --interval-s must be at least 1"
    );
    let argon2_n = args.argon2_terminals.min(n);
    let need = match args.cut {
        Cut::Silent => 2 * n as u64 + 1024,
        Cut::Close => n as u64 + 1024,
    };
    let have = open_files_limit();
    anyhow::ensure!(
        have >= need,
        "{n} terminals need about {need} open files in this process and in the gateway, the limit is {have}: \
         run under `prlimit --nofile={need}:{need}` (as root, or raise the hard limit; with \
         --cut close a node needs one)"
    );
    let weir = crate::measure::weir_binary()?;
    let load_start = loadavg();
    let dir = crate::measure::TempDir::new("province")?;
    let data = dir.path().join("data");

    // 1. The registry, in one transaction, with two precomputed hashes.
    let password = weir_store::auth::new_password();
    let t0 = Instant::now();
    let heavy = weir_store::auth::hash_password(&password);
    let heavy_hash_s = t0.elapsed().as_secs_f64();
    let light = {
        use argon2::password_hash::{PasswordHasher as _, SaltString};
        let params = argon2::Params::new(8, 1, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?;
        let salt =
            SaltString::encode_b64(b"weir-province-bench").map_err(|e| anyhow::anyhow!("{e}"))?;
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_string()
    };
    let t0 = Instant::now();
    let store = weir_store::Store::open(&data.join("weir.db"), weir_store::Synchronous::Full)?;
    store.with(|c| {
        let tx = c.unchecked_transaction()?;
        for idx in 0..n {
            let new = weir_store::terminals::NewTerminal {
                id: terminal_id(idx),
                name: format!("Terminal {}", idx + 1),
                design_flow_m3d: Some(30.0),
                tank_depth_m: Some(2.0),
                ..Default::default()
            };
            let hash = if idx < argon2_n { &heavy } else { &light };
            if let Err(e) = weir_store::terminals::add(&tx, &new, hash) {
                return Ok(Err(e));
            }
        }
        tx.commit()?;
        Ok(Ok(()))
    })??;
    drop(store);
    let register_s = t0.elapsed().as_secs_f64();
    println!("{n} terminals registered in {register_s:.2} s (one argon2 hash at default parameters takes {:.0} ms here)", heavy_hash_s * 1000.0);

    // 2. The gateway.
    let (mqtt_port, http_port) = (free_port()?, free_port()?);
    let mut cmd = std::process::Command::new(&weir);
    cmd.arg("serve")
        .env("WEIR_DATA_DIR", &data)
        .env("WEIR_MQTT__LISTEN", format!("127.0.0.1:{mqtt_port}"))
        .env("WEIR_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("WEIR_LOG", "warn")
        .stdout(std::fs::File::create(dir.path().join("gateway.log"))?)
        .stderr(std::fs::File::create(dir.path().join("gateway.err"))?);
    let mut limits = Vec::new();
    for (key, value) in PROVINCE_LIMITS {
        let v = match *value {
            "2n" => (2 * n + 100).to_string(),
            v => v.to_owned(),
        };
        limits.push(format!("{key}={v}"));
        cmd.env(key, v);
    }
    let gateway = Killed(
        cmd.spawn()
            .with_context(|| format!("starting {}", weir.display()))?,
    );
    let pid = gateway.0.id();
    let base = format!("http://127.0.0.1:{http_port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "weir serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = process_rss_kib(pid);

    let sources: Vec<Ipv4Addr> = (0..n.div_ceil(args.per_source_address.max(1)).max(1))
        .map(|i| Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 2 + (i % 250) as u8))
        .collect();
    let (start_tx, start_rx) = watch::channel(None);
    let (outage_tx, outage_rx) = watch::channel(Outage::default());
    let shared = Arc::new(Shared {
        gateway: SocketAddr::from(([127, 0, 0, 1], mqtt_port)),
        sources: sources.clone(),
        password,
        interval: Duration::from_secs(args.interval_s),
        terminals: n,
        outage_s: args.outage_s,
        window_s: args.reconnect_window_s,
        cut: args.cut,
        start: start_rx,
        outage: outage_rx,
        connect_gate: Semaphore::new(args.connect_concurrency.max(1)),
        phase: AtomicU8::new(CONNECT),
        connected: AtomicUsize::new(0),
        logins: AtomicUsize::new(0),
        refused: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        published: AtomicU64::new(0),
        republished: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        recovered: AtomicUsize::new(0),
        reconnected: AtomicUsize::new(0),
        latencies: Mutex::new(Vec::new()),
    });
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            loop {
                let s = (
                    Instant::now(),
                    process_cpu_seconds(pid),
                    process_rss_kib(pid).0,
                );
                samples.lock().unwrap().0.push(s);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let probe = Probe {
        pid,
        http: http.clone(),
        base: base.clone(),
        samples: samples.clone(),
        shared: shared.clone(),
    };
    let timeout = Duration::from_secs(args.phase_timeout_s);
    println!(
        "weir serve (pid {pid}) on 127.0.0.1:{mqtt_port}, {:.1} MiB idle; limits: {}; clients from {} source addresses",
        idle_rss as f64 / 1024.0,
        limits.join(" "),
        sources.len()
    );

    // 3. Connect: the argon2 terminals, then the rest.
    let mut phases = Vec::new();
    let mut nodes = Vec::with_capacity(n);
    let spawn = |range: std::ops::Range<usize>, nodes: &mut Vec<_>| {
        for idx in range {
            nodes.push(tokio::spawn(Node::new(shared.clone(), idx).run()));
        }
    };
    let mark = probe.mark().await;
    spawn(0..argon2_n, &mut nodes);
    let ok = until("first logins", timeout, || {
        let c = shared.connected.load(Relaxed);
        (c >= argon2_n, format!("{c}/{argon2_n} connected"))
    })
    .await;
    anyhow::ensure!(ok, "the argon2 terminals did not all connect");
    let argon2_phase = probe
        .phase(
            &format!("connect {argon2_n} (argon2 default parameters)"),
            CONNECT,
            &mark,
        )
        .await;
    println!("  {}: {:.1} s", argon2_phase.name, argon2_phase.wall_s);
    let mark = probe.mark().await;
    spawn(argon2_n..n, &mut nodes);
    let ok = until("connecting", timeout, || {
        let c = shared.connected.load(Relaxed);
        (c >= n, format!("{c}/{n} connected"))
    })
    .await;
    anyhow::ensure!(ok, "the province did not connect");
    let rest = probe
        .phase(
            &format!("connect {} (light hash)", n - argon2_n),
            CONNECT,
            &mark,
        )
        .await;
    println!("  {}: {:.1} s", rest.name, rest.wall_s);
    let connected_rss = process_rss_kib(pid).0;
    phases.push(argon2_phase);
    phases.push(rest);

    // What the connections cost with nothing published.
    let mark = probe.mark().await;
    tokio::time::sleep(Duration::from_secs(args.idle_s)).await;
    let idle = probe.phase("connected, idle", CONNECT, &mark).await;
    println!(
        "  connected, idle: gateway {:.1} % of a core",
        idle.gateway_cpu_pct
    );
    phases.push(idle);

    // 4. Steady state.
    shared.phase.store(STEADY, Relaxed);
    let steady_start = Instant::now();
    start_tx.send_replace(Some(steady_start));
    let mark = probe.mark().await;
    println!("steady state: {} s...", args.steady_s);
    tokio::time::sleep(Duration::from_secs(args.steady_s)).await;
    let steady = probe.phase("steady state", STEADY, &mark).await;
    let published = shared.published.load(Relaxed);
    println!(
        "  {published} published, {} acked, gateway {:.1} % of a core, p99 {:.0} ms",
        shared.acked.load(Relaxed),
        steady.gateway_cpu_pct,
        steady.latency_p99_ms
    );
    phases.push(steady);

    // 5. Outages.
    let mut storms = Vec::new();
    for (k, share) in args.storms.iter().enumerate() {
        let phase_id = STORM + k as u8;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let o = Outage {
            generation: k as u32 + 1,
            share: *share,
        };
        let cut = (0..n).filter(|i| shared.cuts(o, *i)).count();
        shared.recovered.store(0, Relaxed);
        shared.reconnected.store(0, Relaxed);
        shared.phase.store(phase_id, Relaxed);
        let mark = probe.mark().await;
        outage_tx.send_replace(o);
        println!(
            "outage of {share} %: {cut} links cut for {} s, back within {} s more...",
            args.outage_s, args.reconnect_window_s
        );
        let mut all_back = None;
        let ok = until("recovering", timeout, || {
            let (b, r) = (
                shared.reconnected.load(Relaxed),
                shared.recovered.load(Relaxed),
            );
            if b >= cut && all_back.is_none() {
                all_back = Some(mark.t.elapsed().as_secs_f64());
            }
            (
                r >= cut,
                format!("{b}/{cut} reconnected, {r} acked up to date"),
            )
        })
        .await;
        let mut p = probe
            .phase(
                &format!("outage of {share} % ({cut} links)"),
                phase_id,
                &mark,
            )
            .await;
        p.name = format!("{} {}", p.name, if ok { "" } else { "(not recovered)" })
            .trim()
            .to_owned();
        println!(
            "  recovered in {:.1} s; all reconnected at {:.1} s",
            p.wall_s,
            all_back.unwrap_or(f64::NAN)
        );
        storms.push((share, cut, all_back, ok));
        phases.push(p);
    }
    shared.phase.store(u8::MAX, Relaxed);
    let bench_rss = crate::measure::peak_rss_kib();
    let (_, gateway_hwm) = process_rss_kib(pid);
    sampler.abort();
    for node in &nodes {
        node.abort();
    }
    drop(gateway);
    let warnings = log_summary(&dir.path().join("gateway.err"));
    let load_end = loadavg();

    // 6. The summary.
    let steady = &phases[3];
    let machine_pct = steady.gateway_cpu_pct / 2.0;
    let msg_rate = n as f64 / args.interval_s as f64;
    // What both cores would carry if the cost grew with the message rate alone.
    let ceiling_rate = if machine_pct > 0.0 {
        msg_rate * 100.0 / machine_pct
    } else {
        f64::NAN
    };
    let ceiling = ceiling_rate * 300.0;
    let argon2 = &phases[0];
    let per_login_cpu_ms = argon2.gateway_cpu_s / argon2_n.max(1) as f64 * 1000.0;
    let logins_per_s = argon2_n as f64 / argon2.wall_s;
    println!();
    println!("| phase | wall s | gateway CPU s | mean % of a core | peak % (2 s) | RSS peak MiB | acked | p50 ms | p99 ms | max ms | commits | refused | bench CPU s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in &phases {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
            p.name,
            p.wall_s,
            p.gateway_cpu_s,
            p.gateway_cpu_pct,
            p.gateway_cpu_peak_pct,
            p.gateway_rss_peak_mib,
            p.acked,
            p.latency_p50_ms,
            p.latency_p99_ms,
            p.latency_max_ms,
            p.metrics["weir_store_commits_total"],
            p.metrics["weir_broker_connects_refused_total"]
                + p.metrics["weir_broker_refused_pending_limit_total"]
                + p.metrics["weir_broker_refused_address_limit_total"],
            p.bench_cpu_s,
        );
    }
    let commits = steady.metrics["weir_store_commits_total"];
    println!();
    println!(
        "gateway RSS: {:.1} MiB idle, {:.1} MiB with {n} connected, peak {:.1} MiB; this process's peak {:.1} MiB",
        idle_rss as f64 / 1024.0,
        connected_rss as f64 / 1024.0,
        gateway_hwm as f64 / 1024.0,
        bench_rss as f64 / 1024.0
    );
    println!(
        "steady: {:.0} msg/s offered ({:.0} acked/s), {:.1} messages per commit, gateway {:.1} % of the machine's 2 cores -> ceiling about {:.0} msg/s, i.e. {:.0} terminals at one message per 5 minutes if a message cost the same with more terminals (it does not: see docs/performance.md)",
        msg_rate,
        steady.acked as f64 / steady.wall_s,
        steady.metrics["weir_messages_received_total"] / commits.max(1.0),
        machine_pct,
        ceiling_rate,
        ceiling
    );
    println!(
        "first logins (argon2 default parameters): {logins_per_s:.1}/s, {per_login_cpu_ms:.0} ms of gateway CPU each -> {n} terminals logging in after a gateway restart take about {:.0} s",
        n as f64 / logins_per_s
    );
    for (share, cut, back, ok) in &storms {
        println!(
            "outage of {share} % ({cut} links): all reconnected {:.1} s after the cut, {}",
            back.unwrap_or(f64::NAN),
            if *ok {
                "all acked up to date (see the table)"
            } else {
                "NOT all recovered"
            }
        );
    }
    println!("load average (1 min) at the start {load_start}, at the end {load_end}");
    if warnings.is_empty() {
        println!("weir serve logged no warnings");
    }
    for (what, count) in &warnings {
        println!("weir serve logged {count} times: {what}");
    }
    println!(
        "client side: {} logins, {} refused CONNACKs, {} failed attempts, {} connections lost, {} published, {} published again, {} acked",
        shared.logins.load(Relaxed),
        shared.refused.load(Relaxed),
        shared.failed.load(Relaxed),
        shared.lost.load(Relaxed),
        shared.published.load(Relaxed),
        shared.republished.load(Relaxed),
        shared.acked.load(Relaxed)
    );
    let line = serde_json::json!({
        "terminals": n,
        "interval_s": args.interval_s,
        "cut": format!("{:?}", args.cut),
        "register_s": register_s,
        "load_start": load_start,
        "load_end": load_end,
        "gateway_warnings": warnings.iter().map(|(w, c)| serde_json::json!({"what": w, "count": c})).collect::<Vec<_>>(),
        "limits": limits,
        "gateway_idle_rss_mib": idle_rss as f64 / 1024.0,
        "gateway_connected_rss_mib": connected_rss as f64 / 1024.0,
        "gateway_peak_rss_mib": gateway_hwm as f64 / 1024.0,
        "argon2_logins_per_s": logins_per_s,
        "argon2_login_cpu_ms": per_login_cpu_ms,
        "steady_machine_cpu_pct": machine_pct,
        "ceiling_msg_per_s": ceiling_rate,
        "ceiling_terminals_at_5_min": ceiling,
        "storms": storms.iter().map(|(share, cut, back, ok)| serde_json::json!({"share_pct": share, "cut": cut, "all_reconnected_s": back, "recovered": ok})).collect::<Vec<_>>(),
        "phases": phases,
    });
    println!("PROVINCE {line}");
    Ok(())
}
