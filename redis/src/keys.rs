//! Every key and channel wtchat uses in Redis, named here and nowhere else
//! (under `redis_key_prefix`, `wtchat:` by default, as the table shows):
//! the Lua scripts receive them as `KEYS` and `ARGV` (or, for a dead
//! server's leftovers, inside records written by `feed.rs`), and never
//! build one themselves.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `wtchat:room:{r}:meta` | hash | `epoch` and the last `seq` |
//! | `wtchat:room:{r}:history` | stream | the last `history_len` messages, entry id `{seq}-1` |
//! | `wtchat:room:{r}:members` | hash | session id → member record (`feed::member_record`) |
//! | `wtchat:room:{r}:events` | channel | the room's feed (`feed.rs`) |
//! | `wtchat:room:{r}:receipt:{k}` | string | `{epoch} {seq}` of the post made with idempotency key `{k}`, for 10 minutes |
//! | `wtchat:rooms` | sorted set | the name of every room with members on any server (score 0, so names page in order) |
//! | `wtchat:control` | channel | orders for every server (`control.rs`) |
//! | `wtchat:node:{n}` | hash | node field → reap record (`feed::reap_record`): what to remove if `{n}` dies |
//! | `wtchat:nodes` | sorted set | node id → when it was last heard of (Redis's clock) |
//! | `wtchat:node-ids` | counter | hands out node ids |

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

    /// A room's meta hash.
    pub fn room_meta(&self, room: &str) -> String {
        format!("{}room:{room}:meta", self.prefix)
    }

    /// A room's history stream.
    pub fn room_history(&self, room: &str) -> String {
        format!("{}room:{room}:history", self.prefix)
    }

    /// A room's members hash.
    pub fn room_members(&self, room: &str) -> String {
        format!("{}room:{room}:members", self.prefix)
    }

    /// The room whose members hash a key is, if it is one.
    pub fn room_of_members<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&*self.prefix)?.strip_prefix("room:")?.strip_suffix(":members")
    }

    /// What a post to a room with an idempotency key got.
    pub fn room_receipt(&self, room: &str, key: &str) -> String {
        format!("{}room:{room}:receipt:{key}", self.prefix)
    }

    /// A room's feed channel.
    pub fn room_events(&self, room: &str) -> String {
        format!("{}room:{room}:events", self.prefix)
    }

    /// The rooms with members on any server.
    pub fn rooms(&self) -> String {
        format!("{}rooms", self.prefix)
    }

    /// The channel of orders for every server.
    pub fn control(&self) -> String {
        format!("{}control", self.prefix)
    }

    /// The room whose feed a channel is, if it is one.
    pub fn room_of_events<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(&*self.prefix)?.strip_prefix("room:")?.strip_suffix(":events")
    }

    /// What a node's hash is named after: the prefix, then the node id.
    pub fn node_prefix(&self) -> String {
        format!("{}node:", self.prefix)
    }

    /// A node's hash of what it leaves behind if it dies.
    pub fn node(&self, node_id: u64) -> String {
        format!("{}{node_id}", self.node_prefix())
    }

    /// The sorted set of live nodes.
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// The counter that hands out node ids.
    pub fn node_ids(&self) -> String {
        format!("{}node-ids", self.prefix)
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
        assert_eq!(keys.node(7), "wtchat:node:7");
        let other = Keys::new("app2:chat:");
        assert_eq!(other.room_members("x"), "app2:chat:room:x:members");
        assert_eq!(
            keys.room_of_events(&other.room_events("x")),
            None,
            "another prefix's channel is not ours"
        );
    }
}
