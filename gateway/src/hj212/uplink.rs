//! The uplink task: follows the readings in commit order and sends each reading of a
//! configured terminal as real-time data, one upload at a time; as each hour ends, sends the
//! minute, hourly and daily data that fell due (`statistics`), each period on its own cursor.
//!
//! Its place is a cursor in the store (`consumer_cursors`, consumer `hj212`), moved past a
//! reading only once the platform answered its upload (or, with no answer asked, once it was
//! written). Any failure (no connection, no answer in time, the connection closed) drops the
//! connection and leaves the cursor where it is, so after an outage the stored readings are
//! sent again from the first one the platform did not confirm: in order, without gaps. Only one
//! upload is ever unanswered, so the platform sees a reading twice only if its answer was lost
//! on the way back (or the gateway stopped between the answer and saving the cursor).

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir_hj212::SystemCode;
use weir_store::{cursors, readings, rollups, terminals, Store};

use super::config::Hj212Config;
use super::link::{deliver, Link};
use super::statistics::{self, Period};
use super::upload::{self, Sender};
use crate::metrics::Metrics;

/// Its cursor's name.
const CONSUMER: &str = cursors::HJ212;
/// Readings read from the store at a time.
const BATCH: u32 = 500;

/// Where the uplink starts the first time it is enabled: after the newest stored reading, so
/// that a county switching it on sends what arrives from then on, not its whole history. Run
/// before the task starts (and before any reading can be stored while it is not looking); a
/// saved cursor is kept.
pub async fn start_position(store: &Arc<Store>) -> anyhow::Result<i64> {
    store
        .run(|c| match cursors::get(c, CONSUMER)? {
            Some(at) => Ok(at),
            None => {
                let newest = readings::max_id(c)?;
                cursors::set(c, CONSUMER, newest)?;
                Ok(newest)
            }
        })
        .await
}

/// Sends until `cancel`. `tz` is the site's time zone, in which the platform reads times.
pub async fn run(
    cfg: Hj212Config,
    tz: jiff::tz::TimeZone,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let Some(st) = SystemCode::new(&cfg.st) else {
        tracing::error!(st = %cfg.st, "hj212.st is not a system code; the uplink does not run");
        return;
    };
    let answer_timeout = Duration::from_secs(u64::from(cfg.answer_timeout_s));
    let answer = cfg.answer_timeout_s > 0;
    let retry = Duration::from_secs(u64::from(cfg.retry_s.max(1)));
    tracing::info!(address = %cfg.address, terminals = cfg.terminals.len(), "sending HJ 212 real-time data");
    let mut link: Option<Link> = None;
    let mut last_qn_ms = 0i64;
    let mut statistics_at = 0;
    while !cancel.is_cancelled() {
        if !periods(&cfg).is_empty() && weir_store::now() >= statistics_at {
            let out = Out {
                cfg: &cfg,
                st,
                tz: &tz,
                answer: answer.then_some(answer_timeout),
                metrics: &metrics,
                link: &mut link,
                last_qn_ms: &mut last_qn_ms,
            };
            if send_statistics(out, &store).await.is_err() {
                pause(&cancel, retry).await;
                continue;
            }
            statistics_at = next_statistics_at(&cfg, &tz);
        }
        let fetched = store
            .run(move |c| {
                let after = cursors::get(c, CONSUMER)?.unwrap_or(0);
                let batch = readings::after(c, after, BATCH)?;
                let depths: HashMap<String, Option<f64>> = terminals::list(c)?
                    .into_iter()
                    .map(|t| (t.id, t.tank_depth_m))
                    .collect();
                Ok((after, batch, readings::max_id(c)?, depths))
            })
            .await;
        let (after, batch, newest, depths) = match fetched {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "HJ 212 uplink cannot read the store");
                pause(&cancel, Duration::from_secs(5)).await;
                continue;
            }
        };
        metrics.hj212_lag.store(newest - after, Relaxed);
        if batch.is_empty() {
            pause(&cancel, Duration::from_millis(500)).await;
            continue;
        }
        // The last reading handled (sent and confirmed, or not for the platform).
        let mut done = after;
        let mut failed = false;
        for reading in &batch {
            if cancel.is_cancelled() {
                break;
            }
            let Some(terminal) = cfg.terminals.get(&reading.terminal) else {
                done = reading.id;
                continue;
            };
            let depth = depths.get(&reading.terminal).copied().flatten();
            let Some(cp) = upload::real_time_cp(&reading.row, &cfg.codes, depth, &tz) else {
                done = reading.id;
                continue;
            };
            // QN: the time the frame is made, in ms, never the same twice.
            let Some(qn) = next_qn(&mut last_qn_ms, &tz) else {
                done = reading.id;
                continue;
            };
            let sender = Sender {
                st,
                mn: &terminal.mn,
                pw: &terminal.pw,
                answer,
            };
            let frame = match upload::real_time_frame(sender, qn, &cp) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(id = reading.id, error = %e, "HJ 212: a reading makes no frame; skipping it");
                    done = reading.id;
                    continue;
                }
            };
            match deliver(
                &mut link,
                &cfg.address,
                &frame,
                answer.then_some((qn, answer_timeout)),
                &metrics,
            )
            .await
            {
                Ok(()) => {
                    done = reading.id;
                    if let Err(e) = save(&store, done).await {
                        tracing::error!(error = %format!("{e:#}"), "HJ 212 uplink cannot save its cursor");
                        failed = true;
                        break;
                    }
                    metrics.hj212_lag.store(newest.max(done) - done, Relaxed);
                }
                Err(e) => {
                    link = None;
                    metrics.hj212_failures.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, address = %cfg.address, id = reading.id, "HJ 212 upload not confirmed; will send it again");
                    failed = true;
                    break;
                }
            }
        }
        if done > after {
            if let Err(e) = save(&store, done).await {
                tracing::error!(error = %format!("{e:#}"), "HJ 212 uplink cannot save its cursor");
                failed = true;
            }
        }
        if failed {
            pause(&cancel, retry).await;
        }
    }
}

