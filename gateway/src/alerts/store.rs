//! The alert tables and their queries: alerts and their history, incidents, the rule state
//! of each terminal, the engine's reading cursor, and every notification sent.

use rusqlite::{params, Connection, OptionalExtension, Row};
use weir_contract::{Fault, Quantity, Reading, Sample, Timestamp};

use super::model::{rfc3339, AlertRow, AlertState, HistoryEntry, Incident, Rule, Severity};

/// The alert tables, as named migrations.
pub fn migrations() -> Vec<(&'static str, String)> {
    vec![(
        "alerts_0001",
        "
        CREATE TABLE alert_incidents (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            opened_at INTEGER NOT NULL,
            resolved_at INTEGER
        );
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            terminal TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            state TEXT NOT NULL,
            title TEXT NOT NULL,
            detail TEXT NOT NULL,
            value REAL,
            threshold REAL,
            opened_at INTEGER NOT NULL,
            acknowledged_at INTEGER,
            acknowledged_by TEXT,
            resolved_at INTEGER,
            resolved_by TEXT,
            resolution_note TEXT,
            assignee TEXT,
            incident_id INTEGER REFERENCES alert_incidents(id),
            escalated INTEGER NOT NULL DEFAULT 0,
            crew TEXT,
            dispatched_at INTEGER,
            arrived_at INTEGER
        );
        -- At most one open or acknowledged alert per terminal and rule.
        CREATE UNIQUE INDEX alerts_one_active ON alerts(terminal, rule) WHERE state <> 'resolved';
        CREATE INDEX alerts_by_opened ON alerts(opened_at);
        CREATE INDEX alerts_by_incident ON alerts(incident_id) WHERE incident_id IS NOT NULL;
        -- Every transition: who did what, when.
        CREATE TABLE alert_history (
            id INTEGER PRIMARY KEY,
            alert INTEGER NOT NULL REFERENCES alerts(id),
            at INTEGER NOT NULL,
            who TEXT NOT NULL,
            action TEXT NOT NULL,
            note TEXT
        );
        CREATE INDEX alert_history_by_alert ON alert_history(alert);
        -- The reading rules' state of each terminal (JSON), so a restart resumes mid-run.
        CREATE TABLE alert_terminal_state (
            terminal TEXT PRIMARY KEY,
            rules TEXT NOT NULL,
            gaps TEXT NOT NULL
        );
        -- The newest reading id the engine has evaluated.
        CREATE TABLE alert_cursor (
            name TEXT PRIMARY KEY,
            last_id INTEGER NOT NULL
        );
        -- Every message sent, failed or held back by throttling.
        CREATE TABLE alert_notifications (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            channel TEXT NOT NULL,
            recipient TEXT NOT NULL,
            subject TEXT NOT NULL,
            event TEXT NOT NULL,
            severity TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            detail TEXT,
            text TEXT NOT NULL
        );
        CREATE INDEX alert_notifications_by_at ON alert_notifications(at);
        "
        .to_string(),
    )]
}

const ALERT_COLUMNS: &str = "id, terminal, rule, severity, state, title, detail, value, threshold,
    opened_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution_note,
    assignee, incident_id, escalated, crew, dispatched_at, arrived_at";

fn bad(what: &str, s: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unknown {what} {s:?}").into(),
    )
}

fn alert_row(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    let rule: String = r.get(2)?;
    let severity: String = r.get(3)?;
    let state: String = r.get(4)?;
    Ok(AlertRow {
        id: r.get(0)?,
        terminal: r.get(1)?,
        rule: Rule::parse(&rule).ok_or_else(|| bad("rule", rule))?,
        severity: Severity::parse(&severity).ok_or_else(|| bad("severity", severity))?,
        state: AlertState::parse(&state).ok_or_else(|| bad("state", state))?,
        title: r.get(5)?,
        detail: r.get(6)?,
        value: r.get(7)?,
        threshold: r.get(8)?,
        opened_at: r.get(9)?,
        acknowledged_at: r.get(10)?,
        acknowledged_by: r.get(11)?,
        resolved_at: r.get(12)?,
        resolved_by: r.get(13)?,
        resolution_note: r.get(14)?,
        assignee: r.get(15)?,
        incident_id: r.get(16)?,
        escalated: r.get(17)?,
        crew: r.get(18)?,
        dispatched_at: r.get(19)?,
        arrived_at: r.get(20)?,
    })
}

/// One alert.
pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<AlertRow>> {
    conn.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))?
        .query_row([id], alert_row)
        .optional()
}

/// The open or acknowledged alert of `terminal` and `rule`, if any.
pub fn active_for(
    conn: &Connection,
    terminal: &str,
    rule: Rule,
) -> rusqlite::Result<Option<AlertRow>> {
    conn.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE terminal = ?1 AND rule = ?2 AND state <> 'resolved'"
    ))?
    .query_row(params![terminal, rule.id()], alert_row)
    .optional()
}

