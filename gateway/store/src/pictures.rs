//! Pictures of the whole terminal: snapshots from a camera in its cabinet and photos field
//! staff upload. Each picture is two files beside the database, under
//! `{data dir}/pictures/{terminal}/` (the original as received and a small JPEG thumbnail), and
//! one row here with its time, source and size.
//!
//! The files of every row count against one bound on disk use: [`save`] deletes the oldest
//! pictures to make room for a new one, and refuses one larger than the whole bound. A file is
//! deleted only after the transaction that deleted its row has committed, so a failed
//! transaction never leaves a row without its file; a crash in between leaves files without
//! rows, which [`sweep_orphans`] removes at start.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension as _, Row};
use serde::Serialize;

/// Where a picture came from.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The terminal's IP camera, fetched by the gateway on a schedule.
    Camera,
    /// Uploaded by a person (field staff from a phone); `uploaded_by` names them.
    Upload,
}

impl Source {
    /// The stored and shown name.
    pub fn name(self) -> &'static str {
        match self {
            Source::Camera => "camera",
            Source::Upload => "upload",
        }
    }

    fn parse(s: &str) -> Source {
        if s == "camera" {
            Source::Camera
        } else {
            Source::Upload
        }
    }
}

/// A stored picture.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Picture {
    /// Its id, in order of storing.
    pub id: i64,
    /// Terminal id.
    pub terminal: String,
    /// When it was taken (camera: fetched; upload: received), Unix seconds.
    #[serde(rename = "taken_at_s")]
    pub taken_at: i64,
    /// Camera or upload.
    pub source: Source,
    /// Who uploaded it (none for the camera).
    pub uploaded_by: Option<String>,
    /// `image/jpeg` or `image/png`: the original's type.
    pub content_type: String,
    /// Width of the original, pixels.
    pub width: u32,
    /// Height of the original, pixels.
    pub height: u32,
    /// Bytes on disk: the original and its thumbnail.
    pub bytes: u64,
    /// The original's file, relative to the pictures directory.
    #[serde(skip)]
    pub file: String,
    /// The thumbnail's file, relative to the pictures directory.
    #[serde(skip)]
    pub thumbnail: String,
}

/// A picture to store, already checked to be an image.
#[derive(Clone, Debug)]
pub struct NewPicture<'a> {
    /// Terminal id (registered).
    pub terminal: &'a str,
    /// Unix seconds.
    pub taken_at: i64,
    /// Camera or upload.
    pub source: Source,
    /// Who uploaded it.
    pub uploaded_by: Option<&'a str>,
    /// `image/jpeg` or `image/png`.
    pub content_type: &'a str,
    /// File name extension of the original, `jpg` or `png`.
    pub extension: &'a str,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// The original's bytes.
    pub original: &'a [u8],
    /// The thumbnail (JPEG).
    pub thumbnail: &'a [u8],
}

/// Why a picture was not stored.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// No such terminal.
    #[error("no terminal {0}")]
    NoTerminal(String),
    /// The picture alone is larger than the whole bound.
    #[error("the picture and its thumbnail take {bytes} bytes, more than pictures.max_total_bytes ({max})")]
    LargerThanBound {
        /// Its size.
        bytes: u64,
        /// The bound.
        max: u64,
    },
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// What [`save`] did.
#[derive(Clone, Debug)]
pub struct Saved {
    /// The stored picture.
    pub picture: Picture,
    /// Older pictures deleted to keep within the bound.
    pub evicted: u64,
}

const COLUMNS: &str = "p.id, t.id, p.taken_at, p.source, p.uploaded_by, p.content_type, \
                       p.width, p.height, p.bytes, p.file, p.thumbnail";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Picture> {
    let source: String = r.get(3)?;
    Ok(Picture {
        id: r.get(0)?,
        terminal: r.get(1)?,
        taken_at: r.get(2)?,
        source: Source::parse(&source),
        uploaded_by: r.get(4)?,
        content_type: r.get(5)?,
        width: r.get(6)?,
        height: r.get(7)?,
        bytes: r.get::<_, i64>(8)? as u64,
        file: r.get(9)?,
        thumbnail: r.get(10)?,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SaveError> {
    let io = |source| SaveError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, bytes).map_err(io)
}

/// A write transaction that takes the lock at once (see the store's notes on concurrency).
fn immediate(conn: &Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
}

/// Removes the files of deleted rows; a file already gone is no error.
fn remove_files(dir: &Path, files: &[String]) {
    for f in files {
        let path = dir.join(f);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %path.display(), error = %e, "could not delete a picture file");
            }
            _ => {}
        }
    }
}

