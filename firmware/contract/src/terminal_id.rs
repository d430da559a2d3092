//! Terminal ids: `HY-001`, the name a terminal has in topics, the database and on its label.

use core::fmt;

use crate::error::{Error, Field, Reason};

/// A terminal id: 1 to [`TerminalId::MAX_LEN`] characters of `A-Z a-z 0-9 _ -`.
///
/// The rule keeps ids safe in MQTT topics (no `/`, `+`, `#`), URLs, file names and CSV.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TerminalId(heapless::String<32>);

impl TerminalId {
    /// Longest id, in characters.
    pub const MAX_LEN: usize = 32;

    /// Checks `s` against the rule and returns it as an id.
    pub fn new(s: &str) -> Result<Self, Error> {
        let bad = |why| Error::new(Field::Top("terminal_id"), Reason::BadTerminalId(why));
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(bad("longer than 32 characters"));
        }
        if !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        {
            return Err(bad("only letters A-Z a-z, digits, '_' and '-' are allowed"));
        }
        let mut id = heapless::String::new();
        // Cannot fail: the length was checked above.
        let _ = id.push_str(s);
        Ok(TerminalId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TerminalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TerminalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TerminalId({:?})", self.as_str())
    }
}

impl core::str::FromStr for TerminalId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        TerminalId::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_county_style_ids() {
        for s in [
            "HY-001",
            "a",
            "Village_7-outlet",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
        ] {
            assert_eq!(TerminalId::new(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_ids_that_would_break_topics_with_the_rule_broken() {
        let why = |s: &str| TerminalId::new(s).unwrap_err().reason;
        assert_eq!(why(""), Reason::BadTerminalId("empty"));
        assert_eq!(
            why("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"),
            Reason::BadTerminalId("longer than 32 characters")
        );
        for s in ["HY/001", "HY+", "#", "HY 001", "海盐-001"] {
            assert_eq!(
                why(s),
                Reason::BadTerminalId("only letters A-Z a-z, digits, '_' and '-' are allowed"),
                "{s}"
            );
        }
    }
}
