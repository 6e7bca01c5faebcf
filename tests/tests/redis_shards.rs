//! Rooms spread over several Redis (client-side sharding): each room on one
//! of them by a stable hash of its name, every server agreeing. One order
//! per room, presence and resume across servers work as with one Redis,
//! the room list spans the shards, a shard paused for longer than the link
//! timeout but within the grace closes no session and loses no message, and
//! a shard that goes down closes the members of its own rooms only.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use wtchat_protocol::{ErrorCode, ReasonCode, Resume, ServerMessage};
use wtchat_redis::keys::Keys;
use wtchat_redis::shard::shard_of;
use wtchat_tests::binary::Binary;
use wtchat_tests::cross_server::{
    both_join, both_see_one_order, check, publish_through, resuming_gets_what_was_missed, until_body,
};
use wtchat_tests::redis::RedisServer;
use wtchat_tests::server::eventually_async;
use wtchat_tests::{http_get, metric, scrape_metrics};

const KEY: &str = "the backend's API key that is long enough";

/// `shards` Redis and `servers` wtchat servers given all of them.
async fn sharded(shards: usize, servers: usize, extra: &[&str]) -> Result<(Vec<RedisServer>, Vec<Binary>)> {
    let redis: Vec<RedisServer> = (0..shards).map(|_| RedisServer::start()).collect::<Result<_>>()?;
    let urls = redis.iter().map(RedisServer::url).collect::<Vec<_>>().join(",");
    let mut flags = vec!["--api-keys", KEY];
    flags.extend_from_slice(extra);
    let started = Binary::start_sharing(servers, &urls, &flags).await?;
    Ok((redis, started))
}

