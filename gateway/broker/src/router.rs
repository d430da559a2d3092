//! The broker's shared state (sessions, subscriptions, retained messages) and the operations
//! connections perform on it. One lock guards it all; nothing awaits while holding it.

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

/// A client id held by a session of another identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientIdInUse;

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<Arc<str>, Session>,
    subscriptions: SubscriptionIndex,
    retained: RetainedStore,
    /// Reused for each publish to avoid an allocation per message.
    scratch: Vec<(Arc<str>, QoS)>,
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

    /// Attaches a new connection to the client's session, taking it over from a connection
    /// still attached (whose will is published). Returns whether a session was present.
    pub fn connect(
        &self,
        client_id: &Arc<str>,
        identity: &Identity,
        clean: bool,
        attachment: Attachment,
    ) -> Result<bool, ClientIdInUse> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut present = false;
        if let Some(old) = state.sessions.get_mut(client_id) {
            if old.identity != *identity {
                if !matches!(identity, Identity::Service { .. }) {
                    return Err(ClientIdInUse);
                }
                // The service (the gateway's own session) always gets its client id: a node
                // that took it first, by mistake or on purpose, is cut off and its session
                // ends, so a node cannot lock the gateway out of its own broker.
                tracing::warn!(client_id = %client_id, holder = %old.identity, "a service login takes back its client id");
                if let Some(previous) = old.attachment.take() {
                    previous.kick.cancel();
                }
                self.remove_session(state, client_id);
            }
        }
        if let Some(old) = state.sessions.get_mut(client_id) {
            if let Some(previous) = old.attachment.take() {
                tracing::info!(client_id = %client_id, "session taken over by a new connection");
                previous.kick.cancel();
                if let Some(will) = previous.will {
                    self.publish_will(state, identity, client_id, will);
                }
            }
            let old = state.sessions.get(client_id).expect("looked up above");
            if clean || old.clean {
                self.remove_session(state, client_id);
            } else {
                present = true;
            }
        }
        let session = state
            .sessions
            .entry(client_id.clone())
            .or_insert_with(|| Session::new(client_id.clone(), identity.clone(), clean));
        session.attach(attachment);
        if let Some(a) = &session.attachment {
            // Whatever was queued while offline is sent at once.
            a.notify.notify_one();
        }
        Ok(present)
    }

    /// Detaches connection `conn` from its session: publishes the will unless the client said
    /// DISCONNECT, and ends the session if it was a clean one.
    pub fn disconnect(&self, client_id: &str, conn: u64, publish_will: bool) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(session) = state.sessions.get_mut(client_id) else {
            return;
        };
        if session.attachment.as_ref().map(|a| a.id) != Some(conn) {
            return;
        }
        let attachment = session.attachment.take().expect("checked above");
        let identity = session.identity.clone();
        let clean = session.clean;
        if publish_will {
            if let Some(will) = attachment.will {
                self.publish_will(state, &identity, client_id, will);
            }
        }
        if clean {
            self.remove_session(state, client_id);
        }
    }

    fn remove_session(&self, state: &mut State, client_id: &str) {
        if let Some(session) = state.sessions.remove(client_id) {
            for filter in session.subscriptions.keys() {
                state.subscriptions.remove(filter, client_id);
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
        for (client_id, granted) in targets.drain(..) {
            let Some(session) = state.sessions.get_mut(&client_id) else {
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
        client_id: &str,
        conn: u64,
        filters: Vec<(String, Option<QoS>)>,
    ) -> Result<Vec<SubscribeReasonCode>, TakenOver> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let session = attached(&mut state.sessions, client_id, conn)?;
        let mut codes = Vec::with_capacity(filters.len());
        let mut dropped = 0;
        for (filter, requested) in filters {
            let Some(requested) = requested else {
                codes.push(SubscribeReasonCode::Failure);
                continue;
            };
            let granted = min_qos(requested, MAX_QOS);
            codes.push(SubscribeReasonCode::Success(granted));
            state
                .subscriptions
                .insert(&filter, &session.client_id, granted);
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
        client_id: &str,
        conn: u64,
        filters: &[String],
    ) -> Result<(), TakenOver> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let session = attached(&mut state.sessions, client_id, conn)?;
        for filter in filters {
            if session.subscriptions.remove(filter).is_some() {
                state.subscriptions.remove(filter, client_id);
            }
        }
        Ok(())
    }

    /// Handles PUBACK `pkid`; returns whether a message in flight was acknowledged.
    pub fn acked(&self, client_id: &str, conn: u64, pkid: u16) -> Result<bool, TakenOver> {
        let mut guard = self.lock();
        Ok(attached(&mut guard.sessions, client_id, conn)?.acked(pkid))
    }

    /// Records QoS 2 PUBLISH `pkid`: true the first time, false for a resent one that must not
    /// be routed again. `Err(None)` if the client has too many unreleased.
    pub fn qos2_received(
        &self,
        client_id: &str,
        conn: u64,
        pkid: u16,
    ) -> Result<bool, Option<TakenOver>> {
        let mut guard = self.lock();
        let session = attached(&mut guard.sessions, client_id, conn).map_err(Some)?;
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
    pub fn qos2_released(&self, client_id: &str, conn: u64, pkid: u16) -> Result<(), TakenOver> {
        let mut guard = self.lock();
        attached(&mut guard.sessions, client_id, conn)?
            .incoming_qos2
            .remove(&pkid);
        Ok(())
    }

    /// Writes the session's sendable messages into `buf`, up to `high_water` bytes.
    pub fn fill(
        &self,
        client_id: &str,
        conn: u64,
        buf: &mut BytesMut,
        high_water: usize,
    ) -> Result<Filled, TakenOver> {
        let mut guard = self.lock();
        let session = attached(&mut guard.sessions, client_id, conn)?;
        let filled = session.fill(buf, self.max_inflight, high_water);
        drop(guard);
        self.stats.messages_out(filled.written);
        Ok(filled)
    }

    /// Whether a session is kept for `client_id` (online or not). For tests and diagnostics.
    pub fn has_session(&self, client_id: &str) -> bool {
        self.lock().sessions.contains_key(client_id)
    }
}

/// The session of `client_id` if connection `conn` still serves it.
fn attached<'a>(
    sessions: &'a mut HashMap<Arc<str>, Session>,
    client_id: &str,
    conn: u64,
) -> Result<&'a mut Session, TakenOver> {
    match sessions.get_mut(client_id) {
        Some(s) if s.attachment.as_ref().is_some_and(|a| a.id == conn) => Ok(s),
        _ => Err(TakenOver),
    }
}
