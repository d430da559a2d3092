//! How the node lays out its own flash records (not the wire format: that is the contract's).
//!
//! * A reading waiting for its publication: the timestamp, which quantities have a sample and
//!   which of those are faults, then per sample an `f64` (full precision until the message
//!   is built) or a fault index.
//! * A queued message: a fixed header the node can read without decoding the payload
//!   (identity, reading count, last timestamp), then the payload exactly as published.

use weir_contract::{Fault, Quantity, Reading, Sample, Timestamp};

/// Largest reading record, in bytes.
pub(crate) const READING_RECORD_MAX: usize = 8 + 2 + Quantity::COUNT * 8;

/// Length of a message record's header, in bytes.
pub(crate) const MESSAGE_HEADER_LEN: usize = 18;

/// Writes `r` into `buf`; returns the length.
pub(crate) fn encode_reading(r: &Reading, buf: &mut [u8; READING_RECORD_MAX]) -> usize {
    buf[..8].copy_from_slice(&r.ts.unix().to_le_bytes());
    let (mut present, mut faulty) = (0u8, 0u8);
    let mut at = 10;
    for (q, sample) in r.samples() {
        present |= 1 << q.index();
        match sample {
            Sample::Value(v) => {
                buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
                at += 8;
            }
            Sample::Fault(f) => {
                faulty |= 1 << q.index();
                buf[at] = fault_index(f);
                at += 1;
            }
        }
    }
    buf[8] = present;
    buf[9] = faulty;
    at
}

/// Reads a reading record; `None` if it is malformed.
pub(crate) fn decode_reading(bytes: &[u8]) -> Option<Reading> {
    let ts = i64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let (present, faulty) = (*bytes.get(8)?, *bytes.get(9)?);
    let mut r = Reading::new(Timestamp::from_unix(ts));
    let mut at = 10;
    for q in Quantity::ALL {
        let bit = 1 << q.index();
        if present & bit == 0 {
            continue;
        }
        let sample = if faulty & bit != 0 {
            let f = *Fault::ALL.get(usize::from(*bytes.get(at)?))?;
            at += 1;
            Sample::Fault(f)
        } else {
            let v = f64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
            at += 8;
            Sample::Value(v)
        };
        r.set(q, Some(sample));
    }
    (at == bytes.len()).then_some(r)
}

fn fault_index(f: Fault) -> u8 {
    Fault::ALL.iter().position(|x| *x == f).unwrap_or(0) as u8
}

/// The fixed part of a queued message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MessageHeader {
    /// Boot counter of the message.
    pub boot: u32,
    /// Sequence number within the boot.
    pub seq: u32,
    /// Readings in the message.
    pub count: u16,
    /// Timestamp of its last reading, Unix seconds.
    pub last_ts: i64,
}

impl MessageHeader {
    /// The message's identity; messages are queued in this order.
    pub fn id(&self) -> (u32, u32) {
        (self.boot, self.seq)
    }

    pub fn write(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&self.boot.to_le_bytes());
        buf[4..8].copy_from_slice(&self.seq.to_le_bytes());
        buf[8..10].copy_from_slice(&self.count.to_le_bytes());
        buf[10..18].copy_from_slice(&self.last_ts.to_le_bytes());
    }

    pub fn read(bytes: &[u8]) -> Option<Self> {
        let b = bytes.get(..MESSAGE_HEADER_LEN)?;
        Some(MessageHeader {
            boot: u32::from_le_bytes(b[0..4].try_into().ok()?),
            seq: u32::from_le_bytes(b[4..8].try_into().ok()?),
            count: u16::from_le_bytes(b[8..10].try_into().ok()?),
            last_ts: i64::from_le_bytes(b[10..18].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_records_keep_values_faults_and_gaps_exactly() {
        let r = Reading::new(Timestamp::from_unix(1_790_000_123))
            .with(Quantity::Flow, 1.234_567_890_123)
            .with(Quantity::Volume, 10_234.5)
            .with_fault(Quantity::Turbidity, Fault::Checksum)
            .with(Quantity::Rssi, -71.0);
        let mut buf = [0; READING_RECORD_MAX];
        let len = encode_reading(&r, &mut buf);
        assert_eq!(len, 8 + 2 + 3 * 8 + 1);
        assert_eq!(decode_reading(&buf[..len]), Some(r));
        assert_eq!(decode_reading(&buf[..len - 1]), None);
    }

    #[test]
    fn a_full_reading_fits_the_largest_record() {
        let mut r = Reading::new(Timestamp::from_unix(1_790_000_000));
        for q in Quantity::ALL {
            r.set(q, Some(Sample::Value(1.0)));
        }
        let mut buf = [0; READING_RECORD_MAX];
        assert_eq!(encode_reading(&r, &mut buf), READING_RECORD_MAX);
    }

    #[test]
    fn message_headers_round_trip() {
        let h = MessageHeader {
            boot: 7,
            seq: 1042,
            count: 5,
            last_ts: 1_790_000_000,
        };
        let mut buf = [0; MESSAGE_HEADER_LEN];
        h.write(&mut buf);
        assert_eq!(MessageHeader::read(&buf), Some(h));
    }
}
