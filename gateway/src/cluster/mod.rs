//! Scale-out: several gateways behind one external broker, the terminals divided among them
//! (docs/scale-out.md).
//!
//! Nothing here is a consensus protocol: the broker decides. Each member gateway `m` owns one
//! persistent MQTT session, client id `{mqtt.client_id}-{m}`, subscribed to the telemetry and
//! status of the terminals that rendezvous hashing gives to `m` among the configured
//! members. While `m` is away, the broker keeps that session: what its terminals send is
//! queued there, and what was delivered but not acknowledged is delivered again. A live
//! member takes the session over (the same client id; the broker lets one connection hold a
//! client id at a time) once `m` has been gone `cluster.takeover_after_s`, stores what is
//! queued and what keeps coming, and hands the session back when `m` returns.
//!
//! Who is live is what the broker says: each member keeps a retained announcement on
//! `{prefix}/cluster/members/{name}`, listing the sessions it holds, with a last will that
//! clears it. A member starts a session only when no other live member lists it, and lists it
//! until it has stopped it (committed and acknowledged what it took, then disconnected).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_contract::topic::{self, Channel};
use weir_contract::TerminalId;
use weir_store::writer::{self, WriterSettings};
use weir_store::Store;

use crate::ingest::{self, Session};

mod acks;
use crate::live::LiveEvent;
use crate::metrics::Metrics;

/// `[cluster]`: several gateways behind one external broker (`mqtt.broker = "external"`), each
/// terminal's readings, alerts and acks on exactly one of them at a time (docs/scale-out.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Divide the terminals among several gateways. Off: this gateway takes every terminal.
    pub enabled: bool,
    /// This gateway's name, one of `members` (letters, digits, - and _). Its MQTT session's
    /// client id is {mqtt.client_id}-{instance}: keep mqtt.client_id the same on every member.
    pub instance: String,
    /// Every member's name, the same list on each; each terminal belongs to one member
    /// (rendezvous hashing of its id). Changing the list moves about 1/n of the terminals:
    /// restart every member.
    pub members: Vec<String>,
    /// Seconds a member must have been gone (its last will seen) before a live member takes
    /// its terminals over. Shorter: a quicker takeover; longer: a restart or a network blip
    /// moves nothing.
    pub takeover_after_s: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            instance: String::new(),
            members: Vec::new(),
            takeover_after_s: 10,
        }
    }
}

impl ClusterConfig {
    /// Checks the section; `external` is whether the gateway uses an external broker.
    pub fn validate(&self, external: bool) -> anyhow::Result<()> {
        if !self.enabled {
            return Ok(());
        }
        anyhow::ensure!(
            external,
            "cluster.enabled needs mqtt.broker = \"external\": the members share one broker"
        );
        anyhow::ensure!(
            !self.members.is_empty(),
            "cluster.members must list every member's name"
        );
        let mut seen = BTreeSet::new();
        for m in &self.members {
            anyhow::ensure!(
                !m.is_empty()
                    && m.len() <= 32
                    && m.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "cluster.members: {m:?} is not a member name (1 to 32 letters, digits, - and _)"
            );
            anyhow::ensure!(seen.insert(m), "cluster.members lists {m:?} twice");
        }
        anyhow::ensure!(
            self.members.contains(&self.instance),
            "cluster.instance {:?} is not one of cluster.members {:?}",
            self.instance,
            self.members
        );
        anyhow::ensure!(
            self.takeover_after_s > 0,
            "cluster.takeover_after_s must be at least 1"
        );
        Ok(())
    }
}

/// Rendezvous (highest random weight) hashing: the weight of `key` at `member`. A fixed
/// function (FNV-1a, then the SplitMix64 finaliser), so every member, of any version,
/// computes the same owner.
fn weight(member: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain([0xff]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The member `key` goes to: the one of highest weight (ties to the greater name).
pub fn owner<'a, I>(members: I, key: &str) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    members.into_iter().max_by_key(|m| (weight(m, key), *m))
}

/// What a member announces, retained, on `{prefix}/cluster/members/{name}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Announce {
    /// The member's name.
    pub instance: String,
    /// The sessions (members' names) whose terminals it takes now.
    pub holds: Vec<String>,
    /// Its terminals' count, over the sessions it holds.
    pub terminals: usize,
    /// Its HTTP address as it sees it (`http.listen`).
    pub http: String,
}

