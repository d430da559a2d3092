//! Simulated Weir sensor nodes: the real node core (`weir-node`) on simulated sensors, a
//! file-backed flash and a `rumqttc` uplink, in a fleet of terminals that behave like the
//! county's: diurnal flow, rain, sludge building up, and scripted faults for the alert rules.
//!
//! * [`Fleet`] runs a fleet against any broker ([`FleetConfig`]); the `weir-fleet` binary and
//!   the gateway's `weir demo` use it.
//! * [`Scenario`] says what each terminal measures and which fault it gets, from a seed.
//! * [`Timeline`] and [`SimClock`]: simulated time that starts in the past, runs faster than
//!   the wall clock until it catches up, and never gets ahead of it.
//! * [`FileFlash`]: NOR flash in a file, so a killed simulator keeps its queues.
//! * [`MqttUplink`]: the node's MQTT connection.
//! * [`image`]: simulated firmware images; each node boots through embassy-boot's boot loader
//!   over its own file-backed ACTIVE, DFU and STATE partitions, so firmware updates (and
//!   rollbacks) run as on a board.

#![deny(missing_docs)]

mod flash;
mod fleet;
pub mod image;
pub mod scenario;
pub mod signals;
mod timeline;
mod uplink;

pub use flash::{FileFlash, FileFlashError, PowerCut, PAGE};
pub use fleet::{
    Credentials, Fleet, FleetConfig, Outage, PasswordLookup, PowerCuts, SimSensors, DELIVERY_LOG,
    POWER_CUT_LOG, QUEUE_PAGES, SAMPLED_LOG, SAMPLE_LOG,
};
pub use scenario::{Scenario, ScriptedFault, TerminalPlan};
pub use timeline::{wall_now_ms, SimClock, Timeline};
pub use uplink::{Gate, MqttUplink, UplinkConfig, UplinkError};
