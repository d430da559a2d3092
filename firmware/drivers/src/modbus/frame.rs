//! Building read requests and checking their answers.

use super::{crc, RegisterKind, MAX_READ_REGISTERS};

/// Length of a read request: address, function, start address, count, CRC.
pub(crate) const REQUEST_LEN: usize = 8;

/// Why an answer was refused (the frame-level part of [`super::Error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Checksum,
    Exception(u8),
    Malformed,
}

/// Whether `slave` and `count` make a valid read request.
pub(crate) fn is_valid_read(slave: u8, count: usize) -> bool {
    // 0 is the broadcast address, which reads cannot use; 248-255 are reserved.
    (1..=247).contains(&slave) && (1..=MAX_READ_REGISTERS).contains(&count)
}

/// The request reading `count` registers of `kind` from `slave` at `address`.
pub(crate) fn read_request(
    slave: u8,
    kind: RegisterKind,
    address: u16,
    count: u16,
) -> [u8; REQUEST_LEN] {
    let [ah, al] = address.to_be_bytes();
    let [ch, cl] = count.to_be_bytes();
    let mut frame = [slave, kind.function(), ah, al, ch, cl, 0, 0];
    crc::append(&mut frame, 6);
    frame
}

/// The full length of the answer whose first bytes are `head`, once enough of it is known.
///
/// `None` while fewer than three bytes arrived, or when the function byte is not one the
/// request can be answered with; then the receiver reads until the line falls silent.
pub(crate) fn expected_len(function: u8, head: &[u8]) -> Option<usize> {
    match head {
        [_, f, ..] if *f == function | 0x80 => Some(5),
        [_, f, count, ..] if *f == function => Some(5 + usize::from(*count)),
        _ => None,
    }
}

/// Checks `frame` as the answer of `slave` to a read with `function` and fills `out`.
pub(crate) fn parse_read_response(
    frame: &[u8],
    slave: u8,
    function: u8,
    out: &mut [u16],
) -> Result<(), Refusal> {
    // Fewer than 4 bytes cannot be a frame: typically a glitch as a transceiver switches.
    if frame.len() < 4 || !crc::is_valid(frame) {
        return Err(Refusal::Checksum);
    }
    let body = &frame[..frame.len() - 2];
    if body[0] != slave {
        return Err(Refusal::Malformed);
    }
    if body[1] == function | 0x80 {
        return match body {
            [_, _, code] => Err(Refusal::Exception(*code)),
            _ => Err(Refusal::Malformed),
        };
    }
    let data = match body {
        [_, f, count, data @ ..]
            if *f == function
                && usize::from(*count) == 2 * out.len()
                && data.len() == 2 * out.len() =>
        {
            data
        }
        _ => return Err(Refusal::Malformed),
    };
    for (register, bytes) in out.iter_mut().zip(data.chunks_exact(2)) {
        *register = u16::from_be_bytes([bytes[0], bytes[1]]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_request_matches_the_modbus_specification_example() {
        assert_eq!(
            read_request(0x01, RegisterKind::Holding, 0x0000, 10),
            [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD]
        );
    }

    #[test]
    fn answer_length_is_known_from_the_third_byte() {
        assert_eq!(expected_len(0x03, &[0x01, 0x03]), None);
        assert_eq!(expected_len(0x03, &[0x01, 0x03, 0x04]), Some(9));
        assert_eq!(expected_len(0x03, &[0x01, 0x83, 0x02]), Some(5));
        assert_eq!(expected_len(0x03, &[0x01, 0x04, 0x04]), None);
    }

    #[test]
    fn a_published_flow_meter_answer_parses_to_its_registers() {
        // From a flow meter manual: two registers 0x0651 0x3F9E, word-swapped 1.2345678.
        let frame = [0x01, 0x03, 0x04, 0x06, 0x51, 0x3F, 0x9E, 0x3B, 0x32];
        let mut out = [0u16; 2];
        parse_read_response(&frame, 0x01, 0x03, &mut out).unwrap();
        assert_eq!(out, [0x0651, 0x3F9E]);
    }

    #[test]
    fn a_valid_frame_with_too_few_registers_is_malformed() {
        let mut frame = [0x01, 0x03, 0x02, 0x00, 0x07, 0, 0];
        crc::append(&mut frame, 5);
        let mut out = [0u16; 2];
        assert_eq!(
            parse_read_response(&frame, 0x01, 0x03, &mut out),
            Err(Refusal::Malformed)
        );
    }
}
