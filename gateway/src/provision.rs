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

use anyhow::{bail, ensure, Context as _};
use rusqlite::Connection;

use weir_contract::{Calibration, Quantity, TerminalId};
use weir_node::provision::{
    layout::{FlashLayout, BOARDS},
    parse_ipv4, Broker, FlowSensor, Network, Provision, SensorSet, TurbiditySensor, Ultrasonic,
    IMAGE_LEN,
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
    /// Changes to the setup (see [`parse_turbidity`] and friends for the spellings).
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

    let config = crate::node_config::of(&terminal, &setup);

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

/// `modbus:SLAVE`, `loop:AT4-AT20` (NTU at 4 and 20 mA), or `none`.
pub fn parse_turbidity(s: &str) -> anyhow::Result<Option<TurbiditySensor>> {
    match s.split_once(':') {
        None if s == "none" => Ok(None),
        Some(("modbus", slave)) => Ok(Some(TurbiditySensor::Modbus {
            slave: parse_slave(slave)?,
        })),
        Some(("loop", span)) => {
            let (lo, hi) = span
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .with_context(|| format!("4-20 mA span {span:?}: write it as NTU at 4 mA, '-', NTU at 20 mA (0-1000)"))?;
            Ok(Some(TurbiditySensor::Loop {
                at_4ma: lo,
                at_20ma: hi,
            }))
        }
        _ => bail!("turbidity sensor {s:?}: use modbus:SLAVE (e.g. modbus:1), loop:0-1000 or none"),
    }
}

/// `modbus:SLAVE`, `pulse:PULSES_PER_M3`, or `none`.
pub fn parse_flow(s: &str) -> anyhow::Result<Option<FlowSensor>> {
    match s.split_once(':') {
        None if s == "none" => Ok(None),
        Some(("modbus", slave)) => Ok(Some(FlowSensor::Modbus {
            slave: parse_slave(slave)?,
        })),
        Some(("pulse", n)) => Ok(Some(FlowSensor::Pulse {
            pulses_per_m3: n
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0)
                .with_context(|| format!("pulses per m3 {n:?} is not a positive number"))?,
        })),
        _ => bail!("flow meter {s:?}: use modbus:SLAVE (e.g. modbus:2), pulse:PULSES_PER_M3 (e.g. pulse:100) or none"),
    }
}

/// `ultrasonic`, `ultrasonic:MIN-MAX` (mm), or `none`.
pub fn parse_sludge(s: &str) -> anyhow::Result<Option<Ultrasonic>> {
    match s.split_once(':') {
        None if s == "none" => Ok(None),
        None if s == "ultrasonic" => Ok(Some(Ultrasonic::default())),
        Some(("ultrasonic", range)) => {
            let (min_mm, max_mm) = range
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .with_context(|| {
                    format!("ultrasonic range {range:?}: write it as MIN-MAX in mm (30-4500)")
                })?;
            Ok(Some(Ultrasonic { min_mm, max_mm }))
        }
        _ => bail!("sludge sensor {s:?}: use ultrasonic, ultrasonic:MIN-MAX (mm) or none"),
    }
}

fn parse_slave(s: &str) -> anyhow::Result<u8> {
    s.parse()
        .ok()
        .filter(|v| (1..=247).contains(v))
        .with_context(|| format!("Modbus address {s:?} is not a number from 1 to 247"))
}

