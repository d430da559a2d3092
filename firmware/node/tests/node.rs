//! The node core on the host: schedule, batching, calibration, the flash queue, acks, power
//! cuts and a full queue. Time is the rig's hand-driven clock; nothing sleeps.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{reading_times, Rig, TestFlashError, TestNode};
use weir_contract::{Fault, NodeConfig, NodeState, Quantity};
use weir_node::RawReading;

const MIN: u64 = 60_000;

fn flow(v: f64) -> RawReading {
    RawReading::new().with(Quantity::Flow, v)
}

#[test]
fn samples_every_minute_and_publishes_every_five_minutes_by_default() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = flow(1.5);
    let mut node = rig.start();
    rig.connect();
    rig.run_until(&mut node, 10 * MIN + 1);

    let sent = rig.telemetry();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!((sent[0].boot, sent[0].seq), (1, 0));
    assert_eq!((sent[1].boot, sent[1].seq), (1, 1));
    assert_eq!(reading_times(&sent[..1]), [0, 60, 120, 180, 240]);
    assert_eq!(reading_times(&sent[1..]), [300, 360, 420, 480, 540]);
    assert!(sent[0]
        .readings
        .iter()
        .all(|r| r.value(Quantity::Flow) == Some(1.5)));
    // The 10:00 reading waits in flash for the next publication.
    assert_eq!(node.pending(), 1);
    assert_eq!(node.buffered(), 10);
}

#[test]
fn a_config_sets_the_schedule_and_a_restart_keeps_it() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = flow(1.0);
    let mut node = rig.start();
    rig.connect();
    rig.send_config(r#"{"sample_interval_s":30,"publish_interval_s":120}"#);
    rig.run_until(&mut node, 4 * MIN + 1);
    assert_eq!(node.config().sample_interval_s, 30);
    assert_eq!(node.stats().configs_applied, 1);
    // From the config on, four readings per two minutes.
    let sent = rig.telemetry();
    let last = sent.last().unwrap();
    assert_eq!(last.readings.len(), 4, "{sent:?}");
    let times = reading_times(core::slice::from_ref(last));
    assert!(times.windows(2).all(|w| w[1] - w[0] == 30), "{times:?}");

    drop(node);
    let node = rig.start();
    assert_eq!(node.config().sample_interval_s, 30);
    assert_eq!(node.config().publish_interval_s, 120);
}

