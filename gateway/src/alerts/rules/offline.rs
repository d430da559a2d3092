//! A node is offline when nothing arrived for k publish intervals, or a while after its last
//! will. Times are the engine's clock (seconds), never the readings': this rule is about
//! what did not arrive.

use super::{Change, Transition};
use crate::alerts::config::RuleParams;
use crate::alerts::model::{Rule, Severity};
use crate::alerts::text::Text;

/// One terminal's silence timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offline {
    /// When the node was last heard from, or when watching began (the gateway's start:
    /// the gateway's own downtime is not the node's).
    pub heard: i64,
    /// When its last will arrived, if that is the newest news.
    pub will: Option<i64>,
    /// Whether it is offline.
    pub raised: bool,
}

impl Offline {
    /// Starts watching at `now`; `raised` if an offline alert is active.
    pub fn new(now: i64, raised: bool) -> Offline {
        Offline {
            heard: now,
            will: None,
            raised,
        }
    }

    /// Something arrived from the node (a message, or an online status).
    pub fn heard(&mut self, now: i64, text: Text) -> Option<Transition> {
        self.heard = self.heard.max(now);
        self.will = None;
        if !self.raised {
            return None;
        }
        self.raised = false;
        Some(Transition::clear(Rule::Offline, text.back_online()))
    }

    /// The node's last will (status offline) arrived.
    pub fn last_will(&mut self, now: i64) {
        self.will = Some(now);
    }

    /// When the node will count as offline unless heard from; None once it does.
    pub fn deadline(&self, p: &RuleParams) -> Option<i64> {
        if self.raised {
            return None;
        }
        let silent = self.heard + p.offline_after_s();
        Some(match self.will {
            Some(w) => silent.min(w + i64::from(p.offline_will_grace_s)),
            None => silent,
        })
    }

    /// Checks the deadline at `now`.
    pub fn check(&mut self, p: &RuleParams, now: i64, text: Text) -> Option<Transition> {
        if now < self.deadline(p)? {
            return None;
        }
        self.raised = true;
        let silent_s = now - self.heard;
        let detail = match self.will {
            Some(_) if silent_s < p.offline_after_s() => text.last_will(),
            _ => text.silent(silent_s),
        };
        Some(Transition {
            rule: Rule::Offline,
            change: Change::Raise,
            severity: Severity::Warning,
            value: Some(silent_s as f64),
            threshold: Some(p.offline_after_s() as f64),
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::Language;

    const T: Text = Text(Language::En);

    #[test]
    fn silence_for_three_publish_intervals_raises_once_and_a_message_clears() {
        let p = RuleParams::default();
        let mut o = Offline::new(1000, false);
        assert_eq!(o.deadline(&p), Some(1900));
        assert!(o.check(&p, 1899, T).is_none());
        let raised = o.check(&p, 1900, T).unwrap();
        assert_eq!(raised.change, Change::Raise);
        assert!(o.check(&p, 5000, T).is_none(), "raised once only");
        assert_eq!(o.heard(5001, T).unwrap().change, Change::Clear);
        assert_eq!(o.deadline(&p), Some(5901));
    }

    #[test]
    fn a_last_will_raises_after_its_grace_unless_the_node_returns() {
        let p = RuleParams::default();
        let mut o = Offline::new(0, false);
        o.last_will(100);
        assert_eq!(o.deadline(&p), Some(160));
        o.heard(130, T);
        assert_eq!(o.deadline(&p), Some(1030));
        o.last_will(200);
        let raised = o.check(&p, 260, T).unwrap();
        assert!(raised.detail.contains("last will"), "{}", raised.detail);
    }
}
