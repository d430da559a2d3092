//! Topic names and topic filters, MQTT 3.1.1 section 4.7.

/// Whether `topic` may be published to: not empty, no wildcard, no NUL.
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

/// Whether `filter` may be subscribed to: not empty, no NUL, `+` only as a whole level and
/// `#` only as the whole last level.
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "+" => {}
            "#" if is_last => {}
            other if other.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// Whether `filter` has a wildcard, so that it can match more than one topic.
pub fn has_wildcards(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Whether the valid `topic` matches the valid `filter`.
///
/// A filter starting with a wildcard does not match a topic starting with `$`
/// (MQTT-4.7.2-1): `#` must not deliver the broker's own `$SYS` topics to everyone.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            // `#` also matches the parent level: `a/#` matches `a`.
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_filters_match_only_the_same_topic() {
        assert!(matches("a/b/c", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b/d"));
        assert!(!matches("A/b", "a/b"));
    }

    #[test]
    fn plus_matches_exactly_one_level_including_an_empty_one() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/+/c", "a//c"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("+", "a"));
        assert!(!matches("+", "a/b"));
        assert!(!matches("a/+", "a"));
        assert!(!matches("a/+/c", "a/b/x/c"));
        assert!(matches(
            "weir/terminals/+/telemetry",
            "weir/terminals/HY-001/telemetry"
        ));
        assert!(!matches(
            "weir/terminals/+/telemetry",
            "weir/terminals/HY-001/status"
        ));
    }

    #[test]
    fn hash_matches_the_parent_and_every_level_below_it() {
        assert!(matches("#", "a"));
        assert!(matches("#", "a/b/c"));
        assert!(matches("#", "/"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b"));
        assert!(matches("a/#", "a/b/c/d"));
        assert!(!matches("a/#", "b/a"));
        assert!(matches("a/+/#", "a/b"));
        assert!(!matches("a/+/#", "a"));
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        assert!(!matches("#", "$SYS/uptime"));
        assert!(!matches("+/uptime", "$SYS/uptime"));
        assert!(!matches("+/#", "$SYS/uptime"));
        assert!(matches("$SYS/#", "$SYS/uptime"));
        assert!(matches("$SYS/+", "$SYS/uptime"));
        assert!(matches("a/+", "a/$b"));
    }

    #[test]
    fn filters_with_misplaced_wildcards_are_invalid() {
        for ok in [
            "#", "+", "a/#", "a/+/b", "+/+", "/", "a//b", "$SYS/#", "+/#",
        ] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in [
            "", "a/#/b", "a#", "a/b#", "a+", "a/+b/c", "#/a", "a/##", "a\0b",
        ] {
            assert!(!valid_filter(bad), "{bad:?}");
        }
    }

    #[test]
    fn topics_with_wildcards_or_nul_are_invalid() {
        assert!(valid_topic("weir/terminals/HY-001/telemetry"));
        assert!(valid_topic("/"));
        for bad in ["", "a/+", "a/#", "#", "a\0"] {
            assert!(!valid_topic(bad), "{bad:?}");
        }
    }
}
