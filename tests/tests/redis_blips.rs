//! Blips of the Redis that servers share, while a publisher keeps sending:
//! a Redis paused for longer than the link's timeout, and every server's
//! connection killed, are absorbed within the grace: no session closes,
//! publishes in the outage are refused (never accepted and lost), and
//! every member ends with every accepted message exactly once, in one
//! order. A Redis that comes back empty takes the resume path, which tells
//! members of the gap.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use wtchat_protocol::{ReasonCode, Resume};
use wtchat_tests::binary::Binary;
use wtchat_tests::cross_server::{check, publish_through, until_body};
use wtchat_tests::redis::RedisServer;
use wtchat_tests::{metric, scrape_metrics};

/// Redis and two servers with a grace longer than the blips below.
async fn cluster() -> Result<(RedisServer, Vec<Binary>)> {
    let redis = RedisServer::start()?;
    let flags =
        ["--redis-node-timeout-ms", "16000", "--redis-grace-ms", "8000", "--publish-rate-per-sec", "100"];
    let servers = Binary::start_sharing(2, &redis.url(), &flags).await?;
    Ok((redis, servers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_paused_past_the_link_timeout_closes_no_session_and_loses_no_message() -> Result<()> {
    let (redis, servers) = cluster().await?;
    let mut ann = servers[0].ws().await?;
    ann.join("hall", "Ann").await?;
    let mut bob = servers[1].wt().await?;
    bob.join("hall", "Bob").await?;
    let mut publisher = servers[1].ws().await?;
    publisher.join("hall", "Pub").await?;
    let sent = 70;
    // Paused for 4 s, twice the link's 2 s timeout.
    let blip = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis.pause()?;
        tokio::time::sleep(Duration::from_secs(4)).await;
        redis.resume()
    };
    let (refused, heard) = publish_through(&mut publisher, &servers, sent, blip).await?;
    ensure!(!refused.is_empty(), "publishes during the pause are refused");
    let (ann_seen, bob_seen) = tokio::try_join!(until_body(&mut ann, "end"), until_body(&mut bob, "end"))?;
    check(&[ann_seen, bob_seen, heard], sent, &refused)?;
    let mut losses = 0.0;
    for server in &servers {
        losses +=
            metric(&scrape_metrics(server.address).await?, "wtchat_broker_link_losses_total").unwrap_or(0.0);
    }
    ensure!(losses >= 1.0, "the pause was long enough to lose a link");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_under_the_servers_close_no_session_and_lose_no_message() -> Result<()> {
    let (redis, servers) = cluster().await?;
    let mut ann = servers[0].wt().await?;
    ann.join("hall", "Ann").await?;
    let mut bob = servers[1].ws().await?;
    bob.join("hall", "Bob").await?;
    let mut publisher = servers[1].ws().await?;
    publisher.join("hall", "Pub").await?;
    let sent = 40;
    let blip = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let killed = redis.kill_clients()?;
        ensure!(killed >= 4, "each server has a command and a subscription connection: {killed}");
        Ok(())
    };
    let (refused, heard) = publish_through(&mut publisher, &servers, sent, blip).await?;
    let (ann_seen, bob_seen) = tokio::try_join!(until_body(&mut ann, "end"), until_body(&mut bob, "end"))?;
    check(&[ann_seen, bob_seen, heard], sent, &refused)?;
    for server in &servers {
        let scrape = scrape_metrics(server.address).await?;
        ensure!(metric(&scrape, "wtchat_broker_link_losses_total").is_some_and(|n| n >= 1.0));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_back_empty_within_the_grace_closes_members_to_resume_with_the_gap_told() -> Result<()> {
    let (mut redis, servers) = cluster().await?;
    let mut ann = servers[0].ws().await?;
    let (joined, _) = ann.join("hall", "Ann").await?;
    let mut bob = servers[1].ws().await?;
    bob.join("hall", "Bob").await?;
    ann.publish("hall", "before").await?;
    let before = bob.chat(1).await?;
    redis.restart()?;
    // The room's history is gone with Redis: the members are closed to
    // resume, which tells them so.
    for client in [&mut ann, &mut bob] {
        let (notice, code) = client.until_closed().await?;
        let notice = notice.context("a closing notice")?;
        ensure!(
            notice.code == ReasonCode::BROKER_UNAVAILABLE && code == Some(ReasonCode::BROKER_UNAVAILABLE.0)
        );
    }
    let mut ann = servers[0].ws().await?;
    let resume = Resume { epoch: joined.epoch, last_seq: before[0].seq };
    let (rejoined, history) = ann.join_from("hall", "Ann", Some(resume)).await?;
    ensure!(rejoined.epoch != joined.epoch && rejoined.history.gap && history.is_empty(), "{rejoined:?}");
    Ok(())
}
