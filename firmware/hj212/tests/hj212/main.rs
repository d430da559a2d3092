//! HJ 212 frames against the standard's own examples, frames published by others, and
//! arbitrary input: every refusal names its field or position, and no input makes the decoder
//! panic.

mod crc;
mod properties;
mod published;
mod refusals;
mod roundtrip;
mod standard;

use weir_hj212::{encode_frame, MAX_FRAME_LEN};

/// `segment` in a frame with the right length and CRC.
pub fn frame(segment: &str) -> Vec<u8> {
    let mut out = vec![0; MAX_FRAME_LEN];
    let len = encode_frame(segment.as_bytes(), &mut out).expect("segment fits a frame");
    out.truncate(len);
    out
}
