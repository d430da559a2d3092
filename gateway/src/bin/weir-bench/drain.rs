//! `weir-bench drain`: how fast the gateway drains a broker backlog into SQLite, next to a
//! plain QoS 1 subscriber (`mosquitto_sub -q 1`) draining the same backlog to nowhere, on
//! Mosquitto and on the gateway's embedded broker.
//!
//! For each broker it starts one on a free loopback port (Mosquitto as a process, the embedded
//! broker in this process), creates both persistent sessions, queues the backlog while both are
//! away, then times each draining it, with the CPU seconds of subscriber and broker together and
//! the peak RSS. Target: the gateway at 80 % or more of the plain subscriber's rate.

use crate::measure::{
    cpu_children, cpu_self, peak_rss_kib, process_cpu_seconds, process_rss_kib, reset_peak_rss,
};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use weir_contract::{Encoding, Message as _, Quantity, Reading, Telemetry, Timestamp};
use weir_gateway::config::{BrokerMode, Config};
use weir_store::Synchronous;

/// Times the gateway draining a QoS 1 backlog, next to mosquitto_sub.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Messages in the backlog.
    #[arg(long, default_value_t = 1_000_000)]
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
    /// The embedded broker's window for both subscribers: they log in as the service here, so
    /// they get its `service_max_inflight` (the gateway's default, `mqtt.service_max_inflight`).
    #[arg(long, default_value_t = 4096)]
    service_inflight: u32,
    /// SQLite synchronous mode: full or normal.
    #[arg(long, default_value = "full")]
    synchronous: String,
    /// Which broker: mosquitto, embedded or both.
    #[arg(long, default_value = "both")]
    broker: String,
}

const PLAIN_ID: &str = "bench-plain-subscriber";
const GATEWAY_ID: &str = "bench-weir-gateway";
const FILTER: &str = "weir/terminals/+/telemetry";

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

/// A broker under test.
enum BrokerUnderTest {
    /// Mosquitto, a process of its own.
    Mosquitto(std::process::Child),
    /// Weir's embedded broker, in this process.
    Embedded(tokio_util::sync::CancellationToken),
}

impl BrokerUnderTest {
    /// CPU seconds the broker has used, if it is a process of its own.
    fn cpu_seconds(&self) -> f64 {
        match self {
            BrokerUnderTest::Mosquitto(child) => process_cpu_seconds(child.id()),
            BrokerUnderTest::Embedded(_) => 0.0,
        }
    }

    fn stop(self) {
        match self {
            BrokerUnderTest::Mosquitto(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            BrokerUnderTest::Embedded(cancel) => cancel.cancel(),
        }
    }
}

/// Lets every client in, as the service: the bench's publisher and subscribers.
struct Open;

impl weir_broker::Policy for Open {
    fn authenticate(
        &self,
        client_id: &str,
        _username: Option<&str>,
        _password: Option<&[u8]>,
    ) -> Result<weir_broker::Identity, weir_broker::Refusal> {
        Ok(weir_broker::Identity::Service {
            username: client_id.to_owned(),
        })
    }

