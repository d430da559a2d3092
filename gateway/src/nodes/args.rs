//! The spellings of `weir node provision`'s options, as clap value parsers: each names what
//! it expected when a value does not read.

use anyhow::{bail, ensure, Context as _};
use weir_contract::{Calibration, Quantity};
use weir_node::provision::{parse_ipv4, FlowSensor, Network, TurbiditySensor, Ultrasonic};

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

/// A sensor option's value: the sensor, or none (`none`) for a terminal without one.
#[derive(Clone, Debug, PartialEq)]
pub struct Fitted<T>(pub Option<T>);

/// For clap: the error with its causes, on one line.
fn for_clap<T>(r: anyhow::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{e:#}"))
}

/// `--turbidity`, see [`parse_turbidity`].
pub fn turbidity(s: &str) -> Result<Fitted<TurbiditySensor>, String> {
    for_clap(parse_turbidity(s).map(Fitted))
}

/// `--flow`, see [`parse_flow`].
pub fn flow(s: &str) -> Result<Fitted<FlowSensor>, String> {
    for_clap(parse_flow(s).map(Fitted))
}

/// `--sludge`, see [`parse_sludge`].
pub fn sludge(s: &str) -> Result<Fitted<Ultrasonic>, String> {
    for_clap(parse_sludge(s).map(Fitted))
}

/// `--network`, see [`parse_network`].
pub fn network(s: &str) -> Result<Network, String> {
    for_clap(parse_network(s))
}

/// `--calibrate`, see [`parse_calibration`].
pub fn calibration(s: &str) -> Result<(Quantity, Calibration), String> {
    for_clap(parse_calibration(s))
}
