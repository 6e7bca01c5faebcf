//! The JSON a receiver gets: each event encoded once when it is queued,
//! and a delivery's body put together from the encoded events.
//!
//! ```json
//! {"server": "5f1c…", "dropped": 0, "events": [
//!   {"id": "5f1c…-1", "type": "room_occupied", "room": "lobby", "time_ms": 1765000000000},
//!   {"id": "5f1c…-2", "type": "member_joined", "room": "lobby", "time_ms": …,
//!    "member": {"session_id": 7, "name": "ann", "user": "u-1"}, "epoch": 4242, "after_seq": 0},
//!   {"id": "5f1c…-3", "type": "message", "room": "lobby", "time_ms": …, "epoch": 4242, "seq": 1,
//!    "sender": {"session_id": 7, "name": "ann", "user": "u-1"}, "sent_at_ms": …, "body": "hi"}]}
//! ```
//!
//! `id` is unique and stays the same when a delivery is retried, so a
//! receiver deduplicates by it; a message's `epoch` and `seq` are its
//! place in the room's order on every server, so a receiver orders by them.

use serde::Serialize;
use wtchat_core::backend_event::{BackendEvent, Happening};
use wtchat_core::room_event::EventMember;
use wtchat_protocol::PresenceChange;

/// A member as events name them.
#[derive(Serialize)]
struct Who<'a> {
    session_id: u64,
    name: &'a str,
    user: Option<&'a str>,
}

impl<'a> Who<'a> {
    fn of(member: &'a EventMember, user: Option<&'a str>) -> Self {
        Self { session_id: member.session_id, name: &member.name, user }
    }
}

#[derive(Serialize)]
struct Event<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    time_ms: u64,
    #[serde(flatten)]
    detail: Detail<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Detail<'a> {
    Message { epoch: u64, seq: u64, sender: Who<'a>, sent_at_ms: u64, body: &'a str },
    Member { member: Who<'a>, epoch: Option<u64>, after_seq: Option<u64> },
    Room {},
}

/// The event's JSON object, under the id it is delivered with.
pub fn encode(id: &str, event: &BackendEvent) -> Vec<u8> {
    let (kind, detail) = match &event.what {
        Happening::Message { sequenced, sender, user, sent_at_ms, body } => (
            "message",
            Detail::Message {
                epoch: sequenced.epoch,
                seq: sequenced.seq,
                sender: Who::of(sender, user.as_deref()),
                sent_at_ms: *sent_at_ms,
                body,
            },
        ),
        Happening::Member { change, member, user, after } => (
            match change {
                PresenceChange::Joined => "member_joined",
                PresenceChange::Left => "member_left",
                PresenceChange::Disconnected => "member_disconnected",
            },
            Detail::Member {
                member: Who::of(member, user.as_deref()),
                epoch: after.map(|after| after.epoch),
                after_seq: after.map(|after| after.seq),
            },
        ),
        Happening::Occupied => ("room_occupied", Detail::Room {}),
        Happening::Vacated => ("room_vacated", Detail::Room {}),
    };
    let event = Event { id, kind, room: &event.room, time_ms: event.time_ms, detail };
    // A struct of strings and numbers always serializes.
    serde_json::to_vec(&event).unwrap_or_default()
}

/// A delivery's body: the server that sends it, how many events were
/// dropped since the previous delivery (the queue was full), and the
/// events, in order.
pub fn body<'a>(server: &str, dropped: u64, events: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut body = format!("{{\"server\":\"{server}\",\"dropped\":{dropped},\"events\":[").into_bytes();
    for (index, event) in events.into_iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event);
    }
    body.extend_from_slice(b"]}");
    body
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};
    use wtchat_core::room_event::Sequenced;

    use super::*;

    fn event(what: Happening) -> BackendEvent {
        BackendEvent { room: Arc::from("lobby"), time_ms: 5, what }
    }

    #[test]
    fn each_kind_of_event_reads_as_documented() {
        let ann = EventMember { session_id: 7, name: Arc::from("ann \"the\" first") };
        let message = event(Happening::Message {
            sequenced: Sequenced { seq: 3, epoch: 9 },
            sender: ann.clone(),
            user: Some(Arc::from("u-1")),
            sent_at_ms: 4,
            body: "hi\n\u{1F600}".into(),
        });
        let left = event(Happening::Member {
            change: PresenceChange::Left,
            member: ann,
            user: None,
            after: Some(Sequenced { seq: 3, epoch: 9 }),
        });
        let encoded =
            [encode("s-1", &message), encode("s-2", &left), encode("s-3", &event(Happening::Vacated))];
        let delivered: Value =
            serde_json::from_slice(&body("s", 2, encoded.iter().map(Vec::as_slice))).unwrap();
        let ann = json!({"session_id": 7, "name": "ann \"the\" first", "user": "u-1"});
        let ann_anonymous = json!({"session_id": 7, "name": "ann \"the\" first", "user": null});
        assert_eq!(
            delivered,
            json!({"server": "s", "dropped": 2, "events": [
                {"id": "s-1", "type": "message", "room": "lobby", "time_ms": 5, "epoch": 9, "seq": 3,
                 "sender": ann, "sent_at_ms": 4, "body": "hi\n\u{1F600}"},
                {"id": "s-2", "type": "member_left", "room": "lobby", "time_ms": 5,
                 "member": ann_anonymous, "epoch": 9, "after_seq": 3},
                {"id": "s-3", "type": "room_vacated", "room": "lobby", "time_ms": 5},
            ]})
        );
        let empty: Value = serde_json::from_slice(&body("s", 0, [])).unwrap();
        assert_eq!(empty, json!({"server": "s", "dropped": 0, "events": []}));
    }
}
