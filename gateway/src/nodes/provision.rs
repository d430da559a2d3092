//! `weir node provision`: binds a node to its terminal.
//!
//! Every node runs the same firmware. Provisioning writes what makes a node *this* terminal's
//! node into a configuration image (`weir_node::provision`): terminal id, MQTT credentials,
//! broker, time server, network, sensors and their calibration. It writes the image three
//! ways: the raw 4 KiB sector (`HY-017.weircfg`, for probe-rs or a serial tool), a UF2 file
//! that writes only that sector (`HY-017-config.uf2`, dragged onto the board's USB drive), and
//! a printable label (`HY-017-label.svg`) whose QR code opens the terminal's dashboard page.
//!
//! How the node is wired is kept in the terminal registry, so provisioning a replacement
//! node needs only the terminal id.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context as _};
use rusqlite::Connection;
use weir_contract::{Calibration, Quantity, TerminalId};
use weir_node::provision::{
    layout::{FlashLayout, BOARDS},
    Broker, FlowSensor, Network, Provision, TurbiditySensor, Ultrasonic, IMAGE_LEN,
};
use weir_store::auth;
use weir_store::terminals::{self, Terminal};

/// What the person provisioning asks for; unset fields keep the registry's record.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The terminal, already registered.
    pub terminal: String,
    /// `host:port` or `host` (port 1883).
    pub broker: String,
    /// SNTP server.
    pub time_server: String,
    /// Topic prefix.
    pub topic_prefix: String,
    /// The node's current password, to keep it; `None` issues a new one.
    pub password: Option<String>,
    /// Changes to the setup (see `super::args` for the spellings).
    pub turbidity: Option<Option<TurbiditySensor>>,
    /// Flow meter.
    pub flow: Option<Option<FlowSensor>>,
    /// Sludge sensor.
    pub sludge: Option<Option<Ultrasonic>>,
    /// Modbus baud rate.
    pub modbus_baud: Option<u32>,
    /// Ultrasonic sensor height, m.
    pub sensor_height_m: Option<f64>,
    /// Calibrations to set.
    pub calibrate: Vec<(Quantity, Calibration)>,
    /// Network.
    pub network: Option<Network>,
    /// Sample interval, s.
    pub sample_interval_s: Option<u32>,
    /// Publish interval, s.
    pub publish_interval_s: Option<u32>,
}

/// What provisioning produced.
#[derive(Debug)]
pub struct Provisioned {
    /// The terminal as registered.
    pub terminal: Terminal,
    /// The image's content.
    pub provision: Provision,
    /// The 4 KiB sector.
    pub image: Box<[u8; IMAGE_LEN]>,
    /// A new password was issued (the node's earlier image no longer connects).
    pub new_password: bool,
}

