//! What the core tells the application's backend about its rooms, in
//! neutral terms: a message numbered, a member come or gone, a room
//! occupied or vacated. How the events travel (signed HTTP webhooks, in
//! `wtchat-webhooks`) is not the core's business; the core only hands each
//! event, in its room's order, to a [`BackendEvents`] that must never make
//! it wait.

use std::fmt;
use std::sync::Arc;

use wtchat_protocol::PresenceChange;

use crate::room_event::{EventMember, Sequenced};

/// One thing that happened in a room, told once for every server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendEvent {
    /// The room.
    pub room: Arc<str>,
    /// When this server saw it happen, in ms since the Unix epoch.
    pub time_ms: u64,
    /// What happened.
    pub what: Happening,
}

/// What happened in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// A message got its number.
    Message {
        /// Its place in the room's order.
        sequenced: Sequenced,
        /// Who sent it (session 0 for the application's backend).
        sender: EventMember,
        /// The sender's user (their token's `sub`), when sessions
        /// authenticate.
        user: Option<Arc<str>>,
        /// When its server accepted it.
        sent_at_ms: u64,
        /// The text.
        body: String,
    },
    /// A member joined, left, or was disconnected.
    Member {
        /// Which of the three.
        change: PresenceChange,
        /// The member.
        member: EventMember,
        /// The member's user, when sessions authenticate.
        user: Option<Arc<str>>,
        /// The room's last message when the change was recorded, as this
        /// server knew it; `None` when it did not know the room's order yet.
        after: Option<Sequenced>,
    },
    /// The room's first member (on any server) arrived.
    Occupied,
    /// The room's last member (on any server) left.
    Vacated,
}

/// Where the core hands its events. Implementations queue and return at
/// once: the core calls it under a room's lock, which is what keeps a
/// room's events in order.
pub trait BackendEvents: Send + Sync + fmt::Debug {
    /// Takes one event.
    fn emit(&self, event: BackendEvent);

    /// Writes its own figures (queue depth, drops) for `/metrics`.
    fn render_metrics(&self, out: &mut String);
}
