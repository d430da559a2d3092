//! The alert engine: one task that owns every terminal's rule state and every active alert.
//!
//! It follows the committed-data feed (never polls), runs the silence timers on the tokio
//! clock, applies people's actions from the API, persists every change before telling
//! anyone, groups terminals that go offline together into one incident, and hands
//! notices to the notifier. Being the only writer of alert state, it needs no locks, and
//! "at most one active alert per terminal and rule" holds by construction (and by a unique
//! index).

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

/// Wall-clock seconds that advance with the tokio clock, so that alert times and silence
/// timers agree (and tests with paused time see both move together).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall0: i64,
    inst0: Instant,
}

impl Clock {
    /// Starts at the system's time now.
    pub fn start() -> Clock {
        Clock {
            wall0: weir_store::now(),
            inst0: Instant::now(),
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.wall0 + self.inst0.elapsed().as_secs() as i64
    }

    /// The tokio instant of Unix second `at`.
    pub fn instant(&self, at: i64) -> Instant {
        self.inst0 + Duration::from_secs((at - self.wall0).max(0) as u64)
    }
}

/// What a person does to an alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Takes it on.
    Acknowledge {
        /// Optional note.
        note: Option<String>,
    },
    /// Names who handles it.
    Assign {
        /// The person.
        assignee: String,
    },
    /// Sends a crew (the terminal's zone crew if none is named); acknowledges it too.
    Dispatch {
        /// Crew name.
        crew: Option<String>,
    },
    /// The crew is on site.
    Arrive {
        /// Optional note.
        note: Option<String>,
    },
    /// Closes it by hand.
    Resolve {
        /// Required: what was done.
        note: String,
    },
    /// Adds a note.
    Note {
        /// The note.
        note: String,
    },
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such alert.
    #[error("no alert {0}")]
    NotFound(i64),
    /// Not possible in the alert's state.
    #[error("{0}")]
    Conflict(String),
    /// The request is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The gateway failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// An action for the engine, with where to send the answer.
#[derive(Debug)]
pub struct Command {
    /// Alert id.
    pub id: i64,
    /// What to do.
    pub action: Action,
    /// Who does it.
    pub who: String,
    /// The updated alert, or why not.
    pub reply: oneshot::Sender<Result<Alert, ActionError>>,
}

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

