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
//! * In memory only, plain TCP, no MQTT 5. See the crate's README for the config keys and the
//!   ACL rules.
//!
//! Start it with [`Broker::new`], [`Broker::bind`] and [`Listener::run`]; read its counters
//! with [`Broker::stats`].
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
pub mod topic_filter;
mod weir_policy;
mod wire;

pub use config::{BrokerConfig, ConfigError};
pub use policy::{Identity, Policy, Refusal};
pub use server::{Broker, Listener};
pub use stats::{Stats, StatsSnapshot};
pub use weir_policy::{TerminalCredentials, WeirPolicy};
