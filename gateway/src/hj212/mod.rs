//! The HJ 212-2017 uplink to the environment bureau's platform (docs/hj212.md): every new
//! reading of a configured terminal as real-time data (CN 2011), each confirmed by the
//! platform's data answer (9014) before the next, resent from the store after an outage.
//!
//! `config` is its section (`[hj212]`), `upload` turns a stored reading into a frame (units,
//! codes, data flags), `statistics` minute, hourly and daily data, `link` is the TCP
//! connection and its answers, `uplink` the task that follows commit order with a durable
//! cursor and sends the statistics that are due.

pub mod config;
pub mod link;
pub mod statistics;
pub mod uplink;
pub mod upload;

pub use config::{FactorCodes, Hj212Config, TerminalUplink};
