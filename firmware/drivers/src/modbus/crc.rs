//! CRC-16/MODBUS, the check field of every RTU frame.

/// CRC-16/MODBUS of `bytes`: polynomial 0x8005 reflected (0xA001), initial value 0xFFFF.
///
/// In a frame the CRC follows the data, low byte first.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in bytes {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            // Bitwise rather than a 512-byte table: the smallest nodes have little flash.
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Appends the CRC of `frame[..len]` at `frame[len..len + 2]`, low byte first; returns the
/// new length.
pub(crate) fn append(frame: &mut [u8], len: usize) -> usize {
    let [lo, hi] = crc16(&frame[..len]).to_le_bytes();
    frame[len] = lo;
    frame[len + 1] = hi;
    len + 2
}

/// Whether the last two bytes of `frame` are the CRC of the bytes before them.
pub(crate) fn is_valid(frame: &[u8]) -> bool {
    match frame.len().checked_sub(2) {
        Some(n) => crc16(&frame[..n]).to_le_bytes() == [frame[n], frame[n + 1]],
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_catalogued_check_value() {
        // The CRC catalogue's check value for CRC-16/MODBUS over the ASCII digits 1-9.
        assert_eq!(crc16(b"123456789"), 0x4B37);
    }

    #[test]
    fn crc_of_the_modbus_specification_example_request_is_c5_cd() {
        let mut frame = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0, 0];
        assert_eq!(append(&mut frame, 6), 8);
        assert_eq!(frame[6..], [0xC5, 0xCD]);
        assert!(is_valid(&frame));
    }

    #[test]
    fn a_frame_with_one_flipped_bit_fails_the_check() {
        let mut frame = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
        frame[3] ^= 0x10;
        assert!(!is_valid(&frame));
        assert!(!is_valid(&[0x01]));
    }
}
