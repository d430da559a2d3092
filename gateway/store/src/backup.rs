//! Online backup and restore of the database file.
//!
//! A backup is taken with SQLite's online backup API while the gateway runs and writes. The
//! copy is made from one read snapshot: the backup's connection opens a read transaction first
//! and keeps it across every step, so the copy is the database as it was at one commit (a
//! prefix of the commit order) and the copy never restarts because the writer committed. In
//! WAL mode a reader never blocks the writer; the pause between steps leaves the disk to it.
//! The copy is written beside its destination, checked with `PRAGMA integrity_check`, switched
//! to a single self-contained file (rollback journal, no `-wal`) and only then renamed into
//! place.
//!
//! A restore refuses while anything holds the database open (a running gateway holds it for
//! as long as it runs), refuses a file that is not a sound Weir database or that a newer Weir
//! wrote, stages the copy beside the database, brings its schema up to date there, and only
//! then keeps the old database aside and puts the copy in its place.
//!
//! Picture files live beside the database, not in it: see docs/deployment.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};

/// How a backup paces itself.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Pages copied in one step (a page is 4 KiB).
    pub pages_per_step: i32,
    /// Pause after each step, leaving the disk to the gateway's writer.
    pub pause: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        // 4 MiB a step, then 5 ms: about 1 GB a minute on an SSD while ingest goes on.
        Pace {
            pages_per_step: 1024,
            pause: Duration::from_millis(5),
        }
    }
}

/// What a backup did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Size of the copy, bytes.
    pub bytes: u64,
    /// Pages copied.
    pub pages: u64,
    /// Steps taken.
    pub steps: u64,
    /// Times the copy started over because the database changed under it (expected 0: the
    /// copy reads one snapshot).
    pub restarts: u64,
    /// Time to copy.
    pub copy_time: Duration,
    /// Time to check the copy.
    pub check_time: Duration,
}

