//! A turbidity probe on Modbus RTU.
//!
//! Typical effluent turbidity probes (ISO 7027, infrared nephelometric) publish the reading as
//! an IEEE 754 float32 in NTU across two registers. Vendors differ in the register address, the
//! table (holding or input) and the word order, so all three are configurable.

use crate::modbus::{RegisterKind, Registers, WordOrder};

/// Where the probe keeps its reading, and what it can measure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// The probe's Modbus address, 1 to 247.
    pub slave: u8,
    /// The register table holding the reading.
    pub registers: RegisterKind,
    /// Address of the first of the two registers of the float32, from 0.
    pub address: u16,
    /// How the float32 spreads over its two registers.
    pub word_order: WordOrder,
    /// Top of the probe's measuring range, NTU; a reading above it is out of range.
    pub max_ntu: f32,
}

impl Config {
    /// The common layout: holding registers 0 and 1, big-endian (`Abcd`), 0-1000 NTU.
    pub const fn new(slave: u8) -> Self {
        Config {
            slave,
            registers: RegisterKind::Holding,
            address: 0x0000,
            word_order: WordOrder::Abcd,
            max_ntu: 1000.0,
        }
    }
}

/// Why a turbidity reading failed: the Modbus exchange, or a value out of range.
pub type Error<E> = crate::modbus::DeviceError<E>;

/// A turbidity probe reached through `M`, a Modbus master or a borrow of one.
#[derive(Debug)]
pub struct TurbidityProbe<M> {
    bus: M,
    config: Config,
}

impl<M: Registers> TurbidityProbe<M> {
    /// A probe on `bus`.
    pub fn new(bus: M, config: Config) -> Self {
        TurbidityProbe { bus, config }
    }

    /// Gives back the bus.
    pub fn destroy(self) -> M {
        self.bus
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads the turbidity, NTU. NaN, infinity, a negative value or one above `max_ntu` is
    /// [`Error::OutOfRange`](crate::modbus::DeviceError::OutOfRange).
    pub fn read(&mut self) -> Result<f32, Error<M::Error>> {
        let c = self.config;
        let mut registers = [0u16; 2];
        self.bus
            .read_registers(c.slave, c.registers, c.address, &mut registers)
            .map_err(Error::Modbus)?;
        let ntu = c.word_order.f32(registers);
        // `contains` is false for NaN, so a probe's NaN error marker is refused too.
        if (0.0..=c.max_ntu).contains(&ntu) {
            Ok(ntu)
        } else {
            Err(Error::OutOfRange)
        }
    }
}
