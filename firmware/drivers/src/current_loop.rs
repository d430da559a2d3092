//! A 4-20 mA current loop read through an ADC across a shunt resistor.
//!
//! `embedded-hal` 1.0 has no ADC trait, so this module defines the smallest one that fits,
//! [`AdcChannel`]: a board implements it for the channel wired across the shunt.
//!
//! # Signal levels (NAMUR NE 43)
//!
//! NAMUR recommendation NE 43 ("Standardisation of the signal level for the failure
//! information of digital transmitters") splits the loop current into:
//!
//! | current | meaning | result |
//! |---|---|---|
//! | below 3.6 mA | failure: broken wire, unpowered sensor | [`Error::OpenLoop`] |
//! | 3.6 to 3.8 mA | neither a measurement nor a failure signal | [`Error::OutOfRange`] |
//! | 3.8 to 4 mA | measurement below the range's start | the range's start |
//! | 4 to 20 mA | measurement | scaled linearly |
//! | 20 to 20.5 mA | measurement above the range's end | the range's end |
//! | 20.5 to 21 mA | neither a measurement nor a failure signal | [`Error::OutOfRange`] |
//! | above 21 mA | failure: short circuit, sensor fault signal | [`Error::ShortCircuit`] |
//!
//! To see a short circuit the ADC must reach 21 mA across the shunt: 5.25 V at 250 Ω, 3.15 V at
//! 150 Ω. Pick the shunt so that it does, below the ADC's reference.

use weir_contract::Fault;

use crate::FaultCode;

/// Below this, a loop is open (NAMUR NE 43 failure signal), mA.
pub const OPEN_LOOP_MA: f32 = 3.6;
/// Above this, a loop is shorted (NAMUR NE 43 failure signal), mA.
pub const SHORT_CIRCUIT_MA: f32 = 21.0;
/// The lowest current that still carries a measurement (NAMUR NE 43), mA.
pub const MEASUREMENT_MIN_MA: f32 = 3.8;
/// The highest current that still carries a measurement (NAMUR NE 43), mA.
pub const MEASUREMENT_MAX_MA: f32 = 20.5;

/// One ADC channel, read as a voltage.
pub trait AdcChannel {
    /// Why a conversion failed.
    type Error;

    /// Converts once and returns the input voltage, mV, calibrated by the board.
    fn read_millivolts(&mut self) -> Result<u32, Self::Error>;
}

impl<T: AdcChannel + ?Sized> AdcChannel for &mut T {
    type Error = T::Error;

    fn read_millivolts(&mut self) -> Result<u32, Self::Error> {
        T::read_millivolts(self)
    }
}

/// The shunt and the engineering range of one loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// The shunt resistor the loop current flows through, Ω (typically 250, or 150 for a
    /// 3.3 V ADC).
    pub shunt_ohms: f32,
    /// The engineering value the sensor sends as 4 mA.
    pub at_4ma: f32,
    /// The engineering value the sensor sends as 20 mA.
    pub at_20ma: f32,
}

impl Config {
    /// A loop through `shunt_ohms` whose 4-20 mA span `at_4ma` to `at_20ma` (for a turbidity
    /// transmitter, for example, 0 to 1000 NTU).
    pub const fn new(shunt_ohms: f32, at_4ma: f32, at_20ma: f32) -> Self {
        Config {
            shunt_ohms,
            at_4ma,
            at_20ma,
        }
    }

    /// Whether the shunt is a positive resistance and the range a finite, non-empty span.
    pub fn is_valid(&self) -> bool {
        self.shunt_ohms.is_finite()
            && self.shunt_ohms > 0.0
            && self.at_4ma.is_finite()
            && self.at_20ma.is_finite()
            && self.at_4ma != self.at_20ma
    }

    /// The engineering value of a loop current, with the NE 43 checks above.
    pub fn scale(&self, milliamps: f32) -> Result<f32, LoopFault> {
        if !self.is_valid() {
            return Err(LoopFault::NotCalibrated);
        }
        if milliamps.is_nan() {
            return Err(LoopFault::OutOfRange);
        }
        if milliamps < OPEN_LOOP_MA {
            return Err(LoopFault::OpenLoop);
        }
        if milliamps > SHORT_CIRCUIT_MA {
            return Err(LoopFault::ShortCircuit);
        }
        if !(MEASUREMENT_MIN_MA..=MEASUREMENT_MAX_MA).contains(&milliamps) {
            return Err(LoopFault::OutOfRange);
        }
        // The sensor signals "at or beyond the end of my range": report that end.
        let ma = milliamps.clamp(4.0, 20.0);
        Ok(self.at_4ma + (ma - 4.0) / 16.0 * (self.at_20ma - self.at_4ma))
    }
}

