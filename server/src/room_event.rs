//! What servers tell each other about a room through the broker.
//!
//! Every server subscribed to a room receives the same events in the same
//! order and turns each into one frame for its own members. The format is a
//! line of ASCII numbers, then the member's name and, for a message, its
//! body:
//!
//! ```text
//! m <epoch> <seq> <session> <sent_at_ms> <name_len>\n<name><body>   a message
//! j|l|d <session> <name_len>\n<name>                                   joined, left, disconnected
//! t <session> <name_len>\n<name>                                       typing
//! ```
//!
//! It is this simple because Redis's Lua scripts write two of the kinds
//! themselves: a message gets its sequence number inside the script that
//! publishes it, and a dead server's members are announced by the script
//! that removes them.

use std::sync::Arc;

use wtchat_protocol::{Member, PresenceChange};

/// A member as events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMember {
    /// The member's session id, unique across servers.
    pub session_id: u64,
    /// Its display name.
    pub name: Arc<str>,
}

impl EventMember {
    /// The member as clients see it.
    pub fn describe(&self) -> Member {
        Member { session_id: self.session_id, name: self.name.to_string() }
    }
}

/// One event in a room's shared feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A chat message, sequenced by the broker.
    Message {
        /// The room's epoch when it was sequenced.
        epoch: u64,
        /// Its sequence number in that epoch.
        seq: u64,
        /// Who sent it.
        sender: EventMember,
        /// When its server accepted it.
        sent_at_ms: u64,
        /// The text.
        body: String,
    },
    /// A member joined, left or vanished, on any server.
    Presence {
        /// What happened.
        change: PresenceChange,
        /// To whom.
        member: EventMember,
    },
    /// A member is typing.
    Typing {
        /// Who.
        member: EventMember,
    },
}

/// An event that does not follow the format: a bug or a foreign writer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed room event: {0}")]
pub struct MalformedEvent(&'static str);

impl RoomEvent {
    /// Reads an event.
    pub fn parse(bytes: &[u8]) -> Result<Self, MalformedEvent> {
        let newline = bytes.iter().position(|b| *b == b'\n').ok_or(MalformedEvent("no header line"))?;
        let header =
            std::str::from_utf8(&bytes[..newline]).map_err(|_| MalformedEvent("header is not text"))?;
        let mut fields = header.split(' ');
        let kind = fields.next().ok_or(MalformedEvent("no kind"))?;
        let mut numbers = fields.map(|f| f.parse::<u64>().map_err(|_| MalformedEvent("bad number")));
        let mut next = || numbers.next().unwrap_or(Err(MalformedEvent("too few fields")));
        let rest = &bytes[newline + 1..];
        let name_and_rest = |session_id: u64, name_len: u64| {
            let name_len = usize::try_from(name_len).map_err(|_| MalformedEvent("bad name length"))?;
            if name_len > rest.len() {
                return Err(MalformedEvent("name runs past the end"));
            }
            let (name, tail) = rest.split_at(name_len);
            let name = std::str::from_utf8(name).map_err(|_| MalformedEvent("name is not UTF-8"))?;
            Ok((EventMember { session_id, name: Arc::from(name) }, tail))
        };
        match kind {
            "m" => {
                let (epoch, seq, session_id, sent_at_ms, name_len) =
                    (next()?, next()?, next()?, next()?, next()?);
                let (sender, body) = name_and_rest(session_id, name_len)?;
                let body =
                    String::from_utf8(body.to_vec()).map_err(|_| MalformedEvent("body is not UTF-8"))?;
                Ok(Self::Message { epoch, seq, sender, sent_at_ms, body })
            }
            "j" | "l" | "d" | "t" => {
                let (session_id, name_len) = (next()?, next()?);
                let (member, tail) = name_and_rest(session_id, name_len)?;
                if !tail.is_empty() {
                    return Err(MalformedEvent("bytes after the name"));
                }
                Ok(match kind {
                    "j" => Self::Presence { change: PresenceChange::Joined, member },
                    "l" => Self::Presence { change: PresenceChange::Left, member },
                    "d" => Self::Presence { change: PresenceChange::Disconnected, member },
                    _ => Self::Typing { member },
                })
            }
            _ => Err(MalformedEvent("unknown kind")),
        }
    }

    /// The letter a presence change is written with.
    pub fn presence_kind(change: PresenceChange) -> &'static str {
        match change {
            PresenceChange::Joined => "j",
            PresenceChange::Left => "l",
            PresenceChange::Disconnected => "d",
        }
    }

    /// Writes a member event (`j`, `l`, `d` or `t`).
    pub fn member_event(kind: &str, session_id: u64, name: &str) -> Vec<u8> {
        let mut event = format!("{kind} {session_id} {}\n", name.len()).into_bytes();
        event.extend_from_slice(name.as_bytes());
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_names_with_spaces_and_bodies_with_newlines() {
        let event = RoomEvent::parse(b"m 7 42 4294967297 1700000000000 9\nAda Byron\nhello\nworld").unwrap();
        assert_eq!(
            event,
            RoomEvent::Message {
                epoch: 7,
                seq: 42,
                sender: EventMember { session_id: 4_294_967_297, name: "Ada Byron".into() },
                sent_at_ms: 1_700_000_000_000,
                body: "\nhello\nworld".into(),
            }
        );
    }

    #[test]
    fn member_events_round_trip() {
        for (kind, change) in
            [("j", PresenceChange::Joined), ("l", PresenceChange::Left), ("d", PresenceChange::Disconnected)]
        {
            assert_eq!(RoomEvent::presence_kind(change), kind);
            let bytes = RoomEvent::member_event(kind, 5, "Zoë");
            let member = EventMember { session_id: 5, name: "Zoë".into() };
            assert_eq!(RoomEvent::parse(&bytes).unwrap(), RoomEvent::Presence { change, member });
        }
        let typing = RoomEvent::parse(&RoomEvent::member_event("t", 9, "x")).unwrap();
        assert!(matches!(typing, RoomEvent::Typing { member } if member.session_id == 9));
    }

    #[test]
    fn malformed_events_are_refused() {
        for bad in [
            &b"m 1 2 3"[..],
            b"m 1 2 3 4 99\nshort",
            b"q 1 1\nx",
            b"j x 1\nx",
            b"j 1 1\nxy",
            b"m 1 2 3 4 1\n\xff",
        ] {
            assert!(RoomEvent::parse(bad).is_err(), "{bad:?}");
        }
    }
}
