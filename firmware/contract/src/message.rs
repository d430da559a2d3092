//! The four messages of the contract and their validation.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Field, Reason};
use crate::quantity::Quantity;
use crate::reading::Reading;
use crate::time::Timestamp;
use crate::wire::{self, Encoding};
use crate::{MAX_CLOCK_SKEW_S, MAX_READINGS};

/// A message of the contract: encodes to either form and decodes from both.
pub trait Message: Sized {
    /// Writes the message in `encoding` into `buf`; returns the number of bytes written.
    fn encode(&self, encoding: Encoding, buf: &mut [u8]) -> Result<usize, Error>;

    /// Reads a message in either encoding (told apart by [`Encoding::detect`]) and validates it.
    fn decode(bytes: &[u8]) -> Result<Self, Error>;
}

/// Node -> gateway on `.../telemetry`: a batch of readings.
///
/// `(boot, seq)` identifies the message: `boot` counts the node's restarts and `seq` numbers
/// its messages within one boot, from 0. Resending a message with the same identity is
/// always safe; the gateway stores it once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Telemetry {
    /// The node's boot counter.
    pub boot: u32,
    /// Message sequence number within this boot.
    pub seq: u32,
    /// One or more readings, timestamps strictly increasing.
    pub readings: heapless::Vec<Reading, MAX_READINGS>,
}

impl Telemetry {
    /// Checks what can be checked without a clock: at least one reading, increasing
    /// timestamps, every value in range.
    pub fn validate(&self) -> Result<(), Error> {
        if self.readings.is_empty() {
            return Err(Error::new(Field::Top("readings"), Reason::NoReadings));
        }
        let mut previous: Option<Timestamp> = None;
        for (i, r) in self.readings.iter().enumerate() {
            r.validate(i)?;
            if previous.is_some_and(|p| r.ts <= p) {
                return Err(Error::new(
                    Field::Reading {
                        index: i as u16,
                        name: "ts",
                    },
                    Reason::NotAscending,
                ));
            }
            previous = Some(r.ts);
        }
        Ok(())
    }

    /// Checks that no reading is more than [`MAX_CLOCK_SKEW_S`] ahead of `now`.
    pub fn check_clock(&self, now: Timestamp) -> Result<(), Error> {
        for (i, r) in self.readings.iter().enumerate() {
            let ahead_s = r.ts.unix() - now.unix();
            if ahead_s > MAX_CLOCK_SKEW_S {
                return Err(Error::new(
                    Field::Reading {
                        index: i as u16,
                        name: "ts",
                    },
                    Reason::InFuture { ahead_s },
                ));
            }
        }
        Ok(())
    }

    /// Decodes without the checks of [`Telemetry::validate`], so that a receiver can learn the
    /// identity (boot, seq) of a message it refuses, and acknowledge it: resending a refused
    /// message cannot help. Never store what this returns.
    pub fn decode_unvalidated(bytes: &[u8]) -> Result<Self, Error> {
        let mut t = Telemetry::default();
        t.read_unvalidated(bytes)?;
        Ok(t)
    }

    /// [`Telemetry::decode_unvalidated`] into `self`.
    fn read_unvalidated(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match Encoding::detect(bytes)? {
            Encoding::Json => {
                *self = wire::decode_json::<wire::JsonTelemetry>(bytes)?.try_into()?;
                Ok(())
            }
            Encoding::Binary => wire::decode_binary_telemetry(bytes, self),
        }
    }

    /// [`Telemetry::decode_received`] into `self`, in place: for a receiver that decodes
    /// message after message into one `Telemetry`. A `Telemetry` has room for
    /// [`MAX_READINGS`] readings (6.7 KB), and returning it by value through the decoder's
    /// layers cost more than decoding. After an error, `self` holds no message.
    pub fn decode_received_into(&mut self, bytes: &[u8], now: Timestamp) -> Result<(), Error> {
        self.read_unvalidated(bytes)?;
        self.validate()?;
        self.check_clock(now)
    }

