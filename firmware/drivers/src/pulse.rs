//! A flow meter with a pulse output, counted by a hardware counter.
//!
//! The meter closes a contact (or drives an open collector) once per fixed volume; a timer or
//! counter peripheral of the microcontroller counts the pulses. `embedded-hal` has no counter
//! trait, so this module defines the smallest one, [`PulseCounter`]: a free-running count that
//! wraps at `u32::MAX`.
//!
//! The driver keeps the totaliser as a whole number of pulses (no rounding drift) on top of a
//! starting volume, and derives the flow from the pulses between two reads over the time
//! between them.

use weir_contract::{Fault, Quantity};

use crate::FaultCode;

/// A free-running pulse counter that wraps from `u32::MAX` to 0.
pub trait PulseCounter {
    /// Why the counter could not be read.
    type Error;

    /// The current count.
    fn count(&mut self) -> Result<u32, Self::Error>;
}

impl<T: PulseCounter + ?Sized> PulseCounter for &mut T {
    type Error = T::Error;

    fn count(&mut self) -> Result<u32, Self::Error> {
        T::count(self)
    }
}

/// The meter's pulse weight and plausible flow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Pulses per m3 (100 for a meter that pulses every 10 L); may be below 1.
    pub pulses_per_m3: f64,
    /// Largest plausible flow, m3/h; above it (contact bounce, interference) the flow of the
    /// interval is out of range.
    pub max_flow_m3h: f32,
}

impl Config {
    /// A meter giving `pulses_per_m3`, up to the contract's flow limit.
    pub const fn new(pulses_per_m3: f64) -> Self {
        Config {
            pulses_per_m3,
            max_flow_m3h: Quantity::Flow.range().1 as f32,
        }
    }

    fn is_valid(&self) -> bool {
        self.pulses_per_m3.is_finite() && self.pulses_per_m3 > 0.0
    }
}

/// Why a pulse meter reading failed. `E` is the counter's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// The counter could not be read.
    Counter(E),
    /// The pulse weight is not set (zero, negative or not a number).
    NotCalibrated,
}

impl<E> FaultCode for Error<E> {
    fn fault(&self) -> Fault {
        match self {
            // The node could not get a reading of the meter.
            Error::Counter(_) => Fault::NoResponse,
            Error::NotCalibrated => Fault::NotCalibrated,
        }
    }
}

impl<E> From<Error<E>> for Fault {
    fn from(e: Error<E>) -> Fault {
        e.fault()
    }
}

/// What one read of a pulse meter gives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PulseReading {
    /// The totaliser, m3: the starting volume plus every pulse counted since.
    pub volume_m3: f64,
    /// The mean flow since the previous read, m3/h: `None` on the first read (there is no
    /// interval yet) or when no time has passed; `Err(Fault::OutOfRange)` above the configured
    /// maximum.
    pub flow_m3h: Option<Result<f32, Fault>>,
}

/// A pulse-output flow meter on a [`PulseCounter`].
#[derive(Debug)]
pub struct PulseFlowMeter<C> {
    counter: C,
    config: Config,
    start_m3: f64,
    pulses: u64,
    // Count and time (ms) of the previous read.
    previous: Option<(u32, u64)>,
}

impl<C: PulseCounter> PulseFlowMeter<C> {
    /// A meter on `counter`, its totaliser starting at `start_m3` (restored from the node's
    /// storage, or the meter's dial at installation).
    ///
    /// The first [`read`](Self::read) takes the counter's value as its baseline: pulses
    /// counted before it are not added, so read once at start-up.
    pub fn new(counter: C, config: Config, start_m3: f64) -> Self {
        PulseFlowMeter {
            counter,
            config,
            start_m3,
            pulses: 0,
            previous: None,
        }
    }

    /// Gives back the counter.
    pub fn destroy(self) -> C {
        self.counter
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The totaliser as of the last read, m3.
    pub fn volume_m3(&self) -> f64 {
        self.start_m3 + self.pulses as f64 / self.config.pulses_per_m3
    }

    /// Reads the counter at `now_ms`, a monotonic time in milliseconds (since boot).
    ///
    /// A counter that wrapped since the previous read is handled; it must not count 2^32
    /// pulses between two reads (at 100 pulses per m3 that is 42 million m3).
    pub fn read(&mut self, now_ms: u64) -> Result<PulseReading, Error<C::Error>> {
        if !self.config.is_valid() {
            return Err(Error::NotCalibrated);
        }
        let count = self.counter.count().map_err(Error::Counter)?;
        let flow_m3h = match self.previous {
            None => None,
            Some((previous, then_ms)) => {
                // Modular difference: right across a wrap from u32::MAX to 0.
                let delta = count.wrapping_sub(previous);
                self.pulses += u64::from(delta);
                match now_ms.checked_sub(then_ms) {
                    Some(elapsed_ms) if elapsed_ms > 0 => Some(self.flow(delta, elapsed_ms)),
                    _ => None,
                }
            }
        };
        self.previous = Some((count, now_ms));
        Ok(PulseReading {
            volume_m3: self.volume_m3(),
            flow_m3h,
        })
    }

    fn flow(&self, pulses: u32, elapsed_ms: u64) -> Result<f32, Fault> {
        let m3 = f64::from(pulses) / self.config.pulses_per_m3;
        let m3h = m3 * 3_600_000.0 / elapsed_ms as f64;
        if m3h <= f64::from(self.config.max_flow_m3h) {
            Ok(m3h as f32)
        } else {
            Err(Fault::OutOfRange)
        }
    }
}
