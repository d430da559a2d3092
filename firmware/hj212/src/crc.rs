//! The CRC-16 of HJ 212-2017 appendix A.
//!
//! The appendix calls it "ANSI CRC16": register 0xFFFF, polynomial 0xA001 shifted right, but
//! each byte is XORed into the register's *high* byte moved down (`reg = (reg >> 8) ^ byte`),
//! so the register's low byte is dropped at every byte. It is therefore not CRC-16/MODBUS
//! (`reg ^= byte`), which is what a generic "CRC-16 0xA001" routine computes: for the check
//! string `123456789` this one gives 0x2F80 where CRC-16/MODBUS gives 0x4B37.

/// The HJ 212 CRC-16 of `data` (the data segment, from `QN=` or `ST=` to the closing `&&`).
///
/// Written from the ten steps of HJ 212-2017 appendix A: start with 0xFFFF; for each byte, XOR
/// it with the register's high byte and put that in the register; then eight times: note the
/// lowest bit, shift right by one, and XOR with 0xA001 if the noted bit was 1.
pub fn crc16(data: &[u8]) -> u16 {
    let mut register: u16 = 0xFFFF;
    for &byte in data {
        register = (register >> 8) ^ u16::from(byte);
        for _ in 0..8 {
            let carry = register & 1;
            register >>= 1;
            if carry == 1 {
                register ^= 0xA001;
            }
        }
    }
    register
}