/// Stores `p` under `dir`: writes its two files, then, in one transaction, deletes the oldest
/// pictures until the new one fits within `max_total_bytes` and inserts its row.
pub fn save(
    conn: &Connection,
    dir: &Path,
    p: &NewPicture<'_>,
    max_total_bytes: u64,
) -> Result<Saved, SaveError> {
    let key = crate::terminals::key_of(conn, p.terminal)?
        .ok_or_else(|| SaveError::NoTerminal(p.terminal.to_owned()))?;
    let bytes = (p.original.len() + p.thumbnail.len()) as u64;
    if bytes > max_total_bytes {
        return Err(SaveError::LargerThanBound {
            bytes,
            max: max_total_bytes,
        });
    }
    // A name no other picture has: the time, and random digits for two in one second.
    let stem = format!(
        "{}/{}-{:08x}",
        p.terminal,
        p.taken_at,
        rand::random::<u32>()
    );
    let (file, thumbnail) = (
        format!("{stem}.{}", p.extension),
        format!("{stem}.thumb.jpg"),
    );
    write_file(&dir.join(&file), p.original)?;
    if let Err(e) = write_file(&dir.join(&thumbnail), p.thumbnail) {
        remove_files(dir, std::slice::from_ref(&file));
        return Err(e);
    }
    let stored = (|| -> rusqlite::Result<(i64, Vec<String>)> {
        let tx = immediate(conn)?;
        let mut evicted = Vec::new();
        loop {
            let total: i64 =
                tx.query_row("SELECT coalesce(sum(bytes), 0) FROM pictures", [], |r| {
                    r.get(0)
                })?;
            if total as u64 + bytes <= max_total_bytes {
                break;
            }
            let oldest: Option<(i64, String, String)> = tx
                .query_row(
                    "SELECT id, file, thumbnail FROM pictures ORDER BY taken_at, id LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((id, f, t)) = oldest else { break };
            tx.execute("DELETE FROM pictures WHERE id = ?1", [id])?;
            evicted.push(f);
            evicted.push(t);
        }
        tx.execute(
            "INSERT INTO pictures (terminal, taken_at, source, uploaded_by, content_type, width, height, bytes, file, thumbnail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                key,
                p.taken_at,
                p.source.name(),
                p.uploaded_by,
                p.content_type,
                p.width,
                p.height,
                bytes as i64,
                file,
                thumbnail
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok((id, evicted))
    })();
    let (id, evicted) = match stored {
        Ok(v) => v,
        Err(e) => {
            remove_files(dir, &[file, thumbnail]);
            return Err(e.into());
        }
    };
    remove_files(dir, &evicted);
    let picture = get(conn, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    Ok(Saved {
        picture,
        evicted: evicted.len() as u64 / 2,
    })
}

/// Picture `id`.
pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<Picture>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pictures p JOIN terminals t ON t.key = p.terminal WHERE p.id = ?1"
    ))?
    .query_row([id], from_row)
    .optional()
}

/// The newest `limit` pictures of `terminal`, newest first.
pub fn list(conn: &Connection, terminal: &str, limit: u32) -> rusqlite::Result<Vec<Picture>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM pictures p JOIN terminals t ON t.key = p.terminal
         WHERE t.id = ?1 ORDER BY p.taken_at DESC, p.id DESC LIMIT ?2"
    ))?
    .query_map(params![terminal, limit], from_row)?
    .collect()
}

/// The pictures of `terminal` around time `at`: the newest taken at or before it, and the
/// first taken after it (an alert's "before" and "after").
pub fn around(
    conn: &Connection,
    terminal: &str,
    at: i64,
) -> rusqlite::Result<(Option<Picture>, Option<Picture>)> {
    let before = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM pictures p JOIN terminals t ON t.key = p.terminal
             WHERE t.id = ?1 AND p.taken_at <= ?2 ORDER BY p.taken_at DESC, p.id DESC LIMIT 1"
        ))?
        .query_row(params![terminal, at], from_row)
        .optional()?;
    let after = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM pictures p JOIN terminals t ON t.key = p.terminal
             WHERE t.id = ?1 AND p.taken_at > ?2 ORDER BY p.taken_at, p.id LIMIT 1"
        ))?
        .query_row(params![terminal, at], from_row)
        .optional()?;
    Ok((before, after))
}

