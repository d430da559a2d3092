//! Ingest through a real Mosquitto broker into a real SQLite file, read back over HTTP.

mod support;

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::*;

fn json_reading(boot: u32, seq: u32, ts: i64, turbidity: f64) -> String {
    format!(
        r#"{{"boot":{boot},"seq":{seq},"readings":[{{"ts":"{}","flow_m3h":1.52,"volume_m3":{},"turbidity_ntu":{turbidity},"sludge_pct":41.5}}]}}"#,
        rfc3339(ts),
        10_000.0 + f64::from(seq) * 0.1
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_json_readings_from_mosquitto_pub_are_stored_exactly_once() {
    // Registered with `weir terminal add`, as an administrator does; then the embedded broker
    // and the node's own login, as docs/protocol.md shows.
    let dir = tempfile::tempdir().unwrap();
    let added = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .env("WEIR_DATA_DIR", dir.path())
        .args(["terminal", "add", "HY-017", "--name", "Test terminal 17"])
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let password = printed_password(&String::from_utf8(added.stdout).unwrap());
    let g = Gateway::start(config(dir.path(), None)).await;
    let port = g.running.mqtt_addr.unwrap().port();
    let login = Some(("HY-017", password.as_str()));
    let now = weir_store::now();
    let first = now - 10_000 * 60;
    let lines: Vec<String> = (0..10_000u32)
        .map(|i| json_reading(1, i, first + i64::from(i) * 60, 3.4))
        .collect();
    mosquitto_pub(port, login, "weir/terminals/HY-017/telemetry", &lines);
    let n = g
        .eventually(60, || async {
            let n = g.count_readings("HY-017", first, now + 1).await;
            (n == 10_000).then_some(n)
        })
        .await;
    assert_eq!(n, 10_000);

    // The same 10,000 again: nothing new.
    mosquitto_pub(port, login, "weir/terminals/HY-017/telemetry", &lines);
    g.eventually(60, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_duplicate_messages_total") == Some(10_000.0)).then_some(())
    })
    .await;
    assert_eq!(g.count_readings("HY-017", first, now + 1).await, 10_000);
    let (_, m) = g.get("/metrics").await;
    assert_eq!(metric(&m, "weir_readings_stored_total"), Some(10_000.0));
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_counted_by_reason_and_kept_and_stored_readings_stay() {
    let broker = mosquitto("");
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), Some(broker.port))).await;
    g.add_terminal("HY-001");
    let now = weir_store::now();
    let topic = "weir/terminals/HY-001/telemetry";
    mosquitto_pub(
        broker.port,
        None,
        topic,
        &[json_reading(1, 0, now - 120, 3.4)],
    );
    g.eventually(20, || async {
        (g.count_readings("HY-001", now - 200, now + 1).await == 1).then_some(())
    })
    .await;

    // Turbidity out of range (same timestamp: it must not replace the stored reading),
    // then something that is not JSON at all, then an unknown terminal.
    mosquitto_pub(
        broker.port,
        None,
        topic,
        &[json_reading(1, 1, now - 120, 5000.0)],
    );
    mosquitto_pub(
        broker.port,
        None,
        topic,
        &["{\"boot\":1,\"seq\":2,\"readings\":[{\"ts\":".into()],
    );
    mosquitto_pub(
        broker.port,
        None,
        "weir/terminals/XX-999/telemetry",
        &[json_reading(1, 0, now - 60, 3.0)],
    );
    let m = g
        .eventually(20, || async {
            let (_, m) = g.get("/metrics").await;
            metric(
                &m,
                "weir_rejected_messages_total{reason=\"unknown_terminal\"}",
            )
            .map(|_| m)
        })
        .await;
    assert_eq!(
        metric(&m, "weir_rejected_messages_total{reason=\"above_max\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "weir_rejected_messages_total{reason=\"bad_json\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "weir_rejected_messages_total{reason=\"unknown_terminal\"}"
        ),
        Some(1.0)
    );

    let (status, body) = g.get("/api/v1/dead-letters").await;
    assert_eq!(status, 200);
    let letters: serde_json::Value = serde_json::from_str(&body).unwrap();
    let details: Vec<&str> = letters
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["detail"].as_str().unwrap())
        .collect();
    assert!(
        details.contains(&"readings[0].turbidity_ntu: 5000 is above the limit of 4000 NTU"),
        "{details:?}"
    );
    assert!(letters[0]["payload"].as_str().unwrap().contains("XX-999") || body.contains("XX-999"));

    // The stored reading is untouched.
    let (_, body) = g
        .get(&format!(
            "/api/v1/terminals/HY-001/readings?from={}&to={}",
            rfc3339(now - 200),
            rfc3339(now + 1)
        ))
        .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["readings"].as_array().unwrap().len(), 1);
    assert_eq!(v["readings"][0]["turbidity_ntu"], 3.4);
    g.stop().await;
}

