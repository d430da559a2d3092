//! End to end: readings published to a real Mosquitto, ingested and committed by the gateway,
//! raise an alert that shows in `GET /api/v1/alerts` and on the SSE stream; people act on it
//! over HTTP.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use weir_gateway::alerts::config::CrewConfig;
use weir_store::auth::{self, Role};

/// One message of `n` minute readings at `ntu`, the last one `end`.
fn telemetry(seq: u32, end: i64, n: i64, ntu: f64) -> String {
    let readings: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"ts":"{}","flow_m3h":1.{},"turbidity_ntu":{ntu},"sludge_pct":12.5}}"#,
                rfc3339(end - (n - 1 - i) * 60),
                i % 7
            )
        })
        .collect();
    format!(
        r#"{{"boot":1,"seq":{seq},"readings":[{}]}}"#,
        readings.join(",")
    )
}

async fn post(g: &Gateway, path: &str, body: Value) -> (u16, Value) {
    post_as(g, &g.token, path, body).await
}

async fn post_as(g: &Gateway, token: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(g.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turbidity_above_the_alarm_limit_for_half_an_hour_shows_as_an_alert_in_the_api_and_on_the_event_stream(
) {
    let broker = mosquitto("");
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), Some(broker.port));
    c.alerts.crews.insert(
        "north".into(),
        CrewConfig {
            terminals: vec!["HY-0*".into()],
            ..CrewConfig::default()
        },
    );
    let g = Gateway::start(c).await;
    g.add_terminal("HY-007");

    // Follow the event stream from before anything is published.
    let mut sse = reqwest::Client::new()
        .get(g.url("/api/v1/events"))
        .bearer_auth(&g.token)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    assert!(sse.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    // 40 minutes at 25 NTU, taken in the past (a node replaying its queue), sent twice:
    // the broker may deliver twice, and nodes resend what was not acknowledged.
    let now = weir_store::now();
    let message = telemetry(0, now - 60, 41, 25.0);
    mosquitto_pub(
        broker.port,
        None,
        "weir/terminals/HY-007/telemetry",
        &[message.clone(), message],
    );

    let alerts = g
        .eventually(20, || async {
            let (status, body) = g.get("/api/v1/alerts").await;
            assert_eq!(status, 200, "{body}");
            let v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
            (!v.is_empty()).then_some(v)
        })
        .await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["terminal"], "HY-007");
    assert_eq!(a["rule"], "turbidity");
    assert_eq!(a["severity"], "alarm");
    assert_eq!(a["state"], "open");
    assert_eq!(a["value"], 25.0);
    assert_eq!(a["threshold"], 20.0);
    assert!(a["work_order"].is_null());
    let id = a["id"].as_i64().unwrap();

    // The stream carried the readings and the alert.
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(seen.contains("event: alert") && seen.contains("event: reading")) {
        assert!(Instant::now() < deadline, "no alert on the stream: {seen}");
        let chunk = tokio::time::timeout(Duration::from_secs(20), sse.chunk())
            .await
            .expect("the stream goes on")
            .unwrap()
            .expect("the stream is open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let alert_event = seen
        .split("\n\n")
        .find(|e| e.starts_with("event: alert"))
        .unwrap();
    let data: serde_json::Value =
        serde_json::from_str(alert_event.split_once("data: ").unwrap().1).unwrap();
    assert_eq!(data["id"], id);
    assert_eq!(data["rule"], "turbidity");
    assert!(seen.contains(r#""terminal":"HY-007""#), "{seen}");

    // People act on it over HTTP. Rights come first: an inspector may not act, even with a
    // malformed body, and field staff may not acknowledge; neither changes the alert.
    let act = |what: &str| format!("/api/v1/alerts/{id}/{what}");
    let token = |role| {
        g.running
            .store
            .with(|c| auth::create_token(c, "role test", role))
            .unwrap()
    };
    let (inspector, field) = (token(Role::Inspector), token(Role::Field));
    let (status, body) = post_as(&g, &inspector, &act("resolve"), json!({"nope": 1})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post_as(&g, &field, &act("acknowledge"), json!({})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(&g, &act("acknowledge"), json!({"nope": 1})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("nope"),
        "the error names the field: {body}"
    );
    let (status, body) = post(&g, "/api/v1/alerts/x/acknowledge", json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&g, "/api/v1/alerts/999999/acknowledge", json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = g.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""state":"open""#), "{body}");
    let (status, body) = post(&g, &act("acknowledge"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "acknowledged");
    assert_eq!(body["acknowledged_by"], "tests");
    let (status, body) = post(&g, &act("acknowledge"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "conflict");
    let (status, body) = post(&g, &act("dispatch"), json!({"crew": "nobody"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&g, &act("dispatch"), json!({"crew": "north"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["work_order"]["crew"], "north");
    assert_eq!(body["work_order"]["targets_met"]["dispatch"], true);
    let (status, body) = post(&g, &act("arrive"), json!({"note": "到达现场"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&g, &act("resolve"), json!({})).await;
    assert_eq!(status, 400, "a note is required: {body}");
    let (status, body) = post(&g, &act("resolve"), json!({"note": "换了探头"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "resolved");
    assert_eq!(body["resolution_note"], "换了探头");
    let (status, body) = g.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let actions: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "opened",
            "acknowledged",
            "dispatched",
            "arrived",
            "resolved"
        ]
    );

    let (status, body) = g
        .get("/api/v1/alerts?state=all&rule=turbidity&terminal=HY-007")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Vec<Value>>(&body).unwrap().len(), 1);
    let (status, body) = g.get("/api/v1/alerts").await;
    assert_eq!((status, body.as_str()), (200, "[]"), "nothing active");
    let (status, _) = g.get("/api/v1/alerts?state=sometimes").await;
    assert_eq!(status, 400);
    let (status, body) = g.get("/api/v1/incidents").await;
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (status, body) = g.get("/api/v1/crews").await;
    assert_eq!(status, 200, "{body}");
    let crews: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(crews[0]["name"], "north");
    assert_eq!(crews[0]["terminals"], json!(["HY-007"]));
    let (status, body) = g.get("/api/v1/service-times").await;
    assert_eq!(status, 200, "{body}");
    let times: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(times[0]["crew"], "north");
    assert_eq!(times[0]["work_orders"], 1);
    assert_eq!(times[0]["dispatch"]["within_target"], 1.0);

    // The same rule over the stored history, as it is and with a higher limit.
    let range = json!({
        "rule": "turbidity", "terminal": "HY-007",
        "from": rfc3339(now - 7200), "to": rfc3339(now + 60),
    });
    let (status, body) = post(&g, "/api/v1/rules/preview", range.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alerts"], 1);
    assert_eq!(body["terminals"][0]["readings"], 41);
    let mut higher = range;
    higher["params"] = json!({"turbidity_warning_ntu": 26.0, "turbidity_alarm_ntu": 30.0});
    let (status, body) = post(&g, "/api/v1/rules/preview", higher).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alerts"], 0);

    // Shutting down ends the event stream rather than waiting for the client to leave.
    tokio::time::timeout(Duration::from_secs(20), g.stop())
        .await
        .expect("the gateway stops with an event stream open");
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = sse.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream ended");
}
