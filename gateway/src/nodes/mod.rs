//! Sensor nodes as the gateway sees them: how each is set up and configured, and provisioning.
//!
//! - `config`: each node's config (sampling, calibration, tank geometry) from the registry;
//!   `publisher` publishes it, retained, to the node.
//! - `provision`: `weir node provision`, which binds a node to its terminal and writes its
//!   configuration image; `args` reads its options, `label` draws the cabinet label, `uf2`
//!   writes images for the board's USB drive.

pub mod args;
pub mod config;
pub mod label;
pub mod provision;
pub mod publisher;
pub mod uf2;
