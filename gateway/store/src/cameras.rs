//! Each terminal's IP camera as `weir terminal camera set` records it: the snapshot URL, the
//! camera's login and how often to fetch. The gateway reads this table at start and every
//! minute (the command runs in another process); a camera here takes precedence over one of
//! the same terminal in the configuration file.
//!
//! The camera's password is kept as given (the gateway must send it), like the rest of the
//! database readable by its owner only.

use rusqlite::{params, Connection};

/// A terminal's camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Camera {
    /// Terminal id.
    pub terminal: String,
    /// The snapshot URL (`http://` or `https://`), answering with one JPEG or PNG picture.
    pub url: String,
    /// User name for HTTP basic or digest authentication; empty: none.
    pub username: String,
    /// Its password.
    pub password: String,
    /// Seconds between two snapshots.
    pub interval_s: u32,
}

/// Why a camera could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// No such terminal.
    #[error("no terminal {0} (weir terminal list shows them)")]
    NoTerminal(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// Sets (or replaces) the camera of `c.terminal`.
pub fn set(conn: &Connection, c: &Camera) -> Result<(), SetError> {
    let key = crate::terminals::key_of(conn, &c.terminal)?
        .ok_or_else(|| SetError::NoTerminal(c.terminal.clone()))?;
    conn.execute(
        "INSERT INTO terminal_cameras (terminal, url, username, password, interval_s, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (terminal) DO UPDATE SET url = excluded.url, username = excluded.username,
             password = excluded.password, interval_s = excluded.interval_s,
             updated_at = excluded.updated_at",
        params![
            key,
            c.url,
            c.username,
            c.password,
            c.interval_s,
            crate::now()
        ],
    )?;
    Ok(())
}

/// Removes the camera of `terminal`; whether it had one.
pub fn remove(conn: &Connection, terminal: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "DELETE FROM terminal_cameras WHERE terminal = (SELECT key FROM terminals WHERE id = ?1)",
        [terminal],
    )? > 0)
}

/// Every camera, by terminal id.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<Camera>> {
    conn.prepare_cached(
        "SELECT t.id, c.url, c.username, c.password, c.interval_s
         FROM terminal_cameras c JOIN terminals t ON t.key = c.terminal ORDER BY t.id",
    )?
    .query_map([], |r| {
        Ok(Camera {
            terminal: r.get(0)?,
            url: r.get(1)?,
            username: r.get(2)?,
            password: r.get(3)?,
            interval_s: r.get(4)?,
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_camera_is_set_replaced_and_removed_by_terminal() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::Store::open(&dir.path().join("weir.db"), crate::Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        conn.execute_batch(
            "INSERT INTO terminals (key, id, name, created_at) VALUES (1, 'HY-001', 'a', 0)",
        )
        .unwrap();
        let mut cam = Camera {
            terminal: "HY-001".into(),
            url: "http://192.0.2.10/snap.jpg".into(),
            username: String::new(),
            password: String::new(),
            interval_s: 3600,
        };
        set(&conn, &cam).unwrap();
        cam.interval_s = 600;
        set(&conn, &cam).unwrap();
        assert_eq!(list(&conn).unwrap(), vec![cam.clone()]);
        cam.terminal = "HY-404".into();
        assert!(matches!(set(&conn, &cam), Err(SetError::NoTerminal(_))));
        assert!(remove(&conn, "HY-001").unwrap());
        assert!(!remove(&conn, "HY-001").unwrap());
        assert!(list(&conn).unwrap().is_empty());
    }
}
