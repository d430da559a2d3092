//! `weir-bench footprint`: what `weir serve` costs a county's server: its memory and CPU while
//! 38 simulated terminals report at their default schedule (a reading a minute, published
//! every five), first replaying an hour at 60x (an hour in a minute), then live.
//!
//! The gateway runs as its own process (the release `weir` next to this binary) with
//! everything embedded, as a county runs it; the fleet runs in this process, logging in to
//! the embedded broker with each terminal's own password.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use weir_sim::{Credentials, Fleet, FleetConfig};
use weir_store::auth;

use crate::measure::{free_port, process_cpu_seconds, process_rss_kib, Killed};

/// Memory and CPU of `weir serve` with a county's fleet.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Terminals in the fleet.
    #[arg(long, default_value_t = 38)]
    terminals: usize,
    /// Simulated seconds per second while the fleet replays its hour.
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Simulated minutes the fleet replays before it runs live.
    #[arg(long, default_value_t = 60)]
    history_min: u64,
    /// Seconds measured live (real time) after the replay.
    #[arg(long, default_value_t = 300)]
    live_s: u64,
}

pub async fn main(args: Args) -> anyhow::Result<()> {
    let weir = crate::measure::weir_binary()?;
    let dir = crate::measure::TempDir::new("footprint")?;
    let data = dir.path().join("gateway");
    let store = weir_store::Store::open(&data.join("weir.db"), weir_store::Synchronous::Full)?;
    let mut passwords = HashMap::new();
    for t in 1..=args.terminals {
        let id = format!("HY-{t:03}");
        let password = auth::new_password();
        let new = weir_store::terminals::NewTerminal {
            id: id.clone(),
            name: format!("Terminal {t}"),
            design_flow_m3d: Some(30.0),
            tank_depth_m: Some(2.0),
            ..Default::default()
        };
        let hash = auth::hash_password(&password);
        store.with(|c| Ok(weir_store::terminals::add(c, &new, &hash)))??;
        passwords.insert(id, password);
    }
    drop(store);

    let (mqtt_port, http_port) = (free_port()?, free_port()?);
    let gateway = std::process::Command::new(&weir)
        .arg("serve")
        .env("WEIR_DATA_DIR", &data)
        .env("WEIR_MQTT__LISTEN", format!("127.0.0.1:{mqtt_port}"))
        .env("WEIR_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("WEIR_LOG", "warn")
        .spawn()
        .with_context(|| format!("starting {}", weir.display()))?;
    let gateway = Killed(gateway);
    let pid = gateway.0.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", mqtt_port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "weir serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _) = process_rss_kib(pid);

    let cancel = CancellationToken::new();
    let fleet = Fleet::new(FleetConfig {
        host: "127.0.0.1".into(),
        port: mqtt_port,
        credentials: Credentials::PerTerminal(passwords),
        count: args.terminals,
        history: Duration::from_secs(args.history_min * 60),
        speed: args.speed,
        data_dir: dir.path().join("fleet"),
        faults: false,
        ..FleetConfig::default()
    });
    let fleet_task = tokio::spawn(fleet.run(cancel.clone()));
    println!(
        "{} terminals: replaying {} min at {}x, then {} s live...",
        args.terminals, args.history_min, args.speed, args.live_s
    );

    // The replay: until simulated time reaches now.
    let replay_s = (args.history_min * 60) as f64 / args.speed;
    let cpu0 = process_cpu_seconds(pid);
    let t0 = Instant::now();
    let mut peak = 0;
    while t0.elapsed().as_secs_f64() < replay_s + 5.0 {
        peak = peak.max(process_rss_kib(pid).0);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let replay_cpu = process_cpu_seconds(pid) - cpu0;
    let replay_wall = t0.elapsed().as_secs_f64();

    // Live: real time, the county's real load.
    let cpu0 = process_cpu_seconds(pid);
    let t0 = Instant::now();
    let mut live_peak = 0;
    while t0.elapsed() < Duration::from_secs(args.live_s) {
        live_peak = live_peak.max(process_rss_kib(pid).0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let live_cpu = process_cpu_seconds(pid) - cpu0;
    let live_wall = t0.elapsed().as_secs_f64();
    let (rss_end, hwm) = process_rss_kib(pid);
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), fleet_task).await;

    let db = data.join("weir.db");
    let conn = rusqlite::Connection::open(&db)?;
    let readings: i64 = conn.query_row("SELECT count(*) FROM readings", [], |r| r.get(0))?;
    drop(gateway);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!("| phase | wall s | weir serve CPU s | share of one core | RSS peak MiB |");
    println!("|---|---:|---:|---:|---:|");
    println!("| idle, before the fleet | | | | {:.1} |", mib(idle_rss));
    println!(
        "| replaying {} min at {}x | {replay_wall:.0} | {replay_cpu:.2} | {:.2} % of the replayed time | {:.1} |",
        args.history_min,
        args.speed,
        replay_cpu / (args.history_min * 60) as f64 * 100.0,
        mib(peak)
    );
    println!(
        "| live, real time | {live_wall:.0} | {live_cpu:.2} | {:.2} % | {:.1} |",
        live_cpu / live_wall * 100.0,
        mib(live_peak)
    );
    println!(
        "RSS at the end {:.1} MiB, peak over the whole run (VmHWM) {:.1} MiB; {readings} readings stored (goal: under 40 MB and under 1 % of a core)",
        mib(rss_end),
        mib(hwm)
    );
    Ok(())
}
