//! What the alert engine talks about: rules, severities, states, and an alert, incident and
//! work order as the API shows them.

use serde::{Deserialize, Serialize};

use super::config::ServiceTargets;

/// A rule, by its id in the API and the configuration.
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

    /// The API view; `targets` are those of its crew, `now` decides overdue targets.
    pub fn view(&self, targets: ServiceTargets, now: i64) -> Alert {
        let work_order = self.crew.clone().map(|crew| {
            let met = |at: Option<i64>, target_min: u32| {
                let limit = self.opened_at + i64::from(target_min) * 60;
                match at {
                    Some(t) => Some(t <= limit),
                    None if now > limit => Some(false),
                    None => None,
                }
            };
            let resolved_at = self.resolved_at.filter(|_| self.dispatched_at.is_some());
            WorkOrder {
                crew,
                dispatched_at: self.dispatched_at.map(rfc3339),
                arrived_at: self.arrived_at.map(rfc3339),
                resolved_at: resolved_at.map(rfc3339),
                targets_met: TargetsMet {
                    dispatch: met(self.dispatched_at, targets.dispatch_min),
                    arrive: met(self.arrived_at, targets.arrive_min),
                    resolve: met(resolved_at, targets.resolve_min),
                },
            }
        });
        Alert {
            id: self.id,
            terminal: self.terminal.clone(),
            rule: self.rule,
            severity: self.severity,
            state: self.state,
            title: self.title.clone(),
            detail: self.detail.clone(),
            value: self.value,
            threshold: self.threshold,
            opened_at: rfc3339(self.opened_at),
            acknowledged_at: self.acknowledged_at.map(rfc3339),
            acknowledged_by: self.acknowledged_by.clone(),
            resolved_at: self.resolved_at.map(rfc3339),
            resolved_by: self.resolved_by.clone(),
            resolution_note: self.resolution_note.clone(),
            assignee: self.assignee.clone(),
            incident_id: self.incident_id,
            escalated: self.escalated,
            work_order,
        }
    }
}

/// RFC 3339 UTC text of Unix seconds.
pub fn rfc3339(t: i64) -> String {
    weir_contract::Timestamp::from_unix(t).to_string()
}

/// An alert as the API shows it (docs/api.md, "Alerts").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Its id.
    pub id: i64,
    /// Terminal id.
    pub terminal: String,
    /// Rule.
    pub rule: Rule,
    /// Severity.
    pub severity: Severity,
    /// State.
    pub state: AlertState,
    /// Short title.
    pub title: String,
    /// What was seen.
    pub detail: String,
    /// The value that raised it.
    pub value: Option<f64>,
    /// The limit.
    pub threshold: Option<f64>,
    /// RFC 3339.
    pub opened_at: String,
    /// RFC 3339.
    pub acknowledged_at: Option<String>,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// RFC 3339.
    pub resolved_at: Option<String>,
    /// Who resolved it (`weir`: the condition cleared).
    pub resolved_by: Option<String>,
    /// The note given on resolving.
    pub resolution_note: Option<String>,
    /// Person assigned.
    pub assignee: Option<String>,
    /// Incident it belongs to.
    pub incident_id: Option<i64>,
    /// Whether it escalated.
    pub escalated: bool,
    /// The work order, once a crew is dispatched.
    pub work_order: Option<WorkOrder>,
}

/// A crew's visit for an alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkOrder {
    /// Crew name.
    pub crew: String,
    /// RFC 3339.
    pub dispatched_at: Option<String>,
    /// RFC 3339.
    pub arrived_at: Option<String>,
    /// RFC 3339.
    pub resolved_at: Option<String>,
    /// Per step: met, missed, or not decided yet (null).
    pub targets_met: TargetsMet,
}

/// Whether each service time met its target.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetsMet {
    /// Dispatched in time.
    pub dispatch: Option<bool>,
    /// Arrived in time.
    pub arrive: Option<bool>,
    /// Resolved in time.
    pub resolve: Option<bool>,
}

/// One recorded transition of an alert.
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

/// Terminals that went offline together, as the API shows it.
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
