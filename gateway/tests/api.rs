//! The HTTP API as a script sees it: rights, errors, stepped answers, CSV.

mod support;

use support::*;
use weir_store::auth::{self, Role};

/// One reading a minute for three hours from `h0` (a whole UTC hour), turbidity = the minute's
/// index, so each step's min, mean and max are known.
fn three_hours(h0: i64) -> Vec<String> {
    (0..180)
        .map(|i| {
            format!(
                r#"{{"boot":1,"seq":{i},"readings":[{{"ts":"{}","turbidity_ntu":{i}}}]}}"#,
                rfc3339(h0 + i * 60)
            )
        })
        .collect()
}

async fn started() -> (tempfile::TempDir, Gateway, i64) {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    let password = g.add_terminal("HY-001");
    // Yesterday 00:00 UTC: 08:00 to 11:00 in Shanghai, the site's default time zone.
    let h0 = (weir_store::now() / 86_400 - 1) * 86_400;
    mosquitto_pub(
        g.running.mqtt_addr.unwrap().port(),
        Some(("HY-001", &password)),
        "weir/terminals/HY-001/telemetry",
        &three_hours(h0),
    );
    g.eventually(30, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_readings_stored_total") == Some(180.0)).then_some(())
    })
    .await;
    (dir, g, h0)
}

fn steps(body: &str) -> Vec<(String, i64, f64, f64, f64)> {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let t = &r["turbidity_ntu"];
            (
                r["ts"].as_str().unwrap().to_owned(),
                r["n"].as_i64().unwrap(),
                t["min"].as_f64().unwrap(),
                t["mean"].as_f64().unwrap(),
                t["max"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_give_min_mean_max_of_whole_steps() {
    let (_dir, g, h0) = started().await;
    let path = |from: i64, to: i64, step: &str| {
        format!(
            "/api/v1/terminals/HY-001/readings?from={}&to={}&step={step}",
            rfc3339(from),
            rfc3339(to)
        )
    };

    // Hours, asked from half past the first to half past the third: all three whole hours.
    let (status, body) = g.get(&path(h0 + 1800, h0 + 9000, "1h")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        steps(&body),
        vec![
            (rfc3339(h0), 60, 0.0, 29.5, 59.0),
            (rfc3339(h0 + 3600), 60, 60.0, 89.5, 119.0),
            (rfc3339(h0 + 7200), 60, 120.0, 149.5, 179.0),
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["from"], rfc3339(h0));
    assert_eq!(v["to"], rfc3339(h0 + 3 * 3600));

    // Five minutes from raw readings: 10:02 to 10:13 is the steps of 10:00, 10:05 and 10:10.
    let (_, body) = g.get(&path(h0 + 120, h0 + 780, "5m")).await;
    assert_eq!(
        steps(&body),
        vec![
            (rfc3339(h0), 5, 0.0, 2.0, 4.0),
            (rfc3339(h0 + 300), 5, 5.0, 7.0, 9.0),
            (rfc3339(h0 + 600), 5, 10.0, 12.0, 14.0),
        ]
    );

    // A day is the site's calendar day (Shanghai's starts at 16:00 UTC): one row, all 180.
    let (_, body) = g.get(&path(h0 + 3600, h0 + 3660, "1d")).await;
    assert_eq!(
        steps(&body),
        vec![(rfc3339(h0 - 8 * 3600), 180, 0.0, 89.5, 179.0)]
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_comes_by_accept_header_or_format_and_names_its_units() {
    let (_dir, g, h0) = started().await;
    let url = g.url(&format!(
        "/api/v1/terminals/HY-001/readings?from={}&to={}",
        rfc3339(h0),
        rfc3339(h0 + 600)
    ));
    let by_accept = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&g.token)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(by_accept.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let by_accept = by_accept.text().await.unwrap();
    let (_, by_format) = g
        .get(&format!(
            "/api/v1/terminals/HY-001/readings?from={}&to={}&format=csv",
            rfc3339(h0),
            rfc3339(h0 + 600)
        ))
        .await;
    assert_eq!(by_accept, by_format);
    let lines: Vec<&str> = by_accept.lines().collect();
    assert!(lines[0].starts_with("terminal,ts_utc,") && lines[0].contains("turbidity_ntu"));
    assert_eq!(lines.len(), 11, "{by_accept}");
    assert!(lines[1].starts_with(&format!("HY-001,{}", rfc3339(h0))));
    g.stop().await;
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|_| panic!("status {status}: the body is not JSON: {body:?}"));
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_wants_a_login_with_the_right_role_and_errors_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    g.add_terminal("HY-001");
    let token = |role| {
        g.running
            .store
            .with(|c| auth::create_token(c, "test", role))
            .unwrap()
    };
    let inspector = token(Role::Inspector);
    let field = token(Role::Field);

    for path in [
        "/api/v1/terminals",
        "/api/v1/terminals/HY-001",
        "/api/v1/terminals/HY-001/readings",
        "/api/v1/dead-letters",
        "/api/v1/alerts",
        "/api/v1/incidents",
    ] {
        for bad in [None, Some("not-a-token")] {
            let (status, body) = call(reqwest::Method::GET, g.url(path), bad).await;
            assert_eq!(status, 401, "{path} with {bad:?}: {body}");
            assert_eq!(body["error"], "unauthorized", "{path}");
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        }
    }

    // Inspectors read; they do not see what nodes sent wrongly, nor act on alerts.
    let (status, _) = call(
        reqwest::Method::GET,
        g.url("/api/v1/terminals"),
        Some(&inspector),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        reqwest::Method::GET,
        g.url("/api/v1/dead-letters"),
        Some(&inspector),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert!(
        body["detail"].as_str().unwrap().contains("inspector"),
        "{body}"
    );
    let (status, _) = call(
        reqwest::Method::GET,
        g.url("/api/v1/dead-letters"),
        Some(&field),
    )
    .await;
    assert_eq!(status, 200);

    // A wrong method and a wrong path say so, in the same shape.
    let (status, body) = call(
        reqwest::Method::DELETE,
        g.url("/api/v1/terminals"),
        Some(&g.token),
    )
    .await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"], "method_not_allowed");
    let (status, body) = call(
        reqwest::Method::GET,
        g.url("/api/v1/nowhere"),
        Some(&g.token),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_found");
    let (status, body) = call(
        reqwest::Method::GET,
        g.url("/api/v1/terminals/HY-001/readings?from=yesterday"),
        Some(&g.token),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("from="), "{body}");
    g.stop().await;
}
