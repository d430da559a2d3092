//! Firmware updates over MQTT: the gateway offers an image, the node asks for it piece by
//! piece, checks its signature, installs it and says how it went.
//!
//! ```text
//! gateway -> .../firmware  FirmwareOffer (retained)  "run this version: size, signature"
//! node    -> .../update    UpdateReport  fetching@0   "send me the piece at offset 0"
//! gateway -> .../chunk     FirmwareChunk @0          CHUNK_LEN bytes
//! node    -> .../update    UpdateReport  fetching@512 ... until the last piece
//! node    -> .../update    UpdateReport  installing  (signature good, rebooting into it)
//!            ... the node reports (status, telemetry) on the new image, then ...
//! node    -> .../update    UpdateReport  installed   (confirmed: no rollback any more)
//! ```
//!
//! The node asks for one piece at a time, by offset, so after a reconnect it simply asks
//! again for the piece it is missing. The signature is Ed25519 over the SHA-512 digest of
//! the image (the convention of embassy-boot's `verify_and_mark_updated`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Field, Reason};
use crate::message::FIRMWARE_LEN;

/// Largest piece of an image in one [`FirmwareChunk`], bytes.
///
/// A chunk message is this plus about 40 bytes, and its topic about 100: well inside a
/// node's 1 KiB MQTT receive buffer. It divides a flash page (4 KiB), so pieces never
/// straddle an erase.
pub const CHUNK_LEN: usize = 512;

/// Length of an Ed25519 signature, bytes.
pub const SIGNATURE_LEN: usize = 64;

/// A firmware version as nodes report it in [`crate::Status`] (for example `weir-node 0.2.0`).
pub type Version = heapless::String<FIRMWARE_LEN>;

/// Gateway -> node on `.../firmware`, retained: the image this node should run.
///
/// A node already running `version` ignores it; an empty retained payload withdraws it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareOffer {
    /// The image's version, as the node will report it once it runs it.
    pub version: Version,
    /// The image's length, bytes.
    pub size: u32,
    /// Ed25519 signature of the SHA-512 digest of the image, 64 bytes.
    pub signature: heapless::Vec<u8, SIGNATURE_LEN>,
}

impl FirmwareOffer {
    /// Checks the signature's length and that the image is not empty.
    pub fn validate(&self) -> Result<(), Error> {
        if self.signature.len() != SIGNATURE_LEN {
            return Err(Error::new(
                Field::Top("signature"),
                Reason::OutOfRange("exactly 64 bytes"),
            ));
        }
        if self.size == 0 {
            return Err(Error::new(
                Field::Top("size"),
                Reason::OutOfRange("at least 1 byte"),
            ));
        }
        Ok(())
    }

    /// The signature as an array (after [`FirmwareOffer::validate`]).
    pub fn signature_bytes(&self) -> [u8; SIGNATURE_LEN] {
        let mut s = [0u8; SIGNATURE_LEN];
        let n = self.signature.len().min(SIGNATURE_LEN);
        s[..n].copy_from_slice(&self.signature[..n]);
        s
    }
}

/// Gateway -> node on `.../chunk`: the bytes of image `version` from `offset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareChunk {
    /// Which image.
    pub version: Version,
    /// Where in the image the bytes start.
    pub offset: u32,
    /// At most [`CHUNK_LEN`] bytes; fewer only for the image's last piece.
    pub data: heapless::Vec<u8, CHUNK_LEN>,
}

impl FirmwareChunk {
    /// Checks the piece is not empty.
    pub fn validate(&self) -> Result<(), Error> {
        if self.data.is_empty() {
            return Err(Error::new(
                Field::Top("data"),
                Reason::OutOfRange("1 to 512 bytes"),
            ));
        }
        Ok(())
    }
}

/// Where a node is with an update, in an [`UpdateReport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Please send the piece of `version` at `offset`.
    Fetching,
    /// The whole image is in the node's second slot and its signature is good: the node
    /// restarts into it now.
    Installing,
    /// The node runs `version` and has reported on it: the update is final.
    Installed,
    /// The image is refused: its signature does not verify, or it is too large for the
    /// node's second slot. The node keeps its firmware.
    Refused,
    /// The node tried `version`, did not confirm it, and its boot loader went back to the
    /// previous image. It will not try that image again.
    RolledBack,
}