#[test]
fn an_invalid_config_is_refused_and_the_last_valid_one_kept() {
    let rig = Rig::new(4);
    let mut node = rig.start();
    rig.connect();
    rig.send_config(r#"{"sample_interval_s":120}"#);
    rig.send_config(r#"{"sample_interval_s":5}"#);
    rig.send_config(r#"{"sample_interval_s":60,"publish_interval_s":30}"#);
    rig.send_config(r#"{"sample_interval_s":60,"colour":"red"}"#);
    rig.run_until(&mut node, MIN);
    assert_eq!(node.config().sample_interval_s, 120);
    assert_eq!(node.stats().configs_refused, 3);
    drop(node);
    assert_eq!(rig.start().config().sample_interval_s, 120);
}

#[test]
fn readings_are_calibrated_and_sludge_comes_from_the_tank_geometry() {
    let mut rig = Rig::new(4);
    rig.factory = NodeConfig {
        tank_depth_m: Some(2.5),
        sensor_height_m: Some(3.0),
        ..NodeConfig::default()
    };
    *rig.raw.borrow_mut() = RawReading::new()
        .with(Quantity::Flow, 2.0)
        .with(Quantity::Sludge, 2.0)
        .with_fault(Quantity::Turbidity, Fault::Checksum);
    let mut node = rig.start();
    rig.connect();
    rig.send_config(
        r#"{"tank_depth_m":2.5,"sensor_height_m":3.0,"calibration":{"flow_m3h":{"offset":0.5,"scale":2.0}}}"#,
    );
    rig.run_until(&mut node, 5 * MIN + 1);
    let sent = rig.telemetry();
    let r = &sent[0].readings[1];
    assert_eq!(r.value(Quantity::Flow), Some(4.5));
    // 3.0 m - 2.0 m = 1.0 m of sludge in a 2.5 m tank.
    assert_eq!(r.value(Quantity::Sludge), Some(40.0));
    assert_eq!(r.fault(Quantity::Turbidity), Some(Fault::Checksum));
}

#[test]
fn sludge_without_the_tank_geometry_is_sent_as_not_calibrated() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = RawReading::new().with(Quantity::Sludge, 1.2);
    let mut node = rig.start();
    rig.connect();
    rig.run_until(&mut node, 5 * MIN + 1);
    let sent = rig.telemetry();
    assert_eq!(sent[0].readings.len(), 5);
    for r in &sent[0].readings {
        assert_eq!(r.fault(Quantity::Sludge), Some(Fault::NotCalibrated));
        assert_eq!(r.value(Quantity::Sludge), None);
    }
}

#[test]
fn a_value_out_of_range_after_calibration_is_sent_as_a_fault_never_a_number() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = RawReading::new()
        .with(Quantity::Turbidity, 5000.0)
        .with(Quantity::Flow, -0.2);
    let mut node = rig.start();
    rig.connect();
    rig.run_until(&mut node, 5 * MIN + 1);
    let r = &rig.telemetry()[0].readings[0];
    assert_eq!(r.fault(Quantity::Turbidity), Some(Fault::OutOfRange));
    assert_eq!(r.fault(Quantity::Flow), Some(Fault::OutOfRange));
}

#[test]
fn an_ack_frees_exactly_the_messages_it_covers() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = flow(1.0);
    let mut node = rig.start();
    rig.connect();
    rig.run_until(&mut node, 20 * MIN + 1);
    assert_eq!(rig.telemetry().len(), 4);
    assert_eq!(node.buffered(), 20);

    // An ack for another boot frees nothing; one for seq 1 frees seq 0 and 1 only.
    rig.ack(7, 3);
    rig.ack(1, 1);
    rig.run_until(&mut node, 20 * MIN + 2);
    assert_eq!(node.stats().freed, 2);
    assert_eq!(node.buffered(), 10);

    // After a restart, only the uncovered messages come back.
    drop(node);
    rig.forget_sent();
    let mut node = rig.start();
    assert_eq!(node.buffered(), 10);
    rig.connect();
    rig.run_for(&mut node, 1);
    let seqs: Vec<_> = rig.telemetry().iter().map(|t| (t.boot, t.seq)).collect();
    assert_eq!(seqs, [(1, 2), (1, 3)]);
}

#[test]
fn a_reconnect_republishes_everything_unacked_oldest_first() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = flow(1.0);
    let mut node = rig.start();
    rig.connect();
    rig.run_until(&mut node, 10 * MIN + 1);
    rig.ack(1, 0);
    rig.disconnect();
    // Three publications while the link is down: kept, not lost.
    rig.run_until(&mut node, 25 * MIN + 1);
    assert!(!node.is_connected());
    assert_eq!(rig.telemetry().len(), 2);
    rig.forget_sent();
    rig.connect();
    rig.run_for(&mut node, 1);
    let seqs: Vec<_> = rig.telemetry().iter().map(|t| t.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let times = reading_times(&rig.telemetry());
    assert_eq!(times, (5..25).map(|m| m * 60).collect::<Vec<_>>());
}

#[test]
fn acks_that_stop_advancing_make_the_node_publish_its_queue_again() {
    // A broker that lost the gateway's session dropped messages 1 and 2; the gateway acks
    // only up to 0, where its run of messages breaks.
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = flow(1.0);
    let mut node = rig.start_resending();
    rig.connect();
    rig.run_until(&mut node, 15 * MIN + 1);
    rig.ack(1, 0);
    rig.run_until(&mut node, 15 * MIN + 2);
    assert_eq!(node.stats().freed, 1);
    let acked_at = rig.now_ms();
    let resends = node.stats().resends;
    rig.forget_sent();
    let wait = weir_node::Settings::default().resend_ms;
    // Nothing is sent again before the wait has passed since the last ack freed a message.
    rig.run_until(&mut node, acked_at + wait - 1);
    assert!(rig.telemetry().is_empty());
    rig.run_until(&mut node, acked_at + wait + 1);
    let seqs: Vec<_> = rig.telemetry().iter().map(|t| t.seq).collect();
    assert_eq!(seqs[..2], [1, 2], "oldest first");
    assert_eq!(node.stats().resends, resends + 1);
    // The gateway now holds 1 and 2: its ack frees them.
    rig.ack(1, 2);
    rig.run_for(&mut node, 1);
    assert_eq!(node.stats().freed, 3);
    // With no ack at all the resends come further and further apart.
    let resends = node.stats().resends;
    rig.run_for(&mut node, 2 * 60 * MIN);
    let more = node.stats().resends - resends;
    assert!(
        // 1, 2, 4, 8, 16 minutes, then every 30: 7 in two hours (120 at a fixed minute).
        (5..=8).contains(&more),
        "{more} resends in two hours without acks"
    );
}

#[test]
fn a_message_acked_before_its_resend_leaves_nothing_to_publish() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = flow(1.0);
    let mut node = rig.start();
    rig.connect();
    rig.run_until(&mut node, 5 * MIN + 1);
    rig.disconnect();
    rig.run_for(&mut node, 1);
    drop(node);
    // Boot 2 queues a message while the link is down; boot 1's is still unacked.
    let mut node = rig.start();
    rig.run_for(&mut node, 5 * MIN + 1);
    assert_eq!(node.stats().queued, 1);
    // The link comes back busy: the status and boot 1's message go, boot 2's does not; then
    // the gateway's ack frees boot 2's message before the node tries again.
    rig.link.borrow_mut().publishes_left = Some(2);
    rig.connect();
    rig.ack(2, 0);
    rig.run_for(&mut node, 1);
    assert_eq!(node.stats().publish_failures, 1);
    rig.link.borrow_mut().publishes_left = None;
    // The node must go back to waiting, not retry for ever (the rig panics if time stalls).
    rig.run_for(&mut node, 10 * MIN);
    assert_eq!(node.stats().freed, 1);
    assert_eq!(node.buffered(), 5 + 10, "boot 1's message and two new ones");
    let seqs: Vec<_> = rig.telemetry().iter().map(|t| (t.boot, t.seq)).collect();
    assert_eq!(seqs[seqs.len() - 2..], [(2, 1), (2, 2)]);
}

