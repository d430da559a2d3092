//! Weir's reading store: SQLite in WAL mode, one writer thread, pooled readers.
//!
//! This crate owns every table of the gateway's database and is the lowest layer of the
//! gateway: it knows nothing of the alert engine, the forwarder, HTTP or the app's config.
//! One file per entity, each with its struct, its queries and its tests:
//! - `terminals` (the registry, with each node's setup), `readings` (the one row codec),
//!   `rollups` (hourly min/mean/max), `cursors` (how far each consumer of commit order got);
//! - `auth` (users, sessions, tokens), `status` (each node's last status), `dead_letters`,
//!   `forward_rejects`;
//! - `node_acks` (how far each node's messages are held without a gap: what may be acked);
//! - `alerts`, `incidents`, `notifications` (the alert engine's tables);
//! - `pictures` (pictures of each terminal, their files beside the database), `cameras`
//!   (each terminal's camera, as `weir terminal camera` sets it);
//! - `backup` (online backup and restore of the database file);
//! - `schema` (named migrations), `writer` (the only code that writes telemetry),
//!   `retention` (the only code that deletes it).

pub mod alerts;
pub mod auth;
pub mod backup;
pub mod cameras;
pub mod cursors;
pub mod dead_letters;
pub mod firmware;
pub mod forward_rejects;
pub mod incidents;
pub mod node_acks;
pub mod notifications;
pub mod pictures;
pub mod readings;
pub mod retention;
pub mod rollups;
pub mod schema;
pub mod status;
pub mod terminals;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rusqlite::{Connection, OpenFlags};

use serde::{Deserialize, Serialize};

/// How hard SQLite works to keep a commit across a power cut.
#[cfg_attr(feature = "config-schema", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    /// Every commit is flushed to the disk before the node is acked: nothing acked is lost to a
    /// power cut.
    Full,
    /// Commits survive a crash of the gateway but the last ones may be lost to a power cut.
    Normal,
}

/// The store's section of the configuration (`[store]`).
#[cfg_attr(feature = "config-schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// "full": each commit reaches the disk before the node is acked (nothing acked is lost
    /// to a power cut). "normal": faster; survives a crash of the gateway, not a power cut.
    pub synchronous: Synchronous,
    /// Most messages committed in one transaction. The writer never waits for a batch to
    /// fill: it commits whatever has arrived, so batches grow only under load.
    pub batch_max_messages: usize,
    /// Days of raw readings kept (0: everything, else at least 7). Hourly rollups (and the
    /// daily figures built from them) are kept for ever, so long charts and exports by the
    /// hour or day still work. A reading that arrives already older than this is not stored.
    pub raw_retention_days: u32,
    /// Refused messages kept for inspection; the oldest go first.
    pub dead_letters_max: u32,
    /// A node is acknowledged only up to the messages the gateway holds without a gap. A gap
    /// opens when a broker drops messages (it lost the gateway's session); the node fills it by
    /// sending its queue again. When a message above the gap, stored at least ack_gap_grace_s
    /// ago, comes again without the gap filled, the node no longer has those messages and the
    /// gap is passed over.
    pub ack_gap_grace_s: u32,
    /// Messages held above gaps per node and boot (memory: about 40 bytes each); past it the
    /// lowest gap is passed over.
    pub ack_max_held: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            synchronous: Synchronous::Full,
            batch_max_messages: 2000,
            raw_retention_days: 0,
            dead_letters_max: 10_000,
            ack_gap_grace_s: 30,
            ack_max_held: 4096,
        }
    }
}

impl StoreConfig {
    /// The bounds of the writer's tracker of what may be acknowledged.
    pub fn ack_limits(&self) -> node_acks::Limits {
        node_acks::Limits {
            gap_grace_s: i64::from(self.ack_gap_grace_s),
            max_held: self.ack_max_held as usize,
            ..node_acks::Limits::default()
        }
    }

