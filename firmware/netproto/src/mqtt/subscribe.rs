//! SUBSCRIBE (3.8) and its answer, SUBACK (3.9).

use super::{
    field_len, write_field, write_fixed_header, DecodeError, EncodeError, PacketType, QoS,
};
use crate::bytes::{Reader, Writer};

/// SUBSCRIBE's fixed header flags: reserved, but required to be 0010.
const SUBSCRIBE_FLAGS: u8 = 0x02;

/// A SUBSCRIBE packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// The packet id, not 0; the SUBACK carries it back.
    pub packet_id: u16,
    /// The topic filters, each with the highest QoS the client takes on it; at least one.
    pub filters: &'a [(&'a str, QoS)],
}

impl Subscribe<'_> {
    /// Writes the packet at the start of `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::InvalidPacketId);
        }
        if self.filters.is_empty() {
            return Err(EncodeError::NoTopicFilters);
        }
        let mut body = 2;
        for (filter, _) in self.filters {
            body += field_len(filter.as_bytes())? + 1;
        }
        let mut w = Writer::new(buf);
        write_fixed_header(
            &mut w,
            ((PacketType::Subscribe as u8) << 4) | SUBSCRIBE_FLAGS,
            body,
        )?;
        w.u16(self.packet_id);
        for (filter, qos) in self.filters {
            write_field(&mut w, filter.as_bytes());
            w.u8(*qos as u8);
        }
        Ok(w.finish()?)
    }
}

/// A SUBACK packet: the broker's answer to SUBSCRIBE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubAck<'a> {
    /// The packet id of the SUBSCRIBE it answers.
    pub packet_id: u16,
    /// One code per topic filter, in the SUBSCRIBE's order: the QoS granted (0 to 2), or
    /// [`SubAck::FAILURE`]. Returned as sent.
    pub return_codes: &'a [u8],
}

impl<'a> SubAck<'a> {
    /// The return code of a refused subscription. A code with this bit set counts as a
    /// refusal.
    pub const FAILURE: u8 = 0x80;

    /// Every subscription was granted (no return code has [`SubAck::FAILURE`]'s bit).
    pub fn all_granted(&self) -> bool {
        self.return_codes.iter().all(|&rc| rc & Self::FAILURE == 0)
    }

    /// Reads a SUBACK's body (the bytes after its fixed header): a packet id and at least one
    /// return code.
    pub fn decode(body: &'a [u8]) -> Result<SubAck<'a>, DecodeError> {
        let mut r = Reader::new(body);
        let packet_id = r.u16().ok_or(DecodeError::Truncated)?;
        let return_codes = r.rest();
        if return_codes.is_empty() {
            return Err(DecodeError::Truncated);
        }
        Ok(SubAck {
            packet_id,
            return_codes,
        })
    }
}
