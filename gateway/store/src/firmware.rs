//! Firmware images (signed by the county, checked before they are stored) and each
//! terminal's rollout target: which image it should run, in which stage, and how far it got.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// The tables, run once as migration `firmware_0001`.
pub const MIGRATION: &str = "
    -- Images as added by `weir firmware add`: bytes and signature, checked against the
    -- configured public key before they get here.
    CREATE TABLE firmware_images (
        version TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        signature BLOB NOT NULL,
        image BLOB NOT NULL,
        added_at INTEGER NOT NULL
    );
    -- One target per terminal: the newest rollout that named it.
    CREATE TABLE firmware_targets (
        terminal INTEGER PRIMARY KEY REFERENCES terminals(key),
        version TEXT NOT NULL REFERENCES firmware_images(version),
        stage INTEGER NOT NULL,
        state TEXT NOT NULL,
        offset INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
    );
";

/// An image as stored, without its bytes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Image {
    /// Version, as nodes report it.
    pub version: String,
    /// Bytes.
    pub size: u32,
    /// SHA-256 of the bytes, hex (for people comparing files).
    pub sha256: String,
    /// Ed25519 signature of the SHA-512 digest of the bytes.
    #[serde(skip)]
    pub signature: Vec<u8>,
    /// When it was added, Unix seconds.
    pub added_at: i64,
}

/// Why an image was not stored.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// Another image already has this version.
    #[error("an image of version {version:?} is already stored with other contents (sha256 {sha256}); give the new build its own version")]
    VersionTaken {
        /// The version.
        version: String,
        /// The stored image's SHA-256.
        sha256: String,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

fn image_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Image> {
    Ok(Image {
        version: r.get(0)?,
        size: r.get(1)?,
        sha256: r.get(2)?,
        signature: r.get(3)?,
        added_at: r.get(4)?,
    })
}

/// Stores an image. Adding the same bytes again is harmless; other bytes under a stored
/// version are refused (nodes tell images apart by version).
pub fn add(
    conn: &Connection,
    version: &str,
    bytes: &[u8],
    sha256: &str,
    signature: &[u8],
    at: i64,
) -> Result<(Image, bool), AddError> {
    if let Some(existing) = get(conn, version)? {
        if existing.sha256 == sha256 && existing.signature == signature {
            return Ok((existing, false));
        }
        return Err(AddError::VersionTaken {
            version: version.into(),
            sha256: existing.sha256,
        });
    }
    conn.execute(
        "INSERT INTO firmware_images (version, size, sha256, signature, image, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![version, bytes.len() as u32, sha256, signature, bytes, at],
    )?;
    Ok((get(conn, version)?.expect("just inserted"), true))
}

/// The image of `version`, without its bytes.
pub fn get(conn: &Connection, version: &str) -> rusqlite::Result<Option<Image>> {
    conn.query_row(
        "SELECT version, size, sha256, signature, added_at FROM firmware_images WHERE version = ?1",
        [version],
        image_row,
    )
    .optional()
}

/// The bytes of image `version`.
pub fn bytes(conn: &Connection, version: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT image FROM firmware_images WHERE version = ?1",
        [version],
        |r| r.get(0),
    )
    .optional()
}

/// Every image, newest first.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<Image>> {
    let mut stmt = conn.prepare(
        "SELECT version, size, sha256, signature, added_at FROM firmware_images
         ORDER BY added_at DESC, version DESC",
    )?;
    let rows = stmt.query_map([], image_row)?;
    rows.collect()
}

/// Where a terminal is with its target image.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Offered; the node has not asked for a piece yet (it may be offline).
    Offered,
    /// The node is downloading: `offset` bytes so far.
    Downloading,
    /// Downloaded and verified; the node restarted into it.
    Installing,
    /// The node runs it and confirmed it.
    Installed,
    /// The node refused it (signature, size).
    Refused,
    /// The node tried it, did not confirm it, and went back to its previous image.
    RolledBack,
}

impl TargetState {
    /// Every state, in the order of an update.
    pub const ALL: [TargetState; 6] = [
        TargetState::Offered,
        TargetState::Downloading,
        TargetState::Installing,
        TargetState::Installed,
        TargetState::Refused,
        TargetState::RolledBack,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Offered => "offered",
            TargetState::Downloading => "downloading",
            TargetState::Installing => "installing",
            TargetState::Installed => "installed",
            TargetState::Refused => "refused",
            TargetState::RolledBack => "rolled_back",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        TargetState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the update is over for this terminal (the offer is withdrawn).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TargetState::Installed | TargetState::Refused | TargetState::RolledBack
        )
    }
}

/// A terminal's rollout target.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    /// Terminal id.
    pub terminal: String,
    /// The image it should run.
    pub version: String,
    /// The rollout stage that named it.
    pub stage: u32,
    /// How far it got.
    pub state: TargetState,
    /// Bytes downloaded.
    pub offset: u32,
    /// The image's size.
    pub size: u32,
    /// The firmware the node last reported in its status.
    pub running: Option<String>,
    /// When the state last changed, Unix seconds.
    pub updated_at: i64,
}

