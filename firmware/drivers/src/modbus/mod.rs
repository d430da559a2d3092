//! Modbus RTU master over RS-485.
//!
//! [`Master`] owns a UART (`embedded-io` `Read + Write + ReadReady`), the transceiver's
//! direction pin (DE and /RE tied together, high to transmit) and a `DelayNs`. It reads holding
//! registers (function 0x03) and input registers (0x04), with:
//!
//! * inter-frame silence: before each request the line must have been quiet for 3.5 character
//!   times at the configured baud rate (1.75 ms above 19200 baud, as the Modbus serial line
//!   specification fixes);
//! * a response timeout: `ReadReady` is polled with `DelayNs`, so a dead sensor costs a bounded
//!   number of polls and never hangs the node;
//! * retries of failed exchanges (timeout, bad CRC, malformed or misaddressed answer);
//! * checks of every answer: CRC, slave address, function code, exception responses, byte count.
//!
//! Device drivers ([`crate::turbidity`], [`crate::flow_meter`]) are generic over [`Registers`],
//! which `Master` and `&mut Master` implement, so several devices share one bus:
//!
//! ```
//! use embedded_hal::{delay::DelayNs, digital::OutputPin};
//! use embedded_io::{Read, ReadReady, Write};
//! use weir_drivers::flow_meter::{self, FlowMeter};
//! use weir_drivers::modbus::{self, Master};
//! use weir_drivers::turbidity::{self, TurbidityProbe};
//!
//! fn sample<U, P, D>(uart: U, de: P, delay: D)
//! where
//!     U: Read + Write + ReadReady,
//!     P: OutputPin,
//!     D: DelayNs,
//! {
//!     let mut bus = Master::new(uart, de, delay, modbus::Config::new(9600));
//!     let ntu = TurbidityProbe::new(&mut bus, turbidity::Config::new(1)).read();
//!     let m3h = FlowMeter::new(&mut bus, flow_meter::Config::new(2)).read_flow();
//!     let (uart, de, delay) = bus.destroy();
//! }
//! ```

mod crc;
mod frame;
mod master;
mod word_order;

pub use crc::crc16;
pub use master::{AutoDirection, Config, Master};
pub use word_order::WordOrder;

use weir_contract::Fault;

use crate::FaultCode;

/// Largest RTU frame, in bytes (address, function, 252 data bytes, CRC).
pub const MAX_FRAME: usize = 256;

/// Most registers one read request may ask for (0x7D, from the Modbus application protocol).
pub const MAX_READ_REGISTERS: usize = 125;

/// Exception codes a device may answer with (Modbus application protocol, section 7).
pub mod exception {
    /// The device does not support the function.
    pub const ILLEGAL_FUNCTION: u8 = 0x01;
    /// The register address (or address + count) is not valid in this device.
    pub const ILLEGAL_DATA_ADDRESS: u8 = 0x02;
    /// A value in the request is not acceptable to the device.
    pub const ILLEGAL_DATA_VALUE: u8 = 0x03;
    /// The device failed while performing the action.
    pub const SERVER_DEVICE_FAILURE: u8 = 0x04;
    /// The device is busy; the request may be repeated later.
    pub const SERVER_DEVICE_BUSY: u8 = 0x06;
}

/// Which register table a read addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RegisterKind {
    /// Holding registers, read with function 0x03.
    #[default]
    Holding,
    /// Input registers, read with function 0x04.
    Input,
}

impl RegisterKind {
    /// The function code that reads this table.
    pub const fn function(self) -> u8 {
        match self {
            RegisterKind::Holding => 0x03,
            RegisterKind::Input => 0x04,
        }
    }
}

/// Something that reads Modbus registers: a [`Master`], or a `&mut` borrow of one so that
/// several device drivers share one bus.
pub trait Registers {
    /// Why a read failed.
    type Error: FaultCode;

    /// Reads `out.len()` consecutive registers of `kind` from `slave`, starting at `address`
    /// (the protocol address, from 0: register "40001" is holding register 0).
    fn read_registers(
        &mut self,
        slave: u8,
        kind: RegisterKind,
        address: u16,
        out: &mut [u16],
    ) -> Result<(), Self::Error>;
}

impl<T: Registers + ?Sized> Registers for &mut T {
    type Error = T::Error;

    fn read_registers(
        &mut self,
        slave: u8,
        kind: RegisterKind,
        address: u16,
        out: &mut [u16],
    ) -> Result<(), Self::Error> {
        T::read_registers(self, slave, kind, address, out)
    }
}

/// Why a Modbus exchange failed, after every retry. `E` is the UART's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// The UART reported an error (framing, parity, overrun, noise).
    Bus(E),
    /// The direction pin could not be set; only its kind survives, as direction pins are
    /// almost always infallible.
    Pin(embedded_hal::digital::ErrorKind),
    /// No answer within the response timeout.
    Timeout,
    /// An answer arrived but its CRC was wrong (or it was too short to carry one).
    Checksum,
    /// The device answered with an exception response; the [`exception`] code.
    Exception(u8),
    /// A frame with a good CRC that is not the answer to the request: another slave's
    /// address, another function, a wrong byte count.
    Malformed,
    /// The request itself is invalid: slave address 0 or above 247, or 0 or more than
    /// [`MAX_READ_REGISTERS`] registers. Nothing was sent.
    InvalidRequest,
}

impl<E> Error<E> {
    /// Whether sending the request again may help.
    ///
    /// An exception is the device's deliberate answer and is not retried; neither is a failed
    /// direction pin (a fault in the node) nor an invalid request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Bus(_) | Error::Timeout | Error::Checksum | Error::Malformed
        )
    }
}

impl<E> FaultCode for Error<E> {
    fn fault(&self) -> Fault {
        match self {
            // A UART error means the line carried corrupt characters, like a bad CRC does.
            Error::Bus(_) | Error::Checksum => Fault::Checksum,
            // Without the transceiver the request never reached the sensor.
            Error::Pin(_) | Error::Timeout => Fault::NoResponse,
            Error::Exception(_) | Error::Malformed => Fault::SensorError,
            // The node's configuration for this sensor is unusable.
            Error::InvalidRequest => Fault::NotCalibrated,
        }
    }
}

impl<E> From<Error<E>> for Fault {
    fn from(e: Error<E>) -> Fault {
        e.fault()
    }
}

/// Why a reading from a Modbus device (turbidity probe, flow meter) failed. `E` is the bus's
/// error ([`Error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError<E> {
    /// The Modbus exchange failed.
    Modbus(E),
    /// The device answered with a value it cannot have measured (each driver's `read` says
    /// which).
    OutOfRange,
}

impl<E: FaultCode> FaultCode for DeviceError<E> {
    fn fault(&self) -> Fault {
        match self {
            DeviceError::Modbus(e) => e.fault(),
            DeviceError::OutOfRange => Fault::OutOfRange,
        }
    }
}

impl<E: FaultCode> From<DeviceError<E>> for Fault {
    fn from(e: DeviceError<E>) -> Fault {
        e.fault()
    }
}