#[test]
fn the_boot_counter_increments_at_every_start_and_seq_restarts_at_zero() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = flow(1.0);
    for boot in 1..=3 {
        let mut node = rig.start();
        assert_eq!(node.boot(), boot);
        assert_eq!(node.seq(), 0);
        rig.connect();
        let until = rig.now_ms() + 5 * MIN + 1;
        rig.run_until(&mut node, until);
        let last = rig.telemetry().last().cloned().unwrap();
        assert_eq!(last.boot, boot);
        rig.disconnect();
        rig.run_until(&mut node, until + 1);
    }
    let boots: Vec<_> = rig.telemetry().iter().map(|t| (t.boot, t.seq)).collect();
    // Boot 2 republishes boot 1's unacked message first, and so on.
    assert_eq!(boots, [(1, 0), (1, 0), (2, 0), (1, 0), (2, 0), (3, 0)]);
}

#[test]
fn no_reading_is_taken_while_utc_is_unknown() {
    let rig = Rig::new(4);
    rig.utc_known.set(false);
    let mut node = rig.start();
    rig.connect();
    rig.run_until(&mut node, 5 * MIN + 1);
    assert_eq!(node.stats().recorded, 0);
    assert_eq!(node.stats().skipped, 6);
    rig.utc_known.set(true);
    rig.run_until(&mut node, 10 * MIN + 1);
    assert_eq!(reading_times(&rig.telemetry()), [360, 420, 480, 540]);
}

