//! Simulated firmware images: a blob that starts with the contract's version tag, then,
//! for an image made to fail, a "bad" mark (a simulated node on such an image never
//! reports, as a real one that cannot connect, so the boot loader rolls it back), then
//! filler bytes to the wanted size.

use weir_contract::firmware::{declared_version, VERSION_TAG};

/// The mark of an image made to fail, right after the version tag.
pub const BAD_MARK: &[u8] = b"weir-sim-bad-image\0";

/// A simulated image of `version`, `len` bytes (at least the header's).
pub fn build(version: &str, bad: bool, len: usize) -> Vec<u8> {
    let mut image = VERSION_TAG.to_vec();
    image.extend_from_slice(version.as_bytes());
    image.push(0);
    if bad {
        image.extend_from_slice(BAD_MARK);
    }
    let mut x: u32 = 0x9E37_79B9 ^ len as u32;
    while image.len() < len {
        // Filler that differs from page to page, so a misplaced page would show.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image.push(x as u8);
    }
    image
}

/// What the ACTIVE slot runs: its version, and whether it is made to fail. `None` if it
/// holds no image (an erased slot).
pub fn describe(active: &[u8]) -> Option<(String, bool)> {
    if !active.starts_with(VERSION_TAG) {
        return None;
    }
    let version = declared_version(active)?.to_string();
    let after = VERSION_TAG.len() + version.len() + 1;
    Some((version, active[after..].starts_with(BAD_MARK)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_says_its_version_and_whether_it_is_bad() {
        let good = build("weir-node 0.2.0", false, 4096);
        assert_eq!(good.len(), 4096);
        assert_eq!(describe(&good), Some(("weir-node 0.2.0".into(), false)));
        let bad = build("weir-node 0.2.1", true, 5000);
        assert_eq!(describe(&bad), Some(("weir-node 0.2.1".into(), true)));
        assert_eq!(describe(&[0xFF; 64]), None);
    }
}
