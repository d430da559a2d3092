//! Sensor drivers for Weir nodes.
//!
//! A Weir node samples the effluent of a village treatment terminal at its outlet well. This
//! crate reads the sensors it is wired to:
//!
//! * [`modbus`]: a Modbus RTU master over RS-485 (a UART and a direction pin), with the
//!   devices that speak it: a [`turbidity`] probe and an electromagnetic [`flow_meter`].
//! * [`current_loop`]: a 4-20 mA input read through an ADC and a shunt resistor.
//! * [`pulse`]: a flow meter with a pulse output, counted by a hardware counter.
//! * [`ultrasonic`]: a UART distance sensor above the sludge tank. It gives the distance; the
//!   node core (`weir_node::calibrate`) turns it into a share of the tank's working depth with
//!   the tank geometry of the node's configuration, so that conversion lives in one place.
//!
//! The crate is `no_std` and needs no heap. Drivers are generic over `embedded-hal` 1.0
//! (`OutputPin`, `DelayNs`) and `embedded-io` 0.6 (`Read`, `Write`, `ReadReady`), plus two
//! minimal traits of its own where `embedded-hal` has none ([`current_loop::AdcChannel`],
//! [`pulse::PulseCounter`]). A driver takes what it needs in `new(...)` and gives it back in
//! `destroy()`.
//!
//! Nothing here can hang the node: every wait is a bounded number of polls with `DelayNs`.
//!
//! # Faults, never invented numbers
//!
//! Every driver's `read` returns `Result<value, Error>`. Every error maps to a contract
//! [`Fault`] through [`FaultCode`] (and `From<Error> for Fault`), so the
//! node core turns a result into a [`Sample`](weir_contract::Sample) without judging it again.
//! A value the sensor cannot have measured (NaN, negative turbidity, above the probe's range)
//! is an error, [`Fault::OutOfRange`], not a value.
#![no_std]
#![deny(unsafe_code, missing_docs)]

pub mod current_loop;
pub mod flow_meter;
pub mod modbus;
pub mod pulse;
pub mod turbidity;
pub mod ultrasonic;

use weir_contract::Fault;

/// An error that the node reports as a contract fault code.
///
/// Implemented by every driver error in this crate, so the node core can be generic over the
/// sensors it reads.
pub trait FaultCode {
    /// The fault code the node sends in place of a value.
    fn fault(&self) -> Fault;
}

impl FaultCode for Fault {
    fn fault(&self) -> Fault {
        *self
    }
}
