//! A fleet of simulated terminals: the real node core on simulated sensors, a file-backed
//! flash and an MQTT uplink each, in simulated time.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tokio_util::sync::CancellationToken;
use weir_contract::{topic, Reading, TerminalId};
use weir_node::update::Updater;
use weir_node::{Clock as _, Node, Partitions, RawReading, Sensors, Settings};

use crate::flash::{FileFlash, PowerCut};
use crate::scenario::{Scenario, TerminalPlan};
use crate::timeline::{wall_now_ms, SimClock, Timeline};
use crate::uplink::{Gate, MqttUplink, UplinkConfig};

/// Pages of each node's message queue: 256 KiB, several days of readings.
pub const QUEUE_PAGES: usize = 64;
/// Pages of the settings partition.
pub const SETTINGS_PAGES: usize = 2;
/// Pages of the pending-readings partition.
pub const PENDING_PAGES: usize = 4;
/// Pages of the ACTIVE firmware slot (64 KiB); the DFU slot has one more, STATE one.
pub const ACTIVE_PAGES: usize = 16;
/// Size of the factory image a new simulated node starts with, bytes.
pub const FACTORY_IMAGE_LEN: usize = 24 * 1024;
/// Name of the file, in a terminal's data directory, that lists (as Unix seconds) every
/// reading the node wrote to its flash, written once the write is done: each must reach the
/// gateway.
pub const SAMPLE_LOG: &str = "recorded.log";
/// Name of the file, in a terminal's data directory, that lists (as Unix seconds) every
/// sample the node took, written before the node stores it: the gateway must receive no
/// reading that is not listed. A sample the node was taking when it was killed is listed
/// here and may be missing from [`SAMPLE_LOG`] and from the gateway.
pub const SAMPLED_LOG: &str = "sampled.log";
/// Name of the file, in a terminal's data directory, where each telemetry message's delivery
/// is logged once an ack covers it: `boot seq readings first_publish_wall_ms ack_wall_ms
/// first_ts last_ts`.
pub const DELIVERY_LOG: &str = "delivery.log";
/// Name of the file, in a terminal's data directory, listing each power cut
/// ([`FleetConfig::power_cuts`]): `operation offset length bytes_done`.
pub const POWER_CUT_LOG: &str = "power-cuts.log";

/// A terminal's link dead for a while, in simulated time, besides the scenario's faults.
#[derive(Clone, Debug, PartialEq)]
pub struct Outage {
    /// The terminal.
    pub terminal: String,
    /// From this simulated instant, Unix seconds.
    pub from: i64,
    /// Until this one (excluded).
    pub until: i64,
}

/// Power cuts in the middle of flash writes, for tests: each run of a listed terminal's node
/// loses power during one of its flash writes or erases, drawn from `ops`, then starts again
/// on the same flash (see [`PowerCut`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PowerCuts {
    /// Terminals whose power is cut.
    pub terminals: Vec<String>,
    /// The cut falls during one of this many flash operations after each start (at least 1).
    pub ops: std::ops::Range<u64>,
    /// Seeds which operation and where in it.
    pub seed: u64,
    /// Stop cutting after this many cuts per terminal.
    pub max_cuts: u32,
}

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
    /// A password per terminal id. A terminal of the fleet that is not listed is an error:
    /// the fleet does not start, rather than let it connect anonymously.
    PerTerminal(HashMap<String, String>),
    /// Asks a function, for example the gateway's registry; `None` is an error, as for a
    /// terminal missing from [`Credentials::PerTerminal`].
    Lookup(PasswordLookup),
}

