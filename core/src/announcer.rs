//! Builds the events the application's backend is told (see
//! `backend_event.rs`) at the places in the core where they happen, and
//! carries those that wait for a broker's answer.
//!
//! A server alone announces a room's events under the room's lock, in the
//! room's order. With a broker, an event is announced by the one server
//! that made it happen, once the broker recorded it: a message when the
//! broker numbered it ([`MessageToAnnounce`]), a member's change when the
//! broker counted the room's members on every server
//! ([`PresenceToAnnounce`]), which also tells whether the room was just
//! occupied or vacated. So each event reaches the backend once for the
//! whole cluster.

use std::sync::Arc;

use wtchat_protocol::PresenceChange;

use crate::backend_event::{BackendEvent, BackendEvents, Happening};
use crate::clock::unix_millis;
use crate::room_event::{EventMember, Sequenced};

/// The core's handle on where events go.
#[derive(Debug, Clone)]
pub struct Announcer {
    events: Arc<dyn BackendEvents>,
}

impl Announcer {
    /// Announces to `events`.
    pub fn new(events: Arc<dyn BackendEvents>) -> Self {
        Self { events }
    }

    /// Writes the figures of where events go, for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        self.events.render_metrics(out);
    }

    fn emit(&self, room: &Arc<str>, what: Happening) {
        self.events.emit(BackendEvent { room: room.clone(), time_ms: unix_millis(), what });
    }

    /// A message got its number.
    pub fn message(&self, room: &Arc<str>, sequenced: Sequenced, sent: &Sent<'_>) {
        let Sent { sender, user, sent_at_ms, body } = sent;
        let what = Happening::Message {
            sequenced,
            sender: (*sender).clone(),
            user: user.cloned(),
            sent_at_ms: *sent_at_ms,
            body: (*body).to_owned(),
        };
        self.emit(room, what);
    }

    /// A member came or went; `after` is the room's last message then.
    pub fn member(
        &self,
        room: &Arc<str>,
        change: PresenceChange,
        member: EventMember,
        user: Option<Arc<str>>,
        after: Option<Sequenced>,
    ) {
        self.emit(room, Happening::Member { change, member, user, after });
    }

    /// The room's first member arrived.
    pub fn occupied(&self, room: &Arc<str>) {
        self.emit(room, Happening::Occupied);
    }

    /// The room's last member left.
    pub fn vacated(&self, room: &Arc<str>) {
        self.emit(room, Happening::Vacated);
    }

    /// A message handed to a broker, to announce once it is numbered.
    pub fn message_to_announce(&self, room: &Arc<str>, sent: &Sent<'_>) -> MessageToAnnounce {
        MessageToAnnounce {
            announcer: self.clone(),
            room: room.clone(),
            sender: sent.sender.clone(),
            user: sent.user.cloned(),
            sent_at_ms: sent.sent_at_ms,
            body: sent.body.to_owned(),
        }
    }

    /// A member's change handed to a broker, to announce once it is
    /// recorded; `after` reads the room's last message then.
    pub fn presence_to_announce(
        &self,
        room: &Arc<str>,
        change: PresenceChange,
        member: EventMember,
        user: Option<Arc<str>>,
        after: Box<dyn FnOnce() -> Option<Sequenced> + Send>,
    ) -> PresenceToAnnounce {
        PresenceToAnnounce { announcer: self.clone(), after, name: room.clone(), change, member, user }
    }
}

/// A message as its sender sent it.
#[derive(Debug)]
pub struct Sent<'a> {
    /// Who sent it.
    pub sender: &'a EventMember,
    /// Their user, when sessions authenticate.
    pub user: Option<&'a Arc<str>>,
    /// When the server accepted it.
    pub sent_at_ms: u64,
    /// The text.
    pub body: &'a str,
}

/// A message waiting for its number before it is announced.
#[derive(Debug)]
pub struct MessageToAnnounce {
    announcer: Announcer,
    room: Arc<str>,
    sender: EventMember,
    user: Option<Arc<str>>,
    sent_at_ms: u64,
    body: String,
}

impl MessageToAnnounce {
    /// The broker numbered it: announce it.
    pub fn sequenced(self, sequenced: Sequenced) {
        let Self { announcer, room, sender, user, sent_at_ms, body } = self;
        let what = Happening::Message { sequenced, sender, user, sent_at_ms, body };
        announcer.emit(&room, what);
    }
}

/// A member's change waiting for the broker to record it.
pub struct PresenceToAnnounce {
    announcer: Announcer,
    /// Reads the room's position when the change is recorded.
    after: Box<dyn FnOnce() -> Option<Sequenced> + Send>,
    name: Arc<str>,
    change: PresenceChange,
    member: EventMember,
    user: Option<Arc<str>>,
}

impl std::fmt::Debug for PresenceToAnnounce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceToAnnounce").field("room", &self.name).field("member", &self.member).finish()
    }
}

impl PresenceToAnnounce {
    /// The broker recorded the change; the room now has `members` on every
    /// server. An arrival that makes one member occupied the room, a
    /// departure that leaves none vacated it.
    pub fn recorded(self, members: u64) {
        let Self { announcer, after, name, change, member, user } = self;
        let after = after();
        let arrived = change == PresenceChange::Joined;
        if arrived && members == 1 {
            announcer.occupied(&name);
        }
        announcer.member(&name, change, member, user, after);
        if !arrived && members == 0 {
            announcer.vacated(&name);
        }
    }
}
