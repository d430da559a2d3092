//! Weir's sensor node core: sample the sensors, calibrate, batch, keep every reading in flash
//! until the gateway confirms it is stored, and publish over MQTT.
//!
//! The core runs the same on a microcontroller and on a PC. A board (or the simulator) gives it
//! four things, each behind a small trait:
//!
//! * [`Sensors`]: one call per sample, a raw value or a [`Fault`] per [`Quantity`];
//! * [`Clock`]: UTC seconds, a monotonic time in milliseconds and a way to sleep until one;
//! * [`Partitions`]: three NOR flash partitions (`embedded-storage-async` [`MultiwriteNorFlash`]),
//!   for settings, readings not yet batched and the message queue;
//! * [`Uplink`]: publish a payload on a [`Channel`] of this terminal, and receive acks and
//!   configuration.
//!
//! [`Node::new`] takes the parts, [`Node::start`] reads the flash (boot counter,
//! configuration, what is still queued) and [`Node::run`] does the rest. The wire format is `weir-contract`'s, in
//! [`Encoding::Binary`](weir_contract::Encoding::Binary).
//!
//! # What survives a power cut
//!
//! Every reading is written to flash when it is sampled. At each publication the readings
//! become one [`Telemetry`](weir_contract::Telemetry) message, which is pushed to the flash
//! queue before it is published, and freed only when an [`Ack`](weir_contract::Ack) covers it.
//! Power may fail at any instant: the flash structures (`sequential-storage`) recover, and a
//! restarted node republishes whatever is still queued.
//!
//! [`Fault`]: weir_contract::Fault
//! [`Quantity`]: weir_contract::Quantity
//! [`Channel`]: weir_contract::topic::Channel
//! [`MultiwriteNorFlash`]: embedded_storage_async::nor_flash::MultiwriteNorFlash
#![no_std]
#![deny(missing_docs)]

mod calibration;
mod clock;
mod error;
mod node;
pub mod provision;
pub mod ram_flash;
mod record;
mod select;
mod sensors;
mod store;
pub mod update;
mod uplink;

pub use calibration::{calibrate, SLUDGE_TOLERANCE_PCT};
pub use clock::Clock;
pub use error::Error;
pub use node::{Node, Settings, Stats};
pub use sensors::{RawReading, Sensors};
pub use store::{max_readings_per_message, Partitions};
pub use uplink::{Event, Uplink};

/// The encoding the node publishes in: compact, for metered links.
pub const ENCODING: weir_contract::Encoding = weir_contract::Encoding::Binary;

/// Longest binary telemetry message the node can produce, in bytes.
///
/// A full message is 22 bytes of header (version, boot, seq, start time, count) and at most
/// 40 bytes per reading (offset, sample count, five `f32` values and the `f64` totaliser,
/// each with its tag).
pub const MAX_MESSAGE_LEN: usize = 22 + weir_contract::MAX_READINGS * 40;

/// Firmware version as reported in [`Status`](weir_contract::Status).
pub const FIRMWARE: &str = concat!("weir-node ", env!("CARGO_PKG_VERSION"));