/// Why a file is not a database a restore can use, or why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// There is no database to back up.
    #[error("no database at {0}: check data_dir in the configuration")]
    NoDatabase(PathBuf),
    /// The destination exists; a backup never overwrites.
    #[error("{0} already exists: choose a new name (a backup never overwrites a file)")]
    Exists(PathBuf),
    /// The file is not an SQLite database at all.
    #[error("{path} is not an SQLite database ({detail}): nothing was changed")]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// SQLite's words.
        detail: String,
    },
    /// The file is an SQLite database that fails its integrity check.
    #[error("{path} is damaged: PRAGMA integrity_check found {problems}; nothing was changed")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The first problems SQLite listed.
        problems: String,
    },
    /// The file is an SQLite database but not Weir's.
    #[error("{0} is an SQLite database but not a Weir database (it has no schema_migrations table); nothing was changed")]
    NotWeir(PathBuf),
    /// The file was written by a newer Weir.
    #[error("{path} was written by a newer Weir (migrations {unknown} are unknown to this version): install that version or a newer one first; nothing was changed")]
    Newer {
        /// The file.
        path: PathBuf,
        /// The migrations this version does not know, comma-separated.
        unknown: String,
    },
    /// Something holds the database open.
    #[error("{0} is in use (a running gateway holds it open): stop it first (systemctl stop weir); nothing was changed")]
    InUse(PathBuf),
    /// The staged copy could not be brought up to date.
    #[error("migrating the restored copy {path}: {detail}; nothing was changed")]
    Migrate {
        /// The staged copy.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// SQLite failed.
    #[error("{what}: {source}")]
    Sqlite {
        /// What was being done.
        what: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file system failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn sql(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let what = what.into();
    move |source| Error::Sqlite { what, source }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Copies the database at `db` to a new file `out` while others read and write it, then
/// checks the copy. `progress` is called after each step with (pages left, pages in all).
pub fn backup(
    db: &Path,
    out: &Path,
    pace: Pace,
    progress: &dyn Fn(u64, u64),
) -> Result<Report, Error> {
    if !db.is_file() {
        return Err(Error::NoDatabase(db.to_owned()));
    }
    if out.exists() {
        return Err(Error::Exists(out.to_owned()));
    }
    let partial = with_suffix(out, ".partial");
    remove_with_journals(&partial)?;
    let result = copy_and_check(db, out, &partial, pace, progress);
    if result.is_err() {
        let _ = remove_with_journals(&partial);
    }
    result
}

fn copy_and_check(
    db: &Path,
    out: &Path,
    partial: &Path,
    pace: Pace,
    progress: &dyn Fn(u64, u64),
) -> Result<Report, Error> {
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(format!("opening {}", db.display())))?;
    src.busy_timeout(Duration::from_secs(10))
        .map_err(sql("setting a busy timeout"))?;
    // One read snapshot for the whole copy: steps never see a later commit, so the copy
    // never restarts and holds a prefix of the commit order.
    src.execute_batch("BEGIN DEFERRED; SELECT count(*) FROM sqlite_master;")
        .map_err(sql(format!("reading {}", db.display())))?;
    // The copy holds password hashes and session ids, as the database does: owner only.
    crate::private_file(partial).map_err(io(format!(
        "creating {} (is its directory writable?)",
        partial.display()
    )))?;
    let mut dst =
        Connection::open(partial).map_err(sql(format!("opening {}", partial.display())))?;
    let started = Instant::now();
    let (mut steps, mut restarts, mut last_remaining) = (0u64, 0u64, u64::MAX);
    let pages;
    {
        let b = Backup::new(&src, &mut dst).map_err(sql("starting the backup"))?;
        loop {
            let r = b
                .step(pace.pages_per_step.max(1))
                .map_err(sql("copying a step of pages"))?;
            steps += 1;
            let p = b.progress();
            let (remaining, total) = (p.remaining.max(0) as u64, p.pagecount.max(0) as u64);
            if remaining > last_remaining {
                restarts += 1;
            }
            last_remaining = remaining;
            progress(remaining, total);
            match r {
                StepResult::Done => {
                    pages = total;
                    break;
                }
                StepResult::More | StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(pace.pause)
                }
                _ => std::thread::sleep(pace.pause),
            }
        }
    }
    let copy_time = started.elapsed();
    src.execute_batch("COMMIT")
        .map_err(sql("ending the read snapshot"))?;
    drop(src);
    // The copy is one file that needs no -wal beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sql("switching the copy to a rollback journal"))?;
    drop(dst);
    let checked = Instant::now();
    integrity(partial)?;
    let check_time = checked.elapsed();
    std::fs::rename(partial, out).map_err(io(format!(
        "renaming {} to {}",
        partial.display(),
        out.display()
    )))?;
    let bytes = std::fs::metadata(out)
        .map_err(io(format!("reading the size of {}", out.display())))?
        .len();
    Ok(Report {
        bytes,
        pages,
        steps,
        restarts,
        copy_time,
        check_time,
    })
}

/// What a backup file holds, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// Migrations this version knows that the file has not had yet, in order.
    pub pending: Vec<&'static str>,
}

/// Checks that `path` is a sound Weir database this version can use: SQLite's integrity
/// check passes, and every migration it had is one this version knows. Reads only.
pub fn check(path: &Path) -> Result<Checked, Error> {
    if !path.is_file() {
        return Err(Error::NotADatabase {
            path: path.to_owned(),
            detail: "no such file".into(),
        });
    }
    let conn = integrity(path)?;
    let had = crate::schema::recorded_migrations(&conn)
        .map_err(sql(format!("reading the migrations of {}", path.display())))?
        .ok_or_else(|| Error::NotWeir(path.to_owned()))?;
    let known = crate::schema::migrations();
    let unknown = crate::schema::unknown_migrations(&had);
    if !unknown.is_empty() {
        return Err(Error::Newer {
            path: path.to_owned(),
            unknown: unknown.join(", "),
        });
    }
    let pending = known
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !had.iter().any(|h| h == n))
        .collect();
    Ok(Checked { pending })
}

/// Runs `PRAGMA integrity_check` on `path` (read-only) and returns the open connection.
fn integrity(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_a_database(path, e))?;
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| not_a_database(path, e))?;
    if rows != ["ok"] {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            problems: rows.join("; "),
        });
    }
    Ok(conn)
}

