//! `[pictures]`: how much the gateway keeps, what it takes, and each terminal's camera.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Pictures of the whole terminal (docs/operations.md, "Pictures").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PicturesConfig {
    /// Days a picture is kept (0: until `max_total_bytes` needs its room).
    pub retention_days: u32,
    /// Bytes all pictures (originals and thumbnails) may take on disk; the oldest are deleted
    /// to make room for a new one, so the disk never holds more.
    pub max_total_bytes: u64,
    /// Largest picture taken, bytes (an upload's body, a camera's answer); larger is refused
    /// (413).
    pub max_picture_bytes: u64,
    /// Most pixels (width × height) a picture may declare; more is refused before decoding.
    pub max_pixels: u64,
    /// Longest side a picture may declare, pixels.
    pub max_side_px: u32,
    /// Width of the JPEG thumbnails shown on the dashboard, pixels.
    pub thumbnail_width: u32,
    /// Pictures received and decoded at once (uploads and camera snapshots); an upload that
    /// waits more than 10 s for a turn is refused with 503. Each may take up to 4 bytes a
    /// pixel in memory.
    pub max_in_flight: usize,
    /// Seconds an upload's body may take to arrive.
    pub upload_timeout_s: u32,
    /// Seconds a camera has to answer with its whole snapshot.
    pub camera_timeout_s: u32,
    /// Each terminal's camera: one table per terminal with a camera, keyed by terminal id;
    /// one set with `weir terminal camera set` takes precedence. For example:
    ///
    /// ```toml
    /// [pictures.cameras.HY-001]
    /// url = "http://192.168.1.64/ISAPI/Streaming/channels/101/picture"
    /// username = "weir"
    /// password = "..."
    /// interval_s = 3600
    /// ```
    pub cameras: BTreeMap<String, CameraConfig>,
}

impl Default for PicturesConfig {
    fn default() -> Self {
        PicturesConfig {
            retention_days: 90,
            max_total_bytes: 2 << 30,
            max_picture_bytes: 10 << 20,
            max_pixels: 50_000_000,
            max_side_px: 16_384,
            thumbnail_width: 320,
            max_in_flight: 2,
            upload_timeout_s: 120,
            camera_timeout_s: 20,
            cameras: BTreeMap::new(),
        }
    }
}

/// A terminal's IP camera.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// The camera's snapshot URL, answering with one JPEG (or PNG) picture.
    pub url: String,
    /// User name for HTTP basic or digest authentication; empty: none.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Seconds between two snapshots.
    pub interval_s: u32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            url: String::new(),
            username: String::new(),
            password: String::new(),
            interval_s: 3600,
        }
    }
}

/// Checks a camera's URL and interval; `key` names it in the error.
pub fn check_camera(key: &str, url: &str, interval_s: u32) -> anyhow::Result<()> {
    anyhow::ensure!(
        url.starts_with("http://") || url.starts_with("https://"),
        "{key}: the snapshot URL must start with http:// or https://, not {url:?}"
    );
    anyhow::ensure!(
        reqwest::Url::parse(url).is_ok(),
        "{key}: {url:?} is not a URL"
    );
    anyhow::ensure!(
        interval_s >= 10,
        "{key}: the interval must be at least 10 s, not {interval_s}"
    );
    Ok(())
}

impl PicturesConfig {
    /// Checks what types cannot, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_picture_bytes >= 1024,
            "pictures.max_picture_bytes must be at least 1024"
        );
        anyhow::ensure!(
            self.max_total_bytes >= 2 * self.max_picture_bytes,
            "pictures.max_total_bytes ({}) must be at least twice pictures.max_picture_bytes ({})",
            self.max_total_bytes,
            self.max_picture_bytes
        );
        anyhow::ensure!(
            self.max_pixels >= 1 && self.max_side_px >= 1,
            "pictures.max_pixels and pictures.max_side_px must be at least 1"
        );
        anyhow::ensure!(
            (16..=2048).contains(&self.thumbnail_width),
            "pictures.thumbnail_width must be 16 to 2048, not {}",
            self.thumbnail_width
        );
        for (key, v) in [
            ("pictures.max_in_flight", self.max_in_flight),
            ("pictures.upload_timeout_s", self.upload_timeout_s as usize),
            ("pictures.camera_timeout_s", self.camera_timeout_s as usize),
        ] {
            anyhow::ensure!(v > 0, "{key} must be at least 1");
        }
        for (id, cam) in &self.cameras {
            weir_contract::TerminalId::new(id).map_err(|e| {
                anyhow::anyhow!("pictures.cameras.{id}: not a terminal id: {}", e.reason)
            })?;
            check_camera(&format!("pictures.cameras.{id}"), &cam.url, cam.interval_s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_camera_is_refused_naming_its_key() {
        let mut c = PicturesConfig::default();
        c.cameras.insert(
            "HY-001".into(),
            CameraConfig {
                url: "rtsp://192.0.2.1/stream".into(),
                ..CameraConfig::default()
            },
        );
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("pictures.cameras.HY-001") && e.contains("http://"),
            "{e}"
        );
    }
}
