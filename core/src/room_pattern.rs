//! Room name patterns, as tokens grant rooms: `lobby` names one room,
//! `team-*` every room whose name starts with `team-`, and `*` every room.
//! `*` matches any run of characters, anywhere in the pattern.

use serde::Deserialize;

/// One pattern.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RoomPattern(String);

impl RoomPattern {
    /// A pattern from its text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Whether `room` matches.
    pub fn matches(&self, room: &str) -> bool {
        let mut parts = self.0.split('*');
        // split always yields at least one part.
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = room.strip_prefix(first) else { return false };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            // No star: the whole name must be the pattern.
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.ends_with(last)
    }
}

/// The rooms a grant covers: every room, or those matching any pattern.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoomGrant {
    /// No restriction.
    #[default]
    Any,
    /// Only rooms that match one of these.
    Only(Vec<RoomPattern>),
}

impl RoomGrant {
    /// Whether the grant covers `room`.
    pub fn covers(&self, room: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(patterns) => patterns.iter().any(|pattern| pattern.matches(room)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let matches = |pattern: &str, room: &str| RoomPattern::new(pattern).matches(room);
        assert!(matches("lobby", "lobby"));
        assert!(!matches("lobby", "lobby2"));
        assert!(!matches("lobby", "lob"));
        assert!(matches("team-*", "team-red"));
        assert!(matches("team-*", "team-"));
        assert!(!matches("team-*", "teams"));
        assert!(matches("*", "anything"));
        assert!(matches("*-ops", "eu-ops"));
        assert!(!matches("*-ops", "eu-ops-2"));
        assert!(matches("a*b*c", "a-x-b-y-c"));
        assert!(!matches("a*b*c", "a-x-c-y-b"));
        assert!(!matches("ab*ba", "aba"), "the prefix and suffix may not overlap");
    }

    #[test]
    fn grants() {
        assert!(RoomGrant::Any.covers("x"));
        let only = RoomGrant::Only(vec![RoomPattern::new("a"), RoomPattern::new("b-*")]);
        assert!(only.covers("a") && only.covers("b-1") && !only.covers("c"));
        assert!(!RoomGrant::Only(Vec::new()).covers("a"), "an empty list grants nothing");
    }
}
