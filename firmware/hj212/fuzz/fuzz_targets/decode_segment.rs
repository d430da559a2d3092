//! Any text as a data segment, past the frame and its CRC: no panic, and whatever decodes
//! encodes back into a frame around the same segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_hj212::{Cp, Packet};

fuzz_target!(|data: &[u8]| {
    let Ok(segment) = core::str::from_utf8(data) else {
        return;
    };
    let _ = Cp::parse(segment);
    if let Ok(packet) = Packet::decode_segment(segment) {
        let frame = packet.to_frame().expect("a decoded packet encodes");
        assert_eq!(&frame[6..frame.len() - 6], data);
        for item in packet.cp.items() {
            let _ = item.value;
        }
    }
});
