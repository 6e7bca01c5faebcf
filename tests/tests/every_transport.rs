//! Scenarios every transport must pass, written once and run over each
//! (`websocket::…` and `webtransport::…` in the test names). What only one
//! transport has (WebSocket text frames, WebTransport datagrams and stream
//! framing, the HTTP answers of each) is in `websocket.rs` and
//! `webtransport.rs`.

use std::time::Duration;

use anyhow::{Result, ensure};
use wtchat_protocol::{ClientMessage, ErrorCode, PresenceChange, ReasonCode, Resume, ServerMessage};
use wtchat_tests::{Client, Dial, Received, TestServer, WsClient};

/// Runs each scenario over WebSocket and over WebTransport.
macro_rules! over_each_transport {
    ($($scenario:ident),+ $(,)?) => {
        mod websocket {
            $(
                #[tokio::test]
                async fn $scenario() -> anyhow::Result<()> {
                    super::$scenario::<wtchat_tests::WsWire>().await
                }
            )+
        }
        mod webtransport {
            $(
                #[tokio::test]
                async fn $scenario() -> anyhow::Result<()> {
                    super::$scenario::<wtchat_tests::WtWire>().await
                }
            )+
        }
    };
}

over_each_transport!(
    a_hundred_clients_receive_every_message_in_order,
    presence_follows_joins_leaves_and_vanishing_clients,
    history_and_resume_over_the_wire,
    bad_input_gets_errors_and_the_session_goes_on,
    an_oversized_message_is_refused_and_the_session_goes_on,
    a_reader_that_stops_is_evicted_while_the_others_keep_receiving,
    a_silent_client_is_closed_and_its_rooms_are_told,
    flooding_is_refused_then_closed,
    shutdown_tells_every_session_when_to_come_back,
    a_wrong_protocol_version_is_closed_with_its_code,
);

async fn a_hundred_clients_receive_every_message_in_order<T: Dial>() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.publish_rate_per_sec = 1_000;
        c.publish_burst = 1_000;
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..100 {
        let mut client = T::connect(&server).await?;
        client.join("crowd", &format!("user{i}")).await?;
        clients.push(client);
    }
    // Three publishers interleave; every member must see one order.
    let per_publisher = 20;
    for round in 0..per_publisher {
        for (p, publisher) in clients.iter_mut().enumerate().take(3) {
            publisher.publish("crowd", &format!("{p}/{round}")).await?;
        }
    }
    let mut reference: Option<Vec<(u64, String, u64)>> = None;
    for client in &mut clients {
        let seen: Vec<(u64, String, u64)> = client
            .chat(3 * per_publisher)
            .await?
            .into_iter()
            .map(|m| (m.seq, m.body, m.sender.session_id))
            .collect();
        assert!(seen.iter().map(|(seq, _, _)| *seq).eq(1..=60), "sequence numbers run 1..=60");
        // Each publisher's own messages arrive in the order it sent them.
        for p in 0..3 {
            let mine: Vec<&str> = seen
                .iter()
                .filter(|(_, body, _)| body.starts_with(&format!("{p}/")))
                .map(|(_, b, _)| b.as_str())
                .collect();
            let sent: Vec<String> = (0..per_publisher).map(|r| format!("{p}/{r}")).collect();
            assert_eq!(mine, sent);
        }
        match &reference {
            None => reference = Some(seen),
            Some(reference) => assert_eq!(&seen, reference, "two members saw different orders"),
        }
    }
    server.stop().await
}

async fn presence_follows_joins_leaves_and_vanishing_clients<T: Dial>() -> Result<()> {
    let server = TestServer::start().await;
    let mut alice = T::connect(&server).await?;
    alice.join("den", "alice").await?;
    let mut bob = T::connect(&server).await?;
    let (joined, _) = bob.join("den", "bob").await?;
    let names: Vec<&str> = joined.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);

    let presence = async |client: &mut Client<T>| {
        client.until_presence(|c| Some((c.change, c.member.name.clone()))).await
    };
    assert_eq!(presence(&mut alice).await?, (PresenceChange::Joined, "bob".into()));

    let mut carol = T::connect(&server).await?;
    carol.join("den", "carol").await?;
    assert_eq!(presence(&mut alice).await?, (PresenceChange::Joined, "carol".into()));

    let request = bob.send(ClientMessage::Leave { room: "den".into() }).await?;
    let left = bob
        .until(|m| match m {
            ServerMessage::Left(left) => Some(left.clone()),
            _ => None,
        })
        .await?;
    assert_eq!((left.request_id, left.room.as_str()), (request, "den"));
    assert_eq!(presence(&mut alice).await?, (PresenceChange::Left, "bob".into()));

    // Carol's connection goes without a goodbye.
    T::disappear(carol);
    assert_eq!(presence(&mut alice).await?, (PresenceChange::Disconnected, "carol".into()));
    server.wait_for_sessions(2).await?;
    server.stop().await
}

