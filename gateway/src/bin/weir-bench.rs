//! `weir-bench`: how fast the gateway drains a broker backlog into SQLite, next to a plain
//! QoS 1 subscriber (`mosquitto_sub -q 1`) draining the same backlog to nowhere.
//!
//! ```sh
//! cargo run --release -p weir-gateway --bin weir-bench -- --messages 200000
//! ```
//! Needs `mosquitto` and `mosquitto_sub` (Debian: mosquitto, mosquitto-clients). It starts its
//! own Mosquitto on a free loopback port, creates both persistent sessions, queues the backlog
//! while both are away, then times each draining it. Target: the gateway at 80 % or more of the
//! plain subscriber's rate.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use weir_contract::{Encoding, Message as _, Quantity, Reading, Telemetry, Timestamp};
use weir_gateway::config::{BrokerMode, Config};
use weir_store::Synchronous;

#[derive(Parser)]
#[command(about = "Times the gateway draining a QoS 1 backlog, next to mosquitto_sub")]
struct Args {
    /// Messages in the backlog.
    #[arg(long, default_value_t = 200_000)]
    messages: u32,
    /// Terminals the messages come from.
    #[arg(long, default_value_t = 38)]
    terminals: u32,
    /// Readings per message (4: a 101-byte binary payload, one minute apart).
    #[arg(long, default_value_t = 4)]
    readings: u32,
    /// Mosquitto's max_inflight_messages for both subscribers.
    #[arg(long, default_value_t = 1000)]
    inflight: u32,
    /// SQLite synchronous mode: full or normal.
    #[arg(long, default_value = "full")]
    synchronous: String,
}

const PLAIN_ID: &str = "bench-plain-subscriber";
const GATEWAY_ID: &str = "bench-weir-gateway";
const FILTER: &str = "weir/terminals/+/telemetry";

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Connects with a persistent session, subscribes, and leaves: the broker now queues for it.
async fn create_session(port: u16, id: &str) -> anyhow::Result<()> {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_clean_session(false);
    let (client, mut events) = AsyncClient::new(opts, 10);
    client.subscribe(FILTER, QoS::AtLeastOnce).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await? {
            break;
        }
    }
    client.disconnect().await?;
    while events.poll().await.is_ok() {}
    Ok(())
}

