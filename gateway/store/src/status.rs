//! Each node's last reported status.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use weir_contract::{NodeState, Status};

/// A node's status as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeStatus {
    /// Whether the node said it is online (its last will says offline).
    pub online: bool,
    /// Firmware version.
    pub firmware: Option<String>,
    /// Boot counter.
    pub boot: Option<u32>,
    /// Readings waiting in the node's queue.
    pub buffered: Option<u32>,
    /// Readings the node dropped because its queue was full.
    pub dropped: Option<u32>,
    /// Seconds since the node started.
    pub uptime_s: Option<u32>,
    /// When the gateway received it, Unix seconds.
    pub updated_at: i64,
}

/// Saves a status. An offline last will keeps the node's other fields.
pub fn upsert(tx: &Transaction<'_>, terminal: i64, s: &Status, at: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO node_status (terminal, online, firmware, boot, buffered, dropped, uptime_s, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (terminal) DO UPDATE SET
            online = excluded.online,
            firmware = coalesce(excluded.firmware, firmware),
            boot = coalesce(excluded.boot, boot),
            buffered = coalesce(excluded.buffered, buffered),
            dropped = coalesce(excluded.dropped, dropped),
            uptime_s = coalesce(excluded.uptime_s, uptime_s),
            updated_at = excluded.updated_at",
    )?
    .execute(params![
        terminal,
        s.state == NodeState::Online,
        s.firmware.as_deref(),
        s.boot,
        s.buffered,
        s.dropped,
        s.uptime_s,
        at
    ])?;
    Ok(())
}

/// The status of terminal `id`, if it ever reported one.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<NodeStatus>> {
    conn.prepare_cached(
        "SELECT s.online, s.firmware, s.boot, s.buffered, s.dropped, s.uptime_s, s.updated_at
         FROM node_status s JOIN terminals t ON t.key = s.terminal WHERE t.id = ?1",
    )?
    .query_row([id], |r| {
        Ok(NodeStatus {
            online: r.get(0)?,
            firmware: r.get(1)?,
            boot: r.get(2)?,
            buffered: r.get(3)?,
            dropped: r.get(4)?,
            uptime_s: r.get(5)?,
            updated_at: r.get(6)?,
        })
    })
    .optional()
}