/// The sessions member `me` should hold: its own while it is live, and, among the members
/// gone for `takeover_after_s` (`gone_long`), those rendezvous hashing of their name over the
/// live members gives to it.
pub fn wanted(
    members: &[String],
    me: &str,
    live: &BTreeSet<String>,
    gone_long: impl Fn(&str) -> bool,
) -> BTreeSet<String> {
    if !live.contains(me) {
        return BTreeSet::new();
    }
    members
        .iter()
        .filter(|s| {
            if live.contains(s.as_str()) {
                s.as_str() == me
            } else {
                gone_long(s) && owner(live.iter().map(String::as_str), s) == Some(me)
            }
        })
        .cloned()
        .collect()
}

/// What the cluster needs of the rest of the gateway.
#[derive(Clone, Debug)]
pub struct Context {
    /// `[cluster]`.
    pub config: ClusterConfig,
    /// The gateway's MQTT settings; `client_id` is `mqtt.client_id`, to which the member's
    /// name is added.
    pub session: Session,
    /// The database.
    pub store: Arc<Store>,
    /// Each session's writer thread's settings.
    pub writer: WriterSettings,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Commits, for the live view and alerts.
    pub live: broadcast::Sender<LiveEvent>,
    /// This gateway's HTTP address, announced.
    pub http: String,
}

/// One member's session, held here: its writer thread and ingest.
struct Held {
    terminals: Vec<String>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Held {
    fn start(ctx: &Context, slot: &str, terminals: Vec<String>) -> Held {
        let cancel = CancellationToken::new();
        let session = Session {
            client_id: format!("{}-{slot}", ctx.session.client_id),
            ..ctx.session.clone()
        };
        let filters: Vec<String> = terminals
            .iter()
            .flat_map(|t| {
                [Channel::Telemetry, Channel::Status]
                    .into_iter()
                    .filter_map(|c| {
                        let id = TerminalId::new(t).ok()?;
                        topic::topic(&session.prefix, &id, c)
                            .ok()
                            .map(|t| t.to_string())
                    })
            })
            .collect();
        let (ctx2, stop, slot) = (ctx.clone(), cancel.clone(), slot.to_owned());
        let terminals_of = terminals.clone();
        let task = tokio::spawn(async move {
            if filters.is_empty() {
                // No terminal of this member is registered here: nothing to subscribe to.
                stop.cancelled().await;
                return;
            }
            take_over_acks(&ctx2, &slot, &terminals_of).await;
            if let Err(e) = run_session(ctx2, session, filters, stop).await {
                tracing::error!(session = %slot, error = %format!("{e:#}"), "cluster: a session stopped");
            }
        });
        Held {
            terminals,
            cancel,
            task,
        }
    }
}

/// Before starting a session: where each of its terminals' acknowledged run ends, from the
/// node's retained ack, which the member that held the session last published. A run this
/// member has no record of, or one that stops below it (its terminals were held elsewhere
/// meanwhile), goes on from there; otherwise the first message would look like one past a gap
/// and its ack would wait for the node's resend.
async fn take_over_acks(ctx: &Context, slot: &str, terminals: &[String]) {
    let suffix = format!("{}-acks-{slot}", ctx.config.instance);
    let found = match acks::retained(&ctx.session, &suffix, terminals, Duration::from_secs(10))
        .await
    {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(session = %slot, error = %format!("{e:#}"), "cluster: cannot read the retained acks; acks wait for the nodes' resends");
            return;
        }
    };
    let advanced = ctx.store.with(|c| {
        let mut n = 0;
        for (terminal, ack) in &found {
            if weir_store::node_acks::advance(c, terminal, ack.boot, ack.seq)? {
                n += 1;
            }
        }
        Ok(n)
    });
    match advanced {
        Ok(n) => tracing::info!(
            session = %slot,
            terminals = terminals.len(),
            retained_acks = found.len(),
            advanced = n,
            "cluster: acknowledged runs taken from the nodes' retained acks"
        ),
        Err(e) => {
            tracing::warn!(session = %slot, error = %format!("{e:#}"), "cluster: cannot record the retained acks")
        }
    }
}

/// A writer thread and ingest on `session`, until `cancel`.
async fn run_session(
    ctx: Context,
    session: Session,
    filters: Vec<String>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let (jobs_tx, jobs_rx) = mpsc::channel(8192);
    let (committed_tx, committed_rx) = mpsc::unbounded_channel();
    let conn = ctx
        .store
        .connect()
        .context("opening a store writer's connection")?;
    let writer = writer::spawn(conn, ctx.writer, jobs_rx, committed_tx)
        .context("starting a store writer thread")?;
    tracing::info!(client_id = %session.client_id, filters = filters.len(), "cluster: session starts");
    let result = ingest::run_filtered(
        session,
        filters,
        jobs_tx,
        committed_rx,
        ctx.metrics.clone(),
        ctx.live.clone(),
        cancel,
    )
    .await;
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    result
}

