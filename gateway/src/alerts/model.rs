//! What the alert engine talks about: rules, severities, states, and an alert, incident and
//! work order as the API shows them.

use serde::{Deserialize, Serialize};

use super::config::ServiceTargets;

pub use weir_store::alerts::{rfc3339, AlertRow, AlertState, HistoryEntry, Rule, Severity, SYSTEM};
pub use weir_store::incidents::Incident;

/// The API view of a stored alert; `targets` are those of its crew, `now` decides overdue
/// targets.
pub fn view(row: &AlertRow, targets: ServiceTargets, now: i64) -> Alert {
    let work_order = row.crew.clone().map(|crew| {
        let met = |at: Option<i64>, target_min: u32| {
            let limit = row.opened_at + i64::from(target_min) * 60;
            match at {
                Some(t) => Some(t <= limit),
                None if now > limit => Some(false),
                None => None,
            }
        };
        let resolved_at = row.resolved_at.filter(|_| row.dispatched_at.is_some());
        WorkOrder {
            crew,
            dispatched_at: row.dispatched_at.map(rfc3339),
            arrived_at: row.arrived_at.map(rfc3339),
            resolved_at: resolved_at.map(rfc3339),
            targets_met: TargetsMet {
                dispatch: met(row.dispatched_at, targets.dispatch_min),
                arrive: met(row.arrived_at, targets.arrive_min),
                resolve: met(resolved_at, targets.resolve_min),
            },
        }
    });
    Alert {
        id: row.id,
        terminal: row.terminal.clone(),
        rule: row.rule,
        severity: row.severity,
        state: row.state,
        title: row.title.clone(),
        detail: row.detail.clone(),
        value: row.value,
        threshold: row.threshold,
        opened_at: rfc3339(row.opened_at),
        acknowledged_at: row.acknowledged_at.map(rfc3339),
        acknowledged_by: row.acknowledged_by.clone(),
        resolved_at: row.resolved_at.map(rfc3339),
        resolved_by: row.resolved_by.clone(),
        resolution_note: row.resolution_note.clone(),
        assignee: row.assignee.clone(),
        incident_id: row.incident_id,
        escalated: row.escalated,
        work_order,
    }
}

/// An alert as the API shows it (docs/api.md, "Alerts").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TargetsMet {
    /// Dispatched in time.
    pub dispatch: Option<bool>,
    /// Arrived in time.
    pub arrive: Option<bool>,
    /// Resolved in time.
    pub resolve: Option<bool>,
}