impl Credentials {
    /// The password of terminal `id`: `None` to connect anonymously (only with
    /// [`Credentials::Anonymous`]); an error naming the terminal if per-terminal credentials
    /// have none for it.
    pub fn password(&self, id: &TerminalId) -> anyhow::Result<Option<String>> {
        match self {
            Credentials::Anonymous => Ok(None),
            Credentials::Shared(p) => Ok(Some(p.clone())),
            Credentials::PerTerminal(map) => match map.get(id.as_str()) {
                Some(p) => Ok(Some(p.clone())),
                None => bail!(
                    "no password for terminal {id} in the credentials ({} terminals listed)",
                    map.len()
                ),
            },
            Credentials::Lookup(f) => match f(id) {
                Some(p) => Ok(Some(p)),
                None => bail!("no password for terminal {id}"),
            },
        }
    }

    /// Reads a file of `id password` lines; blank lines and lines starting with `#` are
    /// skipped. See [`Credentials::parse`].
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the credentials file {}", path.display()))?;
        Credentials::parse(&text, &path.display().to_string())
    }

    /// Parses `id password` lines (what follows the id and its blank is the password);
    /// blank lines and lines starting with `#` are skipped. A line without a password, an id
    /// that is not a terminal id or an id listed twice is an error naming `source` and the
    /// line.
    pub fn parse(text: &str, source: &str) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let at = || format!("{source}:{}", n + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((id, password)) = line.split_once(char::is_whitespace) else {
                bail!("{}: expected `id password`", at());
            };
            let id = TerminalId::new(id)
                .map_err(|e| anyhow!("{}: `{id}` is not a terminal id: {e}", at()))?;
            if map
                .insert(id.to_string(), password.trim().to_string())
                .is_some()
            {
                bail!("{}: {id} is listed twice", at());
            }
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
    /// Keep a ground truth for tests in each terminal's directory: every sample's time in
    /// [`SAMPLED_LOG`] before the node stores it, every reading's time in [`SAMPLE_LOG`] once
    /// it is in flash.
    pub sample_log: bool,
    /// The Ed25519 public key the nodes accept firmware images from (all zeros: none).
    pub firmware_key: [u8; 32],
    /// The version of the image a new node starts with.
    pub factory_firmware: String,
    /// How long a node runs an image made to fail before its watchdog resets it.
    pub bad_image_reset: Duration,
    /// Links dead for a while, besides the scenario's.
    pub outages: Vec<Outage>,
    /// Power cuts in the middle of flash writes (tests).
    pub power_cuts: Option<PowerCuts>,
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
            firmware_key: [0; 32],
            factory_firmware: weir_node::FIRMWARE.to_string(),
            bad_image_reset: Duration::from_secs(3),
            outages: Vec::new(),
            power_cuts: None,
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
        // Every terminal must have its password: one connecting anonymously would be
        // refused by the gateway's broker, or worse, accepted by a test broker unnoticed.
        let missing: Vec<&str> = plans
            .iter()
            .filter(|p| config.credentials.password(&p.id).is_err())
            .map(|p| p.id.as_str())
            .collect();
        if !missing.is_empty() {
            bail!(
                "no password for {} in the credentials: the fleet does not start",
                missing.join(", ")
            );
        }
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
    logs: Option<SampleLogs>,
}

/// The ground truth a test checks the gateway against ([`SAMPLED_LOG`], [`SAMPLE_LOG`]).
#[derive(Debug)]
struct SampleLogs {
    sampled: std::fs::File,
    recorded: std::fs::File,
}

impl SampleLogs {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let open = |name: &str| {
            let path = dir.join(name);
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))
        };
        Ok(SampleLogs {
            sampled: open(SAMPLED_LOG)?,
            recorded: open(SAMPLE_LOG)?,
        })
    }
}

/// Appends `t` as a line with one `write` to a file opened for appending, unbuffered: once it
/// returns, the line survives the process being killed.
fn append_time(file: &mut std::fs::File, t: i64) {
    if let Err(e) = file.write_all(format!("{t}\n").as_bytes()) {
        tracing::warn!("writing the sample log: {e}");
    }
}

impl Sensors for SimSensors {
    async fn sample(&mut self) -> RawReading {
        let t = self.clock.unix_s();
        if let Some(logs) = &mut self.logs {
            append_time(&mut logs.sampled, t);
        }
        self.plan.raw_at(t)
    }