/// How many pictures are stored and the bytes their files take.
pub fn usage(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT count(*), coalesce(sum(bytes), 0) FROM pictures",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

/// Deletes the pictures taken before `horizon` (Unix seconds), rows first, then their files.
/// Returns how many went.
pub fn prune(conn: &Connection, dir: &Path, horizon: i64) -> rusqlite::Result<u64> {
    let mut deleted = 0;
    loop {
        let tx = immediate(conn)?;
        let old: Vec<(i64, String, String)> = tx
            .prepare_cached(
                "SELECT id, file, thumbnail FROM pictures WHERE taken_at < ?1 ORDER BY id LIMIT 500",
            )?
            .query_map([horizon], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if old.is_empty() {
            return Ok(deleted);
        }
        for (id, _, _) in &old {
            tx.execute("DELETE FROM pictures WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        let files: Vec<String> = old.into_iter().flat_map(|(_, f, t)| [f, t]).collect();
        deleted += files.len() as u64 / 2;
        remove_files(dir, &files);
    }
}

/// Deletes files under `dir` that no row names and that are older than `min_age` (a save under
/// way has written its files but not yet committed its row). Returns how many went.
pub fn sweep_orphans(
    conn: &Connection,
    dir: &Path,
    min_age: std::time::Duration,
) -> rusqlite::Result<u64> {
    let known: std::collections::HashSet<String> = conn
        .prepare("SELECT file FROM pictures UNION ALL SELECT thumbnail FROM pictures")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let Ok(terminals) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for t in terminals.flatten() {
        let Ok(files) = std::fs::read_dir(t.path()) else {
            continue;
        };
        for f in files.flatten() {
            let rel = format!(
                "{}/{}",
                t.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            let old = f
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= min_age);
            if old && !known.contains(&rel) && std::fs::remove_file(f.path()).is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Connection, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::Store::open(&dir.path().join("weir.db"), crate::Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        conn.execute_batch(
            "INSERT INTO terminals (key, id, name, created_at) VALUES (1, 'HY-001', 'a', 0)",
        )
        .unwrap();
        let pictures = store.pictures_dir();
        (dir, conn, pictures)
    }

    fn new(taken_at: i64, original: &[u8]) -> NewPicture<'_> {
        NewPicture {
            terminal: "HY-001",
            taken_at,
            source: Source::Camera,
            uploaded_by: None,
            content_type: "image/jpeg",
            extension: "jpg",
            width: 1,
            height: 1,
            original,
            thumbnail: b"thumb",
        }
    }

    #[test]
    fn the_oldest_pictures_make_room_within_the_bound_and_their_files_go_with_them() {
        let (_d, conn, dir) = store();
        let body = [7u8; 95];
        // Each picture takes 100 bytes: three fit in 300.
        let first = save(&conn, &dir, &new(100, &body), 300).unwrap().picture;
        save(&conn, &dir, &new(200, &body), 300).unwrap();
        save(&conn, &dir, &new(300, &body), 300).unwrap();
        assert!(dir.join(&first.file).exists() && dir.join(&first.thumbnail).exists());
        let fourth = save(&conn, &dir, &new(400, &body), 300).unwrap();
        assert_eq!(fourth.evicted, 1);
        assert_eq!(usage(&conn).unwrap(), (3, 300));
        assert!(get(&conn, first.id).unwrap().is_none());
        assert!(!dir.join(&first.file).exists() && !dir.join(&first.thumbnail).exists());
        assert_eq!(
            list(&conn, "HY-001", 10)
                .unwrap()
                .iter()
                .map(|p| p.taken_at)
                .collect::<Vec<_>>(),
            vec![400, 300, 200]
        );
        // One larger than the whole bound is refused, and nothing is lost for it.
        let e = save(&conn, &dir, &new(500, &[0u8; 400]), 300).unwrap_err();
        assert!(matches!(e, SaveError::LargerThanBound { .. }), "{e}");
        assert_eq!(usage(&conn).unwrap(), (3, 300));
    }

    #[test]
    fn around_an_alert_are_the_newest_picture_before_it_and_the_first_after() {
        let (_d, conn, dir) = store();
        for at in [100, 200, 300, 400] {
            save(&conn, &dir, &new(at, b"x"), 1 << 20).unwrap();
        }
        let (before, after) = around(&conn, "HY-001", 250).unwrap();
        assert_eq!(before.unwrap().taken_at, 200);
        assert_eq!(after.unwrap().taken_at, 300);
        let (before, after) = around(&conn, "HY-001", 50).unwrap();
        assert!(before.is_none());
        assert_eq!(after.unwrap().taken_at, 100);
    }

    #[test]
    fn pruning_deletes_old_rows_and_their_files_and_orphans_are_swept() {
        let (_d, conn, dir) = store();
        let old = save(&conn, &dir, &new(100, b"old"), 1 << 20)
            .unwrap()
            .picture;
        let kept = save(&conn, &dir, &new(1000, b"new"), 1 << 20)
            .unwrap()
            .picture;
        assert_eq!(prune(&conn, &dir, 500).unwrap(), 1);
        assert!(!dir.join(&old.file).exists());
        assert!(dir.join(&kept.file).exists());
        // A file left by a crash between writing and committing.
        std::fs::write(dir.join("HY-001/orphan.jpg"), b"x").unwrap();
        assert_eq!(
            sweep_orphans(&conn, &dir, std::time::Duration::from_secs(3600)).unwrap(),
            0,
            "too new: a save may be under way"
        );
        assert_eq!(
            sweep_orphans(&conn, &dir, std::time::Duration::ZERO).unwrap(),
            1
        );
        assert!(!dir.join("HY-001/orphan.jpg").exists());
        assert!(dir.join(&kept.file).exists() && dir.join(&kept.thumbnail).exists());
    }
}
