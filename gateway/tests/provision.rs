//! `weir node provision` and `weir node uf2`, run as field staff run them, against a running
//! gateway: the image they write is what the node core parses, the UF2 file writes exactly
//! the board's configuration sector, the label's QR code opens the terminal's page, and the
//! credentials in the image let the node in.

mod support;

use std::path::Path;
use std::process::Command;

use support::{config, printed_password, rfc3339, try_mosquitto_pub, Gateway};
use weir_contract::Calibration;
use weir_gateway::nodes::uf2;
use weir_node::provision::{
    layout::W5500_EVB_PICO, parse, FlowSensor, Network, TurbiditySensor, Ultrasonic, IMAGE_LEN,
};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const DASHBOARD: &str = "http://weir.county.example:8080";

fn weir(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(WEIR)
        .env("WEIR_DATA_DIR", data)
        .env("WEIR_LOG", "warn")
        .env_remove("WEIR_NODE_PASSWORD")
        .args(args)
        .output()
        .expect("running weir")
}

/// `node provision ID --out OUT [--broker B] [--dashboard-url D] EXTRA...`.
fn provision<'a>(
    id: &'a str,
    out: &'a Path,
    broker: Option<&'a str>,
    dashboard: Option<&'a str>,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec!["node", "provision", id, "--out", out.to_str().unwrap()];
    if let Some(b) = broker {
        a.extend(["--broker", b]);
    }
    if let Some(d) = dashboard {
        a.extend(["--dashboard-url", d]);
    }
    a.extend_from_slice(extra);
    a
}

/// The blocks of a UF2 file as (address, payload), checked against the format's specification
/// (github.com/microsoft/uf2): magic numbers, family flag and id, numbering.
fn uf2_blocks(bytes: &[u8], family: u32) -> Vec<(u32, Vec<u8>)> {
    assert!(
        !bytes.is_empty() && bytes.len().is_multiple_of(512),
        "whole 512-byte blocks"
    );
    let total = bytes.len() / 512;
    bytes
        .chunks(512)
        .enumerate()
        .map(|(i, block)| {
            let w = |j: usize| u32::from_le_bytes(block[j * 4..j * 4 + 4].try_into().unwrap());
            assert_eq!(
                (w(0), w(1), w(127)),
                (0x0A32_4655, 0x9E5D_5157, 0x0AB1_6F30),
                "block {i}"
            );
            assert!(w(2) & 0x2000 != 0 && w(7) == family, "block {i}: family");
            assert_eq!(
                (w(5) as usize, w(6) as usize),
                (i, total),
                "block {i}: numbering"
            );
            let len = w(4) as usize;
            assert!(len <= 476, "block {i}: payload of {len} bytes");
            (w(3), block[32..32 + len].to_vec())
        })
        .collect()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "weir failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(out: std::process::Output) -> String {
    assert!(!out.status.success(), "weir should have refused");
    String::from_utf8(out.stderr).unwrap()
}