    /// What a receiver does with a payload: decode, validate, and check the clock at `now`.
    pub fn decode_received(bytes: &[u8], now: Timestamp) -> Result<Self, Error> {
        let mut t = Telemetry::default();
        t.decode_received_into(bytes, now)?;
        Ok(t)
    }
}

/// Decodes JSON telemetry with the parser a `no_std` build uses, whatever the features, so
/// tests can hold both parsers to the same rules.
#[doc(hidden)]
pub fn decode_json_as_no_std(bytes: &[u8]) -> Result<Telemetry, Error> {
    Encoding::detect(bytes)?;
    let t: Telemetry = wire::decode_json_core::<wire::JsonTelemetry>(bytes)?.try_into()?;
    t.validate()?;
    Ok(t)
}

impl Message for Telemetry {
    fn encode(&self, encoding: Encoding, buf: &mut [u8]) -> Result<usize, Error> {
        match encoding {
            Encoding::Json => wire::encode_json(&wire::JsonTelemetry::from(self), buf),
            Encoding::Binary => wire::encode_binary(&wire::BinTelemetry::from(self), buf),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let t = Telemetry::decode_unvalidated(bytes)?;
        t.validate()?;
        Ok(t)
    }
}

/// Gateway -> node on `.../ack`: every message of boot `boot` up to and including `seq` is
/// durably stored (or was refused for good and kept as a dead letter). The node may free them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Boot counter the acknowledgement is for.
    pub boot: u32,
    /// Highest sequence number covered.
    pub seq: u32,
}

/// Whether a node is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Connected and sampling.
    Online,
    /// Disconnected: the node's last will, or a node shutting down cleanly.
    Offline,
}

/// Longest firmware version string in [`Status`].
pub const FIRMWARE_LEN: usize = 24;

/// Node -> gateway on `.../status`, retained. The node's last will is
/// `{"state":"offline"}` with every other field absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// Online or offline.
    pub state: NodeState,
    /// Firmware version, for example `weir-node 0.1.0`.
    #[serde(default)]
    pub firmware: Option<heapless::String<FIRMWARE_LEN>>,
    /// Boot counter.
    #[serde(default)]
    pub boot: Option<u32>,
    /// Readings waiting in the node's queue for an ack.
    #[serde(default)]
    pub buffered: Option<u32>,
    /// Readings the node dropped because its queue was full, since it was installed.
    #[serde(default)]
    pub dropped: Option<u32>,
    /// Seconds since the node started.
    #[serde(default)]
    pub uptime_s: Option<u32>,
}

impl Status {
    /// The last-will payload: offline, nothing else known.
    pub const fn offline() -> Self {
        Status {
            state: NodeState::Offline,
            firmware: None,
            boot: None,
            buffered: None,
            dropped: None,
            uptime_s: None,
        }
    }
}

/// Linear correction of a sensor: `value = raw * scale + offset`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Added after scaling, in the quantity's unit.
    pub offset: f64,
    /// Multiplies the raw value.
    pub scale: f64,
}

impl Calibration {
    /// No correction.
    pub const IDENTITY: Calibration = Calibration {
        offset: 0.0,
        scale: 1.0,
    };

    /// Applies the correction.
    pub fn apply(&self, raw: f64) -> f64 {
        raw * self.scale + self.offset
    }
}

/// Calibration per quantity; a quantity left out is not corrected. Field names are the
/// quantities' JSON names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CalibrationSet {
    pub flow_m3h: Option<Calibration>,
    pub volume_m3: Option<Calibration>,
    pub turbidity_ntu: Option<Calibration>,
    pub sludge_pct: Option<Calibration>,
    pub supply_v: Option<Calibration>,
    pub rssi_dbm: Option<Calibration>,
}

impl CalibrationSet {
    /// The calibration of `q` (identity when none is set).
    pub fn get(&self, q: Quantity) -> Calibration {
        self.slot(q).unwrap_or(Calibration::IDENTITY)
    }

    fn slot(&self, q: Quantity) -> Option<Calibration> {
        match q {
            Quantity::Flow => self.flow_m3h,
            Quantity::Volume => self.volume_m3,
            Quantity::Turbidity => self.turbidity_ntu,
            Quantity::Sludge => self.sludge_pct,
            Quantity::Supply => self.supply_v,
            Quantity::Rssi => self.rssi_dbm,
        }
    }

