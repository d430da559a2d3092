//! MQTT 3.1.1 (OASIS standard, 29 October 2014): the packets of a client.
//!
//! Every packet starts with a fixed header: one byte with the packet type (high four bits) and
//! its flags (low four), then the remaining length, the number of bytes after the header, in
//! one to four bytes of seven bits each, least significant first ([`FixedHeader`]).
//!
//! * Sent: [`Connect`], [`Publish`], [`PubAck`], [`Subscribe`], [`PINGREQ`], [`DISCONNECT`].
//!   Each encoder writes a whole packet into the caller's buffer; [`Publish::encode_header`]
//!   writes all but the payload, so that a large payload can be sent from where it is.
//! * Received: [`ConnAck`], [`Publish`], [`PubAck`], [`SubAck`], PINGRESP. A client that reads
//!   from a stream takes the fixed header first ([`FixedHeader::decode`] says when it has not
//!   all arrived), then the body of that many bytes, and gives the body to the packet's own
//!   `decode`; [`Packet::decode`] does all of that for a buffer holding whole packets.
//!
//! The parsers take what a client needs and skip what it does not check: bytes after a
//! CONNACK's or PUBACK's fields, the reserved flag bits of packets other than PUBLISH, a
//! non-minimal remaining length. They refuse what they cannot read: a body shorter than its
//! fields, a remaining length of more than four bytes, a PUBLISH with QoS 3.

use core::fmt;

use crate::bytes::{Full, Reader, Writer};

mod connect;
mod publish;
mod subscribe;

pub use connect::{ConnAck, Connect, Will};
pub use publish::{PubAck, Publish};
pub use subscribe::{SubAck, Subscribe};

/// The largest remaining length four bytes can say (256 MiB less one byte).
pub const MAX_REMAINING_LEN: usize = 268_435_455;
/// A PINGREQ packet: "still here" after a keep-alive period without sending.
pub const PINGREQ: [u8; 2] = [(PacketType::PingReq as u8) << 4, 0];
/// A DISCONNECT packet: a clean end of the connection (the broker drops the will).
pub const DISCONNECT: [u8; 2] = [(PacketType::Disconnect as u8) << 4, 0];

/// The type of a control packet: the high four bits of its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    /// Client to server: connection request.
    Connect = 1,
    /// Server to client: connection acknowledgement.
    ConnAck = 2,
    /// Either way: a message.
    Publish = 3,
    /// Acknowledges a QoS 1 PUBLISH.
    PubAck = 4,
    /// QoS 2, first answer.
    PubRec = 5,
    /// QoS 2, release.
    PubRel = 6,
    /// QoS 2, completion.
    PubComp = 7,
    /// Client to server: subscription request.
    Subscribe = 8,
    /// Server to client: subscription acknowledgement.
    SubAck = 9,
    /// Client to server: unsubscription request.
    Unsubscribe = 10,
    /// Server to client: unsubscription acknowledgement.
    UnsubAck = 11,
    /// Client to server: keep-alive.
    PingReq = 12,
    /// Server to client: keep-alive answer.
    PingResp = 13,
    /// Client to server: clean disconnection.
    Disconnect = 14,
}

impl PacketType {
    /// The type whose code is `code` (1 to 14); 0 and 15 are reserved.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            _ => return None,
        })
    }
}

/// A quality of service level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum QoS {
    /// 0: at most once, no acknowledgement.
    AtMostOnce = 0,
    /// 1: at least once, acknowledged by PUBACK.
    AtLeastOnce = 1,
    /// 2: exactly once, through PUBREC, PUBREL and PUBCOMP.
    ExactlyOnce = 2,
}

impl QoS {
    /// The level whose code is `code`; 3 is not one.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Why a packet could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer is smaller than the packet.
    BufferTooSmall,
    /// A string (client id, topic, user name, password, will) is longer than 65,535 bytes.
    StringTooLong,
    /// The packet is longer than [`MAX_REMAINING_LEN`] after its fixed header.
    PacketTooLong,
    /// A password without a user name, which MQTT 3.1.1 does not allow.
    PasswordWithoutUserName,
    /// A packet id of 0, or a PUBLISH whose packet id does not go with its QoS (one for QoS 1
    /// and 2, none for QoS 0).
    InvalidPacketId,
    /// A SUBSCRIBE without a topic filter.
    NoTopicFilters,
}

impl From<Full> for EncodeError {
    fn from(_: Full) -> Self {
        EncodeError::BufferTooSmall
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::BufferTooSmall => "the buffer is too small for the MQTT packet",
            EncodeError::StringTooLong => "a string is longer than 65535 bytes",
            EncodeError::PacketTooLong => "the MQTT packet is longer than 268435455 bytes",
            EncodeError::PasswordWithoutUserName => "a password without a user name",
            EncodeError::InvalidPacketId => {
                "a packet id of 0, or one that does not go with the QoS"
            }
            EncodeError::NoTopicFilters => "a SUBSCRIBE without a topic filter",
        })
    }
}

impl core::error::Error for EncodeError {}

