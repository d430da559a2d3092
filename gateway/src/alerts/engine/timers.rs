//! Time in the engine: its clock (wall seconds that move with the tokio clock), the silence
//! and escalation deadlines, and what happens when one passes.

use super::*;

/// Wall-clock seconds that advance with the tokio clock, so that alert times and silence
/// timers agree (and tests with paused time see both move together).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall0: i64,
    inst0: Instant,
}

impl Clock {
    /// Starts at the system's time now.
    pub fn start() -> Clock {
        Clock {
            wall0: weir_store::now(),
            inst0: Instant::now(),
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.wall0 + self.inst0.elapsed().as_secs() as i64
    }

    /// The tokio instant of Unix second `at`.
    pub fn instant(&self, at: i64) -> Instant {
        self.inst0 + Duration::from_secs((at - self.wall0).max(0) as u64)
    }
}

impl Engine {
    pub(super) fn escalate_at(&self, row: &AlertRow) -> Option<i64> {
        if row.state != AlertState::Open || row.escalated {
            return None;
        }
        self.cfg
            .escalation
            .after_s(row.severity)
            .map(|s| row.opened_at + s)
    }

    /// Runs every timer that is due.
    pub async fn on_timers(&mut self, now: i64) -> anyhow::Result<()> {
        let text = self.text;
        let mut plan = Vec::new();
        for (t, term) in &mut self.terms {
            if let Some(o) = &mut term.offline {
                plan.extend(o.check(&term.params, now, text).map(|x| (t.clone(), x)));
            }
            if term.params.enabled(Rule::DataGap) {
                let grace = i64::from(term.params.data_gap_grace_min) * 60;
                if let Some(x) = term.gaps.check(now, grace, text) {
                    term.dirty = true;
                    plan.push((t.clone(), x));
                }
            }
        }
        self.apply(plan, now, false).await?;

        let due: Vec<(String, Rule)> = self
            .active
            .iter()
            .filter(|(_, a)| a.escalate_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.escalate(&key, now).await?;
        }

        let due: Vec<(String, Rule)> = self
            .active
            .iter()
            .filter(|(_, a)| a.notify_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(a) = self.active.get_mut(&key) else {
                continue;
            };
            a.notify_at = None;
            if a.incident.is_some() {
                // The incident's one notice speaks for it.
                continue;
            }
            let id = a.id;
            if let Some(row) = self.store.run(move |c| store::get(c, id)).await? {
                self.notice_alert(NoticeEvent::Opened, &row, now);
            }
        }

        let due: Vec<i64> = self
            .incidents
            .iter()
            .filter(|(_, i)| i.notify_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(i) = self.incidents.get_mut(&id) {
                i.notify_at = None;
            }
            if let Some(inc) = self.store.run(move |c| incidents::get(c, id)).await? {
                self.notice_incident(NoticeEvent::Opened, &inc);
            }
        }
        Ok(())
    }

    /// The earliest timer, engine seconds.
    pub fn next_deadline(&self) -> Option<i64> {
        let now = self.clock.now();
        let terms = self.terms.values().flat_map(|t| {
            let gap = t.params.enabled(Rule::DataGap).then(|| {
                t.gaps
                    .next_deadline(now, i64::from(t.params.data_gap_grace_min) * 60)
            });
            [
                t.offline.as_ref().and_then(|o| o.deadline(&t.params)),
                gap.flatten(),
            ]
        });
        let alerts = self
            .active
            .values()
            .flat_map(|a| [a.escalate_at, a.notify_at]);
        let incidents = self.incidents.values().map(|i| i.notify_at);
        terms.chain(alerts).chain(incidents).flatten().min()
    }
}
