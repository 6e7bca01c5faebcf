//! Every room on this server, by name.
//!
//! The registry is consulted on join and leave only; publishing goes straight
//! to the room a session already holds. It is split into shards, each with its
//! own lock, so that joins to different rooms rarely wait for each other.
//!
//! Lock order: a room's lock may be held while taking a shard lock (when the
//! last member leaves and the room removes itself), and a shard lock while
//! taking the quota's, never the other way round.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use wtchat_protocol::{PresenceChange, Resume};

use crate::announcer::Announcer;
use crate::broker::Broker;
use crate::history::HistoryPolicy;
use crate::party::Party;
use crate::presence::PresencePolicy;
use crate::room::{Departure, Room, RoomMember, RoomRemoved, Sequencing};
use crate::room_quota::RoomQuota;

const SHARDS: usize = 32;

/// A room and who opened it, when the quota needs to know.
#[derive(Debug)]
struct Entry {
    room: Arc<Room>,
    opener: Option<Party>,
}

/// One shard: the rooms whose names hash to it.
type Shard = HashMap<Arc<str>, Entry>;

/// Why a join could not open the room it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomLimitReached {
    /// The server holds `max_rooms` rooms.
    Server,
    /// The joiner's party holds `max_rooms_per_user` rooms open.
    Party,
}

/// Every room, by name.
#[derive(Debug)]
pub struct RoomRegistry {
    /// Rooms by name, spread over shards by a hash of the name.
    shards: Box<[Mutex<Shard>]>,
    /// The hasher that picks a name's shard, seeded per process so that
    /// nobody can choose names that all land in one shard.
    hasher: RandomState,
    /// How many rooms exist, kept apart from the shards so that checking the
    /// limit needs no lock.
    count: AtomicUsize,
    /// The most rooms allowed.
    max_rooms: usize,
    /// The rooms each party opened, so that no one party fills `max_rooms`.
    quota: RoomQuota,
    /// What new rooms keep of their messages.
    history: HistoryPolicy,
    /// The incarnation the next room gets.
    next_incarnation: AtomicU64,
    /// Orders the rooms' messages across servers, if they span servers; told
    /// when rooms and members come and go.
    broker: Option<Arc<dyn Broker>>,
    /// How presence is gathered and told.
    presence: PresencePolicy,
    /// Where the application's backend hears of rooms and members, if it
    /// does.
    announcer: Option<Announcer>,
    /// Rooms with presence to tell at the next interval, each once; weak,
    /// so that a room that empties meanwhile is freed at once.
    presence_due: Mutex<Vec<Weak<Room>>>,
}

impl RoomRegistry {
    /// An empty registry.
    pub fn new(
        max_rooms: usize,
        max_rooms_per_party: usize,
        history: HistoryPolicy,
        broker: Option<Arc<dyn Broker>>,
        presence: PresencePolicy,
        announcer: Option<Announcer>,
    ) -> Self {
        Self {
            broker,
            announcer,
            presence,
            presence_due: Mutex::new(Vec::new()),
            next_incarnation: AtomicU64::new(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            count: AtomicUsize::new(0),
            max_rooms,
            quota: RoomQuota::new(max_rooms_per_party),
            history,
        }
    }

    fn shard(&self, name: &str) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(name) as usize) % SHARDS;
        // Map operations leave the map consistent if they panic.
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins a member to the room of that name, creating the room if needed
    /// and charging it to `opener`'s quota (none: not counted).
    pub fn join(
        &self,
        name: &Arc<str>,
        member: RoomMember,
        request_id: u32,
        resume: Option<Resume>,
        opener: Option<&Party>,
    ) -> Result<Arc<Room>, RoomLimitReached> {
        loop {
            let room = self.get_or_create(name, opener)?;
            match room.join(member.clone(), request_id, resume) {
                Ok(()) => {
                    self.presence_changed(&room);
                    self.tell_presence(&room, &member, PresenceChange::Joined, || room.position());
                    return Ok(room);
                }
                // The last member left between the look-up and the join, and
                // the room is gone from the map already: the next look-up
                // creates a fresh one.
                Err(RoomRemoved) => continue,
            }
        }
    }

    fn get_or_create(&self, name: &Arc<str>, opener: Option<&Party>) -> Result<Arc<Room>, RoomLimitReached> {
        let mut shard = self.shard(name);
        if let Some(entry) = shard.get(name) {
            return Ok(entry.room.clone());
        }
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.max_rooms {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(RoomLimitReached::Server);
        }
        let opener = opener.filter(|_| self.quota.is_limited());
        if let Some(party) = opener
            && !self.quota.take(party)
        {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(RoomLimitReached::Party);
        }
        let sequencing = match &self.broker {
            Some(_) => Sequencing::follower(),
            None => Sequencing::Own,
        };
        let incarnation = self.next_incarnation.fetch_add(1, Ordering::Relaxed);
        let room = Arc::new(Room::new(name.clone(), incarnation, self.history, sequencing));
        shard.insert(name.clone(), Entry { room: room.clone(), opener: opener.cloned() });
        // Under the shard lock, so that the broker hears of this room after
        // it heard that an earlier room of the same name closed (and the
        // backend hears that it is occupied after it heard it vacated).
        match (&self.broker, &self.announcer) {
            (Some(broker), _) => broker.room_opened(room.handle()),
            (None, Some(announcer)) => announcer.occupied(name),
            (None, None) => {}
        }
        Ok(room)
    }

