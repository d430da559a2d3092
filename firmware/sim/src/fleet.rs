//! A fleet of simulated terminals: the real node core on simulated sensors, a file-backed
//! flash and an MQTT uplink each, in simulated time.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio_util::sync::CancellationToken;
use weir_contract::{topic, TerminalId};
use weir_node::{Clock as _, Node, Partitions, RawReading, Sensors, Settings};

use crate::flash::FileFlash;
use crate::scenario::{Scenario, TerminalPlan};
use crate::timeline::{wall_now_ms, SimClock, Timeline};
use crate::uplink::{Gate, MqttUplink, UplinkConfig};

/// Pages of each node's message queue: 256 KiB, several days of readings.
pub const QUEUE_PAGES: usize = 64;
/// Pages of the settings partition.
pub const SETTINGS_PAGES: usize = 2;
/// Pages of the pending-readings partition.
pub const PENDING_PAGES: usize = 4;
/// Name of the file, in a terminal's data directory, that lists every reading it recorded.
pub const SAMPLE_LOG: &str = "recorded.log";

/// A function from a terminal id to its password.
pub type PasswordLookup = Arc<dyn Fn(&TerminalId) -> Option<String> + Send + Sync>;

/// How each terminal authenticates. The MQTT user name is always the terminal id.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No user name or password (a test broker that allows anonymous clients).
    #[default]
    Anonymous,
    /// One password for every terminal (a test broker).
    Shared(String),
    /// A password per terminal id; terminals not listed connect without one.
    PerTerminal(HashMap<String, String>),
    /// Asks a function, for example the gateway's registry.
    Lookup(PasswordLookup),
}

impl Credentials {
    /// The password of terminal `id`, if it has one.
    pub fn password(&self, id: &TerminalId) -> Option<String> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Shared(p) => Some(p.clone()),
            Credentials::PerTerminal(map) => map.get(id.as_str()).cloned(),
            Credentials::Lookup(f) => f(id),
        }
    }

    /// Reads a file of `id password` lines; blank lines and lines starting with `#` are
    /// skipped.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the credentials file {}", path.display()))?;
        let mut map = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((id, password)) = line.split_once(char::is_whitespace) else {
                bail!("{}:{}: expected `id password`", path.display(), n + 1);
            };
            map.insert(id.to_string(), password.trim().to_string());
        }
        Ok(Credentials::PerTerminal(map))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print passwords.
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Shared(_) => f.write_str("Shared(..)"),
            Credentials::PerTerminal(map) => write!(f, "PerTerminal({} terminals)", map.len()),
            Credentials::Lookup(_) => f.write_str("Lookup(..)"),
        }
    }
}

/// What to simulate and where to send it.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Passwords.
    pub credentials: Credentials,
    /// Terminals in the scenario: `HY-001` to `HY-{count}`.
    pub count: usize,
    /// Seed of the scenario.
    pub seed: u64,
    /// How far in the past simulated time starts.
    pub history: Duration,
    /// Simulated seconds per wall-clock second until simulated time reaches now.
    pub speed: f64,
    /// Where each terminal keeps its flash, and the fleet its timeline. A fleet restarted on
    /// the same directory continues where it was; delete it for a fresh history.
    pub data_dir: PathBuf,
    /// Topic prefix.
    pub prefix: String,
    /// Run only these terminals of the scenario (all when empty).
    pub only: Vec<String>,
    /// Play the scenario's scripted faults.
    pub faults: bool,
    /// Append each recorded reading's time to `{data_dir}/{id}/recorded.log` (for tests).
    pub sample_log: bool,
}

impl Default for FleetConfig {
    /// 38 terminals, seed 1, a week of history at 10080x (a week in a minute), broker on
    /// 127.0.0.1:1883, data in `weir-fleet-data`.
    fn default() -> Self {
        FleetConfig {
            host: "127.0.0.1".to_string(),
            port: 1883,
            credentials: Credentials::Anonymous,
            count: 38,
            seed: 1,
            history: Duration::from_secs(7 * 86_400),
            speed: 10_080.0,
            data_dir: PathBuf::from("weir-fleet-data"),
            prefix: topic::DEFAULT_PREFIX.to_string(),
            only: Vec::new(),
            faults: true,
            sample_log: false,
        }
    }
}

