//! The Lua scripts and their arguments: each script's `KEYS` and `ARGV` are
//! written here once, by name, in the order the script's header lists them,
//! so that no call site passes arguments by position.
//!
//! Every command is an `EVALSHA` of a script the link loaded when it
//! connected (Redis flushes its script cache only on a restart, which also
//! ends the link).

use std::sync::Arc;

use redis::{Cmd, Script};
use wtchat_core::receipts::Receipt;
use wtchat_core::room_event::{EventMember, RoomEvent, Snapshot};
use wtchat_protocol::PresenceChange;

use crate::feed;
use crate::keys::Keys;

/// The scripts, loaded into Redis on every new link, and what every
/// command of theirs is built with: the keys' names and how long a room's
/// history outlives its last message.
#[derive(Debug)]
pub struct Scripts {
    publish: Script,
    snapshot: Script,
    presence: Script,
    heartbeat: Script,
    reap: Script,
    listing: Script,
    /// The keys' names.
    pub keys: Keys,
    /// How long a room's history and numbering outlive its last message,
    /// in seconds.
    pub room_ttl_secs: u64,
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new(Keys::default(), ROOM_TTL_SECS)
    }
}

impl Scripts {
    /// The scripts, with keys named by `keys` and rooms kept for
    /// `room_ttl_secs` after their last message.
    pub fn new(keys: Keys, room_ttl_secs: u64) -> Self {
        Self {
            publish: Script::new(include_str!("lua/publish.lua")),
            snapshot: Script::new(include_str!("lua/snapshot.lua")),
            presence: Script::new(include_str!("lua/presence.lua")),
            heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
            reap: Script::new(include_str!("lua/reap.lua")),
            listing: Script::new(include_str!("lua/listing.lua")),
            keys,
            room_ttl_secs,
        }
    }

    /// Every script, to load.
    pub fn all(&self) -> [&Script; 6] {
        [&self.publish, &self.snapshot, &self.presence, &self.heartbeat, &self.reap, &self.listing]
    }
}

/// How long a room's history and numbering outlive its last message unless
/// the operator chose otherwise: a week.
pub const ROOM_TTL_SECS: u64 = 7 * 24 * 3600;

/// An epoch for a room that has none, below 2^53 so that JavaScript holds it
/// exactly.
pub fn new_epoch() -> u64 {
    fastrand::u64(1..1 << 53)
}

fn evalsha(script: &Script, keys: &[String]) -> Cmd {
    let mut command = redis::cmd("EVALSHA");
    command.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        command.arg(key);
    }
    command
}

/// `publish.lua`: numbers a message, keeps it in the history and
/// broadcasts it.
#[derive(Debug)]
pub struct PublishScript<'a> {
    /// The room.
    pub room: &'a str,
    /// The epoch the room takes if it has none.
    pub new_epoch: u64,
    /// How many messages the history keeps.
    pub history_len: usize,
    /// Who sent it.
    pub sender: &'a EventMember,
    /// When this server accepted it.
    pub sent_at_ms: u64,
    /// The text.
    pub body: &'a str,
    /// What the message is remembered under (a backend's idempotency key
    /// or a member's message id), if anything.
    pub receipt: Option<&'a Receipt>,
}

impl PublishScript<'_> {
    /// The command; Redis answers with the room's epoch, the message's
    /// number, and 1 when that number was an earlier publish's with the
    /// same receipt (0 otherwise).
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        let receipt = scripts.keys.room_receipt(self.room, self.receipt.map_or("", |r| r.key.as_str()));
        let mut command = evalsha(
            &scripts.publish,
            &[scripts.keys.room_meta(self.room), scripts.keys.room_history(self.room), receipt],
        );
        command
            .arg(scripts.keys.room_events(self.room))
            .arg(self.new_epoch)
            .arg(self.history_len)
            .arg(scripts.room_ttl_secs)
            .arg(feed::message_tail(self.sender, self.sent_at_ms, self.body))
            .arg(if self.receipt.is_some() { "1" } else { "0" })
            // Whole seconds, never 0, which Redis would refuse.
            .arg(self.receipt.map_or(1, |r| r.window.as_secs().max(1)));
        command
    }
}

/// `presence.lua`: records a member's arrival or departure at once, so that
/// a snapshot taken on any server lists who is here; the link announces it
/// with the rest of its interval's changes.
#[derive(Debug)]
pub struct PresenceScript<'a> {
    /// The room.
    pub room: &'a str,
    /// This server.
    pub node_id: u64,
    /// Who.
    pub member: &'a EventMember,
    /// What happened.
    pub change: PresenceChange,
}

/// What `presence.lua` and `reap.lua` answer first: how many members the
/// room has left on every server, and when (Redis's clock, in
/// microseconds), which orders the room's changes to the list of rooms.
pub type Headcount = (u64, u64);

impl PresenceScript<'_> {
    /// The command; its answer is a [`Headcount`].
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        let mut command = evalsha(
            &scripts.presence,
            &[scripts.keys.room_members(self.room), scripts.keys.room_node(self.room, self.node_id)],
        );
        command
            .arg(self.member.session_id)
            .arg(feed::member_record(self.node_id, &self.member.name))
            .arg(feed::presence_event(PresenceChange::Disconnected, self.member))
            .arg(if self.change == PresenceChange::Joined { "1" } else { "0" });
        command
    }
}

/// `listing.lua`: a room's change to the list of rooms with members, after
/// `presence.lua` or `reap.lua` made it in the room.
#[derive(Debug, Clone)]
pub struct ListingScript {
    /// The room.
    pub room: Arc<str>,
    /// What the room's script answered.
    pub headcount: Headcount,
}

