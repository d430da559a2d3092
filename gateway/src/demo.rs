//! `weir demo`: the gateway with everything embedded and a simulated fleet of terminals.
//!
//! It registers the fleet's terminals (positions around Haiyan county's towns, design flow and
//! tank depth from the scenario), gives each node a password, creates an admin login, starts the
//! gateway and the fleet, and prints where to look. The fleet replays `--history` in
//! accelerated time, then runs live, with the scenario's scripted faults.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;
use weir_sim::{Credentials, Fleet, FleetConfig, Scenario};

use crate::config::{BrokerMode, Config};
use weir_store::auth::{self, Role};
use weir_store::terminals::{self, NewTerminal};

/// Options of `weir demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its data (default: a fresh temporary directory, removed on exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Simulated terminals, HY-001 upwards.
    #[arg(long, default_value_t = 38)]
    pub terminals: usize,
    /// Seed of the simulated scenario.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of history the fleet replays before it runs live.
    #[arg(long, default_value_t = 7)]
    pub history_days: u32,
    /// Simulated seconds per second while replaying (10080: a week in a minute).
    #[arg(long, default_value_t = 10_080.0)]
    pub speed: f64,
    /// Password of the demo's `admin` login (default: generated and printed).
    #[arg(long, env = "WEIR_DEMO_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// Haiyan county's towns and sub-districts, with approximate positions: the villages the
/// demo's terminals serve.
const TOWNS: [(&str, f64, f64); 9] = [
    ("武原街道", 30.525, 120.945),
    ("西塘桥街道", 30.598, 120.892),
    ("望海街道", 30.493, 120.960),
    ("秦山街道", 30.445, 120.935),
    ("沈荡镇", 30.560, 120.820),
    ("百步镇", 30.600, 120.760),
    ("于城镇", 30.575, 120.715),
    ("澉浦镇", 30.370, 120.905),
    ("通元镇", 30.455, 120.820),
];

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let (data_dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => {
            let d = std::env::temp_dir().join(format!("weir-demo-{}", std::process::id()));
            (d, true)
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the demo's data directory {}", data_dir.display()))?;
    config.data_dir = data_dir.join("gateway");
    config.mqtt.broker = BrokerMode::Embedded;
    if config.alerts.crews.is_empty() {
        // Zone responsibility, as a county assigns it: three crews share the terminals.
        for (crew, first, last) in [("north", 1, 13), ("south", 14, 26), ("west", 27, 38)] {
            let terminals = (first..=last).map(|n| format!("HY-{n:03}")).collect();
            config.alerts.crews.insert(
                crew.to_owned(),
                crate::alerts::config::CrewConfig {
                    terminals,
                    ..Default::default()
                },
            );
        }
    }
    let result = run_in(config, &args, &data_dir).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

async fn run_in(config: Config, args: &DemoArgs, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let store = weir_store::Store::open(&config.database_path(), config.store.synchronous)?;
    let scenario = Scenario::new(args.seed, args.terminals, 0, 86_400);
    let mut passwords = HashMap::new();
    for plan in &scenario.terminals {
        let id = plan.id.as_str().to_owned();
        let n = plan.index;
        let (town, lat, lon) = TOWNS[n % TOWNS.len()];
        // Spread a town's terminals around it (about 1-3 km), the same every run.
        let angle = n as f64 * 2.399;
        let r = 0.008 + 0.004 * (n / TOWNS.len()) as f64;
        let password = auth::new_password();
        let hash = auth::hash_password(&password);
        let new = NewTerminal {
            id: id.clone(),
            name: format!("{town}{}号终端", n / TOWNS.len() + 1),
            village: Some(town.to_owned()),
            lat: Some(lat + r * angle.sin()),
            lon: Some(lon + r * angle.cos()),
            design_flow_m3d: Some((plan.daily_m3 * 1.3).round()),
            tank_depth_m: Some((plan.tank_depth_m * 100.0).round() / 100.0),
        };
        store.with(|c| {
            if terminals::key_of(c, &id)?.is_some() {
                terminals::set_password_hash(c, &id, &hash)?;
            } else if let Err(e) = terminals::add(c, &new, &hash) {
                tracing::error!(terminal = %id, error = %e, "cannot register a demo terminal");
            }
            Ok(())
        })?;
        passwords.insert(id, password);
    }
    let password = args.password.clone().unwrap_or_else(auth::new_password);
    store
        .with(|c| Ok(auth::put_user(c, "admin", &password, Role::Admin, true)))?
        .context("creating the demo's admin login")?;
    drop(store);

    let running = crate::serve::start(Arc::new(config)).await?;
    let mqtt = running
        .mqtt_addr
        .context("the demo runs the embedded broker")?;
    let fleet_cancel = CancellationToken::new();
    let fleet = Fleet::new(FleetConfig {
        host: "127.0.0.1".into(),
        port: mqtt.port(),
        credentials: Credentials::PerTerminal(passwords),
        count: args.terminals,
        seed: args.seed,
        history: Duration::from_secs(u64::from(args.history_days) * 86_400),
        speed: args.speed,
        data_dir: data_dir.join("fleet"),
        ..FleetConfig::default()
    });
    let fleet_task = tokio::spawn(fleet.run(fleet_cancel.clone()));

    eprintln!("weir: listening on http://{}", running.http_addr);
    eprintln!("weir: MQTT broker on {mqtt}");
    eprintln!();
    eprintln!(
        "  Weir demo: {} simulated terminals, replaying {} days, then live",
        args.terminals, args.history_days
    );
    eprintln!("  dashboard: http://{}/", running.http_addr);
    eprintln!("  login:     admin / {password}");
    eprintln!("  data:      {}", data_dir.display());
    eprintln!("  stop:      Ctrl-C");
    eprintln!();

    let mut fleet_task = fleet_task;
    let fleet_done = tokio::select! {
        _ = crate::shutdown_signal() => None,
        ended = &mut fleet_task => Some(ended),
    };
    fleet_cancel.cancel();
    let ended = match fleet_done {
        Some(ended) => Ok(ended),
        None => tokio::time::timeout(Duration::from_secs(15), fleet_task).await,
    };
    match ended {
        Ok(Ok(Err(e))) => eprintln!("weir: the simulated fleet stopped: {e:#}"),
        Ok(Err(e)) => eprintln!("weir: the simulated fleet failed: {e}"),
        Ok(Ok(Ok(()))) | Err(_) => {}
    }
    running.cancel.cancel();
    running.done.await??;
    Ok(())
}
