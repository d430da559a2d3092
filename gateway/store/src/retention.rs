//! Raw-reading retention (`store.raw_retention_days`), and picture retention
//! (`pictures.retention_days`, [`run_pictures`]).
//!
//! Once an hour (and at start) readings older than the window are deleted, in short
//! transactions so ingest never waits long for the write lock. Hourly rollups are kept, so
//! charts over months and years still work. What is never deleted, however old:
//! - a reading the InfluxDB forwarder or the alert engine has not processed yet (their cursors);
//! - each terminal's newest reading (the overview shows it, however long ago it came);
//! - the newest reading of all: SQLite gives a new row the highest id plus one, so deleting
//!   the highest would let the next reading reuse an id the cursors have already passed.
//!
//! Messages (the (terminal, boot, seq) record used to recognise replays) received before the
//! window go too. A reading that arrives already older than the window, or older than anything
//! retention ever deleted below ([`oldest_accepted`]), is not stored (see the writer), so a
//! late replay can never bring back, or count twice in a rollup, a reading that was deleted,
//! even after the window is widened or retention turned off.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension as _};

/// Rows deleted per transaction.
const CHUNK: i64 = 5_000;

/// How often retention runs.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// What one pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Raw readings.
    pub readings: u64,
}

/// The oldest reading time kept, for `days` of retention (0: keep everything).
pub fn horizon(days: u32, now: i64) -> Option<i64> {
    (days > 0).then(|| now - i64::from(days) * 86_400)
}

/// The oldest reading time the store accepts: the configured window's start, or, if later,
/// the time below which retention has ever deleted. A reading older than what was deleted
/// would count a second time in its hour's rollup, so it is not stored even after the window
/// is widened or retention turned off.
pub fn oldest_accepted(conn: &Connection, days: u32, now: i64) -> rusqlite::Result<Option<i64>> {
    let floor: Option<i64> = conn
        .query_row(
            "SELECT pruned_before FROM retention WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match (horizon(days, now), floor) {
        (Some(h), Some(f)) => Some(h.max(f)),
        (h, f) => h.or(f),
    })
}

/// The highest reading id that may be deleted: below what every consumer of commit order
/// (`consumers`, by their cursor names) has processed, and below the newest reading.
fn deletable_up_to(conn: &Connection, consumers: &[&str]) -> rusqlite::Result<i64> {
    let newest = crate::readings::max_id(conn)? - 1;
    Ok(match crate::cursors::lowest(conn, consumers)? {
        Some(processed) => newest.min(processed),
        None => newest,
    })
}

/// Deletes raw readings older than `horizon` (Unix seconds), keeping what the module's rules
/// keep; `consumers` names the cursors (see
/// [`crate::cursors`]) of every consumer of commit order that runs.
pub fn prune(conn: &Connection, horizon: i64, consumers: &[&str]) -> rusqlite::Result<Pruned> {
    let mut pruned = Pruned::default();
    let up_to = deletable_up_to(conn, consumers)?;
    let terminals: Vec<i64> = conn
        .prepare("SELECT key FROM terminals ORDER BY key")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for key in terminals {
        loop {
            // (terminal, ts) is indexed: each chunk reads only the rows it deletes.
            let n = conn.execute(
                "DELETE FROM readings WHERE id IN (
                     SELECT id FROM readings
                     WHERE terminal = ?1 AND ts < ?2 AND id <= ?3
                       AND ts < (SELECT max(ts) FROM readings WHERE terminal = ?1)
                     LIMIT ?4)",
                params![key, horizon, up_to, CHUNK],
            )?;
            pruned.readings += n as u64;
            if (n as i64) < CHUNK {
                break;
            }
        }
    }
    if pruned.readings > 0 {
        conn.execute(
            "INSERT INTO retention (id, pruned_before) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET pruned_before = max(pruned_before, excluded.pruned_before)",
            [horizon],
        )?;
    }
    Ok(pruned)
}