/// Publishes the backlog: `n` binary telemetry messages of `per_message` readings each.
async fn publish_backlog(
    port: u16,
    n: u32,
    terminals: u32,
    per_message: u32,
) -> anyhow::Result<usize> {
    let mut opts = MqttOptions::new("bench-publisher", "127.0.0.1", port);
    opts.set_inflight(1000);
    let (client, mut events) = AsyncClient::new(opts, 10_000);
    let mut acked = 0u32;
    let poller = tokio::spawn(async move {
        while acked < n {
            if let Event::Incoming(Packet::PubAck(_)) = events.poll().await? {
                acked += 1;
            }
        }
        anyhow::Ok(())
    });
    let span = i64::from(per_message) * 60;
    let start = weir_store::now() - i64::from(n / terminals + 1) * span;
    let mut bytes = 0;
    let mut buf = [0u8; 512];
    for i in 0..n {
        let t = i % terminals;
        let k = i64::from(i / terminals);
        let mut msg = Telemetry {
            boot: 1,
            seq: i / terminals,
            readings: Default::default(),
        };
        for j in 0..i64::from(per_message) {
            let r = Reading::new(Timestamp::from_unix(start + k * span + j * 60))
                .with(Quantity::Flow, 1.5 + f64::from(i % 7) * 0.1)
                .with(Quantity::Volume, 10_000.0 + k as f64 * 0.05)
                .with(Quantity::Turbidity, 3.4)
                .with(Quantity::Sludge, 41.5);
            msg.readings
                .push(r)
                .map_err(|_| anyhow::anyhow!("batch full"))?;
        }
        let len = msg.encode(Encoding::Binary, &mut buf)?;
        bytes += len;
        let topic = format!("weir/terminals/HY-{:03}/telemetry", t + 1);
        client
            .publish(topic, QoS::AtLeastOnce, false, buf[..len].to_vec())
            .await?;
    }
    poller.await??;
    Ok(bytes / n as usize)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let synchronous = match args.synchronous.as_str() {
        "full" => Synchronous::Full,
        "normal" => Synchronous::Normal,
        other => bail!("--synchronous {other:?}: use full or normal"),
    };
    let dir = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages {}\n",
            args.inflight
        ),
    )?;
    let mut mosquitto = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mosquitto (Debian package mosquitto)")?;
    let result = run(&args, port, synchronous, &dir).await;
    let _ = mosquitto.kill();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(
    args: &Args,
    port: u16,
    synchronous: Synchronous,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "mosquitto did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The gateway's registry.
    let mut config = Config {
        data_dir: dir.join("data"),
        log: "warn".into(),
        ..Config::default()
    };
    config.http.listen = "127.0.0.1:0".parse()?;
    config.mqtt.broker = BrokerMode::External;
    config.mqtt.port = port;
    config.mqtt.client_id = GATEWAY_ID.into();
    config.store.synchronous = synchronous;
    let store = weir_store::Store::open(&config.database_path(), synchronous)?;
    for t in 1..=args.terminals {
        let new = weir_store::terminals::NewTerminal {
            id: format!("HY-{t:03}"),
            name: format!("Terminal {t}"),
            ..Default::default()
        };
        store.with(|c| Ok(weir_store::terminals::add(c, &new, "")))??;
    }
    drop(store);

    create_session(port, PLAIN_ID).await?;
    create_session(port, GATEWAY_ID).await?;
    println!(
        "queueing {} QoS 1 messages from {} terminals...",
        args.messages, args.terminals
    );
    anyhow::ensure!(
        (1..=64).contains(&args.readings),
        "--readings must be 1 to 64"
    );
    let size = publish_backlog(port, args.messages, args.terminals, args.readings).await?;
    println!(
        "payload {size} B per message ({} readings, binary), Mosquitto max_inflight_messages {}",
        args.readings, args.inflight
    );

    // The plain subscriber: mosquitto_sub resumes its session and drains to nowhere.
    let t0 = Instant::now();
    let status = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-c",
            "-i",
            PLAIN_ID,
        ])
        .args(["-t", FILTER, "-C", &args.messages.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running mosquitto_sub (Debian package mosquitto-clients)")?;
    let plain = t0.elapsed();
    anyhow::ensure!(status.success(), "mosquitto_sub failed");

    // The gateway resumes its session and drains into SQLite.
    let t0 = Instant::now();
    let running = weir_gateway::serve::start(Arc::new(config)).await?;
    let expected = u64::from(args.messages) * u64::from(args.readings);
    let deadline = Instant::now() + Duration::from_secs(1800);
    while running.metrics.readings_stored.load(Relaxed) < expected {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the gateway did not drain the backlog in 30 min"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let gateway = t0.elapsed();
    let commits = running.metrics.commits.load(Relaxed);
    running.cancel.cancel();
    running.done.await??;

    let rate = |d: Duration| f64::from(args.messages) / d.as_secs_f64();
    let (p, g) = (rate(plain), rate(gateway));
    println!(
        "mosquitto_sub -q 1 : {:>9.0} msg/s ({:.2} s)",
        p,
        plain.as_secs_f64()
    );
    println!("weir gateway       : {:>9.0} msg/s ({:.2} s, {} readings, {} transactions, SQLite synchronous={})",
        g, gateway.as_secs_f64(), expected, commits, args.synchronous);
    println!(
        "ratio gateway/plain: {:.0} % (target >= 80 %)",
        g / p * 100.0
    );
    println!(
        "peak RSS of bench process (gateway inside): {} MiB",
        rss_kib() / 1024
    );
    Ok(())
}