async fn history_and_resume_over_the_wire<T: Dial>() -> Result<()> {
    let server = TestServer::start_with(|c| c.history_len = 10).await;
    let mut alice = T::connect(&server).await?;
    let (joined, _) = alice.join("log", "alice").await?;
    // Fifteen stay under the default publish rate (10/s, burst 20).
    for n in 1..=15 {
        alice.publish("log", &format!("line {n}")).await?;
    }
    alice.chat(15).await?;
    let mut bob = T::connect(&server).await?;
    let (_, history) = bob.join("log", "bob").await?;
    assert!(history.iter().map(|m| m.seq).eq(6..=15));
    let mut carol = T::connect(&server).await?;
    let resume = Resume { epoch: joined.epoch, last_seq: 12 };
    let (joined_again, history) = carol.join_from("log", "carol", Some(resume)).await?;
    assert!(!joined_again.history.gap);
    assert!(history.iter().map(|m| m.body.as_str()).eq(["line 13", "line 14", "line 15"]));
    server.stop().await
}

async fn bad_input_gets_errors_and_the_session_goes_on<T: Dial>() -> Result<()> {
    let server = TestServer::start().await;
    let mut client = T::connect(&server).await?;
    let mut bystander = T::connect(&server).await?;
    bystander.join("calm", "bystander").await?;

    // A frame that is not a message.
    client.wire.send_body(vec![wtchat_protocol::PROTOCOL_VERSION, 0x01, 0x7f, 0x00]).await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!((error.code, error.request_id), (ErrorCode::MALFORMED_FRAME, None));

    // A publish to a room the client is not in.
    let request = client.publish("calm", "let me in").await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!((error.code, error.request_id), (ErrorCode::NOT_IN_ROOM, Some(request)));

    // The session still works, and so does everyone else's.
    let request = client.send(ClientMessage::Ping { nonce: 77 }).await?;
    let ServerMessage::Pong(pong) = client.next_message().await? else { panic!("expected a pong") };
    assert_eq!((pong.request_id, pong.nonce), (request, 77));
    bystander.publish("calm", "still here").await?;
    assert_eq!(bystander.chat(1).await?[0].body, "still here");
    server.stop().await
}

async fn an_oversized_message_is_refused_and_the_session_goes_on<T: Dial>() -> Result<()> {
    let server = TestServer::start_with(|c| c.max_message_bytes = 1000).await;
    let mut client = T::connect(&server).await?;
    client.join("limits", "me").await?;
    let request = client.publish("limits", &"z".repeat(1001)).await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!((error.code, error.request_id), (ErrorCode::MESSAGE_TOO_LARGE, Some(request)));
    client.publish("limits", &"z".repeat(1000)).await?;
    assert_eq!(client.chat(1).await?[0].body.len(), 1000);
    server.stop().await
}

/// In room `firehose`, a WebSocket publisher sends 600 messages of 8 KiB
/// (4.8 MB: far more than a queue and the socket buffers hold) while a
/// reader keeps up and a member over `T` never reads.
async fn a_reader_that_stops_is_evicted_while_the_others_keep_receiving<T: Dial>() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.outbound_queue_bytes = 256 * 1024;
        c.publish_rate_per_sec = 10_000;
        c.publish_burst = 10_000;
    })
    .await;
    let mut publisher = WsClient::connect(&server).await?;
    publisher.join("firehose", "publisher").await?;
    let mut reader = T::connect(&server).await?;
    reader.join("firehose", "reader").await?;
    let mut stalled = T::connect_stalling(&server).await?;
    stalled.join("firehose", "stalled").await?;

    let total = 600;
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
    // Its arrival may be told in a diff after the flood; its departure is
    // what this waits for.
    let gone = reader
        .until_presence(|c| {
            (c.member.name == "stalled" && c.change != PresenceChange::Joined).then_some(c.change)
        })
        .await?;
    assert_eq!(gone, PresenceChange::Disconnected, "the room was told the stalled member disconnected");
    server.wait_for_sessions(2).await?;

    // The stalled member reads again: it got part of the flood, then the
    // close.
    let mut seen = 0;
    let close_code = loop {
        match stalled.receive().await {
            Ok(Received::Message(ServerMessage::Message(_))) => seen += 1,
            Ok(Received::Message(_) | Received::Datagram(_)) => {}
            Ok(Received::Closed(code)) => break code,
            Err(_) => break None,
        }
    };
    assert!(seen < total, "the stalled client got all {seen} messages; it was not evicted");
    if T::CLOSE_CODE_PASSES_A_STALL {
        assert_eq!(close_code, Some(ReasonCode::SLOW_CONSUMER.0));
    }
    server.stop().await
}

