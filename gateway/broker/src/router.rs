//! The broker's shared state (sessions, subscriptions, retained messages) and the operations
//! connections perform on it. One lock guards it all; nothing awaits while holding it.
//!
//! A session belongs to the identity that made it: it is found by (identity, client id), so a
//! client of another identity asking for the same client id gets a session of its own and can
//! neither resume, take over nor end someone else's. The one exception is the service (the
//! gateway's own client), which ends any other identity's session with its client id, and
//! whose sessions' client ids no one else may use (see [`Router::connect`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{LastWill, SubscribeReasonCode};
use rumqttc::mqttbytes::QoS;
use tokio::time::Instant;

use crate::config::BrokerConfig;
use crate::policy::{Identity, Policy};
use crate::retained::RetainedStore;
use crate::session::{
    min_qos, Attachment, Delivery, Dropped, Filled, Message, QueueBounds, Session,
};
use crate::stats::Stats;
use crate::subscriptions::SubscriptionIndex;

/// The highest QoS the broker delivers at: QoS 2 is accepted from publishers, sent as QoS 1.
const MAX_QOS: QoS = QoS::AtLeastOnce;

/// The connection no longer serves its session: another connection took it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TakenOver;

/// Why a connection was not attached to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotAttached {
    /// The client id is held by a session of the service.
    ClientIdInUse,
    /// The identity has `max_sessions_per_identity` persistent sessions, all connected.
    TooManySessions,
}

/// Names a session for as long as it exists; never reused.
pub(crate) type SessionId = u64;

/// A connection attached to its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attached {
    pub session: SessionId,
    /// Whether the session existed before (CONNACK's session present flag).
    pub present: bool,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<SessionId, Session>,
    /// Each client id's sessions, one per identity using it: nearly always just one.
    by_client_id: HashMap<Arc<str>, Vec<SessionId>>,
    /// Each identity's persistent sessions.
    persistent: HashMap<Identity, Vec<SessionId>>,
    next_session: SessionId,
    subscriptions: SubscriptionIndex,
    retained: RetainedStore,
    /// Reused for each publish to avoid an allocation per message.
    scratch: Vec<(SessionId, QoS)>,
}

impl State {
    /// The sessions using `client_id`, of any identity.
    fn with_client_id(&self, client_id: &str) -> Vec<SessionId> {
        self.by_client_id
            .get(client_id)
            .cloned()
            .unwrap_or_default()
    }
}

pub(crate) struct Router {
    state: Mutex<State>,
    policy: Arc<dyn Policy>,
    stats: Arc<Stats>,
    bounds: QueueBounds,
    max_inflight: usize,
    service_max_inflight: usize,
    session_expiry: Duration,
    max_sessions_per_identity: usize,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("bounds", &self.bounds)
            .field("max_inflight", &self.max_inflight)
            .field("service_max_inflight", &self.service_max_inflight)
            .finish_non_exhaustive()
    }
}

