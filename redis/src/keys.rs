//! Every key and channel wtchat uses in Redis, named here and nowhere else
//! (under `redis_key_prefix`, `wtchat:` by default, as the table shows):
//! the Lua scripts receive them as `KEYS` and `ARGV`, and never build one
//! themselves.
//!
//! The braces are Redis Cluster hash tags: every key of one room hashes to
//! the room's slot, and the keys of the list of rooms and of the servers'
//! liveness share one slot each, so that no script touches keys of two
//! slots (a single Redis ignores them).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `wtchat:room:{r}:meta` | hash | `epoch` and the last `seq` |
//! | `wtchat:room:{r}:history` | stream | the last `history_len` messages, entry id `{seq}-1` |
//! | `wtchat:room:{r}:members` | hash | session id → member record (`feed::member_record`) |
//! | `wtchat:room:{r}:node:{n}` | hash | session id → the departure to announce if server `{n}` dies |
//! | `wtchat:room:{r}:events` | channel | the room's feed (`feed.rs`) |
//! | `wtchat:room:{r}:receipt:{k}` | string | `{epoch} {seq}` of the publish made with receipt key `{k}` (`a:` and a backend's idempotency key, for 10 minutes; a member's message id, for 2 minutes) |
//! | `wtchat:{rooms}` | sorted set | the name of every room with members on any server (score 0, so names page in order) |
//! | `wtchat:{rooms}:versions` | hash | room → when its entry in the list last changed (Redis's clock, µs) |
//! | `wtchat:{rooms}:vacated:{r}` | string | when room `{r}` left the list, for a minute, so that an older change arriving late cannot bring it back |
//! | `wtchat:control` | channel | orders for every server (`control.rs`) |
//! | `wtchat:node:{n}:rooms` | set | the rooms where server `{n}` has recorded members |
//! | `wtchat:{nodes}` | sorted set | node id → when it was last heard of (Redis's clock) |
//! | `wtchat:{nodes}:reaping` | sorted set | node id → when a server took on removing that dead server's members |
//! | `wtchat:{nodes}:ids` | counter | hands out node ids |

use std::sync::Arc;

/// What every key starts with unless the operator chose another prefix.
pub const DEFAULT_PREFIX: &str = "wtchat:";

/// The names of the keys and channels, under one prefix (so that several
/// deployments, or other applications, can share a Redis).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: Arc<str>,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self { prefix: Arc::from(prefix) }
    }

    /// A key of room `room`, in its slot.
    fn room(&self, room: &str, what: &str) -> String {
        format!("{}room:{{{room}}}:{what}", self.prefix)
    }

    /// A room's meta hash.
    pub fn room_meta(&self, room: &str) -> String {
        self.room(room, "meta")
    }

    /// A room's history stream.
    pub fn room_history(&self, room: &str) -> String {
        self.room(room, "history")
    }

    /// A room's members hash.
    pub fn room_members(&self, room: &str) -> String {
        self.room(room, "members")
    }

    /// What a room holds of one server's members: the departures to
    /// announce if it dies.
    pub fn room_node(&self, room: &str, node_id: u64) -> String {
        self.room(room, &format!("node:{node_id}"))
    }

    /// What a post to a room with an idempotency key got.
    pub fn room_receipt(&self, room: &str, key: &str) -> String {
        self.room(room, &format!("receipt:{key}"))
    }

    /// A room's feed channel.
    pub fn room_events(&self, room: &str) -> String {
        self.room(room, "events")
    }

    /// The room whose feed a channel is, if it is one.
    pub fn room_of_events<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(&*self.prefix)?.strip_prefix("room:{")?.strip_suffix("}:events")
    }

    /// The rooms with members on any server.
    pub fn rooms(&self) -> String {
        format!("{}{{rooms}}", self.prefix)
    }

    /// When each listed room's entry last changed.
    pub fn room_versions(&self) -> String {
        format!("{}{{rooms}}:versions", self.prefix)
    }

    /// When a room left the list, for a while.
    pub fn room_vacated(&self, room: &str) -> String {
        format!("{}{{rooms}}:vacated:{room}", self.prefix)
    }

    /// The channel of orders for every server.
    pub fn control(&self) -> String {
        format!("{}control", self.prefix)
    }

    /// The rooms where a server has recorded members.
    pub fn node_rooms(&self, node_id: u64) -> String {
        format!("{}node:{{{node_id}}}:rooms", self.prefix)
    }

    /// The sorted set of live nodes.
    pub fn nodes(&self) -> String {
        format!("{}{{nodes}}", self.prefix)
    }

    /// The dead nodes whose members a server is removing.
    pub fn reaping(&self) -> String {
        format!("{}{{nodes}}:reaping", self.prefix)
    }

    /// The counter that hands out node ids.
    pub fn node_ids(&self) -> String {
        format!("{}{{nodes}}:ids", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_channel_names_its_room() {
        let keys = Keys::default();
        assert_eq!(keys.room_of_events(&keys.room_events("team:a b")), Some("team:a b"));
        assert_eq!(keys.room_of_events(&keys.room_members("x")), None);
        assert_eq!(keys.node_rooms(7), "wtchat:node:{7}:rooms");
        let other = Keys::new("app2:chat:");
        assert_eq!(other.room_members("x"), "app2:chat:room:{x}:members");
        assert_eq!(
            keys.room_of_events(&other.room_events("x")),
            None,
            "another prefix's channel is not ours"
        );
    }
}
