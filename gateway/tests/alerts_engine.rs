//! The alert engine on a real SQLite store, fed committed-data events as ingest sends them,
//! with paused tokio time for everything that is a timer (offline, escalation, grouping).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use weir_contract::{Fault, Quantity, Reading, Status, TerminalId, Timestamp};
use weir_gateway::alerts::config::{CrewConfig, NoticeEvent, ServiceTargets};
use weir_gateway::alerts::engine::{Action, ActionError};
use weir_gateway::alerts::model::{AlertRow, AlertState, Rule, Severity};
use weir_gateway::alerts::notify::Notice;
use weir_gateway::alerts::preview::{self, PreviewRequest};
use weir_gateway::alerts::{self, Alerts};
use weir_gateway::config::Config;
use weir_gateway::live::LiveEvent;
use weir_store::alerts as alert_store;
use weir_store::writer::StoredReading;
use weir_store::Store;
use weir_store::Synchronous;

/// One running engine with its feed.
struct Engine {
    alerts: Alerts,
    live: broadcast::Sender<LiveEvent>,
    cancel: CancellationToken,
    notices: broadcast::Receiver<Notice>,
    next_id: i64,
}

fn open_store(dir: &Path) -> Arc<Store> {
    Store::open(&dir.join("weir.db"), Synchronous::Normal).unwrap()
}

/// Registers terminals the way the registry would, with a `last_seen` (so they have
/// reported before) and a design flow of 24 m3/day.
fn register(store: &Store, ids: &[String], last_seen: Option<i64>) {
    store
        .with(|c| {
            for id in ids {
                c.execute(
                    "INSERT INTO terminals (id, name, created_at, last_seen, design_flow_m3d)
                     VALUES (?1, ?1, 0, ?2, 24.0)",
                    rusqlite::params![id, last_seen],
                )?;
            }
            Ok(())
        })
        .unwrap();
}

fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("HY-{i:03}")).collect()
}

fn config() -> Config {
    let mut c = Config::default();
    c.alerts.crews.insert(
        "north".into(),
        CrewConfig {
            terminals: vec!["HY-0*".into()],
            targets: Some(ServiceTargets {
                dispatch_min: 1,
                arrive_min: 5,
                resolve_min: 20,
            }),
            ..CrewConfig::default()
        },
    );
    c
}

impl Engine {
    async fn start(config: Config, store: Arc<Store>) -> Engine {
        Engine::start_keeping(config, store, 1024).await
    }

    /// An engine whose feed keeps only `kept` events for it.
    async fn start_keeping(config: Config, store: Arc<Store>, kept: usize) -> Engine {
        let (live, rx) = broadcast::channel(kept);
        let cancel = CancellationToken::new();
        let alerts = alerts::start(config.alerts, store, rx, cancel.clone())
            .await
            .unwrap();
        let notices = alerts.notices();
        Engine {
            alerts,
            live,
            cancel,
            notices,
            next_id: 1_000_000,
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.alerts.stopped())
            .await
            .expect("the engine stops");
    }

    /// Sends one committed transaction: a message per terminal, with these readings.
    /// Returns the event, to send it again.
    fn commit(&mut self, messages: &[(&str, u32, u32)], readings: &[(&str, Reading)]) -> LiveEvent {
        let stored = readings
            .iter()
            .map(|(t, r)| {
                self.next_id += 1;
                StoredReading {
                    id: self.next_id,
                    terminal: TerminalId::new(t).unwrap(),
                    reading: *r,
                }
            })
            .collect();
        let e = LiveEvent::Committed {
            messages: Arc::new(
                messages
                    .iter()
                    .map(|(t, b, s)| (TerminalId::new(t).unwrap(), *b, *s))
                    .collect(),
            ),
            readings: Arc::new(stored),
            statuses: Arc::new(Vec::new()),
        };
        self.send(e.clone());
        e
    }

    fn send(&self, e: LiveEvent) {
        self.live.send(e).unwrap();
    }

    fn status(&self, t: &str, s: Status) {
        self.send(LiveEvent::Committed {
            messages: Arc::new(Vec::new()),
            readings: Arc::new(Vec::new()),
            statuses: Arc::new(vec![(TerminalId::new(t).unwrap(), s)]),
        });
    }

    fn notices_so_far(&mut self) -> Vec<Notice> {
        let mut out = Vec::new();
        while let Ok(n) = self.notices.try_recv() {
            out.push(n);
        }
        out
    }
}

