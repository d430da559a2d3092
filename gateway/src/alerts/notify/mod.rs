//! Notifications: the engine hands over a [`Notice`]; this picks the recipients of each
//! channel (the O&M centre's, the crew of the terminal, supervisors on escalation),
//! throttles per recipient, sends with retries and backoff, and records every message.

pub mod email;
pub mod sms;
pub mod webhook;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{AlertsConfig, NoticeEvent};
use super::model::Severity;
use weir_store::notifications::{self, NotificationRow};
use weir_store::Store;

/// Something people should hear about.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    /// What happened.
    pub event: NoticeEvent,
    /// What it is about, for throttling: `HY-001/turbidity` for an alert (so that an alert
    /// that reopens is still the same subject), `incident/3` for an incident.
    pub subject: String,
    /// Severity.
    pub severity: Severity,
    /// Terminals concerned.
    pub terminals: Vec<String>,
    /// Title.
    pub title: String,
    /// Detail.
    pub detail: String,
    /// The webhook body: `{"event": "alert.opened", "alert": {...}}` or the incident.
    pub payload: serde_json::Value,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth another try (no connection, 5xx, 429, SMTP 4xx, a timeout).
    #[error("{0}")]
    Transient(String),
    /// Will fail again (4xx, SMTP 5xx, a bad address).
    #[error("{0}")]
    Permanent(String),
}

/// One message to one recipient on one channel.
#[derive(Clone, Debug)]
enum Outgoing {
    Webhook(webhook::Request),
    Sms(sms::Request),
    Email(email::Message),
}

impl Outgoing {
    fn channel(&self) -> &'static str {
        match self {
            Outgoing::Webhook(_) => "webhook",
            Outgoing::Sms(_) => "sms",
            Outgoing::Email(_) => "email",
        }
    }
}

/// Per recipient: at most one message per subject, event and severity in `per_subject`, and
/// at most `per_hour` in any hour.
#[derive(Debug, Default)]
pub struct Throttle {
    last: HashMap<(String, String), Instant>,
    sent: HashMap<String, VecDeque<Instant>>,
}

impl Throttle {
    /// Whether `recipient` may get a message with `key` at `now`; if so, it is counted.
    pub fn allow(
        &mut self,
        recipient: &str,
        key: &str,
        now: Instant,
        per_subject: Duration,
        per_hour: u32,
    ) -> bool {
        let k = (recipient.to_string(), key.to_string());
        if self.last.get(&k).is_some_and(|t| now < *t + per_subject) {
            return false;
        }
        let sent = self.sent.entry(recipient.to_string()).or_default();
        while sent
            .front()
            .is_some_and(|t| now >= *t + Duration::from_secs(3600))
        {
            sent.pop_front();
        }
        if per_hour > 0 && sent.len() >= per_hour as usize {
            return false;
        }
        sent.push_back(now);
        self.last.insert(k, now);
        // Forget subjects long past their window, so the map does not grow for ever.
        if self.last.len() > 10_000 {
            self.last.retain(|_, t| now < *t + per_subject);
        }
        true
    }
}

/// Starts the notifier; it ends when `notices` closes or `cancel` fires.
pub fn spawn(
    config: Arc<AlertsConfig>,
    store: Arc<Store>,
    mut notices: mpsc::UnboundedReceiver<Notice>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let timeout = Duration::from_secs(config.notify.timeout_s.max(1));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        let mut throttle = Throttle::default();
        loop {
            let notice = tokio::select! {
                _ = cancel.cancelled() => break,
                n = notices.recv() => match n {
                    Some(n) => n,
                    None => break,
                },
            };
            for out in outgoing(&config, &notice) {
                let recipient = recipient_of(&out);
                let key = format!(
                    "{}/{}/{}",
                    out.channel(),
                    notice.subject,
                    match notice.event {
                        NoticeEvent::Opened => notice.severity.name(),
                        NoticeEvent::Escalated => "escalated",
                        NoticeEvent::Resolved => "resolved",
                    }
                );
                let allowed = throttle.allow(
                    &format!("{}:{recipient}", out.channel()),
                    &key,
                    Instant::now(),
                    Duration::from_secs(u64::from(config.notify.throttle_min) * 60),
                    config.notify.max_per_hour,
                );
                let row = NotificationRow {
                    at: weir_store::now(),
                    channel: out.channel().into(),
                    recipient: recipient.clone(),
                    subject: notice.subject.clone(),
                    event: event_name(notice.event).into(),
                    severity: notice.severity.name().into(),
                    status: "throttled".into(),
                    attempts: 0,
                    detail: None,
                    text: text_of(&out),
                };
                if !allowed {
                    tracing::info!(channel = out.channel(), %recipient, subject = %notice.subject, "notification throttled");
                    record(&store, row).await;
                    continue;
                }
                tokio::spawn(deliver(
                    config.clone(),
                    store.clone(),
                    client.clone(),
                    out,
                    row,
                    cancel.clone(),
                ));
            }
        }
    })
}

fn event_name(e: NoticeEvent) -> &'static str {
    match e {
        NoticeEvent::Opened => "opened",
        NoticeEvent::Escalated => "escalated",
        NoticeEvent::Resolved => "resolved",
    }
}

