//! The two encodings, and the wire shapes of a telemetry message.
//!
//! * Binary: one version byte ([`crate::PROTOCOL_VERSION`]) followed by the message in
//!   [postcard](https://docs.rs/postcard) (varint integers, little-endian floats, no field
//!   names). A telemetry batch stores its first timestamp once and each reading's offset from
//!   the previous one, and only the samples a reading has.
//! * JSON: field names as in [`crate::Quantity::field`], timestamps in RFC 3339, unknown
//!   fields refused.

use core::fmt::Write as _;
use core::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Field, Reason};
use crate::message::Telemetry;
use crate::quantity::Quantity;
use crate::reading::{Fault, Reading, Sample};
use crate::time::Timestamp;
use crate::{MAX_PAYLOAD, MAX_READINGS, PROTOCOL_VERSION};

/// How a payload is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Version byte + postcard: for nodes on metered links.
    Binary,
    /// UTF-8 JSON object: for data loggers and people.
    Json,
}

impl Encoding {
    /// Tells the encoding of a payload from its first byte: `{` (after optional white space or
    /// a UTF-8 byte-order mark) is JSON, [`PROTOCOL_VERSION`] is binary. Also refuses empty
    /// and oversized payloads.
    pub fn detect(bytes: &[u8]) -> Result<Encoding, Error> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(Error::message(Reason::TooLarge {
                len: bytes.len(),
                max: MAX_PAYLOAD,
            }));
        }
        match json_start(bytes).first() {
            None => Err(Error::message(Reason::Empty)),
            Some(b'{') => Ok(Encoding::Json),
            Some(_) if bytes[0] == PROTOCOL_VERSION => Ok(Encoding::Binary),
            Some(_) => Err(Error::message(Reason::UnknownEncoding(bytes[0]))),
        }
    }
}

/// The payload without a leading byte-order mark and white space.
fn json_start(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Converts an `f32` from the binary form to the `f64` with the same shortest decimal form,
/// so that 1.52 sent as `f32` is stored and exported as 1.52, not 1.5199999809265137.
pub fn widen(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    // ryu writes the shortest decimal form that reads back as the same f32.
    ryu::Buffer::new()
        .format_finite(v)
        .parse()
        .unwrap_or(f64::from(v))
}

pub(crate) fn encode_json<T: Serialize>(value: &T, buf: &mut [u8]) -> Result<usize, Error> {
    serde_json_core::to_slice(value, buf).map_err(|_| Error::message(Reason::BufferFull))
}

pub(crate) fn encode_binary<T: Serialize>(value: &T, buf: &mut [u8]) -> Result<usize, Error> {
    let (first, rest) = buf
        .split_first_mut()
        .ok_or(Error::message(Reason::BufferFull))?;
    *first = PROTOCOL_VERSION;
    match postcard::to_slice(value, rest) {
        Ok(used) => Ok(1 + used.len()),
        Err(postcard::Error::SerializeBufferFull) => Err(Error::message(Reason::BufferFull)),
        Err(e) => Err(Error::message(Reason::Binary(e))),
    }
}

pub(crate) fn decode_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    #[cfg(feature = "std")]
    return decode_json_std(bytes);
    #[cfg(not(feature = "std"))]
    return decode_json_core(bytes);
}

/// serde_json, whose errors name the field, line and column.
#[cfg(feature = "std")]
fn decode_json_std<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    serde_json::from_slice::<T>(json_start(bytes)).map_err(|e| {
        // serde_json lists every expected field after an unknown one; the name and the
        // position are what a person needs.
        let full = e.to_string();
        let short = match (full.find(", expected"), full.rfind(" at line")) {
            (Some(cut), Some(pos)) if cut < pos => (&full[..cut], &full[pos..]),
            _ => (full.as_str(), ""),
        };
        let mut msg = heapless::String::new();
        let _ = write!(Truncating(&mut msg), "{}{}", short.0, short.1);
        Error::message(Reason::Json(msg))
    })
}

/// Room to unescape one JSON string (`\"`, `\u00e9`) into, on the stack: more than the
/// longest string any message holds (a timestamp, 40 bytes), so a longer escaped string is
/// refused as bad JSON, as it could not be kept anyway.
const UNESCAPE_LEN: usize = 64;

/// serde-json-core, for `no_std` builds. Its errors stay generic: its custom-error-messages
/// feature panics on messages over 64 bytes, which serde's unknown-field message always is.
/// Strings are unescaped (without a buffer it would hand over `a\"b` for `a"b`).
pub(crate) fn decode_json_core<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    serde_json_core::from_slice_escaped::<T>(json_start(bytes), &mut [0; UNESCAPE_LEN])
        .map(|(v, _)| v)
        .map_err(|e| {
            let mut msg = heapless::String::new();
            let _ = write!(Truncating(&mut msg), "{e}");
            Error::message(Reason::Json(msg))
        })
}

