//! An electromagnetic flow meter on Modbus RTU.
//!
//! # Register map
//!
//! Many electromagnetic flow converters share this map (for example the Microsensor MFE600H
//! manual, section 9), with 32-bit values word-swapped (`Cdab`, "float inverse", "long
//! inverse"). The function code differs between models (0x03 or 0x04); the default is 0x04
//! (input registers), and a meter that wants the other answers with exception 0x01 (illegal
//! function), which shows as a `sensor_error` fault at commissioning.
//!
//! | address | registers | type | content |
//! |---|---|---|---|
//! | 0x1010 | 2 | float32 | instantaneous flow, in the unit set on the meter (set m3/h) |
//! | 0x1018 | 2 | u32 | totaliser, integer part (set m3) |
//! | 0x101A | 2 | float32 | totaliser, fractional part, 0 <= x < 1 |
//!
//! The totaliser's two parts are read in one request of 4 registers, so that the integer part
//! and the fraction come from the same instant (reading them apart could pair the fraction of
//! 12.99 with the integer of 13). Addresses, table and word order are configurable; the flow
//! unit and the totaliser unit must be set to m3/h and m3 on the meter itself.

use weir_contract::Quantity;

use crate::modbus::{RegisterKind, Registers, WordOrder};

/// Where the meter keeps its values, and what it can measure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// The meter's Modbus address, 1 to 247.
    pub slave: u8,
    /// The register table holding the values.
    pub registers: RegisterKind,
    /// Address of the instantaneous flow (float32, m3/h).
    pub flow_address: u16,
    /// Address of the totaliser: a u32 integer part, then a float32 fraction, 4 registers.
    pub total_address: u16,
    /// How 32-bit values spread over their two registers.
    pub word_order: WordOrder,
    /// Largest plausible flow, m3/h; above it a reading is out of range.
    pub max_flow_m3h: f32,
}

impl Config {
    /// The map above: input registers 0x1010 and 0x1018, `Cdab`, up to the contract's
    /// flow limit.
    pub const fn new(slave: u8) -> Self {
        Config {
            slave,
            registers: RegisterKind::Input,
            flow_address: 0x1010,
            total_address: 0x1018,
            word_order: WordOrder::Cdab,
            max_flow_m3h: Quantity::Flow.range().1 as f32,
        }
    }
}

/// Why a flow meter reading failed: the Modbus exchange, or a value out of range.
pub type Error<E> = crate::modbus::DeviceError<E>;

/// An electromagnetic flow meter reached through `M`, a Modbus master or a borrow of one.
#[derive(Debug)]
pub struct FlowMeter<M> {
    bus: M,
    config: Config,
}

impl<M: Registers> FlowMeter<M> {
    /// A meter on `bus`.
    pub fn new(bus: M, config: Config) -> Self {
        FlowMeter { bus, config }
    }

    /// Gives back the bus.
    pub fn destroy(self) -> M {
        self.bus
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads the instantaneous flow, m3/h.
    ///
    /// Reverse flow (negative) is out of range: at a terminal's outlet it means a fault in
    /// the installation, not a value to report. So are NaN, infinity and a flow above
    /// `max_flow_m3h`.
    pub fn read_flow(&mut self) -> Result<f32, Error<M::Error>> {
        let c = self.config;
        let mut registers = [0u16; 2];
        self.bus
            .read_registers(c.slave, c.registers, c.flow_address, &mut registers)
            .map_err(Error::Modbus)?;
        let flow = c.word_order.f32(registers);
        if (0.0..=c.max_flow_m3h).contains(&flow) {
            Ok(flow)
        } else {
            Err(Error::OutOfRange)
        }
    }

    /// Reads the totaliser, m3. A fraction outside 0 to 1 or a total above the contract's
    /// limit is out of range.
    pub fn read_total(&mut self) -> Result<f64, Error<M::Error>> {
        let c = self.config;
        let mut registers = [0u16; 4];
        self.bus
            .read_registers(c.slave, c.registers, c.total_address, &mut registers)
            .map_err(Error::Modbus)?;
        let integer = c.word_order.u32([registers[0], registers[1]]);
        let fraction = c.word_order.f32([registers[2], registers[3]]);
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::OutOfRange);
        }
        // `widen` keeps the fraction's decimal form: 0.3, not 0.30000001192092896.
        let total = f64::from(integer) + weir_contract::widen(fraction);
        let (_, max) = Quantity::Volume.range();
        if total <= max {
            Ok(total)
        } else {
            Err(Error::OutOfRange)
        }
    }
}
