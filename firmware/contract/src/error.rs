//! Why a message was refused, and where in it.

use core::fmt;

/// A decode, encode or validation failure: which field, and why.
///
/// Its `Display` form is meant for people: `readings[2].turbidity_ntu: 4100 is above the
/// limit of 4000 NTU`.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    /// Where in the message.
    pub field: Field,
    /// What is wrong there.
    pub reason: Reason,
}

impl Error {
    pub(crate) const fn new(field: Field, reason: Reason) -> Self {
        Error { field, reason }
    }

    pub(crate) const fn message(reason: Reason) -> Self {
        Error {
            field: Field::Message,
            reason,
        }
    }

    /// A short, stable, machine-friendly name of the reason, for counters and metrics labels.
    pub fn code(&self) -> &'static str {
        self.reason.code()
    }
}

/// A place in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The message as a whole (its encoding, its size).
    Message,
    /// A top-level field, by its JSON name.
    Top(&'static str),
    /// A field of one reading: `index` in the batch, `name` its JSON name.
    Reading {
        /// Position of the reading in the batch, from 0.
        index: u16,
        /// JSON name of the field.
        name: &'static str,
    },
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Message => f.write_str("message"),
            Field::Top(name) => f.write_str(name),
            Field::Reading { index, name } => write!(f, "readings[{index}].{name}"),
        }
    }
}

/// Why a field was refused.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reason {
    /// The payload is empty.
    Empty,
    /// The payload is larger than [`crate::MAX_PAYLOAD`].
    TooLarge {
        /// Payload length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The first byte is neither `{` (JSON) nor a known binary version.
    UnknownEncoding(u8),
    /// Not valid JSON for this message; the parser's words. With the `std` feature they name
    /// the field and position (`unknown field `temp_c` at line 1 column 70`).
    Json(heapless::String<72>),
    /// Not a valid binary message of this kind.
    Binary(postcard::Error),
    /// Bytes left after a complete message.
    TrailingBytes(usize),
    /// The output buffer is too small to encode the message.
    BufferFull,
    /// A telemetry message without readings.
    NoReadings,
    /// More readings than [`crate::MAX_READINGS`].
    TooManyReadings,
    /// NaN or infinite.
    NotFinite,
    /// Below the quantity's range.
    BelowMin {
        /// The value sent.
        value: f64,
        /// The lowest possible value.
        min: f64,
        /// Unit of both.
        unit: &'static str,
    },
    /// Above the quantity's range.
    AboveMax {
        /// The value sent.
        value: f64,
        /// The highest possible value.
        max: f64,
        /// Unit of both.
        unit: &'static str,
    },
    /// Not an RFC 3339 timestamp; says what is wrong with it.
    BadTimestamp(&'static str),
    /// Before [`crate::EARLIEST_TIMESTAMP`]: the node's clock was never set.
    TooEarly,
    /// Further in the future than [`crate::MAX_CLOCK_SKEW_S`] by the receiver's clock.
    InFuture {
        /// Seconds ahead of the receiver's clock.
        ahead_s: i64,
    },
    /// Readings of one message must have strictly increasing timestamps.
    NotAscending,
    /// A quantity has both a value and a fault code.
    ValueAndFault,
    /// A quantity appears twice in one reading.
    Repeated,
    /// A terminal id that breaks the rules; says which.
    BadTerminalId(&'static str),
    /// A topic that is not one of the contract's; says why.
    BadTopic(&'static str),
    /// A setting outside its allowed range; says which range.
    OutOfRange(&'static str),
}

impl Reason {
    /// A short, stable name of the reason, for counters and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::TooLarge { .. } => "too_large",
            Reason::UnknownEncoding(_) => "unknown_encoding",
            Reason::Json(_) => "bad_json",
            Reason::Binary(_) => "bad_binary",
            Reason::TrailingBytes(_) => "trailing_bytes",
            Reason::BufferFull => "buffer_full",
            Reason::NoReadings => "no_readings",
            Reason::TooManyReadings => "too_many_readings",
            Reason::NotFinite => "not_finite",
            Reason::BelowMin { .. } => "below_min",
            Reason::AboveMax { .. } => "above_max",
            Reason::BadTimestamp(_) => "bad_timestamp",
            Reason::TooEarly => "too_early",
            Reason::InFuture { .. } => "in_future",
            Reason::NotAscending => "not_ascending",
            Reason::ValueAndFault => "value_and_fault",
            Reason::Repeated => "repeated",
            Reason::BadTerminalId(_) => "bad_terminal_id",
            Reason::BadTopic(_) => "bad_topic",
            Reason::OutOfRange(_) => "out_of_range",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Empty => f.write_str("the payload is empty"),
            Reason::TooLarge { len, max } => {
                write!(
                    f,
                    "the payload is {len} bytes, more than the limit of {max}"
                )
            }
            Reason::UnknownEncoding(b) => write!(
                f,
                "first byte 0x{b:02x} is neither '{{' (JSON) nor binary protocol version {}",
                crate::PROTOCOL_VERSION
            ),
            Reason::Json(msg) => write!(f, "invalid JSON: {msg}"),
            Reason::Binary(e) => write!(f, "invalid binary message: {e}"),
            Reason::TrailingBytes(n) => write!(f, "{n} bytes after the end of the message"),
            Reason::BufferFull => f.write_str("the output buffer is too small"),
            Reason::NoReadings => f.write_str("a telemetry message needs at least one reading"),
            Reason::TooManyReadings => {
                write!(
                    f,
                    "more than {} readings in one message",
                    crate::MAX_READINGS
                )
            }
            Reason::NotFinite => f.write_str("not a finite number"),
            Reason::BelowMin { value, min, unit } => {
                write!(f, "{value} is below the limit of {min} {unit}")
            }
            Reason::AboveMax { value, max, unit } => {
                write!(f, "{value} is above the limit of {max} {unit}")
            }
            Reason::BadTimestamp(why) => {
                write!(
                    f,
                    "not an RFC 3339 timestamp like 2026-11-22T07:40:00Z: {why}"
                )
            }
            Reason::TooEarly => {
                f.write_str("before 2020-01-01T00:00:00Z: the node's clock is not set")
            }
            Reason::InFuture { ahead_s } => write!(
                f,
                "{ahead_s} s ahead of the receiver's clock (at most {} s allowed)",
                crate::MAX_CLOCK_SKEW_S
            ),
            Reason::NotAscending => {
                f.write_str("not later than the previous reading; timestamps must increase")
            }
            Reason::ValueAndFault => f.write_str("has both a value and a fault code"),
            Reason::Repeated => f.write_str("appears more than once in the reading"),
            Reason::BadTerminalId(why) => write!(f, "invalid terminal id: {why}"),
            Reason::BadTopic(why) => write!(f, "invalid topic: {why}"),
            Reason::OutOfRange(range) => write!(f, "out of range: must be {range}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl core::error::Error for Error {}
