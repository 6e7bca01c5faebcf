//! Where the client is in each room it has joined: what to rejoin after a
//! reconnect, and which messages are new.
//!
//! A reconnect (on either transport) rejoins every room with the epoch and
//! the last sequence number seen, and the server replays only what was
//! missed. The ledger then drops anything it has already delivered, so the
//! page sees every message exactly once, and reports a gap when the server
//! says its history no longer reaches back far enough.

use wtchat_protocol::{ChatMessage, Joined, Member, MembersPage, PresenceChange, PresenceDiff, Resume};

/// One room's state.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomState {
    /// The name this client joined with.
    pub display_name: String,
    /// The room's epoch, once joined.
    pub epoch: Option<u64>,
    /// The highest sequence number delivered to the page in that epoch.
    pub last_seq: u64,
    /// The members as last known, by session id: everyone in a small room;
    /// in a large room, the pages fetched so far.
    pub members: Vec<Member>,
    /// How many members the room has, by the server's last word.
    pub member_count: u32,
    /// Where the next page of members starts, when `members` is not
    /// everyone.
    pub next_after: Option<u64>,
}

impl RoomState {
    /// Where to resume: the epoch and last sequence number seen, once the
    /// room has been joined.
    pub fn resume(&self) -> Option<Resume> {
        self.epoch.map(|epoch| Resume { epoch, last_seq: self.last_seq })
    }
}

/// What to do with an arriving chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// New: give it to the page.
    New,
    /// Already delivered (a replay overlapping what was seen): drop it.
    Duplicate,
    /// Not for a room this client is in: drop it.
    Unknown,
}

/// What a joined answer means for the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinOutcome {
    /// Messages may be missing before the replay (history trimmed, or the
    /// room was recreated while this client was away).
    pub gap: bool,
    /// This was a rejoin after a reconnect, not the first join.
    pub rejoined: bool,
}

/// Every room the client is in, in the order it joined them (a session
/// is in a few, so a list costs less than a map, in time and in wasm).
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    rooms: Vec<(String, RoomState)>,
}

impl Ledger {
    /// Records the wish to be in a room; it is joined now and rejoined after
    /// every reconnect until left.
    pub fn want(&mut self, room: &str, display_name: &str) {
        if let Some(state) = self.room_mut(room) {
            state.display_name = display_name.to_owned();
            return;
        }
        let state = RoomState {
            display_name: display_name.to_owned(),
            epoch: None,
            last_seq: 0,
            members: Vec::new(),
            member_count: 0,
            next_after: None,
        };
        self.rooms.push((room.to_owned(), state));
    }

    /// Forgets a room.
    pub fn forget(&mut self, room: &str) {
        self.rooms.retain(|(name, _)| name != room);
    }

    fn room_mut(&mut self, room: &str) -> Option<&mut RoomState> {
        self.rooms.iter_mut().find(|(name, _)| name == room).map(|(_, state)| state)
    }

    /// The rooms to join after connecting, with where to resume each.
    pub fn rejoins(&self) -> Vec<(String, String, Option<Resume>)> {
        self.rooms
            .iter()
            .map(|(room, state)| (room.clone(), state.display_name.clone(), state.resume()))
            .collect()
    }

    /// A room's state.
    pub fn room(&self, room: &str) -> Option<&RoomState> {
        self.rooms.iter().find(|(name, _)| name == room).map(|(_, state)| state)
    }

    /// Takes in a joined answer.
    pub fn joined(&mut self, joined: &Joined) -> Option<JoinOutcome> {
        let state = self.room_mut(&joined.room)?;
        let rejoined = state.epoch.is_some();
        let mut gap = joined.history.gap && rejoined;
        if state.epoch != Some(joined.epoch) {
            // A new epoch restarts the numbering; numbers from the old one
            // mean nothing now.
            if state.epoch.is_some() && state.last_seq > 0 {
                gap = true;
            }
            state.epoch = Some(joined.epoch);
            state.last_seq = 0;
        }
        state.members = joined.members.clone();
        state.member_count = joined.member_count;
        state.next_after = (state.members.len() < joined.member_count as usize)
            .then(|| state.members.last().map_or(0, |m| m.session_id));
        Some(JoinOutcome { gap, rejoined })
    }

    /// Decides whether a chat message is new, and records it if it is.
    pub fn deliver(&mut self, message: &ChatMessage) -> Delivery {
        let Some(state) = self.room_mut(&message.room) else { return Delivery::Unknown };
        if message.seq <= state.last_seq {
            return Delivery::Duplicate;
        }
        state.last_seq = message.seq;
        Delivery::New
    }

    /// Takes in a presence diff: its named changes, and the count; returns
    /// the room's state afterwards.
    pub fn presence(&mut self, diff: &PresenceDiff) -> Option<&RoomState> {
        let state = self.room_mut(&diff.room)?;
        for change in &diff.changes {
            let at = state.members.binary_search_by_key(&change.member.session_id, |m| m.session_id);
            match (change.change, at) {
                (PresenceChange::Joined, Err(index)) => state.members.insert(index, change.member.clone()),
                (PresenceChange::Left | PresenceChange::Disconnected, Ok(index)) => {
                    state.members.remove(index);
                }
                _ => {}
            }
        }
        state.member_count = diff.member_count;
        Some(state)
    }

    /// Takes in a page of members; returns the room's state afterwards.
    pub fn page(&mut self, page: &MembersPage) -> Option<&RoomState> {
        let state = self.room_mut(&page.room)?;
        for member in &page.members {
            if let Err(index) = state.members.binary_search_by_key(&member.session_id, |m| m.session_id) {
                state.members.insert(index, member.clone());
            }
        }
        state.member_count = page.member_count;
        state.next_after = page.next_after;
        Some(state)
    }
}
