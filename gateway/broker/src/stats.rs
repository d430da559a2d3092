//! Counters the gateway exports on its `/metrics` page.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Declares the counters once: the live atomics in [`Stats`], the plain copy in
/// [`StatsSnapshot`] and the copy between them, so that neither can miss one.
macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident, )*) => {
        /// The broker's counters, updated as it runs. Read them with [`Stats::snapshot`].
        #[derive(Debug, Default)]
        pub struct Stats {
            $( $name: AtomicU64, )*
        }

        /// The counters at one moment. `connections_current`, `connections_pending`,
        /// `sessions` and `queued_bytes` are gauges; the others count events since the broker
        /// started.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Stats {
            /// The counters now.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $( $name: self.$name.load(Relaxed), )*
                }
            }
        }
    };
}

counters! {
    /// Clients connected now (past CONNACK).
    connections_current,
    /// Clients accepted (CONNACK 0) since the broker started.
    connections_total,
    /// Connections refused, whatever the reason: bad credentials, not authorized, wrong
    /// protocol version, a client id the policy or the service holds, or any limit below.
    /// The `refused_*` counters break some of these down.
    connects_refused,
    /// PUBLISH packets received from clients, including refused ones and wills.
    messages_in,
    /// PUBLISH packets sent to clients, including retransmissions.
    messages_out,
    /// Publishes, wills and subscriptions refused by the policy.
    acl_denied,
    /// Messages dropped from a session queue that held `max_queued` messages.
    queued_dropped,
    /// Messages dropped from a session queue that held `max_queued_bytes`.
    queued_dropped_for_bytes,
    /// Bytes (topic and payload) of the messages waiting in all session queues (a gauge).
    queued_bytes,
    /// Connections closed for breaking the protocol, including oversized packets.
    protocol_errors,
    /// Clients disconnected for publishing more messages than `max_publish_rate` and
    /// `max_publish_burst` allow.
    rate_limited_messages,
    /// Clients disconnected for publishing more bytes than `max_publish_bytes_per_s` and
    /// `max_publish_bytes_burst` allow.
    rate_limited_bytes,
    /// Connections accepted that have not yet completed CONNECT/CONNACK (a gauge).
    connections_pending,
    /// Sockets closed at once because `max_pending_connections` were pending.
    refused_pending_limit,
    /// Sockets closed at once because their address had `max_connections_per_address`.
    refused_address_limit,
    /// Sessions kept now, connected or not (a gauge).
    sessions,
    /// Persistent sessions ended because their client stayed away `session_expiry_s`.
    sessions_expired,
    /// Persistent sessions ended to make room for a new one of the same identity
    /// (`max_sessions_per_identity`).
    sessions_evicted,
    /// CONNECTs refused with CONNACK 3 because their identity's `max_sessions_per_identity`
    /// persistent sessions were all connected.
    refused_session_limit,
    /// TLS handshakes that failed or did not finish within `connect_timeout_s`.
    tls_handshakes_failed,
    /// Password checks run ([`Policy::authenticate`](crate::Policy::authenticate) calls).
    auth_checks,
    /// CONNECTs refused with CONNACK 3 because no password check was free within
    /// `auth_wait_ms` (`max_concurrent_auth` were running).
    refused_auth_busy,
    /// CONNECTs refused with CONNACK 3, without a password check, because their address or
    /// their user name from that address failed too often (`auth_failures_per_address`,
    /// `auth_failures_per_user`).
    refused_auth_throttled,
}

impl Stats {
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

    pub(crate) fn dropped_for_bytes(&self, n: u64) {
        self.queued_dropped_for_bytes.fetch_add(n, Relaxed);
    }

    /// The bytes waiting in session queues grew (positive) or shrank (negative) by `delta`.
    pub(crate) fn queued_bytes_changed(&self, delta: i64) {
        if delta >= 0 {
            self.queued_bytes.fetch_add(delta.unsigned_abs(), Relaxed);
        } else {
            self.queued_bytes.fetch_sub(delta.unsigned_abs(), Relaxed);
        }
    }

    pub(crate) fn rate_limited(&self, bytes: bool) {
        if bytes {
            self.rate_limited_bytes.fetch_add(1, Relaxed);
        } else {
            self.rate_limited_messages.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_sessions(&self, n: usize) {
        self.sessions.store(n as u64, Relaxed);
    }

    pub(crate) fn expired(&self, n: u64) {
        self.sessions_expired.fetch_add(n, Relaxed);
    }

    pub(crate) fn evicted(&self) {
        self.sessions_evicted.fetch_add(1, Relaxed);
    }

    /// A CONNECT refused because its identity's sessions are all connected; also counted as
    /// refused.
    pub(crate) fn session_limit(&self) {
        self.refused_session_limit.fetch_add(1, Relaxed);
        self.refused();
    }

    pub(crate) fn tls_failed(&self) {
        self.tls_handshakes_failed.fetch_add(1, Relaxed);
    }

    pub(crate) fn auth_checked(&self) {
        self.auth_checks.fetch_add(1, Relaxed);
    }

    /// A socket closed at accept because too many were pending; also counted as refused.
    pub(crate) fn pending_limit(&self) {
        self.refused_pending_limit.fetch_add(1, Relaxed);
        self.refused();
    }

    /// A socket closed at accept because its address had too many; also counted as refused.
    pub(crate) fn address_limit(&self) {
        self.refused_address_limit.fetch_add(1, Relaxed);
        self.refused();
    }

    pub(crate) fn pending_opened(&self) {
        self.connections_pending.fetch_add(1, Relaxed);
    }

    pub(crate) fn pending_closed(&self) {
        self.connections_pending.fetch_sub(1, Relaxed);
    }

    /// A CONNECT refused for want of a free password check; also counted as refused.
    pub(crate) fn auth_busy(&self) {
        self.refused_auth_busy.fetch_add(1, Relaxed);
        self.refused();
    }

    /// A CONNECT refused by the failure throttle; also counted as refused.
    pub(crate) fn auth_throttled(&self) {
        self.refused_auth_throttled.fetch_add(1, Relaxed);
        self.refused();
    }
}