    /// Sets the calibration of `q`.
    pub fn set(&mut self, q: Quantity, c: Option<Calibration>) {
        let slot = match q {
            Quantity::Flow => &mut self.flow_m3h,
            Quantity::Volume => &mut self.volume_m3,
            Quantity::Turbidity => &mut self.turbidity_ntu,
            Quantity::Sludge => &mut self.sludge_pct,
            Quantity::Supply => &mut self.supply_v,
            Quantity::Rssi => &mut self.rssi_dbm,
        };
        *slot = c;
    }
}

/// Gateway -> node on `.../config`, retained: how often to sample and publish, and how to
/// correct the sensors. A node keeps its last valid configuration across restarts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Seconds between two samples (10 to 3600; default 60).
    pub sample_interval_s: u32,
    /// Seconds between two publications (from the sample interval to 86400; default 300).
    pub publish_interval_s: u32,
    /// Sensor corrections.
    pub calibration: CalibrationSet,
    /// Working depth of the tank, m: the distance from the tank bottom to the overflow
    /// level (0.2 to 20). Needed for sludge level.
    pub tank_depth_m: Option<f64>,
    /// Height of the ultrasonic sensor's face above the tank bottom, m (0.2 to 25).
    pub sensor_height_m: Option<f64>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            sample_interval_s: 60,
            publish_interval_s: 300,
            calibration: CalibrationSet::default(),
            tank_depth_m: None,
            sensor_height_m: None,
        }
    }
}

impl NodeConfig {
    /// Checks every setting's range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |name, range| Err(Error::new(Field::Top(name), Reason::OutOfRange(range)));
        if !(10..=3600).contains(&self.sample_interval_s) {
            return bad("sample_interval_s", "10 to 3600 s");
        }
        if !(self.sample_interval_s..=86_400).contains(&self.publish_interval_s) {
            return bad("publish_interval_s", "from sample_interval_s to 86400 s");
        }
        let in_range = |v: Option<f64>, lo: f64, hi: f64| v.is_none_or(|v| (lo..=hi).contains(&v));
        if !in_range(self.tank_depth_m, 0.2, 20.0) {
            return bad("tank_depth_m", "0.2 to 20 m");
        }
        if !in_range(self.sensor_height_m, 0.2, 25.0) {
            return bad("sensor_height_m", "0.2 to 25 m");
        }
        for q in Quantity::ALL {
            let c = self.calibration.get(q);
            if !c.offset.is_finite() || !c.scale.is_finite() || c.scale == 0.0 {
                return Err(Error::new(
                    Field::Top("calibration"),
                    Reason::OutOfRange("finite offset and finite non-zero scale"),
                ));
            }
        }
        Ok(())
    }
}

/// Ack, Status and NodeConfig have the same shape in both encodings.
macro_rules! plain_message {
    ($ty:ty, $validate:expr) => {
        impl Message for $ty {
            fn encode(&self, encoding: Encoding, buf: &mut [u8]) -> Result<usize, Error> {
                match encoding {
                    Encoding::Json => wire::encode_json(self, buf),
                    Encoding::Binary => wire::encode_binary(self, buf),
                }
            }

            fn decode(bytes: &[u8]) -> Result<Self, Error> {
                let m: $ty = match Encoding::detect(bytes)? {
                    Encoding::Json => wire::decode_json(bytes)?,
                    Encoding::Binary => wire::decode_binary(bytes)?,
                };
                let validate: fn(&$ty) -> Result<(), Error> = $validate;
                validate(&m)?;
                Ok(m)
            }
        }
    };
}

plain_message!(Ack, |_| Ok(()));
plain_message!(Status, |_| Ok(()));
plain_message!(NodeConfig, NodeConfig::validate);
plain_message!(crate::FirmwareOffer, crate::FirmwareOffer::validate);
plain_message!(crate::FirmwareChunk, crate::FirmwareChunk::validate);
plain_message!(crate::UpdateReport, |_| Ok(()));
