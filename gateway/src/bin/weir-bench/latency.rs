//! `weir-bench latency`: at a steady rate of telemetry, how long from a node's publish to
//! (1) a plain QoS 1 subscriber on the same broker, (2) the reading in the gateway's API (its
//! live feed, `GET /api/v1/events`, which sends each reading once it is committed), and (3) the
//! alert that reading raised, in the same feed.
//!
//! Mosquitto runs on a free loopback port and `weir serve` (the release binary next to this
//! one) as a process of its own against it. One client publishes binary telemetry of one
//! reading for every terminal in turn; each terminal's turbidity goes above its warning limit
//! for 32 readings a minute apart, then below the clearing level for 32, so the turbidity
//! rule opens an alert on the 31st high reading (30 minutes after the first, on the readings'
//! own clock) and clears it later, over and over. The value of each high reading says which
//! one it was, so the alert's `value` names the message that raised it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use weir_contract::{Encoding, Message as _, Quantity, Reading, Telemetry, Timestamp};
use weir_store::auth::{self, Role};

use crate::measure::{free_port, percentile, process_cpu_seconds, process_rss_kib, Killed};

/// Publish-to-API and publish-to-alert latency at a steady rate.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Messages per second, all terminals together.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Seconds to publish at that rate.
    #[arg(long, default_value_t = 60)]
    seconds: u32,
    /// Terminals publishing.
    #[arg(long, default_value_t = 38)]
    terminals: u32,
    /// Seconds at the start left out of the figures (connections settling, caches warming).
    #[arg(long, default_value_t = 5)]
    warmup: u32,
}

/// Messages per turbidity cycle of a terminal: half above the warning limit, half below the
/// clearing level.
const CYCLE: u64 = 64;

/// Turbidity of a terminal's `k`th message: 15.xx NTU in the first half of a cycle (the
/// hundredths are the position in the cycle), 2.xx NTU in the second.
fn turbidity(k: u64) -> f64 {
    let pos = k % CYCLE;
    let base = if pos < CYCLE / 2 { 15.0 } else { 2.0 };
    base + pos as f64 / 100.0
}

/// When each message was published and when each place first saw it.
#[derive(Default)]
struct Clock {
    published: Vec<Option<Instant>>,
    subscriber: Vec<Option<Instant>>,
    api: Vec<Option<Instant>>,
    /// (message index, when its alert arrived).
    alerts: Vec<(usize, Instant)>,
    /// Per terminal, messages published so far.
    sent: Vec<u64>,
}