/// Each configured member's registered terminals, by rendezvous hashing of their ids.
fn divide(ctx: &Context) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let all = ctx.store.with(weir_store::terminals::list)?;
    let mut out: BTreeMap<String, Vec<String>> = ctx
        .config
        .members
        .iter()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    for t in all {
        let id = t.id;
        if let Some(m) = owner(ctx.config.members.iter().map(String::as_str), &id) {
            if let Some(v) = out.get_mut(m) {
                v.push(id);
            }
        }
    }
    Ok(out)
}

/// Runs this member until `cancel`: announces it, holds the sessions it should, and on
/// `cancel` stops them (committing and acknowledging what they took) and clears its
/// announcement.
pub async fn run(ctx: Context, cancel: CancellationToken) -> anyhow::Result<()> {
    let cfg = ctx.config.clone();
    let me = cfg.instance.clone();
    let members_filter = format!("{}/cluster/members/+", ctx.session.prefix);
    let my_topic = format!("{}/cluster/members/{me}", ctx.session.prefix);
    let mut opts = ctx.session.side_connection(&format!("{me}-cluster"));
    opts.set_last_will(LastWill::new(&my_topic, "", QoS::AtLeastOnce, true));
    let (client, mut events) = AsyncClient::new(opts, 256);
    let takeover_after = Duration::from_secs(u64::from(cfg.takeover_after_s));

    let mut announced: BTreeMap<String, Announce> = BTreeMap::new();
    let mut connected = false;
    let mut seen_self = false;
    let mut gone_since: BTreeMap<String, Instant> = BTreeMap::new();
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut releasing: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
    let mut failed_at: BTreeMap<String, Instant> = BTreeMap::new();
    let mut division = BTreeMap::new();
    let mut divided_at: Option<Instant> = None;
    let mut last_announce: Option<Announce> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ctx.metrics.cluster_members.store(0, Relaxed);

    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    seen_self = false;
                    announced.clear();
                    last_announce = None;
                    client.subscribe(&members_filter, QoS::AtLeastOnce).await?;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let Some(name) = p.topic.rsplit('/').next().map(str::to_owned) else { continue };
                    if p.payload.is_empty() {
                        announced.remove(&name);
                        if name == me && connected {
                            // Cleared by a will of ours from an earlier connection: say it again.
                            last_announce = None;
                        }
                    } else {
                        match serde_json::from_slice::<Announce>(&p.payload) {
                            Ok(a) => {
                                // Our own announcement back: the retained ones came before it.
                                if name == me && last_announce.as_ref() == Some(&a) {
                                    seen_self = true;
                                }
                                if !cfg.members.contains(&name) {
                                    tracing::warn!(member = %name, "cluster: a gateway not in cluster.members announces itself; ignored");
                                    continue;
                                }
                                announced.insert(name, a);
                            }
                            Err(e) => tracing::warn!(topic = %p.topic, error = %e, "cluster: unreadable announcement; ignored"),
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        tracing::warn!(error = %e, "cluster: lost the broker; stopping the sessions held");
                    }
                    connected = false;
                    seen_self = false;
                    announced.clear();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = tick.tick() => {}
        }

        // Sessions that ended by themselves (an error) are started again after a pause.
        let ended: Vec<String> = held
            .iter()
            .filter(|(_, h)| h.task.is_finished())
            .map(|(s, _)| s.clone())
            .collect();
        for s in ended {
            held.remove(&s);
            failed_at.insert(s, Instant::now());
        }
        releasing.retain(|_, t| !t.is_finished());

        let now = Instant::now();
        if divided_at.is_none_or(|t| now.duration_since(t) > Duration::from_secs(10)) {
            match divide(&ctx) {
                Ok(d) => division = d,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cluster: cannot list the terminals")
                }
            }
            divided_at = Some(now);
        }

        // Who is live, as far as the broker says; nobody while we are not ourselves there.
        let live: BTreeSet<String> = if connected && seen_self {
            announced.keys().cloned().collect()
        } else {
            BTreeSet::new()
        };
        for m in &cfg.members {
            if live.contains(m) || !connected || !seen_self {
                gone_since.remove(m);
            } else {
                gone_since.entry(m.clone()).or_insert(now);
            }
        }
        let want = wanted(&cfg.members, &me, &live, |m| {
            gone_since
                .get(m)
                .is_some_and(|t| now.duration_since(*t) >= takeover_after)
        });

        // Release first: a session goes on being announced until it has stopped.
        let drop_now: Vec<String> = held
            .iter()
            .filter(|(s, h)| {
                !want.contains(*s) || division.get(*s).is_some_and(|t| *t != h.terminals)
            })
            .map(|(s, _)| s.clone())
            .collect();
        for s in drop_now {
            if let Some(h) = held.remove(&s) {
                tracing::info!(session = %s, "cluster: handing a session back");
                h.cancel.cancel();
                releasing.insert(s, h.task);
            }
        }
        for s in &want {
            if held.contains_key(s) || releasing.contains_key(s) {
                continue;
            }
            if failed_at
                .get(s)
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(5))
            {
                continue;
            }
            let elsewhere = announced
                .iter()
                .any(|(m, a)| *m != me && a.holds.contains(s));
            if elsewhere {
                continue;
            }
            let terminals = division.get(s).cloned().unwrap_or_default();
            if *s != me {
                tracing::warn!(session = %s, terminals = terminals.len(), "cluster: taking over a member's terminals");
                ctx.metrics.cluster_takeovers.fetch_add(1, Relaxed);
            }
            held.insert(s.clone(), Held::start(&ctx, s, terminals));
        }

        let terminals: usize = held.values().map(|h| h.terminals.len()).sum();
        ctx.metrics
            .cluster_members
            .store(live.len() as i64, Relaxed);
        ctx.metrics
            .cluster_terminals
            .store(terminals as i64, Relaxed);
        ctx.metrics
            .cluster_sessions
            .store(held.len() as i64, Relaxed);

        if connected {
            let announce = Announce {
                instance: me.clone(),
                holds: held
                    .keys()
                    .chain(releasing.keys())
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                terminals,
                http: ctx.http.clone(),
            };
            if last_announce.as_ref() != Some(&announce) {
                let body = serde_json::to_vec(&announce)?;
                if client
                    .try_publish(&my_topic, QoS::AtLeastOnce, true, body)
                    .is_ok()
                {
                    last_announce = Some(announce);
                }
            }
        }
    }

    // Leaving: stop every session (each commits and acknowledges what it took), then clear
    // the announcement; the others take this member's terminals over after takeover_after_s.
    for (_, h) in std::mem::take(&mut held) {
        h.cancel.cancel();
        let _ = h.task.await;
    }
    for (_, t) in releasing {
        let _ = t.await;
    }
    if connected {
        let _ = client.publish(&my_topic, QoS::AtLeastOnce, true, "").await;
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while events.poll().await.is_ok() {}
        })
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rendezvous_moves_only_the_keys_of_a_member_that_leaves() {
        let three = ["a", "b", "c"];
        let two = ["a", "b"];
        let keys: Vec<String> = (0..3000).map(|i| format!("HY-{i:05}")).collect();
        let mut moved = 0;
        let mut per = BTreeMap::new();
        for k in &keys {
            let before = owner(three, k).unwrap();
            *per.entry(before).or_insert(0) += 1;
            let after = owner(two, k).unwrap();
            if before != "c" {
                assert_eq!(before, after, "{k} moved though its owner stayed");
            } else {
                moved += 1;
            }
        }
        // About a third each.
        for (m, n) in per {
            assert!((800..1200).contains(&n), "{m} got {n} of 3000");
        }
        assert!((800..1200).contains(&moved));
    }

    #[test]
    fn a_live_member_holds_its_own_and_one_member_takes_each_gone_one() {
        let members = names(&["a", "b", "c"]);
        let live: BTreeSet<String> = names(&["a", "b"]).into_iter().collect();
        // c gone, but not long enough: nobody takes it.
        assert_eq!(
            wanted(&members, "a", &live, |_| false),
            names(&["a"]).into_iter().collect()
        );
        assert_eq!(
            wanted(&members, "b", &live, |_| false),
            names(&["b"]).into_iter().collect()
        );
        // Long enough: exactly one of a and b takes c.
        let a = wanted(&members, "a", &live, |_| true);
        let b = wanted(&members, "b", &live, |_| true);
        assert_eq!(u8::from(a.contains("c")) + u8::from(b.contains("c")), 1);
        assert!(a.contains("a") && b.contains("b"));
        // A member that is not itself live holds nothing.
        assert!(wanted(&members, "c", &live, |_| true).is_empty());
    }

    #[test]
    fn the_configuration_names_its_problems() {
        let mut c = ClusterConfig {
            enabled: true,
            instance: "a".into(),
            members: names(&["a", "b"]),
            takeover_after_s: 5,
        };
        c.validate(true).unwrap();
        assert!(c
            .validate(false)
            .unwrap_err()
            .to_string()
            .contains("external"));
        c.instance = "z".into();
        assert!(c
            .validate(true)
            .unwrap_err()
            .to_string()
            .contains("cluster.instance"));
        c.instance = "a".into();
        c.members = names(&["a", "a/b"]);
        assert!(c.validate(true).unwrap_err().to_string().contains("a/b"));
        c.members = names(&["a", "a"]);
        assert!(c.validate(true).unwrap_err().to_string().contains("twice"));
    }
}