/// `dhcp`, or `static:ADDRESS/PREFIX,gw=ROUTER[,dns=SERVER]` (the router is the DNS server
/// when none is given).
pub fn parse_network(s: &str) -> anyhow::Result<Network> {
    if s == "dhcp" {
        return Ok(Network::Dhcp);
    }
    let usage = "network: use dhcp, or static:ADDRESS/PREFIX,gw=ROUTER[,dns=SERVER] (e.g. static:192.168.8.20/24,gw=192.168.8.1)";
    let Some(rest) = s.strip_prefix("static:") else {
        bail!("{s:?}: {usage}");
    };
    let mut parts = rest.split(',');
    let cidr = parts.next().unwrap_or_default();
    let (addr, prefix) = cidr
        .split_once('/')
        .with_context(|| format!("{cidr:?} has no /PREFIX: {usage}"))?;
    let ip =
        |v: &str| parse_ipv4(v).with_context(|| format!("{v:?} is not an IPv4 address: {usage}"));
    let address = ip(addr)?;
    let prefix_len = prefix
        .parse()
        .ok()
        .filter(|p| (1..=32).contains(p))
        .with_context(|| format!("prefix {prefix:?} is not 1 to 32"))?;
    let (mut gateway, mut dns) = (None, None);
    for p in parts {
        match p.split_once('=') {
            Some(("gw", v)) => gateway = Some(ip(v)?),
            Some(("dns", v)) => dns = Some(ip(v)?),
            _ => bail!("{p:?}: {usage}"),
        }
    }
    let gateway = gateway.with_context(|| format!("no gw=ROUTER: {usage}"))?;
    Ok(Network::Static {
        address,
        prefix_len,
        gateway,
        dns: dns.unwrap_or(gateway),
    })
}

/// `QUANTITY:OFFSET[:SCALE]`, e.g. `turbidity_ntu:-0.4` or `flow_m3h:0:1.03`.
pub fn parse_calibration(s: &str) -> anyhow::Result<(Quantity, Calibration)> {
    let mut parts = s.split(':');
    let name = parts.next().unwrap_or_default();
    let q = Quantity::from_field(name).with_context(|| {
        let names: Vec<_> = Quantity::ALL.iter().map(|q| q.field()).collect();
        format!(
            "calibration {s:?}: {name:?} is not one of {}",
            names.join(", ")
        )
    })?;
    let num = |v: Option<&str>, what: &str, default: Option<f64>| -> anyhow::Result<f64> {
        match v {
            None => default.with_context(|| {
                format!("calibration {s:?}: no {what}; write QUANTITY:OFFSET[:SCALE]")
            }),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .with_context(|| format!("calibration {s:?}: {what} {v:?} is not a number")),
        }
    };
    let offset = num(parts.next(), "offset", None)?;
    let scale = num(parts.next(), "scale", Some(1.0))?;
    ensure!(
        parts.next().is_none(),
        "calibration {s:?}: write QUANTITY:OFFSET[:SCALE]"
    );
    ensure!(
        scale != 0.0,
        "calibration {s:?}: a scale of 0 would erase the reading"
    );
    Ok((q, Calibration { offset, scale }))
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
            uf2::encode(&done.image[..], board.provision, board.uf2_family),
        ),
        (
            dir.join(format!("{id}-label.svg")),
            label_svg(&done.terminal, &done.provision, dashboard_url)?.into_bytes(),
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
    f.write_all(bytes)?;
    f.sync_all()
}

/// The terminal page's address, which the label's QR code opens.
pub fn terminal_url(dashboard_url: &str, id: &str) -> String {
    format!("{}/terminals/{id}", dashboard_url.trim_end_matches('/'))
}