#[test]
fn a_message_holds_at_most_what_a_flash_page_and_the_protocol_allow() {
    let rig = Rig::new(8);
    *rig.raw.borrow_mut() = RawReading::new()
        .with(Quantity::Flow, 1.0)
        .with(Quantity::Volume, 1234.5)
        .with(Quantity::Turbidity, 3.0)
        .with(Quantity::Supply, 12.5)
        .with(Quantity::Rssi, -80.0);
    let mut node = rig.start();
    assert_eq!(node.max_readings_per_message(), 64);
    rig.connect();
    rig.send_config(r#"{"sample_interval_s":10,"publish_interval_s":3600}"#);
    rig.run_until(&mut node, 60 * MIN + 1);
    let sent = rig.telemetry();
    assert!(sent.iter().all(|t| t.readings.len() <= 64));
    assert!(sent.iter().any(|t| t.readings.len() == 64), "{sent:?}");
    let times = reading_times(&sent);
    // Every reading, in order, none twice: 10 s apart after the first minute's reading.
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    assert_eq!(times.len() as u32 + node.pending(), node.stats().recorded);
}

#[test]
fn a_full_queue_drops_the_oldest_messages_and_counts_their_readings() {
    let rig = Rig::new(2);
    *rig.raw.borrow_mut() = RawReading::new()
        .with(Quantity::Flow, 1.0)
        .with(Quantity::Volume, 1234.5);
    let mut node = rig.start();
    // A day without a link: far more than two pages of queue.
    rig.run_until(&mut node, 24 * 60 * MIN);
    let recorded = node.stats().recorded;
    assert!(node.dropped() > 0);
    assert_eq!(node.dropped() + node.buffered() + node.pending(), recorded);
    let (dropped, buffered) = (node.dropped(), node.buffered());

    // The counter survives a restart and is reported in the status.
    drop(node);
    let mut node = rig.start();
    assert_eq!(node.dropped(), dropped);
    rig.connect();
    rig.run_for(&mut node, 1);
    let status = rig.statuses().pop().unwrap();
    assert_eq!(status.dropped, Some(dropped));
    assert_eq!(status.boot, Some(2));

    // What is left are the newest readings, contiguous up to the last one.
    let times = reading_times(&rig.telemetry());
    assert_eq!(times.len() as u32, buffered);
    assert!(times.windows(2).all(|w| w[1] - w[0] == 60));
    assert_eq!(*times.first().unwrap(), i64::from(dropped) * 60);
}

#[test]
fn status_is_published_retained_on_connect_and_when_the_backlog_grows() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = flow(1.0);
    let mut node = rig.start();
    rig.connect();
    rig.run_until(&mut node, 1);
    let first = rig.statuses();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].state, NodeState::Online);
    assert_eq!(first[0].boot, Some(1));
    assert_eq!(first[0].firmware.as_deref(), Some(weir_node::FIRMWARE));

    // Normal operation without acks builds a backlog: the status follows it, in steps.
    rig.run_until(&mut node, 60 * MIN);
    let statuses = rig.statuses();
    assert!(statuses.len() > 1 && statuses.len() < 8, "{statuses:?}");
    let backlog: Vec<_> = statuses.iter().map(|s| s.buffered.unwrap()).collect();
    assert!(backlog.windows(2).all(|w| w[1] > w[0]), "{backlog:?}");
}

