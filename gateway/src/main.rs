//! `weir`: the Weir gateway, as one binary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use weir_contract::{Calibration, Quantity};
use weir_gateway::config::Config;
use weir_gateway::nodes::args::{self, Fitted};
use weir_gateway::nodes::{label, provision, uf2};
use weir_node::provision::{FlowSensor, Network, TurbiditySensor, Ultrasonic};
use weir_store::auth::{self, Role};
use weir_store::terminals::{self, NewTerminal};
use weir_store::Store;

/// Weir: telemetry, storage, alerts and a dashboard for rural wastewater treatment terminals.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    /// Configuration file (TOML). `weir config print` prints one with every default.
    #[arg(long, short, global = true, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Run the gateway with everything embedded and a simulated fleet of terminals.
    #[cfg(feature = "demo")]
    Demo(weir_gateway::demo::DemoArgs),
    /// The configuration file: `weir config print` (or just `weir config`) prints the full
    /// default configuration, every key commented.
    Config {
        #[command(subcommand)]
        action: Option<ConfigCommand>,
    },
    /// The terminal registry.
    #[command(subcommand)]
    Terminal(TerminalCommand),
    /// API tokens for scripts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Dashboard users.
    #[command(subcommand)]
    User(UserCommand),
    /// Sensor nodes: provisioning and firmware files.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Export readings to a file for inspectors: the same rows as the API, with the period,
    /// time zone, units and calibration stated, and gaps and sensor faults marked.
    Export(ExportArgs),
    /// Firmware updates over the air: the county's signing key, signed images, staged
    /// rollouts and their progress.
    #[command(subcommand)]
    Firmware(FirmwareCommand),
    /// Copy the database to a new file while the gateway runs, then check the copy. Picture
    /// files are not in it: docs/deployment.md says how to copy them.
    Backup(BackupArgs),
    /// Put a backup in place of the database: the gateway must be stopped. Checks the backup,
    /// keeps the old database as weir.db.before-restore-TIME, brings an older backup's schema
    /// up to date.
    Restore {
        /// The backup file (from `weir backup`).
        from: PathBuf,
    },
}

