//! Two gateways (`weir serve` processes) behind one Mosquitto, the terminals divided between
//! them, readings forwarded to VictoriaMetrics. One is killed (SIGKILL) mid-stream; the other
//! takes its terminals over; the killed one comes back and takes them back. Nothing is lost
//! or doubled (docs/scale-out.md):
//!
//! * lost: a reading a node sampled that is missing from VictoriaMetrics once both members
//!   have forwarded everything they stored, or still queued on its node at the end;
//! * doubled: a reading counted more than once by the fleet-wide store (a count over its
//!   series), or stored with a timestamp or value the node did not sample.
//!
//! Size: `CLUSTER_TEST_MESSAGES` messages per node (default 300, one every 50 ms);
//! `CLUSTER_TEST_IDLE` registered terminals that send nothing (default 2,200).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::*;
use weir_contract::Message as _;
use weir_gateway::cluster::{owner, Announce};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const TOKEN: &str = "cluster-test-admin-token-0123456789abcdef";
const TAKEOVER_AFTER_S: u64 = 2;
/// Registered terminals that send nothing, unless `CLUSTER_TEST_IDLE` says otherwise.
const IDLE_TERMINALS: usize = 2200;

/// A child process killed when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `weir serve` as member `name` of the cluster {a, b}; returns it and its HTTP address.
fn serve(name: &str, dir: &Path, broker: u16, vm: u16) -> (Killed, String) {
    let mut child = Command::new(WEIR)
        .env("WEIR_DATA_DIR", dir)
        .env("WEIR_MQTT__BROKER", "external")
        .env("WEIR_MQTT__PORT", broker.to_string())
        .env("WEIR_MQTT__CLIENT_ID", "weir-cluster-test")
        .env("WEIR_HTTP__LISTEN", "127.0.0.1:0")
        .env("WEIR_STORE__SYNCHRONOUS", "normal")
        .env("WEIR_CLUSTER__ENABLED", "true")
        .env("WEIR_CLUSTER__INSTANCE", name)
        .env("WEIR_CLUSTER__MEMBERS", r#"["a", "b"]"#)
        .env(
            "WEIR_CLUSTER__TAKEOVER_AFTER_S",
            TAKEOVER_AFTER_S.to_string(),
        )
        .env("WEIR_INFLUX__ENABLED", "true")
        .env("WEIR_INFLUX__URL", format!("http://127.0.0.1:{vm}"))
        .env("WEIR_INFLUX__MAX_BACKOFF_S", "1")
        .env("WEIR_BOOTSTRAP_TOKEN", TOKEN)
        .env(
            "WEIR_LOG",
            std::env::var("TEST_WEIR_LOG").unwrap_or("warn".into()),
        )
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting weir serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("weir serve ({name}) printed no address"))
            .unwrap();
        eprintln!("GW-{name}: {line}");
        if let Some(addr) = line.strip_prefix("weir: listening on ") {
            break addr.to_owned();
        }
    };
    let name = name.to_owned();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            eprintln!("GW-{name}: {l}")
        }
    });
    (Killed(child), addr)
}

/// VictoriaMetrics with `-dedup.minScrapeInterval=1ms`: a point written again with the same
/// series and timestamp counts once, as in InfluxDB (docs/scale-out.md). Returns it, its port
/// and its data directory.
fn victoria_metrics_deduplicating() -> (Killed, u16, tempfile::TempDir) {
    let bin = "/usr/bin/victoria-metrics";
    assert!(
        Path::new(bin).exists(),
        "{bin} is missing: install the Debian package victoria-metrics (`bash .ci/install` does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", dir.path().display()))
        .arg("-search.latencyOffset=0s")
        .arg("-dedup.minScrapeInterval=1ms")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting victoria-metrics");
    wait_for_port(port, "victoria-metrics");
    (Killed(child), port, dir)
}

