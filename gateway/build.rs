//! Builds the dashboard (dashboard/, npm + esbuild) into OUT_DIR so the binary can embed it:
//! the gateway serves it with no separate web server and no internet at run time.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dashboard = manifest.join("../dashboard");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("dashboard");
    for watched in ["src", "build.mjs", "package.json", "package-lock.json"] {
        println!(
            "cargo:rerun-if-changed={}",
            dashboard.join(watched).display()
        );
    }
    if !dashboard.join("node_modules").is_dir() {
        npm(&dashboard, &["ci", "--no-audit", "--no-fund"], &out);
    }
    npm(&dashboard, &["run", "build"], &out);
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
             On Debian: apt-get install nodejs npm (or bash .ci/install).\n\n"
        ),
    }
}
