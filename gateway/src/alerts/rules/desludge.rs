//! Desludging due: the sludge level at or above a share of the tank's working depth.

use serde::{Deserialize, Serialize};
use weir_contract::{Quantity, Reading};

use super::hysteresis::Hysteresis;
use super::{minutes, Change, Transition};
use crate::alerts::config::RuleParams;
use crate::alerts::model::{Rule, Severity};
use crate::alerts::text::Text;

/// A maintenance alert, held for a while so that foam or a ripple under the ultrasonic
/// sensor raises nothing; cleared once the tank has been emptied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Desludge(pub Hysteresis);

impl Desludge {
    /// Feeds one reading.
    pub fn feed(&mut self, p: &RuleParams, r: &Reading, text: Text) -> Option<Transition> {
        let v = r.value(Quantity::Sludge)?;
        let ts = r.ts.unix();
        match self.0.feed(
            ts,
            v >= p.desludge_pct,
            v < p.desludge_clear_pct,
            i64::from(p.desludge_sustain_min) * 60,
            i64::from(p.desludge_clear_min) * 60,
        )? {
            (Change::Raise, since) => Some(Transition {
                rule: Rule::Desludge,
                change: Change::Raise,
                severity: Severity::Maintenance,
                value: Some(v),
                threshold: Some(p.desludge_pct),
                detail: text.sludge(v, p.desludge_pct, minutes(since, ts)),
            }),
            (Change::Clear, _) => Some(Transition {
                value: Some(v),
                threshold: Some(p.desludge_clear_pct),
                ..Transition::clear(Rule::Desludge, text.cleared(Some((Quantity::Sludge, v))))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_contract::Timestamp;

    use super::*;
    use crate::alerts::config::Language;

    fn feed(d: &mut Desludge, minute: i64, pct: f64) -> Option<Transition> {
        let r = Reading::new(Timestamp::from_unix(1_790_000_000 + minute * 60))
            .with(Quantity::Sludge, pct);
        d.feed(&RuleParams::default(), &r, Text(Language::Zh))
    }

    #[test]
    fn sludge_at_the_desludging_share_for_an_hour_raises_a_maintenance_alert_and_emptying_clears_it(
    ) {
        let mut d = Desludge::default();
        let raised: Vec<_> = (0..=60)
            .step_by(5)
            .filter_map(|m| feed(&mut d, m, 30.0))
            .collect();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].severity, Severity::Maintenance);
        assert!(raised[0].detail.contains("30 %"), "{}", raised[0].detail);
        // A foam spike downwards is not an emptied tank.
        assert_eq!(feed(&mut d, 65, 10.0), None);
        assert_eq!(feed(&mut d, 70, 31.0), None);
        let cleared: Vec<_> = (200..=260)
            .step_by(5)
            .filter_map(|m| feed(&mut d, m, 4.0))
            .collect();
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].change, Change::Clear);
    }
}
