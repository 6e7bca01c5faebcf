//! The Lua scripts and their arguments: each script's `KEYS` and `ARGV` are
//! written here once, by name, in the order the script's header lists them,
//! so that no call site passes arguments by position.
//!
//! Every command is an `EVALSHA` of a script the link loaded when it
//! connected (Redis flushes its script cache only on a restart, which also
//! ends the link).

use std::sync::Arc;

use redis::{Cmd, Script};
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
            keys,
            room_ttl_secs,
        }
    }

    /// Every script, to load.
    pub fn all(&self) -> [&Script; 4] {
        [&self.publish, &self.snapshot, &self.presence, &self.heartbeat]
    }
}

/// How long a room's history and numbering outlive its last message unless
/// the operator chose otherwise: a week.
pub const ROOM_TTL_SECS: u64 = 7 * 24 * 3600;

/// How long a post's idempotency key is remembered: as long as a server
/// alone remembers one (`wtchat_core::receipts::WINDOW`).
pub const RECEIPT_TTL_SECS: u64 = wtchat_core::receipts::WINDOW.as_secs();

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
    /// The post's idempotency key, if it has one.
    pub receipt: Option<&'a str>,
}

impl PublishScript<'_> {
    /// The command; Redis answers with the room's epoch and the message's
    /// number.
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        let receipt = scripts.keys.room_receipt(self.room, self.receipt.unwrap_or_default());
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
            .arg(RECEIPT_TTL_SECS);
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

impl PresenceScript<'_> {
    /// The command.
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        let mut command = evalsha(
            &scripts.presence,
            &[scripts.keys.room_members(self.room), scripts.keys.node(self.node_id), scripts.keys.rooms()],
        );
        command
            .arg(self.member.session_id)
            .arg(feed::member_record(self.node_id, &self.member.name))
            .arg(feed::node_field(self.room, self.member.session_id))
            .arg(feed::reap_record(&scripts.keys, self.room, self.member))
            .arg(if self.change == PresenceChange::Joined { "1" } else { "0" })
            .arg(self.room);
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

/// `heartbeat.lua`: marks this server alive and removes the members of the
/// silent ones.
#[derive(Debug)]
pub struct HeartbeatScript {
    /// This server.
    pub node_id: u64,
    /// How long a server may be silent before it is dead.
    pub node_timeout_ms: u64,
    /// Whether to first remove this server's own leftovers.
    pub reap_self: bool,
}

/// What `heartbeat.lua` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// How many servers it found dead.
    pub servers: u64,
    /// Each member removed: the room, the member, and how many members the
    /// room has left on every server.
    pub members: Vec<(Arc<str>, EventMember, u64)>,
}

impl HeartbeatScript {
    /// Reads the script's answer; a removal it cannot read is skipped
    /// (Redis wrote what `feed.rs` wrote, so there is none).
    pub fn decode(&self, scripts: &Scripts, reply: &[redis::Value]) -> Reaped {
        let mut reaped = Reaped::default();
        let Some((servers, removed)) = reply.split_first() else { return reaped };
        reaped.servers = redis::from_redis_value(servers).unwrap_or(0);
        for removal in removed.chunks_exact(3) {
            let key: Vec<u8> = redis::from_redis_value(&removal[0]).unwrap_or_default();
            let event: Vec<u8> = redis::from_redis_value(&removal[1]).unwrap_or_default();
            let left: u64 = redis::from_redis_value(&removal[2]).unwrap_or(u64::MAX);
            let room = std::str::from_utf8(&key).ok().and_then(|key| scripts.keys.room_of_members(key));
            if let (Some(room), Ok(RoomEvent::Presence { member, .. })) = (room, feed::parse(&event)) {
                reaped.members.push((Arc::from(room), member, left));
            }
        }
        reaped
    }

    /// The command; Redis answers with how many servers it found dead,
    /// then what it removed (see [`HeartbeatScript::decode`]).
    pub fn command(&self, scripts: &Scripts) -> Cmd {
        let mut command = evalsha(&scripts.heartbeat, &[scripts.keys.nodes()]);
        command
            .arg(self.node_id)
            .arg(self.node_timeout_ms)
            .arg(if self.reap_self { "1" } else { "0" })
            .arg(scripts.keys.node_prefix())
            .arg(scripts.keys.rooms());
        command
    }
}