/// Reads the label's QR code back: the SVG path's squares onto a bitmap, then a QR decoder.
fn qr_of_label(svg: &str) -> String {
    let d = svg
        .split("<path d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let squares: Vec<(f64, f64)> = d
        .split('M')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let mut it = s.split(['h', ' ']);
            (
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let module: f64 = d
        .split('h')
        .nth(1)
        .unwrap()
        .split('v')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cells: Vec<(usize, usize)> = squares
        .iter()
        .map(|(x, y)| ((x / module).round() as usize, (y / module).round() as usize))
        .collect();
    let size = cells.iter().map(|(x, y)| x.max(y)).max().unwrap() + 5;
    let px = 4;
    let mut img = rqrr::PreparedImage::prepare_from_bitmap(size * px, size * px, |x, y| {
        cells.contains(&(x / px, y / px))
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code on the label");
    grids[0].decode().unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_image_is_what_the_node_reads_and_lets_the_node_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    let g = Gateway::start(config(&data, None)).await;
    let port = g.running.mqtt_addr.unwrap().port();

    let added = ok(weir(
        &data,
        &[
            "terminal",
            "add",
            "HY-017",
            "--name",
            "Dongshan outlet",
            "--village",
            "东山",
            "--tank-depth",
            "2.5",
        ],
    ));
    let first_password = printed_password(&added);

    let broker = format!("127.0.0.1:{port}");
    let o = dir.path().join("out");
    let printed = ok(weir(
        &data,
        &provision(
            "HY-017",
            &o,
            Some(&broker),
            Some(DASHBOARD),
            &[
                "--turbidity",
                "modbus:1",
                "--flow",
                "pulse:100",
                "--sludge",
                "ultrasonic:30-4500",
                "--sensor-height",
                "3.1",
                "--calibrate",
                "turbidity_ntu:-0.4:1.02",
                "--network",
                "static:192.168.8.20/24,gw=192.168.8.1",
                "--publish-interval",
                "600",
            ],
        ),
    ));
    assert!(
        printed.contains("a new MQTT password was issued"),
        "{printed}"
    );

    // The registry shows the sensors, to people and to scripts; the gateway publishes the
    // node's config from the same record.
    let listed = ok(weir(&data, &["terminal", "list"]));
    assert!(
        listed.contains("NTU modbus 1, flow 100 p/m3, sludge ultrasonic"),
        "{listed}"
    );
    let (_, body) = g.get("/api/v1/terminals/HY-017").await;
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        view["sensors"]["flow"]["Pulse"]["pulses_per_m3"], 100.0,
        "{view}"
    );
    let (_, body) = g.get("/api/v1/terminals/HY-017/config").await;
    let published: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        published["config"]["publish_interval_s"], 600,
        "{published}"
    );
    assert_eq!(published["config"]["sensor_height_m"], 3.1, "{published}");

    // The node core reads the image.
    let image = std::fs::read(out.join("HY-017.weircfg")).unwrap();
    assert_eq!(image.len(), IMAGE_LEN);
    let p = parse(&image).expect("the node core parses the image");
    assert_eq!(p.terminal.as_str(), "HY-017");
    assert_eq!((p.broker.host.as_str(), p.broker.port), ("127.0.0.1", port));
    assert_eq!(p.topic_prefix.as_str(), "weir");
    assert_eq!(p.time_server.as_str(), "cn.pool.ntp.org");
    assert_eq!(
        p.network,
        Network::Static {
            address: [192, 168, 8, 20],
            prefix_len: 24,
            gateway: [192, 168, 8, 1],
            dns: [192, 168, 8, 1]
        }
    );
    assert_eq!(
        p.sensors.turbidity,
        Some(TurbiditySensor::Modbus { slave: 1 })
    );
    assert_eq!(
        p.sensors.flow,
        Some(FlowSensor::Pulse {
            pulses_per_m3: 100.0
        })
    );
    assert_eq!(
        p.sensors.sludge,
        Some(Ultrasonic {
            min_mm: 30,
            max_mm: 4500
        })
    );
    assert_eq!(p.config.tank_depth_m, Some(2.5), "from the registry");
    assert_eq!(p.config.sensor_height_m, Some(3.1));
    assert_eq!(p.config.publish_interval_s, 600);
    assert_eq!(p.config.sample_interval_s, 60);
    assert_eq!(
        p.config.calibration.turbidity_ntu,
        Some(Calibration {
            offset: -0.4,
            scale: 1.02
        })
    );
    assert_ne!(p.password.as_str(), first_password);
    assert!(
        printed.contains(&format!("node MQTT password:  {}", p.password)),
        "the new password is printed once, for an external broker's password file: {printed}"
    );

    // The UF2 file writes the image, whole, into the board's configuration sector only.
    let blocks = uf2_blocks(
        &std::fs::read(out.join("HY-017-config.uf2")).unwrap(),
        W5500_EVB_PICO.uf2_family,
    );
    let mut written = Vec::new();
    for (i, (addr, payload)) in blocks.iter().enumerate() {
        assert_eq!(*addr, W5500_EVB_PICO.provision + (i * uf2::PAYLOAD) as u32);
        written.extend_from_slice(payload);
    }
    assert_eq!(written, image);
    assert_eq!(
        W5500_EVB_PICO.provision as u64 + IMAGE_LEN as u64,
        W5500_EVB_PICO.flash_base as u64 + W5500_EVB_PICO.flash_len as u64,
        "the configuration is the last sector"
    );

    // The label opens the terminal's page and never shows the password.
    let label = std::fs::read_to_string(out.join("HY-017-label.svg")).unwrap();
    assert_eq!(qr_of_label(&label), format!("{DASHBOARD}/terminals/HY-017"));
    assert!(label.contains("Dongshan outlet") && label.contains("东山"));
    assert!(!label.contains(p.password.as_str()));

    // The image's credentials let the node in; the password from `terminal add` no longer.
    let now = weir_store::now();
    let line = format!(
        r#"{{"boot":1,"seq":1,"readings":[{{"ts":"{}","flow_m3h":1.5,"turbidity_ntu":3.2}}]}}"#,
        rfc3339(now - 60)
    );
    let topic = "weir/terminals/HY-017/telemetry";
    assert!(!try_mosquitto_pub(
        port,
        Some(("HY-017", &first_password)),
        topic,
        std::slice::from_ref(&line)
    ));
    assert!(try_mosquitto_pub(
        port,
        Some(("HY-017", p.password.as_str())),
        topic,
        &[line]
    ));
    g.eventually(20, || async {
        let (_, body) = g
            .get(&format!(
                "/api/v1/terminals/HY-017/readings?from={}&to={}",
                rfc3339(now - 120),
                rfc3339(now)
            ))
            .await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (v["readings"].as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;

    // A replacement node: only the id, keeping the password; the wiring comes from the registry.
    // Its image is written over an old copy someone left readable by everyone: the image
    // holds the password, so it ends up readable by its owner only.
    let again = dir.path().join("again");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(&again).unwrap();
        let old = again.join("HY-017.weircfg");
        std::fs::write(&old, b"old image").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let printed = ok(weir(
        &data,
        &provision(
            "HY-017",
            &again,
            Some(&broker),
            Some(DASHBOARD),
            &["--password", p.password.as_str()],
        ),
    ));
    assert!(!printed.contains("new MQTT password"), "{printed}");
    let q = parse(&std::fs::read(again.join("HY-017.weircfg")).unwrap()).unwrap();
    assert_eq!(q, p);
    for file in ["HY-017.weircfg", "HY-017-config.uf2"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(again.join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }

    // Wrong input is refused by name, and changes nothing.
    let before = std::fs::read(again.join("HY-017.weircfg")).unwrap();
    let with =
        |extra: &[&'static str]| provision("HY-017", &again, Some(&broker), Some(DASHBOARD), extra);
    // An output "directory" that is a file: the files cannot be written, so the new password
    // they would carry must not replace the node's.
    let not_a_dir = dir.path().join("not-a-directory");
    std::fs::write(&not_a_dir, b"").unwrap();
    for (args, says) in [
        (
            with(&["--password", "not-the-password"]),
            "not HY-017's node password",
        ),
        (with(&["--flow", "pulse:0"]), "pulses per m3"),
        (
            with(&["--turbidity", "modbus:300"]),
            "Modbus address \"300\"",
        ),
        (
            with(&["--calibrate", "colour:1"]),
            "\"colour\" is not one of",
        ),
        (with(&["--network", "static:10.0.0.2"]), "no /PREFIX"),
        (with(&["--sample-interval", "2"]), "config: out of range"),
        (
            provision("HY-099", &again, Some(&broker), Some(DASHBOARD), &[]),
            "no terminal HY-099",
        ),
        (
            provision("HY-017", &again, Some(&broker), None, &[]),
            "--dashboard-url",
        ),
        (
            provision("HY-017", &again, None, Some(DASHBOARD), &[]),
            "--broker",
        ),
        (
            provision("HY-017", &not_a_dir, Some(&broker), Some(DASHBOARD), &[]),
            "not-a-directory",
        ),
    ] {
        let err = refused(weir(&data, &args));
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(again.join("HY-017.weircfg")).unwrap(), before);
    let line = format!(
        r#"{{"boot":1,"seq":2,"readings":[{{"ts":"{}","flow_m3h":1.6}}]}}"#,
        rfc3339(now - 30)
    );
    assert!(
        try_mosquitto_pub(port, Some(("HY-017", p.password.as_str())), topic, &[line]),
        "a refused provisioning left the node's password alone"
    );
    g.stop().await;
}

#[test]
fn a_firmware_binary_becomes_a_uf2_for_the_boards_firmware_area() {
    let dir = tempfile::tempdir().unwrap();
    let bin: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("fw.bin"), &bin).unwrap();
    let uf2_path = dir.path().join("fw.uf2");
    ok(weir(
        dir.path(),
        &[
            "node",
            "uf2",
            dir.path().join("fw.bin").to_str().unwrap(),
            "-o",
            uf2_path.to_str().unwrap(),
        ],
    ));
    let blocks = uf2_blocks(
        &std::fs::read(&uf2_path).unwrap(),
        W5500_EVB_PICO.uf2_family,
    );
    assert_eq!(blocks.len(), bin.len().div_ceil(uf2::PAYLOAD));
    assert_eq!(blocks[0].0, W5500_EVB_PICO.firmware);
    let mut back: Vec<u8> = blocks.into_iter().flat_map(|(_, p)| p).collect();
    back.truncate(bin.len());
    assert_eq!(back, bin);

    // A binary that would run into the node's flash partitions is refused.
    let room = (W5500_EVB_PICO.firmware_end - W5500_EVB_PICO.firmware) as usize;
    std::fs::write(dir.path().join("big.bin"), vec![0u8; room + 1]).unwrap();
    let err = refused(weir(
        dir.path(),
        &[
            "node",
            "uf2",
            dir.path().join("big.bin").to_str().unwrap(),
            "-o",
            uf2_path.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("firmware area"), "{err}");
}
