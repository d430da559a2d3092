//! Weir's wire contract: what a sensor node, a third-party data logger and the gateway say to
//! each other over MQTT.
//!
//! This crate is the single place where topics, message types, field names, units, limits and
//! both encodings are declared. The node firmware, the host simulator, the gateway and the
//! protocol document (`docs/protocol.md`) all follow it.
//!
//! * [`topic`] builds and parses `weir/terminals/{terminal_id}/{telemetry,status,ack,config,firmware,chunk,update}`.
//! * [`Telemetry`], [`Status`], [`Ack`] and [`NodeConfig`] are the four messages of
//!   readings and settings; [`firmware`] has the three of firmware updates.
//! * [`Quantity`] says what a reading measures, its JSON field name, unit and valid range.
//! * [`Encoding`]. Every message has a compact binary form (postcard, behind a version byte)
//!   and a JSON form. A receiver tells them apart by the first byte, see [`Encoding::detect`].
//!
//! The crate is `no_std` and needs no heap: a message is decoded into fixed-capacity buffers.
//! With the `std` feature (receivers), JSON errors are more precise: see [`Reason::Json`].
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

mod error;
pub mod firmware;
mod message;
mod quantity;
mod reading;
mod terminal_id;
mod time;
pub mod topic;
mod wire;

pub use error::{Error, Field, Reason};
pub use firmware::{FirmwareChunk, FirmwareOffer, UpdateReport, UpdateState, CHUNK_LEN};
pub use message::{
    decode_json_as_no_std, Ack, Calibration, CalibrationSet, Message, NodeConfig, NodeState,
    Status, Telemetry, FIRMWARE_LEN,
};
pub use quantity::Quantity;
pub use reading::{Fault, Reading, Sample};
pub use terminal_id::TerminalId;
pub use time::Timestamp;
pub use wire::{widen, Encoding};

/// Version of the binary encoding; the first byte of every binary message.
pub const PROTOCOL_VERSION: u8 = 1;

/// Most readings one telemetry message may carry.
///
/// A node sampling every minute and publishing every five sends five; after an outage it
/// replays its queue in messages of at most this many.
pub const MAX_READINGS: usize = 64;

/// Largest payload, in bytes, that a receiver accepts on any topic.
pub const MAX_PAYLOAD: usize = 16 * 1024;

/// How far into the future (by the receiver's clock) a reading's timestamp may be, in seconds.
///
/// Beyond this the node's clock is wrong and its timestamps cannot be trusted.
pub const MAX_CLOCK_SKEW_S: i64 = 15 * 60;

/// The earliest timestamp a reading may carry: 2020-01-01T00:00:00Z.
///
/// A node whose clock was never set counts from 1970 or 2000; its readings are rejected
/// rather than stored at a wrong time.
pub const EARLIEST_TIMESTAMP: Timestamp = Timestamp::from_unix(1_577_836_800);
