//! A stuck sensor: a value that does not change at all over a window. Real signals carry
//! noise; a frozen one usually means a hung sensor or a converter repeating its last frame.

use serde::{Deserialize, Serialize};
use weir_contract::{Quantity, Reading};

use super::{Change, Transition};
use crate::alerts::config::RuleParams;
use crate::alerts::model::{Rule, Severity};
use crate::alerts::text::Text;

/// One watched quantity's unchanged run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The quantity's field name.
    pub field: String,
    /// The repeated value.
    pub value: f64,
    /// First reading time with it, Unix s.
    pub since: i64,
    /// Readings with it.
    pub count: u32,
    /// Whether the run counts as stuck.
    pub stuck: bool,
}

/// All watched quantities of one terminal; one alert for any of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stuck {
    /// Runs by quantity.
    pub runs: Vec<Run>,
    /// Whether the alert condition is raised.
    pub raised: bool,
    /// The stuck quantities last reported.
    reported: Vec<String>,
}

impl Stuck {
    /// Feeds one reading.
    pub fn feed(&mut self, p: &RuleParams, r: &Reading, text: Text) -> Option<Transition> {
        let ts = r.ts.unix();
        let window = i64::from(p.stuck_window_h) * 3600;
        for q in p.stuck_quantities() {
            let Some(v) = r.value(q) else { continue };
            let run = match self.runs.iter_mut().find(|run| run.field == q.field()) {
                Some(run) => run,
                None => {
                    self.runs.push(Run {
                        field: q.field().into(),
                        value: v,
                        since: ts,
                        count: 0,
                        stuck: false,
                    });
                    self.runs.last_mut()?
                }
            };
            // Exact equality is the point: any change at all means the sensor is alive.
            #[allow(clippy::float_cmp)]
            if run.value != v {
                run.value = v;
                run.since = ts;
                run.count = 0;
            }
            run.count += 1;
            // Zero flow repeats legitimately at night; the no-flow rule watches that.
            let legit_zero = q == Quantity::Flow && v <= p.no_flow_below_m3h;
            run.stuck =
                ts - run.since >= window && run.count >= p.stuck_min_readings && !legit_zero;
        }
        let watched: Vec<String> = p
            .stuck_quantities()
            .iter()
            .map(|q| q.field().into())
            .collect();
        let stuck: Vec<(Quantity, f64)> = self
            .runs
            .iter()
            .filter(|run| run.stuck && watched.contains(&run.field))
            .filter_map(|run| Quantity::from_field(&run.field).map(|q| (q, run.value)))
            .collect();
        let names: Vec<String> = stuck.iter().map(|(q, _)| q.field().into()).collect();
        if stuck.is_empty() {
            if !self.raised {
                return None;
            }
            self.raised = false;
            self.reported.clear();
            return Some(Transition::clear(Rule::StuckSensor, text.cleared(None)));
        }
        if self.raised && names == self.reported {
            return None;
        }
        self.raised = true;
        self.reported = names;
        let hours = self
            .runs
            .iter()
            .filter(|run| run.stuck)
            .map(|run| ts - run.since)
            .min()
            .unwrap_or(window) as f64
            / 3600.0;
        Some(Transition {
            rule: Rule::StuckSensor,
            change: Change::Raise,
            severity: Severity::Maintenance,
            value: stuck.first().map(|(_, v)| *v),
            threshold: None,
            detail: text.stuck(&stuck, hours),
        })
    }

    /// Sets the raised state to agree with the stored alerts.
    pub fn force(&mut self, raised: bool) {
        self.raised = raised;
        self.reported.clear();
        if !raised {
            // Resolved by hand: a run must last a whole window again.
            self.runs.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_contract::Timestamp;

    use super::*;
    use crate::alerts::config::Language;

    fn at(minute: i64, ntu: f64, flow: f64) -> Reading {
        Reading::new(Timestamp::from_unix(1_790_000_000 + minute * 60))
            .with(Quantity::Turbidity, ntu)
            .with(Quantity::Flow, flow)
    }

    #[test]
    fn a_turbidity_value_frozen_for_six_hours_is_a_stuck_sensor_until_it_moves() {
        let p = RuleParams::default();
        let t = Text(Language::En);
        let mut s = Stuck::default();
        let mut changes = Vec::new();
        for m in (0..=360).step_by(5) {
            let flow = 1.0 + (m % 7) as f64 * 0.01;
            changes.extend(s.feed(&p, &at(m, 3.2, flow), t));
        }
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].change, Change::Raise);
        assert!(
            changes[0].detail.contains("turbidity 3.2 NTU"),
            "{}",
            changes[0].detail
        );
        let cleared = s.feed(&p, &at(365, 3.3, 1.0), t).unwrap();
        assert_eq!(cleared.change, Change::Clear);
    }

    #[test]
    fn zero_flow_all_night_is_not_a_stuck_flow_meter() {
        let p = RuleParams::default();
        let t = Text(Language::En);
        let mut s = Stuck::default();
        let changes: Vec<_> = (0..=720)
            .step_by(5)
            .filter_map(|m| s.feed(&p, &at(m, 3.0 + (m % 3) as f64 * 0.1, 0.0), t))
            .collect();
        assert!(changes.is_empty(), "{changes:?}");
    }
}
