//! The rooms with members on any server, as the server API lists them:
//! names from the `wtchat:rooms` sorted set (kept by `presence.lua` and
//! `heartbeat.lua` as rooms gain their first member and lose their last),
//! in name order, and each room's members on every server.

use std::sync::Arc;

use redis::aio::ConnectionLike;

use crate::keys::Keys;

use wtchat_core::broker::RoomCounts;

/// The rooms after `after` (all from the first when it is empty), at most
/// `limit`, with their member counts: one read of the names, one pipeline
/// of counts.
pub async fn page(
    keys: &Keys,
    connection: &mut impl ConnectionLike,
    after: &str,
    limit: usize,
) -> redis::RedisResult<RoomCounts> {
    let from = if after.is_empty() { "-".to_owned() } else { format!("({after}") };
    let names: Vec<String> = redis::cmd("ZRANGEBYLEX")
        .arg(keys.rooms())
        .arg(from)
        .arg("+")
        .arg("LIMIT")
        .arg(0)
        .arg(limit)
        .query_async(connection)
        .await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut counts = redis::pipe();
    for name in &names {
        counts.cmd("HLEN").arg(keys.room_members(name));
    }
    let counts: Vec<u64> = counts.query_async(connection).await?;
    Ok(names.into_iter().map(Arc::from).zip(counts).collect())
}
