//! Service times of work orders: minutes from an alert's opening to the crew's dispatch,
//! arrival and resolution, per crew, against its targets.

use std::collections::BTreeMap;

use serde::Serialize;

use super::config::{AlertsConfig, ServiceTargets};
use super::model::AlertRow;

/// One step's times.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepTimes {
    /// Work orders that reached the step.
    pub n: usize,
    /// Median minutes from opening.
    pub median_min: Option<f64>,
    /// 90th percentile minutes from opening.
    pub p90_min: Option<f64>,
    /// Share of work orders that reached the step within its target (0 to 1); those that
    /// have not reached it and are past the target count as missed.
    pub within_target: Option<f64>,
}

/// One crew's service times.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CrewTimes {
    /// Crew name.
    pub crew: String,
    /// Work orders (alerts the crew was dispatched to).
    pub work_orders: usize,
    /// Until dispatch.
    pub dispatch: StepTimes,
    /// Until arrival.
    pub arrive: StepTimes,
    /// Until resolution.
    pub resolve: StepTimes,
    /// The crew's targets, minutes.
    pub targets: ServiceTargets,
}

/// Nearest-rank percentile of sorted `v`.
fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

fn step(
    rows: &[&AlertRow],
    at: impl Fn(&AlertRow) -> Option<i64>,
    target_min: u32,
    now: i64,
) -> StepTimes {
    times(rows, at, |_| Some(target_min), now)
}

/// Minutes from opening to the step `at` of each of `rows`, and the share within each row's
/// target (`target`, minutes; None: the step has no target); rows that have not reached the
/// step and are past their target count as missed.
pub(crate) fn times(
    rows: &[&AlertRow],
    at: impl Fn(&AlertRow) -> Option<i64>,
    target: impl Fn(&AlertRow) -> Option<u32>,
    now: i64,
) -> StepTimes {
    let mut minutes: Vec<f64> = Vec::new();
    let (mut met, mut decided) = (0usize, 0usize);
    for r in rows {
        let limit = target(r).map(|t| i64::from(t) * 60);
        match at(r) {
            Some(t) => {
                minutes.push((t - r.opened_at) as f64 / 60.0);
                if let Some(limit) = limit {
                    decided += 1;
                    if t - r.opened_at <= limit {
                        met += 1;
                    }
                }
            }
            None if limit.is_some_and(|l| now - r.opened_at > l) => decided += 1,
            None => {}
        }
    }
    minutes.sort_by(f64::total_cmp);
    StepTimes {
        n: minutes.len(),
        median_min: percentile(&minutes, 50.0).map(|m| (m * 10.0).round() / 10.0),
        p90_min: percentile(&minutes, 90.0).map(|m| (m * 10.0).round() / 10.0),
        within_target: (decided > 0).then(|| met as f64 / decided as f64),
    }
}

/// Service times per crew of the work orders among `rows`.
pub fn per_crew(rows: &[AlertRow], cfg: &AlertsConfig, now: i64) -> Vec<CrewTimes> {
    let mut by_crew: BTreeMap<&str, Vec<&AlertRow>> = BTreeMap::new();
    for name in cfg.crews.keys() {
        by_crew.entry(name).or_default();
    }
    for r in rows {
        if let Some(c) = &r.crew {
            by_crew.entry(c).or_default().push(r);
        }
    }
    by_crew
        .into_iter()
        .map(|(crew, rows)| {
            let t = cfg.targets_of(Some(crew));
            let resolved = |r: &AlertRow| r.resolved_at.filter(|_| r.dispatched_at.is_some());
            CrewTimes {
                crew: crew.into(),
                work_orders: rows.len(),
                dispatch: step(&rows, |r| r.dispatched_at, t.dispatch_min, now),
                arrive: step(&rows, |r| r.arrived_at, t.arrive_min, now),
                resolve: step(&rows, resolved, t.resolve_min, now),
                targets: t,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::CrewConfig;
    use crate::alerts::model::{AlertState, Rule, Severity};

    fn order(opened: i64, dispatch_min: i64, arrive_min: Option<i64>) -> AlertRow {
        AlertRow {
            id: opened,
            terminal: "HY-001".into(),
            rule: Rule::Turbidity,
            severity: Severity::Alarm,
            state: AlertState::Acknowledged,
            title: String::new(),
            detail: String::new(),
            value: None,
            threshold: None,
            opened_at: opened,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            resolution_note: None,
            assignee: None,
            incident_id: None,
            escalated: false,
            crew: Some("north".into()),
            dispatched_at: Some(opened + dispatch_min * 60),
            arrived_at: arrive_min.map(|m| opened + m * 60),
        }
    }

    #[test]
    fn a_crew_meeting_the_city_targets_most_of_the_time_shows_it() {
        let mut cfg = AlertsConfig::default();
        cfg.crews.insert(
            "north".into(),
            CrewConfig {
                targets: Some(ServiceTargets {
                    dispatch_min: 1,
                    arrive_min: 5,
                    resolve_min: 20,
                }),
                ..CrewConfig::default()
            },
        );
        let rows = vec![
            order(0, 1, Some(4)),
            order(1000, 1, Some(5)),
            order(2000, 3, Some(12)),
            // Not arrived yet and long past the target: missed.
            order(3000, 1, None),
        ];
        let t = per_crew(&rows, &cfg, 100_000);
        assert_eq!(t.len(), 1);
        let north = &t[0];
        assert_eq!(north.work_orders, 4);
        assert_eq!(north.dispatch.median_min, Some(1.0));
        assert_eq!(north.dispatch.within_target, Some(0.75));
        assert_eq!(north.arrive.n, 3);
        assert_eq!(north.arrive.p90_min, Some(12.0));
        assert_eq!(north.arrive.within_target, Some(0.5));
    }
}