/// Node -> gateway on `.../update`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateReport {
    /// The image the report is about.
    pub version: Version,
    /// What happened.
    pub state: UpdateState,
    /// For [`UpdateState::Fetching`], the offset wanted; else 0.
    #[serde(default)]
    pub offset: u32,
}

/// What an image carries to say its version: this tag, the version (at most
/// [`FIRMWARE_LEN`] bytes), then a NUL byte. The gateway reads it when an image is added;
/// the simulator's images start with it; a board's firmware holds it as a constant.
pub const VERSION_TAG: &[u8] = b"weir-firmware-version=";

/// The version an image declares with its first [`VERSION_TAG`], if any.
pub fn declared_version(image: &[u8]) -> Option<&str> {
    let at = image
        .windows(VERSION_TAG.len())
        .position(|w| w == VERSION_TAG)?;
    let rest = &image[at + VERSION_TAG.len()..];
    let end = rest.iter().take(FIRMWARE_LEN + 1).position(|&b| b == 0)?;
    let v = core::str::from_utf8(&rest[..end]).ok()?;
    (!v.is_empty()).then_some(v)
}

/// A version from text, cut to [`FIRMWARE_LEN`] bytes (at a character boundary).
pub fn version(text: &str) -> Version {
    let mut v = Version::new();
    for c in text.chars() {
        if v.push(c).is_err() {
            break;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Encoding, Message};

    fn offer() -> FirmwareOffer {
        FirmwareOffer {
            version: version("weir-node 0.2.0"),
            size: 200_000,
            signature: heapless::Vec::from_slice(&[7u8; 64]).unwrap(),
        }
    }

    #[test]
    fn firmware_messages_round_trip_in_both_encodings() {
        let chunk = FirmwareChunk {
            version: version("weir-node 0.2.0"),
            offset: 1024,
            data: heapless::Vec::from_slice(&[0xA5; CHUNK_LEN]).unwrap(),
        };
        let report = UpdateReport {
            version: version("weir-node 0.2.0"),
            state: UpdateState::Fetching,
            offset: 512,
        };
        let mut buf = [0u8; 4096];
        for enc in [Encoding::Binary, Encoding::Json] {
            let n = offer().encode(enc, &mut buf).unwrap();
            assert_eq!(FirmwareOffer::decode(&buf[..n]).unwrap(), offer());
            let n = chunk.encode(enc, &mut buf).unwrap();
            assert_eq!(FirmwareChunk::decode(&buf[..n]).unwrap(), chunk);
            let n = report.encode(enc, &mut buf).unwrap();
            assert_eq!(UpdateReport::decode(&buf[..n]).unwrap(), report);
        }
    }

    #[test]
    fn a_full_chunk_fits_a_node_receive_buffer_with_its_topic() {
        let chunk = FirmwareChunk {
            version: version("weir-node 0.2.0-rc.1+abcdefg"),
            offset: u32::MAX,
            data: heapless::Vec::from_slice(&[0xFF; CHUNK_LEN]).unwrap(),
        };
        let mut buf = [0u8; 1024];
        let n = chunk.encode(Encoding::Binary, &mut buf).unwrap();
        // The board keeps packets of up to 1024 bytes: fixed header, topic, packet id.
        assert!(
            n + crate::topic::MAX_TOPIC_LEN + 9 <= 1024,
            "{n} bytes of chunk"
        );
    }

    #[test]
    fn an_offer_with_a_short_signature_is_refused_naming_the_field() {
        let json = br#"{"version":"v2","size":10,"signature":[1,2,3]}"#;
        let err = FirmwareOffer::decode(json).unwrap_err();
        assert_eq!(err.field, Field::Top("signature"));
        let empty = br#"{"version":"v2","offset":0,"data":[]}"#;
        assert_eq!(
            FirmwareChunk::decode(empty).unwrap_err().field,
            Field::Top("data")
        );
    }
}