/// Why bytes could not be read as a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends before the fixed header does (or, for [`Packet::decode`], before the
    /// packet does): wait for more bytes.
    Incomplete,
    /// The remaining length goes on past four bytes.
    MalformedRemainingLength,
    /// Packet type 0 or 15.
    ReservedPacketType,
    /// The body is shorter than the fields it must hold.
    Truncated,
    /// A PUBLISH with both QoS bits set.
    InvalidQoS,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Incomplete => "the MQTT packet has not all arrived",
            DecodeError::MalformedRemainingLength => "the remaining length is over four bytes",
            DecodeError::ReservedPacketType => "a reserved MQTT packet type (0 or 15)",
            DecodeError::Truncated => "the MQTT packet is shorter than its fields",
            DecodeError::InvalidQoS => "a PUBLISH with QoS 3",
        })
    }
}

impl core::error::Error for DecodeError {}

/// The fixed header at the start of every packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedHeader {
    /// The first byte: packet type and flags.
    pub first: u8,
    /// The length of the rest of the packet, its body.
    pub remaining_len: usize,
    /// The length of the fixed header itself, 2 to 5 bytes.
    pub len: usize,
}

impl FixedHeader {
    /// Reads the fixed header at the start of `buf`, which may hold only part of it: then the
    /// answer is [`DecodeError::Incomplete`]. The body need not be there.
    pub fn decode(buf: &[u8]) -> Result<FixedHeader, DecodeError> {
        let mut r = Reader::new(buf);
        let first = r.u8().ok_or(DecodeError::Incomplete)?;
        let mut remaining_len = 0;
        for shift in [0, 7, 14, 21] {
            let byte = r.u8().ok_or(DecodeError::Incomplete)?;
            remaining_len |= usize::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(FixedHeader {
                    first,
                    remaining_len,
                    len: r.pos(),
                });
            }
        }
        Err(DecodeError::MalformedRemainingLength)
    }

    /// The packet type; `None` for the reserved 0 and 15.
    pub fn packet_type(&self) -> Option<PacketType> {
        PacketType::from_code(self.first >> 4)
    }

    /// The flags: the low four bits of the first byte.
    pub fn flags(&self) -> u8 {
        self.first & 0x0F
    }

    /// The length of the whole packet, header and body.
    pub fn packet_len(&self) -> usize {
        self.len + self.remaining_len
    }
}

/// Writes `len` as a remaining length (one to four bytes) at the start of `buf`; returns how
/// many bytes that took.
pub fn encode_remaining_length(len: usize, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf);
    write_remaining_length(&mut w, len)?;
    Ok(w.finish()?)
}

fn write_remaining_length(w: &mut Writer<'_>, mut len: usize) -> Result<(), EncodeError> {
    if len > MAX_REMAINING_LEN {
        return Err(EncodeError::PacketTooLong);
    }
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        w.u8(byte);
        if len == 0 {
            return Ok(());
        }
    }
}

/// Writes a fixed header: the first byte, then the remaining length.
fn write_fixed_header(
    w: &mut Writer<'_>,
    first: u8,
    remaining_len: usize,
) -> Result<(), EncodeError> {
    w.u8(first);
    write_remaining_length(w, remaining_len)
}

/// Length on the wire of a string or binary field: two length bytes, then the bytes.
fn field_len(bytes: &[u8]) -> Result<usize, EncodeError> {
    if bytes.len() > usize::from(u16::MAX) {
        return Err(EncodeError::StringTooLong);
    }
    Ok(2 + bytes.len())
}

/// Writes a string or binary field, whose length [`field_len`] has checked.
fn write_field(w: &mut Writer<'_>, bytes: &[u8]) {
    w.u16(bytes.len() as u16);
    w.put(bytes);
}

/// A packet a client receives, read by [`Packet::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// CONNACK.
    ConnAck(ConnAck),
    /// PUBLISH.
    Publish(Publish<'a>),
    /// PUBACK.
    PubAck(PubAck),
    /// SUBACK.
    SubAck(SubAck<'a>),
    /// PINGRESP.
    PingResp,
    /// A packet of another type, whose body is not read.
    Other(PacketType),
}

impl<'a> Packet<'a> {
    /// Reads the packet at the start of `buf`; returns it and its length, so that the next one
    /// starts there. [`DecodeError::Incomplete`] when `buf` ends before the packet does.
    pub fn decode(buf: &'a [u8]) -> Result<(Packet<'a>, usize), DecodeError> {
        let header = FixedHeader::decode(buf)?;
        let body = buf
            .get(header.len..header.packet_len())
            .ok_or(DecodeError::Incomplete)?;
        let packet = match header.packet_type() {
            None => return Err(DecodeError::ReservedPacketType),
            Some(PacketType::ConnAck) => Packet::ConnAck(ConnAck::decode(body)?),
            Some(PacketType::Publish) => Packet::Publish(Publish::decode(header.flags(), body)?),
            Some(PacketType::PubAck) => Packet::PubAck(PubAck::decode(body)?),
            Some(PacketType::SubAck) => Packet::SubAck(SubAck::decode(body)?),
            Some(PacketType::PingResp) => Packet::PingResp,
            Some(other) => Packet::Other(other),
        };
        Ok((packet, header.packet_len()))
    }
}
