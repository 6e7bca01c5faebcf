//! This server's arrivals and departures, gathered per room and announced on
//! the room's feed once per presence interval, in one event.
//!
//! Announcing each change alone would cost Redis a `PUBLISH` per change and
//! every subscribed server a feed event per change; a flood of a thousand
//! joins a second in one room then costs each server a thousand events a
//! second. Gathered, it costs one event per room per interval. The members
//! hash is written at once (`PresenceScript`), so that a snapshot taken on
//! any server lists who is here even before the announcement; a join and
//! the same session's departure inside one interval cancel out, as they do
//! in a room.

use std::collections::HashMap;
use std::sync::Arc;

use wtchat_core::presence::PendingPresence;
use wtchat_core::room_event::EventMember;
use wtchat_protocol::PresenceChange;

use crate::feed;
use crate::keys::Keys;

/// What waits for the next announcement.
#[derive(Debug, Default)]
pub(crate) struct Announcements {
    rooms: HashMap<Arc<str>, PendingPresence>,
}

impl Announcements {
    /// Notes a change of one of this server's members.
    pub(crate) fn note(&mut self, room: &Arc<str>, member: &EventMember, change: PresenceChange) {
        self.rooms.entry(room.clone()).or_default().note(change, member.session_id, member.name.clone());
    }

    /// Whether anything waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Everything gathered, as `PUBLISH` commands: one per room (more for a
    /// room with more changes than a batch holds).
    pub(crate) fn take(&mut self, keys: &Keys) -> Vec<redis::Cmd> {
        let mut commands = Vec::new();
        for (room, pending) in self.rooms.drain() {
            let changes: Vec<(PresenceChange, EventMember)> = pending
                .changes()
                .map(|(change, session_id, name)| (change, EventMember { session_id, name: name.clone() }))
                .collect();
            for batch in feed::presence_batches(&changes) {
                let mut command = redis::cmd("PUBLISH");
                command.arg(keys.room_events(&room)).arg(batch);
                commands.push(command);
            }
        }
        commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(session_id: u64) -> EventMember {
        EventMember { session_id, name: Arc::from("m") }
    }

    #[test]
    fn an_interval_announces_each_room_once_and_cancels_what_came_and_went() {
        let mut announcements = Announcements::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        for id in 1..=3 {
            announcements.note(&a, &member(id), PresenceChange::Joined);
        }
        announcements.note(&a, &member(2), PresenceChange::Disconnected);
        announcements.note(&b, &member(9), PresenceChange::Joined);
        announcements.note(&b, &member(9), PresenceChange::Left);
        let commands = announcements.take(&Keys::default());
        assert!(announcements.is_empty());
        // Room b's join and leave cancelled out: an empty batch is not sent.
        assert_eq!(commands.len(), 1);
        let args: Vec<Vec<u8>> = commands[0]
            .args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => bytes.to_vec(),
                redis::Arg::Cursor => Vec::new(),
            })
            .collect();
        assert_eq!(args[1], Keys::default().room_events("a").into_bytes());
        let events = feed::parse_feed(&args[2]).unwrap();
        let ids: Vec<u64> = events
            .iter()
            .map(|e| match e {
                wtchat_core::room_event::RoomEvent::Presence { member, .. } => member.session_id,
                _ => 0,
            })
            .collect();
        assert_eq!(ids, [1, 3], "one event for room a, with what is still news");
    }
}
