//! `weir backup` while a real gateway ingests, and `weir restore`: the commands as an
//! administrator runs them (the `weir` binary), against a gateway taking readings from
//! Mosquitto.
//!
//! Size: WEIR_BACKUP_TEST_READINGS readings (default 3000, enough for a backup of many small
//! steps to overlap ingest).

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use support::*;

const TERMINAL: &str = "HY-001";

fn readings() -> i64 {
    std::env::var("WEIR_BACKUP_TEST_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// Runs the `weir` binary with its data in `data_dir`.
async fn weir(data_dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .env("WEIR_DATA_DIR", data_dir)
        .env("WEIR_LOG", "warn")
        .output()
        .await
        .expect("running weir")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The times of the terminal's readings in `db`, in commit order.
fn times_in(db: &Path) -> Vec<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT r.ts FROM readings r JOIN terminals t ON t.key = r.terminal
             WHERE t.id = ?1 ORDER BY r.id",
        )
        .unwrap();
    stmt.query_map([TERMINAL], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Readings counted in the hourly rollups of `db`.
fn rolled_up(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
        .query_row("SELECT coalesce(sum(n), 0) FROM rollup_hour", [], |r| {
            r.get(0)
        })
        .unwrap()
}

/// A `weir serve` process, killed when dropped.
struct Served {
    child: tokio::process::Child,
    http: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn serve(data_dir: &Path) -> Served {
    let (http, mqtt) = (free_port(), free_port());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("serve")
        .env("WEIR_DATA_DIR", data_dir)
        .env("WEIR_LOG", "warn")
        .env("WEIR_HTTP__LISTEN", format!("127.0.0.1:{http}"))
        .env("WEIR_MQTT__LISTEN", format!("127.0.0.1:{mqtt}"))
        .env("WEIR_STORE__SYNCHRONOUS", "normal")
        .kill_on_drop(true)
        .spawn()
        .expect("starting weir serve");
    tokio::task::spawn_blocking(move || wait_for_port(http, "weir serve"))
        .await
        .unwrap();
    Served { child, http }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_ingest_restores_into_a_gateway_that_serves_its_readings() {
    let n = readings();
    let broker = mosquitto("");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let g = Gateway::start(config(&data, Some(broker.port))).await;
    g.add_terminal(TERMINAL);

    // One node publishes its readings in order, about 1000 a second.
    let mut opts = MqttOptions::new("backup-test-node", "127.0.0.1", broker.port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 100);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let base = (weir_store::now() - 3 * 86_400) / 3600 * 3600;
    let publisher = tokio::spawn(async move {
        for i in 0..n {
            let payload = format!(
                r#"{{"boot":1,"seq":{i},"readings":[{{"ts":"{}","flow_m3h":{},"turbidity_ntu":3.5}}]}}"#,
                rfc3339(base + i * 60),
                (i % 50) as f64 / 10.0
            );
            client
                .publish(
                    format!("weir/terminals/{TERMINAL}/telemetry"),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .unwrap();
            if i % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let db = data.join("weir.db");
    let stored = || {
        let db = db.clone();
        async move {
            tokio::task::spawn_blocking(move || times_in(&db).len() as i64)
                .await
                .unwrap()
        }
    };
    g.eventually(60, || async { (stored().await >= n / 5).then_some(()) })
        .await;

    // Small steps with pauses: the copy takes many steps while readings keep arriving.
    let out = dir.path().join("weir-backup.db");
    let before = stored().await;
    let o = weir(
        &data,
        &[
            "backup",
            out.to_str().unwrap(),
            "--step-pages",
            "4",
            "--pause-ms",
            "10",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let after = stored().await;
    let printed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        printed.contains("integrity_check ok") && printed.contains("bytes"),
        "{printed}"
    );
    let steps: u64 = printed
        .split(" steps)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no step count in {printed}"));
    assert!(
        steps > 5,
        "the copy took {steps} steps: too few to overlap ingest"
    );
    assert!(!printed.contains("started over"), "{printed}");
    assert!(
        after > before && after < n,
        "ingest did not go on during the backup: {before} stored before it, {after} after, of {n}"
    );

    // The copy holds a prefix of the commit order: the first k readings, every one, each with
    // its rollup, as of one commit made while the backup ran.
    let times = times_in(&out);
    let k = times.len() as i64;
    eprintln!("{before} readings stored before the backup, {k} in it, {after} after it; {printed}");
    assert!(
        k >= before && k <= after,
        "the copy holds {k} readings; {before}..={after} were stored around it"
    );
    let expected: Vec<i64> = (0..k).map(|i| base + i * 60).collect();
    assert_eq!(times, expected, "the copy is not a prefix of the readings");
    assert_eq!(
        rolled_up(&out),
        k,
        "the rollups of the copy disagree with its readings"
    );

    publisher.await.unwrap();
    g.eventually(60, || async { (stored().await == n).then_some(()) })
        .await;
    g.stop().await;

    // Restore into a fresh data directory and serve it.
    let fresh = dir.path().join("fresh");
    let o = weir(&fresh, &["restore", out.to_str().unwrap()]).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = weir(&fresh, &["token", "create", "--role", "admin"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let served = serve(&fresh).await;
    let url = format!(
        "http://127.0.0.1:{}/api/v1/terminals/{TERMINAL}/readings?from={}&to={}",
        served.http,
        rfc3339(base),
        rfc3339(base + n * 60)
    );
    let (status, body) = get(&url, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["readings"].as_array().unwrap().len() as i64,
        k,
        "the restored gateway does not serve the backed-up readings"
    );

    // While it runs, a restore is refused and leaves its database alone.
    let fresh_db = fresh.join("weir.db");
    let o = weir(&fresh, &["restore", out.to_str().unwrap()]).await;
    assert!(
        !o.status.success(),
        "a restore under a running gateway went ahead"
    );
    assert!(text(&o).contains("in use"), "{}", text(&o));
    assert!(!fresh.join("weir.db.restoring").exists());
    drop(served);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(times_in(&fresh_db).len() as i64, k);
    let kept: Vec<_> = std::fs::read_dir(&fresh)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("before-restore"))
        .collect();
    assert!(
        kept.is_empty(),
        "a refused restore moved the database aside"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_backup_is_refused_with_a_clear_message_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let g = Gateway::start(config(&data, None)).await;
    g.add_terminal(TERMINAL);
    g.add_terminal("HY-002");
    let out = dir.path().join("good.db");
    let o = weir(&data, &["backup", out.to_str().unwrap()]).await;
    assert!(o.status.success(), "{}", text(&o));
    // A backup never overwrites a file.
    let o = weir(&data, &["backup", out.to_str().unwrap()]).await;
    assert!(
        !o.status.success() && text(&o).contains("already exists"),
        "{}",
        text(&o)
    );
    g.stop().await;
    let db = data.join("weir.db");
    let before = std::fs::read(&db).unwrap();

    // Pages past the first overwritten: an SQLite file whose tables are garbage.
    let mut bytes = std::fs::read(&out).unwrap();
    assert!(
        bytes.len() > 8192,
        "the backup is only {} bytes",
        bytes.len()
    );
    let half = bytes.len() / 2;
    bytes[4096..].iter_mut().take(half).for_each(|b| *b = 0x55);
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let o = weir(&data, &["restore", damaged.to_str().unwrap()]).await;
    assert!(!o.status.success(), "a damaged backup was restored");
    assert!(
        text(&o).contains("is damaged") && text(&o).contains("nothing was changed"),
        "{}",
        text(&o)
    );

    // Not an SQLite file at all (a truncated download, the wrong file).
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, "this is not a database\n".repeat(400)).unwrap();
    let o = weir(&data, &["restore", junk.to_str().unwrap()]).await;
    assert!(
        !o.status.success(),
        "a file that is no database was restored"
    );
    assert!(
        text(&o).contains("is not an SQLite database"),
        "{}",
        text(&o)
    );

    assert_eq!(std::fs::read(&db).unwrap(), before, "the database changed");
    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("restoring") || n.contains("before-restore")),
        "{names:?}"
    );
}
