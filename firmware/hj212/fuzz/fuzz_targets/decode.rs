//! Any bytes through the frame reader and the decoder: no panic, and whatever decodes encodes
//! back to the same bytes (the CRC's case aside).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_hj212::{frame_len, Packet};

fuzz_target!(|data: &[u8]| {
    let _ = frame_len(data);
    if let Ok(packet) = Packet::decode(data) {
        let again = packet.to_frame().expect("a decoded packet encodes");
        assert!(again.eq_ignore_ascii_case(data));
        assert_eq!(&again[..again.len() - 6], &data[..data.len() - 6]);
        for item in packet.cp.items() {
            let _ = item.flag;
        }
        let _ = packet.cp.data_time();
        let _ = packet.data_answer().to_frame();
    }
});
