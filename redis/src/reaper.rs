//! Removing what a server left in Redis when it died (or when it closed
//! its sessions after losing its link): its members, room by room, each
//! departure announced once, and each room's change to the list of rooms.
//!
//! The heartbeat hands each dead server to one live one (`heartbeat.lua`),
//! which reads the rooms the dead server had members in from its own set
//! and runs `reap.lua` in each room's slot, so that this works the same on
//! one Redis and on a Redis Cluster.

use std::sync::{Arc, Weak};

use redis::Value;
use redis::aio::ConnectionLike;
use wtchat_core::broker::BrokerHost;

use crate::pipeline;
use crate::scripts::{ListingScript, ReapScript, Scripts};

/// Removes server `node_id`'s members from every room it recorded them in,
/// tells the host of each (which announces them), and forgets the server's
/// rooms; returns how many members it removed.
pub(crate) async fn reap(
    node_id: u64,
    scripts: &Scripts,
    connection: &mut impl ConnectionLike,
    host: &Weak<dyn BrokerHost>,
) -> redis::RedisResult<usize> {
    let node_rooms = scripts.keys.node_rooms(node_id);
    let rooms: Vec<String> = redis::cmd("SMEMBERS").arg(&node_rooms).query_async(connection).await?;
    let mut removed = 0;
    if !rooms.is_empty() {
        let mut scripts_run = redis::pipe();
        for room in &rooms {
            scripts_run.add_command(ReapScript { room, node_id }.command(scripts));
        }
        let replies = connection.req_packed_commands(&scripts_run, 0, rooms.len()).await?;
        let mut listings = Vec::with_capacity(rooms.len());
        for (room, reply) in rooms.into_iter().zip(replies) {
            let Value::Array(reply) = reply else {
                tracing::warn!(?reply, room, "Redis refused to remove a dead server's members");
                continue;
            };
            let reaped = ReapScript::decode(&reply);
            let room: Arc<str> = Arc::from(room);
            let (members_left, _) = reaped.headcount;
            let count = reaped.members.len();
            if let Some(host) = host.upgrade() {
                // Each departure is told with the count it left behind, so
                // that only the last one vacates the room.
                for (index, member) in reaped.members.into_iter().enumerate() {
                    host.reaped(&room, member, members_left + (count - 1 - index) as u64);
                }
            }
            removed += count;
            listings.push(ListingScript { room, headcount: reaped.headcount });
        }
        pipeline::list(listings, connection, scripts).await?;
    }
    let () = redis::cmd("DEL").arg(&node_rooms).query_async(connection).await?;
    Ok(removed)
}
