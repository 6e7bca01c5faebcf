//! How the Redis broker writes a room's feed and its records down: the one
//! definition of the format on the Rust side. The Lua scripts copy what
//! Rust wrote, except for the message header, where the publish script puts
//! `m <epoch> <seq> ` in front of [`message_tail`] because only Redis knows
//! the number; `tests/tests/redis_scripts.rs` runs every script against a
//! real Redis and reads what it wrote back with [`parse`].
//!
//! Every server subscribed to a room receives the same events in the same
//! order and turns each into one frame for its own members. The format is a
//! line of ASCII numbers, then the member's name and, for a message, its
//! body:
//!
//! ```text
//! m <epoch> <seq> <session> <sent_at_ms> <name_len>\n<name><body>   a message
//! j|l|d <session> <name_len>\n<name>                                   joined, left, disconnected
//! p <count>\n<j|l|d event><j|l|d event>…                               one server's changes of an interval
//! t <session> <name_len>\n<name>                                       typing
//! ```
//!
//! A server announces its members' arrivals and departures in a room once
//! per presence interval, as one `p` event (`presence_batch`); only the
//! heartbeat, reaping a dead server, announces one member at a time.
//!
//! It is this simple because a Lua script must be able to finish a message's
//! header, and to read the records below with one pattern.

use std::sync::Arc;

use wtchat_core::room_event::{EventMember, RoomEvent};
use wtchat_protocol::PresenceChange;

/// An event that does not follow the format: a bug or a foreign writer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed room event: {0}")]
pub struct MalformedEvent(&'static str);

/// Reads an event that stands alone (a stored message, a reaped member).
pub fn parse(bytes: &[u8]) -> Result<RoomEvent, MalformedEvent> {
    let (event, tail) = parse_one(bytes)?;
    if !tail.is_empty() {
        return Err(MalformedEvent("bytes after the name"));
    }
    Ok(event)
}

/// The most changes one batch may claim, which bounds what a malformed
/// count can make the reader reserve.
const BATCH_MAX: usize = 1_000;

/// Reads what the feed carries: one event, or a server's batch of
/// presence changes as the events it holds, in order.
pub fn parse_feed(bytes: &[u8]) -> Result<Vec<RoomEvent>, MalformedEvent> {
    let Some(batch) = bytes.strip_prefix(b"p ") else { return Ok(vec![parse(bytes)?]) };
    let newline = batch.iter().position(|b| *b == b'\n').ok_or(MalformedEvent("no header line"))?;
    let count: usize = std::str::from_utf8(&batch[..newline])
        .ok()
        .and_then(|count| count.parse().ok())
        .filter(|count| (1..=BATCH_MAX).contains(count))
        .ok_or(MalformedEvent("bad batch count"))?;
    let mut events = Vec::with_capacity(count);
    let mut rest = &batch[newline + 1..];
    for _ in 0..count {
        let (event, tail) = parse_one(rest)?;
        if !matches!(event, RoomEvent::Presence { .. }) {
            return Err(MalformedEvent("a batch holds presence only"));
        }
        events.push(event);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(MalformedEvent("bytes after the batch"));
    }
    Ok(events)
}

/// Reads one event from the front of `bytes`; returns it and what follows
/// (nothing after a message, whose body runs to the end).
fn parse_one(bytes: &[u8]) -> Result<(RoomEvent, &[u8]), MalformedEvent> {
    let newline = bytes.iter().position(|b| *b == b'\n').ok_or(MalformedEvent("no header line"))?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| MalformedEvent("header is not text"))?;
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
            let body = String::from_utf8(body.to_vec()).map_err(|_| MalformedEvent("body is not UTF-8"))?;
            Ok((RoomEvent::Message { epoch, seq, sender, sent_at_ms, body }, &[]))
        }
        "j" | "l" | "d" | "t" => {
            let (session_id, name_len) = (next()?, next()?);
            let (member, tail) = name_and_rest(session_id, name_len)?;
            let event = match kind {
                "j" => RoomEvent::Presence { change: PresenceChange::Joined, member },
                "l" => RoomEvent::Presence { change: PresenceChange::Left, member },
                "d" => RoomEvent::Presence { change: PresenceChange::Disconnected, member },
                _ => RoomEvent::Typing { member },
            };
            Ok((event, tail))
        }
        _ => Err(MalformedEvent("unknown kind")),
    }
}

