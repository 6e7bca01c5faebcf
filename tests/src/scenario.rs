//! Scenarios every transport must pass, written once. Each takes clients the
//! test already connected (and joined), over whichever transports it chose.

use std::time::Duration;

use anyhow::{Result, ensure};
use wtchat_protocol::{Closing, PresenceChange, ServerMessage};

use crate::client::{Client, Received, Wire};
use crate::server::TestServer;
use crate::websocket::WsClient;

/// What a stalled member found when it read again.
#[derive(Debug)]
pub struct StalledMember {
    /// Chat messages it received.
    pub seen: usize,
    /// The close code it got, if the transport gave one.
    pub close_code: Option<u16>,
}

/// In room `firehose`, `publisher` sends `total` 8 KiB messages while
/// `reader` keeps up and `stalled` never reads. Checks that the reader
/// missed nothing, that the room was told the stalled member disconnected,
/// and that the server kept only the two live sessions; then lets the
/// stalled member read what reached it.
pub async fn flood_past_a_stalled_member<R: Wire, S: Wire>(
    server: &TestServer,
    publisher: &mut WsClient,
    reader: &mut Client<R>,
    stalled: &mut Client<S>,
    total: usize,
) -> Result<StalledMember> {
    let body = "m".repeat(8 * 1024);
    // The publisher is a member too, so it reads its own copy of each
    // message before sending the next; it must not become a slow reader.
    let publishing = async {
        for _ in 0..total {
            publisher.publish("firehose", &body).await?;
            publisher.chat(1).await?;
        }
        anyhow::Ok(())
    };
    let (published, received) = tokio::join!(publishing, reader.chat(total));
    published?;
    ensure!(received?.iter().map(|m| m.seq).eq(1..=total as u64), "the live reader missed a message");

    let gone = reader
        .until(|m| match m {
            ServerMessage::Presence(p) if p.member.name == "stalled" => Some(p.change),
            _ => None,
        })
        .await?;
    ensure!(
        gone == PresenceChange::Disconnected,
        "the room was told {gone:?}, not that the member disconnected"
    );
    server.wait_for_sessions(2).await?;

    let mut seen = 0;
    let close_code = loop {
        match stalled.receive().await {
            Ok(Received::Message(ServerMessage::Message(_))) => seen += 1,
            Ok(Received::Message(_) | Received::Datagram(_)) => {}
            Ok(Received::Closed(code)) => break code,
            Err(_) => break None,
        }
    };
    Ok(StalledMember { seen, close_code })
}

/// `watcher` pings on time while `silent` (joined as "silent") says nothing
/// more; returns the closing notice and close code `silent` receives, once
/// the watcher has heard that it disconnected.
pub async fn silence_past_the_heartbeat<S: Wire>(
    watcher: &mut WsClient,
    silent: &mut Client<S>,
) -> Result<(Option<Closing>, Option<u16>)> {
    let keep_alive =
        watcher.ping_until_presence("silent", PresenceChange::Disconnected, Duration::from_millis(50));
    let (watched, closed) = tokio::join!(keep_alive, silent.until_closed());
    watched?;
    closed
}
