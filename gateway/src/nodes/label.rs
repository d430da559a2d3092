//! The cabinet label: a QR code of the terminal's dashboard page, its id, name and village,
//! and what its node was provisioned with.

use anyhow::Context as _;
use weir_node::provision::{FlowSensor, Provision, SensorSet, TurbiditySensor};
use weir_store::terminals::Terminal;

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