/// A node's view: publish, and wait for the gateway's ack.
async fn node(port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut opts = MqttOptions::new(format!("node-{id}"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    client
        .subscribe(format!("weir/terminals/{id}/ack"), QoS::AtLeastOnce)
        .await
        .unwrap();
    // Until the subscription is in place.
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await.unwrap() {
            break;
        }
    }
    (client, eventloop)
}

async fn next_ack(eventloop: &mut rumqttc::EventLoop) -> weir_contract::Ack {
    use weir_contract::Message as _;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.unwrap() {
                return weir_contract::Ack::decode(&p.payload).unwrap();
            }
        }
    })
    .await
    .expect("an ack within 20 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_is_acked_only_once_its_readings_are_stored_and_replays_are_acked_again() {
    let broker = mosquitto("");
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), Some(broker.port))).await;
    g.add_terminal("HY-002");
    let (client, mut events) = node(broker.port, "HY-002").await;
    let now = weir_store::now();
    let topic = "weir/terminals/HY-002/telemetry";
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            json_reading(7, 0, now - 60, 2.0),
        )
        .await
        .unwrap();
    let ack = next_ack(&mut events).await;
    assert_eq!((ack.boot, ack.seq), (7, 0));
    // The ack means the reading is readable already.
    assert_eq!(g.count_readings("HY-002", now - 100, now + 1).await, 1);

    // A replay of the same message is acked again and stored once.
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            json_reading(7, 0, now - 60, 2.0),
        )
        .await
        .unwrap();
    let ack = next_ack(&mut events).await;
    assert_eq!((ack.boot, ack.seq), (7, 0));
    assert_eq!(g.count_readings("HY-002", now - 100, now + 1).await, 1);

    // A message refused for a value out of range is acked too: resending cannot fix it.
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            json_reading(7, 1, now - 30, 9999.0),
        )
        .await
        .unwrap();
    let ack = next_ack(&mut events).await;
    assert_eq!((ack.boot, ack.seq), (7, 1));

    // Message 2 never arrives (a broker that lost the gateway's session dropped it): 3 is
    // stored, but the ack stays at 1, or the node would free 2.
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            json_reading(7, 3, now - 10, 2.5),
        )
        .await
        .unwrap();
    let ack = next_ack(&mut events).await;
    assert_eq!((ack.boot, ack.seq), (7, 1));
    assert_eq!(g.count_readings("HY-002", now - 100, now + 1).await, 2);
    // The node sends its queue again: 2 fills the gap and the ack moves past 3.
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            json_reading(7, 2, now - 20, 2.2),
        )
        .await
        .unwrap();
    let ack = next_ack(&mut events).await;
    assert_eq!((ack.boot, ack.seq), (7, 3));
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_bounded_and_a_reading_replayed_under_a_new_boot_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), None);
    c.store.dead_letters_max = 3;
    let g = Gateway::start(c).await;
    let password = g.add_terminal("HY-001");
    let port = g.running.mqtt_addr.unwrap().port();
    let login = Some(("HY-001", password.as_str()));
    let topic = "weir/terminals/HY-001/telemetry";
    let now = weir_store::now();

    // Five refused messages (turbidity out of range, seq 0-4): the newest three are kept.
    let bad: Vec<String> = (0..5)
        .map(|seq| json_reading(1, seq, now - 600 + i64::from(seq), 5000.0))
        .collect();
    mosquitto_pub(port, login, topic, &bad);
    g.eventually(20, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_rejected_messages_total{reason=\"above_max\"}") == Some(5.0))
            .then_some(())
    })
    .await;
    // Counted on arrival, kept on commit: wait for the last commit.
    let seqs = g
        .eventually(20, || async {
            let (_, body) = g.get("/api/v1/dead-letters").await;
            let kept: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
            let mut seqs: Vec<i64> = kept
                .iter()
                .map(|d| {
                    let payload = d["payload"].as_str().unwrap();
                    let v: serde_json::Value = serde_json::from_str(payload).unwrap();
                    v["seq"].as_i64().unwrap()
                })
                .collect();
            seqs.sort();
            (seqs.last() == Some(&4)).then_some(seqs)
        })
        .await;
    assert_eq!(seqs, vec![2, 3, 4]);

    // A node that lost its boot counter sends a stored reading again as a new message.
    mosquitto_pub(port, login, topic, &[json_reading(1, 10, now - 120, 3.4)]);
    mosquitto_pub(port, login, topic, &[json_reading(2, 0, now - 120, 3.9)]);
    let m = g
        .eventually(20, || async {
            let (_, m) = g.get("/metrics").await;
            (metric(&m, "weir_duplicate_readings_total") == Some(1.0)).then_some(m)
        })
        .await;
    assert_eq!(metric(&m, "weir_readings_stored_total"), Some(1.0));
    let (_, body) = g
        .get(&format!(
            "/api/v1/terminals/HY-001/readings?from={}&to={}",
            rfc3339(now - 200),
            rfc3339(now)
        ))
        .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["readings"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["readings"][0]["turbidity_ntu"], 3.4,
        "the first one stays"
    );
    g.stop().await;
}