    fn escalate_at(&self, row: &AlertRow) -> Option<i64> {
        if row.state != AlertState::Open || row.escalated {
            return None;
        }
        self.cfg
            .escalation
            .after_s(row.severity)
            .map(|s| row.opened_at + s)
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
                    Ok(LiveEvent::Committed { messages, readings, statuses }) => {
                        let readings = readings
                            .iter()
                            .map(|r| (r.id, r.terminal.to_string(), r.reading))
                            .collect();
                        let messages: Vec<(String, u32, u32)> = messages
                            .iter()
                            .map(|(t, b, s)| (t.to_string(), *b, *s))
                            .collect();
                        let statuses: Vec<(String, NodeState)> = statuses
                            .iter()
                            .map(|(t, s)| (t.to_string(), s.state))
                            .collect();
                        self.on_batch(&messages, readings, &statuses).await
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

    /// Runs every timer that is due.
    pub async fn on_timers(&mut self, now: i64) -> anyhow::Result<()> {
        let text = self.text;
        let mut plan = Vec::new();
        for (t, term) in &mut self.terms {
            if let Some(o) = &mut term.offline {
                plan.extend(o.check(&term.params, now, text).map(|x| (t.clone(), x)));
            }
            if term.params.enabled(Rule::DataGap) {
                let grace = i64::from(term.params.data_gap_grace_min) * 60;
                if let Some(x) = term.gaps.check(now, grace, text) {
                    term.dirty = true;
                    plan.push((t.clone(), x));
                }
            }
        }
        self.apply(plan, now, false).await?;

        let due: Vec<(String, Rule)> = self
            .active
            .iter()
            .filter(|(_, a)| a.escalate_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.escalate(&key, now).await?;
        }

        let due: Vec<(String, Rule)> = self
            .active
            .iter()
            .filter(|(_, a)| a.notify_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(a) = self.active.get_mut(&key) else {
                continue;
            };
            a.notify_at = None;
            if a.incident.is_some() {
                // The incident's one notice speaks for it.
                continue;
            }
            let id = a.id;
            if let Some(row) = self.store.run(move |c| store::get(c, id)).await? {
                self.notice_alert(NoticeEvent::Opened, &row, now);
            }
        }

        let due: Vec<i64> = self
            .incidents
            .iter()
            .filter(|(_, i)| i.notify_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(i) = self.incidents.get_mut(&id) {
                i.notify_at = None;
            }
            if let Some(inc) = self.store.run(move |c| incidents::get(c, id)).await? {
                self.notice_incident(NoticeEvent::Opened, &inc);
            }
        }
        Ok(())
    }

    /// The earliest timer, engine seconds.
    pub fn next_deadline(&self) -> Option<i64> {
        let now = self.clock.now();
        let terms = self.terms.values().flat_map(|t| {
            let gap = t.params.enabled(Rule::DataGap).then(|| {
                t.gaps
                    .next_deadline(now, i64::from(t.params.data_gap_grace_min) * 60)
            });
            [
                t.offline.as_ref().and_then(|o| o.deadline(&t.params)),
                gap.flatten(),
            ]
        });
        let alerts = self
            .active
            .values()
            .flat_map(|a| [a.escalate_at, a.notify_at]);
        let incidents = self.incidents.values().map(|i| i.notify_at);
        terms.chain(alerts).chain(incidents).flatten().min()
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

    /// Bookkeeping after `row` was resolved (by the engine or by hand).
    async fn resolved(&mut self, row: &AlertRow, now: i64) -> anyhow::Result<()> {
        let key = (row.terminal.clone(), row.rule);
        let Some(a) = self.active.remove(&key) else {
            return Ok(());
        };
        // Only what was announced is announced over; an incident speaks for its members.
        if a.notify_at.is_none() && a.incident.is_none() {
            self.notice_alert(NoticeEvent::Resolved, row, now);
        }
        let Some(inc_id) = a.incident else {
            return Ok(());
        };
        let still = self.incidents.get(&inc_id).is_some_and(|i| {
            i.members
                .iter()
                .any(|m| self.active.values().any(|a| a.id == *m))
        });
        if still {
            return Ok(());
        }
        let announced = self
            .incidents
            .remove(&inc_id)
            .is_some_and(|i| i.notify_at.is_none());
        let inc = self
            .store
            .run(move |c| {
                let Some(inc) = incidents::get(c, inc_id)? else {
                    return Ok(None);
                };
                incidents::save(c, inc_id, &inc.title, Some(now))?;
                incidents::get(c, inc_id)
            })
            .await?;
        if let Some(inc) = inc {
            if announced {
                self.notice_incident(NoticeEvent::Resolved, &inc);
            }
            let _ = self.out.events.send(AlertEvent::Incident(inc));
        }
        Ok(())
    }

    /// Puts the offline alert `id`, just opened, into an incident if it went offline with
    /// others: joins a growing incident, or founds one once enough terminals are offline
    /// within the window. Returns the updated alert if it joined.
    async fn group(&mut self, id: i64, now: i64) -> anyhow::Result<Option<AlertRow>> {
        let window = i64::from(self.cfg.incidents.window_s);
        let joining = self
            .incidents
            .iter()
            .filter(|(_, i)| i.last_join >= now - window)
            .map(|(iid, _)| *iid)
            .max();
        let members: Vec<i64> = match joining {
            Some(_) => vec![id],
            None => {
                let recent: Vec<i64> = self
                    .active
                    .iter()
                    .filter(|((_, rule), a)| {
                        *rule == Rule::Offline
                            && a.incident.is_none()
                            && a.opened_at >= now - window
                    })
                    .map(|(_, a)| a.id)
                    .collect();
                if recent.len() < self.cfg.incidents.min_terminals as usize {
                    return Ok(None);
                }
                recent
            }
        };
        let text = self.text;
        let ids = members.clone();
        let (inc_id, inc) = self
            .store
            .run(move |c| {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                let inc_id = match joining {
                    Some(i) => i,
                    None => incidents::insert(&tx, "offline", "", now)?,
                };
                for id in &ids {
                    if let Some(mut row) = store::get(&tx, *id)? {
                        row.incident_id = Some(inc_id);
                        store::save(&tx, &row)?;
                        store::record(
                            &tx,
                            *id,
                            now,
                            SYSTEM,
                            "incident",
                            Some(&inc_id.to_string()),
                        )?;
                    }
                }
                let terminals = incidents::get(&tx, inc_id)?
                    .map(|i| i.terminals.len())
                    .unwrap_or(0);
                incidents::save(&tx, inc_id, &text.offline_incident(terminals), None)?;
                let inc = incidents::get(&tx, inc_id)?;
                tx.commit()?;
                Ok((inc_id, inc))
            })
            .await?;
        for a in self.active.values_mut() {
            if members.contains(&a.id) {
                a.incident = Some(inc_id);
            }
        }
        let entry = self.incidents.entry(inc_id).or_insert(ActiveIncident {
            last_join: now,
            escalated: false,
            members: Vec::new(),
            notify_at: Some(now + window),
        });
        entry.last_join = now;
        entry.members.extend(members);
        if let Some(inc) = inc {
            let _ = self.out.events.send(AlertEvent::Incident(inc));
        }
        self.store.run(move |c| store::get(c, id)).await
    }

    async fn escalate(&mut self, key: &(String, Rule), now: i64) -> anyhow::Result<()> {
        let Some(a) = self.active.get_mut(key) else {
            return Ok(());
        };
        a.escalate_at = None;
        if a.state != AlertState::Open || a.escalated {
            return Ok(());
        }
        a.escalated = true;
        let id = a.id;
        // Members of an incident escalate together: one notice for the incident.
        let incident = a.incident;
        let announce = match incident.and_then(|i| self.incidents.get_mut(&i)) {
            Some(inc) => !std::mem::replace(&mut inc.escalated, true),
            None => true,
        };
        let row = self
            .store
            .run(move |c| {
                let Some(mut row) = store::get(c, id)? else {
                    return Ok(None);
                };
                row.escalated = true;
                store::save(c, &row)?;
                store::record(c, id, now, SYSTEM, "escalated", None)?;
                Ok(Some(row))
            })
            .await?;
        if let Some(row) = row {
            match incident {
                Some(i) if announce => {
                    if let Some(inc) = self.store.run(move |c| incidents::get(c, i)).await? {
                        self.notice_incident(NoticeEvent::Escalated, &inc);
                    }
                }
                Some(_) => {}
                None => self.notice_alert(NoticeEvent::Escalated, &row, now),
            }
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

    fn notice_alert(&self, event: NoticeEvent, row: &AlertRow, now: i64) {
        let verb = match event {
            NoticeEvent::Opened => "alert.opened",
            NoticeEvent::Escalated => "alert.escalated",
            NoticeEvent::Resolved => "alert.resolved",
        };
        let notice = Notice {
            event,
            subject: format!("{}/{}", row.terminal, row.rule),
            severity: row.severity,
            terminals: vec![row.terminal.clone()],
            title: row.title.clone(),
            detail: match event {
                NoticeEvent::Resolved => row.resolution_note.clone().unwrap_or_default(),
                _ => row.detail.clone(),
            },
            payload: serde_json::json!({ "event": verb, "alert": self.view(row, now) }),
        };
        self.send_notice(notice);
    }

    fn notice_incident(&self, event: NoticeEvent, inc: &Incident) {
        let verb = match event {
            NoticeEvent::Opened => "incident.opened",
            NoticeEvent::Escalated => "incident.escalated",
            NoticeEvent::Resolved => "incident.resolved",
        };
        let notice = Notice {
            event,
            subject: format!("incident/{}", inc.id),
            severity: Severity::Warning,
            terminals: inc.terminals.clone(),
            title: inc.title.clone(),
            detail: self.text.terminals(&inc.terminals),
            payload: serde_json::json!({ "event": verb, "incident": inc }),
        };
        self.send_notice(notice);
    }

    fn send_notice(&self, notice: Notice) {
        let _ = self.out.notices.send(notice.clone());
        let _ = self.out.notify.send(notice);
    }

    /// Applies a person's action.
    pub async fn act(&mut self, id: i64, action: Action, who: &str) -> Result<Alert, ActionError> {
        let now = self.clock.now();
        let cfg = self.cfg.clone();
        let who = who.to_string();
        let resolving = matches!(action, Action::Resolve { .. });
        let result = self
            .store
            .run(move |c| {
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                let Some(mut row) = store::get(&tx, id)? else {
                    return Ok(Err(ActionError::NotFound(id)));
                };
                let was = row.state;
                if let Err(e) = change(&cfg, &mut row, &action, &who, now) {
                    return Ok(Err(e));
                }
                store::save(&tx, &row)?;
                for (what, note) in history(&action, &row, was) {
                    store::record(&tx, id, now, &who, what, note.as_deref())?;
                }
                tx.commit()?;
                Ok(Ok(row))
            })
            .await?;
        let row = result?;
        if resolving {
            self.resolved(&row, now).await?;
            if let Some(term) = self.terms.get_mut(&row.terminal) {
                match row.rule {
                    Rule::Offline => {
                        if let Some(o) = &mut term.offline {
                            // Still silent? It will be offline again after a full period.
                            *o = Offline::new(now, false);
                        }
                    }
                    Rule::DataGap => term.gaps.force(false),
                    rule => term.rules.force(rule, false),
                }
                term.dirty = true;
            }
            self.apply(Vec::new(), now, false).await?;
        } else if let Some(a) = self.active.get_mut(&(row.terminal.clone(), row.rule)) {
            a.state = row.state;
            if row.state != AlertState::Open {
                a.escalate_at = None;
            }
        }
        self.emit(&row, now);
        Ok(self.view(&row, now))
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Checks and applies `action` to `row`.
fn change(
    cfg: &AlertsConfig,
    row: &mut AlertRow,
    action: &Action,
    who: &str,
    now: i64,
) -> Result<(), ActionError> {
    let resolved = || {
        ActionError::Conflict(format!(
            "alert {} is resolved{}",
            row.id,
            row.resolved_by
                .as_deref()
                .map(|b| format!(" (by {b})"))
                .unwrap_or_default()
        ))
    };
    let active = row.state != AlertState::Resolved;
    match action {
        Action::Acknowledge { .. } => {
            if !active {
                return Err(resolved());
            }
            if row.state == AlertState::Acknowledged {
                return Err(ActionError::Conflict(format!(
                    "alert {} was already acknowledged by {}",
                    row.id,
                    row.acknowledged_by.as_deref().unwrap_or("someone")
                )));
            }
            row.state = AlertState::Acknowledged;
            row.acknowledged_at = Some(now);
            row.acknowledged_by = Some(who.into());
        }
        Action::Assign { assignee } => {
            if !active {
                return Err(resolved());
            }
            let assignee = assignee.trim();
            if assignee.is_empty() {
                return Err(ActionError::Invalid("assignee must not be empty".into()));
            }
            row.assignee = Some(assignee.into());
        }
        Action::Dispatch { crew } => {
            if !active {
                return Err(resolved());
            }
            if let Some(c) = &row.crew {
                return Err(ActionError::Conflict(format!(
                    "crew {c} was already dispatched to alert {}",
                    row.id
                )));
            }
            let crew = match crew.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                Some(c) => c.to_string(),
                None => cfg
                    .crew_of(&row.terminal)
                    .map(|(n, _)| n.to_string())
                    .ok_or_else(|| {
                        ActionError::Invalid(format!(
                            "no crew given, and no crew is responsible for {} ([alerts.crews])",
                            row.terminal
                        ))
                    })?,
            };
            if !cfg.crews.contains_key(&crew) {
                let known: Vec<&str> = cfg.crews.keys().map(String::as_str).collect();
                return Err(ActionError::Invalid(format!(
                    "no crew {crew:?}; the crews are: {}",
                    known.join(", ")
                )));
            }
            row.crew = Some(crew);
            row.dispatched_at = Some(now);
            if row.state == AlertState::Open {
                row.state = AlertState::Acknowledged;
                row.acknowledged_at = Some(now);
                row.acknowledged_by = Some(who.into());
            }
        }
        Action::Arrive { .. } => {
            if !active {
                return Err(resolved());
            }
            if row.crew.is_none() {
                return Err(ActionError::Conflict(format!(
                    "no crew was dispatched to alert {}",
                    row.id
                )));
            }
            if row.arrived_at.is_some() {
                return Err(ActionError::Conflict(format!(
                    "the crew already arrived at alert {}",
                    row.id
                )));
            }
            row.arrived_at = Some(now);
        }
        Action::Resolve { note } => {
            if !active {
                return Err(resolved());
            }
            if note.trim().is_empty() {
                return Err(ActionError::Invalid(
                    "a note saying what was done is required".into(),
                ));
            }
            row.state = AlertState::Resolved;
            row.resolved_at = Some(now);
            row.resolved_by = Some(who.into());
            row.resolution_note = Some(note.trim().into());
        }
        Action::Note { note } => {
            if note.trim().is_empty() {
                return Err(ActionError::Invalid("the note is empty".into()));
            }
        }
    }
    Ok(())
}

/// The history entries `action` leaves on `row`, which was in state `was`.
fn history(
    action: &Action,
    row: &AlertRow,
    was: AlertState,
) -> Vec<(&'static str, Option<String>)> {
    let trim = |n: &Option<String>| {
        n.as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
    };
    match action {
        Action::Acknowledge { note } => vec![("acknowledged", trim(note))],
        Action::Assign { .. } => vec![("assigned", row.assignee.clone())],
        Action::Dispatch { .. } => {
            let mut v = Vec::new();
            if was == AlertState::Open {
                // Dispatching acknowledges.
                v.push(("acknowledged", None));
            }
            v.push(("dispatched", row.crew.clone()));
            v
        }
        Action::Arrive { note } => vec![("arrived", trim(note))],
        Action::Resolve { note } => vec![("resolved", Some(note.trim().to_string()))],
        Action::Note { note } => vec![("note", Some(note.trim().to_string()))],
    }
}
