//! The server's WebTransport dialects, checked on the wire with a plain HTTP/3
//! client that shares no code with the server: the SETTINGS each shipping
//! browser looks for, the CONNECT of every draft, session flow control as
//! Safari uses it, and the close capsule that carries a session's code to the
//! browser. Safari cannot run here; this is how it is tested.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use wtchat_protocol::ReasonCode;
use wtchat_tests::h3::{Exchange, H3Client, RawWire, get_varint};
use wtchat_tests::{Client, TestServer, WsClient};

// Setting codepoints, each from the draft that defined it
// (draft-ietf-webtrans-http3 section 9.2, RFC 9220, RFC 9297).
const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
const H3_DATAGRAM: u64 = 0x33;
const MAX_FIELD_SECTION_SIZE: u64 = 0x06;
const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
const ENABLE_WEBTRANSPORT_DRAFT02: u64 = 0x2b60_3742;
const MAX_SESSIONS_DRAFT07: u64 = 0xc671_706a;
const MAX_SESSIONS_DRAFT13: u64 = 0x14e9_cd29;
const WT_ENABLED_DRAFT15: u64 = 0x2c7c_f000;
const WT_INITIAL_MAX_DATA: u64 = 0x2b61;
const WT_INITIAL_MAX_STREAMS_UNI: u64 = 0x2b64;
const WT_INITIAL_MAX_STREAMS_BIDI: u64 = 0x2b65;

// Capsule types (draft-ietf-webtrans-http3 section 9.6).
const WT_CLOSE_SESSION: u64 = 0x2843;
const WT_MAX_DATA: u64 = 0x190b_4d3d;
const WT_DATA_BLOCKED: u64 = 0x190b_4d41;

/// A client that speaks draft 13/14 with session flow control, as Safari 26.4
/// does: it declares both draft codepoints for the session limit and grants
/// the server `credit` bytes of stream data.
fn safari_like(credit: u64) -> Vec<(u64, u64)> {
    vec![
        (H3_DATAGRAM, 1),
        (MAX_SESSIONS_DRAFT07, 1),
        (MAX_SESSIONS_DRAFT13, 1),
        (WT_INITIAL_MAX_DATA, credit),
        (WT_INITIAL_MAX_STREAMS_BIDI, 4),
        (WT_INITIAL_MAX_STREAMS_UNI, 4),
    ]
}

/// A client of the draft-02 generation with no session flow control, as
/// Chromium and Firefox have been.
fn draft02_client() -> Vec<(u64, u64)> {
    vec![(H3_DATAGRAM, 1), (ENABLE_WEBTRANSPORT_DRAFT02, 1)]
}

#[tokio::test]
async fn settings_advertise_every_dialect_a_shipping_browser_checks() -> Result<()> {
    let server = TestServer::start().await;
    let client = H3Client::connect(&server, &safari_like(1 << 20)).await?;
    let sent = client.server_settings().await?;
    let settings: HashMap<u64, u64> = sent.iter().copied().collect();
    assert_eq!(settings.len(), sent.len(), "a setting appears twice: {sent:x?}");
    let value = |id: u64| settings.get(&id).copied();

    // HTTP/3 extensions WebTransport runs on.
    assert_eq!(value(ENABLE_CONNECT_PROTOCOL), Some(1), "extended CONNECT (RFC 9220)");
    assert_eq!(value(H3_DATAGRAM), Some(1), "HTTP datagrams (RFC 9297)");
    assert!(value(MAX_FIELD_SECTION_SIZE).is_some_and(|size| size >= 8 * 1024), "room for a request head");
    assert!(matches!(value(QPACK_MAX_TABLE_CAPACITY), None | Some(0)), "no dynamic table to keep per client");
    // One codepoint per generation of the draft, each enabling WebTransport
    // with one session per connection.
    assert_eq!(value(ENABLE_WEBTRANSPORT_DRAFT02), Some(1), "draft 02 (Chromium, Firefox)");
    assert_eq!(value(MAX_SESSIONS_DRAFT07), Some(1), "drafts 07 to 12");
    assert_eq!(value(MAX_SESSIONS_DRAFT13), Some(1), "drafts 13 and 14 (Safari)");
    assert_eq!(value(WT_ENABLED_DRAFT15), Some(1), "drafts 15 and 16 (values above 1 are errors)");
    // Session flow control: what the protocol needs and no more. One
    // client stream; no unidirectional ones; credit for two of the largest
    // frames, as the QUIC stream window allows.
    let max_frame = server.hub.config().session.max_frame_bytes as u64;
    assert_eq!(value(WT_INITIAL_MAX_STREAMS_BIDI), Some(1));
    assert_eq!(value(WT_INITIAL_MAX_STREAMS_UNI), Some(0));
    assert_eq!(value(WT_INITIAL_MAX_DATA), Some(2 * max_frame));
    server.stop().await
}

