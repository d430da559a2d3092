//! A node's retained config: set over the API by field staff, checked by the contract, kept
//! in the registry, and published to the node, again after the gateway restarts.

mod support;

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::*;
use weir_contract::{Message as _, NodeConfig};
use weir_store::auth::{self, Role};

const TOPIC: &str = "weir/terminals/HY-001/config";

/// Connects as the node and returns the first config it receives, with its retain flag.
async fn receive(port: u16, password: &str) -> (NodeConfig, bool) {
    let mut opts = MqttOptions::new("weir-node-HY-001", "127.0.0.1", port);
    opts.set_credentials("HY-001", password)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 10);
    client.subscribe(TOPIC, QoS::AtLeastOnce).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = events.poll().await.unwrap() {
                assert_eq!(p.topic, TOPIC);
                return (NodeConfig::decode(&p.payload).unwrap(), p.retain);
            }
        }
    })
    .await
    .expect("the node received its config");
    let _ = client.disconnect().await;
    got
}

async fn put(g: &Gateway, token: &str, id: &str, body: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .put(g.url(&format!("/api/v1/terminals/{id}/config")))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Waits until a node connecting finds `expected` as its retained config (a change is
/// published just after the API answers).
async fn node_finds(port: u16, password: &str, expected: &NodeConfig) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (got, retained) = receive(port, password).await;
        if got == *expected && retained {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node still finds {got:?} (retained: {retained}), not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_staff_set_a_config_and_the_node_receives_it_retained_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    let password = g.add_terminal("HY-001");
    let token = |role| {
        g.running
            .store
            .with(|c| auth::create_token(c, "test", role))
            .unwrap()
    };
    let (field, inspector) = (token(Role::Field), token(Role::Inspector));

    // No setup yet: no config.
    let (_, body) = g.get("/api/v1/terminals/HY-001/config").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["config"].is_null(), "{v}");

    let wanted = r#"{"sample_interval_s":30,"publish_interval_s":120,"tank_depth_m":2.5,
        "sensor_height_m":3.0,"calibration":{"turbidity_ntu":{"offset":-0.4,"scale":1.02}}}"#;
    let (status, v) = put(&g, &field, "HY-001", wanted).await;
    assert_eq!(status, 200, "{v}");
    let expected = NodeConfig::decode(wanted.as_bytes()).unwrap();
    let port = g.running.mqtt_addr.unwrap().port();
    node_finds(port, &password, &expected).await;

    // Refusals name the problem and change nothing.
    for (body, names) in [
        (r#"{"sample_interval_s":5}"#, "sample_interval_s"),
        (r#"{"sample_interval":60}"#, "sample_interval"),
        (r#"{"tank_depth_m":50}"#, "tank_depth_m"),
        ("sample_interval_s=60", "JSON"),
    ] {
        let (status, v) = put(&g, &field, "HY-001", body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(names), "{body}: {v}");
    }
    let (status, v) = put(&g, &inspector, "HY-001", "{}").await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = put(&g, &field, "HY-404", "{}").await;
    assert_eq!(status, 404, "{v}");
    let (_, body) = g.get("/api/v1/terminals/HY-001/config").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["config"]["sample_interval_s"], 30, "{v}");
    let (_, body) = g.get("/api/v1/terminals/HY-001").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["tank_depth_m"], 2.5, "{v}");

    // A change names only what changes: the rest stays, calibrations per quantity.
    let (status, v) = put(&g, &field, "HY-001", r#"{"sample_interval_s":45}"#).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = put(
        &g,
        &field,
        "HY-001",
        r#"{"calibration":{"flow_m3h":{"offset":0.1,"scale":1.0}}}"#,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let c = &v["config"];
    assert_eq!(c["sample_interval_s"], 45, "{v}");
    assert_eq!(c["publish_interval_s"], 120, "{v}");
    assert_eq!(c["tank_depth_m"], 2.5, "{v}");
    assert_eq!(c["calibration"]["turbidity_ntu"]["offset"], -0.4, "{v}");
    assert_eq!(c["calibration"]["flow_m3h"]["offset"], 0.1, "{v}");
    let changed = NodeConfig::decode(serde_json::to_string(c).unwrap().as_bytes()).unwrap();
    node_finds(port, &password, &changed).await;
    g.stop().await;

    // The embedded broker starts empty; the gateway publishes the config again.
    let g = Gateway::start(config(dir.path(), None)).await;
    let port = g.running.mqtt_addr.unwrap().port();
    node_finds(port, &password, &changed).await;
    g.stop().await;
}
