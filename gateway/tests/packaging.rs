//! The Debian package's parts (gateway/deploy/) without building the package: the default
//! configuration loads, the systemd unit passes `systemd-analyze verify` and agrees with the
//! configuration, and `[package.metadata.deb]` names files that exist. Building and inspecting
//! the package itself is a documented command (docs/deployment.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use weir_gateway::config::Config;

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

fn unit() -> String {
    std::fs::read_to_string(deploy("debian/weir.service")).unwrap()
}

/// The value of `key=` in the unit (the last one, as systemd takes it).
fn unit_value(key: &str) -> Option<String> {
    unit()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .next_back()
        .map(str::to_owned)
}

fn systemd_analyze() -> &'static str {
    let bin = "/usr/bin/systemd-analyze";
    assert!(
        Path::new(bin).exists(),
        "{bin} is missing: install the Debian package systemd (`bash .ci/install` does)"
    );
    bin
}

#[test]
fn the_packaged_configuration_loads_and_agrees_with_the_unit() {
    let config = Config::load(Some(&deploy("weir.toml"))).expect("deploy/weir.toml loads");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/weir"));
    assert_eq!(
        unit_value("ReadWritePaths").as_deref(),
        Some("/var/lib/weir")
    );
    assert_eq!(unit_value("StateDirectory").as_deref(), Some("weir"));
    assert_eq!(
        unit_value("ExecStart").as_deref(),
        Some("/usr/bin/weir --config /etc/weir/weir.toml serve")
    );
    // Every connection the configuration allows, with room for files and outgoing sockets.
    let sockets = (config.mqtt.limits.max_connections + config.http.max_connections) as u64;
    let nofile: u64 = unit_value("LimitNOFILE").unwrap().parse().unwrap();
    assert!(
        nofile >= sockets + 1024,
        "LimitNOFILE={nofile} leaves too little above the {sockets} connections the configuration allows"
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let bin = systemd_analyze();
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let text = unit().replace("/usr/bin/weir", env!("CARGO_BIN_EXE_weir"));
    let path = dir.path().join("weir.service");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin).arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
    // The hardening systemd measures: "Overall exposure level for weir.service: 1.6 OK".
    let out = Command::new(bin)
        .args(["security", "--offline=yes"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for weir.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    assert!(
        level <= 2.0,
        "exposure level {level} (at most 2.0):\n{text}"
    );
}

#[test]
fn the_debian_metadata_names_files_that_exist() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo: toml::Value =
        toml::from_str(&std::fs::read_to_string(manifest.join("Cargo.toml")).unwrap()).unwrap();
    let deb = &cargo["package"]["metadata"]["deb"];
    assert_eq!(deb["name"].as_str(), Some("weir"));
    let mut dests = Vec::new();
    for asset in deb["assets"].as_array().unwrap() {
        let a = asset.as_array().unwrap();
        let (src, dest) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
        dests.push(dest.to_owned());
        if src.starts_with("target/release/") {
            continue; // built by cargo deb
        }
        match src.strip_suffix("*.json") {
            Some(dir) => {
                let n = std::fs::read_dir(manifest.join(dir))
                    .unwrap()
                    .filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
                    })
                    .count();
                assert!(n > 0, "no files match {src}");
            }
            None => assert!(manifest.join(src).is_file(), "{src} is missing"),
        }
    }
    assert!(dests.iter().any(|d| d == "etc/weir/weir.toml"), "{dests:?}");
    assert!(dests.iter().any(|d| d == "usr/bin/"), "{dests:?}");
    let scripts = manifest.join(deb["maintainer-scripts"].as_str().unwrap());
    assert!(
        scripts.join("weir.service").is_file(),
        "the unit is not beside the scripts"
    );
    for script in ["postinst", "postrm"] {
        let path = scripts.join(script);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("#DEBHELPER#"),
            "{script} has no #DEBHELPER# for the unit's snippets"
        );
        let out = Command::new("sh").arg("-n").arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The upgrade backup in postinst runs a command this binary has.
    let postinst = std::fs::read_to_string(scripts.join("postinst")).unwrap();
    assert!(postinst.contains("/usr/bin/weir --config /etc/weir/weir.toml backup \"$out\""));
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["backup", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "weir backup --help failed");
}
