//! The dashboard in a real browser: `npm test` in dashboard/ (node's test runner, playwright-core
//! driving Debian's Chromium) against `weir demo`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

/// The gateway's build script, whose checks run here as functions.
#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;
mod support;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn weir(data: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(WEIR)
        .env("WEIR_DATA_DIR", data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weir {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[cfg(feature = "demo")]
fn the_dashboard_passes_its_browser_tests_against_the_demo() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests drive Debian's Chromium: apt-get install chromium (bash .ci/install)"
    );
    let dir = tempfile::tempdir().unwrap();
    // The demo simulates 37 terminals; the browser tests play the 38th's node themselves, so
    // it must be quiet and its password known.
    let gateway_data = dir.path().join("gateway");
    let added = weir(
        &gateway_data,
        &[
            "terminal",
            "add",
            "HY-038",
            "--name",
            "澉浦镇5号终端",
            "--village",
            "澉浦镇",
            "--lat",
            "30.372",
            "--lon",
            "120.921",
            "--design-flow",
            "40",
        ],
    );
    let node_password = support::printed_password(&added);
    weir(
        &gateway_data,
        &[
            "user",
            "add",
            "inspector",
            "--role",
            "inspector",
            "--password",
            "inspector-pass-1",
        ],
    );

    // A camera in HY-038's cabinet, served here: the browser tests see its snapshot on the
    // terminal's page.
    let camera_rt = tokio::runtime::Runtime::new().unwrap();
    let camera_url = camera_rt.block_on(async {
        let img = image::RgbImage::from_fn(480, 270, |x, y| {
            image::Rgb([(60 + x / 4) as u8, (120 + y / 4) as u8, 90])
        });
        let mut snapshot = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut snapshot)
            .encode_image(&img)
            .unwrap();
        let app = axum::Router::new().route(
            "/snapshot.jpg",
            axum::routing::get(move || {
                let body = snapshot.clone();
                async move { ([("content-type", "image/jpeg")], body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/snapshot.jpg")
    });
    weir(
        &gateway_data,
        &["terminal", "camera", "set", "HY-038", "--url", &camera_url],
    );
    // The same camera for each of the demo's terminals, from the configuration file: each
    // snapshot is fetched at start, so the alerts the demo's scripted faults raise a few
    // seconds later have a picture from before them.
    let config_file = dir.path().join("weir.toml");
    let demo_terminals: Vec<String> = (1..=37).map(|n| format!("HY-{n:03}")).collect();
    let cameras: String = demo_terminals
        .iter()
        .map(|id| format!("[pictures.cameras.{id}]\nurl = \"{camera_url}\"\ninterval_s = 600\n"))
        .collect();
    std::fs::write(&config_file, cameras).unwrap();
    // A firmware rollout for the dashboard to show: an image signed with a key made here, offered
    // to the terminal the browser tests play (which never fetches it, so it stays offered).
    let key = dir.path().join("county.key");
    let keygen = weir(
        &gateway_data,
        &["firmware", "keygen", "--out", key.to_str().unwrap()],
    );
    let public = keygen
        .lines()
        .find_map(|l| l.strip_prefix("public key:"))
        .unwrap()
        .trim()
        .to_string();
    let image = dir.path().join("node.bin");
    let mut bytes = b"weir-firmware-version=weir-node 9.9.9-test\0".to_vec();
    bytes.resize(4096, 0xA5);
    std::fs::write(&image, bytes).unwrap();
    weir(
        &gateway_data,
        &[
            "firmware",
            "sign",
            image.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let out = Command::new(WEIR)
        .env("WEIR_DATA_DIR", &gateway_data)
        .env("WEIR_FIRMWARE__PUBLIC_KEY", &public)
        .args(["firmware", "add", image.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    weir(
        &gateway_data,
        &[
            "firmware",
            "rollout",
            "weir-node 9.9.9-test",
            "--terminals",
            "HY-038",
        ],
    );

    let mut demo = Killed(
        Command::new(WEIR)
            .env("WEIR_HTTP__LISTEN", "127.0.0.1:0")
            .env("WEIR_MQTT__LISTEN", "127.0.0.1:0")
            .env("WEIR_LOG", "warn")
            .arg("--config")
            .arg(&config_file)
            .args([
                "demo",
                "--terminals",
                "37",
                "--password",
                "admin-pass-1",
                "--data-dir",
            ])
            .arg(dir.path())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(demo.0.stderr.take().unwrap()).lines();
    let (mut url, mut mqtt) = (None, None);
    while url.is_none() || mqtt.is_none() {
        let line = lines
            .next()
            .expect("weir demo printed its addresses")
            .unwrap();
        if let Some(u) = line.strip_prefix("weir: listening on ") {
            url = Some(u.trim().to_owned());
        }
        if let Some(m) = line.strip_prefix("weir: MQTT broker on ") {
            mqtt = Some(m.trim().to_owned());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let dashboard = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard");
    let out = Command::new("npm")
        .arg("test")
        .current_dir(&dashboard)
        .env("WEIR_URL", url.unwrap())
        .env("WEIR_USER", "admin")
        .env("WEIR_PASSWORD", "admin-pass-1")
        .env("WEIR_INSPECTOR_USER", "inspector")
        .env("WEIR_INSPECTOR_PASSWORD", "inspector-pass-1")
        .env(
            "WEIR_MQTT_URL",
            format!("mqtt://HY-038:{node_password}@{}", mqtt.unwrap()),
        )
        .env("WEIR_TEST_TERMINAL", "HY-038")
        .env("WEIR_CAMERA_TERMINAL", "HY-038")
        .env("WEIR_ALERT_CAMERA_TERMINALS", demo_terminals.join(","))
        .env("WEIR_EXPECT_FIRMWARE", "weir-node 9.9.9-test")
        .env("WEIR_EXPECT_FIRMWARE_TERMINAL", "HY-038")
        .output()
        .expect("npm (Node.js 20+) runs the dashboard's tests");
    let report = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("# ") || l.contains("not ok"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        out.status.success(),
        "dashboard tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("# fail 0"), "{report}");
    drop(demo);
    drop(camera_rt);
}

#[test]
fn the_build_wants_node_20_or_newer_and_says_what_to_install() {
    assert_eq!(build_script::node_version_ok("v20.19.2\n"), Ok(20));
    assert_eq!(build_script::node_version_ok("v24.1.0"), Ok(24));
    // Debian 12's nodejs.
    let old = build_script::node_version_ok("v18.19.0\n").unwrap_err();
    assert!(
        old.contains("v18.19.0") && old.contains("Node.js 20 or newer"),
        "{old}"
    );
    assert!(old.contains(".ci/install"), "{old}");
    let odd = build_script::node_version_ok("").unwrap_err();
    assert!(odd.contains("Node.js 20 or newer"), "{odd}");
    // And the machine building this one has what it needs.
    assert!(build_script::check_node().unwrap() >= 20);
}

#[test]
fn the_build_installs_again_when_the_lock_is_newer_than_node_modules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let touch = |p: &std::path::Path, at: SystemTime| {
        std::fs::File::open(p).unwrap().set_modified(at).unwrap();
    };
    let lock = d.join("package-lock.json");
    std::fs::write(&lock, "{}").unwrap();
    assert!(build_script::needs_install(d), "no node_modules yet");

    let modules = d.join("node_modules");
    let installed = modules.join(".package-lock.json");
    std::fs::create_dir(&modules).unwrap();
    std::fs::write(&installed, "{}").unwrap();
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    touch(&lock, t0);
    touch(&installed, t0 + Duration::from_secs(60));
    touch(&modules, t0 + Duration::from_secs(60));
    assert!(!build_script::needs_install(d), "installed after the lock");

    touch(&lock, t0 + Duration::from_secs(120));
    assert!(
        build_script::needs_install(d),
        "the lock changed after the install"
    );

    // Without npm's record of the install, node_modules' own time counts.
    std::fs::remove_file(&installed).unwrap();
    touch(&modules, t0 + Duration::from_secs(180));
    assert!(!build_script::needs_install(d));
    touch(&lock, t0 + Duration::from_secs(240));
    assert!(build_script::needs_install(d));
}
