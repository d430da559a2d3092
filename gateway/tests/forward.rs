//! Forwarding to a real VictoriaMetrics through InfluxDB's v2 write API, across an outage.

mod support;

use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions, QoS};
use support::*;

/// Number of points VictoriaMetrics holds for series `metric`.
async fn points_in_vm(port: u16, metric: &str) -> usize {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/export?match[]={metric}&start=2020-01-01T00:00:00Z"
    );
    let Ok(resp) = reqwest::get(&url).await else {
        return 0;
    };
    let body = resp.text().await.unwrap_or_default();
    body.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["values"].as_array().map_or(0, Vec::len))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reading_reaches_victoria_metrics_after_an_outage() {
    let broker = mosquitto("");
    let dir = tempfile::tempdir().unwrap();
    let vm_port = free_port();
    let mut cfg = config(dir.path(), Some(broker.port));
    cfg.influx.enabled = true;
    cfg.influx.url = format!("http://127.0.0.1:{vm_port}");
    cfg.influx.batch_size = 500;
    cfg.influx.max_backoff_s = 1;
    cfg.influx.max_rate = 200;
    // VictoriaMetrics is down while readings arrive.
    let g = Gateway::start(cfg.clone()).await;
    g.add_terminal("HY-005");
    g.add_terminal("HY-006");
    let mut opts = MqttOptions::new("forward-test-node", "127.0.0.1", broker.port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 5000);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let now = weir_store::now();
    let per_terminal = 1500;
    for id in ["HY-005", "HY-006"] {
        for i in 0..per_terminal {
            let ts = now - 2 * 86_400 + i64::from(i) * 60;
            let payload = format!(
                r#"{{"boot":1,"seq":{i},"readings":[{{"ts":"{}","flow_m3h":{},"turbidity_ntu":3.5}}]}}"#,
                rfc3339(ts),
                f64::from(i % 50) / 10.0
            );
            client
                .publish(
                    format!("weir/terminals/{id}/telemetry"),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .unwrap();
        }
    }
    g.eventually(60, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_readings_stored_total") == Some(3000.0)).then_some(())
    })
    .await;
    // The forwarder keeps failing and knows how far behind it is.
    let m = g
        .eventually(20, || async {
            let (_, m) = g.get("/metrics").await;
            (metric(&m, "weir_forward_lag_readings") == Some(3000.0)
                && metric(&m, "weir_forward_errors_total") >= Some(1.0))
            .then_some(m)
        })
        .await;
    assert_eq!(metric(&m, "weir_forwarded_readings_total"), Some(0.0));

    // The server comes back, and backfilling starts at a bounded rate; the gateway restarts
    // half way and goes on from its durable cursor, not from the start.
    let vm = victoria_metrics(Some(vm_port));
    g.eventually(60, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_forwarded_readings_total") >= Some(500.0)).then_some(())
    })
    .await;
    g.stop().await;
    let cursor: i64 = rusqlite::Connection::open(dir.path().join("weir.db"))
        .unwrap()
        .query_row(
            "SELECT last_id FROM consumer_cursors WHERE consumer = 'influx'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        (500..3000).contains(&cursor),
        "the restart should fall mid-backfill; the cursor is at {cursor}"
    );
    let g = Gateway::start(cfg).await;
    g.eventually(60, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_forward_lag_readings") == Some(0.0)).then_some(())
    })
    .await;
    // VictoriaMetrics names InfluxDB fields {measurement}_{field}.
    let flow = g
        .eventually(30, || async {
            let n = points_in_vm(vm.port, "weir_flow_m3h").await;
            (n == 3000).then_some(n)
        })
        .await;
    assert_eq!(flow, 3000);
    let (_, m) = g.get("/metrics").await;
    assert_eq!(
        metric(&m, "weir_forwarded_readings_total"),
        Some((3000 - cursor) as f64),
        "after the restart only what was left is sent"
    );
    assert_eq!(
        points_in_vm(vm.port, r#"weir_turbidity_ntu{terminal="HY-006"}"#).await,
        1500
    );
    g.stop().await;
}

/// An InfluxDB stand-in on loopback: answers the first write 429 with Retry-After: 1, refuses
/// any batch that holds a point of terminal HY-BAD as invalid, and accepts the rest.
async fn scripted_influx() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, String)>>>,
) {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let log = std::sync::Arc::new(std::sync::Mutex::new(
        Vec::<(std::time::Instant, String)>::new(),
    ));
    let seen = log.clone();
    let app = axum::Router::new().route(
        "/api/v2/write",
        axum::routing::post(move |body: String| {
            let seen = seen.clone();
            async move {
                let first = {
                    let mut s = seen.lock().unwrap();
                    s.push((std::time::Instant::now(), body.clone()));
                    s.len() == 1
                };
                if first {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("Retry-After", "1")],
                        "slow down",
                    )
                        .into_response()
                } else if body.contains("terminal=HY-BAD") {
                    (StatusCode::BAD_REQUEST, "invalid field value").into_response()
                } else {
                    StatusCode::NO_CONTENT.into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_a_refused_reading_is_recorded_and_skipped() {
    let (port, log) = scripted_influx().await;
    let broker = mosquitto("");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Some(broker.port));
    cfg.influx.enabled = true;
    cfg.influx.url = format!("http://127.0.0.1:{port}");
    cfg.influx.gzip = false;
    let g = Gateway::start(cfg).await;
    g.add_terminal("HY-007");
    g.add_terminal("HY-BAD");
    let mut opts = MqttOptions::new("forward-test-node-2", "127.0.0.1", broker.port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 100);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let now = weir_store::now();
    // Ten readings, the fourth from the terminal the server refuses.
    for i in 0..10u32 {
        let id = if i == 3 { "HY-BAD" } else { "HY-007" };
        let payload = format!(
            r#"{{"boot":1,"seq":{i},"readings":[{{"ts":"{}","flow_m3h":1.0}}]}}"#,
            rfc3339(now - 600 + i64::from(i) * 10)
        );
        client
            .publish(
                format!("weir/terminals/{id}/telemetry"),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }
    // Every HY-007 reading accepted exactly once, the HY-BAD one recorded as refused.
    let accepted_lines = |log: &[(std::time::Instant, String)]| -> usize {
        log.iter()
            .skip(1)
            .filter(|(_, b)| !b.contains("HY-BAD"))
            .map(|(_, b)| b.lines().count())
            .sum()
    };
    let rejects = || -> i64 {
        g.running
            .store
            .with(|c| {
                c.query_row(
                    "SELECT count(*) FROM forward_rejects WHERE status = 400",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap()
    };
    g.eventually(30, || async {
        (accepted_lines(&log.lock().unwrap()) >= 9 && rejects() == 1).then_some(())
    })
    .await;
    let log = log.lock().unwrap().clone();
    assert_eq!(accepted_lines(&log), 9, "{log:?}");
    // The second attempt waited for the Retry-After second.
    assert!(
        log[1].0 - log[0].0 >= Duration::from_millis(950),
        "retried after {:?}",
        log[1].0 - log[0].0
    );
    let (_, m) = g.get("/metrics").await;
    assert_eq!(metric(&m, "weir_readings_stored_total"), Some(10.0));
    g.stop().await;
}
