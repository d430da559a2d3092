//! `weir firmware ...`: keys, signing, adding images, rollouts and their progress.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rusqlite::Connection;
use weir_store::firmware::{self as store_fw, Image, Target, TargetState};

use super::{image, FirmwareConfig};

/// Writes a new key pair: the private key to `out` (owner-only) and the public key to
/// `out.pub`. Returns the public key, hex. Refuses to overwrite a key.
pub fn keygen(out: &Path) -> anyhow::Result<String> {
    let (secret, public) = image::generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(out).with_context(|| {
        format!(
            "creating {} (an existing key is never overwritten)",
            out.display()
        )
    })?;
    writeln!(f, "{secret}")?;
    let public_path = pub_path(out);
    std::fs::write(&public_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", public_path.display()))?;
    Ok(public)
}

fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Where an image's signature goes by default: `IMAGE.sig`.
pub fn sig_path(image: &Path) -> PathBuf {
    let mut p = image.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

/// Signs `image_path` with the private key at `key`, writing the 64-byte signature to `out`.
pub fn sign(image_path: &Path, key: &Path, out: &Path) -> anyhow::Result<()> {
    let pair = image::read_secret(key)?;
    let bytes =
        std::fs::read(image_path).with_context(|| format!("reading {}", image_path.display()))?;
    std::fs::write(out, image::sign(&pair, &bytes))
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Reads a signature file: 64 raw bytes (as `weir firmware sign` and OpenSSL write), or 128
/// hex digits.
pub fn read_signature(path: &Path) -> anyhow::Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| {
        format!(
            "reading the signature {} (sign the image with `weir firmware sign` first)",
            path.display()
        )
    })?;
    if raw.len() == 64 {
        return Ok(raw);
    }
    let text = String::from_utf8_lossy(&raw);
    hex::decode(text.trim())
        .ok()
        .filter(|b| b.len() == 64)
        .with_context(|| {
            format!(
                "{} is not an Ed25519 signature: 64 bytes, or 128 hex digits, expected ({} bytes found)",
                path.display(),
                raw.len()
            )
        })
}

/// Checks an image's signature against the configured public key and stores it. Its
/// version is the one the image declares (its version tag) unless `version` is given.
/// Returns the image and whether it is new.
pub fn add(
    conn: &Connection,
    config: &FirmwareConfig,
    image_path: &Path,
    signature_path: &Path,
    version: Option<&str>,
) -> anyhow::Result<(Image, bool)> {
    let key = config.key()?;
    let bytes =
        std::fs::read(image_path).with_context(|| format!("reading {}", image_path.display()))?;
    anyhow::ensure!(!bytes.is_empty(), "{} is empty", image_path.display());
    anyhow::ensure!(
        bytes.len() <= config.max_image_bytes as usize,
        "{} is {} bytes, more than firmware.max_image_bytes ({})",
        image_path.display(),
        bytes.len(),
        config.max_image_bytes
    );
    let signature = read_signature(signature_path)?;
    anyhow::ensure!(
        image::verify(&key, &bytes, &signature),
        "the signature {} does not verify for {} against firmware.public_key ({}): the image was changed after signing, or signed with another key; nothing was stored",
        signature_path.display(),
        image_path.display(),
        config.public_key
    );
    let version = match version {
        Some(v) => v.to_string(),
        None => image::declared_version(&bytes).with_context(|| {
            format!(
                "{} carries no version tag ({:?}...); give its version with --version",
                image_path.display(),
                String::from_utf8_lossy(image::VERSION_TAG)
            )
        })?,
    };
    anyhow::ensure!(
        !version.is_empty() && version.len() <= weir_contract::FIRMWARE_LEN,
        "version {version:?}: 1 to {} bytes, as the node reports it",
        weir_contract::FIRMWARE_LEN
    );
    Ok(store_fw::add(
        conn,
        &version,
        &bytes,
        &image::sha256_hex(&bytes),
        &signature,
        weir_store::now(),
    )?)
}

/// Which terminals a rollout stage names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Group {
    /// These terminals.
    Terminals(Vec<String>),
    /// This share of the registered terminals (rounded up), among those not yet targeted
    /// at the version, by id.
    Percent(u32),
    /// Every registered terminal not yet targeted at the version.
    Rest,
}

/// Sets `version` as the target of the group's terminals, in `stage`. Returns their ids.
pub fn roll_out(
    conn: &mut Connection,
    version: &str,
    group: &Group,
    stage: u32,
) -> anyhow::Result<Vec<String>> {
    let all: Vec<String> = weir_store::terminals::list(conn)?
        .into_iter()
        .map(|t| t.id)
        .collect();
    let targeted: std::collections::HashSet<String> = store_fw::targets(conn)?
        .into_iter()
        .filter(|t| t.version == version)
        .map(|t| t.terminal)
        .collect();
    let untargeted = || all.iter().filter(|id| !targeted.contains(*id)).cloned();
    let ids: Vec<String> = match group {
        Group::Terminals(ids) => ids.clone(),
        Group::Rest => untargeted().collect(),
        Group::Percent(p) => {
            anyhow::ensure!((1..=100).contains(p), "--percent must be 1 to 100");
            let n = (all.len() * *p as usize).div_ceil(100);
            untargeted().take(n).collect()
        }
    };
    anyhow::ensure!(
        !ids.is_empty(),
        "no terminal to offer {version} to (every one is already in this rollout)"
    );
    store_fw::roll_out(conn, version, &ids, stage, weir_store::now())?;
    Ok(ids)
}

/// Counts of terminals by state.
pub fn summary(targets: &[Target]) -> Vec<(TargetState, usize)> {
    TargetState::ALL
        .into_iter()
        .map(|s| (s, targets.iter().filter(|t| t.state == s).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A rollout's progress as a table, terminal by terminal (all versions, or one).
pub fn status_text(conn: &Connection, version: Option<&str>) -> anyhow::Result<String> {
    let targets: Vec<Target> = store_fw::targets(conn)?
        .into_iter()
        .filter(|t| version.is_none_or(|v| t.version == v))
        .collect();
    let mut out = format!(
        "{:<12} {:<24} {:>5} {:<12} {:>9}  RUNNING\n",
        "TERMINAL", "TARGET", "STAGE", "STATE", "PROGRESS"
    );
    for t in &targets {
        let pct = if t.size > 0 {
            100 * u64::from(t.offset) / u64::from(t.size)
        } else {
            0
        };
        out += &format!(
            "{:<12} {:<24} {:>5} {:<12} {:>8}%  {}\n",
            t.terminal,
            t.version,
            t.stage,
            t.state.as_str(),
            pct,
            t.running.as_deref().unwrap_or("-")
        );
    }
    let counts: Vec<String> = summary(&targets)
        .into_iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    out += &format!("{} terminal(s): {}\n", targets.len(), counts.join(", "));
    Ok(out)
}
