//! Sensor fault codes reported by the node (docs/protocol.md: a failed sensor sends a code,
//! never a number).

use serde::{Deserialize, Serialize};
use weir_contract::{Reading, Sample};

use super::hysteresis::Hysteresis;
use super::{Change, Transition};
use crate::alerts::config::RuleParams;
use crate::alerts::model::{Rule, Severity};
use crate::alerts::text::Text;

/// Any fault code, held for a while (a single bad frame after retries is not yet a broken
/// sensor); cleared after a while of readings without fault codes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorFault(pub Hysteresis);

impl SensorFault {
    /// Feeds one reading.
    pub fn feed(&mut self, p: &RuleParams, r: &Reading, text: Text) -> Option<Transition> {
        let faults: Vec<_> = r
            .samples()
            .filter_map(|(q, s)| match s {
                Sample::Fault(f) => Some((q, f)),
                Sample::Value(_) => None,
            })
            .collect();
        let ts = r.ts.unix();
        match self.0.feed(
            ts,
            !faults.is_empty(),
            faults.is_empty(),
            i64::from(p.fault_sustain_min) * 60,
            i64::from(p.fault_clear_min) * 60,
        )? {
            (Change::Raise, _) => Some(Transition {
                rule: Rule::SensorFault,
                change: Change::Raise,
                severity: Severity::Warning,
                value: None,
                threshold: None,
                detail: text.faults(&faults),
            }),
            (Change::Clear, _) => Some(Transition::clear(Rule::SensorFault, text.cleared(None))),
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_contract::{Fault, Quantity, Timestamp};

    use super::*;
    use crate::alerts::config::Language;

    fn at(minute: i64, fault: Option<Fault>) -> Reading {
        let r = Reading::new(Timestamp::from_unix(1_790_000_000 + minute * 60))
            .with(Quantity::Flow, 1.0);
        match fault {
            Some(f) => r.with_fault(Quantity::Turbidity, f),
            None => r.with(Quantity::Turbidity, 3.0),
        }
    }

    #[test]
    fn a_fault_code_held_for_ten_minutes_raises_and_half_an_hour_without_clears() {
        let p = RuleParams::default();
        let t = Text(Language::Zh);
        let mut s = SensorFault::default();
        let raised: Vec<_> = (0..=10)
            .filter_map(|m| s.feed(&p, &at(m, Some(Fault::NoResponse)), t))
            .collect();
        assert_eq!(raised.len(), 1);
        assert!(
            raised[0].detail.contains("no_response"),
            "{}",
            raised[0].detail
        );
        // An intermittent fault keeps it raised without flapping.
        let mid: Vec<_> = (11..60)
            .filter_map(|m| s.feed(&p, &at(m, (m % 10 == 0).then_some(Fault::Checksum)), t))
            .collect();
        assert!(mid.is_empty(), "{mid:?}");
        let cleared: Vec<_> = (61..=91)
            .filter_map(|m| s.feed(&p, &at(m, None), t))
            .collect();
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].change, Change::Clear);
    }

    #[test]
    fn a_single_fault_after_retries_raises_nothing() {
        let p = RuleParams::default();
        let t = Text(Language::Zh);
        let mut s = SensorFault::default();
        assert!(s.feed(&p, &at(0, Some(Fault::Checksum)), t).is_none());
        assert!((1..100).all(|m| s.feed(&p, &at(m, None), t).is_none()));
    }
}
