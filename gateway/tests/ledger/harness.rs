//! The ledger harness: a county of simulated nodes that write down every reading they take,
//! a real `weir serve` (and Mosquitto, VictoriaMetrics) in processes the test can kill, and the
//! count that compares what the nodes took with what the gateway's API returns.
//!
//! Ground truth, per terminal, in the fleet's data directory (`weir_sim::FleetConfig::
//! sample_log`): `sampled.log` (a sample's time, written before the node stores it),
//! `recorded.log` (once it is in the node's flash: from then on it must reach the gateway)
//! and `delivery.log` (each message's first publication and the ack that covered it).
//! What is stored is read through `GET /api/v1/terminals/{id}/readings`, never from the
//! database's tables.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use weir_contract::{widen, Quantity, Sample, Timestamp};
use weir_sim::{Credentials, Fleet, FleetConfig, Timeline, DELIVERY_LOG, SAMPLED_LOG, SAMPLE_LOG};
use weir_store::auth::{self, Role};
use weir_store::terminals::{self, NewTerminal};

use crate::support::{free_port, get, metric, rfc3339, wait_for_port};

pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// Whether to run the full sizes (`WEIR_LEDGER_FULL=1`) rather than the reduced CI ones.
pub fn full() -> bool {
    std::env::var("WEIR_LEDGER_FULL").is_ok_and(|v| v == "1")
}

/// `ci` in CI, `full` with `WEIR_LEDGER_FULL=1`.
pub fn size<T>(ci: T, full_size: T) -> T {
    if full() {
        full_size
    } else {
        ci
    }
}

/// Terminal ids of the scenario's first `n` terminals.
pub fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("HY-{i:03}")).collect()
}

