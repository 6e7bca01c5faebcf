//! A room: its members, its message sequence and its recent history.
//!
//! Everything about one room sits behind one short-held lock, which is what
//! gives every member the same order: a message gets its sequence number and
//! is queued for every member in one critical section, so no two messages can
//! reach two members in different orders. The lock is never held across an
//! `.await`; queueing a frame is a pointer push into each member's outbox.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use wtchat_protocol::{
    ChatMessage, HistoryReplay, Joined, Member, Presence, PresenceChange, Resume, ServerMessage, Typing,
};

use crate::frame::Frame;
use crate::history::History;
use crate::outbox::Outbox;

/// A session as a member of one room.
#[derive(Debug, Clone)]
pub struct RoomMember {
    /// The member's session.
    pub session_id: u64,
    /// The name it joined with, shared with the session's own record.
    pub name: Arc<str>,
    /// Where the room queues the member's frames.
    pub outbox: Arc<Outbox>,
}

impl RoomMember {
    fn describe(&self) -> Member {
        Member { session_id: self.session_id, name: self.name.to_string() }
    }
}

/// A room.
#[derive(Debug)]
pub struct Room {
    /// The validated name, shared with the registry's key.
    name: Arc<str>,
    /// A std mutex: held only to sequence and queue, never across an `.await`.
    state: Mutex<RoomState>,
}

#[derive(Debug)]
struct RoomState {
    /// Changes whenever the sequence restarts; a room gets a fresh random one
    /// when it is created, so a client cannot mistake a recreated room's
    /// numbers for the old room's.
    epoch: u64,
    /// The number the next message gets.
    next_seq: u64,
    /// Members in the order they joined.
    members: Vec<RoomMember>,
    /// Recent messages.
    history: History,
    /// Set when the room became empty and left the registry. A session that
    /// found the room just before that must look it up again.
    removed: bool,
}

/// The room was removed from the registry; look it up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomRemoved;

impl Room {
    /// An empty room keeping `history_len` messages.
    pub fn new(name: Arc<str>, history_len: usize) -> Self {
        Self {
            name,
            state: Mutex::new(RoomState {
                // Below 2^53, so that JavaScript clients hold it exactly.
                epoch: fastrand::u64(1..1 << 53),
                next_seq: 1,
                members: Vec::new(),
                history: History::new(history_len),
                removed: false,
            }),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        // Every mutation below leaves the state consistent before it can
        // panic (pushes into vectors), so a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a member. The joiner receives the joined answer and then the
    /// history it asked for; everyone else receives a presence notice.
    ///
    /// The history replay is held to half of the joiner's outbound queue, so
    /// that a long history of large messages trims the replay (and says so
    /// with `gap`) instead of evicting the joiner as a slow consumer.
    pub fn join(
        &self,
        joiner: RoomMember,
        request_id: u32,
        resume: Option<Resume>,
    ) -> Result<(), RoomRemoved> {
        let mut state = self.lock();
        if state.removed {
            return Err(RoomRemoved);
        }
        let mut replay = match resume {
            None => state.history.all(),
            Some(resume) if resume.epoch == state.epoch => {
                state.history.after(resume.last_seq, state.next_seq)
            }
            Some(_) => {
                let mut all = state.history.all();
                all.gap = true;
                all
            }
        };
        let budget = joiner.outbox.capacity_bytes() / 2;
        let mut kept_bytes = 0;
        let keep_from = replay
            .frames
            .iter()
            .rposition(|frame| {
                kept_bytes += frame.len();
                kept_bytes > budget
            })
            .map_or(0, |too_much| too_much + 1);
        if keep_from > 0 {
            replay.frames.drain(..keep_from);
            replay.gap = true;
        }

        let mut members: Vec<Member> = state.members.iter().map(RoomMember::describe).collect();
        members.push(joiner.describe());
        let joined = Frame::encode(&ServerMessage::Joined(Joined {
            request_id,
            room: self.name.to_string(),
            epoch: state.epoch,
            next_seq: state.next_seq,
            members,
            history: HistoryReplay {
                count: u32::try_from(replay.frames.len()).unwrap_or(u32::MAX),
                gap: replay.gap,
            },
        }));
        joiner.outbox.push(&joined);
        for frame in replay.frames {
            joiner.outbox.push(frame);
        }

        let presence = Frame::encode(&ServerMessage::Presence(Presence {
            room: self.name.to_string(),
            change: PresenceChange::Joined,
            member: joiner.describe(),
        }));
        for member in &state.members {
            member.outbox.push(&presence);
        }
        state.members.push(joiner);
        Ok(())
    }

    /// Publishes a message: sequences it, encodes it once, queues that one
    /// frame for every member (the sender too) and keeps it in the history.
    /// Returns how many members it was queued for.
    pub fn publish(&self, sender: &RoomMember, body: String, sent_at_ms: u64) -> usize {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        let frame = Frame::encode(&ServerMessage::Message(ChatMessage {
            room: self.name.to_string(),
            seq,
            sender: sender.describe(),
            sent_at_ms,
            body,
        }));
        for member in &state.members {
            member.outbox.push(&frame);
        }
        state.history.push(seq, frame);
        state.members.len()
    }

    /// Tells the other members that `sender` is typing. The notice is
    /// encoded once and is ephemeral: not sequenced, not kept.
    pub fn typing(&self, sender: &RoomMember) {
        let state = self.lock();
        let frame = Frame::encode(&ServerMessage::Typing(Typing {
            room: self.name.to_string(),
            member: sender.describe(),
        }));
        for member in state.members.iter().filter(|m| m.session_id != sender.session_id) {
            member.outbox.push(&frame);
        }
    }

    /// Removes a member and tells the others. When the room becomes empty it
    /// is marked removed and `on_empty` runs while the room is still locked,
    /// so that nobody can join the dead room in between. Returns whether the
    /// session was a member.
    pub fn leave(&self, session_id: u64, change: PresenceChange, on_empty: impl FnOnce()) -> bool {
        let mut state = self.lock();
        let Some(index) = state.members.iter().position(|m| m.session_id == session_id) else {
            return false;
        };
        let gone = state.members.remove(index);
        if state.members.is_empty() {
            state.removed = true;
            on_empty();
            return true;
        }
        let presence = Frame::encode(&ServerMessage::Presence(Presence {
            room: self.name.to_string(),
            change,
            member: gone.describe(),
        }));
        for member in &state.members {
            member.outbox.push(&presence);
        }
        true
    }

    /// How many members the room has.
    pub fn member_count(&self) -> usize {
        self.lock().members.len()
    }
}