pub(crate) fn decode_binary<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    let body = &bytes[1..];
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Error::message(Reason::TrailingBytes(rest.len()))),
        Err(e) => Err(Error::message(Reason::Binary(e))),
    }
}

/// Writes as much as fits into a heapless string.
struct Truncating<'a, const N: usize>(&'a mut heapless::String<N>);

impl<const N: usize> core::fmt::Write for Truncating<'_, N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// JSON shape of a telemetry message.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JsonTelemetry {
    boot: u32,
    seq: u32,
    #[serde(deserialize_with = "bounded_readings")]
    readings: heapless::Vec<JsonReading, MAX_READINGS>,
}

/// Field names must equal [`Quantity::field`]; a test holds them together.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonReading {
    ts: heapless::String<40>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::<'_, 0, _>"
    )]
    flow_m3h: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::<'_, 1, _>"
    )]
    volume_m3: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::<'_, 2, _>"
    )]
    turbidity_ntu: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::<'_, 3, _>"
    )]
    sludge_pct: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::<'_, 4, _>"
    )]
    supply_v: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number::<'_, 5, _>"
    )]
    rssi_dbm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    faults: Option<JsonFaults>,
}

/// Fault codes by quantity, for example `{"turbidity_ntu":"no_response"}`.
#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct JsonFaults {
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_m3h: Option<Fault>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_m3: Option<Fault>,
    #[serde(skip_serializing_if = "Option::is_none")]
    turbidity_ntu: Option<Fault>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sludge_pct: Option<Fault>,
    #[serde(skip_serializing_if = "Option::is_none")]
    supply_v: Option<Fault>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rssi_dbm: Option<Fault>,
}

impl JsonReading {
    fn values(&mut self) -> [&mut Option<f64>; Quantity::COUNT] {
        [
            &mut self.flow_m3h,
            &mut self.volume_m3,
            &mut self.turbidity_ntu,
            &mut self.sludge_pct,
            &mut self.supply_v,
            &mut self.rssi_dbm,
        ]
    }
}

impl JsonFaults {
    fn slots(&mut self) -> [&mut Option<Fault>; Quantity::COUNT] {
        [
            &mut self.flow_m3h,
            &mut self.volume_m3,
            &mut self.turbidity_ntu,
            &mut self.sludge_pct,
            &mut self.supply_v,
            &mut self.rssi_dbm,
        ]
    }
}

/// A number or null; a wrong type is reported with the field's name.
fn number<'de, const Q: usize, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d).map_err(|_| {
        de::Error::custom(format_args!(
            "{}: expected a number or null",
            Quantity::ALL[Q].field()
        ))
    })
}