/// What a simulated node holds: readings sampled, messages not yet acked.
#[derive(Default)]
struct NodeState {
    /// seq -> (ts, flow) of every reading sampled.
    sampled: BTreeMap<u32, (i64, f64)>,
    /// seq -> payload of messages not yet acked (the node's flash queue).
    queue: BTreeMap<u32, String>,
    /// Highest seq acked.
    acked: Option<u32>,
    /// When an ack last freed a message.
    progress: Option<Instant>,
}

/// A node publishes its whole queue again when acks have not advanced for this long (the
/// firmware's `resend_ms`); longer than this test, so what it checks is done without it.
const RESEND: Duration = Duration::from_secs(60);

/// A node as the firmware behaves: one message (one reading) per period, QoS 1, a persistent
/// session, each message kept until an ack covers it, the queue sent again on reconnect.
fn node(id: String, port: u16, messages: u32, start_ts: i64) -> Arc<Mutex<NodeState>> {
    let state = Arc::new(Mutex::new(NodeState::default()));
    let mut opts = MqttOptions::new(format!("node-{id}"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_inflight(100);
    let (client, mut events) = AsyncClient::new(opts, 1000);
    let topic = format!("weir/terminals/{id}/telemetry");
    let (st, c, t) = (state.clone(), client.clone(), topic.clone());
    tokio::spawn(async move {
        let mut first = true;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = c
                        .subscribe(format!("weir/terminals/{id}/ack"), QoS::AtLeastOnce)
                        .await;
                    if !first {
                        let again: Vec<String> =
                            st.lock().unwrap().queue.values().cloned().collect();
                        for p in again {
                            let _ = c.publish(&t, QoS::AtLeastOnce, false, p).await;
                        }
                    }
                    first = false;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(a) = weir_contract::Ack::decode(&p.payload) {
                        let mut s = st.lock().unwrap();
                        let before = s.queue.len();
                        s.queue.retain(|seq, _| *seq > a.seq);
                        if s.queue.len() < before {
                            s.progress = Some(Instant::now());
                        }
                        s.acked = Some(s.acked.map_or(a.seq, |x| x.max(a.seq)));
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    let (st, c, t) = (state.clone(), client.clone(), topic.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let again: Vec<String> = {
                let mut s = st.lock().unwrap();
                let since = *s.progress.get_or_insert_with(Instant::now);
                if s.queue.is_empty() || since.elapsed() < RESEND {
                    continue;
                }
                s.progress = Some(Instant::now());
                s.queue.values().cloned().collect()
            };
            for p in again {
                let _ = c.publish(&t, QoS::AtLeastOnce, false, p).await;
            }
        }
    });
    let st = state.clone();
    tokio::spawn(async move {
        for seq in 0..messages {
            let ts = start_ts + i64::from(seq) * 10;
            let flow = f64::from(seq % 400) / 8.0;
            let payload = format!(
                r#"{{"boot":1,"seq":{seq},"readings":[{{"ts":"{}","flow_m3h":{flow}}}]}}"#,
                rfc3339(ts)
            );
            {
                let mut s = st.lock().unwrap();
                s.sampled.insert(seq, (ts, flow));
                s.queue.insert(seq, payload.clone());
            }
            let _ = client
                .publish(&topic, QoS::AtLeastOnce, false, payload)
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    state
}

/// Publishes one message of terminal `id` until the gateway acknowledges it: a member's
/// session is subscribed once a terminal of it is acknowledged (what nodes send before a
/// session's first subscription, the broker drops).
async fn probe(port: u16, id: &str) {
    let mut opts = MqttOptions::new(format!("probe-{id}"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 100);
    client
        .subscribe(format!("weir/terminals/{id}/ack"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let payload = format!(
        r#"{{"boot":1,"seq":0,"readings":[{{"ts":"{}","flow_m3h":1.0}}]}}"#,
        rfc3339(weir_store::now() - 3600)
    );
    let t0 = Instant::now();
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            client
                .publish(
                    format!("weir/terminals/{id}/telemetry"),
                    QoS::AtLeastOnce,
                    false,
                    payload.clone(),
                )
                .await
                .unwrap();
            next = Instant::now() + Duration::from_millis(200);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{id}: no ack within 30 s: is its member subscribed?"
        );
        if let Ok(Ok(Event::Incoming(Packet::Publish(p)))) =
            tokio::time::timeout(Duration::from_millis(50), events.poll()).await
        {
            if weir_contract::Ack::decode(&p.payload).is_ok() {
                return;
            }
        }
    }
}

/// The members' announcements, as the broker has them.
fn watch_members(port: u16) -> Arc<Mutex<BTreeMap<String, Announce>>> {
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let mut opts = MqttOptions::new("cluster-test-observer", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 100);
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client
                        .subscribe("weir/cluster/members/+", QoS::AtLeastOnce)
                        .await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let name = p.topic.rsplit('/').next().unwrap().to_owned();
                    let mut s = s.lock().unwrap();
                    if p.payload.is_empty() {
                        s.remove(&name);
                    } else if let Ok(a) = serde_json::from_slice::<Announce>(&p.payload) {
                        s.insert(name, a);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    seen
}

/// Waits until `f` holds of the announcements; returns how long it took.
async fn until(
    members: &Arc<Mutex<BTreeMap<String, Announce>>>,
    secs: u64,
    what: &str,
    f: impl Fn(&BTreeMap<String, Announce>) -> bool,
) -> Duration {
    let t0 = Instant::now();
    loop {
        if f(&members.lock().unwrap()) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what} not within {secs} s; members: {:?}",
            members.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn holds(m: &BTreeMap<String, Announce>, name: &str, sessions: &[&str]) -> bool {
    m.get(name).is_some_and(|a| {
        a.holds
            .iter()
            .map(String::as_str)
            .eq(sessions.iter().copied())
    })
}

async fn metric_of(addr: &str, name: &str) -> Option<f64> {
    let (status, body) = get(&format!("{addr}/metrics"), Some(TOKEN)).await;
    (status == 200).then(|| metric(&body, name)).flatten()
}

/// VictoriaMetrics' samples of `weir_flow_m3h` per terminal: ts -> values.
async fn vm_samples(port: u16) -> BTreeMap<String, BTreeMap<i64, Vec<f64>>> {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/export?match[]=weir_flow_m3h&start=2020-01-01T00:00:00Z"
    );
    let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let mut out: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for l in body.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let t = v["metric"]["terminal"].as_str().unwrap().to_owned();
        let e = out.entry(t).or_default();
        for (ts, val) in v["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(v["values"].as_array().unwrap())
        {
            e.entry(ts.as_i64().unwrap() / 1000)
                .or_default()
                .push(val.as_f64().unwrap());
        }
    }
    out
}

/// What the fleet-wide store answers when asked how many readings a terminal has: the count a
/// dashboard sees.
async fn vm_count(port: u16, terminal: &str, from: i64, to: i64) -> f64 {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=count_over_time(weir_flow_m3h{{terminal=%22{terminal}%22}}[{}s])&time={}",
        to - from + 1,
        to
    );
    let v: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

/// Readings (terminal, ts) in one member's database.
fn readings_in(dir: &Path) -> BTreeSet<(String, i64)> {
    let db = rusqlite::Connection::open(dir.join("weir.db")).unwrap();
    let mut st = db
        .prepare("SELECT t.id, r.ts FROM readings r JOIN terminals t ON t.key = r.terminal")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// How member a leaves mid-stream.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Leave {
    /// SIGKILL: its connections drop; its last will says it is gone.
    Kill,
    /// SIGTERM: it stops its session cleanly (commits and acknowledges what it took) and
    /// clears its announcement.
    Term,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_is_taken_over_and_nothing_is_lost_or_doubled() {
    leave_mid_stream_and_come_back(Leave::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stopped_with_sigterm_is_taken_over_and_nothing_is_stored_twice() {
    leave_mid_stream_and_come_back(Leave::Term).await;
}

/// Member a leaves `how` once a quarter of its terminals' messages are acknowledged; b takes
/// its session over; a comes back and takes it back; nothing is lost or doubled.
async fn leave_mid_stream_and_come_back(how: Leave) {
    let messages: u32 = std::env::var("CLUSTER_TEST_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let broker = mosquitto("");
    let (_vm, vm, _vm_dir) = victoria_metrics_deduplicating();

    // Three terminals of each member, registered on both (docs/scale-out.md).
    let mut ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in 100.. {
        let id = format!("HY-{i}");
        let m = owner(["a", "b"], &id).unwrap();
        let v = ids.entry(m).or_default();
        if v.len() < 3 {
            v.push(id);
        }
        if ids.values().map(Vec::len).sum::<usize>() == 6 {
            break;
        }
    }
    let all: Vec<String> = ids.values().flatten().cloned().collect();
    // And one more of each, to see that its session is subscribed.
    let probes: Vec<String> = ["a", "b"]
        .iter()
        .map(|m| {
            (0..)
                .map(|i| format!("PR-{i}"))
                .find(|id| owner(["a", "b"], id) == Some(*m))
                .unwrap()
        })
        .collect();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // And terminals that send nothing, enough that each member subscribes in several packets
    // (1,000 filters each).
    let idle_n: usize = std::env::var("CLUSTER_TEST_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(IDLE_TERMINALS);
    let idle: Vec<String> = (0..idle_n).map(|i| format!("ID-{i:05}")).collect();
    let registered: Vec<&String> = all.iter().chain(&probes).chain(&idle).collect();
    let of_a = registered
        .iter()
        .filter(|id| owner(["a", "b"], id) == Some("a"))
        .count();
    for dir in &dirs {
        let store =
            weir_store::Store::open(&dir.path().join("weir.db"), weir_store::Synchronous::Normal)
                .unwrap();
        let mut conn = store.connect().unwrap();
        let tx = conn.transaction().unwrap();
        for id in &registered {
            let t = weir_store::terminals::NewTerminal {
                id: id.to_string(),
                name: format!("Terminal {id}"),
                ..Default::default()
            };
            weir_store::terminals::add(&tx, &t, "unused: external broker").unwrap();
        }
        tx.commit().unwrap();
    }

    let members = watch_members(broker.port);
    let started = Instant::now();
    let (mut a, a_first) = serve("a", dirs[0].path(), broker.port, vm);
    let (_b, b_addr) = serve("b", dirs[1].path(), broker.port, vm);
    until(&members, 20, "each member holding its own session", |m| {
        holds(m, "a", &["a"]) && holds(m, "b", &["b"])
    })
    .await;
    assert_eq!(members.lock().unwrap()["a"].terminals, of_a);
    for p in &probes {
        probe(broker.port, p).await;
    }
    eprintln!(
        "start: both members' sessions subscribed ({} terminals registered, {of_a} of them a's) \
         {:?} after their processes started",
        registered.len(),
        started.elapsed()
    );

    let start_ts = weir_store::now() - 86_400;
    let nodes: BTreeMap<String, Arc<Mutex<NodeState>>> = all
        .iter()
        .map(|id| {
            (
                id.clone(),
                node(id.clone(), broker.port, messages, start_ts),
            )
        })
        .collect();

    // Kill a once a quarter of its terminals' messages are acknowledged.
    let t0 = Instant::now();
    while ids["a"]
        .iter()
        .any(|id| nodes[id].lock().unwrap().acked.unwrap_or(0) < messages / 4)
    {
        if t0.elapsed() > Duration::from_secs(60) {
            let acked: Vec<_> = nodes
                .iter()
                .map(|(id, n)| (id, n.lock().unwrap().acked))
                .collect();
            panic!(
                "a's terminals are not acknowledged: acked {acked:?}; a stored {:?} readings",
                metric_of(&a_first, "weir_readings_stored_total").await
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match how {
        Leave::Kill => a.0.kill().unwrap(),
        Leave::Term => {
            let pid = a.0.id().to_string();
            assert!(Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success());
        }
    }
    let status = a.0.wait().unwrap();
    if how == Leave::Term {
        assert!(status.success(), "a exited with {status} after SIGTERM");
    }
    let took = until(&members, 30, "b taking a's session over", |m| {
        !m.contains_key("a") && holds(m, "b", &["a", "b"])
    })
    .await;
    eprintln!("takeover ({how:?}): b held a's session {took:?} after a left");
    assert!(
        took < Duration::from_secs(TAKEOVER_AFTER_S + 5),
        "takeover took {took:?}"
    );
    // Before a comes back, b has stored what a's terminals sent while a was dying and gone:
    // what was in flight to a and what queued in a's session (nodes resend only after a
    // reconnect of their own, which does not happen here), and goes on acknowledging them.
    let sampled_at_kill: BTreeMap<String, i64> = ids["a"]
        .iter()
        .map(|id| {
            let n = nodes[id].lock().unwrap();
            (
                id.clone(),
                n.sampled.values().map(|(ts, _)| *ts).max().unwrap(),
            )
        })
        .collect();
    let acked_at_kill: BTreeMap<String, Option<u32>> = ids["a"]
        .iter()
        .map(|id| (id.clone(), nodes[id].lock().unwrap().acked))
        .collect();
    let t1 = Instant::now();
    loop {
        let stored: BTreeSet<(String, i64)> = readings_in(dirs[0].path())
            .union(&readings_in(dirs[1].path()))
            .cloned()
            .collect();
        let missing: Vec<(String, i64)> = ids["a"]
            .iter()
            .flat_map(|id| {
                let n = nodes[id].lock().unwrap();
                n.sampled
                    .values()
                    .filter(|(ts, _)| *ts <= sampled_at_kill[id])
                    .filter(|(ts, _)| !stored.contains(&(id.clone(), *ts)))
                    .map(|(ts, _)| (id.clone(), *ts))
                    .collect::<Vec<_>>()
            })
            .collect();
        let acking = ids["a"]
            .iter()
            .all(|id| nodes[id].lock().unwrap().acked > acked_at_kill[id]);
        if missing.is_empty() && acking {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "a's terminals after the takeover: readings sent before the kill not stored by \
             either member: {} (first {:?}); acked since the kill: {acking}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // a comes back and takes its terminals back from b, while the nodes go on sending.
    let (_a, a_addr) = serve("a", dirs[0].path(), broker.port, vm);
    let back = until(&members, 30, "a holding its session again", |m| {
        holds(m, "a", &["a"]) && holds(m, "b", &["b"])
    })
    .await;
    eprintln!("handover ({how:?}): a held its session again {back:?} after its restart");
    assert!(
        nodes.values().any(|n| {
            let n = n.lock().unwrap();
            (n.sampled.len() as u32) < messages
        }),
        "the nodes had finished before the handover: nothing was tested mid-stream"
    );

    // Every node's queue drains, within 30 s of its last sample.
    let mut t2 = Instant::now();
    loop {
        if nodes
            .values()
            .any(|n| (n.lock().unwrap().sampled.len() as u32) < messages)
        {
            t2 = Instant::now();
        }
        let pending: Vec<(String, usize, Option<u32>)> = nodes
            .iter()
            .filter_map(|(id, n)| {
                let n = n.lock().unwrap();
                (n.sampled.len() as u32 != messages || !n.queue.is_empty())
                    .then(|| (id.clone(), n.queue.len(), n.acked))
            })
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(
            t2.elapsed() < Duration::from_secs(30),
            "node queues not drained 30 s after the last sample (terminal, queued, acked): \
             {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both members forward all they stored.
    for addr in [&a_addr, &b_addr] {
        let t3 = Instant::now();
        while metric_of(addr, "weir_forward_lag_readings").await != Some(0.0) {
            assert!(
                t3.elapsed() < Duration::from_secs(30),
                "{addr} did not forward everything"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        metric_of(&b_addr, "weir_cluster_takeovers_total").await,
        Some(1.0)
    );
    assert_eq!(
        metric_of(&a_addr, "weir_cluster_owned_terminals").await,
        Some(of_a as f64)
    );

    // Lost and doubled, in the fleet-wide store.
    let end_ts = start_ts + i64::from(messages) * 10;
    let t4 = Instant::now();
    let samples = loop {
        let s = vm_samples(vm).await;
        let complete = all
            .iter()
            .all(|id| s.get(id).is_some_and(|m| m.len() == messages as usize));
        if complete || t4.elapsed() > Duration::from_secs(20) {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut raw_duplicates = 0;
    for (id, n) in &nodes {
        let node_sampled = n.lock().unwrap().sampled.clone();
        let got = samples.get(id).cloned().unwrap_or_default();
        let lost: Vec<u32> = node_sampled
            .iter()
            .filter(|(_, (ts, _))| !got.contains_key(ts))
            .map(|(s, _)| *s)
            .collect();
        assert!(
            lost.is_empty(),
            "{id}: {} readings lost, seqs {:?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        );
        let sampled: BTreeMap<i64, f64> = node_sampled.values().copied().collect();
        for (ts, values) in &got {
            let want = sampled.get(ts);
            assert!(
                want.is_some(),
                "{id}: a reading at {ts} that was never sampled"
            );
            assert!(
                values.iter().all(|v| Some(v) == want),
                "{id}: at {ts} VictoriaMetrics holds {values:?}, the node sampled {want:?}"
            );
            raw_duplicates += values.len() - 1;
        }
        let count = vm_count(vm, id, start_ts, end_ts).await;
        assert_eq!(
            count, messages as f64,
            "{id}: the fleet-wide store counts {count} readings, the node sampled {messages}"
        );
    }

    // Each member's database holds each reading at most once (unique terminal and time);
    // together they hold every reading. Those both hold were stored by a just before it was
    // killed and again by b, or taken by b before the handover had reached a.
    let fleet = |r: BTreeSet<(String, i64)>| -> BTreeSet<(String, i64)> {
        r.into_iter().filter(|(t, _)| all.contains(t)).collect()
    };
    let in_a = fleet(readings_in(dirs[0].path()));
    let in_b = fleet(readings_in(dirs[1].path()));
    let union: BTreeSet<_> = in_a.union(&in_b).cloned().collect();
    assert_eq!(union.len(), all.len() * messages as usize);
    let both: Vec<_> = in_a.intersection(&in_b).collect();
    eprintln!(
        "readings ({how:?}): {} sampled; a stored {}, b stored {}, both {}; samples beyond one per reading in VictoriaMetrics's export: {raw_duplicates}",
        all.len() * messages as usize,
        in_a.len(),
        in_b.len(),
        both.len()
    );
    // b's own terminals never moved: only a's can be in both.
    assert!(
        both.iter().all(|(t, _)| ids["a"].contains(t)),
        "b's own terminals' readings in a's database: {both:?}"
    );
    // And only those sent before the kill (committed by a, not yet acknowledged, then stored
    // by b): the handover back, a clean stop, stores nothing twice; nor does a SIGTERM.
    assert!(
        both.iter().all(|(t, ts)| *ts <= sampled_at_kill[t]),
        "readings sent after the kill in both databases: {both:?}"
    );
    if how == Leave::Term {
        assert!(
            both.is_empty(),
            "after a clean stop, in both databases: {both:?}"
        );
    }
}
