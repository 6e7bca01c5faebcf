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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use wtchat_protocol::{
    ChatMessage, HistoryReplay, Joined, Member, Presence, PresenceChange, Resume, ServerMessage, Typing,
};

use crate::broker::RoomHandle;
use crate::closing;
use crate::frame::Frame;
use crate::history::{History, Replay};
use crate::outbox::Outbox;
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
}

impl RoomMember {
    fn describe(&self) -> Member {
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
        Self::Follows(Box::new(Feed { remote: HashMap::new(), syncing: Some(Syncing::default()) }))
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
    /// This server's members in the order they joined.
    members: Vec<RoomMember>,
    /// Recent messages.
    history: History,
    /// Set when the room became empty and left the registry. A session that
    /// found the room just before that must look it up again.
    removed: bool,
    /// How the room's messages get their numbers.
    sequencing: Sequencing,
}

/// A follower room's view of the shared feed.
#[derive(Debug)]
pub struct Feed {
    /// Members on other servers, by session id; this server's own are in
    /// `RoomState::members` only.
    remote: HashMap<u64, Arc<str>>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A message went to this many members.
    Delivered(usize),
    /// Nothing to count (presence, typing, a duplicate, or held for sync).
    Noted,
    /// The feed broke (its epoch changed, or a number was skipped): the
    /// members were closed and the room must be synced again.
    Resync,
}

/// The room was removed from the registry; look it up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomRemoved;

impl RoomState {
    /// Whether a session is this server's member of the room, or waits to
    /// become one.
    fn is_local(&self, session_id: u64) -> bool {
        self.members.iter().any(|m| m.session_id == session_id)
            || self.syncing().is_some_and(|s| s.joiners.iter().any(|(m, ..)| m.session_id == session_id))
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
            None => self.history.all(),
            Some(resume) if resume.epoch == self.epoch => self.history.after(resume.last_seq, self.next_seq),
            Some(_) => {
                let mut all = self.history.all();
                all.gap = true;
                all
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

    /// Everyone in the room as a joiner sees it, the joiner included: this
    /// server's members in the order they joined, then, in a room that
    /// spans servers, the others by session id.
    fn member_list(&self, joiner: &RoomMember) -> Vec<Member> {
        let mut list: Vec<Member> = self.members.iter().map(RoomMember::describe).collect();
        list.push(joiner.describe());
        if let Sequencing::Follows(feed) = &self.sequencing {
            let mut remote: Vec<Member> = feed
                .remote
                .iter()
                .filter(|(id, _)| **id != joiner.session_id)
                .map(|(id, name)| Member { session_id: *id, name: name.to_string() })
                .collect();
            remote.sort_unstable_by_key(|m| m.session_id);
            list.extend(remote);
        }
        list
    }
}

impl Room {
    /// An empty room keeping `history_len` messages.
    pub fn new(name: Arc<str>, incarnation: u64, history_len: usize, sequencing: Sequencing) -> Self {
        Self {
            name,
            incarnation,
            state: Mutex::new(RoomState {
                // Below 2^53, so that JavaScript clients hold it exactly.
                epoch: fastrand::u64(1..1 << 53),
                next_seq: 1,
                members: Vec::new(),
                history: History::new(history_len),
                removed: false,
                sequencing,
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

    /// Answers a join in three steps: the joined frame, the replay, the
    /// others told. The replay is held to half of the joiner's outbound
    /// queue, so that a long history of large messages trims the replay
    /// (and says so with `gap`) instead of evicting the joiner as a slow
    /// consumer.
    fn answer_join(
        &self,
        state: &mut RoomState,
        joiner: RoomMember,
        request_id: u32,
        resume: Option<Resume>,
    ) {
        let replay = state.replay(resume, joiner.outbox.capacity_bytes() / 2);
        let joined = self.joined_frame(state, request_id, state.member_list(&joiner), &replay);
        joiner.outbox.push(&joined);
        for frame in replay.frames {
            joiner.outbox.push(frame);
        }
        self.tell_presence(&state.members, PresenceChange::Joined, joiner.describe());
        state.members.push(joiner);
    }

    /// The answer to a join: where the sequence stands, who is there, and
    /// how much history follows.
    fn joined_frame(
        &self,
        state: &RoomState,
        request_id: u32,
        members: Vec<Member>,
        replay: &Replay<'_>,
    ) -> Frame {
        Frame::encode(&ServerMessage::Joined(Joined {
            request_id,
            room: self.name.to_string(),
            epoch: state.epoch,
            next_seq: state.next_seq,
            members,
            history: HistoryReplay {
                count: u32::try_from(replay.frames.len()).unwrap_or(u32::MAX),
                gap: replay.gap,
            },
        }))
    }

    /// Publishes a message in a room that numbers its own: sequences it,
    /// encodes it once, queues that one frame for every member (the sender
    /// too) and keeps it in the history. Returns how many members it was
    /// queued for.
    pub fn publish(&self, sender: &RoomMember, body: String, sent_at_ms: u64) -> usize {
        let mut state = self.lock();
        debug_assert!(matches!(state.sequencing, Sequencing::Own), "a follower's numbers come from its feed");
        let seq = state.next_seq;
        let frame = self.message_frame(seq, sender.describe(), sent_at_ms, body);
        Self::deliver(&mut state, seq, frame)
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

    /// Tells the other members that `sender` is typing. The notice is
    /// encoded once and is ephemeral: not sequenced, not kept.
    pub fn typing(&self, sender: &RoomMember) {
        let state = self.lock();
        self.tell_typing(&state.members, sender.describe());
    }

    /// Removes a member (or a joiner still waiting for the room to sync) and
    /// tells the others. When the room becomes empty it is marked removed
    /// and `on_empty` runs while the room is still locked, so that nobody can
    /// join the dead room in between. Returns the member it removed.
    pub fn leave(
        &self,
        session_id: u64,
        change: PresenceChange,
        on_empty: impl FnOnce(),
    ) -> Option<RoomMember> {
        let mut state = self.lock();
        let waiting = state.syncing_mut().and_then(|syncing| {
            let index = syncing.joiners.iter().position(|(m, ..)| m.session_id == session_id)?;
            Some(syncing.joiners.remove(index).0)
        });
        let gone = match waiting {
            Some(gone) => gone,
            None => {
                let index = state.members.iter().position(|m| m.session_id == session_id)?;
                let gone = state.members.remove(index);
                self.tell_presence(&state.members, change, gone.describe());
                gone
            }
        };
        let still_waiting = state.syncing().map_or(0, |s| s.joiners.len());
        if state.members.is_empty() && still_waiting == 0 {
            state.removed = true;
            on_empty();
        }
        Some(gone)
    }

    /// Starts a follower room from the broker's snapshot: the history and
    /// members it holds, then the events that arrived while it was taken
    /// (skipping those already in it), then the joins that waited.
    pub fn synced(&self, snapshot: Snapshot) {
        let mut state = self.lock();
        let state = &mut *state;
        let Sequencing::Follows(feed) = &mut state.sequencing else { return };
        let Some(syncing) = feed.syncing.take() else { return };
        // A set, so that a big room's snapshot costs one pass, not one
        // pass over the local members per member.
        let local: std::collections::HashSet<u64> = (state.members.iter())
            .chain(syncing.joiners.iter().map(|(m, ..)| m))
            .map(|m| m.session_id)
            .collect();
        feed.remote = snapshot
            .members
            .into_iter()
            .filter(|m| !local.contains(&m.session_id))
            .map(|m| (m.session_id, m.name))
            .collect();
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
                    self.tell_presence(&state.members, change, member.describe());
                }
                Applied::Noted
            }
            RoomEvent::Typing { member } => {
                self.tell_typing(&state.members, member.describe());
                Applied::Noted
            }
        }
    }

    /// Closes every member after a break in the feed, which this server
    /// cannot repair without risking a silent gap: each member reconnects,
    /// resumes from its last number and is told exactly what it missed, or
    /// that the history no longer covers it. The room syncs again for
    /// whoever joins meanwhile.
    fn break_feed(&self, state: &mut RoomState) {
        let Sequencing::Follows(feed) = &mut state.sequencing else { return };
        let notice = closing::feed_broke(&self.name);
        feed.syncing = Some(Syncing::default());
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

    /// Tells `members` (but the member concerned) of a presence change, in
    /// one frame.
    fn tell_presence(&self, members: &[RoomMember], change: PresenceChange, member: Member) {
        let except = member.session_id;
        let presence = ServerMessage::Presence(Presence { room: self.name.to_string(), change, member });
        Self::tell_others(members, &presence, except);
    }

    /// Tells `members` (but the typist) that `member` is typing. The notice
    /// is encoded once and is ephemeral: not sequenced, not kept.
    fn tell_typing(&self, members: &[RoomMember], member: Member) {
        let except = member.session_id;
        Self::tell_others(
            members,
            &ServerMessage::Typing(Typing { room: self.name.to_string(), member }),
            except,
        );
    }

    fn tell_others(members: &[RoomMember], message: &ServerMessage, except: u64) {
        let frame = Frame::encode(message);
        for member in members.iter().filter(|m| m.session_id != except) {
            member.outbox.push(&frame);
        }
    }

    /// How many members the room has on this server.
    pub fn member_count(&self) -> usize {
        self.lock().members.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wtchat_protocol::ReasonCode;

    use crate::outbox::Next;

    fn follower(name: &str) -> Room {
        Room::new(name.into(), 1, 10, Sequencing::follower())
    }

    fn member(session_id: u64, name: &str) -> RoomMember {
        RoomMember { session_id, name: Arc::from(name), outbox: Arc::new(Outbox::new(1 << 20)) }
    }

    fn message(epoch: u64, seq: u64) -> RoomEvent {
        RoomEvent::Message {
            epoch,
            seq,
            sender: EventMember { session_id: 99, name: "Far".into() },
            sent_at_ms: 0,
            body: format!("m{seq}"),
        }
    }

    /// Everything queued for a member so far, decoded.
    async fn received(member: &RoomMember) -> Vec<ServerMessage> {
        let mut out = Vec::new();
        if member.outbox.queued_bytes() == 0 {
            return out;
        }
        let mut batch = Vec::new();
        if let Next::Frames = member.outbox.next(&mut batch).await {
            for frame in batch {
                out.push(wtchat_protocol::decode(&frame.body(), usize::MAX).unwrap());
            }
        }
        out
    }

    fn seqs(messages: &[ServerMessage]) -> Vec<u64> {
        messages
            .iter()
            .filter_map(|m| if let ServerMessage::Message(c) = m { Some(c.seq) } else { None })
            .collect()
    }

    #[tokio::test]
    async fn a_follower_answers_joins_from_the_snapshot_and_drops_what_it_already_holds() {
        let room = follower("r");
        let ann = member(1, "Ann");
        room.join(ann.clone(), 7, Some(Resume { epoch: 5, last_seq: 2 })).unwrap();
        // Events that arrive before the snapshot wait, whether or not the
        // snapshot turns out to hold them too.
        assert_eq!(room.apply(message(5, 4)), Applied::Noted);
        assert_eq!(room.apply(message(5, 5)), Applied::Noted);
        assert!(received(&ann).await.is_empty(), "nothing before the snapshot");
        let far = EventMember { session_id: 99, name: "Far".into() };
        room.synced(Snapshot {
            epoch: 5,
            last_seq: 4,
            history: (1..=4).map(|seq| message(5, seq)).collect(),
            members: vec![far],
        });
        let got = received(&ann).await;
        let ServerMessage::Joined(joined) = &got[0] else { panic!("{got:?}") };
        // The held message 5 is applied before the waiting join is answered,
        // so the joiner gets it in its replay.
        assert_eq!((joined.request_id, joined.epoch, joined.next_seq), (7, 5, 6));
        assert!(!joined.history.gap);
        assert_eq!(joined.members.len(), 2, "members on other servers are listed");
        // What it missed after 2, where 4 was both in the snapshot and
        // held from the feed, and comes once.
        assert_eq!(seqs(&got), vec![3, 4, 5]);
        assert_eq!(room.apply(message(5, 5)), Applied::Noted, "a duplicate is dropped");
        assert_eq!(room.apply(message(5, 6)), Applied::Delivered(1));
        assert_eq!(seqs(&received(&ann).await), vec![6]);
    }

    #[test]
    fn a_broken_feed_closes_members_so_that_they_resume() {
        let room = follower("r");
        let ann = member(1, "Ann");
        room.join(ann.clone(), 1, None).unwrap();
        room.synced(Snapshot { epoch: 5, last_seq: 0, history: Vec::new(), members: Vec::new() });
        assert_eq!(room.apply(message(5, 1)), Applied::Delivered(1));
        // Number 2 never came: the member must not silently miss it.
        assert_eq!(room.apply(message(5, 3)), Applied::Resync);
        assert!(!ann.outbox.is_open());
        assert_eq!(ann.outbox.stats().close_code, Some(ReasonCode::BROKER_UNAVAILABLE));
        // A new epoch (Redis lost the room) breaks the feed the same way.
        let room = follower("s");
        room.synced(Snapshot { epoch: 5, last_seq: 9, history: Vec::new(), members: Vec::new() });
        let bob = member(2, "Bob");
        room.join(bob.clone(), 1, None).unwrap();
        assert_eq!(room.apply(message(6, 1)), Applied::Resync);
        assert_eq!(bob.outbox.stats().close_code, Some(ReasonCode::BROKER_UNAVAILABLE));
    }

    #[test]
    fn presence_from_other_servers_is_told_once() {
        let room = follower("r");
        room.synced(Snapshot { epoch: 1, last_seq: 0, history: Vec::new(), members: Vec::new() });
        let ann = member(1, "Ann");
        room.join(ann.clone(), 1, None).unwrap();
        let before = ann.outbox.queued_bytes();
        let far = EventMember { session_id: 99, name: "Far".into() };
        room.apply(RoomEvent::Presence { change: PresenceChange::Joined, member: far.clone() });
        let after_first = ann.outbox.queued_bytes();
        assert!(after_first > before);
        room.apply(RoomEvent::Presence { change: PresenceChange::Joined, member: far.clone() });
        assert_eq!(ann.outbox.queued_bytes(), after_first, "a repeated join is not told again");
        // Ann's own join, echoed back by Redis, is not news to anyone.
        room.apply(RoomEvent::Presence {
            change: PresenceChange::Joined,
            member: EventMember { session_id: 1, name: "Ann".into() },
        });
        assert_eq!(ann.outbox.queued_bytes(), after_first);
        room.apply(RoomEvent::Presence { change: PresenceChange::Disconnected, member: far });
        assert!(ann.outbox.queued_bytes() > after_first);
    }
}
