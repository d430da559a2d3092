//! Retained messages: the last message published with the retain flag on each topic.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use rumqttc::mqttbytes::QoS;

use crate::session::Message;
use crate::topic_filter::matches;

/// Retained messages by topic. Sorted, so a new subscriber gets them in topic order and a
/// filter like `weir/terminals/+/status` scans only topics starting with `weir/terminals/`.
#[derive(Debug, Default)]
pub(crate) struct RetainedStore {
    by_topic: BTreeMap<String, (Arc<Message>, QoS)>,
}

impl RetainedStore {
    /// Keeps `msg` as the topic's retained message, or forgets the topic's retained message if
    /// the payload is empty (MQTT-3.3.1-10).
    pub fn set(&mut self, msg: &Arc<Message>, qos: QoS) {
        if msg.payload.is_empty() {
            self.by_topic.remove(&msg.topic);
        } else {
            self.by_topic.insert(msg.topic.clone(), (msg.clone(), qos));
        }
    }

    /// Calls `f` with each retained message whose topic matches `filter`.
    pub fn matching(&self, filter: &str, mut f: impl FnMut(&Arc<Message>, QoS)) {
        let literal = match filter.find(['+', '#']) {
            None => {
                if let Some((msg, qos)) = self.by_topic.get(filter) {
                    f(msg, *qos);
                }
                return;
            }
            // Without its last `/`: `a/#` also matches `a`.
            Some(i) => filter[..i].strip_suffix('/').unwrap_or(&filter[..i]),
        };
        let candidates = self
            .by_topic
            .range::<str, _>((Bound::Included(literal), Bound::Unbounded))
            .take_while(|(topic, _)| topic.starts_with(literal));
        for (topic, (msg, qos)) in candidates {
            if matches(filter, topic) {
                f(msg, *qos);
            }
        }
    }

    /// How many topics have a retained message.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_topic.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(topic: &str, payload: &'static str) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Bytes::from_static(payload.as_bytes()),
        })
    }

    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        store.matching(filter, |m, _| out.push(m.topic.clone()));
        out
    }

    #[test]
    fn the_latest_retained_message_wins_and_an_empty_one_clears_the_topic() {
        let mut store = RetainedStore::default();
        store.set(&msg("a/b", "1"), QoS::AtLeastOnce);
        store.set(&msg("a/b", "2"), QoS::AtMostOnce);
        let mut got = Vec::new();
        store.matching("a/b", |m, q| got.push((m.payload.clone(), q)));
        assert_eq!(got, [(Bytes::from_static(b"2"), QoS::AtMostOnce)]);
        store.set(&msg("a/b", ""), QoS::AtLeastOnce);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn wildcard_filters_find_every_matching_topic_and_no_other() {
        let mut store = RetainedStore::default();
        for t in [
            "weir/terminals/HY-001/status",
            "weir/terminals/HY-002/status",
            "weir/terminals/HY-001/config",
            "weir",
            "weirx/terminals/HY-001/status",
            "$SYS/x",
        ] {
            store.set(&msg(t, "x"), QoS::AtLeastOnce);
        }
        assert_eq!(
            topics(&store, "weir/terminals/+/status"),
            [
                "weir/terminals/HY-001/status",
                "weir/terminals/HY-002/status"
            ]
        );
        assert_eq!(topics(&store, "weir/#").len(), 4);
        assert_eq!(topics(&store, "#").len(), 5, "no $SYS");
        assert_eq!(topics(&store, "weir/terminals/HY-001/config").len(), 1);
        assert!(topics(&store, "weir/terminals/HY-003/config").is_empty());
    }
}
