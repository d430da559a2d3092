//! UF2, the USB drag-and-drop flashing format of the RP2040's boot ROM (and many others):
//! 512-byte blocks, each carrying 256 bytes for one flash address.
//! <https://github.com/microsoft/uf2> describes the format.
const MAGIC_START0: u32 = 0x0A32_4655;
const MAGIC_START1: u32 = 0x9E5D_5157;
const MAGIC_END: u32 = 0x0AB1_6F30;
const FLAG_FAMILY_ID: u32 = 0x0000_2000;
/// Payload bytes per block.
pub const PAYLOAD: usize = 256;

/// `data`, to be written from `addr`, as UF2 blocks for chips of `family`.
pub fn encode(data: &[u8], addr: u32, family: u32) -> Vec<u8> {
    let chunks: Vec<&[u8]> = data.chunks(PAYLOAD).collect();
    let mut out = Vec::with_capacity(chunks.len() * 512);
    for (i, chunk) in chunks.iter().enumerate() {
        let mut block = [0u8; 512];
        let words = [
            MAGIC_START0,
            MAGIC_START1,
            FLAG_FAMILY_ID,
            addr + (i * PAYLOAD) as u32,
            PAYLOAD as u32,
            i as u32,
            chunks.len() as u32,
            family,
        ];
        for (j, w) in words.iter().enumerate() {
            block[j * 4..j * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        block[32..32 + chunk.len()].copy_from_slice(chunk);
        block[508..].copy_from_slice(&MAGIC_END.to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}
