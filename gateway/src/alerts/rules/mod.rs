//! The rules, as pure state machines: fed readings (or, for the timer rules, the time), they
//! return transitions. No database, no clock, no network: the engine does that.
//!
//! Reading rules measure durations on the readings' own timestamps, so a node replaying an
//! hour of queued readings after an outage is judged by when the readings were taken.

pub mod desludge;
pub mod fault;
pub mod flow;
pub mod gap;
pub mod hysteresis;
pub mod offline;
pub mod stuck;
pub mod turbidity;

use serde::{Deserialize, Serialize};
use weir_contract::Reading;

use super::config::RuleParams;
use super::model::{Rule, Severity};
use super::text::Text;

/// Whether a condition began or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The condition holds: open an alert, or update the active one (a higher severity, a
    /// longer list).
    Raise,
    /// The condition is over: resolve the active alert.
    Clear,
}

/// What a rule decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// Which rule.
    pub rule: Rule,
    /// Raise or clear.
    pub change: Change,
    /// Severity (of a raise).
    pub severity: Severity,
    /// The value that decided it.
    pub value: Option<f64>,
    /// The limit it was compared with.
    pub threshold: Option<f64>,
    /// What was seen, for people.
    pub detail: String,
}

impl Transition {
    /// A clear of `rule`.
    pub fn clear(rule: Rule, detail: String) -> Transition {
        Transition {
            rule,
            change: Change::Clear,
            severity: Severity::Maintenance,
            value: None,
            threshold: None,
            detail,
        }
    }
}

/// Every reading rule of one terminal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadingRules {
    /// Effluent turbidity.
    pub turbidity: turbidity::Turbidity,
    /// Desludging due.
    pub desludge: desludge::Desludge,
    /// No flow.
    pub no_flow: flow::NoFlow,
    /// Overflow.
    pub overflow: flow::Overflow,
    /// Stuck sensor.
    pub stuck: stuck::Stuck,
    /// Sensor fault codes.
    pub fault: fault::SensorFault,
    /// Timestamp of the newest reading evaluated, Unix s.
    pub last_ts: Option<i64>,
}

impl ReadingRules {
    /// Evaluates one reading. Readings not newer than the newest one evaluated are skipped:
    /// they are stored, but a state machine cannot go back in time.
    pub fn on_reading(
        &mut self,
        p: &RuleParams,
        design_flow_m3d: Option<f64>,
        r: &Reading,
        text: Text,
    ) -> Vec<Transition> {
        let ts = r.ts.unix();
        if self.last_ts.is_some_and(|last| ts <= last) {
            return Vec::new();
        }
        self.last_ts = Some(ts);
        let mut out = Vec::new();
        if p.enabled(Rule::Turbidity) {
            out.extend(self.turbidity.feed(p, r, text));
        }
        if p.enabled(Rule::Desludge) {
            out.extend(self.desludge.feed(p, r, text));
        }
        if p.enabled(Rule::NoFlow) {
            out.extend(self.no_flow.feed(p, r, text));
        }
        if p.enabled(Rule::Overflow) {
            out.extend(self.overflow.feed(p, design_flow_m3d, r, text));
        }
        if p.enabled(Rule::StuckSensor) {
            out.extend(self.stuck.feed(p, r, text));
        }
        if p.enabled(Rule::SensorFault) {
            out.extend(self.fault.feed(p, r, text));
        }
        out
    }

    /// Whether `rule`'s condition is raised.
    pub fn raised(&self, rule: Rule) -> bool {
        match rule {
            Rule::Turbidity => self.turbidity.warn.raised,
            Rule::Desludge => self.desludge.0.raised,
            Rule::NoFlow => self.no_flow.0.raised,
            Rule::Overflow => self.overflow.0.raised,
            Rule::StuckSensor => self.stuck.raised,
            Rule::SensorFault => self.fault.0.raised,
            Rule::Offline | Rule::DataGap => false,
        }
    }

    /// Makes `rule` agree with the stored alerts: raised if an alert is active. An alert
    /// resolved by hand forgets the run, so a condition that persists raises again only
    /// after its full duration.
    pub fn force(&mut self, rule: Rule, raised: bool) {
        if self.raised(rule) == raised {
            return;
        }
        match rule {
            Rule::Turbidity => {
                self.turbidity.warn.force(raised);
                if !raised {
                    self.turbidity.alarm.reset();
                }
            }
            Rule::Desludge => self.desludge.0.force(raised),
            Rule::NoFlow => self.no_flow.0.force(raised),
            Rule::Overflow => self.overflow.0.force(raised),
            Rule::StuckSensor => self.stuck.force(raised),
            Rule::SensorFault => self.fault.0.force(raised),
            Rule::Offline | Rule::DataGap => {}
        }
    }
}

/// Minutes between two reading times.
fn minutes(from: i64, to: i64) -> i64 {
    (to - from) / 60
}
