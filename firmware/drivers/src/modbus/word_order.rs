//! How a device spreads a 32-bit value over two 16-bit registers.

/// Order of the four bytes of a 32-bit value across two registers, named by where the bytes
/// `A B C D` of the big-endian value land (`A` most significant).
///
/// The Modbus specification only fixes the byte order inside one register (big-endian), so
/// vendors differ: `Abcd` is the common default, `Cdab` ("word swapped", "float inverse") is
/// the other one met in the field; the byte-swapped two are rare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WordOrder {
    /// First register `A B`, second `C D`: big-endian throughout.
    #[default]
    Abcd,
    /// First register `C D`, second `A B`: low word first.
    Cdab,
    /// First register `B A`, second `D C`: bytes swapped within each register.
    Badc,
    /// First register `D C`, second `B A`: little-endian throughout.
    Dcba,
}

impl WordOrder {
    /// The four bytes `[A, B, C, D]` carried by `registers` (in the order they were read).
    pub fn bytes(self, registers: [u16; 2]) -> [u8; 4] {
        let [r0h, r0l] = registers[0].to_be_bytes();
        let [r1h, r1l] = registers[1].to_be_bytes();
        match self {
            WordOrder::Abcd => [r0h, r0l, r1h, r1l],
            WordOrder::Cdab => [r1h, r1l, r0h, r0l],
            WordOrder::Badc => [r0l, r0h, r1l, r1h],
            WordOrder::Dcba => [r1l, r1h, r0l, r0h],
        }
    }

    /// The IEEE 754 single-precision float carried by `registers`.
    pub fn f32(self, registers: [u16; 2]) -> f32 {
        f32::from_be_bytes(self.bytes(registers))
    }

    /// The unsigned 32-bit integer carried by `registers`.
    pub fn u32(self, registers: [u16; 2]) -> u32 {
        u32::from_be_bytes(self.bytes(registers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 0x40490FDB is pi as an f32: four distinct bytes, so any mix-up shows.
    const PI_BITS: u32 = 0x4049_0FDB;

    #[test]
    fn each_word_order_puts_the_bytes_of_pi_back_together() {
        for (order, registers) in [
            (WordOrder::Abcd, [0x4049, 0x0FDB]),
            (WordOrder::Cdab, [0x0FDB, 0x4049]),
            (WordOrder::Badc, [0x4940, 0xDB0F]),
            (WordOrder::Dcba, [0xDB0F, 0x4940]),
        ] {
            assert_eq!(order.u32(registers), PI_BITS, "{order:?}");
            assert_eq!(order.f32(registers), core::f32::consts::PI, "{order:?}");
        }
    }
}