/// Provisions `req.terminal`: checks or issues its password, records its setup in the
/// registry and builds the image, which `deliver` writes out before anything is committed.
/// Nothing is changed when any part is wrong, `deliver` included: a node's password is never
/// replaced by one that reached no file.
pub fn provision<T>(
    conn: &mut Connection,
    req: &Request,
    deliver: impl FnOnce(&Provisioned) -> anyhow::Result<T>,
) -> anyhow::Result<(Provisioned, T)> {
    TerminalId::new(&req.terminal)
        .map_err(|e| anyhow::anyhow!("terminal id {:?}: {}", req.terminal, e.reason))?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let terminal = terminals::get(&tx, &req.terminal)?.with_context(|| {
        format!(
            "no terminal {} in the registry: register it first with `weir terminal add {} --name ...`",
            req.terminal, req.terminal
        )
    })?;
    let mut setup = terminals::setup(&tx, &terminal.id)?.unwrap_or_default();
    if let Some(t) = req.turbidity {
        setup.sensors.turbidity = t;
    }
    if let Some(f) = req.flow {
        setup.sensors.flow = f;
    }
    if let Some(s) = req.sludge {
        setup.sensors.sludge = s;
    }
    if let Some(b) = req.modbus_baud {
        setup.sensors.modbus_baud = b;
    }
    if let Some(h) = req.sensor_height_m {
        setup.sensor_height_m = Some(h);
    }
    for (q, c) in &req.calibrate {
        setup.calibration.set(*q, Some(*c));
    }
    if let Some(n) = req.network {
        setup.network = Some(n);
    }
    if req.sample_interval_s.is_some() {
        setup.sample_interval_s = req.sample_interval_s;
    }
    if req.publish_interval_s.is_some() {
        setup.publish_interval_s = req.publish_interval_s;
    }
    let s = &setup.sensors;
    ensure!(
        s.turbidity.is_some() || s.flow.is_some() || s.sludge.is_some(),
        "{} has no sensors on record: say which are wired with --turbidity, --flow and --sludge",
        terminal.id
    );
    if s.sludge.is_some() {
        ensure!(
            terminal.tank_depth_m.is_some(),
            "{} has a sludge sensor but no tank depth in the registry: set it with `weir terminal add` (--tank-depth)",
            terminal.id
        );
        ensure!(
            setup.sensor_height_m.is_some(),
            "{} has a sludge sensor: give --sensor-height (m from the tank bottom to the sensor's face)",
            terminal.id
        );
    }

    let config = super::config::of(&terminal, &setup);

    let stored_hash = terminals::password_hash(&tx, &terminal.id)?;
    let (password, new_password) = match &req.password {
        Some(p) => {
            ensure!(
                stored_hash
                    .as_deref()
                    .is_some_and(|h| auth::verify_password(p.as_bytes(), h)),
                "the password given is not {}'s node password: leave out --password to issue a new one",
                terminal.id
            );
            (p.clone(), false)
        }
        None => (auth::new_password(), true),
    };

    let (host, port) = split_broker(&req.broker)?;
    let provision = Provision {
        terminal: text(&terminal.id, "terminal")?,
        password: text(&password, "password")?,
        broker: Broker {
            host: text(&host, "broker host")?,
            port,
        },
        topic_prefix: text(&req.topic_prefix, "topic prefix")?,
        time_server: text(&req.time_server, "time server")?,
        network: setup.network.unwrap_or(Network::Dhcp),
        sensors: setup.sensors,
        config,
    };
    let mut image = Box::new([0u8; IMAGE_LEN]);
    provision
        .write(&mut image)
        .map_err(|e| anyhow::anyhow!("the configuration image for {}: {e}", terminal.id))?;

    terminals::save_setup(&tx, &terminal.id, &setup)?;
    if new_password {
        terminals::set_password_hash(&tx, &terminal.id, &auth::hash_password(&password))?;
    }
    let done = Provisioned {
        terminal,
        provision,
        image,
        new_password,
    };
    let delivered = deliver(&done)?;
    tx.commit()?;
    Ok((done, delivered))
}

fn text<const N: usize>(s: &str, what: &str) -> anyhow::Result<heapless::String<N>> {
    heapless::String::try_from(s)
        .map_err(|_| anyhow::anyhow!("{what} {s:?} is longer than {N} bytes"))
}

/// `host:port` or `host` (port 1883).
pub fn split_broker(s: &str) -> anyhow::Result<(String, u16)> {
    ensure!(
        !s.is_empty(),
        "no broker address for nodes: give --broker HOST[:PORT] (as nodes reach it from the cabinet) or set nodes.broker"
    );
    match s.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_string(),
            port.parse()
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("broker port {port:?} is not a number from 1 to 65535"))?,
        )),
        None => Ok((s.to_string(), 1883)),
    }
}

/// The board named `name`.
pub fn board(name: &str) -> anyhow::Result<&'static FlashLayout> {
    BOARDS.iter().find(|b| b.board == name).with_context(|| {
        let names: Vec<_> = BOARDS.iter().map(|b| b.board).collect();
        format!("unknown board {name:?}: one of {}", names.join(", "))
    })
}

/// The files `weir node provision` writes, in `dir`.
pub fn write_files(
    dir: &Path,
    done: &Provisioned,
    board: &FlashLayout,
    dashboard_url: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let id = &done.terminal.id;
    let files = [
        (dir.join(format!("{id}.weircfg")), done.image.to_vec()),
        (
            dir.join(format!("{id}-config.uf2")),
            super::uf2::encode(&done.image[..], board.provision, board.uf2_family),
        ),
        (
            dir.join(format!("{id}-label.svg")),
            super::label::label_svg(&done.terminal, &done.provision, dashboard_url)?.into_bytes(),
        ),
    ];
    let mut paths = Vec::new();
    for (path, bytes) in files {
        write_private(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

/// The image holds the node's password: only its owner may read it.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    // `mode` applies only to a new file: an existing one (a node provisioned again) keeps
    // its mode unless it is set here, before the password is written into it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}
