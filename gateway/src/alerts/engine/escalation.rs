//! Escalation of alerts nobody acknowledged in time, and the notices the engine hands to the
//! notifier.

use super::*;

impl Engine {
    pub(super) async fn escalate(&mut self, key: &(String, Rule), now: i64) -> anyhow::Result<()> {
        let Some(a) = self.active.get_mut(key) else {
            return Ok(());
        };
        a.escalate_at = None;
        if a.state != AlertState::Open || a.escalated {
            return Ok(());
        }
        a.escalated = true;
        let id = a.id;
        // Members of an incident escalate together: one notice for the incident.
        let incident = a.incident;
        let announce = match incident.and_then(|i| self.incidents.get_mut(&i)) {
            Some(inc) => !std::mem::replace(&mut inc.escalated, true),
            None => true,
        };
        let row = self
            .store
            .run(move |c| {
                let Some(mut row) = store::get(c, id)? else {
                    return Ok(None);
                };
                row.escalated = true;
                store::save(c, &row)?;
                store::record(c, id, now, SYSTEM, "escalated", None)?;
                Ok(Some(row))
            })
            .await?;
        if let Some(row) = row {
            match incident {
                Some(i) if announce => {
                    if let Some(inc) = self.store.run(move |c| incidents::get(c, i)).await? {
                        self.notice_incident(NoticeEvent::Escalated, &inc);
                    }
                }
                Some(_) => {}
                None => self.notice_alert(NoticeEvent::Escalated, &row, now),
            }
            self.emit(&row, now);
        }
        Ok(())
    }

    pub(super) fn notice_alert(&self, event: NoticeEvent, row: &AlertRow, now: i64) {
        let verb = match event {
            NoticeEvent::Opened => "alert.opened",
            NoticeEvent::Escalated => "alert.escalated",
            NoticeEvent::Resolved => "alert.resolved",
        };
        let notice = Notice {
            event,
            subject: format!("{}/{}", row.terminal, row.rule),
            severity: row.severity,
            terminals: vec![row.terminal.clone()],
            title: row.title.clone(),
            detail: match event {
                NoticeEvent::Resolved => row.resolution_note.clone().unwrap_or_default(),
                _ => row.detail.clone(),
            },
            payload: serde_json::json!({ "event": verb, "alert": self.view(row, now) }),
        };
        self.send_notice(notice);
    }

    pub(super) fn notice_incident(&self, event: NoticeEvent, inc: &Incident) {
        let verb = match event {
            NoticeEvent::Opened => "incident.opened",
            NoticeEvent::Escalated => "incident.escalated",
            NoticeEvent::Resolved => "incident.resolved",
        };
        let notice = Notice {
            event,
            subject: format!("incident/{}", inc.id),
            severity: Severity::Warning,
            terminals: inc.terminals.clone(),
            title: inc.title.clone(),
            detail: self.text.terminals(&inc.terminals),
            payload: serde_json::json!({ "event": verb, "incident": inc }),
        };
        self.send_notice(notice);
    }

    pub(super) fn send_notice(&self, notice: Notice) {
        let _ = self.out.notices.send(notice.clone());
        let _ = self.out.notify.send(notice);
    }
}
