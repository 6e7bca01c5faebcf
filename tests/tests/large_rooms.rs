//! A crowd of two thousand in one room, over each transport: everyone is
//! admitted, presence is told in counts at a bounded cost per join, pages
//! list every member once, and a message still reaches everyone once.

use anyhow::Result;
use wtchat_protocol::{ClientMessage, ServerMessage};
use wtchat_tests::bench::short_bench;
use wtchat_tests::{Client, Dial, TestServer, WsWire, WtWire};
use wtchat_tools::bench::{BenchArgs, Mode};
use wtchat_tools::dial::Transport;

const CROWD: usize = 2_000;

async fn a_crowd_fills_one_room<T: Dial>(transport: Transport) -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.max_new_connections_per_sec = 0;
        c.max_connections_per_ip = 0;
        c.publish_rate_per_sec = 10_000;
        c.publish_burst = 10_000;
        c.presence_names_max = 100;
        // The crowd's sessions wait, silent, until all of them are connected,
        // which over QUIC on a busy machine can outlast the usual heartbeat.
        c.heartbeat_interval_ms = 60_000;
        c.heartbeat_timeout_ms = 300_000;
    })
    .await;
    // A member that stays to watch the room fill, then pages through it.
    let mut watcher: Client<T> = T::connect(&server).await?;
    watcher.join("arena", "watcher").await?;

    let args = BenchArgs {
        mode: Mode::Join,
        subscribers: CROWD,
        join_rate: 2_000.0,
        room: "arena".into(),
        hold: 0.5,
        connect_concurrency: 64,
        ..short_bench(server.address, transport, vec![std::process::id()])
    };
    // The watcher reads while the crowd joins: above the names limit it
    // is told counts, without names.
    let watching = async {
        // Pings keep the watcher alive (and answered) while the crowd
        // connects, which takes a while over QUIC.
        watcher.send(ClientMessage::Ping { nonce: 0 }).await?;
        loop {
            match watcher.next_message().await? {
                ServerMessage::PresenceDiff(diff) => {
                    assert!(diff.member_count <= 100 || diff.changes.is_empty(), "names above the limit");
                    if diff.member_count > 100 {
                        return anyhow::Ok(diff.member_count);
                    }
                }
                ServerMessage::Pong(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    watcher.send(ClientMessage::Ping { nonce: 0 }).await?;
                }
                _ => {}
            }
        }
    };
    let (report, counted) = tokio::join!(wtchat_tools::crowd::run(&args), watching);
    let report = report?;
    assert!(counted? > 100);
    assert_eq!(report.not_joined, 0, "{report:?}");
    assert_eq!(
        (report.check_received, report.check_duplicates),
        (CROWD, 0),
        "the message reached everyone once"
    );
    // Above the names limit the room is told counts, a few bytes a member
    // per interval however many joined in it: the cost per join stays far
    // below one byte per member of the room.
    assert!(
        report.presence_bytes_per_join < CROWD as f64 / 4.0,
        "presence cost {} bytes per join in a room of {CROWD}",
        report.presence_bytes_per_join
    );

    // The crowd has left (each member's task ended): the watcher is told
    // it is alone again, and its pages list exactly who is there.
    server.wait_for_sessions(1).await?;
    loop {
        if let ServerMessage::PresenceDiff(diff) = watcher.next_message().await? {
            if diff.member_count == 1 {
                break;
            }
        }
    }
    let mut after = 0;
    let mut listed = Vec::new();
    loop {
        watcher.send(ClientMessage::Members { room: "arena".into(), after, limit: 1_000 }).await?;
        let page = watcher
            .until(|m| match m {
                ServerMessage::Members(page) => Some(page.clone()),
                _ => None,
            })
            .await?;
        assert!(page.members.len() <= 100, "a page holds at most 100");
        listed.extend(page.members.iter().map(|m| m.name.clone()));
        match page.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(listed, ["watcher"]);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_fills_one_room_over_websocket() -> Result<()> {
    a_crowd_fills_one_room::<WsWire>(Transport::Ws).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_fills_one_room_over_webtransport() -> Result<()> {
    a_crowd_fills_one_room::<WtWire>(Transport::Wt).await
}
