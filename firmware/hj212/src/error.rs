//! Why a frame was refused, or could not be written.
//!
//! Decoding errors carry `at`, the byte offset in the frame (or in the segment, for
//! [`Packet::decode_segment`](crate::Packet::decode_segment)) where the problem was found, so
//! that a log line can point at it.

use core::fmt;

/// A field of the data segment, by its key on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldName {
    /// `QN`, the request number (a millisecond timestamp).
    Qn,
    /// `ST`, the system code.
    St,
    /// `CN`, the command code.
    Cn,
    /// `PW`, the access password.
    Pw,
    /// `MN`, the device's unique identifier.
    Mn,
    /// `Flag`, the version, split and answer bits.
    Flag,
    /// `PNUM`, the number of packets of a split message.
    Pnum,
    /// `PNO`, this packet's number in a split message.
    Pno,
    /// `CP`, the command parameters (`CP=&&...&&`).
    Cp,
}

impl FieldName {
    /// The field's key as written on the wire.
    pub const fn key(self) -> &'static str {
        match self {
            FieldName::Qn => "QN",
            FieldName::St => "ST",
            FieldName::Cn => "CN",
            FieldName::Pw => "PW",
            FieldName::Mn => "MN",
            FieldName::Flag => "Flag",
            FieldName::Pnum => "PNUM",
            FieldName::Pno => "PNO",
            FieldName::Cp => "CP",
        }
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What is wrong with a field of the data segment's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Problem {
    /// A required field is absent (`ST`, `CN`, `PW`, `MN`, `CP`; `PNUM` and `PNO` when the
    /// Flag's split bit is set).
    Missing,
    /// The field comes twice, or after a field that the standard puts after it.
    OutOfOrder,
    /// The value has the wrong characters or form (a `QN` that is not a valid
    /// `YYYYMMDDhhmmsszzz`, a `CN` that is not four digits, a `Flag` over 255, ...).
    Malformed,
    /// The value is longer than the standard allows (`PW` 6, `MN` 24 characters).
    TooLong,
    /// The field disagrees with another: `PNUM`/`PNO` without the Flag's split bit or the
    /// other way round, or a `PNO` above `PNUM`.
    Inconsistent,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Problem::Missing => "is missing",
            Problem::OutOfOrder => "is repeated or out of the standard's order",
            Problem::Malformed => "is malformed",
            Problem::TooLong => "is longer than the standard allows",
            Problem::Inconsistent => "disagrees with the Flag or with PNUM",
        })
    }
}

/// What is wrong with the CP data area (between `CP=&&` and `&&`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpProblem {
    /// The CP field does not start with `CP=&&` and end with `&&`.
    Unbracketed,
    /// The CP field is longer than 950 characters (the standard's limit, counting `CP=&&` and
    /// `&&`), or a builder ran out of room.
    TooLong,
    /// An empty entry: `;;`, `,,`, or a separator at the start or end.
    EmptyEntry,
    /// An entry without `=`.
    NoEquals,
    /// A key that is not letters and digits, or `code-field` with an empty part or a second
    /// `-`, or (when building) a field named `Flag`, which is the group's flag.
    BadKey,
    /// The same key twice in one CP.
    RepeatedKey,
    /// An empty value, or one with a control character or one of `;` `,` `=` `&`.
    BadValue,
    /// A `-Rtd`, `-Avg`, `-Min`, `-Max`, `-Cou` or `-Zs...` value that is not a decimal number
    /// of at most 18 characters (`-?digits[.digits]`, no leading zeros, no exponent).
    BadNumber,
    /// A `DataTime` that is not a valid `YYYYMMDDhhmmss`.
    BadDataTime,
    /// A `-Flag` value that is not one character `A`-`Z` or `0`-`9`.
    BadFlag,
}

impl fmt::Display for CpProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpProblem::Unbracketed => "CP is not enclosed in CP=&& and &&",
            CpProblem::TooLong => "CP is longer than 950 characters",
            CpProblem::EmptyEntry => "CP has an empty entry",
            CpProblem::NoEquals => "CP has an entry without '='",
            CpProblem::BadKey => "CP has a malformed key",
            CpProblem::RepeatedKey => "CP has a key twice",
            CpProblem::BadValue => "CP has an empty or malformed value",
            CpProblem::BadNumber => "CP has a measured value that is not a decimal number",
            CpProblem::BadDataTime => "CP has a DataTime that is not YYYYMMDDhhmmss",
            CpProblem::BadFlag => "CP has a data flag that is not one letter or digit",
        })
    }
}