/// Opens a session with `protocol` and talks over it: hello, join, publish.
async fn chat_over(server: &TestServer, settings: &[(u64, u64)], protocol: &str) -> Result<()> {
    let client = H3Client::connect(server, settings).await?;
    let session = client.connect_session("/wt", protocol).await?;
    assert_eq!(session.status, 200, "{protocol}: {:?}", session.headers);
    assert_eq!(session.headers.get("sec-webtransport-http3-draft").map(String::as_str), Some("draft02"));
    let mut chat = Client::new(RawWire::open(&client, &session).await?);
    chat.hello().await?;
    chat.join("dialects", protocol).await?;
    chat.publish("dialects", &format!("over {protocol}")).await?;
    assert_eq!(chat.chat(1).await?[0].body, format!("over {protocol}"));
    Ok(())
}

#[tokio::test]
async fn a_session_opens_with_either_upgrade_token_and_either_generation_of_settings() -> Result<()> {
    let server = TestServer::start().await;
    // Every browser today sends "webtransport"; draft 15 renamed it.
    chat_over(&server, &draft02_client(), "webtransport").await?;
    chat_over(&server, &safari_like(1 << 20), "webtransport").await?;
    chat_over(&server, &safari_like(1 << 20), "webtransport-h3").await?;
    // Another extended CONNECT protocol is not a session.
    let client = H3Client::connect(&server, &draft02_client()).await?;
    assert_eq!(client.connect_session("/wt", "webtransport-h2").await?.status, 400);
    assert_eq!(client.connect_session("/elsewhere", "webtransport-h3").await?.status, 404);
    server.stop().await
}

/// The application error code the server closed the QUIC connection with.
async fn connection_close_code(client: &H3Client) -> Result<u64> {
    match tokio::time::timeout(Duration::from_secs(5), client.connection.closed()).await? {
        quinn::ConnectionError::ApplicationClosed(close) => Ok(close.error_code.into_inner()),
        other => bail!("the connection ended with {other}"),
    }
}

/// The next capsule of `kind`, skipping others; its payload as one varint.
async fn next_capsule_value(session: &mut Exchange, kind: u64) -> Result<u64> {
    loop {
        match session.next_capsule().await? {
            Some((found, payload)) if found == kind => {
                let mut view = &payload[..];
                let value = get_varint(&mut view).context("a varint")?;
                return Ok(value);
            }
            Some(_) => {}
            None => bail!("the CONNECT stream ended before a capsule of type {kind:#x}"),
        }
    }
}

#[tokio::test]
async fn session_flow_control_holds_the_server_to_the_clients_credit_and_grants_credit_back() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.publish_rate_per_sec = 1_000;
        c.publish_burst = 1_000;
    })
    .await;
    // The client grants the server 700 bytes: enough for the welcome and
    // the join, not for the messages that follow.
    let credit = 700;
    let client = H3Client::connect(&server, &safari_like(credit)).await?;
    let mut session = client.connect_session("/wt", "webtransport").await?;
    let mut chat = Client::new(RawWire::open(&client, &session).await?);
    chat.hello().await?;
    chat.join("credit", "safari").await?;
    let mut publisher = WsClient::connect(&server).await?;
    publisher.join("credit", "publisher").await?;
    for n in 0..20 {
        publisher.publish("credit", &format!("{n:03} {}", "x".repeat(100))).await?;
    }
    assert_eq!(publisher.chat(20).await?.len(), 20, "the publisher's own copy arrives in full");

    // The server stops at the credit and says so.
    assert_eq!(next_capsule_value(&mut session, WT_DATA_BLOCKED).await?, credit);
    chat.wire.read_for(Duration::from_millis(300)).await?;
    assert!(
        chat.wire.received_bytes <= credit,
        "the server sent {} bytes of stream data on {credit} of credit",
        chat.wire.received_bytes
    );
    // More credit lets the rest through, in order.
    let mut grant = Vec::new();
    wtchat_tests::h3::put_varint(&mut grant, 1 << 20);
    session.send_capsule(WT_MAX_DATA, &grant).await?;
    let bodies: Vec<String> = chat.chat(20).await?.into_iter().map(|m| m.body).collect();
    assert!(bodies.iter().enumerate().all(|(n, body)| body.starts_with(&format!("{n:03} "))));

    // The other way: the client sends more than half of its initial credit,
    // and the server grants more before it runs out.
    let window = 2 * server.hub.config().session.max_frame_bytes as u64;
    for _ in 0..2 {
        chat.publish("credit", &"y".repeat(60 * 1024)).await?;
    }
    let granted = next_capsule_value(&mut session, WT_MAX_DATA).await?;
    assert!(granted > window, "WT_MAX_DATA {granted} does not raise the initial {window}");
    server.stop().await
}

