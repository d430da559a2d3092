//! Every notification the alert engine sent, failed to send or held back by throttling.

use rusqlite::{params, Connection};

/// A message sent (or not) to one recipient.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NotificationRow {
    /// When the outcome was known, Unix s.
    pub at: i64,
    /// `webhook`, `sms`, `email`.
    pub channel: String,
    /// URL, number or address.
    pub recipient: String,
    /// `HY-001/turbidity` or `incident/3`.
    pub subject: String,
    /// `opened`, `escalated`, `resolved`.
    pub event: String,
    /// Severity.
    pub severity: String,
    /// `sent`, `failed`, `throttled`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error, if any.
    pub detail: Option<String>,
    /// The message text (SMS text, email subject, webhook event).
    pub text: String,
}

/// Records a notification.
pub fn record(conn: &Connection, n: &NotificationRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO alert_notifications (at, channel, recipient, subject, event, severity, status,
            attempts, detail, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        n.at,
        n.channel,
        n.recipient,
        n.subject,
        n.event,
        n.severity,
        n.status,
        n.attempts,
        n.detail,
        n.text
    ])?;
    Ok(())
}

/// Notifications recorded, oldest first.
pub fn list(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<NotificationRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, channel, recipient, subject, event, severity, status, attempts, detail, text
         FROM alert_notifications ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(NotificationRow {
            at: r.get(0)?,
            channel: r.get(1)?,
            recipient: r.get(2)?,
            subject: r.get(3)?,
            event: r.get(4)?,
            severity: r.get(5)?,
            status: r.get(6)?,
            attempts: r.get(7)?,
            detail: r.get(8)?,
            text: r.get(9)?,
        })
    })?;
    rows.collect()
}
