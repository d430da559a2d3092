//! Incidents: alerts of terminals that went offline together, grouped.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::alerts::rfc3339;

/// Terminals that went offline together, as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Its id.
    pub id: i64,
    /// `offline`.
    pub kind: String,
    /// Short title.
    pub title: String,
    /// RFC 3339.
    pub opened_at: String,
    /// RFC 3339, once every member alert is resolved.
    pub resolved_at: Option<String>,
    /// Terminal ids.
    pub terminals: Vec<String>,
    /// Member alerts.
    pub alert_ids: Vec<i64>,
}

/// Opens an incident; returns its id.
pub fn insert(conn: &Connection, kind: &str, title: &str, at: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO alert_incidents (kind, title, opened_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![kind, title, at])?;
    Ok(conn.last_insert_rowid())
}

/// Updates an incident's title and resolution.
pub fn save(
    conn: &Connection,
    id: i64,
    title: &str,
    resolved_at: Option<i64>,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE alert_incidents SET title = ?2, resolved_at = ?3 WHERE id = ?1")?
        .execute(params![id, title, resolved_at])?;
    Ok(())
}

/// Incidents, newest first; only unresolved ones if `active_only`.
pub fn list(conn: &Connection, active_only: bool, limit: u32) -> rusqlite::Result<Vec<Incident>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM alert_incidents WHERE (?1 = 0 OR resolved_at IS NULL)
             ORDER BY opened_at DESC, id DESC LIMIT ?2",
        )?
        .query_map(params![active_only, limit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get(conn, id)?);
    }
    Ok(out)
}

/// One incident with its members.
pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<Incident>> {
    let Some((kind, title, opened_at, resolved_at)) = conn
        .prepare_cached(
            "SELECT kind, title, opened_at, resolved_at FROM alert_incidents WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .optional()?
    else {
        return Ok(None);
    };
    let members: Vec<(i64, String)> = conn
        .prepare_cached("SELECT id, terminal FROM alerts WHERE incident_id = ?1 ORDER BY terminal")?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut terminals: Vec<String> = members.iter().map(|(_, t)| t.clone()).collect();
    terminals.dedup();
    Ok(Some(Incident {
        id,
        kind,
        title,
        opened_at: rfc3339(opened_at),
        resolved_at: resolved_at.map(rfc3339),
        terminals,
        alert_ids: members.iter().map(|(a, _)| *a).collect(),
    }))
}
