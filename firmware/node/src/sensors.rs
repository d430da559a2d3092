//! What a board's sensors give the node: raw values or fault codes.

use weir_contract::{Fault, Quantity, Reading};

/// The sensors of one node.
///
/// `sample` is called once per sample interval and reads every sensor the node has. The
/// driver retries and checks answers itself; what it returns is final for this sample.
// The node runs on one executor (embassy, or a tokio task); no `Send` bound is needed.
#[allow(async_fn_in_trait)]
pub trait Sensors {
    /// Reads every sensor once. Quantities without a sensor are left unset.
    ///
    /// Values are raw: in the quantity's unit before calibration, except sludge, which is the
    /// distance in metres from the ultrasonic sensor's face to the sludge surface; the node
    /// turns it into a level with the tank's geometry from its configuration.
    async fn sample(&mut self) -> RawReading;

    /// Called once the reading made from the last sample is written to flash: from then on
    /// the node guarantees that it reaches the gateway, or that it is counted in
    /// `Status.dropped` if the queue overflows. A sample the node skips (time unknown or gone
    /// back) is never recorded. Boards have nothing to do here; simulators and tests keep a
    /// ground truth of what must arrive.
    fn recorded(&mut self, reading: &Reading) {
        let _ = reading;
    }
}

/// One sample of every sensor: per quantity, a raw value, a fault code, or nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RawReading {
    samples: [Option<Result<f64, Fault>>; Quantity::COUNT],
}

impl RawReading {
    /// A sample with no sensor read yet.
    pub const fn new() -> Self {
        RawReading {
            samples: [None; Quantity::COUNT],
        }
    }

    /// Sets what the sensor of `q` gave.
    pub fn set(&mut self, q: Quantity, result: Result<f64, Fault>) {
        self.samples[q.index()] = Some(result);
    }

    /// Sets a raw value (builder style).
    pub fn with(mut self, q: Quantity, raw: f64) -> Self {
        self.set(q, Ok(raw));
        self
    }

    /// Sets a fault (builder style).
    pub fn with_fault(mut self, q: Quantity, fault: Fault) -> Self {
        self.set(q, Err(fault));
        self
    }

    /// What the sensor of `q` gave, if the node has one.
    pub fn get(&self, q: Quantity) -> Option<Result<f64, Fault>> {
        self.samples[q.index()]
    }
}