/// Every open or acknowledged alert.
pub fn active(conn: &Connection) -> rusqlite::Result<Vec<AlertRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE state <> 'resolved' ORDER BY id"
    ))?;
    let rows = stmt.query_map([], alert_row)?;
    rows.collect()
}

/// Which alerts to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// States wanted; empty is all.
    pub states: Vec<AlertState>,
    /// Only this terminal.
    pub terminal: Option<String>,
    /// Only this rule.
    pub rule: Option<Rule>,
    /// Only this severity.
    pub severity: Option<Severity>,
    /// Only alerts opened at or after this.
    pub from: Option<i64>,
    /// Only alerts opened before this.
    pub to: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Alerts matching `f`, newest first.
pub fn list(conn: &Connection, f: &Filter) -> rusqlite::Result<Vec<AlertRow>> {
    let states: Vec<&str> = f.states.iter().map(|s| s.name()).collect();
    let states = if states.is_empty() {
        String::new()
    } else {
        states.join(",")
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts
         WHERE (?1 = '' OR instr(',' || ?1 || ',', ',' || state || ',') > 0)
           AND (?2 IS NULL OR terminal = ?2)
           AND (?3 IS NULL OR rule = ?3)
           AND (?4 IS NULL OR severity = ?4)
           AND (?5 IS NULL OR opened_at >= ?5)
           AND (?6 IS NULL OR opened_at < ?6)
         ORDER BY opened_at DESC, id DESC LIMIT ?7"
    ))?;
    let rows = stmt.query_map(
        params![
            states,
            f.terminal,
            f.rule.map(Rule::id),
            f.severity.map(Severity::name),
            f.from,
            f.to,
            f.limit
        ],
        alert_row,
    )?;
    rows.collect()
}

/// A new alert, open.
#[derive(Clone, Debug)]
pub struct NewAlert {
    /// Terminal id.
    pub terminal: String,
    /// Rule.
    pub rule: Rule,
    /// Severity.
    pub severity: Severity,
    /// Title.
    pub title: String,
    /// Detail.
    pub detail: String,
    /// Value.
    pub value: Option<f64>,
    /// Threshold.
    pub threshold: Option<f64>,
    /// When.
    pub at: i64,
}

/// Inserts an open alert and its `opened` history entry; returns its id.
pub fn insert(conn: &Connection, a: &NewAlert) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO alerts (terminal, rule, severity, state, title, detail, value, threshold, opened_at)
         VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        a.terminal,
        a.rule.id(),
        a.severity.name(),
        a.title,
        a.detail,
        a.value,
        a.threshold,
        a.at
    ])?;
    let id = conn.last_insert_rowid();
    record(
        conn,
        id,
        a.at,
        super::model::SYSTEM,
        "opened",
        Some(&a.detail),
    )?;
    Ok(id)
}

/// Writes every changeable field of `a`.
pub fn save(conn: &Connection, a: &AlertRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE alerts SET severity = ?2, state = ?3, title = ?4, detail = ?5, value = ?6,
            threshold = ?7, acknowledged_at = ?8, acknowledged_by = ?9, resolved_at = ?10,
            resolved_by = ?11, resolution_note = ?12, assignee = ?13, incident_id = ?14,
            escalated = ?15, crew = ?16, dispatched_at = ?17, arrived_at = ?18
         WHERE id = ?1",
    )?
    .execute(params![
        a.id,
        a.severity.name(),
        a.state.name(),
        a.title,
        a.detail,
        a.value,
        a.threshold,
        a.acknowledged_at,
        a.acknowledged_by,
        a.resolved_at,
        a.resolved_by,
        a.resolution_note,
        a.assignee,
        a.incident_id,
        a.escalated,
        a.crew,
        a.dispatched_at,
        a.arrived_at
    ])?;
    Ok(())
}

/// Records a transition of alert `id`.
pub fn record(
    conn: &Connection,
    id: i64,
    at: i64,
    who: &str,
    action: &str,
    note: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO alert_history (alert, at, who, action, note) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, at, who, action, note])?;
    Ok(())
}