/// The fleet.
#[derive(Debug)]
pub struct Fleet {
    config: FleetConfig,
}

impl Fleet {
    /// A fleet for `config`; nothing runs until [`Fleet::run`].
    pub fn new(config: FleetConfig) -> Self {
        Fleet { config }
    }

    /// The scenario played on `timeline`.
    pub fn scenario(&self, timeline: &Timeline) -> Scenario {
        let start = timeline.sim_origin_ms.div_euclid(1000);
        let span = (timeline.wall_origin_ms - timeline.sim_origin_ms) / 1000;
        let mut scenario = Scenario::new(self.config.seed, self.config.count, start, span);
        if !self.config.faults {
            for t in &mut scenario.terminals {
                t.fault = None;
            }
        }
        scenario
    }

    /// Runs every terminal until `cancel`, then stops them cleanly: each batches what it
    /// sampled, publishes, waits up to 5 s for the acks, and says it is offline.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let config = Arc::new(self.config.clone());
        topic::check_prefix(&config.prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let (timeline, resumed) =
            Timeline::load_or_create(&config.data_dir, config.history, config.speed)
                .with_context(|| format!("the timeline in {}", config.data_dir.display()))?;
        if resumed {
            tracing::info!(dir = %config.data_dir.display(), "continuing the saved timeline");
        }
        let scenario = self.scenario(&timeline);
        let plans: Vec<TerminalPlan> = if config.only.is_empty() {
            scenario.terminals
        } else {
            let mut plans = Vec::new();
            for id in &config.only {
                match scenario.terminal(id) {
                    Some(t) => plans.push(t.clone()),
                    None => bail!(
                        "{id} is not in the scenario (HY-001 to HY-{:03})",
                        config.count
                    ),
                }
            }
            plans
        };
        tracing::info!(
            terminals = plans.len(),
            broker = %format!("{}:{}", config.host, config.port),
            speed = timeline.speed,
            "fleet starting"
        );
        // The node core's futures are not `Send` (it runs on one executor, as on a
        // microcontroller), so the terminals run on threads of their own, each a
        // single-threaded runtime; the fleet does not load the caller's runtime either.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        let mut groups: Vec<Vec<TerminalPlan>> = vec![Vec::new(); threads];
        for (i, plan) in plans.into_iter().enumerate() {
            groups[i % threads].push(plan);
        }
        let mut handles = Vec::new();
        for (n, group) in groups.into_iter().filter(|g| !g.is_empty()).enumerate() {
            let (config, cancel) = (config.clone(), cancel.clone());
            let handle = std::thread::Builder::new()
                .name(format!("weir-fleet-{n}"))
                .spawn(move || run_group(group, &config, timeline, cancel))
                .context("starting a fleet thread")?;
            handles.push(handle);
        }
        tokio::task::spawn_blocking(move || {
            for handle in handles {
                if let Ok(Err(e)) = handle.join() {
                    tracing::error!("fleet thread: {e:#}");
                }
            }
        })
        .await
        .context("waiting for the fleet threads")?;
        Ok(())
    }
}