fn recipient_of(out: &Outgoing) -> String {
    match out {
        Outgoing::Webhook(r) => r.url.clone(),
        Outgoing::Sms(r) => r.to.clone(),
        Outgoing::Email(m) => m.to.clone(),
    }
}

fn text_of(out: &Outgoing) -> String {
    match out {
        Outgoing::Webhook(r) => r.event.clone(),
        Outgoing::Sms(r) => r.text.clone(),
        Outgoing::Email(m) => m.subject.clone(),
    }
}

async fn record(store: &Arc<Store>, row: NotificationRow) {
    if let Err(e) = store.run(move |c| notifications::record(c, &row)).await {
        tracing::warn!(error = %format!("{e:#}"), "could not record a notification");
    }
}

/// Sends `out`, retrying with backoff, then records the outcome.
async fn deliver(
    config: Arc<AlertsConfig>,
    store: Arc<Store>,
    client: reqwest::Client,
    out: Outgoing,
    mut row: NotificationRow,
    cancel: CancellationToken,
) {
    let n = &config.notify;
    let mut wait = Duration::from_millis(n.retry_initial_ms.max(1));
    let max_wait = Duration::from_secs(n.retry_max_s.max(1));
    let timeout = Duration::from_secs(n.timeout_s.max(1));
    let mut outcome = Err(SendError::Transient("not attempted".into()));
    for attempt in 1..=n.max_attempts {
        row.attempts = attempt;
        outcome = match &out {
            Outgoing::Webhook(r) => webhook::send(&client, r).await,
            Outgoing::Sms(r) => sms::send(&client, r).await,
            Outgoing::Email(m) => email::send(m, timeout).await,
        };
        match &outcome {
            Ok(()) | Err(SendError::Permanent(_)) => break,
            Err(SendError::Transient(e)) if attempt < n.max_attempts => {
                tracing::debug!(channel = out.channel(), recipient = %row.recipient, attempt, error = %e, "sending failed; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(max_wait);
            }
            Err(SendError::Transient(_)) => {}
        }
    }
    row.at = weir_store::now();
    match outcome {
        Ok(()) => row.status = "sent".into(),
        Err(e) => {
            tracing::warn!(channel = out.channel(), recipient = %row.recipient, error = %e, "notification failed");
            row.status = "failed".into();
            row.detail = Some(e.to_string());
        }
    }
    record(&store, row).await;
}

/// The messages of `notice` on every channel that wants it, one per recipient.
fn outgoing(config: &AlertsConfig, notice: &Notice) -> Vec<Outgoing> {
    let n = &config.notify;
    let mut out = Vec::new();
    let wants = |severities: &[Severity], events: &[NoticeEvent]| {
        severities.contains(&notice.severity) && events.contains(&notice.event)
    };
    let crews: Vec<_> = config
        .crews
        .values()
        .filter(|c| notice.terminals.iter().any(|t| c.covers(t)))
        .collect();
    let escalated = notice.event == NoticeEvent::Escalated;
    let terminal = super::text::Text(config.language).terminals(&notice.terminals);
    if !n.webhook.url.is_empty() && wants(&n.webhook.severities, &n.webhook.events) {
        out.push(Outgoing::Webhook(webhook::Request::new(&n.webhook, notice)));
    }
    if !n.sms.url.is_empty() && wants(&n.sms.severities, &n.sms.events) {
        let mut to: BTreeSet<&String> = n.sms.to.iter().collect();
        to.extend(crews.iter().flat_map(|c| &c.sms));
        if escalated {
            to.extend(&n.sms.escalate_to);
        }
        for number in to {
            out.push(Outgoing::Sms(sms::Request::new(
                &n.sms, number, &terminal, notice,
            )));
        }
    }
    if !n.email.smtp_host.is_empty() && wants(&n.email.severities, &n.email.events) {
        let mut to: BTreeSet<&String> = n.email.to.iter().collect();
        to.extend(crews.iter().flat_map(|c| &c.email));
        if escalated {
            to.extend(&n.email.escalate_to);
        }
        for address in to {
            out.push(Outgoing::Email(email::Message::new(
                &n.email, address, &terminal, notice,
            )));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipient_gets_one_message_per_subject_within_the_window() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let window = Duration::from_secs(3600);
        assert!(t.allow("sms:+86", "a", t0, window, 0));
        for minute in 1..60 {
            assert!(!t.allow(
                "sms:+86",
                "a",
                t0 + Duration::from_secs(minute * 60),
                window,
                0
            ));
        }
        assert!(t.allow("sms:+86", "b", t0, window, 0), "another subject");
        assert!(t.allow("sms:+87", "a", t0, window, 0), "another recipient");
        assert!(
            t.allow("sms:+86", "a", t0 + window, window, 0),
            "after the window"
        );
    }

    #[test]
    fn a_recipient_gets_at_most_the_hourly_limit() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let allowed = (0..10)
            .filter(|i| t.allow("r", &format!("s{i}"), t0, w, 3))
            .count();
        assert_eq!(allowed, 3);
        assert!(t.allow("r", "s11", t0 + Duration::from_secs(3600), w, 3));
    }
}