async fn active(store: &Arc<Store>) -> Vec<AlertRow> {
    store.run(alert_store::active).await.unwrap()
}

async fn all_alerts(store: &Arc<Store>) -> Vec<AlertRow> {
    store
        .run(|c| {
            alert_store::list(
                c,
                &alert_store::Filter {
                    limit: 10_000,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap()
}

/// Lets the engine work through what was sent (a little paused time, polling the store).
async fn until<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s of engine time");
}

/// Gives the engine time to process everything sent so far.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn turbidity(ts: i64, ntu: f64) -> Reading {
    Reading::new(Timestamp::from_unix(ts))
        .with(Quantity::Turbidity, ntu)
        .with(Quantity::Flow, 1.0)
}

/// A turbidity alarm on `t`: 41 minute readings at 25 NTU ending now.
fn alarm_readings(t: &str) -> Vec<(&str, Reading)> {
    let now = weir_store::now();
    (0..=40)
        .map(|m| (t, turbidity(now - (40 - m) * 60, 25.0)))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_node_that_dies_gives_one_offline_alert_and_it_clears_when_the_node_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(1), None);
    let mut e = Engine::start(config(), store.clone()).await;
    e.commit(&[("HY-001", 1, 0)], &[]);
    settle().await;
    // Two publish intervals and a half: not yet.
    tokio::time::sleep(Duration::from_secs(750)).await;
    assert!(active(&store).await.is_empty());
    // Past three intervals, and long after: one alert, not one per check.
    tokio::time::sleep(Duration::from_secs(160)).await;
    let first = until(|| async {
        let a = active(&store).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
    let a = active(&store).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].id, first[0].id);
    assert_eq!(a[0].rule, Rule::Offline);
    assert_eq!(a[0].terminal, "HY-001");
    let opened: Vec<_> = e
        .notices_so_far()
        .into_iter()
        .filter(|n| n.event == NoticeEvent::Opened)
        .collect();
    assert_eq!(opened.len(), 1, "{opened:?}");

    // The node comes back: the alert resolves by itself.
    e.commit(&[("HY-001", 2, 0)], &[]);
    until(|| async { active(&store).await.is_empty().then_some(()) }).await;
    let all = all_alerts(&store).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, AlertState::Resolved);
    assert_eq!(all[0].resolved_by.as_deref(), Some("weir"));
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_last_will_makes_a_node_offline_within_a_minute_unless_it_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(2), None);
    let mut e = Engine::start(config(), store.clone()).await;
    e.commit(&[("HY-001", 1, 0), ("HY-002", 1, 0)], &[]);
    settle().await;
    e.status("HY-001", Status::offline());
    e.status("HY-002", Status::offline());
    settle().await;
    // HY-002 was only reconnecting.
    e.commit(&[("HY-002", 1, 1)], &[]);
    tokio::time::sleep(Duration::from_secs(61)).await;
    let a = until(|| async {
        let a = active(&store).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].terminal, "HY-001");
    assert!(a[0].detail.contains("遗嘱"), "{}", a[0].detail);
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn twenty_terminals_dying_together_give_one_grouped_incident_and_one_notice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let terminals = ids(20);
    register(&store, &terminals, None);
    let mut e = Engine::start(config(), store.clone()).await;
    // Each node last reports at its own moment within one publish interval, then the
    // power goes.
    for (i, t) in terminals.iter().enumerate() {
        e.commit(&[(t, 1, 0)], &[]);
        settle().await;
        if i % 2 == 1 {
            tokio::time::sleep(Duration::from_secs(25)).await;
        }
    }
    // Everyone is past the offline limit, and the grouping window has passed.
    tokio::time::sleep(Duration::from_secs(900 + 600)).await;
    let a = until(|| async {
        let a = active(&store).await;
        (a.len() == 20).then_some(a)
    })
    .await;
    assert!(a.iter().all(|x| x.rule == Rule::Offline));
    let incidents = store
        .run(|c| weir_store::incidents::list(c, true, 10))
        .await
        .unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let inc = &incidents[0];
    assert_eq!(inc.terminals, terminals);
    assert_eq!(inc.alert_ids.len(), 20);
    assert!(inc.title.contains("20"), "{}", inc.title);
    assert!(a.iter().all(|x| x.incident_id == Some(inc.id)));
    let notices = e.notices_so_far();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(notices[0].subject, format!("incident/{}", inc.id));
    assert_eq!(notices[0].terminals.len(), 20);
    // Nobody acknowledges for an hour: the incident escalates, once.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let notices = e.notices_so_far();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(notices[0].event, NoticeEvent::Escalated);
    assert_eq!(notices[0].subject, format!("incident/{}", inc.id));

    // Power returns: every alert resolves, and with the last the incident.
    for t in &terminals {
        e.commit(&[(t, 2, 0)], &[]);
    }
    until(|| async { active(&store).await.is_empty().then_some(()) }).await;
    let resolved = store
        .run(|c| weir_store::incidents::list(c, false, 10))
        .await
        .unwrap();
    assert!(resolved[0].resolved_at.is_some());
    let notices = e.notices_so_far();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(notices[0].event, NoticeEvent::Resolved);
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_terminal_going_offline_alone_is_announced_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(3), None);
    let mut e = Engine::start(config(), store.clone()).await;
    e.commit(&[("HY-001", 1, 0), ("HY-002", 1, 0), ("HY-003", 1, 0)], &[]);
    settle().await;
    for seq in 1..8 {
        tokio::time::sleep(Duration::from_secs(300)).await;
        e.commit(&[("HY-001", 1, seq), ("HY-002", 1, seq)], &[]);
    }
    settle().await;
    let notices = e.notices_so_far();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(notices[0].subject, "HY-003/offline");
    let incidents = store
        .run(|c| weir_store::incidents::list(c, false, 10))
        .await
        .unwrap();
    assert!(incidents.is_empty());
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_gateway_restart_raises_no_offline_storm() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let terminals = ids(20);
    // They last reported long ago, from the new gateway's point of view: it was down.
    register(&store, &terminals, Some(weir_store::now() - 7200));
    let mut e = Engine::start(config(), store.clone()).await;
    // The nodes reconnect and flush their queues within a few minutes, then report as
    // usual; HY-020 never comes back.
    let back = &terminals[..19];
    for t in back {
        tokio::time::sleep(Duration::from_secs(10)).await;
        e.commit(&[(t, 1, 0)], &[]);
    }
    for seq in 1..=3u32 {
        tokio::time::sleep(Duration::from_secs(300)).await;
        for t in back {
            e.commit(&[(t, 1, seq)], &[]);
        }
    }
    // Past the grouping window, when a lone offline alert is announced.
    tokio::time::sleep(Duration::from_secs(200)).await;
    // 15 minutes after the start the silent one, and only it, is offline.
    let a = active(&store).await;
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].terminal, "HY-020");
    assert_eq!(e.notices_so_far().len(), 1);

    // A second restart, two hours later: the open alert is kept, nothing new is raised,
    // and nodes that report again within their interval are never offline.
    e.stop().await;
    tokio::time::sleep(Duration::from_secs(7200)).await;
    let mut e = Engine::start(config(), store.clone()).await;
    for seq in 4..8u32 {
        for t in back {
            e.commit(&[(t, 1, seq)], &[]);
        }
        tokio::time::sleep(Duration::from_secs(300)).await;
    }
    settle().await;
    let a = active(&store).await;
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(a[0].terminal, "HY-020");
    let opened: Vec<_> = e
        .notices_so_far()
        .into_iter()
        .filter(|n| n.event == NoticeEvent::Opened)
        .collect();
    assert!(opened.is_empty(), "{opened:#?}");
    assert_eq!(all_alerts(&store).await.len(), 1);
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn duplicate_delivery_of_a_committed_batch_raises_no_duplicate_alert() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(1), None);
    let mut e = Engine::start(config(), store.clone()).await;
    e.commit(&[("HY-001", 1, 0)], &alarm_readings("HY-001"));
    let a = until(|| async {
        let a = active(&store).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(a[0].rule, Rule::Turbidity);
    assert_eq!(a[0].severity, Severity::Alarm);
    assert_eq!(a[0].threshold, Some(20.0));
    // The same event delivered again, and the same readings with new commit ids (a replay
    // that slipped past the store): still one alert.
    let again = e.commit(&[("HY-001", 1, 1)], &alarm_readings("HY-001")[40..]);
    e.send(again);
    e.commit(&[("HY-001", 1, 0)], &alarm_readings("HY-001"));
    settle().await;
    assert_eq!(all_alerts(&store).await.len(), 1);
    let opened = e
        .notices_so_far()
        .into_iter()
        .filter(|n| n.event == NoticeEvent::Opened)
        .count();
    assert_eq!(opened, 1);
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unacknowledged_alarm_escalates_once_and_an_acknowledged_one_never() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(2), None);
    let mut e = Engine::start(config(), store.clone()).await;
    e.commit(&[], &alarm_readings("HY-001"));
    e.commit(&[], &alarm_readings("HY-002"));
    let a = until(|| async {
        let a = active(&store).await;
        (a.len() == 2).then_some(a)
    })
    .await;
    let acked = a.iter().find(|x| x.terminal == "HY-002").unwrap().id;
    e.alerts
        .act(acked, Action::Acknowledge { note: None }, "li.wei")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(14 * 60)).await;
    assert!(active(&store).await.iter().all(|x| !x.escalated));
    tokio::time::sleep(Duration::from_secs(2 * 60)).await;
    let a = until(|| async {
        let a = active(&store).await;
        a.iter().any(|x| x.escalated).then_some(a)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    let escalated: Vec<_> = a.iter().filter(|x| x.escalated).collect();
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].terminal, "HY-001");
    let notices = e.notices_so_far();
    let escalations: Vec<_> = notices
        .iter()
        .filter(|n| n.event == NoticeEvent::Escalated)
        .collect();
    assert_eq!(escalations.len(), 1, "{notices:#?}");
    assert_eq!(escalations[0].subject, "HY-001/turbidity");
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_alert_goes_from_open_to_dispatched_to_resolved_by_hand_with_every_step_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(1), None);
    let mut e = Engine::start(config(), store.clone()).await;
    e.commit(&[], &alarm_readings("HY-001"));
    let id = until(|| async { active(&store).await.first().map(|a| a.id) }).await;
    let al = &e.alerts;

    let a = al
        .act(
            id,
            Action::Acknowledge {
                note: Some("看到了".into()),
            },
            "li.wei",
        )
        .await
        .unwrap();
    assert_eq!(a.state, AlertState::Acknowledged);
    assert_eq!(a.acknowledged_by.as_deref(), Some("li.wei"));
    let again = al
        .act(id, Action::Acknowledge { note: None }, "wang.fang")
        .await;
    assert!(
        matches!(&again, Err(ActionError::Conflict(s)) if s.contains("li.wei")),
        "{again:?}"
    );
    let arrive_first = al.act(id, Action::Arrive { note: None }, "zhang.san").await;
    assert!(matches!(arrive_first, Err(ActionError::Conflict(_))));
    al.act(
        id,
        Action::Assign {
            assignee: "zhang.san".into(),
        },
        "li.wei",
    )
    .await
    .unwrap();
    // No crew named: the terminal's zone crew goes.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let a = al
        .act(id, Action::Dispatch { crew: None }, "li.wei")
        .await
        .unwrap();
    let wo = a.work_order.unwrap();
    assert_eq!(wo.crew, "north");
    assert_eq!(wo.targets_met.dispatch, Some(true));
    assert_eq!(wo.targets_met.arrive, None);
    tokio::time::sleep(Duration::from_secs(7 * 60)).await;
    let a = al
        .act(id, Action::Arrive { note: None }, "zhang.san")
        .await
        .unwrap();
    assert_eq!(
        a.work_order.unwrap().targets_met.arrive,
        Some(false),
        "7.5 min > 5 min"
    );
    let no_note = al
        .act(id, Action::Resolve { note: " ".into() }, "zhang.san")
        .await;
    assert!(matches!(no_note, Err(ActionError::Invalid(_))));
    let a = al
        .act(
            id,
            Action::Resolve {
                note: "清洗了浊度探头".into(),
            },
            "zhang.san",
        )
        .await
        .unwrap();
    assert_eq!(a.state, AlertState::Resolved);
    assert_eq!(a.resolved_by.as_deref(), Some("zhang.san"));
    assert_eq!(a.resolution_note.as_deref(), Some("清洗了浊度探头"));
    assert_eq!(a.work_order.unwrap().targets_met.resolve, Some(true));
    let late = al
        .act(id, Action::Acknowledge { note: None }, "li.wei")
        .await;
    assert!(matches!(late, Err(ActionError::Conflict(_))));
    al.act(
        id,
        Action::Note {
            note: "下周复查".into(),
        },
        "li.wei",
    )
    .await
    .unwrap();
    let missing = al
        .act(999, Action::Note { note: "x".into() }, "li.wei")
        .await;
    assert!(matches!(missing, Err(ActionError::NotFound(999))));

    let history = store
        .run(move |c| alert_store::history(c, id))
        .await
        .unwrap();
    let steps: Vec<(&str, &str)> = history
        .iter()
        .map(|h| (h.action.as_str(), h.who.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("opened", "weir"),
            ("acknowledged", "li.wei"),
            ("assigned", "li.wei"),
            ("dispatched", "li.wei"),
            ("arrived", "zhang.san"),
            ("resolved", "zhang.san"),
            ("note", "li.wei"),
        ]
    );

    // Resolved by hand while the water is still turbid: the rule starts over and raises
    // again only after the full 30 minutes.
    let now = weir_store::now() + 600;
    let later: Vec<(&str, Reading)> = (0..=31)
        .map(|m| ("HY-001", turbidity(now + m * 60, 25.0)))
        .collect();
    e.commit(&[], &later[..30]);
    settle().await;
    assert!(active(&store).await.is_empty());
    e.commit(&[], &later[30..]);
    let again = until(|| async { active(&store).await.first().cloned() }).await;
    assert_ne!(again.id, id);
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_run_in_progress_survives_a_restart_of_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(1), None);
    let t0 = weir_store::now() - 3600;
    let readings: Vec<(&str, Reading)> = (0..=35)
        .map(|m| ("HY-001", turbidity(t0 + m * 60, 15.0)))
        .collect();
    let mut e = Engine::start(config(), store.clone()).await;
    e.commit(&[], &readings[..20]);
    settle().await;
    let next_id = e.next_id;
    e.stop().await;
    assert!(active(&store).await.is_empty());

    let mut e = Engine::start(config(), store.clone()).await;
    e.next_id = next_id;
    e.commit(&[], &readings[20..]);
    let a = until(|| async { active(&store).await.first().cloned() }).await;
    assert_eq!(a.rule, Rule::Turbidity);
    assert_eq!(a.severity, Severity::Warning);
    assert!(a.detail.contains("30 分钟"), "{}", a.detail);
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sensor_faults_desludging_and_a_lost_message_each_raise_their_own_alert() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(1), None);
    let mut e = Engine::start(config(), store.clone()).await;
    let t0 = weir_store::now() - 7200;
    let readings: Vec<(&str, Reading)> = (0..=70)
        .map(|m| {
            let r = Reading::new(Timestamp::from_unix(t0 + m * 60))
                .with(Quantity::Flow, 1.0 + (m % 3) as f64 * 0.1)
                .with(Quantity::Sludge, 35.0)
                .with_fault(Quantity::Turbidity, Fault::OpenLoop);
            ("HY-001", r)
        })
        .collect();
    // Messages 0, 1, 2 and 5: 3 and 4 never come.
    e.commit(
        &[("HY-001", 4, 0), ("HY-001", 4, 1), ("HY-001", 4, 2)],
        &readings[..40],
    );
    e.commit(&[("HY-001", 4, 5)], &readings[40..]);
    let a = until(|| async {
        let a = active(&store).await;
        (a.len() == 2).then_some(a)
    })
    .await;
    let rules: Vec<Rule> = a.iter().map(|x| x.rule).collect();
    assert!(rules.contains(&Rule::SensorFault), "{rules:?}");
    assert!(rules.contains(&Rule::Desludge), "{rules:?}");
    let fault = a.iter().find(|x| x.rule == Rule::SensorFault).unwrap();
    assert!(fault.detail.contains("open_loop"), "{}", fault.detail);

    // The missing messages are a gap once their grace period has passed.
    tokio::time::sleep(Duration::from_secs(15 * 60 + 1)).await;
    let gap = until(|| async {
        active(&store)
            .await
            .into_iter()
            .find(|x| x.rule == Rule::DataGap)
    })
    .await;
    assert_eq!(gap.value, Some(2.0));
    assert!(gap.detail.contains("boot 4 seq 3-4"), "{}", gap.detail);
    // They turn up after all (the node's queue): the gap closes.
    e.commit(&[("HY-001", 4, 3), ("HY-001", 4, 4)], &[]);
    until(|| async {
        (!active(&store).await.iter().any(|x| x.rule == Rule::DataGap)).then_some(())
    })
    .await;
    e.stop().await;
}