/// A room name for each of `count` shards.
fn one_room_per_shard(count: usize) -> Vec<String> {
    (0..count)
        .map(|shard| {
            (0..).map(|n| format!("room-{n}")).find(|room| shard_of(room, count) == shard).unwrap_or_default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_over_three_redis_keep_one_order_presence_and_resume_across_servers() -> Result<()> {
    let (redis, servers) = sharded(3, 2, &[]).await?;
    let rooms = one_room_per_shard(3);
    let mut ann = servers[0].ws().await?;
    let mut bob = servers[1].wt().await?;
    let epochs = both_join(&mut ann, &mut bob, &rooms).await?;
    // Each room lives in its own Redis, and only there.
    let keys = Keys::default();
    for (shard, store) in redis.iter().enumerate() {
        let mut connection = redis::Client::open(store.url())?.get_connection()?;
        for (index, room) in rooms.iter().enumerate() {
            let held: bool = redis::cmd("EXISTS").arg(keys.room_meta(room)).query(&mut connection)?;
            ensure!(held == (index == shard), "{room} in Redis {shard}: {held}");
        }
    }
    both_see_one_order(&mut ann, &mut bob, &rooms, 3).await?;
    // The room list spans the shards.
    let bearer = format!("Bearer {KEY}");
    let (_, listed) = http_get(servers[0].address, "/api/rooms", &[("Authorization", &bearer)]).await?;
    let listed: Value = serde_json::from_str(&listed)?;
    let names: Vec<&str> =
        listed["rooms"].as_array().into_iter().flatten().filter_map(|r| r["room"].as_str()).collect();
    let mut expected: Vec<&str> = rooms.iter().map(String::as_str).collect();
    expected.sort_unstable();
    ensure!(names == expected, "{listed}");
    // Ann leaves; Bob goes on in the last room; Ann resumes it on the other
    // server and gets exactly what she missed.
    ann.vanish();
    let last = rooms.last().context("a room")?;
    let resume = Resume { epoch: epochs[2], last_seq: 6 };
    resuming_gets_what_was_missed(&mut bob, &servers[1], last, resume).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_that_goes_down_closes_the_members_of_its_own_rooms_only() -> Result<()> {
    let extra = ["--redis-node-timeout-ms", "3000", "--redis-grace-ms", "1000"];
    let (mut redis, servers) = sharded(2, 1, &extra).await?;
    let rooms = one_room_per_shard(2);
    let mut ann = servers[0].ws().await?;
    ann.join(&rooms[0], "Ann").await?;
    let mut carl = servers[0].ws().await?;
    carl.join(&rooms[1], "Carl").await?;
    redis[1].kill();
    let (notice, code) = carl.until_closed().await?;
    ensure!(
        notice.is_some_and(|n| n.code == ReasonCode::BROKER_UNAVAILABLE)
            && code == Some(ReasonCode::BROKER_UNAVAILABLE.0)
    );
    // The home shard's rooms go on, and new sessions are admitted.
    ann.publish(&rooms[0], "still here").await?;
    ensure!(ann.chat(1).await?[0].body == "still here");
    let mut dana = servers[0].ws().await?;
    dana.join(&rooms[0], "Dana").await?;
    let id = dana
        .send(wtchat_protocol::ClientMessage::Join {
            room: rooms[1].clone(),
            display_name: "Dana".into(),
            resume: None,
        })
        .await?;
    let refused = dana
        .until(|message| match message {
            ServerMessage::Error(error) => Some((error.request_id, error.code)),
            _ => None,
        })
        .await?;
    ensure!(refused == (Some(id), ErrorCode::BROKER_UNAVAILABLE), "{refused:?}");
    let scrape = scrape_metrics(servers[0].address).await?;
    ensure!(metric(&scrape, "wtchat_broker_shard_available{shard=\"0\"}") == Some(1.0));
    ensure!(metric(&scrape, "wtchat_broker_shard_available{shard=\"1\"}") == Some(0.0));
    servers[0].wait_health(200).await?;
    // The shard comes back (empty) and its rooms serve again.
    redis[1].restart()?;
    let address = servers[0].address;
    eventually_async(Duration::from_secs(15), || async move {
        let scrape = scrape_metrics(address).await.unwrap_or_default();
        metric(&scrape, "wtchat_broker_shard_available{shard=\"1\"}") == Some(1.0)
    })
    .await?;
    let mut carl = servers[0].ws().await?;
    carl.join(&rooms[1], "Carl").await?;
    carl.publish(&rooms[1], "back").await?;
    ensure!(carl.chat(1).await?[0].body == "back");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_paused_within_the_grace_closes_no_session_and_loses_no_message() -> Result<()> {
    let extra =
        ["--redis-node-timeout-ms", "16000", "--redis-grace-ms", "8000", "--publish-rate-per-sec", "100"];
    let (redis, servers) = sharded(2, 2, &extra).await?;
    // The room the publisher uses, on whichever shard holds it, and a room
    // on the other shard, which must not notice.
    let held_by = shard_of("hall", 2);
    let elsewhere = one_room_per_shard(2).swap_remove(1 - held_by);
    let mut ann = servers[0].ws().await?;
    ann.join("hall", "Ann").await?;
    let mut bob = servers[1].ws().await?;
    bob.join("hall", "Bob").await?;
    let mut carl = servers[0].ws().await?;
    carl.join(&elsewhere, "Carl").await?;
    let mut publisher = servers[1].ws().await?;
    publisher.join("hall", "Pub").await?;
    let sent = 70;
    let blip = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis[held_by].pause()?;
        // Meanwhile the other shard's rooms go on.
        carl.publish(&elsewhere, "unaffected").await?;
        ensure!(carl.chat(1).await?[0].body == "unaffected");
        tokio::time::sleep(Duration::from_secs(4)).await;
        redis[held_by].resume()
    };
    let (refused, heard) = publish_through(&mut publisher, &servers, sent, blip).await?;
    ensure!(!refused.is_empty(), "publishes to the paused shard's room are refused");
    let (ann_seen, bob_seen) = tokio::try_join!(until_body(&mut ann, "end"), until_body(&mut bob, "end"))?;
    check(&[ann_seen, bob_seen, heard], sent, &refused)?;
    Ok(())
}
