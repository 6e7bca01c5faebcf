//! A room: its members, its message sequence and its recent history.
//!
//! Everything about one room sits behind one short-held lock, which is what
//! gives every member the same order: a message gets its sequence number and
//! is queued for every member in one critical section, so no two messages can
//! reach two members in different orders. The lock is never held across an
//! `.await`; queueing a frame is a pointer push into each member's outbox.
//!
//! A room numbers its messages in one of two ways ([`Sequencing`]): by
//! itself, when the server is alone ([`Room::publish`]), or by following a
//! feed that a broker numbers for every server ([`Room::apply`]). A follower
//! starts out syncing: it holds joiners and early events until the broker's
//! snapshot arrives ([`Room::synced`]), so that a joiner's history and the
//! live feed meet without a gap or a duplicate.
//!
//! Joining and leaving cost the room O(log n) and a few bytes, whatever its
//! size: members are found by session id in an ordered map (which also
//! gives pages of members), and arrivals and departures are noted for the
//! next presence diff (`presence.rs`) instead of being told to every member
//! at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use wtchat_protocol::{
    ChatMessage, HistoryReplay, Joined, Member, MembersPage, PresenceChange, Resume, ServerMessage,
};

use crate::broker::{RoomHandle, Sequenced};
use crate::closing;
use crate::frame::Frame;
use crate::history::{History, HistoryPolicy, Replay};
use crate::outbox::Outbox;
use crate::presence::{PAGE_MAX, PendingPresence, PresencePolicy, Rotation};
use crate::receipts::{Receipt, Receipts};
use crate::room_event::{EventMember, RoomEvent, Snapshot};

/// A session as a member of one room.
#[derive(Debug, Clone)]
pub struct RoomMember {
    /// The member's session.
    pub session_id: u64,
    /// The name it joined with, shared with the session's own record.
    pub name: Arc<str>,
    /// Where the room queues the member's frames.
    pub outbox: Arc<Outbox>,
    /// The session's user (their token's `sub`), when sessions
    /// authenticate, for the events the application's backend is told.
    pub user: Option<Arc<str>>,
}

impl RoomMember {
    /// The member as the room's frames name it.
    pub fn describe(&self) -> Member {
        Member { session_id: self.session_id, name: self.name.to_string() }
    }

    /// The member as the broker's events name it.
    pub fn event_member(&self) -> EventMember {
        EventMember { session_id: self.session_id, name: self.name.clone() }
    }
}

/// A room.
#[derive(Debug)]
pub struct Room {
    /// The validated name, shared with the registry's key.
    name: Arc<str>,
    /// Which room of that name this is, among all this process opened.
    incarnation: u64,
    /// Set while the room waits in the registry's list of rooms with
    /// presence to tell, so that it waits there once.
    presence_queued: AtomicBool,
    /// A std mutex: held only to sequence and queue, never across an `.await`.
    state: Mutex<RoomState>,
}

/// How a room's messages get their numbers.
#[derive(Debug)]
pub enum Sequencing {
    /// The room numbers its own messages: the server is alone.
    Own,
    /// The room follows a feed that a broker numbers for every server.
    Follows(Box<Feed>),
}

impl Sequencing {
    /// A follower that waits for its first snapshot.
    pub fn follower() -> Self {
        Self::Follows(Box::new(Feed { remote: BTreeMap::new(), syncing: Some(Syncing::default()) }))
    }
}