    fn recorded(&mut self, reading: &Reading) {
        if let Some(logs) = &mut self.logs {
            append_time(&mut logs.recorded, reading.ts.unix());
        }
    }
}

type SimNode<'a> =
    Node<SimSensors, SimClock, MqttUplink, FileFlash, Updater<'a, FileFlash, FileFlash>>;

/// A node's firmware slots: ACTIVE, DFU and STATE.
fn open_slots(dir: &Path) -> anyhow::Result<(FileFlash, FileFlash, FileFlash)> {
    let open = |name: &str, pages| {
        let path = dir.join(name);
        FileFlash::open(&path, pages).with_context(|| format!("opening {}", path.display()))
    };
    Ok((
        open("active.flash", ACTIVE_PAGES)?,
        open("dfu.flash", ACTIVE_PAGES + 1)?,
        open("state.flash", 1)?,
    ))
}

/// What the boot loader does at a node's start: writes the factory image into an empty
/// ACTIVE slot (a new node), swaps in a marked update or rolls back an unconfirmed one
/// (embassy-boot's `BootLoader::prepare_boot`), then says which image runs: its version and
/// whether it was made to fail.
fn boot(dir: &Path, factory: &str) -> anyhow::Result<(String, bool)> {
    use embedded_storage::nor_flash::NorFlash as _;
    let (mut active, dfu, state) = open_slots(dir)?;
    if crate::image::describe(active.contents()).is_none() {
        let mut image = crate::image::build(factory, false, FACTORY_IMAGE_LEN);
        image.resize(image.len().next_multiple_of(4), 0xFF);
        active
            .erase(0, (ACTIVE_PAGES * crate::flash::PAGE) as u32)
            .context("erasing the ACTIVE slot")?;
        active
            .write(0, &image)
            .context("writing the factory image")?;
    }
    let mut loader =
        embassy_boot::BootLoader::new(embassy_boot::BootLoaderConfig { active, dfu, state });
    let mut buf = vec![0u8; crate::flash::PAGE];
    loader
        .prepare_boot(&mut buf)
        .map_err(|e| anyhow!("boot loader: {e:?}"))?;
    let (active, _, _) = open_slots(dir)?;
    crate::image::describe(active.contents())
        .ok_or_else(|| anyhow!("the ACTIVE slot holds no image after the boot loader ran"))
}

