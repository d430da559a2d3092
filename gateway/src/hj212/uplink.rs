//! The uplink task: follows the readings in commit order and sends each reading of a
//! configured terminal as real-time data, one upload at a time.
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
use weir_store::{cursors, readings, terminals, Store};

use super::config::Hj212Config;
use super::link::{Link, LinkError};
use super::upload::{self, Sender};
use crate::metrics::Metrics;

/// Its cursor's name.
const CONSUMER: &str = cursors::HJ212;
/// Readings read from the store at a time.
const BATCH: u32 = 500;
/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
    while !cancel.is_cancelled() {
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
            let now_ms = jiff::Timestamp::now().as_millisecond().max(last_qn_ms + 1);
            last_qn_ms = now_ms;
            let Some(qn) = upload::qn(now_ms, &tz) else {
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

/// Sends one frame on the open link (connecting first if there is none), then waits for its
/// answer when one is asked.
async fn deliver(
    link: &mut Option<Link>,
    address: &str,
    frame: &[u8],
    answer: Option<(weir_hj212::Qn, Duration)>,
    metrics: &Metrics,
) -> Result<(), LinkError> {
    if link.is_none() {
        *link = Some(Link::connect(address, CONNECT_TIMEOUT).await?);
    }
    let Some(l) = link.as_mut() else {
        return Err(LinkError::Closed);
    };
    l.send(frame).await?;
    metrics.hj212_sent.fetch_add(1, Relaxed);
    if let Some((qn, timeout)) = answer {
        l.answer(qn, timeout).await?;
        metrics.hj212_answers.fetch_add(1, Relaxed);
    }
    Ok(())
}

async fn save(store: &Arc<Store>, id: i64) -> anyhow::Result<()> {
    store.run(move |c| cursors::set(c, CONSUMER, id)).await
}

async fn pause(cancel: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}