/// A label for the cabinet door, 62 mm x 50 mm (a common thermal label width): the QR code of
/// the terminal's page, the terminal id large, its name and village, and below, across the
/// label, what the node was provisioned with (never the password).
pub fn label_svg(t: &Terminal, p: &Provision, dashboard_url: &str) -> anyhow::Result<String> {
    let url = terminal_url(dashboard_url, &t.id);
    let code = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .context("the terminal's address is too long for a QR code")?;
    let n = code.width();
    let colors = code.to_colors();
    // The QR code, with its 4-module quiet zone, fills a 33 mm square at the top left.
    let module = 33.0 / (n + 8) as f64;
    let mut path = String::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = ((i % n + 4) as f64 * module, (i / n + 4) as f64 * module);
            path.push_str(&format!(
                "M{x:.3} {y:.3}h{module:.3}v{module:.3}h-{module:.3}z"
            ));
        }
    }
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    Ok(format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="62mm" height="50mm" viewBox="0 0 62 50" font-family="sans-serif">
<title>{id} {name}</title>
<desc>Weir node label. QR code: {url_e}</desc>
<rect width="62" height="50" fill="#fff"/>
<path d="{path}" fill="#000"/>
<text x="34" y="10" font-size="6" font-weight="bold">{id}</text>
<text x="34" y="17" font-size="3">{name}</text>
<text x="34" y="21.5" font-size="3">{village}</text>
<text x="34" y="29" font-size="2.4">扫码查看站点</text>
<text x="34" y="32" font-size="2.4">Scan: terminal page</text>
<text x="3" y="38" font-size="2.4">MQTT {id} @ {host}:{port}</text>
<text x="3" y="42" font-size="2.4">{sensors}</text>
<text x="3" y="46" font-size="2.4">{url_e}</text>
</svg>
"##,
        id = esc(&t.id),
        name = esc(&t.name),
        village = esc(t.village.as_deref().unwrap_or("")),
        url_e = esc(&url),
        host = esc(&p.broker.host),
        port = p.broker.port,
        sensors = esc(&describe_sensors(&p.sensors)),
    ))
}

/// The sensors in a few words, such as `NTU modbus 1, flow 100 p/m3, sludge ultrasonic`.
pub fn describe_sensors(s: &SensorSet) -> String {
    let mut parts = Vec::new();
    match s.turbidity {
        Some(TurbiditySensor::Modbus { slave }) => parts.push(format!("NTU modbus {slave}")),
        Some(TurbiditySensor::Loop { .. }) => parts.push("NTU 4-20mA".into()),
        None => {}
    }
    match s.flow {
        Some(FlowSensor::Modbus { slave }) => parts.push(format!("flow modbus {slave}")),
        Some(FlowSensor::Pulse { pulses_per_m3 }) => {
            parts.push(format!("flow {pulses_per_m3} p/m3"))
        }
        None => {}
    }
    if s.sludge.is_some() {
        parts.push("sludge ultrasonic".into());
    }
    parts.join(", ")
}

/// UF2, the USB drag-and-drop flashing format of the RP2040's boot ROM (and many others):
/// 512-byte blocks, each carrying 256 bytes for one flash address.
/// <https://github.com/microsoft/uf2> describes the format.
pub mod uf2 {
    const MAGIC_START0: u32 = 0x0A32_4655;
    const MAGIC_START1: u32 = 0x9E5D_5157;
    const MAGIC_END: u32 = 0x0AB1_6F30;
    const FLAG_FAMILY_ID: u32 = 0x0000_2000;
    /// Payload bytes per block.
    pub const PAYLOAD: usize = 256;

    /// `data`, to be written from `addr`, as UF2 blocks for chips of `family`.
    pub fn encode(data: &[u8], addr: u32, family: u32) -> Vec<u8> {
        let chunks: Vec<&[u8]> = data.chunks(PAYLOAD).collect();
        let mut out = Vec::with_capacity(chunks.len() * 512);
        for (i, chunk) in chunks.iter().enumerate() {
            let mut block = [0u8; 512];
            let words = [
                MAGIC_START0,
                MAGIC_START1,
                FLAG_FAMILY_ID,
                addr + (i * PAYLOAD) as u32,
                PAYLOAD as u32,
                i as u32,
                chunks.len() as u32,
                family,
            ];
            for (j, w) in words.iter().enumerate() {
                block[j * 4..j * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            block[32..32 + chunk.len()].copy_from_slice(chunk);
            block[508..].copy_from_slice(&MAGIC_END.to_le_bytes());
            out.extend_from_slice(&block);
        }
        out
    }
}
