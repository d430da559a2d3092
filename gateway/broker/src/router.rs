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

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{LastWill, SubscribeReasonCode};
use rumqttc::mqttbytes::QoS;

use crate::policy::{Identity, Policy};
use crate::retained::RetainedStore;
use crate::session::{min_qos, Attachment, Delivery, Filled, Message, Session};
use crate::stats::Stats;
use crate::subscriptions::SubscriptionIndex;

/// The highest QoS the broker delivers at: QoS 2 is accepted from publishers, sent as QoS 1.
const MAX_QOS: QoS = QoS::AtLeastOnce;

/// The connection no longer serves its session: another connection took it over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TakenOver;

/// A client id held by a session of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientIdInUse;

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
    max_queued: usize,
    max_inflight: usize,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("max_queued", &self.max_queued)
            .field("max_inflight", &self.max_inflight)
            .finish_non_exhaustive()
    }
}

impl Router {
    pub fn new(
        policy: Arc<dyn Policy>,
        stats: Arc<Stats>,
        max_queued: usize,
        max_inflight: usize,
    ) -> Self {
        Router {
            state: Mutex::default(),
            policy,
            stats,
            max_queued,
            max_inflight,
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
    pub fn connect(
        &self,
        client_id: &Arc<str>,
        identity: &Identity,
        clean: bool,
        attachment: Attachment,
    ) -> Result<Attached, ClientIdInUse> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let namesakes = state.with_client_id(client_id);
        let is_service = matches!(identity, Identity::Service { .. });
        let mut own = None;
        for sid in namesakes {
            let session = state
                .sessions
                .get_mut(&sid)
                .expect("indexed sessions exist");
            if session.identity == *identity {
                own = Some(sid);
            } else if is_service {
                tracing::warn!(client_id = %client_id, holder = %session.identity, "a service login takes back its client id");
                if let Some(previous) = session.attachment.take() {
                    previous.kick.cancel();
                }
                self.remove_session(state, sid);
            } else if matches!(session.identity, Identity::Service { .. }) {
                return Err(ClientIdInUse);
            }
        }
        let mut present = false;
        if let Some(sid) = own {
            let old = state.sessions.get_mut(&sid).expect("looked up above");
            if let Some(previous) = old.attachment.take() {
                tracing::info!(client_id = %client_id, "session taken over by a new connection");
                previous.kick.cancel();
                if let Some(will) = previous.will {
                    self.publish_will(state, identity, client_id, will);
                }
            }
            let old = state.sessions.get(&sid).expect("looked up above");
            if clean || old.clean {
                self.remove_session(state, sid);
            } else {
                present = true;
            }
        }
        let sid = match own {
            Some(sid) if present => sid,
            _ => {
                state.next_session += 1;
                let sid = state.next_session;
                let session = Session::new(client_id.clone(), identity.clone(), clean);
                state.sessions.insert(sid, session);
                state
                    .by_client_id
                    .entry(client_id.clone())
                    .or_default()
                    .push(sid);
                sid
            }
        };
        let session = state.sessions.get_mut(&sid).expect("inserted above");
        session.attach(attachment);
        if let Some(a) = &session.attachment {
            // Whatever was queued while offline is sent at once.
            a.notify.notify_one();
        }
        Ok(Attached {
            session: sid,
            present,
        })
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
        let attachment = session.attachment.take().expect("checked above");
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

    fn remove_session(&self, state: &mut State, sid: SessionId) {
        let Some(session) = state.sessions.remove(&sid) else {
            return;
        };
        for filter in session.subscriptions.keys() {
            state.subscriptions.remove(filter, sid);
        }
        if let Some(ids) = state.by_client_id.get_mut(&session.client_id) {
            ids.retain(|id| *id != sid);
            if ids.is_empty() {
                state.by_client_id.remove(&session.client_id);
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
        let mut dropped = 0;
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
            dropped += session.enqueue(delivery, self.max_queued);
            if let Some(a) = &session.attachment {
                a.notify.notify_one();
            }
        }
        state.scratch = targets;
        if dropped > 0 {
            self.stats.dropped(dropped);
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
        let mut dropped = 0;
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
                dropped += session.enqueue(delivery, self.max_queued);
            });
            session.subscriptions.insert(filter, granted);
        }
        if dropped > 0 {
            self.stats.dropped(dropped);
        }
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
        let filled = session.fill(buf, self.max_inflight, high_water);
        drop(guard);
        self.stats.messages_out(filled.written);
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
