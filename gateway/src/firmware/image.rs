//! Signed firmware images: the county's Ed25519 keys, signing, checking, and the version an
//! image carries.
//!
//! A signature is Ed25519 over the SHA-512 digest of the image's bytes (as embassy-boot's
//! `verify_and_mark_updated` expects and the nodes check). The private key never has to be
//! on the gateway: sign on another machine with `weir firmware sign`, or with OpenSSL
//! (docs/operations.md).

use std::path::Path;

use anyhow::Context as _;
use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};
use sha2::Digest as _;

pub use weir_contract::firmware::VERSION_TAG;

/// The version an image declares in its version tag, if any.
pub fn declared_version(image: &[u8]) -> Option<String> {
    weir_contract::firmware::declared_version(image).map(str::to_string)
}

/// The bytes of a version tag, for a build script or a simulated image.
pub fn version_tag(version: &str) -> Vec<u8> {
    let mut t = VERSION_TAG.to_vec();
    t.extend_from_slice(version.as_bytes());
    t.push(0);
    t
}

/// A public key from 64 hex digits (as `weir firmware keygen` prints it).
pub fn parse_public_key(hex_key: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(hex_key.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .with_context(|| {
            format!("{hex_key:?} is not an Ed25519 public key: 64 hex digits expected")
        })?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// SHA-512 of an image: what is signed.
pub fn digest(image: &[u8]) -> [u8; 64] {
    ed25519_compact::sha512::Hash::hash(image)
}

/// SHA-256 of an image, hex: for people comparing files.
pub fn sha256_hex(image: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(image))
}

/// Whether `signature` (64 bytes) signs `image` for `public_key`.
pub fn verify(public_key: &[u8; 32], image: &[u8], signature: &[u8]) -> bool {
    let Ok(sig) = Signature::from_slice(signature) else {
        return false;
    };
    PublicKey::new(*public_key)
        .verify(digest(image), &sig)
        .is_ok()
}

/// A new key pair: (secret seed, public key), each as hex.
pub fn generate() -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let pair = KeyPair::from_seed(Seed::new(seed));
    (hex::encode(seed), hex::encode(*pair.pk))
}

/// Reads a secret key file (64 hex digits of seed, as `weir firmware keygen` writes).
pub fn read_secret(path: &Path) -> anyhow::Result<KeyPair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the signing key {}", path.display()))?;
    let seed = hex::decode(text.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .with_context(|| {
            format!(
                "{} is not a Weir signing key: 64 hex digits expected",
                path.display()
            )
        })?;
    let mut s = [0u8; 32];
    s.copy_from_slice(&seed);
    Ok(KeyPair::from_seed(Seed::new(s)))
}

/// Signs an image: 64 bytes.
pub fn sign(pair: &KeyPair, image: &[u8]) -> [u8; 64] {
    *pair.sk.sign(digest(image), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_for_its_image_and_key_only() {
        let (secret, public) = generate();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), &secret).unwrap();
        let pair = read_secret(&dir.path().join("k")).unwrap();
        let key = parse_public_key(&public).unwrap();
        let image = b"an image".to_vec();
        let sig = sign(&pair, &image);
        assert!(verify(&key, &image, &sig));
        assert!(!verify(&key, b"an imagf", &sig));
        let (_, other) = generate();
        assert!(!verify(&parse_public_key(&other).unwrap(), &image, &sig));
        assert!(!verify(&key, &image, &sig[..63]));
    }

    #[test]
    fn the_version_is_read_from_the_tag() {
        let mut image = vec![0xAA; 100];
        image.extend(version_tag("weir-node 0.2.0"));
        image.extend([1, 2, 3]);
        assert_eq!(declared_version(&image).as_deref(), Some("weir-node 0.2.0"));
        assert_eq!(declared_version(&[0u8; 50]), None);
    }
}
