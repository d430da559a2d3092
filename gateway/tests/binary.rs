//! The `weir` binary as an operator runs it.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::*;
use weir_contract::Message as _;
use weir_sim::ScriptedFault;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// A child process killed when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Killed {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// `weir` against Mosquitto on `broker_port`, data in `dir`. Its log (shown with a failing
/// test's output) is at `warn`, or at `TEST_WEIR_LOG` when set, to look into a failure.
fn weir(dir: &Path, broker_port: u16) -> Command {
    let mut c = Command::new(WEIR);
    c.env("WEIR_DATA_DIR", dir)
        .env("WEIR_MQTT__BROKER", "external")
        .env("WEIR_MQTT__PORT", broker_port.to_string())
        .env("WEIR_MQTT__CLIENT_ID", "weir-gateway-kill-test")
        .env("WEIR_HTTP__LISTEN", "127.0.0.1:0")
        .env(
            "WEIR_LOG",
            std::env::var("TEST_WEIR_LOG").unwrap_or("warn".into()),
        );
    c
}

fn output(mut c: Command) -> String {
    let out = c.output().expect("running weir");
    assert!(
        out.status.success(),
        "weir failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `weir serve`; returns the process and its HTTP address, read from its stderr.
fn serve(dir: &Path, broker_port: u16) -> (Killed, String) {
    serve_with(weir(dir, broker_port))
}

/// Starts `weir serve` from command `c` (environment set).
fn serve_with(mut c: Command) -> (Killed, String) {
    let mut child = c
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("weir serve printed its address")
            .unwrap();
        if let Some(addr) = line.strip_prefix("weir: listening on ") {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            eprintln!("GW: {l}")
        }
    });
    (Killed(child), addr)
}

async fn stored(addr: &str, token: &str, from: i64, to: i64) -> Option<BTreeSet<i64>> {
    let url = format!(
        "{addr}/api/v1/terminals/HY-009/readings?from={}&to={}",
        rfc3339(from),
        rfc3339(to)
    );
    let (status, body) = get(&url, Some(token)).await;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let ts = v["readings"].as_array()?.iter().map(|r| {
        weir_contract::Timestamp::parse_rfc3339(r["ts"].as_str().unwrap())
            .unwrap()
            .unix()
    });
    Some(ts.collect())
}

/// How the gateway is stopped mid-stream.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Stop {
    Kill,
    Term,
}

