//! Counters for `GET /metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// The gateway's counters. Cheap to bump from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// MQTT messages received on telemetry and status topics.
    pub messages_received: AtomicU64,
    /// Readings newly stored.
    pub readings_stored: AtomicU64,
    /// Readings received again and not stored twice.
    pub duplicate_readings: AtomicU64,
    /// Telemetry messages whose every reading was stored before (replays).
    pub duplicate_messages: AtomicU64,
    /// Readings received again inside a message that also carried new readings.
    pub duplicate_readings_in_new_messages: AtomicU64,
    /// Gaps in nodes' messages acknowledged past because the node no longer has them.
    pub ack_gaps_passed_over: AtomicU64,
    /// Messages held above gaps, waiting for their nodes to fill them.
    pub ack_held_above_gaps: AtomicU64,
    /// The bound on that per node and boot (`store.ack_max_held`).
    pub ack_max_held: AtomicU64,
    /// Readings that arrived older than the raw retention window, not stored.
    pub expired_readings: AtomicU64,
    /// Raw readings deleted by retention.
    pub pruned_readings: AtomicU64,
    /// Transactions committed by the writer.
    pub commits: AtomicU64,
    /// Messages handed to the store writer and not yet reported committed.
    pub store_waiting: AtomicU64,
    /// Since when (Unix ms) the store writer has not committed while messages wait for it;
    /// 0 when none wait.
    pub store_stalled_since_ms: AtomicI64,
    /// Refused messages by reason code.
    rejects: Mutex<BTreeMap<&'static str, u64>>,
    /// Readings stored but not yet forwarded to InfluxDB (-1: forwarding off).
    pub forward_lag: AtomicI64,
    /// Readings forwarded to InfluxDB.
    pub forwarded: AtomicU64,
    /// Failed InfluxDB write attempts.
    pub forward_errors: AtomicU64,
    /// HJ 212 frames written to the platform.
    pub hj212_sent: AtomicU64,
    /// HJ 212 data answers (9014) received for them.
    pub hj212_answers: AtomicU64,
    /// HJ 212 uploads not confirmed: no connection, no answer in time, connection closed.
    pub hj212_failures: AtomicU64,
    /// Firmware image pieces sent to nodes.
    pub firmware_chunks_sent: AtomicU64,
    /// Requests for firmware pieces dropped: over `firmware.max_chunks_per_s`.
    pub firmware_chunks_dropped: AtomicU64,
    /// Firmware update reports about another version than the terminal's target, ignored.
    pub firmware_stray_reports: AtomicU64,
    /// Readings stored but not yet handled by the HJ 212 uplink (-1: uplink off).
    pub hj212_lag: AtomicI64,
    /// HTTP connections open now.
    pub http_connections: AtomicU64,
    /// HTTP connections accepted since start.
    pub http_accepted: AtomicU64,
    /// HTTP connections closed at once: over `http.max_connections` or the per-address limit.
    pub http_refused: AtomicU64,
    /// TLS handshakes on the HTTP port that failed or timed out.
    pub http_tls_failed: AtomicU64,
    /// Dashboard logins with a wrong user name or password.
    pub logins_failed: AtomicU64,
    /// Logins refused unchecked: too many failures for the name or address.
    pub logins_throttled: AtomicU64,
    /// Logins refused because every password check was busy.
    pub logins_busy: AtomicU64,
    /// Live event streams ended because their login ended (logout, reset, revoked token).
    pub event_streams_revoked: AtomicU64,
    /// Pictures uploaded and stored.
    pub pictures_uploaded: AtomicU64,
    /// Camera snapshots stored.
    pub pictures_from_cameras: AtomicU64,
    /// Pictures refused (uploads and snapshots), by reason.
    pictures_refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Old pictures deleted to keep within `pictures.max_total_bytes`.
    pub pictures_evicted: AtomicU64,
    /// Pictures deleted by `pictures.retention_days`.
    pub pictures_pruned: AtomicU64,
    /// Camera snapshots that failed (no answer, an error status, not a picture).
    pub camera_failures: AtomicU64,
    /// Cluster: live members seen on the broker (-1: `cluster.enabled` is off).
    pub cluster_members: AtomicI64,
    /// Cluster: members' sessions held here (this member's own, and those taken over).
    pub cluster_sessions: AtomicI64,
    /// Cluster: terminals taken here, over the sessions held.
    pub cluster_terminals: AtomicI64,
    /// Cluster: sessions of gone members taken over.
    pub cluster_takeovers: AtomicU64,
    /// The embedded broker's counters, when it runs.
    pub broker: std::sync::OnceLock<std::sync::Arc<weir_broker::Stats>>,
}

