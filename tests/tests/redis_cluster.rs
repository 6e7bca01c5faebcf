//! Rooms in a Redis Cluster (`redis_cluster`): three masters made with
//! `redis-cli --cluster create`, each room's keys in its own slot. One
//! order per room, presence, resume and the room list work across servers
//! as with one Redis, and a failover of the master that holds a room, or
//! the move of its slot to another master, while a publisher keeps sending,
//! closes no session and loses no message.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use wtchat_protocol::{PresenceChange, Resume};
use wtchat_redis::keys::Keys;
use wtchat_tests::binary::Binary;
use wtchat_tests::cross_server::{
    both_join, both_see_one_order, check, publish_through, resuming_gets_what_was_missed, until_body,
};
use wtchat_tests::redis_cluster::RedisCluster;
use wtchat_tests::{http_get, metric, scrape_metrics};

const KEY: &str = "the backend's API key that is long enough";

async fn servers(cluster: &RedisCluster, count: usize, extra: &[&str]) -> Result<Vec<Binary>> {
    let mut flags = vec!["--redis-cluster", "--api-keys", KEY];
    flags.extend_from_slice(extra);
    Binary::start_sharing(count, &cluster.seeds(), &flags).await
}

/// A room whose keys live on each of the cluster's first `masters` nodes.
fn one_room_per_master(cluster: &RedisCluster, masters: usize) -> Result<Vec<String>> {
    let keys = Keys::default();
    (0..masters)
        .map(|master| {
            (0..200)
                .map(|n| format!("room-{n}"))
                .find(|room| cluster.master_of(&keys.room_meta(room)).ok() == Some(master))
                .context("no room name lands on a master")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_in_a_redis_cluster_keep_one_order_presence_and_resume_across_servers() -> Result<()> {
    let cluster = RedisCluster::start(3, 0)?;
    let servers = servers(&cluster, 2, &[]).await?;
    let rooms = one_room_per_master(&cluster, 3)?;
    let mut ann = servers[0].ws().await?;
    let mut bob = servers[1].wt().await?;
    let epochs = both_join(&mut ann, &mut bob, &rooms).await?;
    // Each room's keys are on its own master, together.
    let keys = Keys::default();
    for (master, room) in rooms.iter().enumerate() {
        for key in [keys.room_meta(room), keys.room_members(room)] {
            let held: bool = cluster.nodes[master].query(&["EXISTS", &key])?;
            ensure!(held, "{key} is not on master {master}");
        }
    }
    both_see_one_order(&mut ann, &mut bob, &rooms, 3).await?;
    // The room list, kept in a slot of its own, names every room with its
    // members on both servers.
    let bearer = format!("Bearer {KEY}");
    let (_, listed) = http_get(servers[0].address, "/api/rooms", &[("Authorization", &bearer)]).await?;
    let listed: Value = serde_json::from_str(&listed)?;
    let entries: Vec<(&str, u64)> = listed["rooms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["room"].as_str()?, r["member_count"].as_u64()?)))
        .collect();
    let mut expected: Vec<(&str, u64)> = rooms.iter().map(|room| (room.as_str(), 2)).collect();
    expected.sort_unstable();
    ensure!(entries == expected, "{listed}");
    // Ann leaves; Bob goes on in the last room; Ann resumes it on the other
    // server and gets exactly what she missed, and Bob sees her go.
    ann.vanish();
    let last = rooms.last().context("a room")?;
    bob.until_presence(|change| {
        (change.member.name == "Ann" && change.change != PresenceChange::Joined).then_some(())
    })
    .await?;
    let resume = Resume { epoch: epochs[2], last_seq: 6 };
    resuming_gets_what_was_missed(&mut bob, &servers[1], last, resume).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_rooms_master_closes_no_session_and_loses_no_message() -> Result<()> {
    let mut cluster = RedisCluster::start(3, 1)?;
    let flags =
        ["--redis-node-timeout-ms", "16000", "--redis-grace-ms", "8000", "--publish-rate-per-sec", "100"];
    let servers = servers(&cluster, 2, &flags).await?;
    let mut ann = servers[0].ws().await?;
    ann.join("hall", "Ann").await?;
    let mut bob = servers[1].wt().await?;
    bob.join("hall", "Bob").await?;
    let mut publisher = servers[1].ws().await?;
    publisher.join("hall", "Pub").await?;
    let master = cluster.master_of(&Keys::default().room_meta("hall"))?;
    let sent = 60;
    // The master holding the room crashes; its replica takes over once the
    // cluster agrees it is gone (about twice the node timeout).
    let failover = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.nodes[master].kill();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while cluster.master_of(&Keys::default().room_meta("hall")).is_ok_and(|now| now == master) {
            ensure!(tokio::time::Instant::now() < deadline, "no replica took over the room's slot");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    };
    let (refused, heard) = publish_through(&mut publisher, &servers, sent, failover).await?;
    ensure!(!refused.is_empty(), "publishes while the room had no master are refused");
    let (ann_seen, bob_seen) = tokio::try_join!(until_body(&mut ann, "end"), until_body(&mut bob, "end"))?;
    check(&[ann_seen, bob_seen, heard], sent, &refused)?;
    // The publisher's server had commands for the lost master, so its link
    // failed and came back; the other may not have needed that master.
    let scrape = scrape_metrics(servers[1].address).await?;
    ensure!(metric(&scrape, "wtchat_broker_link_losses_total").is_some_and(|n| n >= 1.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_rooms_slot_to_another_master_closes_no_session_and_loses_no_message() -> Result<()> {
    let cluster = RedisCluster::start(3, 0)?;
    let flags =
        ["--redis-node-timeout-ms", "16000", "--redis-grace-ms", "8000", "--publish-rate-per-sec", "100"];
    let servers = servers(&cluster, 2, &flags).await?;
    let mut ann = servers[0].wt().await?;
    ann.join("hall", "Ann").await?;
    let mut bob = servers[1].ws().await?;
    bob.join("hall", "Bob").await?;
    let mut publisher = servers[1].ws().await?;
    publisher.join("hall", "Pub").await?;
    let meta = Keys::default().room_meta("hall");
    let from = cluster.master_of(&meta)?;
    let to = (from + 1) % 3;
    let sent = 40;
    let migration = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tokio::task::block_in_place(|| cluster.migrate_slot_of(&meta, to))
    };
    let (refused, heard) = publish_through(&mut publisher, &servers, sent, migration).await?;
    let (ann_seen, bob_seen) = tokio::try_join!(until_body(&mut ann, "end"), until_body(&mut bob, "end"))?;
    check(&[ann_seen, bob_seen, heard], sent, &refused)?;
    ensure!(cluster.master_of(&meta)? == to, "the slot moved");
    let held: bool = cluster.nodes[to].query(&["EXISTS", &meta])?;
    ensure!(held, "the room's keys moved with it");
    // The publisher's server was redirected, which it takes as a lost link
    // and comes back from with the new owner.
    let scrape = scrape_metrics(servers[1].address).await?;
    ensure!(metric(&scrape, "wtchat_broker_link_losses_total").is_some_and(|n| n >= 1.0));
    Ok(())
}