pub async fn main(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0 && args.terminals > 0,
        "--rate and --terminals must be at least 1"
    );
    let weir = crate::measure::weir_binary()?;
    let dir = crate::measure::TempDir::new("latency")?;
    let (mosquitto, port) = crate::measure::mosquitto(
        dir.path(),
        "max_inflight_messages 1000\nmax_queued_messages 0\n",
    )
    .await?;
    let _mosquitto = Killed(mosquitto);

    // The registry and an operator's token.
    let data = dir.path().join("data");
    let store = weir_store::Store::open(&data.join("weir.db"), weir_store::Synchronous::Full)?;
    for t in 1..=args.terminals {
        let new = weir_store::terminals::NewTerminal {
            id: format!("HY-{t:03}"),
            name: format!("Terminal {t}"),
            ..Default::default()
        };
        store.with(|c| Ok(weir_store::terminals::add(c, &new, "")))??;
    }
    let token = store.with(|c| auth::create_token(c, "latency-bench", Role::Operator))?;
    drop(store);

    let http_port = free_port()?;
    let gateway = std::process::Command::new(&weir)
        .arg("serve")
        .env("WEIR_DATA_DIR", &data)
        .env("WEIR_MQTT__BROKER", "external")
        .env("WEIR_MQTT__PORT", port.to_string())
        .env("WEIR_HTTP__LISTEN", format!("127.0.0.1:{http_port}"))
        .env("WEIR_LOG", "warn")
        .spawn()
        .with_context(|| format!("starting {}", weir.display()))?;
    let gateway = Killed(gateway);
    let pid = gateway.0.id();
    let base = format!("http://127.0.0.1:{http_port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "weir serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let total = (u64::from(args.rate) * u64::from(args.seconds)) as usize;
    let terminals = u64::from(args.terminals);
    let clock = Arc::new(Mutex::new(Clock {
        published: vec![None; total],
        subscriber: vec![None; total],
        api: vec![None; total],
        alerts: Vec::new(),
        sent: vec![0; args.terminals as usize],
    }));
    let start_ts = weir_store::now() - (total as i64 / args.terminals as i64 + 10) * 60;
    let index_of = move |terminal: &str, k: u64| -> Option<usize> {
        let t: u64 = terminal.strip_prefix("HY-")?.parse().ok()?;
        let i = k * terminals + (t - 1);
        (i < total as u64).then_some(i as usize)
    };

    // The gateway's live feed: readings and alerts.
    let feed = {
        let clock = clock.clone();
        let response = http
            .get(format!("{base}/api/v1/events"))
            .bearer_auth(&token)
            .send()
            .await?
            .error_for_status()
            .context("opening the live feed")?;
        tokio::spawn(async move {
            let mut response = response;
            let mut buf = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                let now = Instant::now();
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let mut name = "";
                    let mut data = "";
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            name = v.trim();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data = v.trim();
                        }
                    }
                    let Ok(json) = serde_json::from_str::<serde_json::Value>(data) else {
                        continue;
                    };
                    let terminal = json["terminal"].as_str().unwrap_or_default().to_owned();
                    let mut c = clock.lock().unwrap();
                    match name {
                        "reading" => {
                            let Some(ts) = json["reading"]["ts"]
                                .as_str()
                                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                            else {
                                continue;
                            };
                            let k = (ts.as_second() - start_ts) / 60;
                            if let Some(i) =
                                u64::try_from(k).ok().and_then(|k| index_of(&terminal, k))
                            {
                                c.api[i].get_or_insert(now);
                            }
                        }
                        "alert" if json["state"] == "open" && json["rule"] == "turbidity" => {
                            // The value's hundredths: the position in the cycle of the
                            // reading that raised it; the cycle is the terminal's latest.
                            let Some(value) = json["value"].as_f64() else {
                                continue;
                            };
                            let pos = ((value - 15.0) * 100.0).round() as u64;
                            let t: usize = terminal.trim_start_matches("HY-").parse().unwrap_or(0);
                            // The newest message of the terminal at that position of a cycle.
                            let Some(&sent) = c.sent.get(t.wrapping_sub(1)) else {
                                continue;
                            };
                            let Some(k_now) = sent.checked_sub(1) else {
                                continue;
                            };
                            let cycle_start = k_now - k_now % CYCLE;
                            let k = if cycle_start + pos <= k_now {
                                cycle_start + pos
                            } else if let Some(previous) = cycle_start.checked_sub(CYCLE) {
                                previous + pos
                            } else {
                                continue;
                            };
                            if let Some(i) = index_of(&terminal, k) {
                                if c.alerts.last().is_none_or(|(j, _)| *j != i) {
                                    c.alerts.push((i, now));
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        })
    };

    // The plain subscriber.
    let subscriber = {
        let clock = clock.clone();
        let mut opts = MqttOptions::new("latency-plain-subscriber", "127.0.0.1", port);
        opts.set_max_packet_size(64 * 1024, 64 * 1024);
        let (client, mut events) = AsyncClient::new(opts, 1000);
        client
            .subscribe("weir/terminals/+/telemetry", QoS::AtLeastOnce)
            .await?;
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = events.poll().await? {
                break;
            }
        }
        tokio::spawn(async move {
            let _client = client;
            while let Ok(ev) = events.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = ev {
                    let now = Instant::now();
                    let terminal = p.topic.split('/').nth(2).unwrap_or_default().to_owned();
                    if let Ok(t) = Telemetry::decode(&p.payload) {
                        if let Some(i) = index_of(&terminal, u64::from(t.seq)) {
                            clock.lock().unwrap().subscriber[i].get_or_insert(now);
                        }
                    }
                }
            }
        })
    };

    // The publisher: message i is terminal i % T's (i / T)th, sent at t0 + i / rate.
    let mut opts = MqttOptions::new("latency-publisher", "127.0.0.1", port);
    opts.set_inflight(1000);
    let (client, mut events) = AsyncClient::new(opts, 10_000);
    let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    println!(
        "publishing {total} messages at {} msg/s from {} terminals for {} s...",
        args.rate, args.terminals, args.seconds
    );
    let cpu0 = process_cpu_seconds(pid);
    let t0 = tokio::time::Instant::now();
    let mut buf = [0u8; 256];
    let mut peak_rss = 0;
    for i in 0..total {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / f64::from(args.rate)))
            .await;
        let t = i as u64 % terminals;
        let k = i as u64 / terminals;
        let reading = Reading::new(Timestamp::from_unix(start_ts + k as i64 * 60))
            .with(Quantity::Flow, 1.2 + (k % 17) as f64 * 0.01)
            .with(Quantity::Volume, 1000.0 + k as f64 * 0.02)
            .with(Quantity::Turbidity, turbidity(k))
            .with(Quantity::Sludge, 12.0 + (k % 5) as f64 * 0.1);
        let mut msg = Telemetry {
            boot: 1,
            seq: k as u32,
            readings: Default::default(),
        };
        msg.readings
            .push(reading)
            .map_err(|_| anyhow::anyhow!("batch full"))?;
        let len = msg.encode(Encoding::Binary, &mut buf)?;
        let topic = format!("weir/terminals/HY-{:03}/telemetry", t + 1);
        {
            let mut c = clock.lock().unwrap();
            c.published[i] = Some(Instant::now());
            c.sent[t as usize] = k + 1;
        }
        client
            .publish(topic, QoS::AtLeastOnce, false, buf[..len].to_vec())
            .await?;
        if i % 1000 == 0 {
            peak_rss = peak_rss.max(process_rss_kib(pid).0);
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds(pid) - cpu0;
    // Stragglers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    feed.abort();
    subscriber.abort();
    poller.abort();
    let (rss_now, rss_peak) = process_rss_kib(pid);
    drop(gateway);

    let c = clock.lock().unwrap();
    let skip = (u64::from(args.rate) * u64::from(args.warmup)) as usize;
    let latencies = |seen: &Vec<Option<Instant>>| {
        let mut xs: Vec<f64> = (skip..total)
            .filter_map(|i| Some(seen[i]?.duration_since(c.published[i]?).as_secs_f64() * 1000.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs
    };
    let plain = latencies(&c.subscriber);
    let api = latencies(&c.api);
    let mut alerts: Vec<f64> = c
        .alerts
        .iter()
        .filter(|(i, _)| *i >= skip)
        .filter_map(|(i, at)| Some(at.duration_since(c.published[*i]?).as_secs_f64() * 1000.0))
        .collect();
    alerts.sort_by(f64::total_cmp);
    let expected_alerts = (skip..total)
        .filter(|i| (*i as u64 / terminals) % CYCLE == 30)
        .count();

    println!();
    println!(
        "{} msg/s for {elapsed:.1} s, {} terminals, one reading per message; figures after the first {} s",
        args.rate, args.terminals, args.warmup
    );
    println!("| from publish to | messages | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, xs, of) in [
        (
            "a plain QoS 1 subscriber (same broker)",
            &plain,
            total - skip,
        ),
        ("the reading in the API's live feed", &api, total - skip),
        (
            "the turbidity alert in the live feed",
            &alerts,
            expected_alerts,
        ),
    ] {
        println!(
            "| {name} | {} of {of} | {:.2} | {:.2} | {:.2} |",
            xs.len(),
            percentile(xs, 50.0),
            percentile(xs, 99.0),
            xs.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!(
        "alert p99 - plain subscriber p99: {:.2} ms (goal: within 5 ms)",
        percentile(&alerts, 99.0) - percentile(&plain, 99.0)
    );
    println!(
        "weir serve: {:.1} % of a core while publishing ({cpu:.1} CPU s), RSS {} MiB at the end, peak {} MiB (sampled {} MiB)",
        cpu / elapsed * 100.0,
        rss_now / 1024,
        rss_peak / 1024,
        peak_rss / 1024
    );
    anyhow::ensure!(
        plain.len() + 100 >= total - skip && api.len() + 100 >= total - skip,
        "messages went missing: the figures above do not cover the run"
    );
    Ok(())
}