/// Sets `version` as the target of each of `terminals` (ids), in `stage`, from the start.
/// Unknown terminals are refused by name before anything is written. Returns how many
/// targets were set.
pub fn roll_out(
    conn: &mut Connection,
    version: &str,
    terminals: &[String],
    stage: u32,
    at: i64,
) -> anyhow::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    anyhow::ensure!(
        get(&tx, version)?.is_some(),
        "no image of version {version:?}: add it first with `weir firmware add`"
    );
    let mut keys = Vec::with_capacity(terminals.len());
    for id in terminals {
        let key: Option<i64> = tx
            .query_row("SELECT key FROM terminals WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        keys.push(key.ok_or_else(|| anyhow::anyhow!("no terminal {id:?} is registered"))?);
    }
    for key in &keys {
        tx.execute(
            "INSERT INTO firmware_targets (terminal, version, stage, state, offset, updated_at)
             VALUES (?1, ?2, ?3, 'offered', 0, ?4)
             ON CONFLICT (terminal) DO UPDATE SET version = excluded.version,
                stage = excluded.stage, state = 'offered', offset = 0,
                updated_at = excluded.updated_at",
            params![key, version, stage, at],
        )?;
    }
    tx.commit()?;
    Ok(keys.len())
}

/// Every terminal's target, by terminal id.
pub fn targets(conn: &Connection) -> rusqlite::Result<Vec<Target>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.id, f.version, f.stage, f.state, f.offset, i.size, s.firmware, f.updated_at
         FROM firmware_targets f
         JOIN terminals t ON t.key = f.terminal
         JOIN firmware_images i ON i.version = f.version
         LEFT JOIN node_status s ON s.terminal = f.terminal
         ORDER BY t.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let state: String = r.get(3)?;
        Ok(Target {
            terminal: r.get(0)?,
            version: r.get(1)?,
            stage: r.get(2)?,
            state: TargetState::parse(&state).unwrap_or(TargetState::Offered),
            offset: r.get(4)?,
            size: r.get(5)?,
            running: r.get(6)?,
            updated_at: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// Records a node's progress with `version`; ignored if its target is another version by
/// now (a report about an earlier rollout). Returns whether a row changed.
pub fn set_state(
    conn: &Connection,
    terminal: &str,
    version: &str,
    state: TargetState,
    offset: u32,
    at: i64,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE firmware_targets SET state = ?3, offset = ?4, updated_at = ?5
         WHERE version = ?2 AND terminal = (SELECT key FROM terminals WHERE id = ?1)
           AND (state != ?3 OR offset != ?4)",
        params![terminal, version, state.as_str(), offset, at],
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::Store::open(&dir.path().join("t.db"), crate::Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        for id in ["HY-001", "HY-002"] {
            conn.execute(
                "INSERT INTO terminals (id, name, created_at) VALUES (?1, ?1, 0)",
                [id],
            )
            .unwrap();
        }
        (dir, conn)
    }

    #[test]
    fn an_image_is_stored_once_and_another_under_its_version_is_refused() {
        let (_dir, conn) = store();
        let (img, new) = add(&conn, "v2", b"abc", "aa", &[1; 64], 10).unwrap();
        assert!(new);
        assert_eq!(img.size, 3);
        assert!(!add(&conn, "v2", b"abc", "aa", &[1; 64], 11).unwrap().1);
        let err = add(&conn, "v2", b"abd", "bb", &[2; 64], 12).unwrap_err();
        assert!(err.to_string().contains("already stored"), "{err}");
        assert_eq!(bytes(&conn, "v2").unwrap().unwrap(), b"abc");
    }

    #[test]
    fn a_rollout_to_an_unknown_terminal_writes_nothing_and_names_it() {
        let (_dir, mut conn) = store();
        add(&conn, "v2", b"abc", "aa", &[1; 64], 10).unwrap();
        let err =
            roll_out(&mut conn, "v2", &["HY-001".into(), "HY-404".into()], 1, 20).unwrap_err();
        assert!(err.to_string().contains("HY-404"), "{err}");
        assert!(targets(&conn).unwrap().is_empty());
        assert_eq!(
            roll_out(&mut conn, "v2", &["HY-002".into()], 1, 20).unwrap(),
            1
        );
        assert!(set_state(&conn, "HY-002", "v2", TargetState::Downloading, 512, 21).unwrap());
        assert!(!set_state(&conn, "HY-002", "v1", TargetState::Installed, 0, 22).unwrap());
        let t = targets(&conn).unwrap();
        assert_eq!(
            (t[0].state, t[0].offset, t[0].size),
            (TargetState::Downloading, 512, 3)
        );
    }
}
