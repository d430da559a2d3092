//! `weir`: the Weir gateway, as one binary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use weir_gateway::config::Config;
use weir_gateway::store::auth::{self, Role};
use weir_gateway::store::terminals::{self, NewTerminal};
use weir_gateway::store::Store;

/// Weir: telemetry, storage, alerts and a dashboard for rural wastewater treatment terminals.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    /// Configuration file (TOML). `weir config` prints one with every default.
    #[arg(long, short, global = true, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Run the gateway with everything embedded and a simulated fleet of terminals.
    Demo(weir_gateway::demo::DemoArgs),
    /// Print the full default configuration, commented.
    Config,
    /// The terminal registry.
    #[command(subcommand)]
    Terminal(TerminalCommand),
    /// API tokens for scripts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Dashboard users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum TerminalCommand {
    /// Register a terminal; prints its node's MQTT user name and password (once).
    Add(AddTerminal),
    /// List registered terminals.
    List,
}

#[derive(Args)]
struct AddTerminal {
    /// Terminal id: 1-32 of A-Z a-z 0-9 _ - (e.g. HY-001).
    id: String,
    /// Human name.
    #[arg(long)]
    name: String,
    /// Village served.
    #[arg(long)]
    village: Option<String>,
    /// Latitude, degrees.
    #[arg(long, allow_negative_numbers = true)]
    lat: Option<f64>,
    /// Longitude, degrees.
    #[arg(long, allow_negative_numbers = true)]
    lon: Option<f64>,
    /// Design capacity, m3/day.
    #[arg(long = "design-flow")]
    design_flow: Option<f64>,
    /// Working depth of the tank, m.
    #[arg(long = "tank-depth")]
    tank_depth: Option<f64>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token; prints it once.
    Create {
        /// admin, operator, field or inspector.
        #[arg(long)]
        role: String,
        /// What the token is for.
        #[arg(long, default_value = "api")]
        name: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a dashboard user (or reset one's password with --reset); prints the password
    /// when none is given.
    Add {
        /// User name.
        username: String,
        /// admin, operator, field or inspector.
        #[arg(long)]
        role: String,
        /// Password; read from WEIR_NEW_PASSWORD when not given, else generated.
        #[arg(long, env = "WEIR_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Replace the password and role of an existing user.
        #[arg(long)]
        reset: bool,
    },
}

fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).with_context(|| {
        format!("unknown role {s:?}: use one of admin, operator, field, inspector")
    })
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Config = cli.command {
        print!("{}", weir_gateway::config::default_file());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    weir_gateway::init_logging(&config.log);
    // Everything has been stopped in order when a command returns; a task that still lingers
    // must not keep the process from exiting.
    let run_async =
        |f: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let result = rt.block_on(f);
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            result
        };
    match cli.command {
        Command::Config => unreachable!("handled above"),
        Command::Serve => run_async(Box::pin(weir_gateway::serve_until_signal(Arc::new(config)))),
        Command::Demo(args) => run_async(Box::pin(weir_gateway::demo::run(config, args))),
        Command::Terminal(TerminalCommand::Add(a)) => {
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let password = auth::new_password();
            let new = NewTerminal {
                id: a.id.clone(),
                name: a.name,
                village: a.village,
                lat: a.lat,
                lon: a.lon,
                design_flow_m3d: a.design_flow,
                tank_depth_m: a.tank_depth,
            };
            store
                .with(|c| Ok(terminals::add(c, &new, &auth::hash_password(&password))))
                .context("registering the terminal")??;
            println!("registered terminal {}", a.id);
            println!("node MQTT user name: {}", a.id);
            println!("node MQTT password:  {password}");
            println!("(the password is shown only now; keep it for the node's provisioning)");
            Ok(())
        }
        Command::Terminal(TerminalCommand::List) => {
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let list = store.with(terminals::list)?;
            println!(
                "{:<12} {:<24} {:<16} {:>10} {:>10}",
                "ID", "NAME", "VILLAGE", "LAT", "LON"
            );
            for t in list {
                let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.5}"));
                println!(
                    "{:<12} {:<24} {:<16} {:>10} {:>10}",
                    t.id,
                    t.name,
                    t.village.unwrap_or_default(),
                    num(t.lat),
                    num(t.lon)
                );
            }
            Ok(())
        }
        Command::Token(TokenCommand::Create { role, name }) => {
            let role = parse_role(&role)?;
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let token = store.with(|c| auth::create_token(c, &name, role))?;
            println!("{token}");
            Ok(())
        }
        Command::User(UserCommand::Add {
            username,
            role,
            password,
            reset,
        }) => {
            let role = parse_role(&role)?;
            let store = Store::open(&config.database_path(), config.store.synchronous)?;
            let (password, generated) = match password {
                Some(p) => (p, false),
                None => (auth::new_password(), true),
            };
            store
                .with(|c| Ok(auth::put_user(c, &username, &password, role, reset)))
                .context("saving the user")??;
            println!("user {username} ({role}) saved");
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
    }
}
