//! Incidents: alerts of terminals that went offline together, grouped into one, and closed
//! when every member is resolved.

use super::*;

impl Engine {
    /// Bookkeeping after `row` was resolved (by the engine or by hand).
    pub(super) async fn resolved(&mut self, row: &AlertRow, now: i64) -> anyhow::Result<()> {
        let key = (row.terminal.clone(), row.rule);
        let Some(a) = self.active.remove(&key) else {
            return Ok(());
        };
        // Only what was announced is announced over; an incident speaks for its members.
        if a.notify_at.is_none() && a.incident.is_none() {
            self.notice_alert(NoticeEvent::Resolved, row, now);
        }
        let Some(inc_id) = a.incident else {
            return Ok(());
        };
        let still = self.incidents.get(&inc_id).is_some_and(|i| {
            i.members
                .iter()
                .any(|m| self.active.values().any(|a| a.id == *m))
        });
        if still {
            return Ok(());
        }
        let announced = self
            .incidents
            .remove(&inc_id)
            .is_some_and(|i| i.notify_at.is_none());
        let inc = self
            .store
            .run(move |c| {
                let Some(inc) = incidents::get(c, inc_id)? else {
                    return Ok(None);
                };
                incidents::save(c, inc_id, &inc.title, Some(now))?;
                incidents::get(c, inc_id)
            })
            .await?;
        if let Some(inc) = inc {
            if announced {
                self.notice_incident(NoticeEvent::Resolved, &inc);
            }
            let _ = self.out.events.send(AlertEvent::Incident(inc));
        }
        Ok(())
    }

    /// Puts the offline alert `id`, just opened, into an incident if it went offline with
    /// others: joins a growing incident, or founds one once enough terminals are offline
    /// within the window. Returns the updated alert if it joined.
    pub(super) async fn group(&mut self, id: i64, now: i64) -> anyhow::Result<Option<AlertRow>> {
        let window = i64::from(self.cfg.incidents.window_s);
        let joining = self
            .incidents
            .iter()
            .filter(|(_, i)| i.last_join >= now - window)
            .map(|(iid, _)| *iid)
            .max();
        let members: Vec<i64> = match joining {
            Some(_) => vec![id],
            None => {
                let recent: Vec<i64> = self
                    .active
                    .iter()
                    .filter(|((_, rule), a)| {
                        *rule == Rule::Offline
                            && a.incident.is_none()
                            && a.opened_at >= now - window
                    })
                    .map(|(_, a)| a.id)
                    .collect();
                if recent.len() < self.cfg.incidents.min_terminals as usize {
                    return Ok(None);
                }
                recent
            }
        };
        let text = self.text;
        let ids = members.clone();
        let (inc_id, inc) = self
            .store
            .run(move |c| {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                let inc_id = match joining {
                    Some(i) => i,
                    None => incidents::insert(&tx, "offline", "", now)?,
                };
                for id in &ids {
                    if let Some(mut row) = store::get(&tx, *id)? {
                        row.incident_id = Some(inc_id);
                        store::save(&tx, &row)?;
                        store::record(
                            &tx,
                            *id,
                            now,
                            SYSTEM,
                            "incident",
                            Some(&inc_id.to_string()),
                        )?;
                    }
                }
                let terminals = incidents::get(&tx, inc_id)?
                    .map(|i| i.terminals.len())
                    .unwrap_or(0);
                incidents::save(&tx, inc_id, &text.offline_incident(terminals), None)?;
                let inc = incidents::get(&tx, inc_id)?;
                tx.commit()?;
                Ok((inc_id, inc))
            })
            .await?;
        for a in self.active.values_mut() {
            if members.contains(&a.id) {
                a.incident = Some(inc_id);
            }
        }
        let entry = self.incidents.entry(inc_id).or_insert(ActiveIncident {
            last_join: now,
            escalated: false,
            members: Vec::new(),
            notify_at: Some(now + window),
        });
        entry.last_join = now;
        entry.members.extend(members);
        if let Some(inc) = inc {
            let _ = self.out.events.send(AlertEvent::Incident(inc));
        }
        self.store.run(move |c| store::get(c, id)).await
    }
}