    /// Checks what types cannot; each error names its key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.ack_max_held > 0,
            "store.ack_max_held must be at least 1"
        );
        anyhow::ensure!(
            self.batch_max_messages > 0,
            "store.batch_max_messages must be at least 1"
        );
        anyhow::ensure!(
            self.raw_retention_days == 0 || self.raw_retention_days >= 7,
            "store.raw_retention_days must be 0 (keep everything) or at least 7, not {}: nodes keep \
             days of readings while a link is down, and the alert rules and the dashboard's raw \
             charts look back up to two days",
            self.raw_retention_days
        );
        Ok(())
    }
}

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
        private_file(path)
            .with_context(|| format!("making {} readable by its owner only", path.display()))?;
        let store = Store {
            path: path.to_owned(),
            synchronous,
            readers: Mutex::new(Vec::new()),
        };
        let mut conn = store
            .connect()
            .with_context(|| format!("opening the reading store at {}", path.display()))?;
        let recorded = schema::recorded_migrations(&conn)
            .with_context(|| format!("reading the schema of {}", path.display()))?
            .unwrap_or_default();
        let unknown = schema::unknown_migrations(&recorded);
        anyhow::ensure!(
            unknown.is_empty(),
            "{} was written by a newer Weir (migrations {} are unknown to this version): run that \
             version or a newer one, or restore the backup taken before the upgrade (weir restore)",
            path.display(),
            unknown.join(", ")
        );
        schema::migrate(&mut conn)
            .with_context(|| format!("migrating the reading store at {}", path.display()))?;
        Ok(Arc::new(store))
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory of picture files, beside the database (see [`pictures`]).
    pub fn pictures_dir(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join("pictures")
    }

    /// A new read-write connection with Weir's settings.
    pub fn connect(&self) -> rusqlite::Result<Connection> {
        let mut conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_handler(Some(busy_wait(BUSY_TIMEOUT)))?;
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

/// How long a connection waits for another's write lock before it gives up (`SQLITE_BUSY`).
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The busy handler of every connection: waits for another connection's write lock, up to
/// `timeout` ([`BUSY_TIMEOUT`]), checking again every 0.1 ms for the first 5 ms, every 1 ms up
/// to about 155 ms, then every 5 ms. SQLite's own (`busy_timeout`) sleeps 1, 2, 5, 10, 15 ms...
/// between tries, while the store writer's and the alert engine's transactions each hold the
/// lock for well under a millisecond: at 1,000 messages a second, with SQLite's handler the
/// alert's p99 was 41 ms after its publish, with this one 10 ms (`weir-bench latency`, one run
/// each; docs/performance.md).
fn busy_wait(timeout: std::time::Duration) -> impl FnMut(i32) -> bool + Send + 'static {
    let mut since = std::time::Instant::now();
    move |tries| {
        if tries == 0 {
            since = std::time::Instant::now();
        }
        if since.elapsed() >= timeout {
            return false;
        }
        let step_us = match tries {
            0..50 => 100,
            50..200 => 1_000,
            _ => 5_000,
        };
        std::thread::sleep(std::time::Duration::from_micros(step_us));
        true
    }
}

/// Creates the database file readable and writable by its owner only (0600), or makes an
/// existing one so: it holds password hashes and session ids. SQLite gives its `-wal` and
/// `-shm` files the database file's permissions.
#[cfg(unix)]
pub(crate) fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn the_database_and_its_journal_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.db");
        // An older gateway left the file world-readable.
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = crate::Store::open(&path, crate::Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        conn.execute_batch("INSERT INTO users (username, password_hash, role, created_at) VALUES ('a', 'x', 'admin', 0)")
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let p = format!("{}{suffix}", path.display());
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{p}");
        }
    }

    /// A writer waits for another connection's write lock and takes it once it is free; a
    /// lock held past the timeout gives SQLITE_BUSY, not a wait for ever.
    #[test]
    fn a_writer_waits_for_the_lock_and_gives_up_after_the_timeout() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::Store::open(&dir.path().join("weir.db"), crate::Synchronous::Normal).unwrap();
        let mut waiter = store.connect().unwrap();
        let timeout = Duration::from_millis(300);
        waiter
            .busy_handler(Some(super::busy_wait(timeout)))
            .unwrap();

        // Held for 20 ms, then released: the waiter gets it.
        let holder = store.connect().unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            holder.execute_batch("COMMIT").unwrap();
            holder
        });
        waiter.execute_batch("BEGIN IMMEDIATE; COMMIT").unwrap();
        let holder = released.join().unwrap();

        // Held for good: the waiter gives up after the timeout, and says the database is busy.
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let t0 = Instant::now();
        let e = waiter.execute_batch("BEGIN IMMEDIATE").unwrap_err();
        assert!(t0.elapsed() >= timeout, "gave up after {:?}", t0.elapsed());
        assert_eq!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy),
            "{e}"
        );
        holder.execute_batch("COMMIT").unwrap();
    }
}
