//! Flow rules: no flow for hours (a blocked inlet, a failed pump), and flow far above the
//! terminal's design flow (storm water getting in, an overflow).

use serde::{Deserialize, Serialize};
use weir_contract::{Quantity, Reading};

use super::hysteresis::Hysteresis;
use super::{minutes, Change, Transition};
use crate::alerts::config::RuleParams;
use crate::alerts::model::{Rule, Severity};
use crate::alerts::text::Text;

/// Flow at or below a small limit for hours; any flow above it clears.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NoFlow(pub Hysteresis);

impl NoFlow {
    /// Feeds one reading.
    pub fn feed(&mut self, p: &RuleParams, r: &Reading, text: Text) -> Option<Transition> {
        let v = r.value(Quantity::Flow)?;
        let ts = r.ts.unix();
        let limit = p.no_flow_below_m3h;
        match self
            .0
            .feed(ts, v <= limit, v > limit, i64::from(p.no_flow_h) * 3600, 0)?
        {
            (Change::Raise, since) => Some(Transition {
                rule: Rule::NoFlow,
                change: Change::Raise,
                severity: Severity::Warning,
                value: Some(v),
                threshold: Some(limit),
                detail: text.no_flow(v, limit, (ts - since) as f64 / 3600.0),
            }),
            (Change::Clear, _) => Some(Transition {
                value: Some(v),
                ..Transition::clear(Rule::NoFlow, text.cleared(Some((Quantity::Flow, v))))
            }),
        }
    }
}

/// Flow above a multiple of the design flow, held; cleared below a lower multiple, held.
/// A terminal without a design flow in the registry is not checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overflow(pub Hysteresis);

impl Overflow {
    /// Feeds one reading.
    pub fn feed(
        &mut self,
        p: &RuleParams,
        design_flow_m3d: Option<f64>,
        r: &Reading,
        text: Text,
    ) -> Option<Transition> {
        let Some(design_m3h) = design_flow_m3d.filter(|d| *d > 0.0).map(|d| d / 24.0) else {
            self.0.reset();
            return None;
        };
        let v = r.value(Quantity::Flow)?;
        let ts = r.ts.unix();
        let limit = design_m3h * p.overflow_factor;
        let clear = design_m3h * p.overflow_clear_factor;
        match self.0.feed(
            ts,
            v > limit,
            v < clear,
            i64::from(p.overflow_sustain_min) * 60,
            i64::from(p.overflow_clear_min) * 60,
        )? {
            (Change::Raise, since) => {
                let limit = (limit * 100.0).round() / 100.0;
                Some(Transition {
                    rule: Rule::Overflow,
                    change: Change::Raise,
                    severity: Severity::Warning,
                    value: Some(v),
                    threshold: Some(limit),
                    detail: text.above_for(Quantity::Flow, v, limit, minutes(since, ts)),
                })
            }
            (Change::Clear, _) => Some(Transition {
                value: Some(v),
                ..Transition::clear(Rule::Overflow, text.cleared(Some((Quantity::Flow, v))))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_contract::Timestamp;

    use super::*;
    use crate::alerts::config::Language;

    fn at(minute: i64, flow: f64) -> Reading {
        Reading::new(Timestamp::from_unix(1_790_000_000 + minute * 60)).with(Quantity::Flow, flow)
    }

    #[test]
    fn six_hours_without_flow_raise_and_the_first_flow_clears() {
        let p = RuleParams::default();
        let mut n = NoFlow::default();
        let t = Text(Language::En);
        let raised: Vec<_> = (0..=360)
            .step_by(5)
            .filter_map(|m| n.feed(&p, &at(m, 0.0), t))
            .collect();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].change, Change::Raise);
        assert!(raised[0].detail.contains("6.0 h"), "{}", raised[0].detail);
        let cleared = n.feed(&p, &at(365, 0.8), t).unwrap();
        assert_eq!(cleared.change, Change::Clear);
    }

    #[test]
    fn flow_above_three_times_the_design_flow_for_half_an_hour_is_an_overflow() {
        let p = RuleParams::default();
        let mut o = Overflow::default();
        let t = Text(Language::En);
        // 24 m3/day is 1 m3/h: the limit is 3 m3/h, cleared below 2 m3/h.
        let raised: Vec<_> = (0..=30)
            .filter_map(|m| o.feed(&p, Some(24.0), &at(m, 3.5), t))
            .collect();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].threshold, Some(3.0));
        let band: Vec<_> = (31..120)
            .filter_map(|m| o.feed(&p, Some(24.0), &at(m, 2.5), t))
            .collect();
        assert!(band.is_empty());
        let cleared: Vec<_> = (120..=150)
            .filter_map(|m| o.feed(&p, Some(24.0), &at(m, 1.0), t))
            .collect();
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].change, Change::Clear);
    }

    #[test]
    fn a_terminal_without_a_design_flow_is_never_an_overflow() {
        let p = RuleParams::default();
        let mut o = Overflow::default();
        let t = Text(Language::En);
        assert!((0..100).all(|m| o.feed(&p, None, &at(m, 900.0), t).is_none()));
    }
}