/// The readings array, refused with a clear message when longer than [`MAX_READINGS`].
fn bounded_readings<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<heapless::Vec<JsonReading, MAX_READINGS>, D::Error> {
    struct Bounded;
    impl<'de> Visitor<'de> for Bounded {
        type Value = heapless::Vec<JsonReading, MAX_READINGS>;
        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "an array of at most {MAX_READINGS} readings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = heapless::Vec::new();
            while let Some(r) = seq.next_element()? {
                out.push(r).map_err(|_| {
                    de::Error::custom(format_args!("readings: more than {MAX_READINGS}"))
                })?;
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded)
}

impl From<&Telemetry> for JsonTelemetry {
    fn from(t: &Telemetry) -> Self {
        let readings = t
            .readings
            .iter()
            .map(|r| {
                let mut ts = heapless::String::new();
                let _ = write!(ts, "{}", r.ts);
                let mut out = JsonReading {
                    ts,
                    flow_m3h: None,
                    volume_m3: None,
                    turbidity_ntu: None,
                    sludge_pct: None,
                    supply_v: None,
                    rssi_dbm: None,
                    faults: None,
                };
                let mut faults = JsonFaults::default();
                for (q, s) in r.samples() {
                    match s {
                        Sample::Value(v) => *out.values()[q.index()] = Some(v),
                        Sample::Fault(f) => *faults.slots()[q.index()] = Some(f),
                    }
                }
                if r.samples().any(|(_, s)| matches!(s, Sample::Fault(_))) {
                    out.faults = Some(faults);
                }
                out
            })
            .collect();
        JsonTelemetry {
            boot: t.boot,
            seq: t.seq,
            readings,
        }
    }
}

impl TryFrom<JsonTelemetry> for Telemetry {
    type Error = Error;
    fn try_from(mut j: JsonTelemetry) -> Result<Self, Error> {
        let mut readings = heapless::Vec::new();
        for (index, jr) in j.readings.iter_mut().enumerate() {
            let at = |name| Field::Reading {
                index: index as u16,
                name,
            };
            let ts = Timestamp::parse_rfc3339(&jr.ts)
                .map_err(|why| Error::new(at("ts"), Reason::BadTimestamp(why)))?;
            let mut r = Reading::new(ts);
            let mut faults = jr.faults.take().unwrap_or_default();
            for (q, (value, fault)) in Quantity::ALL
                .into_iter()
                .zip(jr.values().into_iter().zip(faults.slots()))
            {
                let sample = match (value.take(), fault.take()) {
                    (Some(_), Some(_)) => {
                        return Err(Error::new(at(q.field()), Reason::ValueAndFault))
                    }
                    (Some(v), None) => Some(Sample::Value(v)),
                    (None, Some(f)) => Some(Sample::Fault(f)),
                    (None, None) => None,
                };
                r.set(q, sample);
            }
            // Cannot overflow: both vectors hold MAX_READINGS.
            let _ = readings.push(r);
        }
        Ok(Telemetry {
            boot: j.boot,
            seq: j.seq,
            readings,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Binary shape of a telemetry message.

/// As written. Only the encoder uses it: a node encodes on its stack, so it holds no more than
/// the message.
#[derive(Serialize)]
pub(crate) struct BinTelemetry {
    boot: u32,
    seq: u32,
    /// Timestamp of the first reading, Unix seconds.
    start: i64,
    readings: heapless::Vec<BinReading, MAX_READINGS>,
}

#[derive(Serialize)]
struct BinReading {
    /// Seconds after the previous reading (after `start` for the first).
    dt: u32,
    samples: heapless::Vec<BinSample, { Quantity::COUNT }>,
}

/// Reads a binary telemetry message into a [`Telemetry`] in place, reading by reading: the
/// layout of [`BinTelemetry`], field for field. A `Telemetry` holds room for
/// [`MAX_READINGS`] readings (6.7 KB) and an intermediate form of the whole message more
/// still; built and returned by value, they were copied several times per message, which took
/// most of a receiver's decoding time.
///
/// Readings past the [`MAX_READINGS`]th are still read, so that the bytes after them stay in
/// step, and refused after postcard has read the message, naming the field, as is a reading
/// that does not convert: [`Conversion`] keeps what was found.
struct TelemetrySeed<'a> {
    out: &'a mut Telemetry,
    found: &'a mut Conversion,
}

/// What converting the readings found, reported once postcard has read the whole message.
#[derive(Default)]
struct Conversion {
    too_many: bool,
    first_error: Option<Error>,
}

impl Conversion {
    fn result(self) -> Result<(), Error> {
        if self.too_many {
            return Err(Error::new(Field::Top("readings"), Reason::TooManyReadings));
        }
        self.first_error.map_or(Ok(()), Err)
    }
}

impl<'de> de::DeserializeSeed<'de> for TelemetrySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_tuple(4, self)
    }
}

impl<'de> Visitor<'de> for TelemetrySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a telemetry message")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let missing = |i| de::Error::invalid_length(i, &"boot, seq, start and readings");
        self.out.boot = seq.next_element()?.ok_or_else(|| missing(0))?;
        self.out.seq = seq.next_element()?.ok_or_else(|| missing(1))?;
        let start: i64 = seq.next_element()?.ok_or_else(|| missing(2))?;
        self.out.readings.clear();
        seq.next_element_seed(ReadingsSeed {
            out: &mut self.out.readings,
            ts: start,
            found: self.found,
        })?
        .ok_or_else(|| missing(3))
    }
}

/// The readings of [`TelemetrySeed`]: each converted as it is read.
struct ReadingsSeed<'a> {
    out: &'a mut heapless::Vec<Reading, MAX_READINGS>,
    /// The previous reading's time (the message's `start` before the first).
    ts: i64,
    found: &'a mut Conversion,
}

impl<'de> de::DeserializeSeed<'de> for ReadingsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ReadingsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a sequence of readings")
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while let Some(br) = seq.next_element::<BinReadingIn>()? {
            if index >= MAX_READINGS {
                self.found.too_many = true;
            } else if self.found.first_error.is_none() {
                match br.to_reading(index, &mut self.ts) {
                    // Cannot overflow: index < MAX_READINGS.
                    Ok(r) => drop(self.out.push(r)),
                    Err(e) => self.found.first_error = Some(e),
                }
            }
            index += 1;
        }
        Ok(())
    }
}

/// The layout of [`BinReading`].
#[derive(Deserialize)]
struct BinReadingIn {
    dt: u32,
    samples: Capped<BinSample, { Quantity::COUNT }>,
}