async fn a_silent_client_is_closed_and_its_rooms_are_told<T: Dial>() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.heartbeat_interval_ms = 150;
        c.heartbeat_timeout_ms = 600;
    })
    .await;
    let mut watcher = WsClient::connect(&server).await?;
    watcher.join("pulse", "watcher").await?;
    // The silent client keeps its connection but says nothing more, as a
    // browser tab that froze does.
    let mut silent = T::connect(&server).await?;
    silent.join("pulse", "silent").await?;
    let keep_alive =
        watcher.ping_until_presence("silent", PresenceChange::Disconnected, Duration::from_millis(50));
    let (watched, closed) = tokio::join!(keep_alive, silent.until_closed());
    watched?;
    let (notice, code) = closed?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::HEARTBEAT_TIMEOUT), "the heartbeat noticed");
    assert_eq!(code, Some(ReasonCode::HEARTBEAT_TIMEOUT.0));
    server.wait_for_sessions(1).await?;
    server.stop().await
}

async fn flooding_is_refused_then_closed<T: Dial>() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.publish_rate_per_sec = 1;
        c.publish_burst = 2;
        c.flood_tolerance = 3;
    })
    .await;
    let mut flooder = T::connect(&server).await?;
    flooder.join("quiet", "flooder").await?;
    let mut neighbour = T::connect(&server).await?;
    neighbour.join("quiet", "neighbour").await?;
    for _ in 0..10 {
        flooder.publish("quiet", "spam").await?;
    }
    let mut rate_limited = 0;
    let mut delivered = 0;
    let (notice, code) = loop {
        match flooder.receive().await? {
            Received::Message(ServerMessage::Error(e)) if e.code == ErrorCode::RATE_LIMITED => {
                rate_limited += 1
            }
            Received::Message(ServerMessage::Message(_)) => delivered += 1,
            Received::Message(ServerMessage::Closing(closing)) => {
                let Received::Closed(frame) = flooder.receive().await? else {
                    panic!("no close after the notice")
                };
                break (closing, frame);
            }
            Received::Message(_) | Received::Datagram(_) => {}
            Received::Closed(code) => panic!("closed without a notice: {code:?}"),
        }
    };
    assert_eq!(delivered, 2, "the burst went through");
    assert!(rate_limited >= 3, "each refused publish was answered");
    assert_eq!(notice.code, ReasonCode::FLOODING);
    assert_eq!(code, Some(ReasonCode::FLOODING.0));
    // The neighbour saw the burst and is unaffected.
    assert_eq!(neighbour.chat(2).await?.len(), 2);
    neighbour.send(ClientMessage::Ping { nonce: 5 }).await?;
    neighbour.until(|m| matches!(m, ServerMessage::Pong(_)).then_some(())).await?;
    server.stop().await
}

async fn shutdown_tells_every_session_when_to_come_back<T: Dial>() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.shutdown_retry_after_ms = 1000;
        c.shutdown_retry_spread_ms = 4000;
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut client = T::connect(&server).await?;
        client.join("lobby", &format!("user{i}")).await?;
        clients.push(client);
    }
    let address = server.address;
    // Live clients read while the server shuts down (QUIC drops unread
    // stream data once the connection closes, so reading afterwards could
    // miss a notice that did arrive).
    let reading = futures_util::future::join_all(clients.iter_mut().map(|client| client.until_closed()));
    let (stopped, closed) = tokio::join!(server.stop(), reading);
    stopped?;
    for closed in closed {
        let (notice, code) = closed?;
        let notice = notice.expect("a closing notice before the close");
        assert_eq!(notice.code, ReasonCode::SERVER_SHUTDOWN);
        let retry = notice.retry_after_ms.expect("a retry hint");
        assert!((1000..=5000).contains(&retry), "retry hint {retry} outside the configured window");
        assert_eq!(code, Some(ReasonCode::SERVER_SHUTDOWN.0));
    }
    assert!(tokio::net::TcpStream::connect(address).await.is_err(), "the listener is closed");
    Ok(())
}

async fn a_wrong_protocol_version_is_closed_with_its_code<T: Dial>() -> Result<()> {
    let server = TestServer::start().await;
    let mut client = T::connect_quietly(&server).await?;
    client
        .send(ClientMessage::Hello { protocol_version: 99, client_name: "future".into(), fallback: None })
        .await?;
    let (notice, code) = client.until_closed().await?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::UNSUPPORTED_VERSION));
    assert_eq!(code, Some(ReasonCode::UNSUPPORTED_VERSION.0));
    server.stop().await
}