    fn may_publish(&self, _: &weir_broker::Identity, _: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _: &weir_broker::Identity, _: &str) -> bool {
        true
    }
}

async fn start_broker(
    kind: &str,
    args: &Args,
    dir: &std::path::Path,
) -> anyhow::Result<(BrokerUnderTest, u16)> {
    if kind == "embedded" {
        let config = weir_broker::BrokerConfig {
            max_inflight: u16::try_from(args.inflight)
                .context("--inflight must be at most 65535")?,
            service_max_inflight: u16::try_from(args.service_inflight)
                .context("--service-inflight must be at most 65535")?,
            max_queued: args.messages as usize + 1,
            max_queued_bytes: args.messages as usize * 1024,
            ..Default::default()
        };
        let broker = weir_broker::Broker::new(config, Arc::new(Open))?;
        let listener = broker.bind("127.0.0.1:0").await?;
        let port = listener.local_addr().port();
        let cancel = tokio_util::sync::CancellationToken::new();
        tokio::spawn(listener.run(cancel.clone()));
        return Ok((BrokerUnderTest::Embedded(cancel), port));
    }
    let (child, port) = crate::measure::mosquitto(
        dir,
        &format!(
            "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages {}\n",
            args.inflight
        ),
    )
    .await?;
    Ok((BrokerUnderTest::Mosquitto(child), port))
}

/// One drain's figures.
struct Drain {
    secs: f64,
    cpu: f64,
    peak_rss_mib: u64,
}

/// What one broker's run measured.
struct Row {
    broker: &'static str,
    plain: Drain,
    gateway: Drain,
    commits: u64,
}

/// Runs the drain benchmark and prints its table.
pub async fn main(args: Args) -> anyhow::Result<()> {
    let synchronous = match args.synchronous.as_str() {
        "full" => Synchronous::Full,
        "normal" => Synchronous::Normal,
        other => bail!("--synchronous {other:?}: use full or normal"),
    };
    let brokers: Vec<&'static str> = match args.broker.as_str() {
        "both" => vec!["mosquitto", "embedded"],
        "mosquitto" => vec!["mosquitto"],
        "embedded" => vec!["embedded"],
        other => bail!("--broker {other:?}: use mosquitto, embedded or both"),
    };
    anyhow::ensure!(
        (1..=64).contains(&args.readings),
        "--readings must be 1 to 64"
    );
    let mut rows = Vec::new();
    for broker in brokers {
        let dir = crate::measure::TempDir::new(broker)?;
        rows.push(run(&args, broker, synchronous, dir.path()).await?);
    }
    println!();
    println!(
        "{} messages of {} readings from {} terminals, SQLite synchronous={}, max inflight {} on Mosquitto, {} on the embedded broker (service sessions)",
        args.messages, args.readings, args.terminals, args.synchronous, args.inflight, args.service_inflight
    );
    println!("| broker | mosquitto_sub -q 1 msg/s | gateway msg/s | gateway readings/s | ratio | CPU s plain (sub + broker) | CPU s gateway (+ broker) | peak RSS mosquitto_sub | peak RSS gateway | transactions |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let m = f64::from(args.messages);
        let (p, g) = (m / r.plain.secs, m / r.gateway.secs);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} % | {:.1} | {:.1} | {} MiB | {} MiB | {} |",
            r.broker,
            p,
            g,
            g * f64::from(args.readings),
            g / p * 100.0,
            r.plain.cpu,
            r.gateway.cpu,
            r.plain.peak_rss_mib,
            r.gateway.peak_rss_mib,
            r.commits
        );
    }
    println!("(target: ratio >= 80 %; with the embedded broker, the gateway's CPU and RSS include the broker and its queued backlog, in the same process)");
    Ok(())
}

async fn run(
    args: &Args,
    broker_kind: &'static str,
    synchronous: Synchronous,
    dir: &std::path::Path,
) -> anyhow::Result<Row> {
    let (broker, port) = start_broker(broker_kind, args, dir).await?;
    let result = drain_both(args, broker_kind, &broker, port, synchronous, dir).await;
    broker.stop();
    result
}

async fn drain_both(
    args: &Args,
    broker_kind: &'static str,
    broker: &BrokerUnderTest,
    port: u16,
    synchronous: Synchronous,
    dir: &std::path::Path,
) -> anyhow::Result<Row> {
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
        "{broker_kind}: queueing {} QoS 1 messages from {} terminals...",
        args.messages, args.terminals
    );
    let size = publish_backlog(port, args.messages, args.terminals, args.readings).await?;
    println!(
        "{broker_kind}: payload {size} B per message ({} readings, binary)",
        args.readings
    );

    // The plain subscriber: mosquitto_sub resumes its session and drains to nowhere.
    let (cpu_children_before, cpu_self_before, cpu_broker) =
        (cpu_children(), cpu_self(), broker.cpu_seconds());
    let t0 = Instant::now();
    let mut sub = Command::new("mosquitto_sub")
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
        .spawn()
        .context("running mosquitto_sub (Debian package mosquitto-clients)")?;
    // Its peak memory, read while it runs (the last reading before it exits).
    let mut sub_peak = 0;
    let status = loop {
        if let Some(status) = sub.try_wait()? {
            break status;
        }
        sub_peak = sub_peak.max(process_rss_kib(sub.id()).1);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let plain = Drain {
        secs: t0.elapsed().as_secs_f64(),
        // The subscriber, and the broker: Mosquitto's process, or this one's (idle but for
        // the embedded broker while mosquitto_sub drains).
        cpu: cpu_children() - cpu_children_before + cpu_self() - cpu_self_before
            + broker.cpu_seconds()
            - cpu_broker,
        peak_rss_mib: sub_peak / 1024,
    };
    anyhow::ensure!(status.success(), "mosquitto_sub failed");
    println!(
        "{broker_kind}: mosquitto_sub drained it in {:.2} s",
        plain.secs
    );

    // The gateway resumes its session and drains into SQLite.
    reset_peak_rss();
    let (cpu_self_before, cpu_broker) = (cpu_self(), broker.cpu_seconds());
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
    let gateway = Drain {
        secs: t0.elapsed().as_secs_f64(),
        cpu: cpu_self() - cpu_self_before + broker.cpu_seconds() - cpu_broker,
        peak_rss_mib: peak_rss_kib() / 1024,
    };
    let commits = running.metrics.commits.load(Relaxed);
    running.cancel.cancel();
    running.done.await??;
    println!(
        "{broker_kind}: the gateway stored it in {:.2} s",
        gateway.secs
    );
    Ok(Row {
        broker: broker_kind,
        plain,
        gateway,
        commits,
    })
}
