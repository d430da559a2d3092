//! Effluent turbidity: a warning above one limit, an alarm above a higher one, each held for
//! a while; cleared only below a lower limit held for a while.

use serde::{Deserialize, Serialize};
use weir_contract::{Quantity, Reading};

use super::hysteresis::Hysteresis;
use super::{minutes, Change, Transition};
use crate::alerts::config::RuleParams;
use crate::alerts::model::{Rule, Severity};
use crate::alerts::text::Text;

/// One alert per terminal: opened at warning or alarm level, raised to alarm while active.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Turbidity {
    /// Above the warning limit; its clearing ends the alert.
    pub warn: Hysteresis,
    /// Above the alarm limit; only ever raises (the alert clears through `warn`).
    pub alarm: Hysteresis,
}

impl Turbidity {
    /// Feeds one reading.
    pub fn feed(&mut self, p: &RuleParams, r: &Reading, text: Text) -> Option<Transition> {
        let v = r.value(Quantity::Turbidity)?;
        let ts = r.ts.unix();
        let sustain = i64::from(p.turbidity_sustain_min) * 60;
        let clear_after = i64::from(p.turbidity_clear_min) * 60;
        let was_alarm = self.alarm.raised;
        let alarm = self
            .alarm
            .feed(ts, v > p.turbidity_alarm_ntu, false, sustain, 0);
        let warn = self.warn.feed(
            ts,
            v > p.turbidity_warning_ntu,
            v < p.turbidity_clear_ntu,
            sustain,
            clear_after,
        );
        let raise = |severity, limit, since| Transition {
            rule: Rule::Turbidity,
            change: Change::Raise,
            severity,
            value: Some(v),
            threshold: Some(limit),
            detail: text.above_for(Quantity::Turbidity, v, limit, minutes(since, ts)),
        };
        match warn {
            Some((Change::Raise, since)) => Some(if self.alarm.raised {
                let since = alarm.map_or(since, |(_, s)| s);
                raise(Severity::Alarm, p.turbidity_alarm_ntu, since)
            } else {
                raise(Severity::Warning, p.turbidity_warning_ntu, since)
            }),
            Some((Change::Clear, _)) => {
                self.alarm.reset();
                Some(Transition {
                    value: Some(v),
                    threshold: Some(p.turbidity_clear_ntu),
                    ..Transition::clear(
                        Rule::Turbidity,
                        text.cleared(Some((Quantity::Turbidity, v))),
                    )
                })
            }
            None => match alarm {
                Some((Change::Raise, since)) if self.warn.raised && !was_alarm => {
                    Some(raise(Severity::Alarm, p.turbidity_alarm_ntu, since))
                }
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_contract::Timestamp;

    use super::*;
    use crate::alerts::config::Language;

    const T0: i64 = 1_790_000_000;

    fn feed(t: &mut Turbidity, p: &RuleParams, minute: i64, ntu: f64) -> Option<Transition> {
        let r = Reading::new(Timestamp::from_unix(T0 + minute * 60)).with(Quantity::Turbidity, ntu);
        t.feed(p, &r, Text(Language::En))
    }

    #[test]
    fn turbidity_above_the_warning_limit_for_thirty_minutes_opens_a_warning() {
        let p = RuleParams::default();
        let mut t = Turbidity::default();
        for m in 0..30 {
            assert_eq!(feed(&mut t, &p, m, 12.0), None, "minute {m}");
        }
        let raised = feed(&mut t, &p, 30, 12.0).unwrap();
        assert_eq!(raised.change, Change::Raise);
        assert_eq!(raised.severity, Severity::Warning);
        assert_eq!(raised.threshold, Some(10.0));
        assert!(raised.detail.contains("for 30 min"), "{}", raised.detail);
    }

    #[test]
    fn turbidity_above_the_alarm_limit_opens_an_alarm_directly() {
        let p = RuleParams::default();
        let mut t = Turbidity::default();
        let changes: Vec<_> = (0..=40).filter_map(|m| feed(&mut t, &p, m, 25.0)).collect();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].severity, Severity::Alarm);
        assert_eq!(changes[0].threshold, Some(20.0));
    }

    #[test]
    fn a_warning_rises_to_an_alarm_once_the_alarm_limit_is_held() {
        let p = RuleParams::default();
        let mut t = Turbidity::default();
        for m in 0..=30 {
            feed(&mut t, &p, m, 12.0);
        }
        let changes: Vec<_> = (31..=70)
            .filter_map(|m| feed(&mut t, &p, m, 22.0))
            .collect();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].change, Change::Raise);
        assert_eq!(changes[0].severity, Severity::Alarm);
    }

    #[test]
    fn turbidity_alert_clears_only_below_the_hysteresis_band() {
        let p = RuleParams::default();
        let mut t = Turbidity::default();
        for m in 0..=30 {
            feed(&mut t, &p, m, 15.0);
        }
        assert!(t.warn.raised);
        // Below the warning limit but inside the band (8-10 NTU): stays raised for hours.
        for m in 31..300 {
            assert_eq!(feed(&mut t, &p, m, 9.0), None, "minute {m}");
        }
        // Below the band, but not for long enough.
        for m in 300..329 {
            assert_eq!(feed(&mut t, &p, m, 5.0), None, "minute {m}");
        }
        let cleared = feed(&mut t, &p, 330, 5.0).unwrap();
        assert_eq!(cleared.change, Change::Clear);
    }

    #[test]
    fn a_signal_oscillating_around_the_limit_gives_one_alert_not_many() {
        let p = RuleParams::default();
        let mut t = Turbidity::default();
        let mut changes = Vec::new();
        for m in 0..=30 {
            changes.extend(feed(&mut t, &p, m, 11.0));
        }
        // Six hours of 9.5 / 10.5 / 7.9 / 12: around the limit, dipping under the clear
        // limit now and then but never for 30 minutes.
        for m in 31..400 {
            let v = [9.5, 10.5, 7.9, 12.0][(m % 4) as usize];
            changes.extend(feed(&mut t, &p, m, v));
        }
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].change, Change::Raise);
    }
}