/// Why a loop current carries no value (the loop's own part of [`Error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopFault {
    /// Below 3.6 mA.
    OpenLoop,
    /// Above 21 mA.
    ShortCircuit,
    /// Between a failure level and the measuring band (3.6-3.8 or 20.5-21 mA).
    OutOfRange,
    /// The shunt or the range is not set (zero shunt, empty range).
    NotCalibrated,
}

/// Why a loop reading failed. `E` is the ADC's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// The ADC failed.
    Adc(E),
    /// Below 3.6 mA: a broken wire or an unpowered sensor.
    OpenLoop,
    /// Above 21 mA: a short circuit.
    ShortCircuit,
    /// Outside the measuring band but not a failure signal.
    OutOfRange,
    /// The shunt or the range is not set.
    NotCalibrated,
}

impl<E> From<LoopFault> for Error<E> {
    fn from(f: LoopFault) -> Self {
        match f {
            LoopFault::OpenLoop => Error::OpenLoop,
            LoopFault::ShortCircuit => Error::ShortCircuit,
            LoopFault::OutOfRange => Error::OutOfRange,
            LoopFault::NotCalibrated => Error::NotCalibrated,
        }
    }
}

impl<E> FaultCode for Error<E> {
    fn fault(&self) -> Fault {
        match self {
            // The node could not get a reading of the sensor.
            Error::Adc(_) => Fault::NoResponse,
            Error::OpenLoop => Fault::OpenLoop,
            Error::ShortCircuit => Fault::ShortCircuit,
            Error::OutOfRange => Fault::OutOfRange,
            Error::NotCalibrated => Fault::NotCalibrated,
        }
    }
}

impl<E> From<Error<E>> for Fault {
    fn from(e: Error<E>) -> Fault {
        e.fault()
    }
}

/// A 4-20 mA input on an ADC channel.
#[derive(Debug)]
pub struct CurrentLoop<A> {
    adc: A,
    config: Config,
}

impl<A: AdcChannel> CurrentLoop<A> {
    /// A loop read through `adc`.
    pub fn new(adc: A, config: Config) -> Self {
        CurrentLoop { adc, config }
    }

    /// Gives back the ADC channel.
    pub fn destroy(self) -> A {
        self.adc
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads the loop current, mA, without judging it.
    pub fn read_milliamps(&mut self) -> Result<f32, Error<A::Error>> {
        if !self.config.is_valid() {
            return Err(Error::NotCalibrated);
        }
        let mv = self.adc.read_millivolts().map_err(Error::Adc)?;
        // mV / Ω = mA. Precision: f32 is exact for any ADC's millivolts.
        Ok(mv as f32 / self.config.shunt_ohms)
    }

    /// Reads the engineering value, with the NAMUR NE 43 checks.
    pub fn read(&mut self) -> Result<f32, Error<A::Error>> {
        let ma = self.read_milliamps()?;
        Ok(self.config.scale(ma)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TURBIDITY: Config = Config::new(250.0, 0.0, 1000.0);

    #[test]
    fn midscale_current_gives_the_middle_of_the_range() {
        assert_eq!(TURBIDITY.scale(12.0), Ok(500.0));
        assert_eq!(TURBIDITY.scale(4.0), Ok(0.0));
        assert_eq!(TURBIDITY.scale(20.0), Ok(1000.0));
    }

    #[test]
    fn currents_just_outside_4_20_clamp_to_the_range_ends() {
        assert_eq!(TURBIDITY.scale(3.9), Ok(0.0));
        assert_eq!(TURBIDITY.scale(20.4), Ok(1000.0));
    }

    #[test]
    fn ne43_failure_levels_are_faults_not_values() {
        assert_eq!(TURBIDITY.scale(3.59), Err(LoopFault::OpenLoop));
        assert_eq!(TURBIDITY.scale(0.0), Err(LoopFault::OpenLoop));
        assert_eq!(TURBIDITY.scale(21.01), Err(LoopFault::ShortCircuit));
        assert_eq!(TURBIDITY.scale(3.7), Err(LoopFault::OutOfRange));
        assert_eq!(TURBIDITY.scale(20.8), Err(LoopFault::OutOfRange));
        assert_eq!(TURBIDITY.scale(f32::NAN), Err(LoopFault::OutOfRange));
    }

    #[test]
    fn a_reversed_range_scales_downwards() {
        let level = Config::new(150.0, 5.0, 1.0);
        assert_eq!(level.scale(12.0), Ok(3.0));
    }

    #[test]
    fn a_zero_shunt_is_not_calibrated() {
        assert_eq!(
            Config::new(0.0, 0.0, 1.0).scale(12.0),
            Err(LoopFault::NotCalibrated)
        );
    }
}