    /// Every room on this server.
    pub fn all(&self) -> Vec<Arc<Room>> {
        let mut rooms = Vec::with_capacity(self.len());
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            rooms.extend(shard.values().map(|entry| entry.room.clone()));
        }
        rooms
    }

    /// The room of that name on this server, if it has one.
    pub fn get(&self, name: &str) -> Option<Arc<Room>> {
        self.shard(name).get(name).map(|entry| entry.room.clone())
    }

    /// Removes a member from a room, and the room from the registry when it
    /// becomes empty. Returns whether the session was a member.
    pub fn leave(&self, room: &Arc<Room>, session_id: u64, change: PresenceChange) -> bool {
        let mut emptied = false;
        let gone = room.leave(session_id, change, |departure: Departure<'_>| {
            emptied = departure.emptied;
            // A server alone tells its backend under the room's lock, so
            // that the vacated room is told before anyone can open it again.
            if let (None, Some(announcer)) = (&self.broker, &self.announcer) {
                let member = departure.member;
                announcer.member(
                    room.name(),
                    change,
                    member.event_member(),
                    member.user.clone(),
                    departure.after,
                );
                if emptied {
                    announcer.vacated(room.name());
                }
            }
            if emptied {
                self.remove(room);
            }
        });
        // An emptied room has nobody to tell.
        if gone.is_some() && !emptied {
            self.presence_changed(room);
        }
        if let (Some(member), Some(_)) = (&gone, &self.broker) {
            self.tell_presence(room, member, change, || None);
        }
        gone.is_some()
    }

    /// Takes an emptied room out of the registry, unless a new room of its
    /// name took its place already.
    fn remove(&self, room: &Arc<Room>) {
        let mut shard = self.shard(room.name());
        if shard.get(room.name()).is_some_and(|current| Arc::ptr_eq(&current.room, room)) {
            let entry = shard.remove(room.name());
            if let Some(opener) = entry.and_then(|entry| entry.opener) {
                self.quota.give_back(&opener);
            }
            self.count.fetch_sub(1, Ordering::Relaxed);
            if let Some(broker) = &self.broker {
                broker.room_closed(room.name());
            }
        }
    }

    /// Tells the broker of a member's change, with what to announce once
    /// it is recorded; a server alone announces an arrival itself (its
    /// departures are announced under the room's lock, in `leave`).
    fn tell_presence(
        &self,
        room: &Arc<Room>,
        member: &RoomMember,
        change: PresenceChange,
        after: impl FnOnce() -> Option<crate::room_event::Sequenced>,
    ) {
        let user = member.user.clone();
        match (&self.broker, &self.announcer) {
            (Some(broker), announcer) => {
                let announce = announcer.as_ref().map(|announcer| {
                    // Weak, so that a waiting announcement keeps no closed
                    // room alive.
                    let weak = Arc::downgrade(room);
                    let after = Box::new(move || weak.upgrade().and_then(|room| room.position()));
                    announcer.presence_to_announce(room.name(), change, member.event_member(), user, after)
                });
                broker.presence(room.name(), member.event_member(), change, announce);
            }
            (None, Some(announcer)) if change == PresenceChange::Joined => {
                announcer.member(room.name(), change, member.event_member(), user, after());
            }
            (None, _) => {}
        }
    }

    /// How presence is gathered and told.
    pub fn presence(&self) -> &PresencePolicy {
        &self.presence
    }

    /// Lists a room whose membership changed, for the next presence diff.
    pub fn presence_changed(&self, room: &Arc<Room>) {
        if room.queue_presence() {
            self.presence_due.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::downgrade(room));
        }
    }

    /// Has every room whose membership changed tell its members, each in
    /// one frame. Costs nothing for rooms where nothing happened.
    pub fn flush_presence(&self) {
        let due = std::mem::take(&mut *self.presence_due.lock().unwrap_or_else(PoisonError::into_inner));
        let later: Vec<Weak<Room>> = due
            .into_iter()
            .filter(|room| room.upgrade().is_some_and(|room| !room.flush_presence(&self.presence)))
            .collect();
        if !later.is_empty() {
            self.presence_due.lock().unwrap_or_else(PoisonError::into_inner).extend(later);
        }
    }

    /// How many rooms exist.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The quota of rooms a party may hold open.
    pub fn quota(&self) -> &RoomQuota {
        &self.quota
    }

    /// Whether no room exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
