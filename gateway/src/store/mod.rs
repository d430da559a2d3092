//! The reading store: SQLite in WAL mode, one writer thread, pooled readers.
//!
//! One file per entity: `terminals`, `readings`, `auth` (users, sessions, tokens),
//! `dead_letters`, `status`; `writer` is the only code that writes telemetry, `retention` the
//! only code that deletes it.

pub mod auth;
pub mod dead_letters;
pub mod readings;
pub mod retention;
pub mod schema;
pub mod status;
pub mod terminals;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags};

use crate::config::Synchronous;

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The database: opens connections and lends read connections.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    synchronous: Synchronous,
    readers: Mutex<Vec<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path, synchronous: Synchronous) -> anyhow::Result<Arc<Store>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the data directory {}", dir.display()))?;
        }
        let store = Store {
            path: path.to_owned(),
            synchronous,
            readers: Mutex::new(Vec::new()),
        };
        let mut conn = store
            .connect()
            .with_context(|| format!("opening the reading store at {}", path.display()))?;
        schema::migrate(&mut conn)
            .with_context(|| format!("migrating the reading store at {}", path.display()))?;
        Ok(Arc::new(store))
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new read-write connection with Weir's settings.
    pub fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match self.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(conn)
    }

    /// Runs `f` on a pooled connection. Blocking: call from a blocking thread.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        let pooled = self.readers.lock().map(|mut p| p.pop()).unwrap_or(None);
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < 8 {
                pool.push(conn);
            }
        }
        result
    }

    /// Runs `f` on a pooled connection on tokio's blocking pool.
    pub async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || store.with(f))
            .await
            .context("the store's worker thread failed")?
            .context("querying the reading store")
    }
}
