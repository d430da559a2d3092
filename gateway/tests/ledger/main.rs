//! The ledger: every reading the simulated nodes took is stored exactly once, under faults.
//!
//! Each test runs a fleet of simulated nodes (the real node core, flash in files) against a
//! real `weir serve`, breaks something, and then counts: every reading a node had in flash is
//! returned by the gateway's API (0 lost), and the API returns nothing twice, nothing at a time
//! no sample had, and no row with another sample's values (0 doubled). docs/reliability.md
//! describes each scenario and its figures.
//!
//! Reduced sizes by default (CI); `WEIR_LEDGER_FULL=1` runs the full ones:
//! `WEIR_LEDGER_FULL=1 cargo test --release -p weir-gateway --test ledger -- --nocapture --test-threads 1`

#[path = "../support/mod.rs"]
mod support;

mod harness;

use std::time::{Duration, Instant};

use harness::*;
use support::free_port;

/// How long the count may wait for the last acks to land after the fleet stopped.
const PATIENCE: Duration = Duration::from_secs(120);

/// A data directory and a fleet directory in one temporary directory.
/// `WEIR_LEDGER_KEEP=1` keeps it, to look into a failure (its path is printed).
fn dirs() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let mut dir = tempfile::tempdir().unwrap();
    if std::env::var("WEIR_LEDGER_KEEP").is_ok_and(|v| v == "1") {
        dir.disable_cleanup(true);
        eprintln!("ledger: keeping {}", dir.path().display());
    }
    let (data, fleet) = (dir.path().join("gateway"), dir.path().join("fleet"));
    (dir, data, fleet)
}