/// The history of alert `id`, oldest first.
pub fn history(conn: &Connection, id: i64) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, who, action, note FROM alert_history WHERE alert = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(HistoryEntry {
            at: rfc3339(r.get(0)?),
            who: r.get(1)?,
            action: r.get(2)?,
            note: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Opens an incident; returns its id.
pub fn insert_incident(
    conn: &Connection,
    kind: &str,
    title: &str,
    at: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO alert_incidents (kind, title, opened_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![kind, title, at])?;
    Ok(conn.last_insert_rowid())
}

/// Updates an incident's title and resolution.
pub fn save_incident(
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
pub fn incidents(
    conn: &Connection,
    active_only: bool,
    limit: u32,
) -> rusqlite::Result<Vec<Incident>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM alert_incidents WHERE (?1 = 0 OR resolved_at IS NULL)
             ORDER BY opened_at DESC, id DESC LIMIT ?2",
        )?
        .query_map(params![active_only, limit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(incident(conn, id)?);
    }
    Ok(out)
}

/// One incident with its members.
pub fn incident(conn: &Connection, id: i64) -> rusqlite::Result<Option<Incident>> {
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

/// Saved rule state of every terminal: (terminal, rules JSON, gaps JSON).
pub fn terminal_states(conn: &Connection) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached("SELECT terminal, rules, gaps FROM alert_terminal_state")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// Saves one terminal's rule state.
pub fn save_terminal_state(
    conn: &Connection,
    terminal: &str,
    rules: &str,
    gaps: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO alert_terminal_state (terminal, rules, gaps) VALUES (?1, ?2, ?3)
         ON CONFLICT (terminal) DO UPDATE SET rules = excluded.rules, gaps = excluded.gaps",
    )?
    .execute(params![terminal, rules, gaps])?;
    Ok(())
}

/// The newest reading id evaluated, if the engine ever ran.
pub fn cursor(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT last_id FROM alert_cursor WHERE name = 'readings'")?
        .query_row([], |r| r.get(0))
        .optional()
}

/// Saves the newest reading id evaluated.
pub fn set_cursor(conn: &Connection, last_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO alert_cursor (name, last_id) VALUES ('readings', ?1)
         ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id",
    )?
    .execute([last_id])?;
    Ok(())
}

/// The newest reading id in the store.
pub fn max_reading_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM readings", [], |r| {
        r.get(0)
    })
}

/// A reading as the contract has it, from stored columns (`values` in `Quantity::ALL` order,
/// `faults` as stored JSON).
pub fn reading_from_columns(
    ts: i64,
    values: &[Option<f64>; Quantity::COUNT],
    faults: Option<&str>,
) -> Reading {
    let mut r = Reading::new(Timestamp::from_unix(ts));
    for (q, v) in Quantity::ALL.iter().zip(values) {
        if let Some(v) = v {
            r.set(*q, Some(Sample::Value(*v)));
        }
    }
    if let Some(f) = faults {
        if let Ok(map) = serde_json::from_str::<std::collections::BTreeMap<String, String>>(f) {
            for (field, code) in map {
                if let (Some(q), Some(fault)) =
                    (Quantity::from_field(&field), Fault::from_code(&code))
                {
                    r.set(q, Some(Sample::Fault(fault)));
                }
            }
        }
    }
    r
}

/// Readings committed after `after_id`, in commit order, at most `limit`:
/// (id, terminal id, reading).
pub fn readings_after(
    conn: &Connection,
    after_id: i64,
    limit: u32,
) -> rusqlite::Result<Vec<(i64, String, Reading)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT r.id, t.id, r.ts, {}, r.faults FROM readings r JOIN terminals t ON t.key = r.terminal
         WHERE r.id > ?1 ORDER BY r.id LIMIT ?2",
        Quantity::ALL
            .iter()
            .map(|q| format!("r.{}", q.field()))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    let rows = stmt.query_map(params![after_id, limit], |r| {
        let mut values = [None; Quantity::COUNT];
        for (i, v) in values.iter_mut().enumerate() {
            *v = r.get(3 + i)?;
        }
        let faults: Option<String> = r.get(3 + Quantity::COUNT)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            reading_from_columns(r.get(2)?, &values, faults.as_deref()),
        ))
    })?;
    rows.collect()
}

/// A registered terminal as the engine needs it: (id, design flow m3/d, last seen).
pub type Registered = (String, Option<f64>, Option<i64>);

/// Every registered terminal.
pub fn registry(conn: &Connection) -> rusqlite::Result<Vec<Registered>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, design_flow_m3d, last_seen FROM terminals ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

/// A message sent (or not) to one recipient.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NotificationRow {
    /// When the outcome was known, Unix s.
    pub at: i64,
    /// `webhook`, `sms`, `email`.
    pub channel: String,
    /// URL, number or address.
    pub recipient: String,
    /// `HY-001/turbidity` or `incident/3`.
    pub subject: String,
    /// `opened`, `escalated`, `resolved`.
    pub event: String,
    /// Severity.
    pub severity: String,
    /// `sent`, `failed`, `throttled`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error, if any.
    pub detail: Option<String>,
    /// The message text (SMS text, email subject, webhook event).
    pub text: String,
}

/// Records a notification.
pub fn record_notification(conn: &Connection, n: &NotificationRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO alert_notifications (at, channel, recipient, subject, event, severity, status,
            attempts, detail, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        n.at,
        n.channel,
        n.recipient,
        n.subject,
        n.event,
        n.severity,
        n.status,
        n.attempts,
        n.detail,
        n.text
    ])?;
    Ok(())
}

/// Notifications recorded, oldest first.
pub fn notifications(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<NotificationRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, channel, recipient, subject, event, severity, status, attempts, detail, text
         FROM alert_notifications ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(NotificationRow {
            at: r.get(0)?,
            channel: r.get(1)?,
            recipient: r.get(2)?,
            subject: r.get(3)?,
            event: r.get(4)?,
            severity: r.get(5)?,
            status: r.get(6)?,
            attempts: r.get(7)?,
            detail: r.get(8)?,
            text: r.get(9)?,
        })
    })?;
    rows.collect()
}