/// A problem in a CP data area, at a byte offset into that data area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpError {
    /// What is wrong.
    pub problem: CpProblem,
    /// Byte offset into the data area (the text between `CP=&&` and `&&`).
    pub at: usize,
}

impl fmt::Display for CpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {} of the CP data)", self.problem, self.at)
    }
}

impl core::error::Error for CpError {}

/// Why bytes are not a valid HJ 212 frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The frame does not start with `##`.
    BadStart,
    /// The four characters after `##` are not a decimal length.
    BadLength,
    /// The length field says more than 1024, the standard's limit for a data segment.
    SegmentTooLong {
        /// The length the frame declared.
        len: usize,
    },
    /// Fewer bytes than the length field (or the smallest frame) needs.
    Truncated {
        /// Bytes given.
        len: usize,
        /// Bytes the frame needs.
        needed: usize,
    },
    /// More bytes than the length field says: trailing bytes, or a wrong length field.
    TooLong {
        /// Bytes given.
        len: usize,
        /// Bytes the length field accounts for.
        expected: usize,
    },
    /// The frame does not end with `\r\n`.
    BadEnd,
    /// The four characters before `\r\n` are not hexadecimal digits.
    BadCrcDigits,
    /// The CRC in the frame is not the CRC of its data segment.
    CrcMismatch {
        /// The CRC the frame carries.
        sent: u16,
        /// The CRC of the data segment as received.
        computed: u16,
    },
    /// The data segment is not UTF-8 (the standard allows ASCII, and UTF-8 for Chinese text).
    NotUtf8 {
        /// Offset of the first byte that is not.
        at: usize,
    },
    /// A header field that is not one of `QN ST CN PW MN Flag PNUM PNO CP`, or has no `=`.
    UnknownField {
        /// Offset of the field.
        at: usize,
    },
    /// A header field is missing, misplaced or malformed.
    Field {
        /// Which field.
        field: FieldName,
        /// What is wrong with it.
        problem: Problem,
        /// Offset of the field's value (of the `CP` field, where a field is missing).
        at: usize,
    },
    /// The CP data area is malformed.
    Cp {
        /// What is wrong with it.
        problem: CpProblem,
        /// Offset of the offending entry or value.
        at: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadStart => f.write_str("HJ 212 frame does not start with ##"),
            DecodeError::BadLength => f.write_str("HJ 212 length field is not four digits"),
            DecodeError::SegmentTooLong { len } => {
                write!(
                    f,
                    "HJ 212 data segment of {len} bytes is over the 1024 limit"
                )
            }
            DecodeError::Truncated { len, needed } => {
                write!(f, "HJ 212 frame truncated: {len} of {needed} bytes")
            }
            DecodeError::TooLong { len, expected } => {
                write!(
                    f,
                    "HJ 212 frame has {len} bytes, its length field accounts for {expected}"
                )
            }
            DecodeError::BadEnd => f.write_str("HJ 212 frame does not end with CR LF"),
            DecodeError::BadCrcDigits => f.write_str("HJ 212 CRC is not four hex digits"),
            DecodeError::CrcMismatch { sent, computed } => {
                write!(
                    f,
                    "HJ 212 CRC mismatch: frame says {sent:04X}, data gives {computed:04X}"
                )
            }
            DecodeError::NotUtf8 { at } => write!(f, "HJ 212 data is not UTF-8 at byte {at}"),
            DecodeError::UnknownField { at } => {
                write!(f, "HJ 212 header has an unknown field at byte {at}")
            }
            DecodeError::Field { field, problem, at } => {
                write!(f, "HJ 212 field {field} {problem} (at byte {at})")
            }
            DecodeError::Cp { problem, at } => write!(f, "HJ 212 {problem} (at byte {at})"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a packet could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// The output buffer is shorter than the frame.
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
    },
    /// The data segment would be longer than the standard's 1024 bytes.
    SegmentTooLong {
        /// Its length.
        len: usize,
    },
    /// A header field cannot be written as it is.
    Field {
        /// Which field.
        field: FieldName,
        /// What is wrong with it.
        problem: Problem,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed } => {
                write!(f, "buffer too small for the HJ 212 frame ({needed} bytes)")
            }
            EncodeError::SegmentTooLong { len } => {
                write!(
                    f,
                    "HJ 212 data segment of {len} bytes is over the 1024 limit"
                )
            }
            EncodeError::Field { field, problem } => write!(f, "HJ 212 field {field} {problem}"),
        }
    }
}

impl core::error::Error for EncodeError {}