fn not_a_database(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::NotADatabase {
            path: path.to_owned(),
            detail: e.to_string(),
        },
        Some(ErrorCode::DatabaseCorrupt) => Error::Corrupt {
            path: path.to_owned(),
            problems: e.to_string(),
        },
        _ => Error::Sqlite {
            what: format!("reading {}", path.display()),
            source: e,
        },
    }
}

/// Holds a database for as long as it lives: nothing else can open it meanwhile.
#[derive(Debug)]
pub struct Exclusive {
    _conn: Connection,
}

/// Takes `db` for this process alone, or says it is in use. A gateway holds its database open
/// (a shared lock) from start to exit, as does any `weir` command while it runs, so this fails
/// while one runs. Returns None when there is no database at `db`.
pub fn exclusive(db: &Path) -> Result<Option<Exclusive>, Error> {
    if !db.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(format!("opening {}", db.display())))?;
    // No busy timeout: a lock held by anyone else is an answer, not something to wait out.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(sql("asking for an exclusive lock"))?;
    match conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;") {
        Ok(()) => Ok(Some(Exclusive { _conn: conn })),
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            ) =>
        {
            Err(Error::InUse(db.to_owned()))
        }
        Err(e) => Err(not_a_database(db, e)),
    }
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// Where the database it replaced was kept, if there was one.
    pub kept: Option<PathBuf>,
    /// The migrations it ran on the restored copy.
    pub migrated: Vec<&'static str>,
    /// Size of the restored database, bytes.
    pub bytes: u64,
}

/// Puts the backup `from` in place of the database `db`: refuses a damaged, foreign or newer
/// file and a database in use, stages the copy beside `db`, migrates it, keeps the old
/// database (and its `-wal`, if a crash left one) as `db.before-restore-{unix time}`, and
/// moves the copy in.
pub fn restore(from: &Path, db: &Path) -> Result<Restored, Error> {
    let checked = check(from)?;
    let held = exclusive(db)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(io(format!("creating the data directory {}", dir.display())))?;
    }
    let staged = with_suffix(db, ".restoring");
    remove_with_journals(&staged)?;
    let result = stage(from, &staged).and_then(|()| {
        // The staged copy gets the database's settings and its pending migrations.
        let store =
            crate::Store::open(&staged, crate::Synchronous::Full).map_err(|e| Error::Migrate {
                path: staged.clone(),
                detail: format!("{e:#}"),
            })?;
        drop(store);
        // One file to move: no -wal or -shm left beside it under the staged name. The
        // gateway turns WAL back on when it opens it.
        Connection::open(&staged)
            .and_then(|c| c.pragma_update(None, "journal_mode", "DELETE"))
            .map_err(sql(format!("closing the journal of {}", staged.display())))?;
        integrity(&staged).map(drop)
    });
    if let Err(e) = result {
        let _ = remove_with_journals(&staged);
        return Err(e);
    }
    // Closing the last connection folds a -wal a crash left into the old file; from here on
    // the files are only renamed.
    drop(held);
    let kept = if db.exists() {
        let aside = with_suffix(db, &format!(".before-restore-{}", crate::now()));
        for suffix in ["", "-wal"] {
            let (p, to) = (with_suffix(db, suffix), with_suffix(&aside, suffix));
            if p.exists() {
                std::fs::rename(&p, &to).map_err(io(format!(
                    "keeping {} as {}",
                    p.display(),
                    to.display()
                )))?;
            }
        }
        Some(aside)
    } else {
        None
    };
    // A -shm belongs to the file kept aside; the restored one builds its own.
    let _ = std::fs::remove_file(with_suffix(db, "-shm"));
    std::fs::rename(&staged, db).map_err(io(format!(
        "moving {} to {}",
        staged.display(),
        db.display()
    )))?;
    let bytes = std::fs::metadata(db)
        .map_err(io(format!("reading the size of {}", db.display())))?
        .len();
    Ok(Restored {
        kept,
        migrated: checked.pending,
        bytes,
    })
}

/// Copies the backup `from` to the new file `to` with the backup API (a page-exact copy that
/// also reads a backup still in WAL mode correctly).
fn stage(from: &Path, to: &Path) -> Result<(), Error> {
    let src = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_a_database(from, e))?;
    let mut dst = Connection::open(to).map_err(sql(format!("creating {}", to.display())))?;
    let b = Backup::new(&src, &mut dst).map_err(sql("starting the copy"))?;
    b.run_to_completion(4096, Duration::ZERO, None)
        .map_err(sql(format!(
            "copying {} to {}",
            from.display(),
            to.display()
        )))
}