/// How long a room taken off the list keeps its vacated mark: far longer
/// than any change can take to reach Redis.
const VACATED_MARK_SECS: u64 = 60;

impl ListingScript {
    /// The command.
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        let (members, version) = self.headcount;
        let mut command = evalsha(
            &scripts.listing,
            &[scripts.keys.rooms(), scripts.keys.room_versions(), scripts.keys.room_vacated(&self.room)],
        );
        command.arg(&*self.room).arg(version).arg(if members > 0 { "1" } else { "0" }).arg(VACATED_MARK_SECS);
        command
    }
}

/// `snapshot.lua`: what a server starts a room from.
#[derive(Debug)]
pub struct SnapshotScript<'a> {
    /// The room.
    pub room: &'a str,
    /// The epoch the room takes if it has none.
    pub new_epoch: u64,
    /// How many messages of history to read.
    pub history_len: usize,
}

/// What `snapshot.lua` answers: epoch, last number, history entries,
/// members hash as field/value pairs.
pub type SnapshotReply = (u64, u64, Vec<Vec<u8>>, Vec<Vec<u8>>);

impl SnapshotScript<'_> {
    /// The command; its answer is a [`SnapshotReply`].
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        snapshot_command(scripts, self.room, Some(self.new_epoch), self.history_len)
    }

    /// Reads the answer, skipping (and logging) entries that do not parse.
    pub fn decode(&self, reply: SnapshotReply) -> Snapshot {
        decode_snapshot(self.room, reply)
    }
}

/// `snapshot.lua` for `room`: taking `new_epoch` if the room has none, or
/// only reading when there is none to give.
fn snapshot_command(scripts: &Scripts, room: &str, new_epoch: Option<u64>, history_len: usize) -> Cmd {
    let mut command = evalsha(
        &scripts.snapshot,
        &[scripts.keys.room_meta(room), scripts.keys.room_history(room), scripts.keys.room_members(room)],
    );
    let epoch = new_epoch.map(|epoch| epoch.to_string()).unwrap_or_default();
    command.arg(epoch).arg(history_len).arg(scripts.room_ttl_secs);
    command
}

/// A snapshot's answer read, skipping (and logging) entries that do not
/// parse.
fn decode_snapshot(room: &str, (epoch, last_seq, history, members): SnapshotReply) -> Snapshot {
    let history: Vec<RoomEvent> = history
        .iter()
        .filter_map(|entry| match feed::parse(entry) {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(room, %error, "skipped a history entry");
                None
            }
        })
        .collect();
    let members = members.chunks_exact(2).filter_map(|pair| feed::parse_member(&pair[0], &pair[1])).collect();
    Snapshot { epoch, last_seq, history, members }
}

/// `snapshot.lua` as a read: what Redis holds of a room, without touching
/// it.
#[derive(Debug)]
pub struct PeekScript<'a> {
    /// The room.
    pub room: &'a str,
    /// How many messages of history to read.
    pub history_len: usize,
}

impl PeekScript<'_> {
    /// The command; its answer is a [`SnapshotReply`], or nil for a room
    /// Redis does not know.
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        snapshot_command(scripts, self.room, None, self.history_len)
    }

    /// Reads the answer.
    pub fn decode(&self, reply: Option<SnapshotReply>) -> Option<Snapshot> {
        reply.map(|reply| decode_snapshot(self.room, reply))
    }
}

/// `heartbeat.lua`: marks this server alive and hands it the dead servers
/// whose members it is to remove.
#[derive(Debug)]
pub struct HeartbeatScript {
    /// This server.
    pub node_id: u64,
    /// How long a server may be silent before it is dead.
    pub node_timeout_ms: u64,
}

impl HeartbeatScript {
    /// The command; Redis answers with the node ids of the dead servers
    /// handed to this one.
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        let mut command = evalsha(&scripts.heartbeat, &[scripts.keys.nodes(), scripts.keys.reaping()]);
        command.arg(self.node_id).arg(self.node_timeout_ms);
        command
    }
}

/// `reap.lua`: removes the members a dead server left in one room.
#[derive(Debug)]
pub struct ReapScript<'a> {
    /// The room.
    pub room: &'a str,
    /// The dead server.
    pub node_id: u64,
}

/// What `reap.lua` removed from one room.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// How many members the room has left, and when.
    pub headcount: Headcount,
    /// Each member removed.
    pub members: Vec<EventMember>,
}

impl ReapScript<'_> {
    /// The command; see [`ReapScript::decode`] for its answer.
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        let mut command = evalsha(
            &scripts.reap,
            &[scripts.keys.room_members(self.room), scripts.keys.room_node(self.room, self.node_id)],
        );
        command.arg(scripts.keys.room_events(self.room));
        command
    }

    /// Reads the script's answer: the headcount, then the departure events;
    /// one it cannot read is skipped (Redis holds what `feed.rs` wrote, so
    /// there is none).
    pub fn decode(reply: &[redis::Value]) -> Reaped {
        let number = |index: usize| reply.get(index).and_then(|value| redis::from_redis_value(value).ok());
        let mut reaped = Reaped {
            headcount: (number(0).unwrap_or(u64::MAX), number(1).unwrap_or(0)),
            members: Vec::new(),
        };
        for event in reply.iter().skip(2) {
            let event: Vec<u8> = redis::from_redis_value(event).unwrap_or_default();
            if let Ok(RoomEvent::Presence { member, .. }) = feed::parse(&event) {
                reaped.members.push(member);
            }
        }
        reaped
    }
}
