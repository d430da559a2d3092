//! Counters the gateway exports on its `/metrics` page.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The broker's counters, updated as it runs. Read them with [`Stats::snapshot`].
#[derive(Debug, Default)]
pub struct Stats {
    connections_current: AtomicU64,
    connections_total: AtomicU64,
    connects_refused: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    acl_denied: AtomicU64,
    queued_dropped: AtomicU64,
    protocol_errors: AtomicU64,
}

/// The counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Clients connected now (past CONNACK).
    pub connections_current: u64,
    /// Clients accepted (CONNACK 0) since the broker started.
    pub connections_total: u64,
    /// Connections refused: bad credentials, not authorized, wrong protocol version, client id
    /// in use by another identity, or too many connections.
    pub connects_refused: u64,
    /// PUBLISH packets received from clients, including refused ones and wills.
    pub messages_in: u64,
    /// PUBLISH packets sent to clients, including retransmissions.
    pub messages_out: u64,
    /// Publishes, wills and subscriptions refused by the policy.
    pub acl_denied: u64,
    /// Messages dropped from a full session queue.
    pub queued_dropped: u64,
    /// Connections closed for breaking the protocol, including oversized packets.
    pub protocol_errors: u64,
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_current: self.connections_current.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            connects_refused: self.connects_refused.load(Relaxed),
            messages_in: self.messages_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            acl_denied: self.acl_denied.load(Relaxed),
            queued_dropped: self.queued_dropped.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
        }
    }

    pub(crate) fn connected(&self) {
        self.connections_current.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub(crate) fn disconnected(&self) {
        self.connections_current.fetch_sub(1, Relaxed);
    }

    pub(crate) fn refused(&self) {
        self.connects_refused.fetch_add(1, Relaxed);
    }

    pub(crate) fn message_in(&self) {
        self.messages_in.fetch_add(1, Relaxed);
    }

    pub(crate) fn messages_out(&self, n: u64) {
        self.messages_out.fetch_add(n, Relaxed);
    }

    pub(crate) fn denied(&self) {
        self.acl_denied.fetch_add(1, Relaxed);
    }

    pub(crate) fn dropped(&self, n: u64) {
        self.queued_dropped.fetch_add(n, Relaxed);
    }

    pub(crate) fn protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Relaxed);
    }
}
