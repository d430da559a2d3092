//! One reading: a timestamp and a sample per quantity.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Field, Reason};
use crate::quantity::Quantity;
use crate::time::Timestamp;

/// 9999-12-31T23:59:59Z, the last second with a four-digit year in RFC 3339.
const LATEST_TIMESTAMP: Timestamp = Timestamp::from_unix(253_402_300_799);

/// Why a sensor gave no value. A node reports a fault instead of inventing a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The sensor did not answer (Modbus timeout, no echo).
    NoResponse,
    /// The sensor answered with a corrupt frame (bad CRC) after every retry.
    Checksum,
    /// The sensor's own value is outside what it can measure.
    OutOfRange,
    /// A 4-20 mA loop reads below 3.6 mA: a broken wire or unpowered sensor.
    OpenLoop,
    /// A 4-20 mA loop reads above 21 mA: a short circuit.
    ShortCircuit,
    /// The sensor answered with an exception or an error status.
    SensorError,
    /// The node has no calibration for this sensor (for sludge: no tank depth).
    NotCalibrated,
}

impl Fault {
    /// Every fault code.
    pub const ALL: [Fault; 7] = [
        Fault::NoResponse,
        Fault::Checksum,
        Fault::OutOfRange,
        Fault::OpenLoop,
        Fault::ShortCircuit,
        Fault::SensorError,
        Fault::NotCalibrated,
    ];

    /// The code as written in JSON and stored.
    pub const fn code(self) -> &'static str {
        match self {
            Fault::NoResponse => "no_response",
            Fault::Checksum => "checksum",
            Fault::OutOfRange => "out_of_range",
            Fault::OpenLoop => "open_loop",
            Fault::ShortCircuit => "short_circuit",
            Fault::SensorError => "sensor_error",
            Fault::NotCalibrated => "not_calibrated",
        }
    }

    /// The fault whose code is `code`.
    pub fn from_code(code: &str) -> Option<Fault> {
        Self::ALL.into_iter().find(|f| f.code() == code)
    }
}

/// What one sensor gave: a value, or a fault code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sample {
    /// A measured value in the quantity's unit.
    Value(f64),
    /// The sensor failed.
    Fault(Fault),
}

/// A reading: when, and for each quantity a value, a fault or nothing (no such sensor).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    /// When the sensors were sampled, UTC.
    pub ts: Timestamp,
    samples: [Option<Sample>; Quantity::COUNT],
}

impl Reading {
    /// A reading at `ts` with no samples yet.
    pub const fn new(ts: Timestamp) -> Self {
        Reading {
            ts,
            samples: [None; Quantity::COUNT],
        }
    }

    /// Sets a value (builder style).
    pub fn with(mut self, q: Quantity, value: f64) -> Self {
        self.set(q, Some(Sample::Value(value)));
        self
    }

    /// Sets a fault (builder style).
    pub fn with_fault(mut self, q: Quantity, fault: Fault) -> Self {
        self.set(q, Some(Sample::Fault(fault)));
        self
    }

    /// Sets or clears the sample of `q`.
    pub fn set(&mut self, q: Quantity, sample: Option<Sample>) {
        self.samples[q.index()] = sample;
    }

    /// The sample of `q`, if the node sent one.
    pub fn get(&self, q: Quantity) -> Option<Sample> {
        self.samples[q.index()]
    }

    /// The value of `q`, if the node sent one.
    pub fn value(&self, q: Quantity) -> Option<f64> {
        match self.get(q) {
            Some(Sample::Value(v)) => Some(v),
            _ => None,
        }
    }

    /// The fault of `q`, if the sensor failed.
    pub fn fault(&self, q: Quantity) -> Option<Fault> {
        match self.get(q) {
            Some(Sample::Fault(f)) => Some(f),
            _ => None,
        }
    }

    /// Every quantity with a sample, in wire order.
    pub fn samples(&self) -> impl Iterator<Item = (Quantity, Sample)> + '_ {
        Quantity::ALL
            .into_iter()
            .filter_map(|q| self.get(q).map(|s| (q, s)))
    }

    /// Checks every value against its quantity's range and the timestamp against
    /// [`crate::EARLIEST_TIMESTAMP`] and the last second RFC 3339 can write (a binary message
    /// may carry any `i64`, which its JSON form could not say). `index` is the reading's place
    /// in its batch, for errors.
    pub fn validate(&self, index: usize) -> Result<(), Error> {
        let at = |name| Field::Reading {
            index: index as u16,
            name,
        };
        if self.ts < crate::EARLIEST_TIMESTAMP {
            return Err(Error::new(at("ts"), Reason::TooEarly));
        }
        if self.ts > LATEST_TIMESTAMP {
            return Err(Error::new(
                at("ts"),
                Reason::BadTimestamp("after 9999-12-31T23:59:59Z"),
            ));
        }
        for (q, s) in self.samples() {
            if let Sample::Value(v) = s {
                q.check(v).map_err(|r| Error::new(at(q.field()), r))?;
            }
        }
        Ok(())
    }
}
