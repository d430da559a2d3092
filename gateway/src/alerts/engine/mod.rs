//! The alert engine: one task that owns every terminal's rule state and every active alert.
//!
//! It follows the committed-data feed (never polls), runs the silence timers on the tokio
//! clock, applies people's actions from the API, persists every change before telling
//! anyone, groups terminals that go offline together into one incident, and hands
//! notices to the notifier. Being the only writer of alert state, it needs no locks, and
//! "at most one active alert per terminal and rule" holds by construction (and by a unique
//! index).
//!
//! By concern: this file holds the state, its loading and the feed of readings, and applies
//! transitions; `timers` the clock and deadlines; `actions` people's actions; `grouping`
//! incidents; `escalation` escalation and notices.

mod actions;
mod escalation;
mod grouping;
mod timers;

pub use actions::{Action, ActionError, Command};
pub use timers::Clock;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_contract::{NodeState, Reading};

use super::config::{AlertsConfig, NoticeEvent, RuleParams};
use super::model::{self, Alert, AlertRow, AlertState, Incident, Rule, Severity, SYSTEM};
use super::notify::Notice;
use super::rules::gap::Gaps;
use super::rules::offline::Offline;
use super::rules::{Change, ReadingRules, Transition};
use super::text::Text;
use crate::live::LiveEvent;
use weir_store::alerts::{self as store, NewAlert};
use weir_store::Store;
use weir_store::{cursors, incidents, readings};

/// Most of the store's commits the engine evaluates and saves in one transaction of its own.
const COMMITS_PER_TRANSACTION: usize = 64;

/// A change for the live feed.
#[derive(Clone, Debug)]
pub enum AlertEvent {
    /// An alert opened or changed.
    Alert(Box<Alert>),
    /// An incident opened or changed.
    Incident(Incident),
}

/// Where the engine's output goes.
#[derive(Clone, Debug)]
pub struct Outputs {
    /// Alert and incident changes.
    pub events: broadcast::Sender<AlertEvent>,
    /// Notices for the notifier.
    pub notify: mpsc::UnboundedSender<Notice>,
    /// The same notices, for anyone watching what the engine decided to tell.
    pub notices: broadcast::Sender<Notice>,
}

struct Term {
    params: RuleParams,
    design_flow: Option<f64>,
    rules: ReadingRules,
    gaps: Gaps,
    /// None until the node has ever been heard from (a terminal registered but never
    /// installed is not "offline").
    offline: Option<Offline>,
    dirty: bool,
}

#[derive(Debug)]
struct Active {
    id: i64,
    state: AlertState,
    severity: Severity,
    opened_at: i64,
    escalated: bool,
    escalate_at: Option<i64>,
    /// An offline alert's notice waits this long, in case it joins an incident.
    notify_at: Option<i64>,
    incident: Option<i64>,
}

impl Active {
    /// The engine's record of a stored alert (a new one is not escalated and in no incident).
    fn of(row: &AlertRow, escalate_at: Option<i64>, notify_at: Option<i64>) -> Self {
        Active {
            id: row.id,
            state: row.state,
            severity: row.severity,
            opened_at: row.opened_at,
            escalated: row.escalated,
            escalate_at,
            notify_at,
            incident: row.incident_id,
        }
    }
}

#[derive(Debug)]
struct ActiveIncident {
    last_join: i64,
    /// Whether its escalation was announced.
    escalated: bool,
    members: Vec<i64>,
    notify_at: Option<i64>,
}

/// What a transaction did to one alert.
enum Applied {
    Opened(AlertRow),
    Rose(AlertRow),
    Updated(AlertRow),
    Resolved(AlertRow),
}