/// Runs retention at start and then every [`INTERVAL`] until `cancel`, telling `pruned` what
/// each pass deleted.
pub async fn run(
    store: std::sync::Arc<crate::Store>,
    days: u32,
    consumers: Vec<&'static str>,
    pruned: impl Fn(Pruned) + Send,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        if let Some(h) = horizon(days, crate::now()) {
            let consumers = consumers.clone();
            match store.run(move |c| prune(c, h, &consumers)).await {
                Ok(p) => {
                    pruned(p);
                    if p.readings > 0 {
                        tracing::info!(
                            readings = p.readings,
                            days,
                            "deleted raw readings older than the retention window"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "raw retention failed; trying again later")
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// Picture retention (`pictures.retention_days`, 0: keep until the disk bound makes room):
/// at start and then every [`INTERVAL`] until `cancel`, deletes the pictures taken more than
/// `days` ago, each row with its files (see [`crate::pictures::prune`]), telling `pruned` how
/// many went.
pub async fn run_pictures(
    store: std::sync::Arc<crate::Store>,
    days: u32,
    pruned: impl Fn(u64) + Send,
    cancel: tokio_util::sync::CancellationToken,
) {
    let dir = store.pictures_dir();
    loop {
        if let Some(h) = horizon(days, crate::now()) {
            let dir = dir.clone();
            match store.run(move |c| crate::pictures::prune(c, &dir, h)).await {
                Ok(n) => {
                    pruned(n);
                    if n > 0 {
                        tracing::info!(
                            pictures = n,
                            days,
                            "deleted pictures older than the retention window"
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "picture retention failed; trying again later")
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(conn: &Connection) -> Vec<i64> {
        conn.prepare("SELECT id FROM readings ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn cursors(conn: &Connection, alerts: i64, forwarded: i64) {
        crate::cursors::set(conn, crate::cursors::ALERTS, alerts).unwrap();
        crate::cursors::set(conn, crate::cursors::INFLUX, forwarded).unwrap();
    }

    const ALERTS_ONLY: &[&str] = &[crate::cursors::ALERTS];
    const ALERTS_AND_FORWARDER: &[&str] = &[crate::cursors::ALERTS, crate::cursors::INFLUX];

    #[test]
    fn prune_keeps_what_cursors_have_not_passed_the_newest_per_terminal_and_the_newest_row() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::Store::open(&dir.path().join("weir.db"), crate::Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        let (now, old) = (1_800_000_000_i64, 1_700_000_000_i64);
        let horizon = now - 7 * 86_400;
        conn.execute_batch(&format!(
            "INSERT INTO terminals (key, id, name, created_at) VALUES (1, 'HY-001', 'a', 0), (2, 'HY-002', 'b', 0);
             -- HY-001: five old readings, one recent; HY-002: two old ones (its newest is old);
             -- then a late old reading of HY-001, committed last: the newest row of all.
             INSERT INTO readings (id, terminal, ts) VALUES
               (1, 1, {old}), (2, 1, {old} + 60), (3, 1, {old} + 120), (4, 1, {old} + 180),
               (5, 1, {old} + 240), (6, 1, {now}), (7, 2, {old}), (8, 2, {old} + 60),
               (9, 1, {old} - 60);"
        ))
        .unwrap();

        // The alert engine has seen up to 3: nothing after it goes.
        cursors(&conn, 3, 0);
        let p = prune(&conn, horizon, ALERTS_ONLY).unwrap();
        assert_eq!(p, Pruned { readings: 3 });
        assert_eq!(ids(&conn), vec![4, 5, 6, 7, 8, 9]);

        // With forwarding on, its cursor (7) holds too; HY-002 keeps its newest (8).
        cursors(&conn, 100, 7);
        prune(&conn, horizon, ALERTS_AND_FORWARDER).unwrap();
        assert_eq!(ids(&conn), vec![6, 8, 9]);

        // Everything processed: the newest row (9) still stays, so no id is ever reused.
        cursors(&conn, 9, 9);
        prune(&conn, horizon, ALERTS_AND_FORWARDER).unwrap();
        assert_eq!(ids(&conn), vec![6, 8, 9]);
    }
}
