//! Alerts and their history, and each terminal's alert-rule state: the alert engine's
//! tables. What a rule, a severity and a state are is defined here, with the row.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

/// A rule, by its id in the API and the configuration.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "config-schema", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Effluent turbidity above a limit for a while.
    Turbidity,
    /// Sludge at or above a share of the tank's depth: desludging is due.
    Desludge,
    /// No flow for hours.
    NoFlow,
    /// Flow far above the design flow.
    Overflow,
    /// A value that does not change at all.
    StuckSensor,
    /// Fault codes reported by the node.
    SensorFault,
    /// Nothing received, or the node's last will.
    Offline,
    /// Messages whose sequence numbers never arrived.
    DataGap,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 8] = [
        Rule::Turbidity,
        Rule::Desludge,
        Rule::NoFlow,
        Rule::Overflow,
        Rule::StuckSensor,
        Rule::SensorFault,
        Rule::Offline,
        Rule::DataGap,
    ];

    /// Its id.
    pub fn id(self) -> &'static str {
        match self {
            Rule::Turbidity => "turbidity",
            Rule::Desludge => "desludge",
            Rule::NoFlow => "no_flow",
            Rule::Overflow => "overflow",
            Rule::StuckSensor => "stuck_sensor",
            Rule::SensorFault => "sensor_fault",
            Rule::Offline => "offline",
            Rule::DataGap => "data_gap",
        }
    }

    /// The rule whose id is `s`.
    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == s)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// How urgent an alert is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "config-schema", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Planned work (desludging, a sensor to replace).
    Maintenance,
    /// Needs attention today.
    Warning,
    /// Needs attention now.
    Alarm,
}

impl Severity {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Alarm => "alarm",
            Severity::Warning => "warning",
            Severity::Maintenance => "maintenance",
        }
    }

    /// The severity named `s`.
    pub fn parse(s: &str) -> Option<Severity> {
        [Severity::Alarm, Severity::Warning, Severity::Maintenance]
            .into_iter()
            .find(|v| v.name() == s)
    }
}

/// Where an alert is in its lifecycle.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Raised, nobody has acknowledged it.
    Open,
    /// Someone has taken it on.
    Acknowledged,
    /// Over: the condition cleared, or someone resolved it with a note.
    Resolved,
}

impl AlertState {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<AlertState> {
        [
            AlertState::Open,
            AlertState::Acknowledged,
            AlertState::Resolved,
        ]
        .into_iter()
        .find(|v| v.name() == s)
    }
}

/// The name recorded as `who` for what the engine does by itself.
pub const SYSTEM: &str = "weir";

/// An alert as stored, times in Unix seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRow {
    /// Its id.
    pub id: i64,
    /// Terminal id.
    pub terminal: String,
    /// Rule.
    pub rule: Rule,
    /// Severity (may rise while it is active).
    pub severity: Severity,
    /// State.
    pub state: AlertState,
    /// Short title.
    pub title: String,
    /// What was seen.
    pub detail: String,
    /// The value that raised it, if any.
    pub value: Option<f64>,
    /// The limit it was compared with, if any.
    pub threshold: Option<f64>,
    /// When it opened.
    pub opened_at: i64,
    /// When it was acknowledged.
    pub acknowledged_at: Option<i64>,
    /// By whom.
    pub acknowledged_by: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<i64>,
    /// By whom (`weir` when the condition cleared).
    pub resolved_by: Option<String>,
    /// The resolution note.
    pub resolution_note: Option<String>,
    /// Person assigned.
    pub assignee: Option<String>,
    /// The incident it belongs to.
    pub incident_id: Option<i64>,
    /// Whether it escalated.
    pub escalated: bool,
    /// Crew dispatched.
    pub crew: Option<String>,
    /// When the crew was dispatched.
    pub dispatched_at: Option<i64>,
    /// When the crew arrived.
    pub arrived_at: Option<i64>,
}

impl AlertRow {
    /// Whether it is open or acknowledged.
    pub fn active(&self) -> bool {
        self.state != AlertState::Resolved
    }
}

/// RFC 3339 UTC text of Unix seconds.
pub fn rfc3339(t: i64) -> String {
    weir_contract::Timestamp::from_unix(t).to_string()
}

/// One recorded transition of an alert.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// RFC 3339.
    pub at: String,
    /// User, token name, or `weir`.
    pub who: String,
    /// `opened`, `severity`, `acknowledged`, `assigned`, `dispatched`, `arrived`, `note`,
    /// `escalated`, `incident`, `resolved`.
    pub action: String,
    /// Free text.
    pub note: Option<String>,
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
    record(conn, id, a.at, SYSTEM, "opened", Some(&a.detail))?;
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
