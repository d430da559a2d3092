//! Refused messages, kept (bounded) so an operator can see what a misconfigured logger sends.

use rusqlite::Connection;
use serde::Serialize;

/// A refused message.
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
