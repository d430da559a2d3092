//! `store.raw_retention_days`: old raw readings go, their hourly rollups stay, and nothing the
//! forwarder, the alert engine or the overview still needs is deleted.

mod support;

use support::*;

fn reading(seq: i64, ts: i64, turbidity: f64) -> String {
    format!(
        r#"{{"boot":1,"seq":{seq},"readings":[{{"ts":"{}","turbidity_ntu":{turbidity}}}]}}"#,
        rfc3339(ts)
    )
}

/// Waits until the alert engine has gone over every stored reading (retention keeps what it
/// has not seen).
async fn alerts_caught_up(g: &Gateway) {
    g.eventually(30, || async {
        let (cursor, newest) = g
            .running
            .store
            .with(|c| {
                Ok((
                    c.query_row(
                        "SELECT coalesce((SELECT last_id FROM consumer_cursors WHERE consumer = 'alerts'), 0)",
                        [],
                        |r| r.get::<_, i64>(0),
                    )?,
                    c.query_row("SELECT coalesce(max(id), 0) FROM readings", [], |r| {
                        r.get::<_, i64>(0)
                    })?,
                ))
            })
            .unwrap();
        (cursor == newest).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_raw_readings_go_and_their_hourly_figures_stay() {
    let dir = tempfile::tempdir().unwrap();
    let now = weir_store::now();
    let hour = 3600;
    // Ten days ago, on a whole hour: 12 readings over two hours for HY-001, then 12 recent
    // ones; HY-002 has only the old ones.
    let old = (now - 10 * 86_400) / hour * hour;
    let recent = (now - 3600) / 60 * 60;
    let old_lines = |first_seq: i64| -> Vec<String> {
        (0..12)
            .map(|i| reading(first_seq + i, old + i * 600, i as f64))
            .collect()
    };
    let mut hy1 = old_lines(0);
    hy1.extend((0..12).map(|i| reading(100 + i, recent + i * 60, 1.0)));

    // First without retention: everything is stored.
    let (p1, p2) = {
        let g = Gateway::start(config(dir.path(), None)).await;
        let p1 = g.add_terminal("HY-001");
        let p2 = g.add_terminal("HY-002");
        let port = g.running.mqtt_addr.unwrap().port();
        mosquitto_pub(
            port,
            Some(("HY-001", &p1)),
            "weir/terminals/HY-001/telemetry",
            &hy1,
        );
        mosquitto_pub(
            port,
            Some(("HY-002", &p2)),
            "weir/terminals/HY-002/telemetry",
            &old_lines(0),
        );
        g.eventually(30, || async {
            let (_, m) = g.get("/metrics").await;
            (metric(&m, "weir_readings_stored_total") == Some(36.0)).then_some(())
        })
        .await;
        alerts_caught_up(&g).await;
        g.stop().await;
        (p1, p2)
    };

    // Then with a week of raw readings.
    let mut c = config(dir.path(), None);
    c.store.raw_retention_days = 7;
    let g = Gateway::start(c).await;
    g.eventually(30, || async {
        let (_, m) = g.get("/metrics").await;
        // HY-001's 12 old readings, and 11 of HY-002's: its newest stays for the overview.
        (metric(&m, "weir_pruned_readings_total") == Some(23.0)).then_some(())
    })
    .await;
    assert_eq!(g.count_readings("HY-001", old, old + 2 * hour).await, 0);
    assert_eq!(g.count_readings("HY-001", recent, now + 1).await, 12);
    assert_eq!(g.count_readings("HY-002", old, old + 2 * hour).await, 1);
    let (_, list) = g.get("/api/v1/terminals").await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let hy2 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "HY-002")
        .unwrap();
    assert_eq!(hy2["latest"]["ts"], rfc3339(old + 11 * 600), "{hy2}");

    // The hours are still there, whole.
    let hours = format!(
        "/api/v1/terminals/HY-001/readings?from={}&to={}&step=1h",
        rfc3339(old),
        rfc3339(old + 2 * hour)
    );
    let (_, body) = g.get(&hours).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = v["readings"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{body}");
    assert_eq!(rows[0]["n"], 6);
    assert_eq!(rows[0]["turbidity_ntu"]["max"], 5.0);
    assert_eq!(rows[1]["turbidity_ntu"]["min"], 6.0);

    // A node that sends something older than the window now: not stored, counted, and the
    // hour's figures do not count it twice.
    let port = g.running.mqtt_addr.unwrap().port();
    mosquitto_pub(
        port,
        Some(("HY-001", &p1)),
        "weir/terminals/HY-001/telemetry",
        &[reading(500, old + 60, 99.0)],
    );
    let _ = p2;
    g.eventually(30, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_expired_readings_total") == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(g.count_readings("HY-001", old, old + 2 * hour).await, 0);
    let (_, again) = g.get(&hours).await;
    assert_eq!(again, body);
    g.stop().await;

    // Retention turned off again: what was deleted stays out, rollups stay right.
    let g = Gateway::start(config(dir.path(), None)).await;
    let port = g.running.mqtt_addr.unwrap().port();
    mosquitto_pub(
        port,
        Some(("HY-001", &p1)),
        "weir/terminals/HY-001/telemetry",
        &[reading(501, old + 120, 99.0)],
    );
    g.eventually(30, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_expired_readings_total") == Some(1.0)).then_some(())
    })
    .await;
    let (_, after) = g.get(&hours).await;
    assert_eq!(after, body);
    g.stop().await;
}

#[test]
fn retention_under_a_week_is_refused_with_the_reason() {
    let mut c = weir_gateway::config::Config::default();
    c.store.raw_retention_days = 3;
    let e = format!("{:#}", c.validate().unwrap_err());
    assert!(e.contains("store.raw_retention_days"), "{e}");
}
