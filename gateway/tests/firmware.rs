//! Firmware updates over the air, end to end: the county signs images, the gateway stores
//! only those that verify, and a simulated fleet of 38 nodes (each booting through
//! embassy-boot's boot loader over its own flash slots) is updated in two stages over the
//! embedded broker, one node rolling back from an image that never reports.
//!
//! The images are 8 KiB here (16 pieces); `WEIR_FIRMWARE_TEST_IMAGE_KIB=48` sends images of
//! a board's size class instead.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::*;
use tokio_util::sync::CancellationToken;
use weir_gateway::firmware::commands::{self, Group};
use weir_gateway::firmware::image;
use weir_sim::{Credentials, Fleet, FleetConfig};
use weir_store::firmware::{self as store_fw, Target, TargetState};

const V1: &str = weir_node::FIRMWARE;
const V2: &str = "weir-node 0.2.0";
const BAD: &str = "weir-node 0.2.0-rc1";

fn image_len() -> usize {
    std::env::var("WEIR_FIRMWARE_TEST_IMAGE_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(8)
        * 1024
}

/// Writes a simulated image and its signature; returns the image's path.
fn signed_image(
    dir: &std::path::Path,
    name: &str,
    version: &str,
    bad: bool,
    key: &std::path::Path,
) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, weir_sim::image::build(version, bad, image_len())).unwrap();
    commands::sign(&path, key, &commands::sig_path(&path)).unwrap();
    path
}

async fn targets(gw: &Gateway) -> HashMap<String, Target> {
    gw.running
        .store
        .run(store_fw::targets)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.terminal.clone(), t))
        .collect()
}

async fn firmware_of(gw: &Gateway, id: &str) -> Option<String> {
    let id = id.to_string();
    gw.running
        .store
        .run(move |c| weir_store::status::get(c, &id))
        .await
        .unwrap()
        .and_then(|s| s.firmware)
}

