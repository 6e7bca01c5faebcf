//! What only WebSocket has, over real connections on a loopback port: text
//! frames, WebSocket-level size limits, the upgrade's answers and the close
//! handshake. Scenarios common to both transports are in
//! `every_transport.rs`.

use anyhow::Result;
use tokio_tungstenite::tungstenite::Message;
use wtchat_protocol::{ClientMessage, ErrorCode, ReasonCode, ServerMessage};
use wtchat_tests::{TestServer, WsClient, http_get};

#[tokio::test]
async fn a_text_message_is_refused_and_the_session_goes_on() -> Result<()> {
    // The rest of bad input, common to both transports, is in
    // every_transport.rs; text messages are WebSocket's own.
    let server = TestServer::start().await;
    let mut client = WsClient::connect(&server).await?;
    client.send_raw(Message::Text("hello?".into())).await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!(error.code, ErrorCode::UNSUPPORTED_FRAME);
    let request = client.send(ClientMessage::Ping { nonce: 77 }).await?;
    let ServerMessage::Pong(pong) = client.next_message().await? else { panic!("expected a pong") };
    assert_eq!((pong.request_id, pong.nonce), (request, 77));
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

/// The server writes chat frames itself on plain TCP and leaves the pongs
/// and the close to tungstenite: they must share the connection frame by
/// frame, every ping answered among a burst, and nothing after the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_and_the_close_keep_their_place_among_a_burst_of_messages() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.publish_rate_per_sec = 10_000;
        c.publish_burst = 10_000;
    })
    .await;
    let mut reader = WsClient::connect(&server).await?;
    reader.join("burst", "reader").await?;
    let mut writer = WsClient::connect(&server).await?;
    writer.join("burst", "writer").await?;
    let (messages, pings) = (300u64, 30u8);
    for n in 0..messages {
        writer.publish("burst", &format!("m{n}")).await?;
        if n % 10 == 0 {
            reader.send_raw(Message::Ping(vec![(n / 10) as u8].into())).await?;
        }
    }
    let (mut seen, mut pongs) = (Vec::new(), Vec::new());
    while seen.len() < messages as usize || pongs.len() < usize::from(pings) {
        match reader.receive_raw().await?.ok_or_else(|| anyhow::anyhow!("ended early"))? {
            Message::Binary(body) => {
                if let ServerMessage::Message(m) = wtchat_protocol::decode(&body, usize::MAX)? {
                    seen.push(m.seq);
                }
            }
            Message::Pong(payload) => pongs.push(payload[0]),
            Message::Ping(_) => {}
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, (1..=messages).collect::<Vec<_>>(), "every message whole and in order");
    assert_eq!(pongs, (0..pings).collect::<Vec<_>>(), "every ping answered, in order");
    // The server closes while messages still flow: the close is the last
    // frame the client gets.
    for n in 0..50 {
        writer.publish("burst", &format!("late {n}")).await?;
    }
    server.hub.drain();
    let mut closed = false;
    while let Some(message) = reader.receive_raw().await? {
        assert!(!closed, "{message:?} arrived after the close frame");
        if let Message::Close(frame) = message {
            assert_eq!(frame.map(|f| u16::from(f.code)), Some(ReasonCode::SERVER_SHUTDOWN.0));
            closed = true;
        }
    }
    assert!(closed, "the server closed with a close frame");
    Ok(())
}