impl Router {
    pub fn new(policy: Arc<dyn Policy>, stats: Arc<Stats>, config: &BrokerConfig) -> Self {
        Router {
            state: Mutex::default(),
            policy,
            stats,
            bounds: QueueBounds {
                max_queued: config.max_queued,
                max_queued_bytes: config.max_queued_bytes,
            },
            max_inflight: config.max_inflight.into(),
            service_max_inflight: config.service_max_inflight.into(),
            session_expiry: config.session_expiry(),
            max_sessions_per_identity: config.max_sessions_per_identity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent-enough state: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches a new connection to the session of (`identity`, `client_id`), taking it over
    /// from a connection still attached (whose will is published).
    ///
    /// A client of another identity with the same client id is not touched, except that a
    /// service login ends any other identity's session with its client id (so that no node
    /// can keep the gateway's own client out), and that no other identity may use a client
    /// id while a service session holds it.
    ///
    /// A new persistent session beyond the identity's `max_sessions_per_identity` ends the
    /// one of its sessions that has been offline longest, or is refused if all are connected.
    pub fn connect(
        &self,
        client_id: &Arc<str>,
        identity: &Identity,
        clean: bool,
        attachment: Attachment,
    ) -> Result<Attached, NotAttached> {
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let namesakes = state.with_client_id(client_id);
        let is_service = matches!(identity, Identity::Service { .. });

        // First everything that may refuse, so that a refused CONNECT changes nothing (but
        // for ending a session that had expired anyway).
        let mut own = None;
        for sid in &namesakes {
            let holder = &state.sessions[sid].identity;
            if holder == identity {
                own = Some(*sid);
            } else if !is_service && matches!(holder, Identity::Service { .. }) {
                return Err(NotAttached::ClientIdInUse);
            }
        }
        // An expired session is no session, even if the sweep has not ended it yet.
        if let Some(sid) = own.filter(|sid| state.sessions[sid].expired(now, self.session_expiry)) {
            tracing::info!(client_id = %client_id, %identity, "persistent session expired");
            self.remove_session(state, sid);
            self.stats.expired(1);
            own = None;
        }
        let resumes = !clean && own.is_some_and(|sid| !state.sessions[&sid].clean);
        if !clean && !resumes {
            self.make_room(state, identity)?;
        }

        if is_service {
            for sid in namesakes {
                let Some(session) = state.sessions.get_mut(&sid) else {
                    continue;
                };
                if session.identity == *identity {
                    continue;
                }
                tracing::warn!(client_id = %client_id, holder = %session.identity, "a service login takes back its client id");
                if let Some(previous) = session.detach() {
                    previous.kick.cancel();
                }
                self.remove_session(state, sid);
            }
        }
        if let Some(sid) = own {
            let old = state.sessions.get_mut(&sid).expect("looked up above");
            if let Some(previous) = old.detach() {
                tracing::info!(client_id = %client_id, "session taken over by a new connection");
                previous.kick.cancel();
                if let Some(will) = previous.will {
                    self.publish_will(state, identity, client_id, will);
                }
            }
            if !resumes {
                self.remove_session(state, sid);
            }
        }
        let sid = match own {
            Some(sid) if resumes => sid,
            _ => self.new_session(state, client_id, identity, clean),
        };
        let session = state.sessions.get_mut(&sid).expect("exists");
        session.attach(attachment);
        if let Some(a) = &session.attachment {
            // Whatever was queued while offline is sent at once.
            a.notify.notify_one();
        }
        Ok(Attached {
            session: sid,
            present: resumes,
        })
    }

    /// Makes room for one more persistent session of `identity`: ends its session offline
    /// longest if it has its maximum, or says that all of them are connected.
    fn make_room(&self, state: &mut State, identity: &Identity) -> Result<(), NotAttached> {
        let Some(mine) = state.persistent.get(identity) else {
            return Ok(());
        };
        if mine.len() < self.max_sessions_per_identity {
            return Ok(());
        }
        let oldest_offline = mine
            .iter()
            .map(|sid| (*sid, &state.sessions[sid]))
            .filter(|(_, s)| s.attachment.is_none())
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(sid, _)| sid);
        let Some(sid) = oldest_offline else {
            tracing::warn!(%identity, max = self.max_sessions_per_identity, "refused: every persistent session of this identity is connected");
            return Err(NotAttached::TooManySessions);
        };
        let client_id = &state.sessions[&sid].client_id;
        tracing::info!(%identity, client_id = %client_id, max = self.max_sessions_per_identity, "too many persistent sessions: ending the one offline longest");
        self.remove_session(state, sid);
        self.stats.evicted();
        Ok(())
    }

    fn new_session(
        &self,
        state: &mut State,
        client_id: &Arc<str>,
        identity: &Identity,
        clean: bool,
    ) -> SessionId {
        state.next_session += 1;
        let sid = state.next_session;
        let session = Session::new(client_id.clone(), identity.clone(), clean);
        state.sessions.insert(sid, session);
        state
            .by_client_id
            .entry(client_id.clone())
            .or_default()
            .push(sid);
        if !clean {
            state
                .persistent
                .entry(identity.clone())
                .or_default()
                .push(sid);
        }
        self.stats.set_sessions(state.sessions.len());
        sid
    }

    /// Detaches connection `conn` from its session: publishes the will unless the client said
    /// DISCONNECT, and ends the session if it was a clean one.
    pub fn disconnect(&self, sid: SessionId, conn: u64, publish_will: bool) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(session) = state.sessions.get_mut(&sid) else {
            return;
        };
        if session.attachment.as_ref().map(|a| a.id) != Some(conn) {
            return;
        }
        let attachment = session.detach().expect("checked above");
        let identity = session.identity.clone();
        let client_id = session.client_id.clone();
        let clean = session.clean;
        if publish_will {
            if let Some(will) = attachment.will {
                self.publish_will(state, &identity, &client_id, will);
            }
        }
        if clean {
            self.remove_session(state, sid);
        }
    }

