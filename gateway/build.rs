//! Builds the dashboard (dashboard/, npm + esbuild) into OUT_DIR so the binary can embed it:
//! the gateway serves it with no separate web server and no internet at run time.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest Node.js major version the dashboard builds with (dashboard/package.json engines).
const MIN_NODE: u32 = 20;

const INSTALL_NODE: &str =
    "Install Node.js 20 or newer with npm (Debian 12's nodejs is 18: use NodeSource's \
     nodejs package, or Debian 13's nodejs and npm), or run bash .ci/install, then build again.";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dashboard = manifest.join("../dashboard");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("dashboard");
    for watched in [
        "src",
        "build.mjs",
        "package.json",
        "package-lock.json",
        // What npm last installed: a changed or removed node_modules reinstalls.
        "node_modules/.package-lock.json",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            dashboard.join(watched).display()
        );
    }
    if let Err(e) = check_node() {
        panic!("\n\n{e}\n\n");
    }
    if needs_install(&dashboard) {
        npm(&dashboard, &["ci", "--no-audit", "--no-fund"], &out);
    }
    npm(&dashboard, &["run", "build"], &out);
}

/// Whether `node --version` says at least [`MIN_NODE`]; otherwise what to install.
pub fn check_node() -> Result<u32, String> {
    let out = Command::new("node").arg("--version").output().map_err(|e| {
        format!("Cannot run node ({e}): the gateway embeds the dashboard, which is built with Node.js.\n{INSTALL_NODE}")
    })?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`node --version` failed ({}).\n{INSTALL_NODE}",
            out.status
        ));
    }
    node_version_ok(&version)
}

/// The major version in `node --version`'s output (`v20.19.2`) if it is new enough.
pub fn node_version_ok(output: &str) -> Result<u32, String> {
    let version = output.trim();
    let major = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| {
            format!(
                "`node --version` said {version:?}, not a version like v20.19.2.\n{INSTALL_NODE}"
            )
        })?;
    if major < MIN_NODE {
        return Err(format!(
            "Node.js {version} is too old: the dashboard needs Node.js {MIN_NODE} or newer.\n{INSTALL_NODE}"
        ));
    }
    Ok(major)
}

/// Whether `npm ci` must run: no node_modules, or a package-lock.json newer than what npm last
/// installed there (its node_modules/.package-lock.json, else node_modules itself).
pub fn needs_install(dashboard: &Path) -> bool {
    let modules = dashboard.join("node_modules");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(installed) =
        modified(&modules.join(".package-lock.json")).or_else(|| modified(&modules))
    else {
        return true;
    };
    modified(&dashboard.join("package-lock.json")).is_some_and(|lock| lock > installed)
}

fn npm(dir: &Path, args: &[&str], out: &Path) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .env("WEIR_DASHBOARD_OUT", out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "\n\n`npm {}` in {} failed ({s}).\nThe dashboard is built with Node.js 20+ and npm from the npm registry; \
             run it by hand to see why.\n\n",
            args.join(" "),
            dir.display()
        ),
        Err(e) => panic!(
            "\n\nCannot run npm ({e}): the gateway embeds the dashboard, which is built with Node.js 20+ and npm.\n\
             {INSTALL_NODE}\n\n"
        ),
    }
}
