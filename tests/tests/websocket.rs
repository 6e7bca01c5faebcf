//! The server over real WebSocket connections on a loopback port.

use anyhow::Result;
use tokio_tungstenite::tungstenite::Message;
use wtchat_protocol::{ClientMessage, ErrorCode, PresenceChange, ReasonCode, ServerMessage};
use wtchat_tests::scenario::{flood_past_a_stalled_member, silence_past_the_heartbeat};
use wtchat_tests::{Received, TestServer, WsClient, http_get};

#[tokio::test]
async fn a_hundred_clients_receive_every_message_in_order() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.publish_rate_per_sec = 1_000;
        c.publish_burst = 1_000;
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..100 {
        let mut client = WsClient::connect(&server).await?;
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

#[tokio::test]
async fn presence_follows_joins_leaves_and_vanishing_clients() -> Result<()> {
    let server = TestServer::start().await;
    let mut alice = WsClient::connect(&server).await?;
    alice.join("den", "alice").await?;
    let mut bob = WsClient::connect(&server).await?;
    let (joined, _) = bob.join("den", "bob").await?;
    let names: Vec<&str> = joined.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);

    let presence = async |client: &mut WsClient| {
        client
            .until(|m| match m {
                ServerMessage::Presence(p) => Some((p.change, p.member.name.clone())),
                _ => None,
            })
            .await
    };
    assert_eq!(presence(&mut alice).await?, (PresenceChange::Joined, "bob".into()));

    let mut carol = WsClient::connect(&server).await?;
    carol.join("den", "carol").await?;
    assert_eq!(presence(&mut alice).await?, (PresenceChange::Joined, "carol".into()));

    let request = bob.send(ClientMessage::Leave { room: "den".into() }).await?;
    let left = bob.until(|m| match m {
        ServerMessage::Left(left) => Some(left.clone()),
        _ => None,
    });
    let left = left.await?;
    assert_eq!((left.request_id, left.room.as_str()), (request, "den"));
    assert_eq!(presence(&mut alice).await?, (PresenceChange::Left, "bob".into()));

    // Carol's TCP connection drops without a WebSocket close.
    carol.vanish();
    assert_eq!(presence(&mut alice).await?, (PresenceChange::Disconnected, "carol".into()));
    server.wait_for_sessions(2).await?;
    server.stop().await
}

#[tokio::test]
async fn history_and_resume_over_the_wire() -> Result<()> {
    let server = TestServer::start_with(|c| c.history_len = 10).await;
    let mut alice = WsClient::connect(&server).await?;
    let (joined, _) = alice.join("log", "alice").await?;
    for n in 1..=15 {
        alice.publish("log", &format!("line {n}")).await?;
        // Stay under the default publish rate (10/s, burst 20).
    }
    alice.chat(15).await?;
    let mut bob = WsClient::connect(&server).await?;
    let (_, history) = bob.join("log", "bob").await?;
    assert!(history.iter().map(|m| m.seq).eq(6..=15));
    let mut carol = WsClient::connect(&server).await?;
    let resume = wtchat_protocol::Resume { epoch: joined.epoch, last_seq: 12 };
    let (joined_again, history) = carol.join_from("log", "carol", Some(resume)).await?;
    assert!(!joined_again.history.gap);
    assert!(history.iter().map(|m| m.body.as_str()).eq(["line 13", "line 14", "line 15"]));
    server.stop().await
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_session_goes_on() -> Result<()> {
    let server = TestServer::start().await;
    let mut client = WsClient::connect(&server).await?;
    let mut bystander = WsClient::connect(&server).await?;
    bystander.join("calm", "bystander").await?;

    // A frame that is not a message.
    client.send_bytes(vec![wtchat_protocol::PROTOCOL_VERSION, 0x01, 0x7f, 0x00]).await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!((error.code, error.request_id), (ErrorCode::MALFORMED_FRAME, None));

    // A text message.
    client.send_raw(Message::Text("hello?".into())).await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!(error.code, ErrorCode::UNSUPPORTED_FRAME);

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

#[tokio::test]
async fn an_oversized_frame_closes_with_its_code() -> Result<()> {
    let server = TestServer::start().await;
    let mut client = WsClient::connect(&server).await?;
    let mut bystander = WsClient::connect(&server).await?;
    let max = client.welcome.as_ref().map(|w| w.limits.max_frame_bytes).unwrap_or_default() as usize;
    client.send_bytes(vec![wtchat_protocol::PROTOCOL_VERSION; max + 1]).await?;
    let (notice, code) = client.until_closed().await?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::FRAME_TOO_LARGE));
    assert_eq!(code, Some(ReasonCode::FRAME_TOO_LARGE.0));
    bystander.send(ClientMessage::Ping { nonce: 1 }).await?;
    assert!(matches!(bystander.next_message().await?, ServerMessage::Pong(_)));
    server.stop().await
}

#[tokio::test]
async fn an_oversized_message_is_refused_and_the_session_goes_on() -> Result<()> {
    let server = TestServer::start_with(|c| c.max_message_bytes = 1000).await;
    let mut client = WsClient::connect(&server).await?;
    client.join("limits", "me").await?;
    let request = client.publish("limits", &"z".repeat(1001)).await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!((error.code, error.request_id), (ErrorCode::MESSAGE_TOO_LARGE, Some(request)));
    client.publish("limits", &"z".repeat(1000)).await?;
    assert_eq!(client.chat(1).await?[0].body.len(), 1000);
    server.stop().await
}