/// A sequence read into at most `N` elements, without a heap. Elements past the `N`th are
/// still read, so that the bytes after the sequence stay in step, and dropped; the first of
/// them is kept in `extra` to be reported.
struct Capped<T, const N: usize> {
    items: heapless::Vec<T, N>,
    extra: Option<T>,
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Capped<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Elements<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for Elements<T, N> {
            type Value = Capped<T, N>;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Capped {
                    items: heapless::Vec::new(),
                    extra: None,
                };
                while let Some(element) = seq.next_element()? {
                    if let Err(element) = out.items.push(element) {
                        if out.extra.is_none() {
                            out.extra = Some(element);
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Elements(PhantomData))
    }
}

/// One sample: the variant says the quantity. The totaliser keeps `f64` because it grows
/// large and is differenced; the rest fit `f32` with room to spare.
#[derive(Serialize, Deserialize)]
enum BinSample {
    Flow(f32),
    Volume(f64),
    Turbidity(f32),
    Sludge(f32),
    Supply(f32),
    Rssi(f32),
    Fault(Quantity, Fault),
}

impl BinSample {
    fn new(q: Quantity, s: Sample) -> Self {
        match s {
            Sample::Fault(f) => BinSample::Fault(q, f),
            Sample::Value(v) => match q {
                Quantity::Flow => BinSample::Flow(v as f32),
                Quantity::Volume => BinSample::Volume(v),
                Quantity::Turbidity => BinSample::Turbidity(v as f32),
                Quantity::Sludge => BinSample::Sludge(v as f32),
                Quantity::Supply => BinSample::Supply(v as f32),
                Quantity::Rssi => BinSample::Rssi(v as f32),
            },
        }
    }

    fn split(&self) -> (Quantity, Sample) {
        match *self {
            BinSample::Flow(v) => (Quantity::Flow, Sample::Value(widen(v))),
            BinSample::Volume(v) => (Quantity::Volume, Sample::Value(v)),
            BinSample::Turbidity(v) => (Quantity::Turbidity, Sample::Value(widen(v))),
            BinSample::Sludge(v) => (Quantity::Sludge, Sample::Value(widen(v))),
            BinSample::Supply(v) => (Quantity::Supply, Sample::Value(widen(v))),
            BinSample::Rssi(v) => (Quantity::Rssi, Sample::Value(widen(v))),
            BinSample::Fault(q, f) => (q, Sample::Fault(f)),
        }
    }
}

impl From<&Telemetry> for BinTelemetry {
    fn from(t: &Telemetry) -> Self {
        let start = t.readings.first().map_or(0, |r| r.ts.unix());
        let mut previous = start;
        let readings = t
            .readings
            .iter()
            .map(|r| {
                // Timestamps increase in a valid message; anything else is clamped to 0 here
                // and refused by the receiver's validation.
                let dt = u32::try_from(r.ts.unix() - previous).unwrap_or(0);
                previous = r.ts.unix();
                BinReading {
                    dt,
                    samples: r.samples().map(|(q, s)| BinSample::new(q, s)).collect(),
                }
            })
            .collect();
        BinTelemetry {
            boot: t.boot,
            seq: t.seq,
            start,
            readings,
        }
    }
}

impl BinReadingIn {
    /// The `index`th reading of a message, `dt` seconds after `ts` (then moved to it).
    fn to_reading(&self, index: usize, ts: &mut i64) -> Result<Reading, Error> {
        let at = |name| Field::Reading {
            index: index as u16,
            name,
        };
        *ts = ts
            .checked_add(i64::from(self.dt))
            .ok_or(Error::new(at("ts"), Reason::BadTimestamp("out of range")))?;
        let mut r = Reading::new(Timestamp::from_unix(*ts));
        // A reading has at most one sample per quantity, so a sample past the sixth
        // repeats a quantity: it is refused below as the repeat it is, naming the quantity.
        for s in self.samples.items.iter().chain(&self.samples.extra) {
            let (q, sample) = s.split();
            match r.get(q) {
                None => r.set(q, Some(sample)),
                Some(previous)
                    if matches!(previous, Sample::Fault(_))
                        != matches!(sample, Sample::Fault(_)) =>
                {
                    return Err(Error::new(at(q.field()), Reason::ValueAndFault))
                }
                Some(_) => return Err(Error::new(at(q.field()), Reason::Repeated)),
            }
        }
        Ok(r)
    }
}

/// Decodes a binary telemetry payload (version byte first) into `out`, in place.
pub(crate) fn decode_binary_telemetry(bytes: &[u8], out: &mut Telemetry) -> Result<(), Error> {
    let mut found = Conversion::default();
    let mut d = postcard::Deserializer::from_bytes(&bytes[1..]);
    de::DeserializeSeed::deserialize(
        TelemetrySeed {
            out,
            found: &mut found,
        },
        &mut d,
    )
    .map_err(|e| Error::message(Reason::Binary(e)))?;
    match d.finalize() {
        Ok([]) => found.result(),
        Ok(rest) => Err(Error::message(Reason::TrailingBytes(rest.len()))),
        Err(e) => Err(Error::message(Reason::Binary(e))),
    }
}
