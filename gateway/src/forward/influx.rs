//! Forwarding to InfluxDB 2 through its v2 write API, as line protocol tagged by terminal.
//!
//! Progress is a cursor in SQLite (the last forwarded reading id), so an outage of days loses
//! nothing: the forwarder backfills from the cursor at `max_rate` when the server returns.
//! Points are built and written as line protocol with the `influxdb2` crate; the request itself
//! is sent here (with reqwest, as influxdb2 does) because influxdb2 hides the response headers
//! and the `Retry-After` of a 429 or 503 must be honoured. A batch the server refuses as invalid
//! is halved until the offending reading is alone; that reading is recorded in
//! `forward_rejects` and skipped, so one bad point never blocks the rest nor is retried forever.

use std::io::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use influxdb2::models::{DataPoint, WriteDataPoint};
use tokio_util::sync::CancellationToken;
use weir_contract::Quantity;
use weir_store::readings::{self, Committed};
use weir_store::{cursors, forward_rejects};

use crate::config::InfluxConfig;
use crate::metrics::Metrics;
use weir_store::Store;

/// Its cursor's name, and the sink recorded with a refused reading.
const SINK: &str = cursors::INFLUX;

/// Line protocol for `points`: measurement, tag `terminal`, a field per value, a string field
/// `{quantity}_fault` per failed sensor, timestamp in seconds.
fn line_protocol(measurement: &str, points: &[Committed]) -> Vec<u8> {
    let mut body = Vec::with_capacity(points.len() * 120);
    for p in points {
        let mut b = DataPoint::builder(measurement).tag("terminal", p.terminal.as_str());
        let mut fields = 0;
        for (q, v) in Quantity::ALL.iter().zip(p.row.values) {
            if let Some(v) = v {
                b = b.field(q.field(), v);
                fields += 1;
            }
        }
        for (q, fault) in p.row.faults() {
            b = b.field(format!("{}_fault", q.field()), fault.code().to_owned());
            fields += 1;
        }
        if fields == 0 {
            continue;
        }
        match b.timestamp(p.row.ts).build() {
            Ok(point) => {
                if point.write_data_point_to(&mut body).is_err() {
                    tracing::warn!(id = p.id, "could not write a reading as line protocol");
                }
            }
            Err(e) => {
                tracing::warn!(id = p.id, error = %e, "could not build a line protocol point")
            }
        }
    }
    body
}

enum Sent {
    Ok,
    /// Retry the same batch after this long.
    RetryAfter(Option<Duration>),
    /// The server refused the data as invalid.
    Invalid(u16, String),
}

async fn send(http: &reqwest::Client, cfg: &InfluxConfig, body: Vec<u8>) -> Sent {
    let url = format!("{}/api/v2/write", cfg.url.trim_end_matches('/'));
    let mut req = http
        .post(url)
        .query(&[
            ("org", cfg.org.as_str()),
            ("bucket", cfg.bucket.as_str()),
            ("precision", "s"),
        ])
        .header("Content-Type", "text/plain; charset=utf-8");
    if !cfg.token.is_empty() {
        req = req.header("Authorization", format!("Token {}", cfg.token));
    }
    let body = if cfg.gzip {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        match gz.write_all(&body).and_then(|()| gz.finish()) {
            Ok(compressed) => {
                req = req.header("Content-Encoding", "gzip");
                compressed
            }
            Err(_) => body,
        }
    } else {
        body
    };
    match req.body(body).send().await {
        Err(e) => {
            tracing::warn!(error = %e, "InfluxDB write failed; will retry");
            Sent::RetryAfter(None)
        }
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                return Sent::Ok;
            }
            let retry_after = resp
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(3600)));
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(500).collect();
            match status.as_u16() {
                400 | 422 => Sent::Invalid(status.as_u16(), text),
                code => {
                    tracing::warn!(status = code, body = %text, "InfluxDB refused a write; will retry");
                    Sent::RetryAfter(retry_after)
                }
            }
        }
    }
}

/// Forwards until `cancel`.
pub async fn run(
    cfg: InfluxConfig,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the InfluxDB forwarder");
            return;
        }
    };
    let max_backoff = Duration::from_secs(cfg.max_backoff_s.max(1));
    let mut backoff = Duration::from_secs(1);
    let mut limit = cfg.batch_size;
    tracing::info!(url = %cfg.url, bucket = %cfg.bucket, "forwarding readings to InfluxDB");
    while !cancel.is_cancelled() {
        let started = Instant::now();
        let fetched = store
            .run(move |c| {
                let after = cursors::get(c, SINK)?.unwrap_or(0);
                let points = readings::after(c, after, limit as u32)?;
                Ok((after, points, readings::max_id(c)?))
            })
            .await;
        let (after, points, newest) = match fetched {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "forwarder cannot read the store");
                pause(&cancel, Duration::from_secs(5)).await;
                continue;
            }
        };
        metrics.forward_lag.store(newest - after, Relaxed);
        let Some(last) = points.last().map(|p| p.id) else {
            pause(&cancel, Duration::from_millis(500)).await;
            continue;
        };
        let first = points[0].id;
        let body = line_protocol(&cfg.measurement, &points);
        let outcome = if body.is_empty() {
            Sent::Ok
        } else {
            send(&http, &cfg, body).await
        };
        match outcome {
            Sent::Ok => {
                if let Err(e) = store.run(move |c| cursors::set(c, SINK, last)).await {
                    tracing::error!(error = %format!("{e:#}"), "forwarder cannot save its cursor");
                    continue;
                }
                metrics.forwarded.fetch_add(points.len() as u64, Relaxed);
                backoff = Duration::from_secs(1);
                limit = cfg.batch_size;
                // Backfill at a bounded rate.
                let min_time =
                    Duration::from_secs_f64(points.len() as f64 / f64::from(cfg.max_rate));
                if let Some(rest) = min_time.checked_sub(started.elapsed()) {
                    pause(&cancel, rest).await;
                }
            }
            Sent::RetryAfter(after_hint) => {
                metrics.forward_errors.fetch_add(1, Relaxed);
                let wait = after_hint.unwrap_or(backoff);
                backoff = (backoff * 2).min(max_backoff);
                pause(&cancel, wait).await;
            }
            Sent::Invalid(status, text) => {
                metrics.forward_errors.fetch_add(1, Relaxed);
                if points.len() > 1 {
                    // Find the bad reading: retry the first half, and so on.
                    limit = (points.len() / 2).max(1);
                    continue;
                }
                tracing::warn!(id = first, status, body = %text, "InfluxDB refused a reading as invalid; skipping it");
                let skipped = store
                    .run(move |c| {
                        forward_rejects::record(c, SINK, first, last, status, &text)?;
                        cursors::set(c, SINK, last)
                    })
                    .await;
                if let Err(e) = skipped {
                    tracing::error!(error = %format!("{e:#}"), "forwarder cannot record a refused reading");
                }
                limit = cfg.batch_size;
            }
        }
    }
}

async fn pause(cancel: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}
