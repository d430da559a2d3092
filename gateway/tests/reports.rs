//! Inspectors' reports over a simulated month, checked against figures this test works out on
//! its own from the month it wrote: compliance, completeness, the gap list, uptime, hours in
//! alarm, response times and daily flow.

mod support;

use support::*;
use weir_store::alerts::{self, NewAlert, Rule, Severity};

/// 2026-11-01 00:00 in Shanghai.
const FROM: i64 = 1_793_462_400;
const DAY: i64 = 86_400;
const TO: i64 = FROM + 30 * DAY;

/// What the month holds, by construction.
struct Month {
    /// Minute readings, except in the two gaps.
    readings: Vec<(i64, f64, f64, f64)>,
}

fn gaps() -> [(i64, i64); 2] {
    [
        // Day 3, 10:00 to 16:00 local: a link down for six hours.
        (FROM + 2 * DAY + 10 * 3600, FROM + 2 * DAY + 16 * 3600),
        // Day 20, the whole day.
        (FROM + 19 * DAY, FROM + 20 * DAY),
    ]
}

/// Day 10, 08:00 to 14:00: turbid effluent, 30 NTU (the alarm limit is 20).
const TURBID: (i64, i64) = (FROM + 9 * DAY + 8 * 3600, FROM + 9 * DAY + 14 * 3600);

fn month() -> Month {
    let mut readings = Vec::new();
    let mut ts = FROM;
    while ts < TO {
        let in_gap = gaps().iter().any(|(a, b)| (*a..*b).contains(&ts));
        if !in_gap {
            let ntu = if (TURBID.0..TURBID.1).contains(&ts) {
                30.0
            } else {
                5.0
            };
            // 2 m³/h, and the meter's totaliser counting it minute by minute.
            let volume = 1000.0 + (ts - FROM) as f64 / 60.0 * (2.0 / 60.0);
            readings.push((ts, ntu, 2.0, volume));
        }
        ts += 60;
    }
    Month { readings }
}