/// A small seeded random number generator (xorshift), so a failing run can be repeated: the
/// seed is printed, and `WEIR_LEDGER_SEED` sets it.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        let seed = std::env::var("WEIR_LEDGER_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| weir_sim::wall_now_ms() as u64);
        eprintln!("ledger: random seed {seed} (WEIR_LEDGER_SEED={seed} repeats it)");
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A duration uniformly in `lo..hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_millis().max(1) as u64;
        lo + Duration::from_millis(self.next() % span)
    }
}

/// The gateway's data directory with the county's terminals registered (one node password
/// for all, to keep the setup fast) and an inspector's API token, made through the store's
/// public API before the gateway first starts.
pub struct Site {
    pub data: PathBuf,
    pub fleet_dir: PathBuf,
    pub password: String,
    pub token: String,
    pub ids: Vec<String>,
}

impl Site {
    pub fn new(data: PathBuf, fleet_dir: PathBuf, n: usize) -> Site {
        let store = weir_store::Store::open(&data.join("weir.db"), weir_store::Synchronous::Normal)
            .expect("creating the gateway's store");
        let password = auth::new_password();
        let hash = auth::hash_password(&password);
        let ids = ids(n);
        for id in &ids {
            let t = NewTerminal {
                id: id.clone(),
                name: format!("Terminal {id}"),
                ..Default::default()
            };
            store
                .with(|c| Ok(terminals::add(c, &t, &hash)))
                .unwrap()
                .unwrap();
        }
        let token = store
            .with(|c| auth::create_token(c, "ledger", Role::Inspector))
            .unwrap();
        Site {
            data,
            fleet_dir,
            password,
            token,
            ids,
        }
    }

    /// The fleet of this site against the broker on `port`, with its ground-truth logs.
    pub fn fleet(&self, port: u16, history: Duration, speed: f64) -> FleetConfig {
        FleetConfig {
            host: "127.0.0.1".into(),
            port,
            credentials: Credentials::Shared(self.password.clone()),
            count: self.ids.len(),
            history,
            speed,
            data_dir: self.fleet_dir.clone(),
            faults: false,
            sample_log: true,
            ..FleetConfig::default()
        }
    }
}

/// `weir serve` in a process of its own, started and killed by the test. Its log (at `warn`,
/// or `TEST_WEIR_LOG`) is kept, and its tail printed when the test fails.
pub struct Gateway {
    child: Option<Child>,
    env: Vec<(String, String)>,
    pub http: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    fn new(data: &Path, env: &[(&str, String)]) -> Gateway {
        let mut all = vec![
            ("WEIR_DATA_DIR".to_owned(), data.display().to_string()),
            ("WEIR_HTTP__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "WEIR_LOG".to_owned(),
                std::env::var("TEST_WEIR_LOG").unwrap_or("warn".into()),
            ),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Gateway {
            child: None,
            env: all,
            http: String::new(),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The gateway with its embedded broker listening on `mqtt_port`.
    pub fn embedded(data: &Path, mqtt_port: u16, env: &[(&str, String)]) -> Gateway {
        let mut all = vec![("WEIR_MQTT__LISTEN", format!("127.0.0.1:{mqtt_port}"))];
        all.extend(env.iter().cloned());
        Gateway::new(data, &all)
    }

    /// The gateway on an external broker (Mosquitto) on `broker_port`.
    pub fn external(data: &Path, broker_port: u16) -> Gateway {
        Gateway::new(
            data,
            &[
                ("WEIR_MQTT__BROKER", "external".into()),
                ("WEIR_MQTT__PORT", broker_port.to_string()),
                ("WEIR_MQTT__CLIENT_ID", "weir-gateway-ledger".into()),
            ],
        )
    }

    /// Starts `weir serve`; returns once it listens for HTTP, with how long that took.
    pub fn start(&mut self) -> Duration {
        assert!(self.child.is_none(), "the gateway runs already");
        let started = Instant::now();
        let mut c = Command::new(WEIR);
        // The harness's own settings are not the gateway's (it refuses unknown WEIR_ keys).
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WEIR_LEDGER_")) {
            c.env_remove(k);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let mut child = c
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting weir serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("weir: listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                if std::env::var("WEIR_LEDGER_DEBUG").is_ok() && !line.contains(" INFO ") {
                    eprintln!("gw: {line}");
                }
                log.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("weir serve did not start within 60 s"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "weir serve exited before listening: {}",
                    self.log.lock().unwrap().join("\n")
                )
            }
        };
        self.http = addr;
        started.elapsed()
    }

    /// SIGKILL: the gateway (and its embedded broker) vanish at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn term(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("the gateway runs");
        signal(c.id(), "-TERM");
        c.wait().unwrap()
    }

    /// Whether a line of its log so far contains `what`.
    pub fn logged(&self, what: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(what))
    }

    /// Its /metrics text.
    pub async fn metrics(&self) -> String {
        let (status, body) = get(&format!("{}/metrics", self.http), None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// One metric's value, if the gateway answers.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let url = format!("{}/metrics", self.http);
        let resp = reqwest::get(&url).await.ok()?;
        metric(&resp.text().await.ok()?, name)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("--- last lines of the gateway's log:");
            for l in &log[log.len().saturating_sub(80)..] {
                eprintln!("GW: {l}");
            }
        }
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

fn binary(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} is missing: install the Debian package {package} (`bash .ci/install` does)"
    );
    p
}

/// A server process the test restarts on the same port: Mosquitto or VictoriaMetrics.
pub struct Restartable {
    child: Option<Child>,
    pub port: u16,
    command: Box<dyn Fn() -> Command + Send>,
    what: &'static str,
    _dir: tempfile::TempDir,
}

impl Restartable {
    /// Mosquitto on a free port, without persistence: killed, it forgets every session.
    pub fn mosquitto() -> Restartable {
        let bin = binary("/usr/sbin/mosquitto", "mosquitto");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nmax_inflight_messages 1000\n"
            ),
        )
        .unwrap();
        Restartable {
            child: None,
            port,
            command: Box::new(move || {
                let mut c = Command::new(&bin);
                c.arg("-c").arg(&conf);
                c
            }),
            what: "mosquitto",
            _dir: dir,
        }
    }

    /// VictoriaMetrics (InfluxDB's v2 write API) on a free port, keeping its data across
    /// restarts.
    pub fn victoria_metrics() -> Restartable {
        let bin = binary("/usr/bin/victoria-metrics", "victoria-metrics");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let data = dir.path().to_owned();
        Restartable {
            child: None,
            port,
            command: Box::new(move || {
                let mut c = Command::new(&bin);
                c.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                    .arg(format!("-storageDataPath={}", data.display()))
                    .arg("-search.latencyOffset=0s");
                c
            }),
            what: "victoria-metrics",
            _dir: dir,
        }
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none());
        let child = (self.command)()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.what));
        self.child = Some(child);
        wait_for_port(self.port, self.what);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fleet running on the test's runtime (its nodes on threads of their own).
pub struct RunningFleet {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub config: FleetConfig,
}

impl RunningFleet {
    pub fn start(config: FleetConfig) -> RunningFleet {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(Fleet::new(config.clone()).run(cancel.clone()));
        RunningFleet {
            cancel,
            task,
            config,
        }
    }

    /// Stops the nodes cleanly: each batches what it sampled, publishes and waits up to 5 s
    /// for the acks. What is not acked stays in its flash (and is counted as lost below).
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the fleet stops within 60 s")
            .unwrap()
            .expect("the fleet ran");
    }
}

/// The fleet's timeline (made now if the fleet has not started yet).
pub fn timeline(config: &FleetConfig) -> Timeline {
    Timeline::load_or_create(&config.data_dir, config.history, config.speed)
        .unwrap()
        .0
}

/// Times one of a terminal's logs lists.
pub fn logged(config: &FleetConfig, id: &str, log: &str) -> Vec<i64> {
    let text = std::fs::read_to_string(config.data_dir.join(id).join(log)).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// One delivered message, from a node's `delivery.log`.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    pub boot: u32,
    pub seq: u32,
    pub readings: usize,
    pub published_ms: i64,
    pub acked_ms: i64,
    /// Its first and last reading's time.
    pub first_ts: i64,
    pub last_ts: i64,
}

impl Delivery {
    pub fn delay_ms(&self) -> i64 {
        self.acked_ms - self.published_ms
    }
}

pub fn deliveries(config: &FleetConfig, id: &str) -> Vec<Delivery> {
    let text =
        std::fs::read_to_string(config.data_dir.join(id).join(DELIVERY_LOG)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<i64> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (f.len() == 7).then(|| Delivery {
                boot: f[0] as u32,
                seq: f[1] as u32,
                readings: f[2] as usize,
                published_ms: f[3],
                acked_ms: f[4],
                first_ts: f[5],
                last_ts: f[6],
            })
        })
        .collect()
}

/// The stored readings of `id` in `from..to` through the API: (ts, the row as JSON), in the
/// order the API gives them.
pub async fn stored(
    http: &str,
    token: &str,
    id: &str,
    from: i64,
    to: i64,
) -> Option<Vec<(i64, serde_json::Value)>> {
    let url = format!(
        "{http}/api/v1/terminals/{id}/readings?from={}&to={}",
        rfc3339(from),
        rfc3339(to)
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let resp = client.get(&url).bearer_auth(token).send().await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    let v: serde_json::Value = resp.json().await.ok()?;
    let rows = v["readings"].as_array()?;
    Some(
        rows.iter()
            .map(|r| {
                let ts = Timestamp::parse_rfc3339(r["ts"].as_str().unwrap())
                    .unwrap()
                    .unix();
                (ts, r.clone())
            })
            .collect(),
    )
}

/// What the ledger found.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub terminals: usize,
    /// Samples taken.
    pub sampled: usize,
    /// Readings in the nodes' flash: each must be stored.
    pub recorded: usize,
    /// Rows the API returns.
    pub stored: usize,
    /// Recorded and not stored.
    pub lost: usize,
    /// Of those, readings whose message an ack covered: the node freed them.
    pub lost_after_ack: usize,
    /// Rows beyond one per sample: a timestamp twice, a time no sample had, or a row whose
    /// values are another sample's.
    pub doubled: usize,
    /// Samples taken and never stored (a sample a power cut or a kill interrupted before it
    /// reached flash), for information.
    pub unsent: usize,
    /// Up to 10 examples of what is wrong.
    pub examples: Vec<String>,
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} terminals: {} sampled, {} recorded in flash, {} stored; lost {} ({} of them \
             acknowledged), doubled {}, sampled but never stored {}",
            self.terminals,
            self.sampled,
            self.recorded,
            self.stored,
            self.lost,
            self.lost_after_ack,
            self.doubled,
            self.unsent
        )?;
        if !self.examples.is_empty() {
            write!(f, "; e.g. {}", self.examples.join("; "))?;
        }
        Ok(())
    }
}

/// The reading the node computed for `ts` (the scenario's sensors, its factory calibration).
fn expected(plan: &weir_sim::TerminalPlan, ts: i64) -> weir_contract::Reading {
    weir_node::calibrate(
        &plan.raw_at(ts),
        &plan.factory_config(),
        Timestamp::from_unix(ts),
    )
}

/// Whether the stored row holds the values the node sampled at its time.
fn same_values(plan: &weir_sim::TerminalPlan, ts: i64, row: &serde_json::Value) -> bool {
    let sent = expected(plan, ts);
    Quantity::ALL.iter().all(|q| match sent.get(*q) {
        Some(Sample::Value(v)) => {
            let want = if *q == Quantity::Volume {
                v
            } else {
                widen(v as f32)
            };
            row[q.field()].as_f64() == Some(want)
        }
        // A fault travels as a code; its value field is absent.
        Some(Sample::Fault(_)) | None => row[q.field()].is_null(),
    })
}

/// Counts, for every terminal of `config`, what its node took against what the API returns.
pub async fn tally(http: &str, token: &str, config: &FleetConfig) -> Option<Tally> {
    let timeline = timeline(config);
    let scenario = Fleet::new(config.clone()).scenario(&timeline);
    let mut t = Tally::default();
    for plan in &scenario.terminals {
        let id = plan.id.as_str();
        let sampled: BTreeSet<i64> = logged(config, id, SAMPLED_LOG).into_iter().collect();
        let recorded: BTreeSet<i64> = logged(config, id, SAMPLE_LOG).into_iter().collect();
        t.terminals += 1;
        t.sampled += sampled.len();
        t.recorded += recorded.len();
        let (Some(first), Some(last)) = (sampled.first(), sampled.last()) else {
            continue;
        };
        // Everything around the samples too: a reading stored outside them is doubled.
        let rows = stored(http, token, id, first - 86_400, last + 86_400).await?;
        t.stored += rows.len();
        let mut seen = BTreeMap::new();
        for (ts, row) in &rows {
            let n = seen.entry(*ts).or_insert(0usize);
            *n += 1;
            let problem = if *n > 1 {
                Some("stored twice")
            } else if !sampled.contains(ts) {
                Some("never sampled at that time")
            } else if !same_values(plan, *ts, row) {
                Some("not the values sampled at that time")
            } else {
                None
            };
            if let Some(p) = problem {
                t.doubled += 1;
                if t.examples.len() < 10 {
                    t.examples.push(format!("{id} {}: {p}", rfc3339(*ts)));
                }
            }
        }
        let acked = deliveries(config, id);
        for ts in &recorded {
            if !seen.contains_key(ts) {
                t.lost += 1;
                let ack = acked.iter().find(|d| (d.first_ts..=d.last_ts).contains(ts));
                if ack.is_some() {
                    t.lost_after_ack += 1;
                }
                if t.examples.len() < 10 {
                    let why = match ack {
                        Some(d) => {
                            format!("acknowledged (boot {} seq {}), not stored", d.boot, d.seq)
                        }
                        None => "in flash, never acknowledged, not stored".into(),
                    };
                    t.examples.push(format!("{id} {}: {why}", rfc3339(*ts)));
                }
            }
        }
        t.unsent += sampled.iter().filter(|ts| !seen.contains_key(ts)).count();
    }
    Some(t)
}

/// Counts until nothing recorded is missing, or `patience` runs out; the last count.
pub async fn settle(http: &str, token: &str, config: &FleetConfig, patience: Duration) -> Tally {
    let deadline = Instant::now() + patience;
    loop {
        let t = tally(http, token, config).await;
        if let Some(t) = &t {
            if t.lost == 0 || Instant::now() > deadline {
                return t.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the gateway's API did not answer the ledger's questions"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Asserts 0 lost, 0 doubled, and that the run meant something.
pub fn assert_clean(what: &str, t: &Tally) {
    eprintln!("ledger: {what}: {t}");
    assert!(t.recorded > 0, "{what}: the nodes recorded nothing");
    assert_eq!(t.lost, 0, "{what}: readings lost: {t}");
    assert_eq!(t.doubled, 0, "{what}: readings doubled: {t}");
}

/// The p-th percentile (0-100) of `v` (sorted here).
pub fn percentile(v: &mut [i64], p: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A size-limited tmpfs the test mounts (root only) and unmounts when dropped, even when the
/// test fails.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs for the gateway's data (run it as root, \
             as CI does): mount -t tmpfs -o size={size} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { path, _dir: dir }
    }

    /// Changes the file system's size (more space back, or less).
    pub fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -o remount,size={size}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// Fills what space is left with a file, so the next write finds the disk full.
    pub fn fill(&self) -> u64 {
        use std::io::Write as _;
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        // The last partial block.
        for _ in 0..16 {
            match f.write(&block[..4096]) {
                Ok(n) if n > 0 => written += n as u64,
                _ => break,
            }
        }
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