#[derive(Debug)]
struct RoomState {
    /// Changes whenever the sequence restarts; a room gets a fresh random one
    /// when it is created, so a client cannot mistake a recreated room's
    /// numbers for the old room's.
    epoch: u64,
    /// The number the next message gets.
    next_seq: u64,
    /// This server's members, in no particular order: the fan-out list.
    members: Vec<RoomMember>,
    /// Where each member is in `members`, by session id, once the room has
    /// more than `roster::SMALL_ROOM` members: finds a member in O(log n) and
    /// lists members in pages. A small room has none, since scanning a
    /// handful of members costs less than a tree node in every room.
    positions: BTreeMap<u64, usize>,
    /// Arrivals and departures not yet told.
    pending: PendingPresence,
    /// In a room above the names limit, when typing may next be relayed.
    typing_open_at: Option<Instant>,
    /// Which members a counts-only room tells next, and what.
    rotation: Rotation,
    /// Recent messages.
    history: History,
    /// Set when the room became empty and left the registry. A session that
    /// found the room just before that must look it up again.
    removed: bool,
    /// How the room's messages get their numbers.
    sequencing: Sequencing,
    /// What its members' messages with ids got (a room that numbers its
    /// own), made on the first such message.
    receipts: Option<Box<Receipts>>,
}

/// A follower room's view of the shared feed.
#[derive(Debug)]
pub struct Feed {
    /// Members on other servers, by session id; this server's own are in
    /// `RoomState::members` only.
    remote: BTreeMap<u64, Arc<str>>,
    /// Set until the broker's snapshot arrives.
    syncing: Option<Syncing>,
}

/// What waits for a follower room's snapshot.
#[derive(Debug, Default)]
struct Syncing {
    /// Joins to answer once the room knows its history.
    joiners: Vec<(RoomMember, u32, Option<Resume>)>,
    /// Events that arrived before the snapshot; some may be in it too.
    events: Vec<RoomEvent>,
}

/// What applying a feed event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A message went to this many members.
    Delivered(usize),
    /// A member on another server came or went: the room has presence to
    /// tell.
    PresenceChanged,
    /// Someone on another server is typing; the caller relays it under the
    /// room's typing policy.
    Typing(EventMember),
    /// Nothing to count (a duplicate, an echo of this server's own member,
    /// or held for sync).
    Noted,
    /// The feed broke (its epoch changed, or a number was skipped): the
    /// members were closed and the room must be synced again.
    Resync,
}

/// The room was removed from the registry; look it up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomRemoved;

/// A member leaving a room, as the room tells whoever removes it.
#[derive(Debug)]
pub struct Departure<'a> {
    /// Who left.
    pub member: &'a RoomMember,
    /// The room's last message then, when the room knows its order.
    pub after: Option<Sequenced>,
    /// Whether the room is now empty (and removed).
    pub emptied: bool,
}

impl RoomState {
    /// The last message given out, when the room knows its order.
    fn position(&self) -> Option<Sequenced> {
        self.syncing().is_none().then_some(Sequenced { seq: self.next_seq - 1, epoch: self.epoch })
    }

    /// Whether a session is this server's member of the room, or waits to
    /// become one.
    fn is_local(&self, session_id: u64) -> bool {
        self.find(session_id).is_some()
            || self.syncing().is_some_and(|s| s.joiners.iter().any(|(m, ..)| m.session_id == session_id))
    }

    /// Everyone in the room, on every server.
    fn member_count(&self) -> usize {
        let remote = match &self.sequencing {
            Sequencing::Follows(feed) => feed.remote.len(),
            Sequencing::Own => 0,
        };
        self.members.len() + remote
    }

    fn syncing(&self) -> Option<&Syncing> {
        match &self.sequencing {
            Sequencing::Follows(feed) => feed.syncing.as_ref(),
            Sequencing::Own => None,
        }
    }

    fn syncing_mut(&mut self) -> Option<&mut Syncing> {
        match &mut self.sequencing {
            Sequencing::Follows(feed) => feed.syncing.as_mut(),
            Sequencing::Own => None,
        }
    }

    /// The history a joiner gets: what it asked for, held to `budget` bytes
    /// (the newest kept), with `gap` set when that is not all it missed.
    fn replay(&self, resume: Option<Resume>, budget: usize) -> Replay<'_> {
        let mut replay = match resume {
            None => self.history.latest(),
            Some(resume) if resume.epoch == self.epoch => self.history.after(resume.last_seq, self.next_seq),
            Some(_) => {
                let mut latest = self.history.latest();
                latest.gap = true;
                latest
            }
        };
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
        replay
    }
}