async fn save(store: &Arc<Store>, id: i64) -> anyhow::Result<()> {
    save_as(store, CONSUMER.to_owned(), id).await
}

async fn save_as(store: &Arc<Store>, consumer: String, at: i64) -> anyhow::Result<()> {
    store.run(move |c| cursors::set(c, &consumer, at)).await
}

/// A QN for now, in ms, never the same twice in this run.
fn next_qn(last_qn_ms: &mut i64, tz: &jiff::tz::TimeZone) -> Option<weir_hj212::Qn> {
    let now_ms = jiff::Timestamp::now().as_millisecond().max(*last_qn_ms + 1);
    *last_qn_ms = now_ms;
    upload::qn(now_ms, tz)
}

/// The statistics sent, shortest period first.
fn periods(cfg: &Hj212Config) -> Vec<Period> {
    let mut periods = Vec::new();
    if cfg.minute_interval_min > 0 {
        periods.push(Period::Minutes(cfg.minute_interval_min));
    }
    if cfg.hourly {
        periods.push(Period::Hour);
    }
    if cfg.daily {
        periods.push(Period::Day);
    }
    periods
}

/// When the next period falls due (the end of the shortest plus the delay), Unix seconds.
fn next_statistics_at(cfg: &Hj212Config, tz: &jiff::tz::TimeZone) -> i64 {
    let step = periods(cfg).first().map_or(3600, |p| p.step());
    let delay = i64::from(cfg.statistics_delay_min) * 60;
    let closed_before = weir_store::now() - delay;
    rollups::step_start(closed_before, step, tz) + step + delay
}

/// The connection and what every upload needs.
struct Out<'a> {
    cfg: &'a Hj212Config,
    st: SystemCode,
    tz: &'a jiff::tz::TimeZone,
    answer: Option<Duration>,
    metrics: &'a Metrics,
    link: &'a mut Option<Link>,
    last_qn_ms: &'a mut i64,
}

/// Sends the minute, hourly and daily data that is due, per terminal from its cursor; `Err` after a
/// failure (counted, connection dropped), to be tried again after `retry_s`.
async fn send_statistics(out: Out<'_>, store: &Arc<Store>) -> Result<(), ()> {
    let cfg = out.cfg;
    let closed_before = weir_store::now() - i64::from(cfg.statistics_delay_min) * 60;
    for period in periods(cfg) {
        let step = period.step();
        // Periods that start before `end` are over; the last of them starts at `last_closed`.
        let end = rollups::step_start(closed_before, step, out.tz);
        let last_closed = rollups::step_start(end - 1, step, out.tz);
        for (id, terminal) in &cfg.terminals {
            let consumer = period.consumer(id);
            let (tz, id_owned, name) = (out.tz.clone(), id.clone(), consumer.clone());
            let fetched = store
                .run(move |c| {
                    let from = match cursors::get(c, &name)? {
                        Some(at) => rollups::step_range(at, at + 1, step, &tz).1,
                        None => last_closed,
                    };
                    let mut rows = Vec::new();
                    if from < end {
                        rollups::scan_steps(c, &id_owned, from, end, step, &tz, |r| {
                            rows.push(r);
                            true
                        })?;
                    }
                    let depth = terminals::get(c, &id_owned)?.and_then(|t| t.tank_depth_m);
                    Ok((from, rows, depth))
                })
                .await;
            let (from, rows, depth) = match fetched {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "HJ 212 uplink cannot read the rollups");
                    return Err(());
                }
            };
            if from >= end {
                continue;
            }
            for row in &rows {
                if let Some(cp) = statistics::period_cp(row, period, &cfg.codes, depth, out.tz) {
                    let Some(qn) = next_qn(out.last_qn_ms, out.tz) else {
                        continue;
                    };
                    let sender = Sender {
                        st: out.st,
                        mn: &terminal.mn,
                        pw: &terminal.pw,
                        answer: out.answer.is_some(),
                    };
                    let Ok(frame) = upload::frame(sender, period.cn(), qn, &cp) else {
                        tracing::warn!(terminal = %id, at = row.ts, "HJ 212: a period makes no frame; skipping it");
                        continue;
                    };
                    let answer = out.answer.map(|t| (qn, t));
                    if let Err(e) =
                        deliver(out.link, &cfg.address, &frame, answer, out.metrics).await
                    {
                        *out.link = None;
                        out.metrics.hj212_failures.fetch_add(1, Relaxed);
                        tracing::warn!(error = %e, terminal = %id, cn = period.cn().get(), "HJ 212 statistics not confirmed; will send them again");
                        return Err(());
                    }
                }
                if save_as(store, consumer.clone(), row.ts).await.is_err() {
                    return Err(());
                }
            }
            // Nothing more up to the last period that is over.
            if save_as(store, consumer, last_closed).await.is_err() {
                return Err(());
            }
        }
    }
    Ok(())
}

async fn pause(cancel: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}
