//! Every key and channel wtchat uses in Redis, named here and nowhere else:
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

/// What every key starts with.
const PREFIX: &str = "wtchat:";

/// A room's meta hash.
pub fn room_meta(room: &str) -> String {
    format!("{PREFIX}room:{room}:meta")
}

/// A room's history stream.
pub fn room_history(room: &str) -> String {
    format!("{PREFIX}room:{room}:history")
}

/// A room's members hash.
pub fn room_members(room: &str) -> String {
    format!("{PREFIX}room:{room}:members")
}

/// The room whose members hash a key is, if it is one.
pub fn room_of_members(key: &str) -> Option<&str> {
    key.strip_prefix(PREFIX)?.strip_prefix("room:")?.strip_suffix(":members")
}

/// What a post to a room with an idempotency key got.
pub fn room_receipt(room: &str, key: &str) -> String {
    format!("{PREFIX}room:{room}:receipt:{key}")
}

/// A room's feed channel.
pub fn room_events(room: &str) -> String {
    format!("{PREFIX}room:{room}:events")
}

/// The rooms with members on any server.
pub fn rooms() -> String {
    format!("{PREFIX}rooms")
}

/// The channel of orders for every server.
pub fn control() -> String {
    format!("{PREFIX}control")
}

/// The room whose feed a channel is, if it is one.
pub fn room_of_events(channel: &str) -> Option<&str> {
    channel.strip_prefix(PREFIX)?.strip_prefix("room:")?.strip_suffix(":events")
}

/// What a node's hash is named after: the prefix, then the node id.
pub fn node_prefix() -> String {
    format!("{PREFIX}node:")
}

/// A node's hash of what it leaves behind if it dies.
pub fn node(node_id: u64) -> String {
    format!("{}{node_id}", node_prefix())
}

/// The sorted set of live nodes.
pub fn nodes() -> String {
    format!("{PREFIX}nodes")
}

/// The counter that hands out node ids.
pub fn node_ids() -> String {
    format!("{PREFIX}node-ids")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_channel_names_its_room() {
        assert_eq!(room_of_events(&room_events("team:a b")), Some("team:a b"));
        assert_eq!(room_of_events(&room_members("x")), None);
        assert_eq!(node(7), "wtchat:node:7");
    }
}