#[tokio::test]
async fn a_rule_preview_counts_alerts_and_flaps_over_stored_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(1), None);
    let t0 = 1_790_000_000;
    // Six bursts: 40 minutes at 15 NTU, then 20 minutes at 5 NTU.
    store
        .with(|c| {
            for m in 0..360i64 {
                let ntu = if m % 60 < 40 { 15.0 } else { 5.0 };
                c.execute(
                    "INSERT INTO readings (terminal, ts, turbidity_ntu, flow_m3h)
                     VALUES ((SELECT key FROM terminals WHERE id = 'HY-001'), ?1, ?2, 1.0)",
                    rusqlite::params![t0 + m * 60, ntu],
                )?;
            }
            Ok(())
        })
        .unwrap();
    let cfg = config().alerts;
    let request = |params: serde_json::Value| -> PreviewRequest {
        serde_json::from_value(serde_json::json!({
            "rule": "turbidity",
            "terminal": "HY-001",
            "from": weir_contract::Timestamp::from_unix(t0).to_string(),
            "to": weir_contract::Timestamp::from_unix(t0 + 6 * 3600).to_string(),
            "params": params,
        }))
        .unwrap()
    };
    let p = store
        .with(|c| Ok(preview::run(c, &cfg, &request(serde_json::json!({})))))
        .unwrap()
        .unwrap();
    assert_eq!((p.alerts, p.flaps), (1, 0), "{p:#?}");
    assert_eq!(p.terminals[0].readings, 360);
    // Clearing after 10 minutes instead of 30: every dip clears, every burst reopens.
    let p = store
        .with(|c| {
            Ok(preview::run(
                c,
                &cfg,
                &request(serde_json::json!({"turbidity_clear_min": 10})),
            ))
        })
        .unwrap()
        .unwrap();
    assert_eq!((p.alerts, p.flaps), (6, 5), "{p:#?}");
    // A threshold above the signal raises nothing.
    let p = store
        .with(|c| {
            Ok(preview::run(
                c,
                &cfg,
                &request(serde_json::json!({"turbidity_warning_ntu": 16.0})),
            ))
        })
        .unwrap()
        .unwrap();
    assert_eq!(p.alerts, 0);
    // A changed threshold that breaks the hysteresis is refused by name.
    let e = store
        .with(|c| {
            Ok(preview::run(
                c,
                &cfg,
                &request(serde_json::json!({"turbidity_clear_ntu": 30.0})),
            ))
        })
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("turbidity_clear_ntu"), "{e}");
}

