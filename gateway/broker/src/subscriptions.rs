//! Which sessions subscribe to what: the index a PUBLISH is routed through.

use std::collections::HashMap;

use rumqttc::mqttbytes::QoS;

use crate::router::SessionId;
use crate::topic_filter::{has_wildcards, matches};

/// Subscribers of one filter: session and granted QoS.
type Subscribers = Vec<(SessionId, QoS)>;

/// Filters without wildcards (every node's) are found by one hash lookup; only the few
/// wildcard filters (the gateway's) are matched one by one.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionIndex {
    exact: HashMap<String, Subscribers>,
    wild: HashMap<String, Subscribers>,
}

impl SubscriptionIndex {
    fn map(&mut self, filter: &str) -> &mut HashMap<String, Subscribers> {
        if has_wildcards(filter) {
            &mut self.wild
        } else {
            &mut self.exact
        }
    }

    /// Adds or replaces session `sid`'s subscription to `filter`.
    pub fn insert(&mut self, filter: &str, sid: SessionId, qos: QoS) {
        let subs = self.map(filter).entry(filter.to_owned()).or_default();
        match subs.iter_mut().find(|(s, _)| *s == sid) {
            Some(entry) => entry.1 = qos,
            None => subs.push((sid, qos)),
        }
    }

    /// Removes session `sid`'s subscription to `filter`, if any.
    pub fn remove(&mut self, filter: &str, sid: SessionId) {
        let map = self.map(filter);
        if let Some(subs) = map.get_mut(filter) {
            subs.retain(|(s, _)| *s != sid);
            if subs.is_empty() {
                map.remove(filter);
            }
        }
    }

    /// Appends to `out` every session with a subscription matching `topic`, once each, with
    /// the highest QoS granted among its matching subscriptions.
    pub fn matching(&self, topic: &str, out: &mut Vec<(SessionId, QoS)>) {
        let exact = self.exact.get(topic).into_iter();
        let wild = self
            .wild
            .iter()
            .filter(|(filter, _)| matches(filter, topic))
            .map(|(_, subs)| subs);
        for (sid, qos) in exact.chain(wild).flatten() {
            match out.iter_mut().find(|(s, _)| s == sid) {
                Some(entry) if (entry.1 as u8) < (*qos as u8) => entry.1 = *qos,
                Some(_) => {}
                None => out.push((*sid, *qos)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(index: &SubscriptionIndex, topic: &str) -> Vec<(SessionId, QoS)> {
        let mut out = Vec::new();
        index.matching(topic, &mut out);
        out.sort_by_key(|(s, _)| *s);
        out
    }

    #[test]
    fn a_client_matching_through_several_filters_is_found_once_at_the_highest_qos() {
        let mut index = SubscriptionIndex::default();
        let (gw, node) = (1, 2);
        index.insert("weir/terminals/+/telemetry", gw, QoS::AtLeastOnce);
        index.insert("weir/#", gw, QoS::AtMostOnce);
        index.insert("weir/terminals/HY-001/telemetry", node, QoS::AtMostOnce);
        assert_eq!(
            found(&index, "weir/terminals/HY-001/telemetry"),
            [(gw, QoS::AtLeastOnce), (node, QoS::AtMostOnce)]
        );
        assert_eq!(
            found(&index, "weir/terminals/HY-001/status"),
            [(gw, QoS::AtMostOnce)]
        );
        assert!(found(&index, "other").is_empty());
    }

    #[test]
    fn subscribing_again_replaces_the_qos_and_unsubscribing_removes_only_that_client() {
        let mut index = SubscriptionIndex::default();
        let (a, b) = (1, 2);
        index.insert("x/+", a, QoS::AtMostOnce);
        index.insert("x/+", a, QoS::AtLeastOnce);
        index.insert("x/+", b, QoS::AtLeastOnce);
        assert_eq!(found(&index, "x/1").len(), 2);
        assert_eq!(found(&index, "x/1")[0], (a, QoS::AtLeastOnce));
        index.remove("x/+", a);
        assert_eq!(found(&index, "x/1"), [(b, QoS::AtLeastOnce)]);
        index.remove("x/+", b);
        assert!(index.wild.is_empty());
    }
}