#[test]
fn a_power_cut_loses_no_reading_that_was_written_to_flash() {
    let rig = Rig::new(4);
    *rig.raw.borrow_mut() = flow(1.0);
    let mut node = rig.start();
    rig.connect();
    rig.run_until(&mut node, 12 * MIN + 1);
    rig.ack(1, 0);
    rig.run_until(&mut node, 13 * MIN + 1);
    let recorded = node.stats().recorded;
    assert_eq!(recorded, 14);
    // Power cut: the node vanishes with its RAM, unannounced.
    drop(node);
    rig.forget_sent();

    let mut node = rig.start();
    assert_eq!(node.boot(), 2);
    assert_eq!(node.buffered() + node.pending(), recorded - 5);
    rig.connect();
    rig.run_for(&mut node, 1);
    common::run(node.flush()).unwrap();
    // The unacked readings, then the one sampled at the restart.
    let times = reading_times(&rig.telemetry());
    assert_eq!(times, (5..15).map(|m| m * 60).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------
// Power cuts at every flash operation

type StepResult = Result<(), weir_node::Error<TestFlashError>>;

/// A power-cut sweep: `before` runs normally; then the power is cut after 1, 2, 3, ... flash
/// writes or erases of `armed`, one cut per run on a fresh rig, until a run gets through
/// `armed` without a cut. After each cut the node restarts on the same flash and
/// [`check_after_cut`] holds it to its guarantees.
struct Sweep {
    queue_pages: usize,
    factory: NodeConfig,
    raw: RawReading,
    before: fn(&Rig, &mut TestNode),
    armed: fn(&Rig, &mut TestNode) -> StepResult,
}

/// What the run without a cut did during the armed stretch.
struct Uncut {
    /// Runs cut short: the flash operations of the armed stretch.
    cuts: u32,
    freed: u32,
    queued: u32,
    dropped: u32,
}

fn sweep(s: &Sweep) -> Uncut {
    for budget in 1.. {
        let mut rig = Rig::new(s.queue_pages);
        rig.factory = s.factory;
        *rig.raw.borrow_mut() = s.raw;
        let mut node = rig.start();
        (s.before)(&rig, &mut node);
        let (stats, dropped) = (*node.stats(), node.dropped());
        rig.power.set(Some(budget));
        let result = (s.armed)(&rig, &mut node);
        rig.power.set(None);
        if result.is_ok() {
            return Uncut {
                cuts: budget - 1,
                freed: node.stats().freed - stats.freed,
                queued: node.stats().queued - stats.queued,
                dropped: node.dropped() - dropped,
            };
        }
        assert!(
            matches!(
                result,
                Err(weir_node::Error::Flash(
                    sequential_storage::Error::Storage {
                        value: TestFlashError::PowerCut,
                        ..
                    }
                ))
            ),
            "budget {budget}: {result:?}"
        );
        // Power cut: the node vanishes with its RAM and its link, unannounced.
        drop(node);
        check_after_cut(&rig, budget);
    }
    unreachable!()
}

/// Readings (seconds after T0) per message identity; a message sent twice must be the same.
fn messages_by_id(
    messages: &[weir_contract::Telemetry],
    budget: u32,
) -> BTreeMap<(u32, u32), Vec<i64>> {
    let mut by_id = BTreeMap::new();
    for m in messages {
        let times = reading_times(core::slice::from_ref(m));
        let old = by_id.insert((m.boot, m.seq), times.clone());
        assert!(
            old.is_none_or(|old| old == times),
            "budget {budget}: two different messages ({}, {})",
            m.boot,
            m.seq
        );
    }
    by_id
}

/// Restarts the node after a cut and checks, from the node's documented guarantees:
///
/// * every reading the node had recorded in flash ([`Sensors::recorded`]) reaches the
///   gateway: it was in a message the gateway acknowledged before the cut, or the restarted
///   node still holds it (republished at the connection, or batched by `flush`), or it was
///   dropped from a full queue and counted: the readings missing are exactly as many as the
///   `dropped` counter says, and they are the oldest;
/// * nothing an ack freed comes back: no message covered by an ack the node had finished
///   handling is published again (one whose handling the cut interrupted may come back);
/// * a message identity always carries the same readings, and no reading is in two
///   messages (the gateway would store it twice);
/// * nothing is invented: every reading published was sampled;
/// * the restarted node's backlog is what it republishes.
fn check_after_cut(rig: &Rig, budget: u32) {
    let before_cut = rig.telemetry();
    let recorded: BTreeSet<i64> = rig.recorded.borrow().iter().copied().collect();
    let (acks_sent, acks_delivered) = {
        let mut link = rig.link.borrow_mut();
        // The link went down with the power; acks not delivered are lost with it.
        link.events.clear();
        link.auto_ack = false;
        link.up = false;
        link.publishes_left = None;
        (link.acks_sent.clone(), link.acks_delivered.clone())
    };
    let interrupted = rig.interrupted_ack.take();
    let handled = &acks_delivered[..acks_delivered.len() - usize::from(interrupted.is_some())];
    rig.forget_sent();

    let mut node = rig
        .try_start()
        .unwrap_or_else(|e| panic!("budget {budget}: {e:?}"));
    assert_eq!(node.boot(), 2, "budget {budget}");
    let (dropped, buffered) = (node.dropped(), node.buffered());
    rig.connect();
    rig.run_for(&mut node, 1);
    let republished = rig.telemetry();
    assert_eq!(
        reading_times(&republished).len() as u32,
        buffered,
        "budget {budget}: the backlog counted at start is not what is republished"
    );
    common::run(node.flush()).unwrap();
    let after = rig.telemetry();

    let covered = |acks: &[(u32, u32)], id: (u32, u32)| {
        acks.iter().any(|&(boot, seq)| boot == id.0 && id.1 <= seq)
    };
    let before_ids = messages_by_id(&before_cut, budget);
    let after_ids = messages_by_id(&after, budget);
    for id in after_ids.keys() {
        assert!(
            !covered(handled, *id),
            "budget {budget}: message {id:?} was freed by an ack, yet comes back"
        );
    }
    let mut all = before_ids.clone();
    for (id, times) in &after_ids {
        let old = all.insert(*id, times.clone());
        assert!(
            old.is_none_or(|old| old == *times),
            "budget {budget}: message {id:?} changed across the cut"
        );
    }
    let mut seen = BTreeMap::new();
    for (id, times) in &all {
        for t in times {
            if let Some(other) = seen.insert(*t, *id) {
                panic!("budget {budget}: the reading at {t} s is in {other:?} and {id:?}");
            }
        }
    }
    let sampled: BTreeSet<i64> = rig.sampled.borrow().iter().copied().collect();
    let invented: Vec<_> = seen.keys().filter(|t| !sampled.contains(t)).collect();
    assert!(
        invented.is_empty(),
        "budget {budget}: invented {invented:?}"
    );

    let acked: BTreeSet<i64> = before_ids
        .iter()
        .filter(|(id, _)| covered(&acks_sent, **id))
        .flat_map(|(_, times)| times.iter().copied())
        .collect();
    let held: BTreeSet<i64> = after_ids.values().flatten().copied().collect();
    let missing: Vec<i64> = recorded
        .iter()
        .filter(|t| !acked.contains(t) && !held.contains(t))
        .copied()
        .collect();
    assert_eq!(
        missing.len() as u32,
        dropped,
        "budget {budget}: readings recorded in flash and neither acked nor held {missing:?}, \
         but {dropped} counted as dropped"
    );
    if let (Some(newest_missing), Some(oldest_held)) =
        (missing.last(), held.iter().find(|t| recorded.contains(t)))
    {
        assert!(
            newest_missing < oldest_held,
            "budget {budget}: dropped {missing:?}, not the oldest (still holds {oldest_held})"
        );
    }
}

/// Cuts the power at every flash write or erase of a stretch of normal work: sampling,
/// batching, acks freeing messages as they arrive, a late ack while a newer message waits
/// for a busy link, an outage and the replay after it.
#[test]
fn a_power_cut_at_any_flash_operation_loses_nothing_confirmed() {
    let uncut = sweep(&Sweep {
        queue_pages: 4,
        factory: NodeConfig::default(),
        raw: flow(1.0),
        before: |rig, node| {
            rig.link.borrow_mut().auto_ack = true;
            rig.connect();
            rig.run_until(node, 11 * MIN + 1);
        },
        armed: |rig, node| {
            // The gateway acks each message as it comes: acks free messages in the stretch.
            rig.try_run_until(node, 16 * MIN + 1)?;
            // A late ack: it arrives while the next message waits for a busy link, so it
            // must free one message and leave the other.
            rig.link.borrow_mut().auto_ack = false;
            rig.try_run_until(node, 21 * MIN + 1)?;
            rig.link.borrow_mut().publishes_left = Some(0);
            rig.try_run_until(node, 26 * MIN + 1)?;
            rig.ack(1, 3);
            rig.try_run_until(node, 27 * MIN + 1)?;
            {
                let mut link = rig.link.borrow_mut();
                link.publishes_left = None;
                link.auto_ack = true;
            }
            // An outage, then the replay and its acks.
            rig.try_run_until(node, 31 * MIN + 1)?;
            rig.disconnect();
            rig.try_run_until(node, 43 * MIN + 1)?;
            rig.connect();
            rig.try_run_until(node, 51 * MIN + 1)
        },
    });
    assert!(uncut.cuts > 50, "only {} flash operations", uncut.cuts);
    assert!(uncut.freed >= 5, "acks freed {} messages", uncut.freed);
    assert!(uncut.queued >= 5, "{} messages queued", uncut.queued);
}

/// The same with a queue so small that it overflows: the oldest messages are dropped (and
/// counted) while the link is down, and the power is cut at each flash operation of that,
/// and of the replay and the acks when the link comes back.
#[test]
fn a_power_cut_while_a_full_queue_drops_its_oldest_loses_nothing_uncounted() {
    let uncut = sweep(&Sweep {
        queue_pages: 2,
        // Messages of 30 readings, a page holding three.
        factory: NodeConfig {
            publish_interval_s: 1800,
            ..NodeConfig::default()
        },
        raw: RawReading::new()
            .with(Quantity::Flow, 1.0)
            .with(Quantity::Volume, 1234.5)
            .with(Quantity::Turbidity, 3.0)
            .with(Quantity::Sludge, 1.0)
            .with(Quantity::Supply, 12.5)
            .with(Quantity::Rssi, -80.0),
        before: |rig, node| {
            rig.link.borrow_mut().auto_ack = true;
            rig.connect();
            rig.run_until(node, 61 * MIN + 1);
            rig.disconnect();
            // The queue fills at 3:30 and then drops its oldest messages a page at a time
            // (three of these), every 90 minutes: the next drop is at 5:00.
            rig.run_until(node, 285 * MIN + 1);
            assert!(node.dropped() > 0, "the queue is full");
        },
        armed: |rig, node| {
            rig.try_run_until(node, 305 * MIN + 1)?;
            rig.connect();
            rig.try_run_until(node, 312 * MIN + 1)
        },
    });
    assert!(
        uncut.dropped >= 2 * 30,
        "{} readings dropped",
        uncut.dropped
    );
    assert!(uncut.freed >= 3, "acks freed {} messages", uncut.freed);
}
