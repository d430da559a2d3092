//! DNS (RFC 1035): a recursive query for a name's IPv4 address, and the first A record of the
//! response.
//!
//! Which response answers which query (the id) is for the caller to check. Names in a response
//! are skipped, not read, so compression pointers are never followed and cannot loop.

use core::fmt;

use crate::bytes::{Full, Reader, Writer};

/// The UDP port DNS servers listen on.
pub const SERVER_PORT: u16 = 53;
/// The longest name on the wire, length bytes and the final zero included (RFC 1035, 2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// The longest label (RFC 1035, 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

const HEADER_LEN: usize = 12;
/// Header flags of a query: a standard query, recursion desired.
const RECURSION_DESIRED: u16 = 0x0100;
/// QR: set in responses.
const RESPONSE: u8 = 0x80;
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
/// The top two bits of a length byte set: a compression pointer, two bytes in all.
const POINTER: u8 = 0xC0;

/// A recursive query for the A record of `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    /// The query id, which the response carries back.
    pub id: u16,
    /// A host name such as `broker.example.org`; final dots are ignored.
    pub name: &'a str,
}

/// Why a [`Query`] could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// The buffer is smaller than the query.
    BufferTooSmall,
    /// The name is empty or has an empty label (`a..b`, `.a`).
    EmptyLabel,
    /// A label is longer than [`MAX_LABEL_LEN`].
    LabelTooLong,
    /// The name is longer than [`MAX_NAME_LEN`] on the wire.
    NameTooLong,
}

impl From<Full> for QueryError {
    fn from(_: Full) -> Self {
        QueryError::BufferTooSmall
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueryError::BufferTooSmall => "the buffer is too small for the DNS query",
            QueryError::EmptyLabel => "the name is empty or has an empty label",
            QueryError::LabelTooLong => "a label of the name is longer than 63 bytes",
            QueryError::NameTooLong => "the name is longer than 255 bytes",
        })
    }
}

impl core::error::Error for QueryError {}

impl Query<'_> {
    /// Writes the query at the start of `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, QueryError> {
        let name = self.name.trim_end_matches('.');
        let mut w = Writer::new(buf);
        w.u16(self.id);
        w.u16(RECURSION_DESIRED);
        // One question; no answer, authority or additional records.
        w.put(&[0, 1, 0, 0, 0, 0, 0, 0]);
        let mut name_len = 1;
        for label in name.split('.') {
            if label.is_empty() {
                return Err(QueryError::EmptyLabel);
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(QueryError::LabelTooLong);
            }
            name_len += 1 + label.len();
            if name_len > MAX_NAME_LEN {
                return Err(QueryError::NameTooLong);
            }
            // At most 63: the length fits a byte.
            w.u8(label.len() as u8);
            w.put(label.as_bytes());
        }
        w.u8(0);
        w.u16(TYPE_A);
        w.u16(CLASS_IN);
        Ok(w.finish()?)
    }
}

/// The first A record of a response: the address its name resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The id of the query it answers.
    pub id: u16,
    /// The IPv4 address.
    pub address: [u8; 4],
}

/// Why a datagram gives no address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the 12-byte header.
    TooShort,
    /// A query, not a response.
    NotAResponse,
    /// The server answered with an error (RCODE): 2 server failure, 3 no such name, ...
    ServerError(u8),
    /// A question or record runs past the end of the datagram.
    Truncated,
    /// The response holds no A record (no answer, or only other records such as a CNAME).
    NoAddress,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort => f.write_str("shorter than a DNS header"),
            ParseError::NotAResponse => f.write_str("a DNS query, not a response"),
            ParseError::ServerError(rcode) => write!(f, "the DNS server answered error {rcode}"),
            ParseError::Truncated => f.write_str("a DNS record runs past the end of the message"),
            ParseError::NoAddress => f.write_str("no A record in the DNS response"),
        }
    }
}

impl core::error::Error for ParseError {}

impl Answer {
    /// Reads the first A record of a response (of any class; records of other types before it
    /// are skipped).
    pub fn parse(m: &[u8]) -> Result<Answer, ParseError> {
        let mut r = Reader::new(m);
        let header: [u8; HEADER_LEN] = r.array().ok_or(ParseError::TooShort)?;
        if header[2] & RESPONSE == 0 {
            return Err(ParseError::NotAResponse);
        }
        let rcode = header[3] & 0x0F;
        if rcode != 0 {
            return Err(ParseError::ServerError(rcode));
        }
        let id = u16::from_be_bytes([header[0], header[1]]);
        let questions = u16::from_be_bytes([header[4], header[5]]);
        let answers = u16::from_be_bytes([header[6], header[7]]);
        for _ in 0..questions {
            skip_name(&mut r)?;
            r.take(4).ok_or(ParseError::Truncated)?; // type, class
        }
        for _ in 0..answers {
            skip_name(&mut r)?;
            // Type, class, TTL, data length.
            let record: [u8; 10] = r.array().ok_or(ParseError::Truncated)?;
            let kind = u16::from_be_bytes([record[0], record[1]]);
            let len = u16::from_be_bytes([record[8], record[9]]);
            let data = r.take(usize::from(len)).ok_or(ParseError::Truncated)?;
            if kind == TYPE_A {
                if let Ok(address) = data.try_into() {
                    return Ok(Answer { id, address });
                }
            }
        }
        Err(ParseError::NoAddress)
    }
}

/// Moves past a name: labels up to a zero byte, or up to a compression pointer.
fn skip_name(r: &mut Reader<'_>) -> Result<(), ParseError> {
    loop {
        let len = r.u8().ok_or(ParseError::Truncated)?;
        if len & POINTER == POINTER {
            r.u8().ok_or(ParseError::Truncated)?;
            return Ok(());
        }
        if len == 0 {
            return Ok(());
        }
        r.take(usize::from(len)).ok_or(ParseError::Truncated)?;
    }
}