/// The engine's state.
pub struct Engine {
    cfg: Arc<AlertsConfig>,
    store: Arc<Store>,
    clock: Clock,
    text: Text,
    terms: HashMap<String, Term>,
    active: HashMap<(String, Rule), Active>,
    incidents: HashMap<i64, ActiveIncident>,
    last_reading_id: i64,
    out: Outputs,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("terminals", &self.terms.len())
            .field("active", &self.active.len())
            .field("last_reading_id", &self.last_reading_id)
            .finish()
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Engine {
    /// Rebuilds the engine from the store: the registry, each terminal's saved rule state,
    /// the active alerts and incidents, and the reading cursor. Silence timers start now.
    pub async fn load(
        cfg: Arc<AlertsConfig>,
        store: Arc<Store>,
        clock: Clock,
        out: Outputs,
    ) -> anyhow::Result<Engine> {
        #[allow(clippy::type_complexity)]
        let (registry, states, active, incidents, cursor, max_id) = store
            .run(|c| {
                Ok((
                    weir_store::terminals::list(c)?,
                    store::terminal_states(c)?,
                    store::active(c)?,
                    incidents::list(c, true, 100_000)?,
                    cursors::get(c, cursors::ALERTS)?,
                    readings::max_id(c)?,
                ))
            })
            .await?;
        let now = clock.now();
        let mut saved: HashMap<String, (String, String)> =
            states.into_iter().map(|(t, r, g)| (t, (r, g))).collect();
        let mut engine = Engine {
            text: Text(cfg.language),
            cfg,
            store,
            clock,
            terms: HashMap::new(),
            active: HashMap::new(),
            incidents: HashMap::new(),
            last_reading_id: cursor.unwrap_or(max_id),
            out,
        };
        for t in registry {
            let (id, last_seen) = (t.id, t.last_seen);
            let mut term = engine.new_term(&id, t.design_flow_m3d);
            if let Some((rules, gaps)) = saved.remove(&id) {
                term.rules = serde_json::from_str(&rules).unwrap_or_else(|e| {
                    tracing::warn!(terminal = %id, error = %e, "unreadable saved rule state; starting afresh");
                    ReadingRules::default()
                });
                term.gaps = serde_json::from_str(&gaps).unwrap_or_default();
            }
            // Heard from before: watched again, from the gateway's start.
            if last_seen.is_some() && term.params.enabled(Rule::Offline) {
                term.offline = Some(Offline::new(now, false));
            }
            engine.terms.insert(id, term);
        }
        for row in active {
            engine.adopt(row, now);
        }
        // A rule state that says raised with no active alert: the alert was resolved by hand.
        let raised: Vec<(String, Rule)> = engine
            .terms
            .iter()
            .flat_map(|(t, term)| {
                Rule::ALL
                    .into_iter()
                    .filter(|r| term.rules.raised(*r) || (*r == Rule::DataGap && term.gaps.raised))
                    .map(move |r| (t.clone(), r))
            })
            .collect();
        for (t, rule) in raised {
            if !engine.active.contains_key(&(t.clone(), rule)) {
                if let Some(term) = engine.terms.get_mut(&t) {
                    term.rules.force(rule, false);
                    if rule == Rule::DataGap {
                        term.gaps.force(false);
                    }
                    term.dirty = true;
                }
            }
        }
        for inc in incidents {
            let members: Vec<i64> = inc.alert_ids.clone();
            engine.incidents.insert(
                inc.id,
                ActiveIncident {
                    last_join: i64::MIN / 2,
                    escalated: false,
                    members,
                    notify_at: None,
                },
            );
        }
        if cursor.is_none() {
            // First start: history before it raises nothing.
            engine
                .store
                .run(move |c| cursors::set(c, cursors::ALERTS, max_id))
                .await?;
        }
        Ok(engine)
    }

    fn new_term(&self, id: &str, design_flow: Option<f64>) -> Term {
        Term {
            params: self.cfg.params_for(id),
            design_flow,
            rules: ReadingRules::default(),
            gaps: Gaps::default(),
            offline: None,
            dirty: false,
        }
    }

    /// Takes a stored active alert into the in-memory state.
    fn adopt(&mut self, row: AlertRow, now: i64) {
        let escalate_at = self.escalate_at(&row).map(|t| t.max(now));
        if !self.terms.contains_key(&row.terminal) {
            let term = self.new_term(&row.terminal, None);
            self.terms.insert(row.terminal.clone(), term);
        }
        if let Some(term) = self.terms.get_mut(&row.terminal) {
            match row.rule {
                Rule::Offline => {
                    let o = term.offline.get_or_insert(Offline::new(now, true));
                    o.raised = true;
                }
                Rule::DataGap => term.gaps.raised = true,
                rule => term.rules.force(rule, true),
            }
        }
        self.active.insert(
            (row.terminal.clone(), row.rule),
            Active::of(&row, escalate_at, None),
        );
    }

    /// Evaluates the readings committed after the cursor (those a crash or a lagging feed
    /// kept from the engine).
    pub async fn catch_up(&mut self) -> anyhow::Result<()> {
        loop {
            let after = self.last_reading_id;
            let batch = self
                .store
                .run(move |c| readings::after(c, after, 2000))
                .await?
                .into_iter()
                .map(|r| (r.id, r.terminal, r.row.to_reading()))
                .collect::<Vec<_>>();
            if batch.is_empty() {
                return Ok(());
            }
            tracing::info!(
                readings = batch.len(),
                "alert engine catching up on stored readings"
            );
            self.on_batch(&[], batch, &[]).await?;
        }
    }

    /// Follows the feed, the timers and the API until `cancel`.
    pub async fn run(
        mut self,
        mut live: broadcast::Receiver<LiveEvent>,
        mut commands: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) {
        let mut live_open = true;
        loop {
            let next = self.next_deadline();
            let wake = next.map(|t| self.clock.instant(t));
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                cmd = commands.recv() => match cmd {
                    Some(c) => {
                        let r = self.act(c.id, c.action, &c.who).await;
                        let _ = c.reply.send(r);
                        Ok(())
                    }
                    None => break,
                },
                ev = live.recv(), if live_open => match ev {
                    Ok(first) => {
                        // Every commit already waiting is taken with this one: one transaction
                        // of the engine's for them all, not one each, so that under load the
                        // engine does not queue for the write lock once per commit of the
                        // store writer (docs/performance.md, "Latency").
                        let mut readings = Vec::new();
                        let mut messages: Vec<(String, u32, u32)> = Vec::new();
                        let mut statuses: Vec<(String, NodeState)> = Vec::new();
                        let mut next = Some(first);
                        let mut taken = 0;
                        let mut lagged = None;
                        while let Some(LiveEvent::Committed { messages: m, readings: r, statuses: st }) =
                            next.take()
                        {
                            readings.extend(
                                r.iter().map(|r| (r.id, r.terminal.to_string(), r.reading)),
                            );
                            messages.extend(m.iter().map(|(t, b, s)| (t.to_string(), *b, *s)));
                            statuses.extend(st.iter().map(|(t, s)| (t.to_string(), s.state)));
                            taken += 1;
                            if taken < COMMITS_PER_TRANSACTION {
                                match live.try_recv() {
                                    Ok(ev) => next = Some(ev),
                                    // Told once only: the receiver has moved past what it
                                    // missed, so the store is read after this batch.
                                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                        lagged = Some(n);
                                    }
                                    Err(_) => {}
                                }
                            }
                        }
                        let result = self.on_batch(&messages, readings, &statuses).await;
                        match lagged {
                            Some(n) => {
                                tracing::warn!(missed = n, "the alert engine fell behind the live feed; reading the store");
                                let caught_up = self.catch_up().await;
                                result.and(caught_up)
                            }
                            None => result,
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "the alert engine fell behind the live feed; reading the store");
                        self.catch_up().await
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        live_open = false;
                        Ok(())
                    }
                },
                _ = sleep_until(wake) => {
                    let now = self.clock.now();
                    self.on_timers(now).await
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %format!("{e:#}"), "the alert engine could not save a change");
                // Do not spin on a failing disk.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        tracing::debug!("alert engine stopped");
    }

    async fn ensure_terms(&mut self, ids: Vec<String>) -> anyhow::Result<()> {
        let mut missing: Vec<String> = ids
            .into_iter()
            .filter(|t| !self.terms.contains_key(t))
            .collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let lookup = missing.clone();
        let flows: Vec<Option<f64>> = self
            .store
            .run(move |c| {
                lookup
                    .iter()
                    .map(|t| {
                        weir_store::terminals::get(c, t).map(|x| x.and_then(|x| x.design_flow_m3d))
                    })
                    .collect()
            })
            .await?;
        for (t, flow) in missing.into_iter().zip(flows) {
            let term = self.new_term(&t, flow);
            self.terms.insert(t, term);
        }
        Ok(())
    }

    /// One committed transaction's messages, readings and statuses.
    pub async fn on_batch(
        &mut self,
        messages: &[(String, u32, u32)],
        readings: Vec<(i64, String, Reading)>,
        statuses: &[(String, NodeState)],
    ) -> anyhow::Result<()> {
        let now = self.clock.now();
        let ids = messages
            .iter()
            .map(|m| m.0.clone())
            .chain(readings.iter().map(|r| r.1.clone()))
            .chain(statuses.iter().map(|s| s.0.clone()))
            .collect();
        self.ensure_terms(ids).await?;
        let text = self.text;
        let mut plan = Vec::new();
        for (t, boot, seq) in messages {
            let Some(term) = self.terms.get_mut(t) else {
                continue;
            };
            if term.params.enabled(Rule::Offline) {
                let o = term.offline.get_or_insert(Offline::new(now, false));
                plan.extend(o.heard(now, text).map(|x| (t.clone(), x)));
            }
            if term.params.enabled(Rule::DataGap) {
                term.gaps.on_message(*boot, *seq, now);
                let grace = i64::from(term.params.data_gap_grace_min) * 60;
                plan.extend(term.gaps.check(now, grace, text).map(|x| (t.clone(), x)));
                term.dirty = true;
            }
        }
        let mut advanced = false;
        for (id, t, reading) in readings {
            if id <= self.last_reading_id {
                // Already evaluated (a replayed feed event, or the catch-up overlapping it).
                continue;
            }
            self.last_reading_id = id;
            advanced = true;
            let Some(term) = self.terms.get_mut(&t) else {
                continue;
            };
            let changes = term
                .rules
                .on_reading(&term.params, term.design_flow, &reading, text);
            plan.extend(changes.into_iter().map(|x| (t.clone(), x)));
            term.dirty = true;
        }
        for (t, state) in statuses {
            let Some(term) = self.terms.get_mut(t) else {
                continue;
            };
            if !term.params.enabled(Rule::Offline) {
                continue;
            }
            let o = term.offline.get_or_insert(Offline::new(now, false));
            match state {
                NodeState::Online => plan.extend(o.heard(now, text).map(|x| (t.clone(), x))),
                NodeState::Offline => o.last_will(now),
            }
        }
        self.apply(plan, now, advanced).await
    }

    /// Persists `plan` (and the rule state of changed terminals) in one transaction, then
    /// tells the live feed and the notifier.
    async fn apply(
        &mut self,
        plan: Vec<(String, Transition)>,
        now: i64,
        cursor_moved: bool,
    ) -> anyhow::Result<()> {
        let dirty: Vec<(String, String, String)> = self
            .terms
            .iter_mut()
            .filter(|(_, t)| t.dirty)
            .map(|(id, t)| {
                t.dirty = false;
                (id.clone(), to_json(&t.rules), to_json(&t.gaps))
            })
            .collect();
        if plan.is_empty() && dirty.is_empty() && !cursor_moved {
            return Ok(());
        }
        let cursor = self.last_reading_id;
        let text = self.text;
        let plan: Vec<(String, Transition, String)> = plan
            .into_iter()
            .map(|(t, x)| {
                let title = text.title(x.rule, x.severity);
                (t, x, title)
            })
            .collect();
        let applied = self
            .store
            .run(move |c| {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                let mut applied = Vec::new();
                for (t, x, title) in plan {
                    let existing = store::active_for(&tx, &t, x.rule)?;
                    match (x.change, existing) {
                        (Change::Raise, None) => {
                            let id = store::insert(
                                &tx,
                                &NewAlert {
                                    terminal: t.clone(),
                                    rule: x.rule,
                                    severity: x.severity,
                                    title,
                                    detail: x.detail,
                                    value: x.value,
                                    threshold: x.threshold,
                                    at: now,
                                },
                            )?;
                            applied.extend(store::get(&tx, id)?.map(Applied::Opened));
                        }
                        (Change::Raise, Some(mut row)) => {
                            let rose = x.severity > row.severity;
                            if rose {
                                row.severity = x.severity;
                                row.title = title;
                                store::record(
                                    &tx,
                                    row.id,
                                    now,
                                    SYSTEM,
                                    "severity",
                                    Some(&x.detail),
                                )?;
                            }
                            row.detail = x.detail;
                            row.value = x.value;
                            row.threshold = x.threshold;
                            store::save(&tx, &row)?;
                            applied.push(if rose {
                                Applied::Rose(row)
                            } else {
                                Applied::Updated(row)
                            });
                        }
                        (Change::Clear, Some(mut row)) => {
                            row.state = AlertState::Resolved;
                            row.resolved_at = Some(now);
                            row.resolved_by = Some(SYSTEM.into());
                            row.resolution_note = Some(x.detail.clone());
                            store::save(&tx, &row)?;
                            store::record(&tx, row.id, now, SYSTEM, "resolved", Some(&x.detail))?;
                            applied.push(Applied::Resolved(row));
                        }
                        (Change::Clear, None) => {}
                    }
                }
                for (t, rules, gaps) in &dirty {
                    store::save_terminal_state(&tx, t, rules, gaps)?;
                }
                cursors::set(&tx, cursors::ALERTS, cursor)?;
                tx.commit()?;
                Ok(applied)
            })
            .await?;

        let mut changed = Vec::new();
        let mut new_offline = Vec::new();
        let grouping = self.cfg.incidents.min_terminals > 0;
        for a in applied {
            match a {
                Applied::Opened(row) => {
                    let delay = row.rule == Rule::Offline && grouping;
                    let escalate_at = self.escalate_at(&row);
                    let notify_at = delay.then(|| now + i64::from(self.cfg.incidents.window_s));
                    self.active.insert(
                        (row.terminal.clone(), row.rule),
                        Active::of(&row, escalate_at, notify_at),
                    );
                    if row.rule == Rule::Offline {
                        new_offline.push(row.id);
                    }
                    if !delay {
                        self.notice_alert(NoticeEvent::Opened, &row, now);
                    }
                    changed.push(row);
                }
                Applied::Rose(row) => {
                    let escalate_at = self.escalate_at(&row);
                    if let Some(a) = self.active.get_mut(&(row.terminal.clone(), row.rule)) {
                        a.severity = row.severity;
                        a.escalate_at = match (a.escalate_at, escalate_at) {
                            (Some(x), Some(y)) => Some(x.min(y)),
                            (x, y) => x.or(y),
                        };
                        if a.notify_at.is_none() {
                            self.notice_alert(NoticeEvent::Opened, &row, now);
                        }
                    }
                    changed.push(row);
                }
                Applied::Updated(row) => changed.push(row),
                Applied::Resolved(row) => {
                    self.resolved(&row, now).await?;
                    changed.push(row);
                }
            }
        }
        if grouping {
            for id in new_offline {
                if let Some(row) = self.group(id, now).await? {
                    if let Some(c) = changed.iter_mut().find(|c| c.id == row.id) {
                        *c = row;
                    }
                }
            }
            // Earlier members may have joined a new incident after their own event.
            let ids: Vec<i64> = changed.iter().map(|r| r.id).collect();
            let fresh = self
                .store
                .run(move |c| {
                    ids.iter()
                        .map(|id| store::get(c, *id))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .await?;
            changed = fresh.into_iter().flatten().collect();
        }
        for row in changed {
            self.emit(&row, now);
        }
        Ok(())
    }

    fn view(&self, row: &AlertRow, now: i64) -> Alert {
        model::view(row, self.cfg.targets_of(row.crew.as_deref()), now)
    }

    fn emit(&self, row: &AlertRow, now: i64) {
        let _ = self
            .out
            .events
            .send(AlertEvent::Alert(Box::new(self.view(row, now))));
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
