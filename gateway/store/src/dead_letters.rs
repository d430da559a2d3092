//! Refused messages, kept (bounded) so an operator can see what a misconfigured logger sends.

use rusqlite::{params, Connection, Transaction};
use serde::Serialize;

/// A refused message.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Order of arrival.
    pub id: i64,
    /// Unix seconds.
    pub received_at: i64,
    /// Terminal named by the topic, if any.
    pub terminal: Option<String>,
    /// The topic.
    pub topic: String,
    /// Stable reason code.
    pub reason: String,
    /// Reason for people, naming the field.
    pub detail: String,
    /// The payload as text where it is UTF-8, else hex.
    pub payload: String,
}

/// The newest `limit` dead letters, newest first.
pub fn latest(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<DeadLetter>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, received_at, terminal, topic, reason, detail, payload
         FROM dead_letters ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        let payload: Vec<u8> = r.get(6)?;
        Ok(DeadLetter {
            id: r.get(0)?,
            received_at: r.get(1)?,
            terminal: r.get(2)?,
            topic: r.get(3)?,
            reason: r.get(4)?,
            detail: r.get(5)?,
            payload: String::from_utf8(payload.clone()).unwrap_or_else(|_| hex::encode(payload)),
        })
    })?;
    rows.collect()
}

/// Keeps a refused message.
pub(crate) fn insert(
    tx: &Transaction<'_>,
    received_at: i64,
    terminal: Option<&str>,
    topic: &str,
    reason: &str,
    detail: &str,
    payload: &[u8],
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO dead_letters (received_at, terminal, topic, reason, detail, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        received_at,
        terminal,
        topic,
        reason,
        detail,
        payload
    ])?;
    Ok(())
}

/// Deletes the oldest dead letters beyond the newest `keep`.
pub(crate) fn trim(tx: &Transaction<'_>, keep: u32) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?1",
        [keep],
    )?;
    Ok(())
}