/// The letter a presence change is written with.
fn presence_kind(change: PresenceChange) -> &'static str {
    match change {
        PresenceChange::Joined => "j",
        PresenceChange::Left => "l",
        PresenceChange::Disconnected => "d",
    }
}

/// A presence event.
pub fn presence_event(change: PresenceChange, member: &EventMember) -> Vec<u8> {
    member_event(presence_kind(change), member)
}

/// One server's changes of a room, as batches of at most `BATCH_MAX`
/// events, in order.
pub fn presence_batches(changes: &[(PresenceChange, EventMember)]) -> Vec<Vec<u8>> {
    changes
        .chunks(BATCH_MAX)
        .map(|chunk| {
            let mut batch = format!("p {}\n", chunk.len()).into_bytes();
            for (change, member) in chunk {
                batch.extend(presence_event(*change, member));
            }
            batch
        })
        .collect()
}

/// A typing event.
pub fn typing_event(member: &EventMember) -> Vec<u8> {
    member_event("t", member)
}

fn member_event(kind: &str, member: &EventMember) -> Vec<u8> {
    let mut event = format!("{kind} {} {}\n", member.session_id, member.name.len()).into_bytes();
    event.extend_from_slice(member.name.as_bytes());
    event
}

/// A message event without its `m <epoch> <seq> ` header, which the
/// publish script writes in front of it.
pub fn message_tail(sender: &EventMember, sent_at_ms: u64, body: &str) -> Vec<u8> {
    let mut tail = format!("{} {sent_at_ms} {}\n", sender.session_id, sender.name.len()).into_bytes();
    tail.extend_from_slice(sender.name.as_bytes());
    tail.extend_from_slice(body.as_bytes());
    tail
}

/// A member as a room's members hash records it: the node it is on, then
/// its name.
pub fn member_record(node_id: u64, name: &str) -> String {
    format!("{node_id} {name}")
}

/// Reads a members hash entry back.
pub fn parse_member(session_id: &[u8], record: &[u8]) -> Option<EventMember> {
    let session_id = std::str::from_utf8(session_id).ok()?.parse().ok()?;
    let (_node, name) = std::str::from_utf8(record).ok()?.split_once(' ')?;
    Some(EventMember { session_id, name: Arc::from(name) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_names_with_spaces_and_bodies_with_newlines() {
        let event = parse(b"m 7 42 4294967297 1700000000000 9\nAda Byron\nhello\nworld").unwrap();
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
            let member = EventMember { session_id: 5, name: "Zoë".into() };
            let bytes = presence_event(change, &member);
            assert!(bytes.starts_with(kind.as_bytes()));
            assert_eq!(parse(&bytes).unwrap(), RoomEvent::Presence { change, member });
        }
        let typing = parse(&typing_event(&EventMember { session_id: 9, name: "x".into() })).unwrap();
        assert!(matches!(typing, RoomEvent::Typing { member } if member.session_id == 9));
    }

    #[test]
    fn a_batch_reads_back_as_its_changes_in_order() {
        let changes: Vec<(PresenceChange, EventMember)> = (0..2_500u64)
            .map(|id| {
                let change = if id % 3 == 0 { PresenceChange::Left } else { PresenceChange::Joined };
                (change, EventMember { session_id: id, name: format!("n\n{id} ü").into() })
            })
            .collect();
        let batches = presence_batches(&changes);
        assert_eq!(batches.len(), 3, "at most {BATCH_MAX} changes a batch");
        let read: Vec<RoomEvent> = batches.iter().flat_map(|b| parse_feed(b).unwrap()).collect();
        let expected: Vec<RoomEvent> =
            changes.into_iter().map(|(change, member)| RoomEvent::Presence { change, member }).collect();
        assert_eq!(read, expected);
        let single = presence_event(PresenceChange::Joined, &EventMember { session_id: 1, name: "a".into() });
        assert_eq!(parse_feed(&single).unwrap().len(), 1, "a lone event reads as itself");
    }

    #[test]
    fn malformed_batches_are_refused() {
        for bad in [
            &b"p 2\nj 1 1\na"[..],
            b"p 0\n",
            b"p 1001\nj 1 1\na",
            b"p x\nj 1 1\na",
            b"p 1\nj 1 1\naj 2 1\nb",
            b"p 1\nt 1 1\na",
            b"p 1\nm 1 2 3 4 1\nab",
        ] {
            assert!(parse_feed(bad).is_err(), "{bad:?}");
        }
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
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