impl Room {
    /// An empty room keeping messages as `history` says.
    pub fn new(name: Arc<str>, incarnation: u64, history: HistoryPolicy, sequencing: Sequencing) -> Self {
        Self {
            name,
            incarnation,
            presence_queued: AtomicBool::new(false),
            state: Mutex::new(RoomState {
                // Below 2^53, so that JavaScript clients hold it exactly.
                epoch: fastrand::u64(1..1 << 53),
                next_seq: 1,
                members: Vec::new(),
                positions: BTreeMap::new(),
                pending: PendingPresence::default(),
                typing_open_at: None,
                rotation: Rotation::default(),
                history: History::new(history),
                removed: false,
                sequencing,
                receipts: None,
            }),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Which room of that name this is.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The room as a broker knows it.
    pub fn handle(&self) -> RoomHandle {
        RoomHandle { name: self.name.clone(), incarnation: self.incarnation }
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        // Every mutation below leaves the state consistent before it can
        // panic (pushes into vectors), so a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a member. The joiner receives the joined answer and then the
    /// history it asked for; everyone else receives a presence notice. A
    /// follower still syncing holds the join until its snapshot arrives.
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
        if let Some(syncing) = state.syncing_mut() {
            syncing.joiners.push((joiner, request_id, resume));
            return Ok(());
        }
        self.answer_join(&mut state, joiner, request_id, resume);
        Ok(())
    }

    /// Answers a join in named steps: the joiner becomes a member and its
    /// arrival is noted for the next presence diff; it gets the joined
    /// answer (the member count and the first page) and the replay. The
    /// replay is held to half of the joiner's outbound queue, so that a long
    /// history of large messages trims the replay (and says so with `gap`)
    /// instead of evicting the joiner as a slow consumer.
    fn answer_join(
        &self,
        state: &mut RoomState,
        joiner: RoomMember,
        request_id: u32,
        resume: Option<Resume>,
    ) {
        state.pending.joined(joiner.session_id, joiner.name.clone());
        let outbox = joiner.outbox.clone();
        state.insert(joiner);
        let replay = state.replay(resume, outbox.capacity_bytes() / 2);
        outbox.push(&self.joined_frame(state, request_id, &replay));
        for frame in replay.frames {
            outbox.push(frame);
        }
    }

    /// The answer to a join: where the sequence stands, how many are there
    /// and the first page of them, and how much history follows.
    fn joined_frame(&self, state: &RoomState, request_id: u32, replay: &Replay<'_>) -> Frame {
        let (members, _) = state.page(0, PAGE_MAX);
        Frame::encode(&ServerMessage::Joined(Joined {
            request_id,
            room: self.name.to_string(),
            epoch: state.epoch,
            next_seq: state.next_seq,
            member_count: u32::try_from(state.member_count()).unwrap_or(u32::MAX),
            members,
            history: HistoryReplay {
                count: u32::try_from(replay.frames.len()).unwrap_or(u32::MAX),
                gap: replay.gap,
            },
        }))
    }

    /// One page of the members, for a members request.
    pub fn members_page(&self, request_id: u32, after: u64, limit: usize) -> Frame {
        let state = self.lock();
        let (members, next_after) = state.page(after, limit.clamp(1, PAGE_MAX));
        Frame::encode(&ServerMessage::Members(MembersPage {
            request_id,
            room: self.name.to_string(),
            member_count: u32::try_from(state.member_count()).unwrap_or(u32::MAX),
            members,
            next_after,
        }))
    }

    /// Tells the members, in one shared frame, who came and went since the
    /// last interval. Returns whether the room has told everything; when it
    /// has not, the caller asks again at the next interval: a room above
    /// the names limit tells its counts to one slice of its members per
    /// interval, in turn (`presence::Rotation`), so that neither the bytes
    /// per second nor any one interval's work grows with the room.
    pub fn flush_presence(&self, policy: &PresencePolicy) -> bool {
        let mut state = self.lock();
        if state.member_count() > policy.names_max {
            return self.tell_counts(&mut state, policy);
        }
        state.rotation.reset();
        // Cleared while the room is locked: a change noted after this
        // queues the room again, and one noted before is in this frame.
        self.presence_queued.store(false, Ordering::Release);
        if state.pending.is_empty() {
            return true;
        }
        let pending = std::mem::take(&mut state.pending);
        if state.members.is_empty() {
            // Nobody here to tell (the room emptied, or only other servers'
            // members changed): drop the changes without encoding a frame.
            return true;
        }
        let diff = pending.into_diff(&self.name, state.member_count());
        // A diff that only tells one member of its own arrival is no news to
        // it (a lone joiner learnt everything from its join answer).
        let only_news_to_others = (diff.joins + diff.leaves == 1 && diff.changes.len() == 1)
            .then(|| diff.changes[0].member.session_id);
        let frame = Frame::encode(&ServerMessage::PresenceDiff(diff));
        for member in state.members.iter().filter(|m| Some(m.session_id) != only_news_to_others) {
            member.outbox.push(&frame);
        }
        true
    }

    /// One interval of a counts-only room: the counts over the last turn of
    /// the rotation, told to the next slice of this server's members.
    fn tell_counts(&self, state: &mut RoomState, policy: &PresencePolicy) -> bool {
        let count = state.member_count();
        let rounds = count.div_ceil(policy.names_max.max(1));
        let pending = std::mem::take(&mut state.pending);
        let diff = match state.members.is_empty() {
            // Only other servers' members here and none local to tell.
            true => None,
            false => state.rotation.turn(pending, &self.name, count, rounds),
        };
        let Some(diff) = diff else {
            self.presence_queued.store(false, Ordering::Release);
            return true;
        };
        let frame = Frame::encode(&ServerMessage::PresenceDiff(diff));
        let (first, wrapped) = state.rotation.slice(state.members.len(), rounds);
        for index in first.chain(wrapped) {
            state.members[index].outbox.push(&frame);
        }
        false
    }

    /// Whether the caller should list the room among those with presence
    /// to tell: true once until the room tells it.
    pub fn queue_presence(&self) -> bool {
        !self.presence_queued.swap(true, Ordering::AcqRel)
    }

    /// Publishes a message in a room that numbers its own: sequences it,
    /// encodes it once, queues that one frame for every member (the sender
    /// too) and keeps it in the history; answers the number it got and how
    /// many members it was queued for. The sender is a member, or a name
    /// the application's backend posts under. With a receipt, a message
    /// whose key was published within the receipt's window is answered with
    /// that number and not published again; the check and the numbering
    /// share the one lock, so two copies racing each other cannot both
    /// pass (`room/receipts.rs`).
    /// `witness` sees the number and the text inside the critical
    /// section, so that what it records keeps the room's order.
    pub fn publish(
        &self,
        receipt: Option<&Receipt>,
        sender: Member,
        body: String,
        sent_at_ms: u64,
        witness: impl FnOnce(Sequenced, &str),
    ) -> Keyed {
        let mut state = self.lock();
        debug_assert!(matches!(state.sequencing, Sequencing::Own), "a follower's numbers come from its feed");
        if let Some(sequenced) = receipt.and_then(|receipt| state.receipts().get(&receipt.key)) {
            return Keyed::Repeated(sequenced);
        }
        let seq = state.next_seq;
        let sequenced = Sequenced { seq, epoch: state.epoch };
        witness(sequenced, &body);
        let frame = self.message_frame(seq, sender, sent_at_ms, body);
        let recipients = Self::deliver(&mut state, seq, frame);
        if let Some(receipt) = receipt {
            state.receipts().insert(receipt, sequenced);
        }
        Keyed::Published(sequenced, recipients)
    }

    /// Queues the message numbered `seq` (the room's next) for every member
    /// and keeps it in the history; returns how many members got it.
    fn deliver(state: &mut RoomState, seq: u64, frame: Frame) -> usize {
        for member in &state.members {
            member.outbox.push(&frame);
        }
        state.history.push(seq, frame);
        state.next_seq = seq + 1;
        state.members.len()
    }

    /// Removes a member (or a joiner still waiting for the room to sync) and
    /// tells the others. `on_gone` runs while the room is still locked,
    /// with the departure; when the room became empty it is marked removed
    /// first, so that nobody can join the dead room in between. Returns the
    /// member it removed.
    pub fn leave(
        &self,
        session_id: u64,
        change: PresenceChange,
        on_gone: impl FnOnce(Departure<'_>),
    ) -> Option<RoomMember> {
        let mut state = self.lock();
        let waiting = state.syncing_mut().and_then(|syncing| {
            let index = syncing.joiners.iter().position(|(m, ..)| m.session_id == session_id)?;
            Some(syncing.joiners.remove(index).0)
        });
        let gone = match waiting {
            Some(gone) => gone,
            None => {
                let gone = state.remove(session_id)?;
                state.pending.left(change, session_id, gone.name.clone());
                gone
            }
        };
        let still_waiting = state.syncing().map_or(0, |s| s.joiners.len());
        let emptied = state.members.is_empty() && still_waiting == 0;
        if emptied {
            state.removed = true;
        }
        on_gone(Departure { member: &gone, after: state.position(), emptied });
        Some(gone)
    }

    /// The room's last message as this server knows it: `None` while a
    /// follower waits for its first snapshot.
    pub fn position(&self) -> Option<Sequenced> {
        self.lock().position()
    }

    /// Starts a follower room from the broker's snapshot: the history and
    /// members it holds, then the events that arrived while it was taken
    /// (skipping those already in it), then the joins that waited.
    ///
    /// A room whose members stayed through a lost link (the broker's grace)
    /// is caught up instead (`catch_up.rs`): its members get what they
    /// missed, in order, or are closed to resume when the snapshot no
    /// longer covers it.
    pub fn synced(&self, snapshot: Snapshot) {
        let mut state = self.lock();
        let state = &mut *state;
        let Sequencing::Follows(feed) = &mut state.sequencing else { return };
        let Some(syncing) = feed.syncing.take() else { return };
        // A set, so that a big room's snapshot costs one pass, not one
        // pass over the local members per member.
        let waiting: std::collections::HashSet<u64> =
            syncing.joiners.iter().map(|(m, ..)| m.session_id).collect();
        let local: std::collections::HashSet<u64> = state.members.iter().map(|m| m.session_id).collect();
        let remote: BTreeMap<u64, Arc<str>> = snapshot
            .members
            .into_iter()
            .filter(|m| !local.contains(&m.session_id) && !waiting.contains(&m.session_id))
            .map(|m| (m.session_id, m.name))
            .collect();
        let caught_up = !state.members.is_empty()
            && self.catch_up(state, &remote, &snapshot.history, snapshot.epoch, snapshot.last_seq);
        if let Sequencing::Follows(feed) = &mut state.sequencing {
            feed.remote = remote;
        }
        if !caught_up {
            state.epoch = snapshot.epoch;
            state.next_seq = snapshot.last_seq + 1;
            state.history.clear();
            for event in snapshot.history {
                if let RoomEvent::Message { epoch, seq, sender, sent_at_ms, body } = event {
                    if epoch == snapshot.epoch && seq <= snapshot.last_seq {
                        state.history.push(seq, self.message_frame(seq, sender.describe(), sent_at_ms, body));
                    }
                }
            }
        }
        for event in syncing.events {
            if self.apply_locked(state, event) == Applied::Resync {
                break;
            }
        }
        for (joiner, request_id, resume) in syncing.joiners {
            self.answer_join(state, joiner, request_id, resume);
        }
    }

    /// Makes a follower room wait for a fresh snapshot, after its feed was
    /// interrupted by a lost link.
    pub fn resync(&self) {
        let mut state = self.lock();
        if let Sequencing::Follows(feed) = &mut state.sequencing {
            feed.syncing.get_or_insert_with(Syncing::default);
        }
    }

    /// Applies one event of the shared feed: a message is sequenced already
    /// and goes to every member of this server as one frame.
    pub fn apply(&self, event: RoomEvent) -> Applied {
        let mut state = self.lock();
        self.apply_locked(&mut state, event)
    }

    fn apply_locked(&self, state: &mut RoomState, event: RoomEvent) -> Applied {
        if let Some(syncing) = state.syncing_mut() {
            syncing.events.push(event);
            return Applied::Noted;
        }
        match event {
            RoomEvent::Message { epoch, seq, .. } if epoch == state.epoch && seq < state.next_seq => {
                Applied::Noted
            }
            RoomEvent::Message { epoch, seq, sender, sent_at_ms, body }
                if epoch == state.epoch && seq == state.next_seq =>
            {
                let frame = self.message_frame(seq, sender.describe(), sent_at_ms, body);
                Applied::Delivered(Self::deliver(state, seq, frame))
            }
            RoomEvent::Message { epoch, seq, .. } => {
                tracing::warn!(
                    room = %self.name, epoch, seq, expected_epoch = state.epoch, expected_seq = state.next_seq,
                    "the room's feed broke; closing its members so that they resume"
                );
                self.break_feed(state);
                Applied::Resync
            }
            RoomEvent::Presence { change, member } => {
                // This server's own members were told when they came and
                // went; the feed's echo of them is not news.
                let local = state.is_local(member.session_id);
                let Sequencing::Follows(feed) = &mut state.sequencing else { return Applied::Noted };
                let changed = !local
                    && match change {
                        PresenceChange::Joined => {
                            feed.remote.insert(member.session_id, member.name.clone()).is_none()
                        }
                        PresenceChange::Left | PresenceChange::Disconnected => {
                            feed.remote.remove(&member.session_id).is_some()
                        }
                    };
                if changed {
                    state.pending.note(change, member.session_id, member.name);
                    return Applied::PresenceChanged;
                }
                Applied::Noted
            }
            RoomEvent::Typing { member } => Applied::Typing(member),
        }
    }

    /// Closes every member after a break in the feed, which this server
    /// cannot repair without risking a silent gap: each member reconnects,
    /// resumes from its last number and is told exactly what it missed, or
    /// that the history no longer covers it. The room syncs again for
    /// whoever joins meanwhile.
    fn break_feed(&self, state: &mut RoomState) {
        let Sequencing::Follows(feed) = &mut state.sequencing else { return };
        feed.syncing = Some(Syncing::default());
        self.close_to_resume(state);
    }

    /// Closes every member of this server so that each resumes from its
    /// last number and is told exactly what it missed.
    fn close_to_resume(&self, state: &RoomState) {
        let notice = closing::feed_broke(&self.name);
        for member in &state.members {
            member.outbox.close(notice.clone());
        }
    }

    /// Encodes a sequenced message as the frame members receive.
    fn message_frame(&self, seq: u64, sender: Member, sent_at_ms: u64, body: String) -> Frame {
        Frame::encode(&ServerMessage::Message(ChatMessage {
            room: self.name.to_string(),
            seq,
            sender,
            sent_at_ms,
            body,
        }))
    }

    /// How many members the room has on this server.
    pub fn member_count(&self) -> usize {
        self.lock().members.len()
    }

    /// How many members the room has on every server.
    pub fn total_member_count(&self) -> usize {
        self.lock().member_count()
    }
}

mod catch_up;
mod reading;
mod receipts;
mod roster;
mod typing;

pub use reading::{HistoryPage, RosterPage};
pub use receipts::Keyed;

#[cfg(test)]
mod tests;