fn remove_with_journals(path: &Path) -> Result<(), Error> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = with_suffix(path, suffix);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("removing {}", p.display()))(e))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> std::sync::Arc<crate::Store> {
        let store = crate::Store::open(&dir.join("weir.db"), crate::Synchronous::Normal).unwrap();
        store
            .connect()
            .unwrap()
            .execute_batch(
                "INSERT INTO terminals (key, id, name, created_at) VALUES (1, 'HY-001', 'a', 0);
                 INSERT INTO readings (terminal, ts, flow_m3h) VALUES (1, 60, 1.5), (1, 120, 2.5);",
            )
            .unwrap();
        store
    }

    fn count(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_backup_is_one_checked_file_that_a_restore_puts_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let out = dir.path().join("copy.db");
        let report = backup(s.path(), &out, Pace::default(), &|_, _| {}).unwrap();
        assert!(report.bytes > 0 && report.pages > 0, "{report:?}");
        assert!(!with_suffix(&out, "-wal").exists(), "the copy needs a -wal");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the copy is readable by others");
        }
        assert_eq!(count(&out), 2);
        // The copy never overwrites.
        assert!(matches!(
            backup(s.path(), &out, Pace::default(), &|_, _| {}),
            Err(Error::Exists(_))
        ));
        drop(s);
        let fresh = tempfile::tempdir().unwrap();
        let db = fresh.path().join("weir.db");
        let r = restore(&out, &db).unwrap();
        assert_eq!((r.kept, r.migrated), (None, vec![]));
        assert_eq!(count(&db), 2);
        let names: Vec<String> = std::fs::read_dir(fresh.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("weir.db") && !n.contains("restoring")),
            "{names:?}"
        );
    }

    #[test]
    fn a_restore_refuses_a_database_held_open_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let out = dir.path().join("copy.db");
        backup(s.path(), &out, Pace::default(), &|_, _| {}).unwrap();
        let open = s.connect().unwrap();
        open.query_row("SELECT 1", [], |_| Ok(())).unwrap();
        let e = restore(&out, s.path()).unwrap_err();
        assert!(matches!(e, Error::InUse(_)), "{e}");
        assert!(!with_suffix(s.path(), ".restoring").exists());
        drop(open);
        drop(s);
        let r = restore(&out, &dir.path().join("weir.db")).unwrap();
        let kept = r.kept.unwrap();
        assert_eq!(count(&kept), 2, "the old database was not kept");
    }

    #[test]
    fn a_backup_of_an_older_schema_is_migrated_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.db");
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        let all = crate::schema::migrations();
        for (name, sql) in &all[..all.len() - 1] {
            conn.execute_batch(sql).unwrap();
            conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [name])
                .unwrap();
        }
        drop(conn);
        let db = dir.path().join("data/weir.db");
        let r = restore(&old, &db).unwrap();
        assert_eq!(r.migrated, vec![all[all.len() - 1].0]);
        assert!(check(&db).unwrap().pending.is_empty());

        let newer = dir.path().join("newer.db");
        std::fs::copy(&db, &newer).unwrap();
        Connection::open(&newer)
            .unwrap()
            .execute(
                "INSERT INTO schema_migrations VALUES ('core_9999_future', 0)",
                [],
            )
            .unwrap();
        let e = restore(&newer, &db).unwrap_err();
        assert!(e.to_string().contains("core_9999_future"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_and_nothing_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        drop(s);
        let db = dir.path().join("weir.db");
        let before = std::fs::read(&db).unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
        let e = restore(&junk, &db).unwrap_err();
        assert!(matches!(e, Error::NotADatabase { .. }), "{e}");
        assert!(e.to_string().contains("not an SQLite database"), "{e}");
        assert_eq!(std::fs::read(&db).unwrap(), before);
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (a)")
            .unwrap();
        assert!(matches!(restore(&foreign, &db), Err(Error::NotWeir(_))));
    }
}