#[derive(Args)]
struct BackupArgs {
    /// The new file to write (never overwritten).
    out: PathBuf,
    /// Pages (4 KiB) copied in one step.
    #[arg(long = "step-pages", default_value_t = 1024)]
    step_pages: i32,
    /// Milliseconds of pause after each step, leaving the disk to the gateway.
    #[arg(long = "pause-ms", default_value_t = 5)]
    pause_ms: u64,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the full default configuration as TOML, each key with its comment (written from
    /// the configuration types, so it is never out of date).
    Print,
}

#[derive(Subcommand)]
enum FirmwareCommand {
    /// Make the county's signing key pair: the private key in OUT (keep it off the gateway,
    /// backed up), the public key in OUT.pub and printed, for firmware.public_key.
    Keygen {
        /// Where to write the private key.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Sign an image with the county's private key: writes IMAGE.sig (64 bytes).
    Sign {
        /// The firmware image (the application binary, raw).
        image: PathBuf,
        /// The private key file from `weir firmware keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Where to write the signature (default: IMAGE.sig).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Store a signed image, after checking its signature against firmware.public_key.
    Add {
        /// The firmware image.
        image: PathBuf,
        /// Its signature (default: IMAGE.sig).
        #[arg(long)]
        signature: Option<PathBuf>,
        /// Its version, if the image carries no version tag.
        #[arg(long)]
        version: Option<String>,
    },
    /// List the stored images.
    List,
    /// Offer an image to a group of terminals: one stage of a rollout.
    Rollout {
        /// The image's version (`weir firmware list`).
        version: String,
        /// These terminals, comma-separated (e.g. HY-001,HY-002).
        #[arg(long, value_delimiter = ',', conflicts_with_all = ["percent", "rest"])]
        terminals: Vec<String>,
        /// This share of the registered terminals, among those not yet offered the version.
        #[arg(long, conflicts_with = "rest")]
        percent: Option<u32>,
        /// Every registered terminal not yet offered the version.
        #[arg(long)]
        rest: bool,
        /// The stage's number, shown with the progress.
        #[arg(long, default_value_t = 1)]
        stage: u32,
    },
    /// A rollout's progress, terminal by terminal.
    Status {
        /// Only this version's targets.
        version: Option<String>,
    },
}

#[derive(Args)]
struct ExportArgs {
    /// A terminal to export; may be repeated (default: every registered terminal).
    #[arg(long = "terminal", short)]
    terminals: Vec<String>,
    /// Start, RFC 3339 (default: the start of last month in the site's time zone).
    #[arg(long)]
    from: Option<String>,
    /// End, exclusive, RFC 3339 (default: the start of this month).
    #[arg(long)]
    to: Option<String>,
    /// min/mean/max per step, such as 5m, 1h or 1d (default: raw readings).
    #[arg(long)]
    step: Option<String>,
    /// csv or jsonl (one JSON object per line).
    #[arg(long, default_value = "csv")]
    format: String,
    /// The file to write.
    #[arg(long, short)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Bind a node to a registered terminal: writes its configuration image (raw and as UF2)
    /// and a printable QR label, and records how the node is wired. Issues a new node
    /// password unless the current one is given.
    Provision(Box<ProvisionArgs>),
    /// Turn a firmware binary (raw, from the start of its slot) into a UF2 file for
    /// drag-and-drop flashing: the node firmware (at the ACTIVE slot), or with
    /// --boot-loader the boot loader (at the start of flash).
    Uf2 {
        /// The raw binary.
        input: PathBuf,
        /// The binary is the boot loader, not the node firmware.
        #[arg(long = "boot-loader")]
        boot_loader: bool,
        /// Where to write the UF2 file.
        #[arg(long, short)]
        out: PathBuf,
        /// The board (default: nodes.board).
        #[arg(long)]
        board: Option<String>,
    },
}

#[derive(Args)]
struct ProvisionArgs {
    /// The terminal, registered with `weir terminal add`.
    id: String,
    /// Directory for the files (ID.weircfg, ID-config.uf2, ID-label.svg).
    #[arg(long, short, default_value = ".")]
    out: PathBuf,
    /// The broker as nodes reach it, HOST[:PORT] (default: nodes.broker).
    #[arg(long)]
    broker: Option<String>,
    /// The dashboard as field staff reach it, for the label's QR code (default:
    /// nodes.dashboard_url).
    #[arg(long = "dashboard-url")]
    dashboard_url: Option<String>,
    /// SNTP server (default: nodes.time_server).
    #[arg(long = "time-server")]
    time_server: Option<String>,
    /// Keep the node's current MQTT password (checked against the registry) instead of
    /// issuing a new one. Read from WEIR_NODE_PASSWORD when not given.
    #[arg(long, env = "WEIR_NODE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Turbidity sensor: modbus:SLAVE, loop:NTU4-NTU20 or none.
    #[arg(long, value_parser = args::turbidity)]
    turbidity: Option<Fitted<TurbiditySensor>>,
    /// Flow meter: modbus:SLAVE, pulse:PULSES_PER_M3 or none.
    #[arg(long, value_parser = args::flow)]
    flow: Option<Fitted<FlowSensor>>,
    /// Sludge sensor: ultrasonic, ultrasonic:MIN-MAX (mm) or none.
    #[arg(long, value_parser = args::sludge)]
    sludge: Option<Fitted<Ultrasonic>>,
    /// Height of the ultrasonic sensor's face above the tank bottom, m.
    #[arg(long = "sensor-height")]
    sensor_height: Option<f64>,
    /// Baud rate of the RS-485 Modbus bus.
    #[arg(long = "modbus-baud")]
    modbus_baud: Option<u32>,
    /// A correction found on site, QUANTITY:OFFSET[:SCALE] (e.g. turbidity_ntu:-0.4);
    /// may be repeated.
    #[arg(long = "calibrate", allow_hyphen_values = true, value_parser = args::calibration)]
    calibrate: Vec<(Quantity, Calibration)>,
    /// dhcp, or static:ADDRESS/PREFIX,gw=ROUTER[,dns=SERVER].
    #[arg(long, value_parser = args::network)]
    network: Option<Network>,
    /// Seconds between samples.
    #[arg(long = "sample-interval")]
    sample_interval: Option<u32>,
    /// Seconds between publications.
    #[arg(long = "publish-interval")]
    publish_interval: Option<u32>,
    /// The board (default: nodes.board).
    #[arg(long)]
    board: Option<String>,
}

#[derive(Subcommand)]
enum TerminalCommand {
    /// Register a terminal; prints its node's MQTT user name and password (once).
    Add(AddTerminal),
    /// List registered terminals.
    List,
    /// The terminal's IP camera, whose snapshots the gateway fetches on a schedule.
    #[command(subcommand)]
    Camera(CameraCommand),
}

#[derive(Subcommand)]
enum CameraCommand {
    /// Set (or replace) a terminal's camera; the running gateway picks it up within a minute.
    Set(SetCamera),
    /// Stop fetching a terminal's camera (one in the configuration file stays).
    Remove {
        /// Terminal id.
        id: String,
    },
    /// List the cameras set with `weir terminal camera set` and in the configuration file.
    List,
    /// Fetch one snapshot from a terminal's camera now and check it, storing nothing: for
    /// setting a camera up.
    Test {
        /// Terminal id.
        id: String,
    },
}

#[derive(Args)]
struct SetCamera {
    /// Terminal id.
    id: String,
    /// The camera's snapshot URL (http:// or https://), answering with one JPEG picture.
    #[arg(long)]
    url: String,
    /// User name for the camera's HTTP basic or digest login.
    #[arg(long, default_value = "")]
    username: String,
    /// Its password; read from WEIR_CAMERA_PASSWORD when not given.
    #[arg(
        long,
        env = "WEIR_CAMERA_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    password: String,
    /// Seconds between two snapshots (at least 10).
    #[arg(long, default_value_t = 3600)]
    interval: u32,
}

#[derive(Args)]
struct AddTerminal {
    /// Terminal id: 1-32 of A-Z a-z 0-9 _ - (e.g. HY-001).
    id: String,
    /// Human name.
    #[arg(long)]
    name: String,
    /// Village served.
    #[arg(long)]
    village: Option<String>,
    /// Latitude, degrees.
    #[arg(long, allow_negative_numbers = true)]
    lat: Option<f64>,
    /// Longitude, degrees.
    #[arg(long, allow_negative_numbers = true)]
    lon: Option<f64>,
    /// Design capacity, m3/day.
    #[arg(long = "design-flow")]
    design_flow: Option<f64>,
    /// Working depth of the tank, m.
    #[arg(long = "tank-depth")]
    tank_depth: Option<f64>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token; prints it once.
    Create {
        /// admin, operator, field or inspector.
        #[arg(long)]
        role: String,
        /// What the token is for.
        #[arg(long, default_value = "api")]
        name: String,
    },
    /// List API tokens: id, name, role, created (never the token itself).
    List,
    /// Revoke an API token by its id (from `weir token list`; 8 hex digits or more).
    Revoke {
        /// The token's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a dashboard user (or reset one's password with --reset); prints the password
    /// when none is given.
    Add {
        /// User name.
        username: String,
        /// admin, operator, field or inspector.
        #[arg(long)]
        role: String,
        /// Password; read from WEIR_NEW_PASSWORD when not given, else generated.
        #[arg(long, env = "WEIR_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Replace the password and role of an existing user; ends its sessions.
        #[arg(long)]
        reset: bool,
    },
    /// List dashboard users with their role and open sessions.
    List,
    /// Delete a user and end its sessions.
    Delete {
        /// User name.
        username: String,
    },
    /// End every session of a user (log it out everywhere) without changing its password.
    Logout {
        /// User name.
        username: String,
    },
}

fn export(config: &Config, a: ExportArgs) -> anyhow::Result<()> {
    use weir_gateway::export::{self, Format, Request};
    let format = match a.format.as_str() {
        "csv" => Format::Csv,
        "jsonl" => Format::JsonLines,
        other => anyhow::bail!("--format {other}: use csv or jsonl"),
    };
    let tz = jiff::tz::TimeZone::get(&config.site.timezone)
        .with_context(|| format!("site.timezone {:?}", config.site.timezone))?;
    let (default_from, default_to) = weir_gateway::reports::default_period(weir_store::now(), &tz);
    let time = |what: &str, s: Option<&String>, default: i64| match s {
        None => Ok(default),
        Some(s) => weir_contract::Timestamp::parse_rfc3339(s)
            .map(|t| t.unix())
            .map_err(|e| {
                anyhow::anyhow!(
                    "--{what} {s:?} is not an RFC 3339 time like 2026-11-01T00:00:00Z ({e})"
                )
            }),
    };
    let (from, to) = (
        time("from", a.from.as_ref(), default_from)?,
        time("to", a.to.as_ref(), default_to)?,
    );
    anyhow::ensure!(from < to, "--from must be before --to");
    let step = a
        .step
        .as_deref()
        .map(weir_gateway::api::parse_step)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--step: {e}"))?;
    let store = Store::open(&config.database_path(), config.store.synchronous)?;
    let conn = store.connect()?;
    let terminals = if a.terminals.is_empty() {
        terminals::list(&conn)?.into_iter().map(|t| t.id).collect()
    } else {
        a.terminals
    };
    anyhow::ensure!(!terminals.is_empty(), "no terminals to export");
    // A bar when a person watches; nothing in a script's log.
    let total: i64 = match step {
        None => terminals
            .iter()
            .map(|t| weir_store::readings::count(&conn, t, from, to))
            .sum::<rusqlite::Result<i64>>()?,
        Some(_) => 0,
    };
    let bar = if total > 0 {
        indicatif::ProgressBar::new(total as u64)
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows, {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let file =
        std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let req = Request {
        terminals,
        from,
        to,
        step,
        format,
    };
    let written = export::write(
        &conn,
        &req,
        &tz,
        config.reports.gap_factor,
        &mut out,
        &|n| bar.inc(n),
    )?;
    bar.finish_and_clear();
    println!(
        "wrote {} rows of {} terminal(s) to {} ({} gap(s) marked)",
        written.rows,
        req.terminals.len(),
        a.out.display(),
        written.gaps
    );
    Ok(())
}

fn backup(config: &Config, a: BackupArgs) -> anyhow::Result<()> {
    use weir_store::backup::{self, Pace};
    let db = config.database_path();
    let pace = Pace {
        pages_per_step: a.step_pages.max(1),
        pause: std::time::Duration::from_millis(a.pause_ms),
    };
    // A bar when a person watches; nothing in a script's log.
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} pages, {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let r = backup::backup(&db, &a.out, pace, &|left, total| {
        bar.set_length(total);
        bar.set_position(total - left.min(total));
    })?;
    bar.finish_and_clear();
    println!(
        "backed up {} to {}: {} bytes ({} pages in {} steps) in {:.1} s, checked in {:.1} s (integrity_check ok)",
        db.display(),
        a.out.display(),
        r.bytes,
        r.pages,
        r.steps,
        r.copy_time.as_secs_f64(),
        r.check_time.as_secs_f64()
    );
    if r.restarts > 0 {
        println!("the copy started over {} time(s)", r.restarts);
    }
    Ok(())
}

fn firmware(config: &Config, c: FirmwareCommand) -> anyhow::Result<()> {
    use weir_gateway::firmware::commands::{self, Group};
    let open = || Store::open(&config.database_path(), config.store.synchronous);
    match c {
        FirmwareCommand::Keygen { out } => {
            let public = commands::keygen(&out)?;
            println!(
                "private key: {} (keep it off the gateway, backed up)",
                out.display()
            );
            println!("public key:  {public}");
            println!("put it in the gateway's configuration: [firmware] public_key = \"{public}\"");
        }
        FirmwareCommand::Sign { image, key, out } => {
            let out = out.unwrap_or_else(|| commands::sig_path(&image));
            commands::sign(&image, &key, &out)?;
            println!("signed {}: {}", image.display(), out.display());
        }
        FirmwareCommand::Add {
            image,
            signature,
            version,
        } => {
            let signature = signature.unwrap_or_else(|| commands::sig_path(&image));
            let store = open()?;
            let (img, new) = commands::add(
                &store.connect()?,
                &config.firmware,
                &image,
                &signature,
                version.as_deref(),
            )?;
            println!(
                "{} image {} ({} bytes, sha256 {}): signature verified",
                if new { "added" } else { "already stored:" },
                img.version,
                img.size,
                img.sha256
            );
        }
        FirmwareCommand::List => {
            let store = open()?;
            println!("{:<24} {:>9}  {:<25}  SHA256", "VERSION", "BYTES", "ADDED");
            for i in store.with(weir_store::firmware::list)? {
                let added = jiff::Timestamp::from_second(i.added_at)
                    .map(|t| t.to_string())
                    .unwrap_or_default();
                println!("{:<24} {:>9}  {added:<25}  {}", i.version, i.size, i.sha256);
            }
        }
        FirmwareCommand::Rollout {
            version,
            terminals,
            percent,
            rest,
            stage,
        } => {
            let group = match (terminals.is_empty(), percent, rest) {
                (false, _, _) => Group::Terminals(terminals),
                (true, Some(p), _) => Group::Percent(p),
                (true, None, true) => Group::Rest,
                (true, None, false) => anyhow::bail!(
                    "say which terminals: --terminals HY-001,HY-002, --percent P or --rest"
                ),
            };
            let store = open()?;
            let ids = commands::roll_out(&mut store.connect()?, &version, &group, stage)?;
            println!(
                "stage {stage}: {version} offered to {} terminal(s): {}",
                ids.len(),
                ids.join(", ")
            );
            println!("the gateway offers it within firmware.poll_s; follow it with `weir firmware status`");
        }
        FirmwareCommand::Status { version } => {
            let store = open()?;
            print!(
                "{}",
                commands::status_text(&store.connect()?, version.as_deref())?
            );
        }
    }
    Ok(())
}

fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).with_context(|| {
        format!("unknown role {s:?}: use one of admin, operator, field, inspector")
    })
}

/// A node's MQTT login, printed once when it is issued: `weir node provision --password` and an
/// external broker's password file need it.
fn print_node_login(id: &str, password: &str) {
    println!("node MQTT user name: {id}");
    println!("node MQTT password:  {password}");
    println!("(the password is shown only now: keep it for the node's provisioning and an external broker's password file)");
}

fn provision_node(config: &Config, a: ProvisionArgs) -> anyhow::Result<()> {
    let board = provision::board(a.board.as_deref().unwrap_or(&config.nodes.board))?;
    let dashboard_url = a
        .dashboard_url
        .unwrap_or_else(|| config.nodes.dashboard_url.clone());
    anyhow::ensure!(
        dashboard_url.starts_with("http://") || dashboard_url.starts_with("https://"),
        "the label's QR code needs the dashboard's address as field staff reach it: give --dashboard-url http(s)://... or set nodes.dashboard_url"
    );
    let req = provision::Request {
        terminal: a.id,
        broker: a.broker.unwrap_or_else(|| config.nodes.broker.clone()),
        time_server: a
            .time_server
            .unwrap_or_else(|| config.nodes.time_server.clone()),
        topic_prefix: config.mqtt.topic_prefix.clone(),
        password: a.password,
        turbidity: a.turbidity.map(|f| f.0),
        flow: a.flow.map(|f| f.0),
        sludge: a.sludge.map(|f| f.0),
        modbus_baud: a.modbus_baud,
        sensor_height_m: a.sensor_height,
        calibrate: a.calibrate,
        network: a.network,
        sample_interval_s: a.sample_interval,
        publish_interval_s: a.publish_interval,
    };
    let store = Store::open(&config.database_path(), config.store.synchronous)?;
    let (done, files) = provision::provision(&mut store.connect()?, &req, |done| {
        provision::write_files(&a.out, done, board, &dashboard_url)
    })?;
    let p = &done.provision;
    println!(
        "provisioned {} ({}) for {}",
        done.terminal.id, done.terminal.name, board.board
    );
    println!(
        "broker {}:{}, time server {}",
        p.broker.host, p.broker.port, p.time_server
    );
    for f in &files {
        println!("wrote {}", f.display());
    }
    if done.new_password {
        println!(
            "a new MQTT password was issued for {}: a node still running an earlier image of this terminal can no longer connect",
            done.terminal.id
        );
        print_node_login(&done.terminal.id, &p.password);
    }
    println!(
        "the image holds the node's password: keep these files private, delete them once flashed"
    );
    Ok(())
}

/// What an async command needs: a runtime that runs one future.
type RunAsync<'a> = &'a dyn Fn(
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>,
) -> anyhow::Result<()>;

fn camera(config: &Config, c: CameraCommand, run_async: RunAsync<'_>) -> anyhow::Result<()> {
    use weir_gateway::pictures::{camera, config::check_camera};
    use weir_store::cameras::{self, Camera};
    let store = Store::open(&config.database_path(), config.store.synchronous)?;
    let all = |store: &Store| -> anyhow::Result<Vec<(Camera, &'static str)>> {
        let set = store.with(cameras::list)?;
        let mut out: Vec<(Camera, &'static str)> = config
            .pictures
            .cameras
            .iter()
            .filter(|(id, _)| !set.iter().any(|c| &c.terminal == *id))
            .map(|(id, c)| {
                (
                    Camera {
                        terminal: id.clone(),
                        url: c.url.clone(),
                        username: c.username.clone(),
                        password: c.password.clone(),
                        interval_s: c.interval_s,
                    },
                    "config file",
                )
            })
            .collect();
        out.extend(set.into_iter().map(|c| (c, "weir terminal camera set")));
        out.sort_by(|a, b| a.0.terminal.cmp(&b.0.terminal));
        Ok(out)
    };
    match c {
        CameraCommand::Set(a) => {
            check_camera("--url/--interval", &a.url, a.interval)?;
            let cam = Camera {
                terminal: a.id.clone(),
                url: a.url,
                username: a.username,
                password: a.password,
                interval_s: a.interval,
            };
            store
                .with(|c| Ok(cameras::set(c, &cam)))
                .context("saving the camera")??;
            println!(
                "camera of {} set: {} every {} s; the running gateway fetches it within a minute (weir terminal camera test {} checks it now)",
                a.id, cam.url, cam.interval_s, a.id
            );
            Ok(())
        }
        CameraCommand::Remove { id } => {
            if store.with(|c| cameras::remove(c, &id))? {
                println!("camera of {id} removed");
            } else {
                println!("{id} had no camera set with weir terminal camera set");
            }
            if config.pictures.cameras.contains_key(&id) {
                println!("the configuration file still sets one under [pictures.cameras.{id}]");
            }
            Ok(())
        }
        CameraCommand::List => {
            let list = all(&store)?;
            if list.is_empty() {
                println!("no cameras (weir terminal camera set ID --url ...)");
            }
            for (c, from) in list {
                let login = if c.username.is_empty() {
                    "no login".to_owned()
                } else {
                    format!("login {}", c.username)
                };
                println!(
                    "{:<12} every {:>5} s  {}  ({login}; {from})",
                    c.terminal, c.interval_s, c.url
                );
            }
            Ok(())
        }
        CameraCommand::Test { id } => {
            let (cam, _) = all(&store)?
                .into_iter()
                .find(|(c, _)| c.terminal == id)
                .with_context(|| {
                    format!("{id} has no camera: weir terminal camera set {id} --url ...")
                })?;
            let p = config.pictures.clone();
            run_async(Box::pin(async move {
                let client =
                    camera::client(std::time::Duration::from_secs(p.camera_timeout_s.into()));
                let started = std::time::Instant::now();
                let bytes = camera::fetch(&client, &cam, p.max_picture_bytes)
                    .await
                    .with_context(|| format!("fetching {}", cam.url))?;
                let bounds = weir_gateway::pictures::examine::Bounds {
                    max_pixels: p.max_pixels,
                    max_side_px: p.max_side_px,
                    thumbnail_width: p.thumbnail_width,
                };
                let e = weir_gateway::pictures::examine::examine(&bytes, None, &bounds)
                    .with_context(|| format!("the answer of {}", cam.url))?;
                println!(
                    "{}: a {} of {} x {} pixels, {} bytes, in {} ms",
                    id,
                    e.kind.content_type(),
                    e.width,
                    e.height,
                    bytes.len(),
                    started.elapsed().as_millis()
                );
                Ok(())
            }))
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Config {
        action: None | Some(ConfigCommand::Print),
    } = cli.command
    {
        print!("{}", weir_gateway::config::default_file());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    weir_gateway::init_logging(&config.log);
    // Everything has been stopped in order when a command returns; a task that still lingers
    // must not keep the process from exiting.
    let run_async =
        |f: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let result = rt.block_on(f);
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            result
        };
    match cli.command {
        Command::Config { .. } => unreachable!("handled above"),
        Command::Export(a) => export(&config, a),
        Command::Serve => run_async(Box::pin(weir_gateway::serve_until_signal(Arc::new(config)))),
        #[cfg(feature = "demo")]
        Command::Demo(args) => run_async(Box::pin(weir_gateway::demo::run(config, args))),
        Command::Terminal(TerminalCommand::Add(a)) => {
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let password = auth::new_password();
            let new = NewTerminal {
                id: a.id.clone(),
                name: a.name,
                village: a.village,
                lat: a.lat,
                lon: a.lon,
                design_flow_m3d: a.design_flow,
                tank_depth_m: a.tank_depth,
            };
            store
                .with(|c| Ok(terminals::add(c, &new, &auth::hash_password(&password))))
                .context("registering the terminal")??;
            println!("registered terminal {}", a.id);
            print_node_login(&a.id, &password);
            Ok(())
        }
        Command::Terminal(TerminalCommand::List) => {
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let list = store.with(terminals::list)?;
            println!(
                "{:<12} {:<24} {:<16} {:>10} {:>10}  SENSORS",
                "ID", "NAME", "VILLAGE", "LAT", "LON"
            );
            for t in list {
                let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.5}"));
                let sensors = store
                    .with(|c| Ok(weir_store::terminals::setup(c, &t.id)))??
                    .map_or("- (not provisioned)".into(), |s| {
                        label::describe_sensors(&s.sensors)
                    });
                println!(
                    "{:<12} {:<24} {:<16} {:>10} {:>10}  {sensors}",
                    t.id,
                    t.name,
                    t.village.unwrap_or_default(),
                    num(t.lat),
                    num(t.lon)
                );
            }
            Ok(())
        }
        Command::Terminal(TerminalCommand::Camera(c)) => camera(&config, c, &run_async),
        Command::Firmware(c) => firmware(&config, c),
        Command::Backup(a) => backup(&config, a),
        Command::Restore { from } => {
            let db = config.database_path();
            let r = weir_store::backup::restore(&from, &db)?;
            if let Some(kept) = &r.kept {
                println!("the database it replaced is kept as {}", kept.display());
            }
            if !r.migrated.is_empty() {
                println!("migrations run on the backup: {}", r.migrated.join(", "));
            }
            println!(
                "restored {} to {} ({} bytes); start the gateway (systemctl start weir)",
                from.display(),
                db.display(),
                r.bytes
            );
            Ok(())
        }
        Command::Node(NodeCommand::Provision(a)) => provision_node(&config, *a),
        Command::Node(NodeCommand::Uf2 {
            input,
            boot_loader,
            out,
            board,
        }) => {
            let board = provision::board(board.as_deref().unwrap_or(&config.nodes.board))?;
            let bin =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let (what, start, end) = if boot_loader {
                ("boot loader", board.boot_loader.0, board.boot_loader.1)
            } else {
                ("firmware", board.firmware, board.firmware_end)
            };
            let room = (end - start) as usize;
            anyhow::ensure!(
                bin.len() <= room,
                "{} is {} bytes; the {what} area of {} holds {room}",
                input.display(),
                bin.len(),
                board.board
            );
            let uf2 = uf2::encode(&bin, start, board.uf2_family);
            std::fs::write(&out, uf2).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{} ({} bytes of firmware for {})",
                out.display(),
                bin.len(),
                board.board
            );
            Ok(())
        }
        Command::Token(TokenCommand::Create { role, name }) => {
            let role = parse_role(&role)?;
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let token = store.with(|c| auth::create_token(c, &name, role))?;
            println!("{token}");
            Ok(())
        }
        Command::Token(TokenCommand::List) => {
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let tokens = store.with(auth::tokens)?;
            if tokens.is_empty() {
                println!("no API tokens");
            }
            for t in tokens {
                println!(
                    "{}  {:<10} {:<24} created {}",
                    t.id,
                    t.role,
                    t.name,
                    weir_contract::Timestamp::from_unix(t.created_at)
                );
            }
            Ok(())
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            store
                .with(|c| Ok(auth::revoke_token(c, &id)))
                .context("revoking the token")??;
            println!("token {id} revoked");
            Ok(())
        }
        Command::User(UserCommand::List) => {
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let users = store.with(auth::users)?;
            if users.is_empty() {
                println!("no users (weir user add NAME --role admin)");
            }
            for u in users {
                println!(
                    "{:<24} {:<10} {} open session(s), created {}",
                    u.username,
                    u.role,
                    u.sessions,
                    weir_contract::Timestamp::from_unix(u.created_at)
                );
            }
            Ok(())
        }
        Command::User(UserCommand::Delete { username }) => {
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            anyhow::ensure!(
                store.with(|c| auth::delete_user(c, &username))?,
                "no user {username} (weir user list shows them)"
            );
            println!("user {username} deleted; its sessions are ended");
            Ok(())
        }
        Command::User(UserCommand::Logout { username }) => {
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let n = store.with(|c| auth::end_sessions(c, &username))?;
            println!("{n} session(s) of {username} ended");
            Ok(())
        }
        Command::User(UserCommand::Add {
            username,
            role,
            password,
            reset,
        }) => {
            let role = parse_role(&role)?;
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let (password, generated) = match password {
                Some(p) => (p, false),
                None => (auth::new_password(), true),
            };
            store
                .with(|c| Ok(auth::put_user(c, &username, &password, role, reset)))
                .context("saving the user")??;
            println!("user {username} ({role}) saved");
            if reset {
                println!("its sessions are ended: it logs in again with the new password");
            }
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
    }
}