/// Runs `plans` on this thread until `cancel`.
fn run_group(
    plans: Vec<TerminalPlan>,
    config: &FleetConfig,
    timeline: Timeline,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a fleet runtime")?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut tasks = tokio::task::JoinSet::new();
        for plan in plans {
            let (config, cancel) = (config.clone(), cancel.clone());
            tasks.spawn_local(async move {
                let id = plan.id.clone();
                if let Err(e) = run_terminal(plan, &config, timeline, cancel).await {
                    tracing::error!(terminal = %id, "stopped: {e:#}");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    Ok(())
}

/// The simulated sensors of one terminal: its plan, read at the node's clock.
#[derive(Debug)]
pub struct SimSensors {
    plan: TerminalPlan,
    clock: SimClock,
}

impl Sensors for SimSensors {
    async fn sample(&mut self) -> RawReading {
        self.plan.raw_at(self.clock.unix_s())
    }
}

type SimNode = Node<SimSensors, SimClock, MqttUplink, FileFlash>;

enum Outcome {
    Stop,
    Reboot,
    Failed(weir_node::Error<crate::flash::FileFlashError>),
}

/// Runs one terminal until `cancel`, restarting its node at a scripted reboot or after a
/// flash error (as a watchdog would).
async fn run_terminal(
    plan: TerminalPlan,
    config: &FleetConfig,
    timeline: Timeline,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let dir = config.data_dir.join(plan.id.as_str());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut log = if config.sample_log {
        Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(SAMPLE_LOG))?,
        )
    } else {
        None
    };
    let uplink_config = UplinkConfig {
        host: config.host.clone(),
        port: config.port,
        id: plan.id.clone(),
        password: config.credentials.password(&plan.id),
        prefix: config.prefix.clone(),
    };
    let gate: Gate = {
        let plan = plan.clone();
        Arc::new(move || !plan.link_dead(timeline.sim_at(wall_now_ms()).div_euclid(1000)))
    };
    loop {
        let clock = SimClock::new(timeline);
        let open = |name: &str, pages| {
            let path = dir.join(name);
            FileFlash::open(&path, pages).with_context(|| format!("opening {}", path.display()))
        };
        let partitions = Partitions {
            settings: open("settings.flash", SETTINGS_PAGES)?,
            pending: open("pending.flash", PENDING_PAGES)?,
            queue: open("queue.flash", QUEUE_PAGES)?,
        };
        let uplink =
            MqttUplink::start(&uplink_config, gate.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let sensors = SimSensors {
            plan: plan.clone(),
            clock: clock.clone(),
        };
        let settings = Settings {
            factory_config: plan.factory_config(),
            ..Settings::default()
        };
        let mut node = Node::new(sensors, clock.clone(), uplink, partitions, settings)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Err(e) = node.start().await {
            tracing::error!(terminal = %plan.id, "flash: {e}; restarting in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tracing::debug!(terminal = %plan.id, boot = node.boot(), "node started");
        let now_ms = clock.clone().now_ms() as i64;
        let reboot_wall_ms = plan
            .reboot_at()
            .map(|at| at * 1000)
            .filter(|at| *at > now_ms)
            .map(|at| timeline.wall_at(at));

        let outcome = tokio::select! {
            e = run_logged(&mut node, &mut log) => Outcome::Failed(e),
            () = cancel.cancelled() => Outcome::Stop,
            () = wall_sleep_until(reboot_wall_ms) => Outcome::Reboot,
        };
        match outcome {
            Outcome::Stop => {
                shut_down(&mut node).await;
                return Ok(());
            }
            Outcome::Reboot => {
                tracing::info!(terminal = %plan.id, "scripted reboot");
                // A power cycle: the node vanishes with its RAM and its connection.
                drop(node);
            }
            Outcome::Failed(e) => {
                tracing::error!(terminal = %plan.id, "flash: {e}; restarting in 1 s");
                drop(node);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Steps the node for ever, appending each recorded reading's time to `log`.
async fn run_logged(
    node: &mut SimNode,
    log: &mut Option<std::fs::File>,
) -> weir_node::Error<crate::flash::FileFlashError> {
    let mut recorded = node.stats().recorded;
    loop {
        if let Err(e) = node.step().await {
            return e;
        }
        let stats = node.stats();
        if let (Some(log), true, Some(ts)) = (
            log.as_mut(),
            stats.recorded != recorded,
            stats.last_recorded,
        ) {
            let _ = writeln!(log, "{}", ts.unix());
        }
        recorded = stats.recorded;
    }
}

async fn wall_sleep_until(wall_ms: Option<i64>) {
    let Some(wall_ms) = wall_ms else {
        return std::future::pending().await;
    };
    loop {
        let now = wall_now_ms();
        if now >= wall_ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis((wall_ms - now) as u64)).await;
    }
}

/// Batches and publishes what is left, waits up to 5 s for the acks, goes offline.
async fn shut_down(node: &mut SimNode) {
    if let Err(e) = node.flush().await {
        tracing::warn!("flushing at shutdown: {e}");
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while node.buffered() > 0 && node.is_connected() {
        match tokio::time::timeout_at(deadline, node.handle_next_event()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!("at shutdown: {e}");
                break;
            }
            Err(_) => break,
        }
    }
    let _ = node.go_offline().await;
    node.uplink_mut().disconnect().await;
}
