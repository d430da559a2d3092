//! Firmware updates over the air: signed images (`image`), staged rollouts (in the store,
//! `weir_store::firmware`), and the service that offers each terminal its target image and
//! sends it piece by piece as the node asks (`service`). The messages are the contract's
//! (`weir_contract::firmware`); docs/operations.md tells the county how to use it.

pub mod commands;
pub mod image;
pub mod service;

use serde::{Deserialize, Serialize};

/// `[firmware]`: the county's public key and the service's limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FirmwareConfig {
    /// The county's Ed25519 public key, 64 hex digits, printed by `weir firmware keygen`.
    /// Images are stored only if signed with its private key (kept off the gateway). Empty:
    /// no image can be added.
    pub public_key: String,
    /// Seconds between reads of the rollout targets (set by `weir firmware rollout`, which
    /// runs in another process).
    pub poll_s: u32,
    /// Largest image accepted, bytes.
    pub max_image_bytes: u32,
    /// Most image pieces (512 bytes each) sent per second, over all terminals; requests
    /// beyond are dropped (the node asks again after 10 s).
    pub max_chunks_per_s: u32,
    /// Most images kept in memory while being sent.
    pub max_cached_images: u32,
}

impl Default for FirmwareConfig {
    fn default() -> Self {
        FirmwareConfig {
            public_key: String::new(),
            poll_s: 5,
            max_image_bytes: 1024 * 1024,
            max_chunks_per_s: 400,
            max_cached_images: 4,
        }
    }
}

impl FirmwareConfig {
    /// Checks the key and the limits.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.public_key.is_empty() {
            image::parse_public_key(&self.public_key)
                .map_err(|e| anyhow::anyhow!("firmware.public_key: {e}"))?;
        }
        anyhow::ensure!(self.poll_s >= 1, "firmware.poll_s must be at least 1");
        anyhow::ensure!(
            self.max_image_bytes >= 1024,
            "firmware.max_image_bytes must be at least 1024"
        );
        anyhow::ensure!(
            self.max_chunks_per_s >= 1,
            "firmware.max_chunks_per_s must be at least 1"
        );
        anyhow::ensure!(
            self.max_cached_images >= 1,
            "firmware.max_cached_images must be at least 1"
        );
        Ok(())
    }

    /// The public key, or an error saying how to set it.
    pub fn key(&self) -> anyhow::Result<[u8; 32]> {
        anyhow::ensure!(
            !self.public_key.is_empty(),
            "firmware.public_key is not set: put the county's public key (from `weir firmware keygen`) in the configuration"
        );
        image::parse_public_key(&self.public_key)
    }
}