#[tokio::test]
async fn a_reader_that_stops_is_evicted_while_the_others_keep_receiving() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.outbound_queue_bytes = 256 * 1024;
        c.publish_rate_per_sec = 10_000;
        c.publish_burst = 10_000;
    })
    .await;
    let mut publisher = WsClient::connect(&server).await?;
    publisher.join("firehose", "publisher").await?;
    let mut reader = WsClient::connect(&server).await?;
    reader.join("firehose", "reader").await?;
    // The stalled client has a tiny receive window so that it backs up fast.
    let mut stalled = WsClient::connect_with(&server, None, Some(4096)).await?;
    stalled.hello().await?;
    stalled.join("firehose", "stalled").await?;

    let total = 600; // 4.8 MB: far more than the stalled client's queue and socket buffers.
    let stalled =
        flood_past_a_stalled_member(&server, &mut publisher, &mut reader, &mut stalled, total).await?;
    let seen = stalled.seen;
    assert!(seen < total, "the stalled client got all {seen} messages; it was not evicted");
    server.stop().await
}

#[tokio::test]
async fn a_silent_client_is_closed_and_its_rooms_are_told() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.heartbeat_interval_ms = 100;
        c.heartbeat_timeout_ms = 400;
    })
    .await;
    let mut watcher = WsClient::connect(&server).await?;
    watcher.join("pulse", "watcher").await?;
    let mut silent = WsClient::connect(&server).await?;
    silent.join("pulse", "silent").await?;

    // The watcher pings on time; the silent client says nothing more.
    let (notice, code) = silence_past_the_heartbeat(&mut watcher, &mut silent).await?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::HEARTBEAT_TIMEOUT));
    assert_eq!(code, Some(ReasonCode::HEARTBEAT_TIMEOUT.0));
    server.wait_for_sessions(1).await?;
    server.stop().await
}

#[tokio::test]
async fn flooding_is_refused_then_closed() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.publish_rate_per_sec = 1;
        c.publish_burst = 2;
        c.flood_tolerance = 3;
    })
    .await;
    let mut flooder = WsClient::connect(&server).await?;
    flooder.join("quiet", "flooder").await?;
    let mut neighbour = WsClient::connect(&server).await?;
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

#[tokio::test]
async fn shutdown_tells_every_session_when_to_come_back() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.shutdown_retry_after_ms = 1000;
        c.shutdown_retry_spread_ms = 4000;
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut client = WsClient::connect(&server).await?;
        client.join("lobby", &format!("user{i}")).await?;
        clients.push(client);
    }
    let address = server.address;
    server.stop().await?;
    for client in &mut clients {
        let (notice, code) = client.until_closed().await?;
        let notice = notice.expect("a closing notice before the close");
        assert_eq!(notice.code, ReasonCode::SERVER_SHUTDOWN);
        let retry = notice.retry_after_ms.expect("a retry hint");
        assert!((1000..=5000).contains(&retry), "retry hint {retry} outside the configured window");
        assert_eq!(code, Some(ReasonCode::SERVER_SHUTDOWN.0));
    }
    assert!(tokio::net::TcpStream::connect(address).await.is_err(), "the listener is closed");
    Ok(())
}

#[tokio::test]
async fn a_wrong_protocol_version_is_closed_with_its_code() -> Result<()> {
    let server = TestServer::start().await;
    let mut client = WsClient::connect_quietly(&server).await?;
    client
        .send(ClientMessage::Hello { protocol_version: 99, client_name: "future".into(), fallback: None })
        .await?;
    let (notice, code) = client.until_closed().await?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::UNSUPPORTED_VERSION));
    assert_eq!(code, Some(ReasonCode::UNSUPPORTED_VERSION.0));
    server.stop().await
}

#[tokio::test]
async fn foreign_origins_are_refused_and_the_own_origin_is_not() -> Result<()> {
    let server = TestServer::start_with(|c| c.allowed_origins = vec!["https://chat.example".into()]).await;
    let foreign = WsClient::connect_with(&server, Some("https://evil.example"), None).await;
    let error = foreign.err().expect("a foreign origin was let in").to_string();
    assert!(error.contains("403"), "{error}");
    let own = format!("http://{}", server.address);
    WsClient::connect_with(&server, Some(&own), None).await?.hello().await?;
    WsClient::connect_with(&server, Some("https://chat.example"), None).await?.hello().await?;
    server.stop().await
}

#[tokio::test]
async fn the_listener_serves_health_and_the_page() -> Result<()> {
    let server = TestServer::start().await;
    assert_eq!(http_get(server.address, "/healthz", &[]).await?, (200, "ok\n".into()));
    let (status, body) = http_get(server.address, "/", &[]).await?;
    assert_eq!(status, 200);
    assert!(body.contains("<title>wtchat</title>"), "{body}");
    assert_eq!(http_get(server.address, "/../Cargo.toml", &[]).await?.0, 404);
    assert_eq!(http_get(server.address, "/nothing-here", &[]).await?.0, 404);
    let (status, _) = http_get(server.address, "/ws", &[]).await?;
    assert_eq!(status, 400, "a plain GET on /ws is not an upgrade");
    // The listener still takes sessions after all that.
    WsClient::connect(&server).await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_first_gets_its_close_answered() -> Result<()> {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let server = TestServer::start().await;
    // The answer raced the connection's end, so one try says little.
    for attempt in 0..30 {
        let mut client = WsClient::connect(&server).await?;
        client.join("goodbyes", &format!("leaver{attempt}")).await?;
        let close = CloseFrame { code: 1000.into(), reason: "bye".into() };
        client.send_raw(Message::Close(Some(close))).await?;
        let closed = client.until_closed().await;
        assert!(matches!(closed, Ok((None, Some(1000)))), "attempt {attempt}: {closed:?}");
    }
    server.stop().await
}
