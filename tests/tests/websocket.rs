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
