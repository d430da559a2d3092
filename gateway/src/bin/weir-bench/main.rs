//! `weir-bench`: the gateway's benchmarks; each prints its figures as a table.
//!
//! ```sh
//! cargo build --release -p weir-gateway        # latency and footprint run the release `weir`
//! target/release/weir-bench drain              # backlog of 1,000,000 messages, Mosquitto and embedded
//! target/release/weir-bench latency            # 1,000 msg/s for 60 s: to subscriber, API, alert
//! target/release/weir-bench footprint          # 38 terminals: an hour at 60x, then 5 min live
//! target/release/weir-bench province           # 55,000 terminals, 183 msg/s, 4G outages
//! ```
//! Needs `mosquitto` and `mosquitto_sub` (Debian: mosquitto, mosquitto-clients). The figures
//! and what they mean are in docs/performance.md.

mod drain;
mod footprint;
mod latency;
mod measure;
mod province;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "weir-bench", about = "The gateway's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Draining a broker backlog into SQLite, next to mosquitto_sub -q 1.
    Drain(drain::Args),
    /// Publish-to-subscriber, publish-to-API and publish-to-alert latency at a steady rate.
    Latency(latency::Args),
    /// Memory and CPU of weir serve with a county's fleet.
    Footprint(footprint::Args),
    /// A province's terminals on one gateway: steady state and reconnect storms.
    Province(province::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Drain(args) => drain::main(args).await,
        Command::Latency(args) => latency::main(args).await,
        Command::Footprint(args) => footprint::main(args).await,
        Command::Province(args) => province::main(args).await,
    }
}
