//! What the application's backend reads of a room through the server API:
//! its members on every server, its recent messages and its epoch. Each
//! read takes the room's lock once and copies out only the page asked for,
//! so that a large room costs a reader what the page holds, not what the
//! room holds.

use wtchat_protocol::{ChatMessage, Member, ServerMessage};

use super::Room;
use crate::frame::Frame;
use crate::presence::PAGE_MAX;

/// A page of a room's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterPage {
    /// Everyone in the room, on every server.
    pub member_count: usize,
    /// Up to the page's limit, by session id.
    pub members: Vec<Member>,
    /// Where the next page starts, when there is one.
    pub next_after: Option<u64>,
}

/// A page of a room's recent messages, as the frames that were sent.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The room's epoch.
    pub epoch: u64,
    /// The number the room's next message will get.
    pub next_seq: u64,
    /// `(seq, frame)`, oldest first.
    pub messages: Vec<(u64, Frame)>,
    /// Whether the room keeps older messages than these.
    pub older: bool,
}

impl HistoryPage {
    /// The messages as the protocol writes them, decoded from the frames
    /// members received.
    pub fn chat_messages(&self) -> Vec<ChatMessage> {
        self.messages
            .iter()
            .filter_map(|(_, frame)| match wtchat_protocol::decode(frame.body_slice(), usize::MAX) {
                Ok(ServerMessage::Message(message)) => Some(message),
                _ => None,
            })
            .collect()
    }
}

impl Room {
    /// The members with session ids after `after`, at most `limit`
    /// (clamped to the page size clients get).
    pub fn members_after(&self, after: u64, limit: usize) -> RosterPage {
        let state = self.lock();
        let (members, next_after) = state.page(after, limit.clamp(1, PAGE_MAX));
        RosterPage { member_count: state.member_count(), members, next_after }
    }

    /// The newest `limit` messages kept with numbers below `before`, oldest
    /// first.
    pub fn history_before(&self, before: u64, limit: usize) -> HistoryPage {
        let state = self.lock();
        let messages = state.history.before(before, limit);
        let oldest = messages.first().map_or(before, |(seq, _)| *seq);
        let older = state.history.has_before(oldest);
        HistoryPage { epoch: state.epoch, next_seq: state.next_seq, messages, older }
    }
}
