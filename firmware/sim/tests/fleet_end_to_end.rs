//! End to end: simulated nodes against a real Mosquitto broker, with a test consumer that
//! stores readings and acks them like the gateway does. One node's link is cut for a while
//! (through a proxy the test severs), another node runs as a `weir-fleet` process that is
//! killed with SIGKILL and started again on the same data directory. In the end every reading
//! the nodes recorded has arrived, in order per terminal, none twice, each with the values
//! the scenario gives for its time.

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
use weir_sim::{Credentials, Fleet, FleetConfig, Timeline, SAMPLE_LOG};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const SEED: u64 = 7;
const COUNT: usize = 3;
/// A month in the past at 2000x: the test never reaches real time, so publications keep
/// coming every 150 ms of wall time.
const HISTORY: Duration = Duration::from_secs(30 * 86_400);
const SPEED: f64 = 2000.0;

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
// The nodes.

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

fn spawn_fleet_process(port: u16, data_dir: &Path, id: &str, log: &Path) -> Child {
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
        .expect("starting weir-fleet")
}

/// Reading times each node wrote to its sample log.
fn recorded(data_dir: &Path, id: &str) -> Vec<i64> {
    let text = std::fs::read_to_string(data_dir.join(id).join(SAMPLE_LOG)).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The reading the scenario gives `id` at `ts`, as the node computes and sends it.
fn expected(data_dir: &Path, id: &str, ts: i64) -> Reading {
    let (timeline, _) = Timeline::load_or_create(data_dir, HISTORY, SPEED).unwrap();
    let fleet = Fleet::new(fleet_config(0, data_dir, id));
    let plan = fleet.scenario(&timeline).terminal(id).unwrap().clone();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_reading_arrives_once_and_in_order_despite_a_cut_link_and_a_killed_node() {
    let started = Instant::now();
    let broker = Broker::start().await;
    let store = Arc::new(Mutex::new(Store::default()));
    let ready = Arc::new(Notify::new());
    let consumer = tokio::spawn(run_consumer(broker.port, store.clone(), ready.clone()));
    tokio::time::timeout(Duration::from_secs(10), ready.notified())
        .await
        .expect("the consumer subscribes");

    let dirs = tempfile::tempdir().unwrap();
    let dir = |id: &str| -> PathBuf { dirs.path().join(format!("fleet-{id}")) };

    // HY-001 and HY-003 reach the broker through a proxy the test cuts; HY-002 directly.
    // HY-003 is a separate process that the test kills while its link is cut, so its queue
    // holds unacknowledged messages when it dies.
    let proxy = Proxy::start(broker.port).await;
    let cancel = CancellationToken::new();
    let mut fleets = Vec::new();
    for (id, port) in [("HY-001", proxy.port), ("HY-002", broker.port)] {
        let fleet = Fleet::new(fleet_config(port, &dir(id), id));
        fleets.push(tokio::spawn(fleet.run(cancel.clone())));
    }
    let child_log = dirs.path().join("weir-fleet.log");
    let mut child = spawn_fleet_process(proxy.port, &dir("HY-003"), "HY-003", &child_log);

    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.kill().unwrap(); // SIGKILL: no flush, no goodbye.
    child.wait().unwrap();
    let stored_before_kill = store.lock().unwrap().seqs[&("HY-003".to_string(), 1)].len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.restore();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut child = spawn_fleet_process(proxy.port, &dir("HY-003"), "HY-003", &child_log);
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Stop cleanly: each node batches and publishes what it holds, waits for the acks.
    cancel.cancel();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for fleet in fleets {
        tokio::time::timeout(Duration::from_secs(15), fleet)
            .await
            .expect("the fleet stops within 15 s")
            .unwrap()
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "weir-fleet did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Wait (bounded) until everything recorded has arrived.
    let ids = ["HY-001", "HY-002", "HY-003"];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let missing: usize = {
            let store = store.lock().unwrap();
            ids.iter()
                .map(|id| {
                    let got: HashSet<i64> = store
                        .readings
                        .get(*id)
                        .map(|rs| rs.iter().map(|r| r.ts.unix()).collect())
                        .unwrap_or_default();
                    recorded(&dir(id), id)
                        .iter()
                        .filter(|t| !got.contains(t))
                        .count()
                })
                .sum()
        };
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consumer.abort();

    let store = store.lock().unwrap();
    let log = std::fs::read_to_string(&child_log).unwrap_or_default();
    for id in ["HY-001", "HY-002", "HY-003"] {
        eprintln!(
            "{id}: {} readings stored, {} recorded, boots {:?}",
            store.readings.get(id).map_or(0, Vec::len),
            recorded(&dir(id), id).len(),
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
        let readings = &store.readings[id];
        let times: Vec<i64> = readings.iter().map(|r| r.ts.unix()).collect();
        let logged = recorded(&dir(id), id);
        assert!(
            logged.len() > 100,
            "{id} recorded only {} readings",
            logged.len()
        );
        let got: HashSet<i64> = times.iter().copied().collect();
        let lost: Vec<_> = logged.iter().filter(|t| !got.contains(t)).collect();
        assert!(
            lost.is_empty(),
            "{id} lost {} readings: {lost:?}\n{log}",
            lost.len()
        );
        assert!(
            times.windows(2).all(|w| w[1] > w[0]),
            "{id}: readings stored out of order"
        );
        for r in readings {
            let want = expected(&dir(id), id, r.ts.unix());
            for q in Quantity::ALL {
                let ok = match (want.get(q), r.get(q)) {
                    (
                        Some(weir_contract::Sample::Value(a)),
                        Some(weir_contract::Sample::Value(b)),
                    ) => same_on_the_wire(q, a, b),
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
    // The nodes that were never stopped sampled every minute without a gap, the cut one too.
    for id in ["HY-001", "HY-002"] {
        let times: Vec<i64> = store.readings[id].iter().map(|r| r.ts.unix()).collect();
        assert!(
            times.windows(2).all(|w| w[1] - w[0] == 60),
            "{id} has a gap"
        );
    }
    // The killed node came back with a new boot and sent its old boot's queue too: the
    // messages queued while its link was cut arrived after the restart.
    assert_eq!(
        store.boots["HY-003"].len(),
        2,
        "{:?}",
        store.boots["HY-003"]
    );
    let stored_boot_1 = store.seqs[&("HY-003".to_string(), 1)].len();
    assert!(
        stored_boot_1 > stored_before_kill + 5,
        "boot 1 of HY-003: {stored_before_kill} messages before the kill, {stored_boot_1} in the end"
    );
    drop(broker);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
