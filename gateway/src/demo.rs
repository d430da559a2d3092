//! `weir demo`: the gateway with everything embedded and a simulated fleet.

use clap::Args;

use crate::config::Config;

/// Options of `weir demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its data (default: a fresh temporary directory).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

/// Runs the demo until Ctrl-C.
pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let _ = (config, args);
    anyhow::bail!("the demo is not built yet")
}
