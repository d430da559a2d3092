//! `weir export` for inspectors without a browser: a year of one terminal's minute readings to
//! a file, every row counted, in bounded memory, with gaps and faults marked and the same rows
//! as the API.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// 2026-01-01 00:00 in Shanghai.
const FROM: i64 = 1_767_196_800;
const YEAR: i64 = 365 * 86_400;
/// A day without readings: 2026-03-10.
const GAP: (i64, i64) = (FROM + 68 * 86_400, FROM + 69 * 86_400);

fn store_a_year(g: &Gateway) -> u64 {
    g.add_terminal("HY-001");
    let conn = g.running.store.connect().unwrap();
    let key: i64 = conn
        .query_row("SELECT key FROM terminals WHERE id = 'HY-001'", [], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let mut n = 0;
    {
        let mut insert = conn
            .prepare(
                "INSERT INTO readings (terminal, ts, turbidity_ntu, flow_m3h, faults)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .unwrap();
        let mut ts = FROM;
        while ts < FROM + YEAR {
            if !(GAP.0..GAP.1).contains(&ts) {
                // Every 1000th reading's turbidity probe did not answer.
                let fault = (n % 1000 == 999).then_some(r#"{"turbidity_ntu":"no_response"}"#);
                let ntu = fault.is_none().then_some(3.5);
                insert
                    .execute(rusqlite::params![key, ts, ntu, 2.0, fault])
                    .unwrap();
                n += 1;
            }
            ts += 60;
        }
    }
    conn.execute_batch("COMMIT").unwrap();
    n
}

/// Runs `weir export ARGS` on `data` and returns its stdout and its peak RSS, bytes.
fn export(data: &std::path::Path, args: &[&str]) -> (String, u64) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .env("WEIR_DATA_DIR", data)
        .env("WEIR_LOG", "warn")
        .arg("export")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb * 1024);
            }
        }
        assert!(Instant::now() < deadline, "weir export took over 5 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    (String::from_utf8(out.stdout).unwrap(), peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_years_minute_readings_export_with_an_exact_row_count_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    let stored = store_a_year(&g);
    assert_eq!(stored, 525_600 - 1440);
    let file = dir.path().join("HY-001.csv");
    let data = dir.path().to_owned();
    let (from, to) = (rfc3339(FROM), rfc3339(FROM + YEAR));
    let path = file.to_str().unwrap().to_owned();
    let args = [
        "--terminal",
        "HY-001",
        "--from",
        &from,
        "--to",
        &to,
        "-o",
        &path,
    ];
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let started = Instant::now();
    let (printed, peak) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        export(&data, &args)
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let text = std::fs::read_to_string(&file).unwrap();
    eprintln!(
        "weir export: {stored} readings, {} MB of CSV in {took:?}, peak RSS {} MB",
        text.len() >> 20,
        peak >> 20
    );
    assert!(
        printed.contains(&format!("wrote {stored} rows")),
        "{printed}"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .collect();
    assert_eq!(rows.len() as u64, stored);
    // The period, time zone, units and calibration are stated; the gap and the faults marked.
    assert!(
        text.starts_with(&format!(
            "# Weir export, {from} to {to}; ts_utc is UTC (the site's time zone is Asia/Shanghai)"
        )),
        "{}",
        &text[..300]
    );
    assert!(text.contains("# units: flow_m3h m3/h"), "{}", &text[..400]);
    assert!(text.contains("# calibration in force for HY-001 (applied on the node): none"));
    assert!(text.contains(&format!(
        "# gap: HY-001 no reading from {} to {} (1441 min)",
        rfc3339(GAP.0 - 60),
        rfc3339(GAP.1)
    )));
    let faulty = rows.iter().filter(|r| r.contains("no_response")).count();
    assert_eq!(faulty as u64, stored / 1000);
    assert!(text.ends_with(&format!("# rows: {stored}\n")));
    // Bounded: a year of minutes is 30 MB of CSV; the exporter holds a chunk of it.
    assert!(peak > 0 && peak < 64 << 20, "peak RSS {} MB", peak >> 20);

    // The same rows as the API, for one day.
    let day = (FROM + 100 * 86_400, FROM + 101 * 86_400);
    let (status, api) = g
        .get(&format!(
            "/api/v1/terminals/HY-001/readings?from={}&to={}&format=csv",
            rfc3339(day.0),
            rfc3339(day.1)
        ))
        .await;
    assert_eq!(status, 200);
    let path = dir.path().join("day.jsonl");
    let data = dir.path().to_owned();
    let (a, b, p) = (
        rfc3339(day.0),
        rfc3339(day.1),
        path.to_str().unwrap().to_owned(),
    );
    let csv_path = dir.path().join("day.csv");
    let c = csv_path.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        export(&data, &["-t", "HY-001", "--from", &a, "--to", &b, "-o", &c]);
        export(
            &data,
            &[
                "-t", "HY-001", "--from", &a, "--to", &b, "--format", "jsonl", "-o", &p,
            ],
        );
    })
    .await
    .unwrap();
    let exported = std::fs::read_to_string(&csv_path).unwrap();
    let exported: Vec<&str> = exported.lines().filter(|l| !l.starts_with('#')).collect();
    let api: Vec<&str> = api.lines().collect();
    assert_eq!(exported, api);
    let lines = std::fs::read_to_string(&path).unwrap();
    let objects: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(objects[0]["export"]["timezone"] == "Asia/Shanghai");
    assert_eq!(objects.len(), 1 + 1440);
    assert_eq!(objects[1]["terminal"], "HY-001");
    g.stop().await;
}

#[test]
fn a_bad_export_request_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.csv");
    let out = out.to_str().unwrap();
    for (args, says) in [
        (vec!["--format", "xml", "-o", out], "--format xml"),
        (vec!["--from", "yesterday", "-o", out], "--from"),
        (vec!["--step", "5x", "-o", out], "--step"),
        (vec!["-t", "HY-404", "-o", out], "no terminal HY-404"),
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .env("WEIR_DATA_DIR", dir.path())
            .arg("export")
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
