//! Each node may publish only under its own terminal: on the embedded broker, and on
//! Mosquitto configured as docs/operations.md shows.

mod support;

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use support::*;

/// Connects as `user`; returns the client, or the broker's refusal.
async fn connect(port: u16, user: Option<(&str, &str)>) -> Result<AsyncClient, ConnectReturnCode> {
    let mut opts = MqttOptions::new(format!("acl-{}", free_port()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    if let Some((u, p)) = user {
        opts.set_credentials(u, p);
    }
    let (client, mut events) = AsyncClient::new(opts, 100);
    let code = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) => return a.code,
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => return code,
                Err(e) => panic!("connection failed: {e}"),
            }
        }
    })
    .await
    .expect("a CONNACK within 10 s");
    if code != ConnectReturnCode::Success {
        return Err(code);
    }
    // Keep the session going; a broker may close it after refusing a publish.
    tokio::spawn(async move {
        loop {
            if events.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    Ok(client)
}

fn reading(seq: u32, ts: i64) -> String {
    format!(
        r#"{{"boot":1,"seq":{seq},"readings":[{{"ts":"{}","flow_m3h":2.5}}]}}"#,
        rfc3339(ts)
    )
}

/// Node HY-001 publishes its own reading and one under HY-002; only its own is stored.
async fn only_own_topics_are_stored(g: &Gateway, port: u16, hy001: &str) {
    let node = connect(port, Some(("HY-001", hy001)))
        .await
        .expect("HY-001 logs in");
    let now = weir_store::now();
    node.publish(
        "weir/terminals/HY-001/telemetry",
        QoS::AtLeastOnce,
        false,
        reading(0, now - 10),
    )
    .await
    .unwrap();
    node.publish(
        "weir/terminals/HY-002/telemetry",
        QoS::AtLeastOnce,
        false,
        reading(0, now - 20),
    )
    .await
    .unwrap();
    g.eventually(20, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_readings_stored_total") == Some(1.0)).then_some(())
    })
    .await;
    // Give a wrongly routed message time to arrive, then check it did not.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, body) = g.get("/api/v1/terminals/HY-002/readings").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["readings"].as_array().unwrap().len(),
        0,
        "HY-001 wrote as HY-002: {body}"
    );
    let (_, body) = g.get("/api/v1/terminals/HY-001/readings").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["readings"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_refuses_strangers_and_keeps_nodes_to_their_own_topics() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    let port = g.running.mqtt_addr.unwrap().port();
    let hy001 = g.add_terminal("HY-001");
    let _hy002 = g.add_terminal("HY-002");
    assert_eq!(
        connect(port, None).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(
        connect(port, Some(("HY-001", "wrong-password")))
            .await
            .err(),
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    assert_eq!(
        connect(port, Some(("HY-404", &hy001))).await.err(),
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    only_own_topics_are_stored(&g, port, &hy001).await;
    let (_, m) = g.get("/metrics").await;
    assert!(
        metric(&m, "weir_broker_acl_denied_total").unwrap() >= 1.0,
        "{m}"
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_with_the_documented_password_file_and_acl_gives_the_same_guarantee() {
    let dir = tempfile::tempdir().unwrap();
    // Mosquitto reads these files as the `mosquitto` user.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let pwfile = dir.path().join("passwd");
    let aclfile = dir.path().join("acl");
    let (gw_pass, hy001, hy002) = ("gateway-secret-1", "node-secret-001", "node-secret-002");
    for (user, pass) in [
        ("weir-gateway", gw_pass),
        ("HY-001", hy001),
        ("HY-002", hy002),
    ] {
        let create = if pwfile.exists() { vec![] } else { vec!["-c"] };
        let ok = std::process::Command::new("mosquitto_passwd")
            .args(create)
            .args(["-b", pwfile.to_str().unwrap(), user, pass])
            .status()
            .expect("mosquitto_passwd (Debian package mosquitto) must be installed");
        assert!(ok.success());
    }
    // The ACL of docs/operations.md, as written there.
    let doc = include_str!("../../docs/operations.md");
    let acl = doc
        .split("```acl\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/operations.md shows the ACL in an ```acl block");
    std::fs::write(&aclfile, acl).unwrap();
    let broker = mosquitto(&format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\n",
        pwfile.display(),
        aclfile.display()
    ));
    let mut cfg = config(dir.path(), Some(broker.port));
    cfg.mqtt.username = "weir-gateway".into();
    cfg.mqtt.password = gw_pass.into();
    let g = Gateway::start(cfg).await;
    // Registry passwords are the gateway's; Mosquitto checks its own password file.
    g.add_terminal("HY-001");
    g.add_terminal("HY-002");
    assert_eq!(
        connect(broker.port, None).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(
        connect(broker.port, Some(("HY-001", hy002))).await.err(),
        Some(ConnectReturnCode::NotAuthorized)
    );
    only_own_topics_are_stored(&g, broker.port, hy001).await;
    g.stop().await;
}