#[test]
fn an_image_whose_signature_does_not_verify_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("county.key");
    let public = commands::keygen(&key).unwrap();
    let other = dir.path().join("other.key");
    commands::keygen(&other).unwrap();
    let store =
        weir_store::Store::open(&dir.path().join("weir.db"), weir_store::Synchronous::Normal)
            .unwrap();
    let conn = store.connect().unwrap();
    let config = weir_gateway::firmware::FirmwareConfig {
        public_key: public,
        ..Default::default()
    };
    // Signed with another key.
    let forged = signed_image(dir.path(), "forged.bin", V2, false, &other);
    let err = commands::add(&conn, &config, &forged, &commands::sig_path(&forged), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not verify"), "{err}");
    // Changed after signing.
    let changed = signed_image(dir.path(), "changed.bin", V2, false, &key);
    let mut bytes = std::fs::read(&changed).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&changed, bytes).unwrap();
    let err = commands::add(
        &conn,
        &config,
        &changed,
        &commands::sig_path(&changed),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("does not verify"), "{err}");
    assert!(store_fw::list(&conn).unwrap().is_empty());
    // No key configured: a clear error too.
    let none = weir_gateway::firmware::FirmwareConfig::default();
    let good = signed_image(dir.path(), "good.bin", V2, false, &key);
    let err = commands::add(&conn, &none, &good, &commands::sig_path(&good), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("firmware.public_key is not set"), "{err}");
    // The good one is stored, with the version its header declares.
    let (img, new) =
        commands::add(&conn, &config, &good, &commands::sig_path(&good), None).unwrap();
    assert!(new);
    assert_eq!(img.version, V2);
    assert_eq!(
        image::declared_version(&std::fs::read(&good).unwrap()).as_deref(),
        Some(V2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_of_38_is_updated_in_two_stages_and_a_bad_image_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("county.key");
    let public = commands::keygen(&key).unwrap();
    let mut config = support::config(dir.path(), None);
    config.firmware.public_key = public.clone();
    config.firmware.poll_s = 1;
    let gw = Gateway::start(config.clone()).await;
    let ids: Vec<String> = (1..=38).map(|i| format!("HY-{i:03}")).collect();
    let passwords: HashMap<String, String> = ids
        .iter()
        .map(|id| (id.clone(), gw.add_terminal(id)))
        .collect();

    let good = signed_image(dir.path(), "v2.bin", V2, false, &key);
    let bad = signed_image(dir.path(), "bad.bin", BAD, true, &key);
    let conn = gw.running.store.connect().unwrap();
    for img in [&good, &bad] {
        commands::add(&conn, &config.firmware, img, &commands::sig_path(img), None).unwrap();
    }

    let mut key_bytes = [0u8; 32];
    key_bytes.copy_from_slice(&hex::decode(&public).unwrap());
    let fleet_cancel = CancellationToken::new();
    let fleet = Fleet::new(FleetConfig {
        host: "127.0.0.1".into(),
        port: gw.running.mqtt_addr.unwrap().port(),
        credentials: Credentials::PerTerminal(passwords),
        count: 38,
        // Catching up on four hours at 100x: a publication (and so an ack) every 3 s.
        history: Duration::from_secs(4 * 3600),
        speed: 100.0,
        data_dir: dir.path().join("fleet"),
        faults: false,
        firmware_key: key_bytes,
        bad_image_reset: Duration::from_secs(1),
        ..FleetConfig::default()
    });
    let fleet_task = tokio::spawn(fleet.run(fleet_cancel.clone()));

    // Every node reports its factory firmware.
    for id in &ids {
        let v = gw
            .eventually(60, || async { firmware_of(&gw, id).await })
            .await;
        assert_eq!(v, V1, "{id}");
    }

    // Stage 1: four terminals get the new image, a fifth a build that never reports.
    let mut conn = gw.running.store.connect().unwrap();
    let stage1: Vec<String> = ids[..4].to_vec();
    commands::roll_out(&mut conn, V2, &Group::Terminals(stage1.clone()), 1).unwrap();
    commands::roll_out(&mut conn, BAD, &Group::Terminals(vec![ids[4].clone()]), 1).unwrap();
    let started = Instant::now();
    let t = gw
        .eventually(120, || async {
            let t = targets(&gw).await;
            let done = stage1
                .iter()
                .all(|id| t[id].state == TargetState::Installed)
                && t[&ids[4]].state == TargetState::RolledBack;
            done.then_some(t)
        })
        .await;
    let stage1_s = started.elapsed().as_secs_f64();
    assert_eq!(t[&ids[4]].version, BAD);
    for id in &stage1 {
        let v = gw
            .eventually(30, || async {
                firmware_of(&gw, id).await.filter(|v| v == V2)
            })
            .await;
        assert_eq!(v, V2);
    }
    // The rolled-back node runs (and reports) its previous image again.
    let v = gw
        .eventually(30, || async {
            firmware_of(&gw, &ids[4]).await.filter(|v| v == V1)
        })
        .await;
    assert_eq!(v, V1);
    // The others were not offered anything.
    assert_eq!(t.len(), 5);
    // The API shows each rollout's progress, and each targeted node's firmware.
    let (code, body) = gw.get("/api/v1/firmware").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rollout = |v: &serde_json::Value, version: &str| {
        v["rollouts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["version"] == version)
            .cloned()
            .unwrap_or_else(|| panic!("no rollout of {version} in {v}"))
    };
    let r = rollout(&v, V2);
    assert_eq!(r["terminals"], 4);
    assert_eq!(r["states"]["installed"], 4);
    assert_eq!(r["progress"], 1.0);
    assert_eq!(rollout(&v, BAD)["states"]["rolled_back"], 1);
    let bad_target = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["terminal"] == ids[4].as_str())
        .unwrap();
    assert_eq!(bad_target["state"], "rolled_back");
    assert_eq!(bad_target["running"], V1);
    assert_eq!(v["images"].as_array().unwrap().len(), 2);

    // Stage 2: the rest, the rolled-back node included.
    let rest = commands::roll_out(&mut conn, V2, &Group::Rest, 2).unwrap();
    assert_eq!(rest.len(), 34);
    assert!(rest.contains(&ids[4]));
    let started = Instant::now();
    gw.eventually(300, || async {
        let t = targets(&gw).await;
        t.values()
            .all(|t| t.version == V2 && t.state == TargetState::Installed)
            .then_some(())
    })
    .await;
    let stage2_s = started.elapsed().as_secs_f64();
    for id in &ids {
        let v = gw
            .eventually(30, || async {
                firmware_of(&gw, id).await.filter(|v| v == V2)
            })
            .await;
        assert_eq!(v, V2, "{id}");
    }
    let (_, body) = gw.get("/api/v1/firmware").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let r = rollout(&v, V2);
    assert_eq!(
        (r["terminals"].clone(), r["states"]["installed"].clone()),
        (38.into(), 38.into())
    );
    assert!(
        v["targets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["running"] == V2),
        "{body}"
    );
    let status = commands::status_text(&conn, Some(V2)).unwrap();
    assert!(status.contains("38 terminal(s): 38 installed"), "{status}");
    let (_, metrics) = gw.get("/metrics").await;
    let chunks = metric(&metrics, "weir_firmware_chunks_sent_total").unwrap();
    let pieces = image_len().div_ceil(weir_contract::CHUNK_LEN) as f64;
    // Every node downloaded once (38 of the good image, 1 of the bad), repeats aside.
    assert!(chunks >= 39.0 * pieces, "{chunks} pieces sent");
    println!(
        "images of {} KiB: stage 1 (5 nodes, one rolled back) {stage1_s:.1} s, stage 2 (34 nodes) {stage2_s:.1} s, {chunks} pieces sent",
        image_len() / 1024
    );

    fleet_cancel.cancel();
    let _ = fleet_task.await;
    gw.stop().await;
}
