//! `weir-fleet`: runs a simulated fleet of Weir terminals against any MQTT broker.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use weir_sim::{Credentials, Fleet, FleetConfig, Timeline};

/// Simulated Weir sensor nodes: the real node core on simulated sensors, publishing over MQTT.
///
/// By default 38 terminals (HY-001 to HY-038) replay the last 7 days at 10080x (a week in a
/// minute), then carry on in real time. Stop with Ctrl-C: each node publishes what it holds
/// and waits for the acks. A restart on the same --data-dir continues the same timeline and
/// queues.
#[derive(Debug, Parser)]
#[command(name = "weir-fleet", version)]
struct Args {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1", env = "WEIR_FLEET_HOST")]
    host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883, env = "WEIR_FLEET_PORT")]
    port: u16,
    /// File of `id password` lines, one per terminal; `#` starts a comment line.
    #[arg(long, conflicts_with = "password")]
    passwords: Option<PathBuf>,
    /// One password for every terminal (test brokers).
    #[arg(long, env = "WEIR_FLEET_PASSWORD")]
    password: Option<String>,
    /// Number of terminals in the scenario.
    #[arg(long, default_value_t = 38)]
    count: usize,
    /// Seed of the scenario: which terminal does what, and every signal's noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How far in the past simulated time starts: `7d`, `12h`, `30m`, `0`.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    history: Duration,
    /// Simulated seconds per second until simulated time reaches now (10080: a week a minute).
    #[arg(long, default_value_t = 10_080.0)]
    speed: f64,
    /// Where the nodes keep their flash and the fleet its timeline.
    #[arg(long, default_value = "weir-fleet-data")]
    data_dir: PathBuf,
    /// Topic prefix.
    #[arg(long, default_value = "weir")]
    prefix: String,
    /// Run only this terminal of the scenario (repeat for several).
    #[arg(long)]
    only: Vec<String>,
    /// Do not play the scenario's scripted faults.
    #[arg(long)]
    no_faults: bool,
    /// Append each recorded reading's Unix time to {data-dir}/{id}/recorded.log.
    #[arg(long)]
    sample_log: bool,
    /// Print the scenario (who gets which fault, when) and exit.
    #[arg(long)]
    print_scenario: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}`: expected a number and a unit, like 7d, 12h, 30m or 45s"))?;
    let secs = match unit {
        "d" => n * 86_400,
        "h" => n * 3600,
        "m" => n * 60,
        "s" => n,
        _ => return Err(format!("`{s}`: the unit must be d, h, m or s")),
    };
    Ok(Duration::from_secs(secs))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if args.count == 0 || args.count > 999 {
        bail!("--count must be 1 to 999");
    }
    let credentials = match (&args.passwords, &args.password) {
        (Some(path), _) => Credentials::from_file(path)?,
        (None, Some(p)) => Credentials::Shared(p.clone()),
        (None, None) => Credentials::Anonymous,
    };
    let config = FleetConfig {
        host: args.host,
        port: args.port,
        credentials,
        count: args.count,
        seed: args.seed,
        history: args.history,
        speed: args.speed,
        data_dir: args.data_dir,
        prefix: args.prefix,
        only: args.only,
        faults: !args.no_faults,
        sample_log: args.sample_log,
        ..FleetConfig::default()
    };
    if args.print_scenario {
        let timeline = Timeline::new(weir_sim::wall_now_ms(), config.history, config.speed);
        let fleet = Fleet::new(config);
        print!(
            "{}",
            fleet
                .scenario(&timeline)
                .table(timeline.sim_origin_ms / 1000)
        );
        return Ok(());
    }

    let cancel = CancellationToken::new();
    tokio::spawn(stop_on_signal(cancel.clone()));
    Fleet::new(config)
        .run(cancel)
        .await
        .context("running the fleet")
}

/// Ctrl-C or SIGTERM stops the fleet cleanly.
async fn stop_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: publishing what the nodes hold");
    cancel.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("7w").is_err());
    }
}
