//! What servers tell each other about a room through a broker, in neutral
//! terms: the events of a room's feed and the state a room starts from.
//!
//! Every server following a room receives the same events in the same order
//! and turns each into one frame for its own members. How a broker writes
//! them down is the broker's business (`wtchat-redis`'s `feed.rs`).

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

/// The place a message got in its room's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sequenced {
    /// Its number, consecutive within the epoch.
    pub seq: u64,
    /// The room's epoch: numbers compare only within one.
    pub epoch: u64,
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

/// The broker's state of a room, which a follower room starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The room's epoch.
    pub epoch: u64,
    /// The last sequence number given out (0 for none).
    pub last_seq: u64,
    /// The most recent messages, oldest first.
    pub history: Vec<RoomEvent>,
    /// Every member on every server.
    pub members: Vec<EventMember>,
}
