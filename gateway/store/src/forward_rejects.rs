//! Readings a forwarding sink refused as invalid: recorded and skipped, so one bad point
//! never blocks the rest nor is retried forever.

use rusqlite::{params, Connection};

/// Records that `sink` refused readings `first..=last` with HTTP `status`.
pub fn record(
    conn: &Connection,
    sink: &str,
    first: i64,
    last: i64,
    status: u16,
    detail: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO forward_rejects (at, sink, first_id, last_id, status, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![crate::now(), sink, first, last, status, detail],
    )?;
    Ok(())
}