async fn stored_month(g: &Gateway) {
    g.add_terminal("HY-001");
    g.add_terminal("HY-002");
    let m = month();
    let conn = g.running.store.connect().unwrap();
    let key: i64 = conn
        .query_row("SELECT key FROM terminals WHERE id = 'HY-001'", [], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    {
        let mut insert = conn
            .prepare(
                "INSERT INTO readings (terminal, ts, turbidity_ntu, flow_m3h, volume_m3)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .unwrap();
        for (ts, ntu, flow, volume) in &m.readings {
            insert
                .execute(rusqlite::params![key, ts, ntu, flow, volume])
                .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
    // The alerts of that month: the node offline over the long gap, and the turbid spell
    // handled by a crew.
    let offline = alerts::insert(
        &conn,
        &NewAlert {
            terminal: "HY-001".into(),
            rule: Rule::Offline,
            severity: Severity::Warning,
            title: "offline".into(),
            detail: String::new(),
            value: None,
            threshold: None,
            at: gaps()[1].0 + 300,
        },
    )
    .unwrap();
    let mut row = alerts::get(&conn, offline).unwrap().unwrap();
    row.state = alerts::AlertState::Resolved;
    row.resolved_at = Some(gaps()[1].1 + 600);
    alerts::save(&conn, &row).unwrap();
    let turbid = alerts::insert(
        &conn,
        &NewAlert {
            terminal: "HY-001".into(),
            rule: Rule::Turbidity,
            severity: Severity::Alarm,
            title: "turbid".into(),
            detail: String::new(),
            value: Some(30.0),
            threshold: Some(20.0),
            at: TURBID.0 + 1800,
        },
    )
    .unwrap();
    let mut row = alerts::get(&conn, turbid).unwrap().unwrap();
    row.state = alerts::AlertState::Resolved;
    row.acknowledged_at = Some(TURBID.0 + 1800 + 5 * 60);
    row.crew = Some("north".into());
    row.dispatched_at = Some(TURBID.0 + 1800 + 10 * 60);
    row.arrived_at = Some(TURBID.0 + 1800 + 60 * 60);
    row.resolved_at = Some(TURBID.1 + 1800);
    alerts::save(&conn, &row).unwrap();
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * a.abs().max(1.0)
}

#[tokio::test]
async fn a_months_report_matches_what_the_month_holds() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    stored_month(&g).await;
    let m = month();

    let (status, body) = g
        .get(&format!(
            "/api/v1/reports/terminals/HY-001?from={}&to={}",
            rfc3339(FROM),
            rfc3339(TO)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["period"]["timezone"], "Asia/Shanghai");
    let r = &v["report"];

    // Completeness: a reading a minute was expected; the gaps' minutes are missing.
    let missing: i64 = gaps().iter().map(|(a, b)| (b - a) / 60).sum();
    let c = &r["completeness"];
    assert_eq!(c["interval_s"], 60);
    assert_eq!(c["expected"], 30 * 1440);
    assert_eq!(c["received"], 30 * 1440 - missing);
    assert_eq!(c["received"], m.readings.len() as i64);
    assert!(close(
        c["rate"].as_f64().unwrap(),
        (30 * 1440 - missing) as f64 / (30 * 1440) as f64
    ));
    // Each gap runs from the last reading before it to the first after it.
    let listed: Vec<(String, String, f64)> = c["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["start"].as_str().unwrap().to_owned(),
                g["end"].as_str().unwrap().to_owned(),
                g["minutes"].as_f64().unwrap(),
            )
        })
        .collect();
    let wanted: Vec<(String, String, f64)> = gaps()
        .iter()
        .map(|(a, b)| (rfc3339(a - 60), rfc3339(*b), ((b - a) / 60 + 1) as f64))
        .collect();
    assert_eq!(listed, wanted);

    // Compliance over time: a reading stands for the minute after it (two minutes, the gap
    // limit, for the last reading before a gap); the turbid spell's six hours are out.
    let measured = m.readings.len() as f64 * 60.0 + 2.0 * 60.0;
    let out = (TURBID.1 - TURBID.0) as f64;
    let k = &r["compliance"];
    assert_eq!(k["basis"], "time");
    assert_eq!(k["limit_ntu"], 20.0);
    assert!(
        close(k["rate"].as_f64().unwrap(), (measured - out) / measured),
        "{k}"
    );
    assert_eq!(k["samples"], m.readings.len() as i64);
    assert_eq!(k["samples_within"], m.readings.len() as i64 - 360);

    // Uptime: offline from 00:05 on day 20 to 00:10 on day 21.
    let offline = (gaps()[1].1 + 600) - (gaps()[1].0 + 300);
    assert!(close(
        r["uptime"].as_f64().unwrap(),
        1.0 - offline as f64 / (TO - FROM) as f64
    ));
    // In alarm from 08:30 to 14:30: six hours.
    assert!(close(r["hours_in_alarm"].as_f64().unwrap(), 6.0));
    assert_eq!(r["alerts_raised"], 2);
    assert_eq!(r["alerts_by_rule"]["offline"], 1);
    assert_eq!(r["alerts_by_rule"]["turbidity"], 1);
    let resp = &r["response"];
    assert_eq!(resp["acknowledge"]["median_min"], 5.0);
    assert_eq!(resp["dispatch"]["median_min"], 10.0);
    assert_eq!(resp["arrive"]["median_min"], 60.0);
    assert_eq!(resp["resolve"]["median_min"], 360.0);

    // Daily flow from the totaliser: 48 m³ a day at 2 m³/h; the first day from its own first
    // count, so one minute short; the day after the silent day carries both days.
    let days = r["daily_flow"].as_array().unwrap();
    assert_eq!(days.len(), 29, "the silent day has no figure");
    assert!(days.iter().all(|d| d["source"] == "totaliser"));
    assert_eq!(days[0]["day"], "2026-11-01");
    assert!(close(
        days[0]["volume_m3"].as_f64().unwrap(),
        48.0 - 2.0 / 60.0
    ));
    assert!(close(days[1]["volume_m3"].as_f64().unwrap(), 48.0));
    assert_eq!(days[19]["day"], "2026-11-21");
    assert!(close(days[19]["volume_m3"].as_f64().unwrap(), 96.0));

    // The county: HY-002 sent nothing, so it has no rate and ranks last; HY-001 first.
    let (status, body) = g
        .get(&format!(
            "/api/v1/reports/county?from={}&to={}",
            rfc3339(FROM),
            rfc3339(TO)
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let county: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(county["ranking"], serde_json::json!(["HY-001", "HY-002"]));
    assert!(close(
        county["compliance"]["rate"].as_f64().unwrap(),
        (measured - out) / measured
    ));
    let hy002 = &county["terminals"][1];
    assert_eq!(hy002["completeness"]["received"], 0);
    assert_eq!(hy002["completeness"]["gaps"].as_array().unwrap().len(), 1);
    assert!(hy002["compliance"]["rate"].is_null());

    // The same as CSV, for a spreadsheet.
    let (status, csv) = g
        .get(&format!(
            "/api/v1/reports/county?from={}&to={}&format=csv",
            rfc3339(FROM),
            rfc3339(TO)
        ))
        .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("# period 2026-10-31T16:00:00Z"),
        "{csv}"
    );
    assert!(lines[1].starts_with("terminal,name,compliance_rate"));
    assert!(lines[2].starts_with("HY-001,"), "{csv}");
    assert!(lines[4].starts_with("county,"), "{csv}");

    // Bad periods are refused by name.
    for (q, says) in [
        (
            "from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z",
            "before",
        ),
        ("from=yesterday", "from="),
        (
            "from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "366 days",
        ),
        ("format=xml", "format"),
    ] {
        let (status, body) = g.get(&format!("/api/v1/reports/county?{q}")).await;
        assert_eq!(status, 400, "{q}");
        assert!(body.contains(says), "{q}: {body}");
    }
    let (status, _) = g.get("/api/v1/reports/terminals/HY-099").await;
    assert_eq!(status, 404);
    g.stop().await;
}