enum Outcome {
    Stop,
    Reboot,
    /// A firmware update is marked: restart into the boot loader.
    Update,
    PowerCut,
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
    let uplink_config = UplinkConfig {
        host: config.host.clone(),
        port: config.port,
        id: plan.id.clone(),
        password: config.credentials.password(&plan.id)?,
        prefix: config.prefix.clone(),
        delivery_log: config.sample_log.then(|| dir.join(DELIVERY_LOG)),
    };
    let gate: Gate = {
        let plan = plan.clone();
        let outages: Vec<Outage> = config
            .outages
            .iter()
            .filter(|o| o.terminal == plan.id.as_str())
            .cloned()
            .collect();
        Arc::new(move || {
            let t = timeline.sim_at(wall_now_ms()).div_euclid(1000);
            !plan.link_dead(t) && !outages.iter().any(|o| (o.from..o.until).contains(&t))
        })
    };
    let cuts = config
        .power_cuts
        .as_ref()
        .filter(|c| c.terminals.iter().any(|t| t == plan.id.as_str()));
    let mut cut_count = 0u32;
    let mut draw = cuts.map_or(0, |c| {
        c.seed
            ^ plan
                .id
                .as_str()
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b))
    });
    loop {
        let (running, bad) = boot(&dir, &config.factory_firmware)?;
        if bad {
            // This image never gets as far as reporting; the watchdog resets the node and
            // the boot loader goes back to the previous image.
            tracing::info!(terminal = %plan.id, version = %running, "image fails to start; watchdog reset");
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(config.bad_image_reset) => continue,
            }
        }
        let power = cuts.filter(|c| cut_count < c.max_cuts).map(|c| {
            draw = draw
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let span = c.ops.end.saturating_sub(c.ops.start).max(1);
            PowerCut::after(c.ops.start + (draw >> 33) % span, draw)
        });
        let clock = SimClock::new(timeline);
        let open = |name: &str, pages| {
            let path = dir.join(name);
            let flash = FileFlash::open(&path, pages)
                .with_context(|| format!("opening {}", path.display()))?;
            Ok::<_, anyhow::Error>(match &power {
                Some(cut) => flash.with_power_cut(cut.clone()),
                None => flash,
            })
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
            logs: if config.sample_log {
                Some(SampleLogs::open(&dir)?)
            } else {
                None
            },
        };
        let settings = Settings {
            factory_config: plan.factory_config(),
            // A few bytes per start of a simulated node.
            firmware: Box::leak(running.clone().into_boxed_str()),
            // A node publishes its queue again when acks stop advancing for a minute. At the
            // simulator's speed a minute may be milliseconds of wall time, less than a
            // loaded machine takes to acknowledge: the wait is at least a second of wall time
            // at that speed (so, once caught up with the present, longer than on a board).
            resend_ms: resend_ms(timeline.speed),
            resend_max_ms: 30 * resend_ms(timeline.speed),
            ..Settings::default()
        };
        let (_, dfu, state) = open_slots(&dir)?;
        let mut aligned = [0u8; 4];
        let updater = Updater::new(
            dfu,
            state,
            &mut aligned,
            config.firmware_key,
            &running,
            (ACTIVE_PAGES * crate::flash::PAGE) as u32,
        );
        let mut node: SimNode<'_> = Node::with_updates(
            sensors,
            clock.clone(),
            uplink,
            partitions,
            settings,
            updater,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let power_off = || async {
            match &power {
                Some(cut) => cut.tripped().await,
                None => std::future::pending().await,
            }
        };
        let started = tokio::select! {
            started = node.start() => Some(started),
            () = power_off() => None,
        };
        match started {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::error!(terminal = %plan.id, "flash: {e}; restarting in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            None => {
                // The power went while the node started: it starts again.
                cut_count += 1;
                log_power_cut(&dir, &plan.id, power.as_ref())?;
                drop(node);
                continue;
            }
        }
        tracing::debug!(terminal = %plan.id, boot = node.boot(), "node started");
        let now_ms = clock.clone().now_ms() as i64;
        let reboot_wall_ms = plan
            .reboot_at()
            .map(|at| at * 1000)
            .filter(|at| *at > now_ms)
            .map(|at| timeline.wall_at(at));

        let outcome = tokio::select! {
            result = run_until_reboot(&mut node) => match result {
                Err(e) => Outcome::Failed(e),
                Ok(()) => Outcome::Update,
            },
            () = cancel.cancelled() => Outcome::Stop,
            () = wall_sleep_until(reboot_wall_ms) => Outcome::Reboot,
            () = power_off() => Outcome::PowerCut,
        };
        match outcome {
            Outcome::Stop => {
                shut_down(&mut node).await;
                return Ok(());
            }
            Outcome::Update => {
                tracing::info!(terminal = %plan.id, "restarting into a firmware update");
                let _ = node.go_offline().await;
                node.uplink_mut().disconnect().await;
                drop(node);
            }
            Outcome::Reboot => {
                tracing::info!(terminal = %plan.id, "scripted reboot");
                // A power cycle: the node vanishes with its RAM and its connection.
                drop(node);
            }
            Outcome::PowerCut => {
                cut_count += 1;
                log_power_cut(&dir, &plan.id, power.as_ref())?;
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

/// The wait before a node publishes its queue again, ms of simulated time: a minute, or a
/// second of wall time at `speed` if that is longer.
fn resend_ms(speed: f64) -> u64 {
    Settings::default().resend_ms.max((speed * 1000.0) as u64)
}

/// Logs where a power cut fell, in the terminal's [`POWER_CUT_LOG`].
fn log_power_cut(dir: &Path, id: &TerminalId, cut: Option<&PowerCut>) -> anyhow::Result<()> {
    let Some((op, offset, len, done)) = cut.and_then(PowerCut::torn) else {
        return Ok(());
    };
    tracing::info!(terminal = %id, op, offset, len, done, "power cut mid-write");
    let path = dir.join(POWER_CUT_LOG);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(log, "{op} {offset} {len} {done}")
        .with_context(|| format!("writing {}", path.display()))
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

/// Runs the node until a firmware update is marked (then the board restarts).
async fn run_until_reboot(
    node: &mut SimNode<'_>,
) -> Result<(), weir_node::Error<crate::flash::FileFlashError>> {
    loop {
        node.step().await?;
        if node.reboot_due() {
            return Ok(());
        }
    }
}

/// Batches and publishes what is left, waits up to 5 s for the acks, goes offline.
async fn shut_down(node: &mut SimNode<'_>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TerminalId {
        TerminalId::new(s).unwrap()
    }

    #[test]
    fn a_credentials_file_gives_each_terminal_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwords.txt");
        std::fs::write(
            &path,
            "# the county's terminals\n\nHY-001 s3cret\n  HY-002\tpass word  \n",
        )
        .unwrap();
        let credentials = Credentials::from_file(&path).unwrap();
        assert_eq!(
            credentials.password(&id("HY-001")).unwrap().as_deref(),
            Some("s3cret")
        );
        // What follows the id is the password, inner blanks included.
        assert_eq!(
            credentials.password(&id("HY-002")).unwrap().as_deref(),
            Some("pass word")
        );
        assert_eq!(format!("{credentials:?}"), "PerTerminal(2 terminals)");
    }

    #[test]
    fn a_terminal_missing_from_the_credentials_is_an_error_that_names_it() {
        let credentials = Credentials::parse("HY-001 s3cret\n", "passwords.txt").unwrap();
        let e = credentials.password(&id("HY-002")).unwrap_err().to_string();
        assert!(e.contains("HY-002"), "{e}");
        let lookup = Credentials::Lookup(Arc::new(|_: &TerminalId| None));
        let e = lookup.password(&id("HY-007")).unwrap_err().to_string();
        assert!(e.contains("HY-007"), "{e}");
        // Anonymous is asked for, not fallen into.
        assert_eq!(
            Credentials::Anonymous.password(&id("HY-002")).unwrap(),
            None
        );
    }

    #[test]
    fn malformed_credentials_lines_are_errors_that_say_where() {
        for (text, line, what) in [
            ("HY-001 a\nHY-002\n", 2, "expected `id password`"),
            ("# ok\nHY-001    \n", 2, "expected `id password`"),
            ("HY.001 a\n", 1, "not a terminal id"),
            ("HY-001 a\nHY-001 b\n", 2, "listed twice"),
        ] {
            let e = Credentials::parse(text, "pw.txt").unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("pw.txt:{line}: ")) && e.contains(what),
                "{text:?}: {e}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let e = Credentials::from_file(&dir.path().join("none.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.txt"), "{e}");
    }

    #[tokio::test]
    async fn a_fleet_with_a_terminal_missing_from_the_credentials_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let config = FleetConfig {
            // Nothing listens there: a fleet that started would retry for ever.
            port: 1,
            credentials: Credentials::parse("HY-001 a\nHY-003 c\n", "pw.txt").unwrap(),
            count: 3,
            data_dir: dir.path().to_path_buf(),
            ..FleetConfig::default()
        };
        let cancel = CancellationToken::new();
        let run = Fleet::new(config).run(cancel.clone());
        let result = tokio::time::timeout(Duration::from_secs(10), run).await;
        cancel.cancel();
        let e = result
            .expect("the fleet refuses at once rather than running")
            .unwrap_err();
        assert!(format!("{e:#}").contains("HY-002"), "{e:#}");
        assert!(!format!("{e:#}").contains("HY-001"), "{e:#}");
    }
}
