//! Weir's embedded MQTT 3.1.1 broker.
//!
//! The `weir` gateway runs it by default so that one binary serves a county's O&M centre:
//! sensor nodes connect straight to it. Each client logs in with its own username and
//! password, checked by a [`Policy`]; the ready-made [`WeirPolicy`] lets a node publish and
//! subscribe only under its own terminal's topics and the gateway's own client everywhere.
//!
//! * QoS 0 and 1 both ways; QoS 2 is accepted from publishers (PUBREC/PUBREL/PUBCOMP, routed
//!   once) and delivered as QoS 1. Subscriptions are granted at most QoS 1.
//! * Retained messages, last wills, keep alive, persistent sessions with bounded queues,
//!   session takeover, a bounded number of unacknowledged messages per client.
//! * Plain TCP and, on a listener of its own ([`Broker::bind_tls`]), MQTT over TLS with a
//!   certificate chain and key from PEM files. In memory only, no MQTT 5.
//! * A session belongs to the identity that made it: another identity asking for the same
//!   client id gets a session of its own, and cannot resume, take over or block it.
//!
//! # Limits
//!
//! Nothing a single client does can exhaust the broker: everything a client can make it hold
//! or do is bounded by a key of [`BrokerConfig`], and every refusal, drop or disconnection for
//! a limit is counted in [`StatsSnapshot`]. The defaults:
//!
//! | limit | default | counted in |
//! |---|---|---|
//! | `max_connections` | 10000 | `connects_refused` |
//! | `max_pending_connections` (not yet past CONNACK) | 256 | `refused_pending_limit`, `connections_pending` |
//! | `max_connections_per_address` (IPv6: per /64) | 64 | `refused_address_limit` |
//! | `connect_timeout_s` (TLS handshake and CONNECT) | 10 | `tls_handshakes_failed` |
//! | `max_concurrent_auth` password checks, waiting at most `auth_wait_ms` | 4, 5000 ms | `refused_auth_busy`, `auth_checks` |
//! | `auth_failures_per_address`, `auth_failures_per_user` (per address) in `auth_failure_window_s` | 20, 5, 60 s | `refused_auth_throttled` |
//! | `session_expiry_s` (offline persistent sessions) | 604800 (7 days) | `sessions_expired`, `sessions` |
//! | `max_sessions_per_identity` (persistent) | 8 | `sessions_evicted`, `refused_session_limit` |
//! | `max_publish_rate`, `max_publish_burst` (per identity, messages) | 100/s, 30000 | `rate_limited_messages` |
//! | `max_publish_bytes_per_s`, `max_publish_bytes_burst` (per identity) | 16 KiB/s, 8 MiB | `rate_limited_bytes` |
//! | `max_queued`, `max_queued_bytes` (per session queue) | 250000, 64 MiB | `queued_dropped`, `queued_dropped_for_bytes`, `queued_bytes` |
//! | `max_inflight` (unacknowledged QoS 1 per client) | 100 | |
//! | `service_max_inflight` (the same, for the service's sessions) | 4096 | |
//! | `max_packet_size` | 65536 | `protocol_errors` |
//! | `max_keep_alive_s` | 3600 | |
//!
//! The crate's README explains each, and why the defaults are what they are.
#![deny(missing_docs)]

mod admission;
mod auth;
mod config;
mod connection;
mod policy;
mod rate;
mod retained;
mod router;
mod server;
mod session;
mod stats;
mod subscriptions;
mod tls;
pub mod topic_filter;
mod weir_policy;
mod wire;

pub use config::{BrokerConfig, ConfigError, TlsConfig};
pub use policy::{Identity, Policy, Refusal};
pub use server::{Broker, Listener};
pub use stats::{Stats, StatsSnapshot};
pub use tls::TlsError;
pub use weir_policy::{TerminalCredentials, WeirPolicy};
