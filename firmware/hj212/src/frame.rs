//! The frame around a data segment: `##`, four-digit length, segment, four-hex-digit CRC,
//! `\r\n` (HJ 212-2017 table 2).

use crate::crc::crc16;
use crate::error::{DecodeError, EncodeError};
use crate::{FRAME_OVERHEAD, MAX_SEGMENT_LEN};

/// Offset of the data segment in a frame.
pub(crate) const SEGMENT_AT: usize = 6;

/// The whole length of the frame that starts `buf`, once its first six bytes (`##` and the
/// length) are there: `Ok(None)` until then. For cutting frames out of a TCP stream: read until
/// this many bytes are buffered, then [`decode_frame`] or
/// [`Packet::decode`](crate::Packet::decode) them.
///
/// Refuses at once a start other than `##` and a length that is not four digits or is over
/// 1024, so that a reader does not wait for bytes that will never make a frame.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.iter().take(2).any(|&b| b != b'#') {
        return Err(DecodeError::BadStart);
    }
    let Some(digits) = buf.get(2..SEGMENT_AT) else {
        return Ok(None);
    };
    let mut len = 0usize;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(DecodeError::BadLength);
        }
        len = len * 10 + usize::from(d - b'0');
    }
    if len > MAX_SEGMENT_LEN {
        return Err(DecodeError::SegmentTooLong { len });
    }
    Ok(Some(len + FRAME_OVERHEAD))
}

/// Checks one whole frame (length, `\r\n`, CRC) and returns its data segment.
///
/// The CRC may be written in upper or lower case; the standard's example uses upper case.
pub fn decode_frame(frame: &[u8]) -> Result<&str, DecodeError> {
    let needed = frame_len(frame)?.unwrap_or(FRAME_OVERHEAD);
    if frame.len() < needed {
        return Err(DecodeError::Truncated {
            len: frame.len(),
            needed,
        });
    }
    if frame.len() > needed {
        return Err(DecodeError::TooLong {
            len: frame.len(),
            expected: needed,
        });
    }
    let crc_at = needed - 6;
    if &frame[needed - 2..] != b"\r\n" {
        return Err(DecodeError::BadEnd);
    }
    let sent = parse_hex4(&frame[crc_at..needed - 2]).ok_or(DecodeError::BadCrcDigits)?;
    let segment = &frame[SEGMENT_AT..crc_at];
    let computed = crc16(segment);
    if sent != computed {
        return Err(DecodeError::CrcMismatch { sent, computed });
    }
    core::str::from_utf8(segment).map_err(|e| DecodeError::NotUtf8 {
        at: SEGMENT_AT + e.valid_up_to(),
    })
}

/// Writes `segment` framed into `out` and returns the frame's length.
///
/// It does not look inside the segment: [`Packet::encode`](crate::Packet::encode) is the way
/// to write a checked packet. This is for relaying a segment as it is, and for tests.
pub fn encode_frame(segment: &[u8], out: &mut [u8]) -> Result<usize, EncodeError> {
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(EncodeError::SegmentTooLong { len: segment.len() });
    }
    let needed = segment.len() + FRAME_OVERHEAD;
    let Some(out) = out.get_mut(..needed) else {
        return Err(EncodeError::BufferTooSmall { needed });
    };
    out[SEGMENT_AT..SEGMENT_AT + segment.len()].copy_from_slice(segment);
    seal(out);
    Ok(needed)
}

/// Writes the head and tail around the segment already in `frame[6..len - 6]`; `frame` is
/// exactly one frame long (at most 1036 bytes).
pub(crate) fn seal(frame: &mut [u8]) {
    let n = frame.len() - FRAME_OVERHEAD;
    frame[0] = b'#';
    frame[1] = b'#';
    write_digits(&mut frame[2..SEGMENT_AT], n, 10);
    let crc_at = frame.len() - 6;
    let crc = crc16(&frame[SEGMENT_AT..crc_at]);
    write_digits(&mut frame[crc_at..crc_at + 4], usize::from(crc), 16);
    frame[crc_at + 4] = b'\r';
    frame[crc_at + 5] = b'\n';
}

/// `value` in `radix` (10 or 16, upper case), zero-padded to fill `out`.
fn write_digits(out: &mut [u8], mut value: usize, radix: usize) {
    for slot in out.iter_mut().rev() {
        *slot = b"0123456789ABCDEF"[value % radix];
        value /= radix;
    }
}

fn parse_hex4(text: &[u8]) -> Option<u16> {
    text.iter().try_fold(0u16, |n, &c| {
        let d = char::from(c).to_digit(16)?;
        Some((n << 4) | d as u16)
    })
}
