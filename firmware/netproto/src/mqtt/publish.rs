//! PUBLISH (3.3) and its QoS 1 acknowledgement, PUBACK (3.4).

use super::{
    field_len, write_field, write_fixed_header, DecodeError, EncodeError, PacketType, QoS,
};
use crate::bytes::{Reader, Writer};

const DUP: u8 = 0x08;
const QOS_SHIFT: u8 = 1;
const RETAIN: u8 = 0x01;

/// A PUBLISH packet, sent or received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publish<'a> {
    /// The topic name's bytes. MQTT requires UTF-8; they are not checked here, since a client
    /// compares them byte for byte with the topics it knows.
    pub topic: &'a [u8],
    /// The QoS it is delivered with.
    pub qos: QoS,
    /// Whether the broker retains it (sent), or it is a retained message (received).
    pub retain: bool,
    /// It may be a resend of one delivered before.
    pub dup: bool,
    /// The packet id: one for QoS 1 and 2 (not 0 when sent), none for QoS 0.
    pub packet_id: Option<u16>,
    /// The message.
    pub payload: &'a [u8],
}

impl<'a> Publish<'a> {
    /// Writes the packet without its payload at the start of `buf`: the fixed header, the
    /// topic and the packet id. Returns its length; the payload is to be sent right after it.
    pub fn encode_header(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let with_id = self.qos != QoS::AtMostOnce;
        if self.packet_id.is_some() != with_id || self.packet_id == Some(0) {
            return Err(EncodeError::InvalidPacketId);
        }
        let variable = field_len(self.topic)? + if with_id { 2 } else { 0 };
        let body = variable
            .checked_add(self.payload.len())
            .ok_or(EncodeError::PacketTooLong)?;
        let mut first = ((PacketType::Publish as u8) << 4) | ((self.qos as u8) << QOS_SHIFT);
        if self.dup {
            first |= DUP;
        }
        if self.retain {
            first |= RETAIN;
        }
        let mut w = Writer::new(buf);
        write_fixed_header(&mut w, first, body)?;
        write_field(&mut w, self.topic);
        if let Some(id) = self.packet_id {
            w.u16(id);
        }
        Ok(w.finish()?)
    }

    /// Writes the whole packet at the start of `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let header = self.encode_header(buf)?;
        let end = header + self.payload.len();
        buf.get_mut(header..end)
            .ok_or(EncodeError::BufferTooSmall)?
            .copy_from_slice(self.payload);
        Ok(end)
    }

    /// Reads a PUBLISH: `flags` are the low four bits of its first byte, `body` the bytes
    /// after its fixed header. The payload is whatever follows the topic and packet id.
    pub fn decode(flags: u8, body: &'a [u8]) -> Result<Publish<'a>, DecodeError> {
        let qos = QoS::from_code((flags >> QOS_SHIFT) & 0x03).ok_or(DecodeError::InvalidQoS)?;
        let mut r = Reader::new(body);
        let topic_len = r.u16().ok_or(DecodeError::Truncated)?;
        let topic = r
            .take(usize::from(topic_len))
            .ok_or(DecodeError::Truncated)?;
        let packet_id = if qos == QoS::AtMostOnce {
            None
        } else {
            Some(r.u16().ok_or(DecodeError::Truncated)?)
        };
        Ok(Publish {
            topic,
            qos,
            retain: flags & RETAIN != 0,
            dup: flags & DUP != 0,
            packet_id,
            payload: r.rest(),
        })
    }
}

/// A PUBACK packet: acknowledges the QoS 1 PUBLISH with the same packet id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PubAck {
    /// The packet id of the PUBLISH it acknowledges.
    pub packet_id: u16,
}

impl PubAck {
    /// The packet's four bytes.
    pub fn to_bytes(&self) -> [u8; 4] {
        let [hi, lo] = self.packet_id.to_be_bytes();
        [(PacketType::PubAck as u8) << 4, 2, hi, lo]
    }

    /// Reads a PUBACK's body (the bytes after its fixed header).
    pub fn decode(body: &[u8]) -> Result<PubAck, DecodeError> {
        let packet_id = Reader::new(body).u16().ok_or(DecodeError::Truncated)?;
        Ok(PubAck { packet_id })
    }
}
