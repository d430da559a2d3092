//! The debounce every level rule shares: a condition must hold for a while to raise, and a
//! stricter one must hold for a while to clear, so a signal near a limit raises once.

use serde::{Deserialize, Serialize};

use super::Change;

/// A raise/clear state with the start of the current run, on the readings' own clock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hysteresis {
    /// Whether the condition is raised.
    pub raised: bool,
    /// Since when (reading time, Unix s) the condition that would change `raised` has held.
    since: Option<i64>,
}

impl Hysteresis {
    /// Feeds one reading at `ts`: `raise` says the raising condition holds, `clear` the
    /// clearing one. Returns the change and when its run began.
    pub fn feed(
        &mut self,
        ts: i64,
        raise: bool,
        clear: bool,
        raise_after_s: i64,
        clear_after_s: i64,
    ) -> Option<(Change, i64)> {
        let (holds, after, change) = if self.raised {
            (clear, clear_after_s, Change::Clear)
        } else {
            (raise, raise_after_s, Change::Raise)
        };
        if !holds {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(ts);
        if ts - since < after {
            return None;
        }
        self.raised = change == Change::Raise;
        self.since = None;
        Some((change, since))
    }

    /// Forgets everything: the next run starts from scratch.
    pub fn reset(&mut self) {
        *self = Hysteresis::default();
    }

    /// Sets the raised state (to agree with the stored alerts), keeping nothing of the run.
    pub fn force(&mut self, raised: bool) {
        if self.raised != raised {
            self.raised = raised;
            self.since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_raises_only_after_holding_for_the_whole_duration() {
        let mut h = Hysteresis::default();
        assert_eq!(h.feed(0, true, false, 600, 600), None);
        assert_eq!(h.feed(300, true, false, 600, 600), None);
        assert_eq!(h.feed(600, true, false, 600, 600), Some((Change::Raise, 0)));
        assert!(h.raised);
    }

    #[test]
    fn a_break_in_the_condition_restarts_the_run() {
        let mut h = Hysteresis::default();
        h.feed(0, true, false, 600, 600);
        h.feed(300, false, false, 600, 600);
        assert_eq!(h.feed(600, true, false, 600, 600), None);
        assert_eq!(
            h.feed(1200, true, false, 600, 600),
            Some((Change::Raise, 600))
        );
    }

    #[test]
    fn clearing_needs_the_clear_condition_for_its_own_duration() {
        let mut h = Hysteresis::default();
        h.feed(0, true, false, 0, 600);
        assert!(h.raised);
        // Neither raising nor clearing: stays raised.
        assert_eq!(h.feed(100, false, false, 0, 600), None);
        assert_eq!(h.feed(200, false, true, 0, 600), None);
        assert_eq!(h.feed(700, false, false, 0, 600), None);
        assert_eq!(h.feed(800, false, true, 0, 600), None);
        assert_eq!(
            h.feed(1400, false, true, 0, 600),
            Some((Change::Clear, 800))
        );
        assert!(!h.raised);
    }
}