/// The feed keeps a bounded number of committed transactions for a reader that falls behind
/// (the gateway keeps 64). An engine that missed some reads them from the store instead: the
/// alarm their readings make is raised all the same.
#[tokio::test(start_paused = true)]
async fn an_engine_that_falls_behind_the_feed_reads_what_it_missed_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    register(&store, &ids(1), None);
    let e = Engine::start_keeping(config(), store.clone(), 2).await;
    // The writer commits 41 readings one at a time; the feed sends each, and the engine, not
    // yet scheduled, sees only the last two of them.
    let readings = alarm_readings("HY-001");
    let (turbidity_col, flow_col) = (Quantity::Turbidity.field(), Quantity::Flow.field());
    for (t, r) in &readings {
        let id = store
            .with(|c| {
                let key: i64 =
                    c.query_row("SELECT key FROM terminals WHERE id = ?1", [t], |row| {
                        row.get(0)
                    })?;
                c.execute(
                    &format!(
                        "INSERT INTO readings (terminal, ts, {turbidity_col}, {flow_col}) \
                         VALUES (?1, ?2, ?3, ?4)"
                    ),
                    rusqlite::params![key, r.ts.unix(), 25.0, 1.0],
                )?;
                Ok(c.last_insert_rowid())
            })
            .unwrap();
        e.send(LiveEvent::Committed {
            messages: Arc::new(Vec::new()),
            readings: Arc::new(vec![StoredReading {
                id,
                terminal: TerminalId::new(t).unwrap(),
                reading: *r,
            }]),
            statuses: Arc::new(Vec::new()),
        });
    }
    let a = until(|| async {
        let a = active(&store).await;
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].rule, Rule::Turbidity);
    assert_eq!(a[0].severity, Severity::Alarm);
    e.stop().await;
}