/// The wall clock, Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Metrics {
    /// Counts a message handed to the store writer.
    pub fn store_handed(&self) {
        if self.store_waiting.fetch_add(1, Relaxed) == 0 {
            self.store_stalled_since_ms.store(now_ms(), Relaxed);
        }
    }

    /// Counts `n` messages the store writer reported committed.
    pub fn store_committed(&self, n: u64) {
        let before = self
            .store_waiting
            .fetch_update(Relaxed, Relaxed, |w| Some(w.saturating_sub(n)))
            .unwrap_or(0);
        let left = before.saturating_sub(n);
        self.store_stalled_since_ms
            .store(if left > 0 { now_ms() } else { 0 }, Relaxed);
    }

    /// Seconds the store has committed nothing while messages wait for it (0: none wait).
    pub fn store_stalled_s(&self) -> f64 {
        let since = self.store_stalled_since_ms.load(Relaxed);
        if since > 0 && self.store_waiting.load(Relaxed) > 0 {
            (now_ms() - since).max(0) as f64 / 1000.0
        } else {
            0.0
        }
    }

    /// New, all zero, forwarding off.
    pub fn new() -> Self {
        let m = Metrics::default();
        m.forward_lag.store(-1, Relaxed);
        m.hj212_lag.store(-1, Relaxed);
        m.cluster_members.store(-1, Relaxed);
        m
    }

    /// Counts a refused message.
    pub fn reject(&self, reason: &'static str) {
        if let Ok(mut r) = self.rejects.lock() {
            *r.entry(reason).or_default() += 1;
        }
    }

    /// Counts a refused picture.
    pub fn picture_refused(&self, reason: &'static str) {
        if let Ok(mut r) = self.pictures_refused.lock() {
            *r.entry(reason).or_default() += 1;
        }
    }

    /// Refusals so far, by reason.
    pub fn rejects(&self) -> BTreeMap<&'static str, u64> {
        self.rejects.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Renders the Prometheus text exposition format. `extra` holds gauges read elsewhere
    /// (store size, broker counters) as (name, help, value).
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "weir_messages_received_total",
            "MQTT messages received from nodes.",
            self.messages_received.load(Relaxed),
        );
        counter(
            "weir_readings_stored_total",
            "Readings newly stored.",
            self.readings_stored.load(Relaxed),
        );
        counter(
            "weir_duplicate_readings_total",
            "Readings received again and stored once.",
            self.duplicate_readings.load(Relaxed),
        );
        counter(
            "weir_duplicate_messages_total",
            "Telemetry messages whose every reading was stored before (replays).",
            self.duplicate_messages.load(Relaxed),
        );
        counter(
            "weir_duplicate_readings_in_new_messages_total",
            "Readings received again inside a message that also carried new readings (a node that batched them again after a power cut, or reused a sequence number).",
            self.duplicate_readings_in_new_messages.load(Relaxed),
        );
        counter(
            "weir_expired_readings_total",
            "Readings that arrived older than store.raw_retention_days, not stored.",
            self.expired_readings.load(Relaxed),
        );
        counter(
            "weir_pruned_readings_total",
            "Raw readings deleted by store.raw_retention_days.",
            self.pruned_readings.load(Relaxed),
        );
        counter(
            "weir_store_commits_total",
            "Transactions committed by the store writer.",
            self.commits.load(Relaxed),
        );
        counter(
            "weir_forwarded_readings_total",
            "Readings written to InfluxDB.",
            self.forwarded.load(Relaxed),
        );
        for (name, help, v) in [
            (
                "weir_http_connections_total",
                "HTTP connections accepted.",
                &self.http_accepted,
            ),
            (
                "weir_http_connections_refused_total",
                "HTTP connections closed at once (http.max_connections, http.max_connections_per_address).",
                &self.http_refused,
            ),
            (
                "weir_http_tls_failed_total",
                "TLS handshakes on the HTTP port that failed or timed out (http.header_timeout_s).",
                &self.http_tls_failed,
            ),
            (
                "weir_logins_failed_total",
                "Dashboard logins with a wrong user name or password.",
                &self.logins_failed,
            ),
            (
                "weir_logins_throttled_total",
                "Logins refused unchecked (http.login_max_failures).",
                &self.logins_throttled,
            ),
            (
                "weir_logins_busy_total",
                "Logins refused because every password check was busy (http.max_password_checks).",
                &self.logins_busy,
            ),
            (
                "weir_event_streams_revoked_total",
                "Live event streams ended because their login ended.",
                &self.event_streams_revoked,
            ),
        ] {
            counter(name, help, v.load(Relaxed));
        }
        counter(
            "weir_forward_errors_total",
            "Failed InfluxDB write attempts.",
            self.forward_errors.load(Relaxed),
        );
        counter(
            "weir_hj212_frames_sent_total",
            "HJ 212 frames written to the platform (resent ones included).",
            self.hj212_sent.load(Relaxed),
        );
        counter(
            "weir_hj212_answers_total",
            "HJ 212 data answers (9014) received from the platform.",
            self.hj212_answers.load(Relaxed),
        );
        counter(
            "weir_hj212_failures_total",
            "HJ 212 uploads not confirmed (no connection, no answer in time, connection closed); each is sent again.",
            self.hj212_failures.load(Relaxed),
        );
        for (name, help, v) in [
            (
                "weir_pictures_uploaded_total",
                "Pictures uploaded and stored.",
                &self.pictures_uploaded,
            ),
            (
                "weir_pictures_from_cameras_total",
                "Camera snapshots stored.",
                &self.pictures_from_cameras,
            ),
            (
                "weir_pictures_evicted_total",
                "Old pictures deleted to stay within pictures.max_total_bytes.",
                &self.pictures_evicted,
            ),
            (
                "weir_pictures_pruned_total",
                "Pictures deleted by pictures.retention_days.",
                &self.pictures_pruned,
            ),
            (
                "weir_camera_failures_total",
                "Camera snapshots that failed (no answer, an error status, not a picture).",
                &self.camera_failures,
            ),
        ] {
            counter(name, help, v.load(Relaxed));
        }
        counter(
            "weir_firmware_chunks_sent_total",
            "Firmware image pieces (512 bytes) sent to nodes.",
            self.firmware_chunks_sent.load(Relaxed),
        );
        counter(
            "weir_firmware_chunks_dropped_total",
            "Requests for firmware pieces dropped over firmware.max_chunks_per_s (the node asks again).",
            self.firmware_chunks_dropped.load(Relaxed),
        );
        counter(
            "weir_firmware_stray_reports_total",
            "Firmware update reports about another version than the terminal's target, ignored.",
            self.firmware_stray_reports.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP weir_rejected_messages_total Messages refused, by reason.\n# TYPE weir_rejected_messages_total counter"
        );
        for (reason, n) in self.rejects() {
            let _ = writeln!(
                out,
                "weir_rejected_messages_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP weir_pictures_refused_total Pictures refused, by reason (pictures.max_picture_bytes, max_pixels, ...).\n# TYPE weir_pictures_refused_total counter"
        );
        let refused = self
            .pictures_refused
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        for (reason, n) in refused {
            let _ = writeln!(
                out,
                "weir_pictures_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP weir_http_connections HTTP connections open.\n# TYPE weir_http_connections gauge\nweir_http_connections {}",
            self.http_connections.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP weir_ack_gaps_passed_over_total Gaps in nodes' messages acknowledged past: the node resent its queue without them (dropped when full), or more than store.ack_max_held messages waited above them.\n# TYPE weir_ack_gaps_passed_over_total counter\nweir_ack_gaps_passed_over_total {}",
            self.ack_gaps_passed_over.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP weir_ack_held_above_gaps Messages stored above a gap in their node's sequence, not acknowledged until it is filled.\n# TYPE weir_ack_held_above_gaps gauge\nweir_ack_held_above_gaps {}\n# HELP weir_ack_max_held The bound on that per node and boot (store.ack_max_held).\n# TYPE weir_ack_max_held gauge\nweir_ack_max_held {}",
            self.ack_held_above_gaps.load(Relaxed),
            self.ack_max_held.load(Relaxed)
        );
        let stalled_s = self.store_stalled_s();
        let _ = writeln!(
            out,
            "# HELP weir_store_waiting_messages Messages received and waiting for the store to commit them; none is acknowledged before.\n# TYPE weir_store_waiting_messages gauge\nweir_store_waiting_messages {}",
            self.store_waiting.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP weir_store_stalled_seconds How long messages have waited without the store committing anything (disk full, I/O errors); 0 when none wait.\n# TYPE weir_store_stalled_seconds gauge\nweir_store_stalled_seconds {stalled_s:.3}",
        );
        let _ = writeln!(
            out,
            "# HELP weir_hj212_lag_readings Readings stored but not yet sent to the HJ 212 platform (-1: uplink off).\n# TYPE weir_hj212_lag_readings gauge\nweir_hj212_lag_readings {}",
            self.hj212_lag.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP weir_forward_lag_readings Readings stored but not yet forwarded (-1: forwarding off).\n# TYPE weir_forward_lag_readings gauge\nweir_forward_lag_readings {}",
            self.forward_lag.load(Relaxed)
        );
        let members = self.cluster_members.load(Relaxed);
        if members >= 0 {
            for (name, help, v) in [
                (
                    "weir_cluster_members",
                    "Cluster members live on the broker, this one included.",
                    members,
                ),
                (
                    "weir_cluster_sessions",
                    "Members' sessions held here: this member's own and those taken over.",
                    self.cluster_sessions.load(Relaxed),
                ),
                (
                    "weir_cluster_owned_terminals",
                    "Terminals taken here, over the sessions held.",
                    self.cluster_terminals.load(Relaxed),
                ),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
            }
            let _ = writeln!(
                out,
                "# HELP weir_cluster_takeovers_total Sessions of gone members taken over.\n# TYPE weir_cluster_takeovers_total counter\nweir_cluster_takeovers_total {}",
                self.cluster_takeovers.load(Relaxed)
            );
        }
        if let Some(b) = self.broker.get() {
            let s = b.snapshot();
            for (name, help, v) in [
                (
                    "weir_broker_connections",
                    "Clients connected to the embedded broker.",
                    s.connections_current,
                ),
                (
                    "weir_broker_connections_total",
                    "Clients accepted since start.",
                    s.connections_total,
                ),
                (
                    "weir_broker_connects_refused_total",
                    "Connections refused (credentials, ACL, protocol).",
                    s.connects_refused,
                ),
                (
                    "weir_broker_messages_in_total",
                    "PUBLISH packets received.",
                    s.messages_in,
                ),
                (
                    "weir_broker_messages_out_total",
                    "PUBLISH packets sent.",
                    s.messages_out,
                ),
                (
                    "weir_broker_acl_denied_total",
                    "Publishes and subscriptions refused by the ACL.",
                    s.acl_denied,
                ),
                (
                    "weir_broker_queued_dropped_total",
                    "Messages dropped from session queues at mqtt.max_queued.",
                    s.queued_dropped,
                ),
                (
                    "weir_broker_queued_dropped_for_bytes_total",
                    "Messages dropped from session queues at mqtt.limits.max_queued_bytes.",
                    s.queued_dropped_for_bytes,
                ),
                (
                    "weir_broker_queued_bytes",
                    "Bytes waiting in all session queues.",
                    s.queued_bytes,
                ),
                (
                    "weir_broker_protocol_errors_total",
                    "Connections closed for breaking the protocol.",
                    s.protocol_errors,
                ),
                (
                    "weir_broker_rate_limited_messages_total",
                    "Clients disconnected at mqtt.limits.max_publish_rate.",
                    s.rate_limited_messages,
                ),
                (
                    "weir_broker_rate_limited_bytes_total",
                    "Clients disconnected at mqtt.limits.max_publish_bytes_per_s.",
                    s.rate_limited_bytes,
                ),
                (
                    "weir_broker_connections_pending",
                    "Connections not yet past CONNACK.",
                    s.connections_pending,
                ),
                (
                    "weir_broker_refused_pending_limit_total",
                    "Sockets closed at mqtt.limits.max_pending_connections.",
                    s.refused_pending_limit,
                ),
                (
                    "weir_broker_refused_address_limit_total",
                    "Sockets closed at mqtt.limits.max_connections_per_address.",
                    s.refused_address_limit,
                ),
                ("weir_broker_sessions", "Sessions kept now.", s.sessions),
                (
                    "weir_broker_sessions_expired_total",
                    "Persistent sessions ended after mqtt.limits.session_expiry_s.",
                    s.sessions_expired,
                ),
                (
                    "weir_broker_sessions_evicted_total",
                    "Persistent sessions ended at mqtt.limits.max_sessions_per_identity.",
                    s.sessions_evicted,
                ),
                (
                    "weir_broker_refused_session_limit_total",
                    "CONNECTs refused at mqtt.limits.max_sessions_per_identity.",
                    s.refused_session_limit,
                ),
                (
                    "weir_broker_tls_handshakes_failed_total",
                    "TLS handshakes on the MQTT TLS port that failed or timed out.",
                    s.tls_handshakes_failed,
                ),
                (
                    "weir_broker_auth_checks_total",
                    "Password checks run.",
                    s.auth_checks,
                ),
                (
                    "weir_broker_refused_auth_busy_total",
                    "CONNECTs refused with every password check busy (mqtt.limits.max_concurrent_auth).",
                    s.refused_auth_busy,
                ),
                (
                    "weir_broker_refused_auth_throttled_total",
                    "CONNECTs refused unchecked after too many failed logins.",
                    s.refused_auth_throttled,
                ),
            ] {
                let kind = if name.ends_with("_total") {
                    "counter"
                } else {
                    "gauge"
                };
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
                );
            }
        }
        for (name, help, v) in extra {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}