/// Stops `weir serve` with `how` once a node publishing 3000 readings has 1000 acknowledged,
/// restarts it, and checks that every reading arrives and none acknowledged was lost. A SIGTERM
/// must also exit 0 having stored and acknowledged everything it took: the node's last ack is
/// then the newest message in the store.
async fn stop_mid_stream_and_restart(how: Stop) {
    let broker = mosquitto("");
    let dir = tempfile::tempdir().unwrap();
    output({
        let mut c = weir(dir.path(), broker.port);
        c.args(["terminal", "add", "HY-009", "--name", "Kill test"]);
        c
    });
    let token = output({
        let mut c = weir(dir.path(), broker.port);
        c.args(["token", "create", "--role", "inspector"]);
        c
    })
    .trim()
    .to_owned();
    let (mut gateway, _) = serve(dir.path(), broker.port);

    // A node publishing 3000 readings and recording the acks: an ack covers every message of
    // its boot up to its seq.
    let acked = Arc::new(Mutex::new(None::<u32>));
    let mut opts = MqttOptions::new("kill-test-node", "127.0.0.1", broker.port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_inflight(50);
    let (client, mut events) = AsyncClient::new(opts, 100);
    client
        .subscribe("weir/terminals/HY-009/ack", QoS::AtLeastOnce)
        .await
        .unwrap();
    let seen = acked.clone();
    tokio::spawn(async move {
        while let Ok(ev) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                if let Ok(a) = weir_contract::Ack::decode(&p.payload) {
                    let mut seen = seen.lock().unwrap();
                    *seen = Some(seen.map_or(a.seq, |s| s.max(a.seq)));
                }
            }
        }
    });
    let total = 3000u32;
    let start = weir_store::now() - i64::from(total) * 10 - 60;
    let ts_of = move |seq: u32| start + i64::from(seq) * 10;
    let publisher = tokio::spawn(async move {
        for seq in 0..total {
            let payload = format!(
                r#"{{"boot":1,"seq":{seq},"readings":[{{"ts":"{}","flow_m3h":1.25}}]}}"#,
                rfc3339(ts_of(seq))
            );
            client
                .publish(
                    "weir/terminals/HY-009/telemetry",
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .unwrap();
            if seq % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        client
    });

    // Stop the gateway once a third of the readings are acknowledged.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().unwrap_or(0) < 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "no acks: is the gateway storing?"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    match how {
        Stop::Kill => gateway.kill().unwrap(),
        Stop::Term => sigterm(&gateway),
    }
    let status = gateway.wait().unwrap();
    if how == Stop::Term {
        assert!(
            status.success(),
            "weir serve exited with {status} after SIGTERM"
        );
        // What it committed, it acknowledged before it went: the retained ack reaches the node.
        let db = rusqlite::Connection::open(dir.path().join("weir.db")).unwrap();
        // One reading per message, at ts_of(seq).
        let newest_ts: i64 = db
            .query_row("SELECT max(ts) FROM readings", [], |r| r.get(0))
            .unwrap();
        let newest = u32::try_from((newest_ts - start) / 10).unwrap();
        assert_eq!(ts_of(newest), newest_ts);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while *acked.lock().unwrap() != Some(newest) {
            assert!(
                std::time::Instant::now() < deadline,
                "stored up to seq {newest}, acknowledged only {:?}",
                acked.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let acked_before_stop = acked.lock().unwrap().unwrap();
    assert!(
        acked_before_stop < total - 1,
        "the stop came too late to mean anything"
    );

    let (mut gateway, addr) = serve(dir.path(), broker.port);
    let _client = publisher.await.unwrap();
    let all: BTreeSet<i64> = (0..total).map(ts_of).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut missing = Vec::new();
    let got = loop {
        if let Some(got) = stored(&addr, &token, start, start + i64::from(total) * 10 + 1).await {
            if got == all {
                break got;
            }
            missing = (0..total).filter(|s| !got.contains(&ts_of(*s))).collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every reading arrived after the restart: {} missing, seqs {:?}...",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for seq in 0..=acked_before_stop {
        assert!(
            got.contains(&ts_of(seq)),
            "reading {seq} was acknowledged, then lost"
        );
    }
    assert_eq!(got.len(), total as usize);

    // An idle gateway stops cleanly too.
    sigterm(&gateway);
    let status = gateway.wait().unwrap();
    assert!(
        status.success(),
        "weir serve exited with {status} after SIGTERM"
    );
}

fn sigterm(process: &Child) {
    let pid = process.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_and_a_restart_lose_no_acknowledged_reading() {
    stop_mid_stream_and_restart(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_stores_and_acknowledges_what_it_took_then_exits_0() {
    stop_mid_stream_and_restart(Stop::Term).await;
}

#[test]
fn the_bootstrap_token_is_an_admin_token_and_nothing_else_is() {
    let broker = mosquitto("");
    let dir = tempfile::tempdir().unwrap();
    let secret = "bootstrap-secret-for-the-test-0123456789";
    let mut c = weir(dir.path(), broker.port);
    c.env("WEIR_BOOTSTRAP_TOKEN", secret);
    let (mut gateway, addr) = serve_with(c);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Admin-only: the dead letters and acting on alerts need operator or field; admin has all.
    let (status, body) = rt.block_on(get(&format!("{addr}/api/v1/dead-letters"), Some(secret)));
    assert_eq!(status, 200, "{body}");
    let (status, _) = rt.block_on(get(
        &format!("{addr}/api/v1/dead-letters"),
        Some("bootstrap-secret-for-the-test-012345678"),
    ));
    assert_eq!(status, 401);
    // Exactly the token: not with spaces around it.
    let (status, _) = rt.block_on(get(
        &format!("{addr}/api/v1/dead-letters"),
        Some(&format!(" {secret}")),
    ));
    assert_eq!(status, 401);
    sigterm(&gateway);
    assert!(gateway.wait().unwrap().success());
}

#[test]
fn a_bad_configuration_key_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(WEIR)
        .env("WEIR_DATA_DIR", dir.path())
        .env("WEIR_HTTP__LISTN", "127.0.0.1:1")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listn"), "{err}");
}

#[test]
fn weir_config_prints_a_file_that_weir_accepts() {
    let out = Command::new(WEIR).arg("config").output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weir.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[mqtt]") && text.contains("# "), "{text}");
    // Given with --config, and with WEIR_CONFIG, which is an option, not a configuration key.
    let by_flag = Command::new(WEIR)
        .env("WEIR_DATA_DIR", dir.path())
        .arg("--config")
        .arg(&file)
        .args(["terminal", "list"])
        .output()
        .unwrap();
    let by_env = Command::new(WEIR)
        .env("WEIR_DATA_DIR", dir.path())
        .env("WEIR_CONFIG", &file)
        .args(["terminal", "list"])
        .output()
        .unwrap();
    for listed in [by_flag, by_env] {
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
    }
}

#[test]
fn terminal_add_refuses_a_bad_id_and_a_duplicate_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let add = |id: &str| {
        Command::new(WEIR)
            .env("WEIR_DATA_DIR", dir.path())
            .args(["terminal", "add", id, "--name", "x"])
            .output()
            .unwrap()
    };
    let ok = add("HY-001");
    assert!(ok.status.success());
    let printed = String::from_utf8_lossy(&ok.stdout);
    assert!(
        printed.contains("node MQTT user name: HY-001") && printed.contains("password"),
        "{printed}"
    );
    let dup = add("HY-001");
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already registered"));
    let bad = add("HY 001");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("only letters"));
}

async fn get_json(http: &reqwest::Client, url: String) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// The README's run command, `cargo run --release -- demo`, as a new user meets it: it
/// prints where the dashboard is and a login, within a minute every simulated terminal has
/// readings, and every scripted fault raises its alert.
#[cfg(feature = "demo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_all_38_terminals_and_each_scripted_fault_raises_its_alert() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Killed(
        Command::new(WEIR)
            .env("WEIR_HTTP__LISTEN", "127.0.0.1:0")
            .env("WEIR_MQTT__LISTEN", "127.0.0.1:0")
            .env("WEIR_LOG", "warn")
            .args(["demo", "--data-dir"])
            .arg(dir.path())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut url, mut login) = (None, None);
    while url.is_none() || login.is_none() {
        let line = lines
            .next()
            .expect("weir demo printed its address and login")
            .unwrap();
        if let Some(u) = line.trim().strip_prefix("dashboard:") {
            url = Some(u.trim().trim_end_matches('/').to_owned());
        }
        if let Some(l) = line.trim().strip_prefix("login:") {
            login = Some(l.trim().to_owned());
        }
    }
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            eprintln!("GW: {l}")
        }
    });
    let (url, login) = (url.unwrap(), login.unwrap());
    let (user, password) = login.split_once(" / ").expect("login is `user / password`");
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let resp = http
        .post(format!("{url}/api/v1/login"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the printed login does not work");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // The fleet replays the last week first: ask for all of it.
    let from = rfc3339(weir_store::now() - 8 * 86_400);
    let with_data = loop {
        let terminals: serde_json::Value = get_json(&http, format!("{url}/api/v1/terminals")).await;
        let ids: Vec<String> = terminals
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 38);
        let mut with_data = 0;
        for id in &ids {
            let body: serde_json::Value = get_json(
                &http,
                format!("{url}/api/v1/terminals/{id}/readings?from={from}"),
            )
            .await;
            if !body["readings"].as_array().unwrap().is_empty() {
                with_data += 1;
            }
        }
        if with_data == 38 || std::time::Instant::now() > deadline {
            break with_data;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(with_data, 38, "terminals with readings after a minute");

    // Each scripted fault of the scenario raises the alert an operator should see, still
    // active once the replay is over; a reboot loses nothing and raises nothing. No other
    // terminal is offline, stuck or faulty.
    let scenario = weir_sim::Scenario::new(1, 38, 0, 7 * 86_400);
    let mut expected = BTreeSet::new();
    for plan in &scenario.terminals {
        let rule = match plan.fault {
            Some(ScriptedFault::StuckFlow { .. }) => "stuck_sensor",
            Some(ScriptedFault::DeadLink { .. }) => "offline",
            Some(ScriptedFault::FouledTurbidity { .. }) => "turbidity",
            Some(ScriptedFault::OverdueSludge) => "desludge",
            Some(ScriptedFault::FailedTurbidity { .. }) => "sensor_fault",
            Some(ScriptedFault::Reboot { .. }) | None => continue,
        };
        expected.insert((plan.id.as_str().to_owned(), rule.to_owned()));
    }
    assert_eq!(
        expected.len(),
        5,
        "the scenario scripts five alerting faults"
    );
    // The dead link starts an hour before the replay ends: the last will arrives, and the
    // offline alert follows it by the grace period (60 s) on the gateway's clock.
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let (missing, unexpected) = loop {
        let alerts: serde_json::Value = get_json(
            &http,
            format!("{url}/api/v1/alerts?state=active&limit=1000"),
        )
        .await;
        let active: BTreeSet<(String, String)> = alerts
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["terminal"].as_str().unwrap().to_owned(),
                    a["rule"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let missing: Vec<_> = expected.difference(&active).cloned().collect();
        let unexpected: Vec<_> = active
            .iter()
            .filter(|(t, r)| {
                ["offline", "stuck_sensor", "sensor_fault"].contains(&r.as_str())
                    && !expected.contains(&(t.clone(), r.clone()))
            })
            .cloned()
            .collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break (missing, unexpected);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    assert!(
        missing.is_empty(),
        "scripted faults without their alert: {missing:?}"
    );
    assert!(
        unexpected.is_empty(),
        "alerts no fault explains: {unexpected:?}"
    );

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        child.wait().unwrap().success(),
        "weir demo did not stop cleanly on Ctrl-C"
    );
}