#[tokio::test]
async fn a_server_close_reaches_the_client_as_a_close_session_capsule_with_its_code() -> Result<()> {
    let server = TestServer::start().await;
    let client = H3Client::connect(&server, &draft02_client()).await?;
    let mut session = client.connect_session("/wt", "webtransport").await?;
    let mut chat = Client::new(RawWire::open(&client, &session).await?);
    chat.hello().await?;
    let capsules = async {
        let capsule = session.next_capsule().await?;
        let end = session.next_capsule().await?;
        anyhow::Ok((capsule, end))
    };
    let (stopped, capsules, notice) = tokio::join!(server.stop(), capsules, chat.until_closed());
    stopped?;
    let (capsule, end) = capsules?;
    let (kind, payload) = capsule.context("no capsule before the CONNECT stream ended")?;
    assert_eq!(kind, WT_CLOSE_SESSION);
    let code = u32::from_be_bytes(payload[..4].try_into()?);
    let text = std::str::from_utf8(&payload[4..])?;
    assert_eq!(code, u32::from(ReasonCode::SERVER_SHUTDOWN.0));
    assert!(!text.is_empty(), "the close carries the reason's text");
    assert!(end.is_none(), "the CONNECT stream ends right after the close capsule");
    // The closing notice on the session's stream came too, with the same
    // code and a retry hint.
    let (notice, _) = notice?;
    let notice = notice.context("a closing notice")?;
    assert_eq!(notice.code, ReasonCode::SERVER_SHUTDOWN);
    assert!(notice.retry_after_ms.is_some());
    // The client did not close the connection itself, so the server did,
    // with the same code.
    assert_eq!(connection_close_code(&client).await?, u64::from(ReasonCode::SERVER_SHUTDOWN.0));
    Ok(())
}

#[tokio::test]
async fn a_malformed_capsule_closes_that_session_only() -> Result<()> {
    let server = TestServer::start().await;
    let mut bystander = WsClient::connect(&server).await?;
    bystander.join("calm", "bystander").await?;
    let client = H3Client::connect(&server, &safari_like(1 << 20)).await?;
    let mut session = client.connect_session("/wt", "webtransport").await?;
    let mut chat = Client::new(RawWire::open(&client, &session).await?);
    chat.hello().await?;
    chat.join("calm", "breaker").await?;
    // WT_MAX_DATA whose payload is not one varint.
    session.send_capsule(WT_MAX_DATA, &[0x40]).await?;
    assert_eq!(connection_close_code(&client).await?, 0x10e, "H3_MESSAGE_ERROR");
    bystander.publish("calm", "still here").await?;
    assert_eq!(bystander.chat(1).await?[0].body, "still here");
    server.wait_for_sessions(1).await?;
    server.stop().await
}

#[tokio::test]
async fn a_connection_that_never_asks_for_a_session_is_closed_after_the_heartbeat_timeout() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.heartbeat_interval_ms = 100;
        c.heartbeat_timeout_ms = 500;
    })
    .await;
    // One client sends its SETTINGS and then nothing; the server's QUIC
    // keep-alives would hold the connection open for ever.
    let client = H3Client::connect(&server, &draft02_client()).await?;
    assert_eq!(connection_close_code(&client).await?, 0x10c, "H3_REQUEST_CANCELLED");
    // A session opened in time is not affected by the deadline once it runs.
    let client = H3Client::connect(&server, &draft02_client()).await?;
    let session = client.connect_session("/wt", "webtransport").await?;
    let mut chat = Client::new(RawWire::open(&client, &session).await?);
    chat.hello().await?;
    chat.join("awake", "me").await?;
    server.stop().await
}