    /// Ends every persistent session whose client has been away `session_expiry`.
    pub fn sweep(&self, now: Instant) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let expired: Vec<SessionId> = state
            .sessions
            .iter()
            .filter(|(_, s)| s.expired(now, self.session_expiry))
            .map(|(sid, _)| *sid)
            .collect();
        if expired.is_empty() {
            return;
        }
        tracing::info!(sessions = expired.len(), "persistent sessions expired");
        self.stats.expired(expired.len() as u64);
        for sid in expired {
            self.remove_session(state, sid);
        }
    }

    fn remove_session(&self, state: &mut State, sid: SessionId) {
        let Some(session) = state.sessions.remove(&sid) else {
            return;
        };
        self.stats.set_sessions(state.sessions.len());
        self.stats
            .queued_bytes_changed(-(session.queued_bytes() as i64));
        for filter in session.subscriptions.keys() {
            state.subscriptions.remove(filter, sid);
        }
        if let Some(ids) = state.by_client_id.get_mut(&session.client_id) {
            ids.retain(|id| *id != sid);
            if ids.is_empty() {
                state.by_client_id.remove(&session.client_id);
            }
        }
        if !session.clean {
            if let Some(ids) = state.persistent.get_mut(&session.identity) {
                ids.retain(|id| *id != sid);
                if ids.is_empty() {
                    state.persistent.remove(&session.identity);
                }
            }
        }
    }

    fn publish_will(&self, state: &mut State, who: &Identity, client_id: &str, will: LastWill) {
        self.stats.message_in();
        if !self.policy.may_publish(who, &will.topic) {
            self.stats.denied();
            tracing::warn!(client_id, topic = %will.topic, "will refused by the ACL");
            return;
        }
        tracing::debug!(client_id, topic = %will.topic, "publishing will");
        let msg = Arc::new(Message {
            topic: will.topic,
            payload: will.message,
        });
        self.route(state, msg, will.qos, will.retain);
    }

    /// Routes a message that the policy allowed: keeps it if retained and queues it for every
    /// matching subscription.
    pub fn publish(&self, msg: Message, qos: QoS, retain: bool) {
        let mut guard = self.lock();
        self.route(&mut guard, Arc::new(msg), qos, retain);
    }

    fn route(&self, state: &mut State, msg: Arc<Message>, qos: QoS, retain: bool) {
        let qos = min_qos(qos, MAX_QOS);
        if retain {
            state.retained.set(&msg, qos);
        }
        let mut targets = std::mem::take(&mut state.scratch);
        state.subscriptions.matching(&msg.topic, &mut targets);
        let mut dropped = Dropped::default();
        let mut grown = 0i64;
        for (sid, granted) in targets.drain(..) {
            let Some(session) = state.sessions.get_mut(&sid) else {
                continue;
            };
            let qos = min_qos(qos, granted);
            // An offline session keeps only what it must not miss.
            if session.attachment.is_none() && qos == QoS::AtMostOnce {
                continue;
            }
            let delivery = Delivery {
                msg: msg.clone(),
                qos,
                retain: false,
            };
            let before = session.queued_bytes();
            dropped += session.enqueue(delivery, self.bounds);
            grown += session.queued_bytes() as i64 - before as i64;
            if let Some(a) = &session.attachment {
                a.notify.notify_one();
            }
        }
        state.scratch = targets;
        self.count(dropped, grown);
    }

    /// Counts messages dropped from queues and the change in the bytes they hold.
    fn count(&self, dropped: Dropped, grown: i64) {
        if dropped.for_count > 0 {
            self.stats.dropped(dropped.for_count);
        }
        if dropped.for_bytes > 0 {
            self.stats.dropped_for_bytes(dropped.for_bytes);
        }
        if grown != 0 {
            self.stats.queued_bytes_changed(grown);
        }
    }

    /// Subscribes to each filter the policy allowed (`Some(requested QoS)`; `None` is refused)
    /// and queues the retained messages they match. Returns the SUBACK codes.
    pub fn subscribe(
        &self,
        sid: SessionId,
        conn: u64,
        filters: Vec<(String, Option<QoS>)>,
    ) -> Result<Vec<SubscribeReasonCode>, TakenOver> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let session = attached(&mut state.sessions, sid, conn)?;
        let mut codes = Vec::with_capacity(filters.len());
        let mut dropped = Dropped::default();
        let before = session.queued_bytes();
        for (filter, requested) in filters {
            let Some(requested) = requested else {
                codes.push(SubscribeReasonCode::Failure);
                continue;
            };
            let granted = min_qos(requested, MAX_QOS);
            codes.push(SubscribeReasonCode::Success(granted));
            state.subscriptions.insert(&filter, sid, granted);
            state.retained.matching(&filter, |msg, qos| {
                let delivery = Delivery {
                    msg: msg.clone(),
                    qos: min_qos(qos, granted),
                    retain: true,
                };
                dropped += session.enqueue(delivery, self.bounds);
            });
            session.subscriptions.insert(filter, granted);
        }
        self.count(dropped, session.queued_bytes() as i64 - before as i64);
        Ok(codes)
    }

    /// Removes the client's subscriptions to `filters`.
    pub fn unsubscribe(
        &self,
        sid: SessionId,
        conn: u64,
        filters: &[String],
    ) -> Result<(), TakenOver> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let session = attached(&mut state.sessions, sid, conn)?;
        for filter in filters {
            if session.subscriptions.remove(filter).is_some() {
                state.subscriptions.remove(filter, sid);
            }
        }
        Ok(())
    }

    /// Handles PUBACK `pkid`; returns whether a message in flight was acknowledged.
    pub fn acked(&self, sid: SessionId, conn: u64, pkid: u16) -> Result<bool, TakenOver> {
        let mut guard = self.lock();
        Ok(attached(&mut guard.sessions, sid, conn)?.acked(pkid))
    }

    /// Records QoS 2 PUBLISH `pkid`: true the first time, false for a resent one that must not
    /// be routed again. `Err(None)` if the client has too many unreleased.
    pub fn qos2_received(
        &self,
        sid: SessionId,
        conn: u64,
        pkid: u16,
    ) -> Result<bool, Option<TakenOver>> {
        let mut guard = self.lock();
        let session = attached(&mut guard.sessions, sid, conn).map_err(Some)?;
        if session.incoming_qos2.contains(&pkid) {
            return Ok(false);
        }
        if session.incoming_qos2.len() >= self.max_inflight {
            return Err(None);
        }
        session.incoming_qos2.insert(pkid);
        Ok(true)
    }

    /// Handles PUBREL `pkid`: the id may be used for a new QoS 2 message.
    pub fn qos2_released(&self, sid: SessionId, conn: u64, pkid: u16) -> Result<(), TakenOver> {
        let mut guard = self.lock();
        attached(&mut guard.sessions, sid, conn)?
            .incoming_qos2
            .remove(&pkid);
        Ok(())
    }

    /// Writes the session's sendable messages into `buf`, up to `high_water` bytes.
    pub fn fill(
        &self,
        sid: SessionId,
        conn: u64,
        buf: &mut BytesMut,
        high_water: usize,
    ) -> Result<Filled, TakenOver> {
        let mut guard = self.lock();
        let session = attached(&mut guard.sessions, sid, conn)?;
        let before = session.queued_bytes();
        let window = match session.identity {
            Identity::Service { .. } => self.service_max_inflight,
            _ => self.max_inflight,
        };
        let filled = session.fill(buf, window, high_water);
        let shrunk = before - session.queued_bytes();
        drop(guard);
        self.stats.messages_out(filled.written);
        if shrunk > 0 {
            self.stats.queued_bytes_changed(-(shrunk as i64));
        }
        Ok(filled)
    }

    /// Whether a session of any identity is kept for `client_id` (online or not). For tests
    /// and diagnostics.
    pub fn has_session(&self, client_id: &str) -> bool {
        self.lock().by_client_id.contains_key(client_id)
    }
}

/// Session `sid` if connection `conn` still serves it.
fn attached(
    sessions: &mut HashMap<SessionId, Session>,
    sid: SessionId,
    conn: u64,
) -> Result<&mut Session, TakenOver> {
    match sessions.get_mut(&sid) {
        Some(s) if s.attachment.as_ref().is_some_and(|a| a.id == conn) => Ok(s),
        _ => Err(TakenOver),
    }
}
