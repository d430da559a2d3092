//! Data gaps: sequence numbers, per terminal and boot, that never arrived. A node resends
//! whatever was not acknowledged, so a number still missing after a grace period was lost
//! (the node's queue overflowed, or its flash was wiped).

use serde::{Deserialize, Serialize};

use super::{Change, Transition};
use crate::alerts::model::{Rule, Severity};
use crate::alerts::text::Text;

/// Boots tracked per terminal: a restarted node may still replay its previous boot's queue.
const BOOTS_KEPT: usize = 4;
/// Missing ranges kept per boot; the oldest are forgotten beyond this.
const RANGES_KEPT: usize = 100;
/// A jump larger than this is a node that restarted its numbering, not lost messages.
const MAX_JUMP: u32 = 100_000;

/// Missing sequence numbers `lo..=hi`, noticed at `noticed` (engine clock, Unix s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// First missing.
    pub lo: u32,
    /// Last missing.
    pub hi: u32,
    /// When a later number showed they were missing.
    pub noticed: i64,
}

/// What one boot of a node has sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSeqs {
    /// Boot counter.
    pub boot: u32,
    /// Highest sequence number seen.
    pub max: u32,
    /// Ranges still missing.
    pub missing: Vec<Missing>,
}

/// One terminal's gap tracker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Gaps {
    /// Newest boots.
    pub boots: Vec<BootSeqs>,
    /// Whether a data gap alert is raised.
    pub raised: bool,
    /// Confirmed missing count last reported.
    reported: u64,
}

impl Gaps {
    /// A message (boot, seq) was stored at `now`.
    pub fn on_message(&mut self, boot: u32, seq: u32, now: i64) {
        let Some(b) = self.boots.iter_mut().find(|b| b.boot == boot) else {
            self.boots.push(BootSeqs {
                boot,
                max: seq,
                missing: Vec::new(),
            });
            self.boots.sort_by_key(|b| b.boot);
            if self.boots.len() > BOOTS_KEPT {
                self.boots.remove(0);
            }
            return;
        };
        if seq > b.max {
            if seq - b.max > 1 && seq - b.max <= MAX_JUMP {
                b.missing.push(Missing {
                    lo: b.max + 1,
                    hi: seq - 1,
                    noticed: now,
                });
                if b.missing.len() > RANGES_KEPT {
                    b.missing.remove(0);
                }
            }
            b.max = seq;
            return;
        }
        // A late arrival fills its place in a missing range.
        let Some(i) = b.missing.iter().position(|m| m.lo <= seq && seq <= m.hi) else {
            return;
        };
        let m = b.missing.remove(i);
        if seq < m.hi {
            b.missing.insert(
                i,
                Missing {
                    lo: seq + 1,
                    ..m.clone()
                },
            );
        }
        if seq > m.lo {
            b.missing.insert(i, Missing { hi: seq - 1, ..m });
        }
    }

    fn confirmed(&self, now: i64, grace_s: i64) -> impl Iterator<Item = (u32, &Missing)> {
        self.boots.iter().flat_map(move |b| {
            b.missing
                .iter()
                .filter(move |m| m.noticed + grace_s <= now)
                .map(move |m| (b.boot, m))
        })
    }

    /// When the next missing range becomes a gap, if any is waiting.
    pub fn next_deadline(&self, now: i64, grace_s: i64) -> Option<i64> {
        self.boots
            .iter()
            .flat_map(|b| &b.missing)
            .map(|m| m.noticed + grace_s)
            .filter(|d| *d > now)
            .min()
    }

    /// Raises when missing numbers pass their grace period (again when more do), clears
    /// when every missing number has arrived.
    pub fn check(&mut self, now: i64, grace_s: i64, text: Text) -> Option<Transition> {
        let missing: u64 = self
            .confirmed(now, grace_s)
            .map(|(_, m)| u64::from(m.hi - m.lo) + 1)
            .sum();
        if missing == 0 {
            if !self.raised {
                return None;
            }
            self.raised = false;
            self.reported = 0;
            return Some(Transition::clear(Rule::DataGap, text.gap_filled()));
        }
        if self.raised && missing == self.reported {
            return None;
        }
        self.raised = true;
        self.reported = missing;
        let ranges: Vec<String> = self
            .confirmed(now, grace_s)
            .take(10)
            .map(|(boot, m)| {
                if m.lo == m.hi {
                    format!("boot {boot} seq {}", m.lo)
                } else {
                    format!("boot {boot} seq {}-{}", m.lo, m.hi)
                }
            })
            .collect();
        let more = if self.confirmed(now, grace_s).count() > 10 {
            ", …"
        } else {
            ""
        };
        Some(Transition {
            rule: Rule::DataGap,
            change: Change::Raise,
            severity: Severity::Maintenance,
            value: Some(missing as f64),
            threshold: None,
            detail: text.data_gap(missing, &format!("{}{more}", ranges.join(", "))),
        })
    }

    /// Sets the raised state to agree with the stored alerts. Resolved by hand: the gaps
    /// known so far are accepted as lost.
    pub fn force(&mut self, raised: bool) {
        if !raised {
            for b in &mut self.boots {
                b.missing.clear();
            }
            self.reported = 0;
        }
        self.raised = raised;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::Language;

    const T: Text = Text(Language::En);

    #[test]
    fn a_sequence_number_missing_past_the_grace_period_is_a_gap_and_its_late_arrival_clears_it() {
        let mut g = Gaps::default();
        for seq in [0, 1, 2, 5, 6] {
            g.on_message(7, seq, 100);
        }
        assert!(g.check(100, 900, T).is_none(), "still in its grace period");
        assert_eq!(g.next_deadline(100, 900), Some(1000));
        let raised = g.check(1000, 900, T).unwrap();
        assert_eq!(raised.change, Change::Raise);
        assert_eq!(raised.value, Some(2.0));
        assert!(
            raised.detail.contains("boot 7 seq 3-4"),
            "{}",
            raised.detail
        );
        g.on_message(7, 4, 1100);
        assert!(g.check(1100, 900, T).map(|t| t.value) == Some(Some(1.0)));
        g.on_message(7, 3, 1200);
        assert_eq!(g.check(1200, 900, T).unwrap().change, Change::Clear);
    }

    #[test]
    fn messages_out_of_order_within_the_grace_period_raise_nothing() {
        let mut g = Gaps::default();
        for seq in [0, 2, 1, 4, 3, 5] {
            g.on_message(1, seq, 0);
        }
        assert!(g.check(10_000, 900, T).is_none());
        assert!(g.boots[0].missing.is_empty());
    }

    #[test]
    fn a_new_boot_starts_its_own_numbering() {
        let mut g = Gaps::default();
        g.on_message(1, 500, 0);
        g.on_message(2, 0, 0);
        g.on_message(2, 1, 0);
        // The previous boot's queue replayed after the restart.
        g.on_message(1, 501, 0);
        assert!(g.check(10_000, 900, T).is_none());
    }
}