/// Scenario 1: SIGKILL `weir serve` (and so its embedded broker) at random moments while 38
/// nodes publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_gateway_at_random_moments_loses_and_doubles_nothing() {
    let kills = size(5, 50);
    let (_dir, data, fleet_dir) = dirs();
    let site = Site::new(data, fleet_dir, 38);
    let port = free_port();
    let mut gw = Gateway::embedded(&site.data, port, &[]);
    gw.start();
    // A week of history at 3000x: about 3.4 minutes of replay, longer than the kills take.
    let fleet = RunningFleet::start(site.fleet(port, Duration::from_secs(7 * 86_400), 3000.0));
    let mut rng = Rng::new();
    let started = Instant::now();
    let mut restarts = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(rng.between(Duration::from_millis(200), Duration::from_millis(2500)))
            .await;
        gw.kill();
        restarts.push(gw.start());
    }
    let kill_phase = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let config = fleet.config.clone();
    fleet.stop().await;
    let t = settle(&gw.http, &site.token, &config, PATIENCE).await;
    if std::env::var("WEIR_LEDGER_DEBUG").is_ok() {
        let m = reqwest::get(format!("{}/metrics", gw.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for l in m
            .lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
        {
            eprintln!("metric: {l}");
        }
    }
    let mut ms: Vec<i64> = restarts.iter().map(|d| d.as_millis() as i64).collect();
    eprintln!(
        "ledger: {kills} SIGKILLs in {:.1} s; restart to listening: median {} ms, max {} ms; \
         settled {:.1} s after the start",
        kill_phase.as_secs_f64(),
        percentile(&mut ms, 50.0),
        percentile(&mut ms, 100.0),
        started.elapsed().as_secs_f64()
    );
    assert_clean("SIGKILL of the gateway", &t);
}

/// Scenario 2, embedded broker: `weir serve` stopped and started again, so its embedded broker
/// comes back without any session (session_present = false for every client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_embedded_broker_that_lost_every_session_loses_nothing() {
    let restarts = size(3, 20);
    let (_dir, data, fleet_dir) = dirs();
    let site = Site::new(data, fleet_dir, size(10, 38));
    let port = free_port();
    let mut gw = Gateway::embedded(&site.data, port, &[]);
    gw.start();
    let fleet = RunningFleet::start(site.fleet(port, Duration::from_secs(7 * 86_400), 3000.0));
    let mut rng = Rng::new();
    let started = Instant::now();
    for _ in 0..restarts {
        tokio::time::sleep(rng.between(Duration::from_millis(500), Duration::from_millis(3000)))
            .await;
        assert!(gw.term().success(), "weir serve did not stop cleanly");
        gw.start();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let config = fleet.config.clone();
    fleet.stop().await;
    let t = settle(&gw.http, &site.token, &config, PATIENCE).await;
    eprintln!(
        "ledger: {restarts} restarts of the embedded broker in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_clean("embedded broker restarted", &t);
}

/// Scenario 2, Mosquitto: killed and started again without persistence, so it forgets the
/// gateway's session and subscriptions, and every node's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_mosquitto_that_lost_every_session_loses_nothing() {
    let restarts = size(3, 20);
    let (_dir, data, fleet_dir) = dirs();
    let site = Site::new(data, fleet_dir, size(10, 38));
    let mut broker = Restartable::mosquitto();
    broker.start();
    let mut gw = Gateway::external(&site.data, broker.port);
    gw.start();
    let fleet =
        RunningFleet::start(site.fleet(broker.port, Duration::from_secs(7 * 86_400), 3000.0));
    let mut rng = Rng::new();
    let started = Instant::now();
    for _ in 0..restarts {
        tokio::time::sleep(rng.between(Duration::from_millis(500), Duration::from_millis(3000)))
            .await;
        broker.kill();
        tokio::time::sleep(rng.between(Duration::from_millis(0), Duration::from_millis(1000)))
            .await;
        broker.start();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let config = fleet.config.clone();
    fleet.stop().await;
    let t = settle(&gw.http, &site.token, &config, PATIENCE).await;
    eprintln!(
        "ledger: {restarts} restarts of Mosquitto in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_clean("Mosquitto restarted without persistence", &t);
}

/// Scenario 3: one node offline for 72 simulated hours while the others publish; back, it
/// delivers its whole backlog, in order, and the others' messages are not held up meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_after_72_hours_offline_delivers_everything_in_order_without_delaying_the_others(
) {
    let (_dir, data, fleet_dir) = dirs();
    let site = Site::new(data, fleet_dir, size(10, 38));
    let port = free_port();
    let mut gw = Gateway::embedded(&site.data, port, &[]);
    gw.start();
    let outage_s = 72 * 3600;
    // The outage starts an hour into the replay; the replay goes on 8 hours after it.
    let history = Duration::from_secs(81 * 3600);
    let mut config = site.fleet(port, history, size(15_000.0, 5_000.0));
    let timeline = timeline(&config);
    let start = timeline.sim_origin_ms / 1000;
    let (from, until) = (start + 3600, start + 3600 + outage_s);
    let offline = "HY-002";
    config.outages = vec![weir_sim::Outage {
        terminal: offline.into(),
        from,
        until,
    }];
    let back_ms = timeline.wall_at(until * 1000);
    let fleet = RunningFleet::start(config.clone());

    // Until the node is back, then until the gateway holds its whole backlog.
    let wait = Duration::from_millis((back_ms - weir_sim::wall_now_ms()).max(0) as u64);
    tokio::time::sleep(wait).await;
    let backlog: Vec<i64> = logged(&config, offline, weir_sim::SAMPLE_LOG)
        .into_iter()
        .filter(|t| (from..until).contains(t))
        .collect();
    assert!(
        backlog.len() as i64 >= outage_s / 60 - 5,
        "the node recorded {} readings while offline, expected about {}",
        backlog.len(),
        outage_s / 60
    );
    let deadline = Instant::now() + PATIENCE;
    let drained_ms = loop {
        let rows = stored(&gw.http, &site.token, offline, from, until).await;
        if rows.is_some_and(|r| r.len() >= backlog.len()) {
            break weir_sim::wall_now_ms();
        }
        assert!(
            Instant::now() < deadline,
            "the backlog was not stored within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let config = fleet.config.clone();
    fleet.stop().await;
    let t = settle(&gw.http, &site.token, &config, PATIENCE).await;

    // In order: the backlog's messages were published oldest first, each once before its ack.
    let mine = deliveries(&config, offline);
    let sent_after: Vec<Delivery> = mine
        .iter()
        .filter(|d| d.published_ms >= back_ms - 1000)
        .copied()
        .collect();
    let backlog_messages = sent_after.len();
    let in_messages: usize = sent_after.iter().map(|d| d.readings).sum();
    assert!(
        in_messages >= backlog.len(),
        "the messages sent after the outage hold {in_messages} readings, the backlog {}",
        backlog.len()
    );
    let mut by_publication = sent_after.clone();
    by_publication.sort_by_key(|d| (d.published_ms, d.boot, d.seq));
    assert!(
        by_publication
            .windows(2)
            .all(|w| (w[0].boot, w[0].seq) < (w[1].boot, w[1].seq)),
        "the backlog was not published in order"
    );
    // The others' delays, publication to ack (an upper bound of publication to storage),
    // before the node came back and while its backlog drained.
    let (mut before, mut during) = (Vec::new(), Vec::new());
    for id in site.ids.iter().filter(|id| *id != offline) {
        for d in deliveries(&config, id) {
            if (back_ms - 5000..back_ms).contains(&d.published_ms) {
                before.push(d.delay_ms());
            } else if (back_ms..=drained_ms).contains(&d.published_ms) {
                during.push(d.delay_ms());
            }
        }
    }
    let n_during = during.len();
    let (b50, b99) = (percentile(&mut before, 50.0), percentile(&mut before, 99.0));
    let (d50, d99, dmax) = (
        percentile(&mut during, 50.0),
        percentile(&mut during, 99.0),
        percentile(&mut during, 100.0),
    );
    eprintln!(
        "ledger: a node back after 72 h: {} readings in {backlog_messages} messages stored {} ms \
         after it came back; the other {} terminals' publish-to-ack delay before: median {b50} ms, \
         p99 {b99} ms; while the backlog drained ({n_during} messages): median {d50} ms, p99 {d99} \
         ms, max {dmax} ms",
        backlog.len(),
        drained_ms - back_ms,
        site.ids.len() - 1
    );
    assert_clean("a node back after 72 h offline", &t);
    assert!(
        n_during > 0,
        "no other terminal published while the backlog drained"
    );
    // The bound: the others' messages are stored and acknowledged within a second while the
    // backlog drains.
    assert!(
        d99 <= 1000,
        "the others' messages waited up to {d99} ms (p99) while the backlog drained"
    );
}

/// Number of points of `metric` per terminal in VictoriaMetrics.
async fn points_in_vm(port: u16, metric: &str) -> std::collections::BTreeMap<String, usize> {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/export?match[]={metric}&start=2020-01-01T00:00:00Z"
    );
    let mut out = std::collections::BTreeMap::new();
    let Ok(resp) = reqwest::get(&url).await else {
        return out;
    };
    let body = resp.text().await.unwrap_or_default();
    for v in body
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let terminal = v["metric"]["terminal"].as_str().unwrap_or("?").to_owned();
        *out.entry(terminal).or_default() += v["values"].as_array().map_or(0, Vec::len);
    }
    out
}

/// Scenario 4: InfluxDB (VictoriaMetrics here) down for a simulated day while the nodes
/// publish; back, it gets every stored reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_down_a_simulated_day_then_everything_is_forwarded() {
    let (_dir, data, fleet_dir) = dirs();
    let site = Site::new(data, fleet_dir, size(10, 38));
    let mut vm = Restartable::victoria_metrics();
    let port = free_port();
    let mut gw = Gateway::embedded(
        &site.data,
        port,
        &[
            ("WEIR_INFLUX__ENABLED", "true".into()),
            ("WEIR_INFLUX__URL", format!("http://127.0.0.1:{}", vm.port)),
            ("WEIR_INFLUX__MAX_BACKOFF_S", "1".into()),
        ],
    );
    gw.start();
    // A day of history, replayed while VictoriaMetrics is down.
    let config = site.fleet(port, Duration::from_secs(86_400), size(8000.0, 2000.0));
    let fleet = RunningFleet::start(config.clone());
    let tl = timeline(&config);
    let caught_up = tl.wall_at(tl.wall_origin_ms) + 1000;
    tokio::time::sleep(Duration::from_millis(
        (caught_up - weir_sim::wall_now_ms()).max(0) as u64,
    ))
    .await;
    fleet.stop().await;
    let t = settle(&gw.http, &site.token, &config, PATIENCE).await;
    assert_clean("InfluxDB down a day (stored)", &t);
    let lag = gw.metric("weir_forward_lag_readings").await.unwrap();
    let errors = gw.metric("weir_forward_errors_total").await.unwrap();
    assert!(
        lag >= t.stored as f64 && errors >= 1.0,
        "the forwarder should be failing, {} readings behind; lag {lag}, errors {errors}",
        t.stored
    );

    // Back: everything forwarded, counted in VictoriaMetrics per terminal.
    let back = Instant::now();
    vm.start();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if gw.metric("weir_forward_lag_readings").await == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the forwarder did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let forwarded_s = back.elapsed().as_secs_f64();
    let mut want = std::collections::BTreeMap::new();
    for id in &site.ids {
        let rows = stored(&gw.http, &site.token, id, 0, weir_store::now() + 86_400)
            .await
            .unwrap();
        let with_flow = rows.iter().filter(|(_, r)| r["flow_m3h"].is_f64()).count();
        want.insert(id.clone(), with_flow);
    }
    let deadline = Instant::now() + PATIENCE;
    let got = loop {
        let got = points_in_vm(vm.port, "weir_flow_m3h").await;
        if got == want || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let total: usize = got.values().sum();
    eprintln!(
        "ledger: InfluxDB down a day: {} readings stored while it was down, all forwarded {forwarded_s:.1} s \
         after it came back; {total} flow points in VictoriaMetrics",
        t.stored
    );
    assert_eq!(got, want, "flow points per terminal in VictoriaMetrics");
}

/// Scenario 5: the gateway's disk fills up while the nodes publish. It stops acknowledging
/// (the nodes keep their readings), says so in /metrics and its log, corrupts nothing, and
/// resumes when space comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_acks_corrupts_nothing_and_loses_nothing_once_space_returns() {
    let fs = Tmpfs::mount("64m");
    let dir = tempfile::tempdir().unwrap();
    let site = Site::new(
        fs.path.join("gateway"),
        dir.path().join("fleet"),
        size(10, 38),
    );
    let port = free_port();
    let mut gw = Gateway::embedded(&site.data, port, &[]);
    gw.start();
    let config = site.fleet(port, Duration::from_secs(7 * 86_400), 3000.0);
    let fleet = RunningFleet::start(config.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        gw.metric("weir_readings_stored_total").await.unwrap() > 0.0,
        "nothing stored before the disk filled"
    );
    let filler = fs.fill();
    let full_at = Instant::now();
    // The store stalls: nothing more is committed.
    let deadline = Instant::now() + PATIENCE;
    loop {
        if gw.metric("weir_store_stalled_seconds").await.unwrap_or(0.0) >= 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the disk is full, yet the store never stalled"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stalled_after = full_at.elapsed();
    let stored_then = gw.metric("weir_readings_stored_total").await.unwrap();
    let stall_from_ms = weir_sim::wall_now_ms();
    let hold = Duration::from_secs(size(12, 60));
    tokio::time::sleep(hold).await;
    let m = gw.metrics().await;
    let stalled = support::metric(&m, "weir_store_stalled_seconds").unwrap();
    let waiting = support::metric(&m, "weir_store_waiting_messages").unwrap();
    assert_eq!(
        support::metric(&m, "weir_readings_stored_total").unwrap(),
        stored_then,
        "readings were stored on a full disk"
    );
    assert!(
        stalled >= hold.as_secs_f64() && waiting > 0.0,
        "/metrics does not show the stall: weir_store_stalled_seconds {stalled}, waiting {waiting}"
    );
    assert!(
        gw.logged("committing a batch failed"),
        "the gateway's log does not say that the store cannot commit"
    );
    assert!(
        gw.logged("the store has committed nothing"),
        "the gateway's log does not say that nothing is acknowledged"
    );
    // No node got an ack for anything published during the stall.
    let space_back_ms = weir_sim::wall_now_ms();
    let mut acked_during = 0;
    for id in &site.ids {
        acked_during += deliveries(&config, id)
            .iter()
            .filter(|d| (stall_from_ms + 1000..space_back_ms).contains(&d.acked_ms))
            .count();
    }
    assert_eq!(
        acked_during, 0,
        "messages acknowledged while the disk was full"
    );

    // Space comes back.
    fs.resize("512m");
    let back = Instant::now();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if gw.metric("weir_store_stalled_seconds").await == Some(0.0)
            && gw.metric("weir_readings_stored_total").await.unwrap() > stored_then
        {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resumed_s = back.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.stop().await;
    let t = settle(&gw.http, &site.token, &config, PATIENCE).await;
    assert!(gw.term().success(), "weir serve did not stop cleanly");
    let db = rusqlite::Connection::open(site.data.join("weir.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    eprintln!(
        "ledger: disk full ({filler} bytes of filler) for {:.0} s: stalled {:.1} s after it \
         filled, resumed {resumed_s:.1} s after space came back; integrity_check: {check}",
        hold.as_secs_f64(),
        stalled_after.as_secs_f64()
    );
    assert_eq!(check, "ok");
    assert_clean("disk full, then space back", &t);
}

/// Scenario 6: nodes lose power in the middle of flash writes (torn writes and erases), start
/// again on the same flash and publish to the gateway: nothing in flash is lost, and no
/// reading is sent again in a new message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_in_the_middle_of_flash_writes_lose_nothing_and_send_nothing_twice_as_new() {
    let (_dir, data, fleet_dir) = dirs();
    let n = size(6, 38);
    let site = Site::new(data, fleet_dir, n);
    let port = free_port();
    let mut gw = Gateway::embedded(&site.data, port, &[]);
    gw.start();
    let cut_every = size(5..300, 5..300);
    let max_cuts = size(15, 150);
    let mut config = site.fleet(port, Duration::from_secs(7 * 86_400), 2000.0);
    config.power_cuts = Some(weir_sim::PowerCuts {
        terminals: site.ids.clone(),
        ops: cut_every,
        seed: Rng::new().next(),
        max_cuts,
    });
    let fleet = RunningFleet::start(config.clone());
    let cuts_of = |id: &str| -> Vec<String> {
        std::fs::read_to_string(config.data_dir.join(id).join(weir_sim::POWER_CUT_LOG))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(size(60, 600));
    loop {
        let done = site
            .ids
            .iter()
            .all(|id| cuts_of(id).len() >= max_cuts as usize);
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.stop().await;
    let t = settle(&gw.http, &site.token, &config, PATIENCE).await;
    let cuts: Vec<String> = site.ids.iter().flat_map(|id| cuts_of(id)).collect();
    let writes = cuts.iter().filter(|c| c.starts_with("write")).count();
    let erases = cuts.iter().filter(|c| c.starts_with("erase")).count();
    // Whole messages sent again (after a reconnect, or when acks stall) are replays, not this.
    let again = gw
        .metric("weir_duplicate_readings_in_new_messages_total")
        .await
        .unwrap();
    eprintln!(
        "ledger: power cuts: {} cuts ({writes} mid-write, {erases} mid-erase) on {n} nodes in \
         {:.1} s; readings sent again in a new message: {again}",
        cuts.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        cuts.len() >= n,
        "only {} power cuts happened: the scenario did not run",
        cuts.len()
    );
    assert_clean("power cuts mid-write", &t);
    assert!(
        t.unsent <= cuts.len(),
        "{} samples never arrived with {} power cuts",
        t.unsent,
        cuts.len()
    );
    assert_eq!(again, 0.0, "readings were sent again as new");
}
