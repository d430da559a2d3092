//! End to end: simulated nodes against a real Mosquitto broker, with a test consumer that
//! stores readings and acks them like the gateway does.
//!
//! * One node's link is cut for a while (through a proxy the test severs), another node runs
//!   as a `weir-fleet` process that is killed with SIGKILL and started again on the same data
//!   directory.
//! * One node plays the scenario's scripted reboot.
//!
//! The ground truth is each node's own logs: `sampled.log`, written when a sample is taken
//! (before the node stores it), and `recorded.log`, written once the reading is in flash.
//! In the end every reading in flash has arrived (recorded ⊆ stored), nothing arrived that
//! was not sampled (stored ⊆ sampled), and a sample is missing only where a node was killed
//! while taking it; in order per terminal, none twice, each with the scenario's values.
//!
//! The test waits for conditions, each with a generous deadline, rather than for fixed
//! times, so a slow machine makes it slower, not flaky.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use weir_contract::topic::{self, Channel};
use weir_contract::{widen, Ack, Message, Quantity, Reading, Telemetry, Timestamp};
use weir_sim::{Credentials, Fleet, FleetConfig, ScriptedFault, Timeline, SAMPLED_LOG, SAMPLE_LOG};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const SEED: u64 = 7;
const COUNT: usize = 3;
/// A month in the past at 2000x: the test never reaches real time, so publications keep
/// coming every 150 ms of wall time.
const HISTORY: Duration = Duration::from_secs(30 * 86_400);
const SPEED: f64 = 2000.0;
/// How long any one condition may take to come true: far more than it needs here (a few
/// seconds), so that only a real fault makes the test fail.
const PATIENCE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// A Mosquitto broker on a free port, stopped when dropped.

struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    async fn start() -> Broker {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "this test needs the Mosquitto broker at {MOSQUITTO} (Debian: apt-get install mosquitto)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto");
        let broker = Broker {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        broker
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------
// A TCP proxy whose connections the test can sever.

struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    sever: Arc<Notify>,
    severed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let sever = Arc::new(Notify::new());
        let severed = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (up, sever, severed) = (up.clone(), sever.clone(), severed.clone());
            async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        return;
                    };
                    if !up.load(Ordering::SeqCst) {
                        // A dead link: the connection goes nowhere.
                        drop(inbound);
                        continue;
                    }
                    let (sever, severed) = (sever.clone(), severed.clone());
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await
                        else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            () = sever.notified() => {
                                severed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    });
                }
            }
        });
        Proxy {
            port,
            up,
            sever,
            severed,
            task,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.sever.notify_waiters();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------
// The test consumer: stores readings like the gateway, acks what is stored.

#[derive(Default)]
struct Store {
    /// Message identities stored: (terminal, boot, seq).
    messages: HashSet<(String, u32, u32)>,
    /// Messages received again (resent after a reconnect or a restart).
    resent: usize,
    /// Readings per terminal, in the order they were stored.
    readings: HashMap<String, Vec<Reading>>,
    /// Which message stored each (terminal, ts).
    stored_by: HashMap<(String, i64), (u32, u32)>,
    /// Readings that came a second time in another message: must stay empty.
    duplicates: Vec<String>,
    /// Per (terminal, boot), the sequence numbers stored.
    seqs: HashMap<(String, u32), BTreeSet<u32>>,
    /// Boots seen per terminal.
    boots: HashMap<String, BTreeSet<u32>>,
}

impl Store {
    /// Times of the readings stored for `id`, in the order they were stored.
    fn times(&self, id: &str) -> Vec<i64> {
        self.readings
            .get(id)
            .map(|rs| rs.iter().map(|r| r.ts.unix()).collect())
            .unwrap_or_default()
    }

    /// How many messages of `id`'s boot `boot` are stored.
    fn messages(&self, id: &str, boot: u32) -> usize {
        self.seqs
            .get(&(id.to_string(), boot))
            .map_or(0, BTreeSet::len)
    }

    /// Stores a message; returns the ack to send: the highest seq of its boot up to which
    /// every message is stored.
    fn store(&mut self, id: &str, t: &Telemetry) -> Option<Ack> {
        if !self.messages.insert((id.to_string(), t.boot, t.seq)) {
            self.resent += 1;
        } else {
            for r in &t.readings {
                let key = (id.to_string(), r.ts.unix());
                if let Some(by) = self.stored_by.get(&key) {
                    self.duplicates.push(format!(
                        "{id} {} in ({}, {}) and {by:?}",
                        r.ts.unix(),
                        t.boot,
                        t.seq
                    ));
                    continue;
                }
                self.stored_by.insert(key, (t.boot, t.seq));
                self.readings.entry(id.to_string()).or_default().push(*r);
            }
        }
        self.boots.entry(id.to_string()).or_default().insert(t.boot);
        let seqs = self.seqs.entry((id.to_string(), t.boot)).or_default();
        seqs.insert(t.seq);
        let mut upto = None;
        for (expected, seq) in seqs.iter().enumerate() {
            if *seq != expected as u32 {
                break;
            }
            upto = Some(*seq);
        }
        upto.map(|seq| Ack { boot: t.boot, seq })
    }
}

async fn run_consumer(port: u16, store: Arc<Mutex<Store>>, ready: Arc<Notify>) {
    let mut options = MqttOptions::new("test-gateway", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let filter = topic::filter_all("weir", Channel::Telemetry)
        .unwrap()
        .to_string();
    tokio::spawn({
        let client = client.clone();
        async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client
                            .subscribe(filter.as_str(), QoS::AtLeastOnce)
                            .await
                            .unwrap();
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => ready.notify_one(),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    });
    while let Some(p) = rx.recv().await {
        let Ok((id, _)) = topic::parse("weir", &p.topic) else {
            continue;
        };
        let telemetry = Telemetry::decode(&p.payload).expect("nodes send valid telemetry");
        let ack = store.lock().unwrap().store(id.as_str(), &telemetry);
        // Acknowledge after storing, retained, in the encoding the node used.
        if let Some(ack) = ack {
            let mut buf = [0u8; 32];
            let len = ack
                .encode(weir_contract::Encoding::Binary, &mut buf)
                .unwrap();
            let topic = topic::topic("weir", &id, Channel::Ack).unwrap().to_string();
            client
                .publish(topic, QoS::AtLeastOnce, true, buf[..len].to_vec())
                .await
                .unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Waiting for conditions

/// Polls `check` until it returns `Ok`; after `timeout`, the last state it reported.
async fn poll_until(
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(state) if Instant::now() > deadline => return Err(state),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Polls `check` until it returns `Ok`, or panics after `PATIENCE` with what it was waiting
/// for and the last state `check` reported.
async fn wait_until(what: &str, check: impl FnMut() -> Result<(), String>) {
    if let Err(state) = poll_until(PATIENCE, check).await {
        panic!("waited {PATIENCE:?} for {what}; {state}");
    }
}

async fn start_broker_and_consumer() -> (Broker, Arc<Mutex<Store>>, tokio::task::JoinHandle<()>) {
    let broker = Broker::start().await;
    let store = Arc::new(Mutex::new(Store::default()));
    let ready = Arc::new(Notify::new());
    let consumer = tokio::spawn(run_consumer(broker.port, store.clone(), ready.clone()));
    tokio::time::timeout(PATIENCE, ready.notified())
        .await
        .expect("the consumer subscribes");
    (broker, store, consumer)
}

// ---------------------------------------------------------------------------------------
// The nodes.

/// Cancels the in-process fleets when dropped: a failed assertion must not leave their
/// threads running, or the test's runtime would wait for them for ever.
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A `weir-fleet` process, killed if it still runs when dropped.
struct FleetProcess(Child);

impl Drop for FleetProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fleet_config(port: u16, data_dir: &Path, id: &str) -> FleetConfig {
    FleetConfig {
        host: "127.0.0.1".into(),
        port,
        credentials: Credentials::Anonymous,
        count: COUNT,
        seed: SEED,
        history: HISTORY,
        speed: SPEED,
        data_dir: data_dir.to_path_buf(),
        only: vec![id.to_string()],
        sample_log: true,
        ..FleetConfig::default()
    }
}

fn spawn_fleet_process(port: u16, data_dir: &Path, id: &str, log: &Path) -> FleetProcess {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_weir-fleet"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--count", &COUNT.to_string(), "--seed", &SEED.to_string()])
        .args(["--history", "30d", "--speed", &SPEED.to_string()])
        .args(["--only", id, "--sample-log"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(FleetProcess)
        .expect("starting weir-fleet")
}

/// Reading times a node wrote to one of its logs (`SAMPLED_LOG` or `SAMPLE_LOG`), in order.
fn logged(data_dir: &Path, id: &str, log: &str) -> Vec<i64> {
    let text = std::fs::read_to_string(data_dir.join(id).join(log)).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Readings in flash: each must arrive.
fn recorded(data_dir: &Path, id: &str) -> Vec<i64> {
    logged(data_dir, id, SAMPLE_LOG)
}

/// The times of `recorded` readings not stored yet.
fn not_arrived(store: &Store, data_dir: &Path, id: &str) -> Vec<i64> {
    let got: HashSet<i64> = store.times(id).into_iter().collect();
    recorded(data_dir, id)
        .into_iter()
        .filter(|t| !got.contains(t))
        .collect()
}

/// The reading the scenario gives `id` at `ts`, as the node computes and sends it.
fn expected(config: &FleetConfig, id: &str, ts: i64) -> Reading {
    let (timeline, _) =
        Timeline::load_or_create(&config.data_dir, config.history, config.speed).unwrap();
    let plan = Fleet::new(config.clone())
        .scenario(&timeline)
        .terminal(id)
        .unwrap()
        .clone();
    weir_node::calibrate(
        &plan.raw_at(ts),
        &plan.factory_config(),
        Timestamp::from_unix(ts),
    )
}

fn same_on_the_wire(q: Quantity, sent: f64, stored: f64) -> bool {
    if q == Quantity::Volume {
        sent == stored
    } else {
        widen(sent as f32) == stored
    }
}

/// Checks `id`'s readings against its logs and the scenario:
///
/// * every reading it had in flash arrived (recorded ⊆ stored);
/// * nothing arrived that it did not sample (stored ⊆ sampled);
/// * at most `kills` samples are missing: a node killed while taking a sample may lose that
///   one, which never reached flash; otherwise nothing sampled is lost;
/// * stored in ascending order (so none twice), each with the scenario's values.
fn check_against_the_logs(store: &Store, config: &FleetConfig, id: &str, kills: usize) {
    let dir = &config.data_dir;
    let times = store.times(id);
    let stored: BTreeSet<i64> = times.iter().copied().collect();
    let sampled: BTreeSet<i64> = logged(dir, id, SAMPLED_LOG).into_iter().collect();
    let recorded = recorded(dir, id);
    assert!(
        recorded.len() > 100,
        "{id} recorded only {} readings",
        recorded.len()
    );
    let lost: Vec<_> = recorded.iter().filter(|t| !stored.contains(t)).collect();
    assert!(
        lost.is_empty(),
        "{id} lost {} readings that were in flash: {lost:?}",
        lost.len()
    );
    let invented: Vec<_> = stored.iter().filter(|t| !sampled.contains(t)).collect();
    assert!(
        invented.is_empty(),
        "{id}: the gateway got readings the node never sampled: {invented:?}"
    );
    let unsent: Vec<_> = sampled.iter().filter(|t| !stored.contains(t)).collect();
    assert!(
        unsent.len() <= kills,
        "{id}: {} samples never arrived, with {kills} kills: {unsent:?}",
        unsent.len()
    );
    assert!(
        times.windows(2).all(|w| w[1] > w[0]),
        "{id}: readings stored out of order"
    );
    for r in &store.readings[id] {
        let want = expected(config, id, r.ts.unix());
        for q in Quantity::ALL {
            let ok = match (want.get(q), r.get(q)) {
                (Some(weir_contract::Sample::Value(a)), Some(weir_contract::Sample::Value(b))) => {
                    same_on_the_wire(q, a, b)
                }
                (a, b) => a == b,
            };
            assert!(
                ok,
                "{id} {} {q}: sent {:?}, expected {:?}",
                r.ts.unix(),
                r.get(q),
                want.get(q)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_reading_arrives_once_and_in_order_despite_a_cut_link_and_a_killed_node() {
    let (broker, store, consumer) = start_broker_and_consumer().await;
    let dirs = tempfile::tempdir().unwrap();
    let dir = |id: &str| -> PathBuf { dirs.path().join(format!("fleet-{id}")) };
    let ids = ["HY-001", "HY-002", "HY-003"];

    // HY-001 and HY-003 reach the broker through a proxy the test cuts; HY-002 directly.
    // HY-003 is a separate process that the test kills while its link is cut, so its queue
    // holds unacknowledged messages when it dies.
    let proxy = Proxy::start(broker.port).await;
    let cancel = CancellationToken::new();
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let mut fleets = Vec::new();
    for (id, port) in [("HY-001", proxy.port), ("HY-002", broker.port)] {
        let fleet = Fleet::new(fleet_config(port, &dir(id), id));
        fleets.push(tokio::spawn(fleet.run(cancel.clone())));
    }
    let child_log = dirs.path().join("weir-fleet.log");
    let mut child = spawn_fleet_process(proxy.port, &dir("HY-003"), "HY-003", &child_log);
    let child_output = || std::fs::read_to_string(&child_log).unwrap_or_default();

    // The nodes behind the proxy are up and acknowledged.
    wait_until("HY-001 and HY-003 to store three messages each", || {
        let store = store.lock().unwrap();
        let (a, c) = (store.messages("HY-001", 1), store.messages("HY-003", 1));
        if a >= 3 && c >= 3 {
            Ok(())
        } else {
            Err(format!("HY-001 {a}, HY-003 {c}\n{}", child_output()))
        }
    })
    .await;

    // Cut the link; HY-003 queues what it samples meanwhile, then dies.
    proxy.cut();
    let recorded_at_cut = recorded(&dir("HY-003"), "HY-003").len();
    wait_until("HY-003 to record 40 readings with its link cut", || {
        let n = recorded(&dir("HY-003"), "HY-003").len() - recorded_at_cut;
        if n >= 40 {
            Ok(())
        } else {
            Err(format!("{n} recorded"))
        }
    })
    .await;
    child.0.kill().unwrap(); // SIGKILL: no flush, no goodbye.
    child.0.wait().unwrap();
    let stored_before_kill = store.lock().unwrap().messages("HY-003", 1);
    assert!(
        stored_before_kill >= 3,
        "HY-003's first boot stored {stored_before_kill} messages before the kill"
    );

    // The link comes back; HY-003 restarts on its data directory.
    proxy.restore();
    let hy001_at_restore = recorded(&dir("HY-001"), "HY-001").last().copied();
    let mut child = spawn_fleet_process(proxy.port, &dir("HY-003"), "HY-003", &child_log);
    wait_until(
        "HY-003's old queue and new boot to arrive, HY-001 to catch up, 100 readings each",
        || {
            let store = store.lock().unwrap();
            let (old, new) = (store.messages("HY-003", 1), store.messages("HY-003", 2));
            let hy001_back = store.times("HY-001").last().copied() > hy001_at_restore;
            let fewest = ids
                .iter()
                .map(|id| recorded(&dir(id), id).len())
                .min()
                .unwrap_or(0);
            if old > stored_before_kill + 5 && new >= 3 && hy001_back && fewest > 100 {
                Ok(())
            } else {
                Err(format!(
                    "HY-003 boot 1: {old} messages ({stored_before_kill} before the kill), \
                     boot 2: {new}; HY-001 back: {hy001_back}; fewest recorded: {fewest}\n{}",
                    child_output()
                ))
            }
        },
    )
    .await;

    // Stop cleanly: each node batches and publishes what it holds, waits for the acks.
    cancel.cancel();
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for fleet in fleets {
        tokio::time::timeout(PATIENCE, fleet)
            .await
            .expect("the fleet stops")
            .unwrap()
            .unwrap();
    }
    let deadline = Instant::now() + PATIENCE;
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "weir-fleet did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Everything in flash arrives; if not, the checks below say what is missing.
    let _ = poll_until(PATIENCE, || {
        let store = store.lock().unwrap();
        let missing: usize = ids
            .iter()
            .map(|id| not_arrived(&store, &dir(id), id).len())
            .sum();
        if missing == 0 {
            Ok(())
        } else {
            Err(format!("{missing} missing"))
        }
    })
    .await;
    consumer.abort();

    let store = store.lock().unwrap();
    for id in ids {
        eprintln!(
            "{id}: {} readings stored, {} recorded, {} sampled, boots {:?}",
            store.times(id).len(),
            recorded(&dir(id), id).len(),
            logged(&dir(id), id, SAMPLED_LOG).len(),
            store.boots.get(id)
        );
    }
    eprintln!("messages resent: {}", store.resent);
    assert!(
        store.duplicates.is_empty(),
        "readings stored twice: {:?}",
        store.duplicates
    );
    assert!(
        proxy.severed.load(Ordering::SeqCst) >= 1,
        "the cut severed HY-001's connection"
    );
    for id in ids {
        // Only HY-003 was killed, once.
        let kills = usize::from(id == "HY-003");
        check_against_the_logs(&store, &fleet_config(0, &dir(id), id), id, kills);
    }
    // The nodes that were never stopped sampled every minute without a gap, the cut one too.
    for id in ["HY-001", "HY-002"] {
        let times = store.times(id);
        assert!(
            times.windows(2).all(|w| w[1] - w[0] == 60),
            "{id} has a gap"
        );
    }
    // The killed node came back with a new boot and sent its old boot's queue too: the
    // messages queued while its link was cut arrived after the restart.
    let boots = store.boots.get("HY-003");
    assert_eq!(
        boots.map(BTreeSet::len),
        Some(2),
        "HY-003's boots: {boots:?}"
    );
    let stored_boot_1 = store.messages("HY-003", 1);
    assert!(
        stored_boot_1 > stored_before_kill + 5,
        "boot 1 of HY-003: {stored_before_kill} messages before the kill, {stored_boot_1} in the end\n{}",
        child_output()
    );
    drop(broker);
}

/// The scenario's scripted reboot restarts the node: its boot counter goes from 1 to 2, the
/// second boot counts messages from 0 again, and nothing is lost across it: what was queued
/// or sampled before the reboot arrives, the readings pending at that moment in the second
/// boot's messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripted_reboot_starts_boot_2_and_loses_nothing() {
    let (broker, store, consumer) = start_broker_and_consumer().await;
    let dirs = tempfile::tempdir().unwrap();
    let data_dir = dirs.path().join("fleet");
    // The reboot comes at 40 % of the history: a day at 8000x reaches it in about 4 s.
    let history = Duration::from_secs(86_400);
    let speed = 8000.0;
    let (timeline, _) = Timeline::load_or_create(&data_dir, history, speed).unwrap();
    let mut config = FleetConfig {
        history,
        speed,
        ..fleet_config(broker.port, &data_dir, "")
    };
    let scenario = Fleet::new(config.clone()).scenario(&timeline);
    let (id, at) = scenario
        .terminals
        .iter()
        .find_map(|t| match t.fault {
            Some(ScriptedFault::Reboot { at }) => Some((t.id.to_string(), at)),
            _ => None,
        })
        .expect("the scenario has a scripted reboot");
    config.only = vec![id.clone()];

    let cancel = CancellationToken::new();
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let fleet = tokio::spawn(Fleet::new(config.clone()).run(cancel.clone()));
    wait_until("the second boot's first messages", || {
        let store = store.lock().unwrap();
        let (one, two) = (store.messages(&id, 1), store.messages(&id, 2));
        let fewest = recorded(&data_dir, &id).len();
        if one > 0 && two >= 3 && fewest > 100 {
            Ok(())
        } else {
            Err(format!(
                "{id} boot 1: {one} messages, boot 2: {two}, {fewest} recorded"
            ))
        }
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(PATIENCE, fleet)
        .await
        .expect("the fleet stops")
        .unwrap()
        .unwrap();
    let _ = poll_until(PATIENCE, || {
        let n = not_arrived(&store.lock().unwrap(), &data_dir, &id).len();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} missing"))
        }
    })
    .await;
    consumer.abort();

    let store = store.lock().unwrap();
    let boots = store.boots.get(&id);
    assert_eq!(
        boots.map(|b| b.iter().copied().collect::<Vec<_>>()),
        Some(vec![1, 2]),
        "{id}: the boot counter goes from 1 to 2 at the reboot"
    );
    assert_eq!(
        store.seqs.get(&(id.clone(), 2)).and_then(|s| s.first()),
        Some(&0),
        "{id}: the second boot counts messages from 0"
    );
    assert!(
        store.duplicates.is_empty(),
        "readings stored twice: {:?}",
        store.duplicates
    );
    // A reboot is a power cycle: a sample in hand at that moment may be lost, nothing else.
    check_against_the_logs(&store, &config, &id, 1);
    let boot_of = |t: i64| store.stored_by[&(id.clone(), t)].0;
    let times = store.times(&id);
    assert!(
        times.iter().filter(|&&t| t > at).all(|&t| boot_of(t) == 2),
        "{id}: a reading after the reboot at {at} in boot 1"
    );
    let carried = times
        .iter()
        .filter(|&&t| t <= at && boot_of(t) == 2)
        .count();
    assert!(
        carried >= 1,
        "{id}: no reading pending at the reboot at {at} came in the second boot's messages"
    );
    drop(broker);
}
