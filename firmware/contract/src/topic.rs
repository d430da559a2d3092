//! MQTT topics: `{prefix}/terminals/{terminal_id}/{channel}`.
//!
//! The prefix defaults to [`DEFAULT_PREFIX`] and may be set per deployment (for example to
//! share a broker between counties). It may contain `/` but no wildcards.

use core::fmt::Write;

use crate::error::{Error, Field, Reason};
use crate::terminal_id::TerminalId;

/// The default topic prefix.
pub const DEFAULT_PREFIX: &str = "weir";

/// Longest prefix, in bytes.
pub const MAX_PREFIX_LEN: usize = 64;

/// Longest topic this contract produces, in bytes.
pub const MAX_TOPIC_LEN: usize = MAX_PREFIX_LEN + "/terminals/".len() + 32 + "/telemetry".len();

/// A topic as text, built without a heap.
pub type TopicBuf = heapless::String<MAX_TOPIC_LEN>;

/// The channels of a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Node -> gateway readings, QoS 1.
    Telemetry,
    /// Node -> gateway state, retained; the node's last will publishes `offline` here.
    Status,
    /// Gateway -> node: what is durably stored, so the node may free its queue. QoS 1.
    Ack,
    /// Gateway -> node settings, retained.
    Config,
    /// Gateway -> node: the firmware image the node should run ([`crate::FirmwareOffer`]),
    /// retained; an empty retained message withdraws it.
    Firmware,
    /// Gateway -> node: one piece of a firmware image ([`crate::FirmwareChunk`]), QoS 1.
    Chunk,
    /// Node -> gateway: a firmware update's requests and outcome ([`crate::UpdateReport`]),
    /// QoS 1.
    Update,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 7] = [
        Channel::Telemetry,
        Channel::Status,
        Channel::Ack,
        Channel::Config,
        Channel::Firmware,
        Channel::Chunk,
        Channel::Update,
    ];

    /// The last topic level.
    pub const fn name(self) -> &'static str {
        match self {
            Channel::Telemetry => "telemetry",
            Channel::Status => "status",
            Channel::Ack => "ack",
            Channel::Config => "config",
            Channel::Firmware => "firmware",
            Channel::Chunk => "chunk",
            Channel::Update => "update",
        }
    }
}

fn bad(why: &'static str) -> Error {
    Error::new(Field::Top("topic"), Reason::BadTopic(why))
}

/// Checks a topic prefix: 1-64 bytes, no `+`, `#`, NUL, no empty level, no leading or
/// trailing `/`.
pub fn check_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err(bad("the prefix must be 1 to 64 bytes"));
    }
    if prefix.contains(['+', '#', '\0']) {
        return Err(bad("the prefix must not contain '+', '#' or NUL"));
    }
    if prefix.split('/').any(str::is_empty) {
        return Err(bad(
            "the prefix must not have empty levels or a leading or trailing '/'",
        ));
    }
    Ok(())
}

/// The topic of `channel` for terminal `id`.
pub fn topic(prefix: &str, id: &TerminalId, channel: Channel) -> Result<TopicBuf, Error> {
    check_prefix(prefix)?;
    let mut t = TopicBuf::new();
    write!(t, "{prefix}/terminals/{id}/{}", channel.name()).map_err(|_| bad("too long"))?;
    Ok(t)
}

/// The subscription filter matching `channel` of every terminal: `weir/terminals/+/telemetry`.
pub fn filter_all(prefix: &str, channel: Channel) -> Result<TopicBuf, Error> {
    check_prefix(prefix)?;
    let mut t = TopicBuf::new();
    write!(t, "{prefix}/terminals/+/{}", channel.name()).map_err(|_| bad("too long"))?;
    Ok(t)
}

/// Splits a topic into its terminal id and channel.
pub fn parse(prefix: &str, topic: &str) -> Result<(TerminalId, Channel), Error> {
    let rest = topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix("/terminals/"))
        .ok_or(bad(
            "does not start with the configured prefix and /terminals/",
        ))?;
    let (id, channel) = rest
        .split_once('/')
        .ok_or(bad("no channel after the terminal id"))?;
    let channel = Channel::ALL
        .into_iter()
        .find(|c| c.name() == channel)
        .ok_or(bad(
            "the channel must be telemetry, status, ack, config, firmware, chunk or update",
        ))?;
    Ok((TerminalId::new(id)?, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_parse() {
        let id = TerminalId::new("HY-017").unwrap();
        for prefix in ["weir", "zj/haiyan"] {
            for ch in Channel::ALL {
                let t = topic(prefix, &id, ch).unwrap();
                assert_eq!(parse(prefix, &t).unwrap(), (id.clone(), ch));
            }
        }
        assert_eq!(
            topic("weir", &id, Channel::Telemetry).unwrap().as_str(),
            "weir/terminals/HY-017/telemetry"
        );
        assert_eq!(
            filter_all("weir", Channel::Status).unwrap().as_str(),
            "weir/terminals/+/status"
        );
    }

    #[test]
    fn foreign_topics_are_rejected_with_the_reason() {
        let why = |t: &str| parse("weir", t).unwrap_err().reason;
        assert_eq!(
            why("other/terminals/HY-1/telemetry"),
            Reason::BadTopic("does not start with the configured prefix and /terminals/")
        );
        assert_eq!(
            why("weir/terminals/HY-1"),
            Reason::BadTopic("no channel after the terminal id")
        );
        assert_eq!(
            why("weir/terminals/HY-1/photo"),
            Reason::BadTopic(
                "the channel must be telemetry, status, ack, config, firmware, chunk or update"
            )
        );
        assert!(matches!(
            why("weir/terminals/HY 1/status"),
            Reason::BadTerminalId(_)
        ));
    }

    #[test]
    fn prefixes_with_wildcards_or_empty_levels_are_refused() {
        for p in ["", "weir/", "/weir", "a//b", "we+ir", "#"] {
            assert!(check_prefix(p).is_err(), "{p}");
        }
    }
}
