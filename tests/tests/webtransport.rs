//! What only WebTransport has, over real sessions (the wtransport client)
//! beside real WebSocket clients, on loopback: datagrams, stream framing,
//! HTTP/3 answers, certificates. Scenarios common to both transports are in
//! `every_transport.rs`.

use std::time::{Duration, SystemTime};

use anyhow::Result;
use wtchat_protocol::{ClientMessage, ErrorCode, PROTOCOL_VERSION, ReasonCode, ServerMessage, encode};
use wtchat_server::tls::certificate::Identity;
use wtchat_tests::h3::h3_request;
use wtchat_tests::webtransport::published_hashes;
use wtchat_tests::{Received, TestServer, WsClient, WtClient};

fn prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn webtransport_and_websocket_members_see_one_order() -> Result<()> {
    let server = TestServer::start_with(|c| c.publish_burst = 100).await;
    let mut wt = WtClient::connect(&server).await?;
    let mut ws = WsClient::connect(&server).await?;
    wt.join("mixed", "quic").await?;
    ws.join("mixed", "tcp").await?;
    for n in 0..20 {
        wt.publish("mixed", &format!("wt {n}")).await?;
        ws.publish("mixed", &format!("ws {n}")).await?;
    }
    let over_wt: Vec<(u64, String)> = wt.chat(40).await?.into_iter().map(|m| (m.seq, m.body)).collect();
    let over_ws: Vec<(u64, String)> = ws.chat(40).await?.into_iter().map(|m| (m.seq, m.body)).collect();
    assert!(over_wt.iter().map(|(seq, _)| *seq).eq(1..=40));
    assert_eq!(over_wt, over_ws, "the two transports saw different orders");
    for n in 0..20 {
        assert!(
            over_ws.iter().any(|(_, body)| body == &format!("wt {n}")),
            "a WebTransport message went missing"
        );
    }
    server.stop().await
}

#[tokio::test]
async fn typing_travels_as_datagrams_on_webtransport_and_frames_on_websocket() -> Result<()> {
    let server = TestServer::start().await;
    let mut wt = WtClient::connect(&server).await?;
    let mut ws = WsClient::connect(&server).await?;
    wt.join("desk", "quic").await?;
    ws.join("desk", "tcp").await?;
    // Let the presence notice reach the first member before typing starts.
    wt.until_presence(|_| Some(())).await?;

    ws.send(ClientMessage::Typing { room: "desk".into() }).await?;
    let typing = loop {
        match wt.receive().await? {
            Received::Datagram(ServerMessage::Typing(typing)) => break typing,
            Received::Message(ServerMessage::Typing(_)) => {
                panic!("typing came on the stream, not as a datagram")
            }
            _ => {}
        }
    };
    assert_eq!((typing.room.as_str(), typing.member.name.as_str()), ("desk", "tcp"));

    // The WebTransport client types with a datagram; the WebSocket member gets
    // an ordinary frame.
    let (_, body) = wt.encode(ClientMessage::Typing { room: "desk".into() });
    wt.send_datagram(body)?;
    let typing = ws
        .until(|m| match m {
            ServerMessage::Typing(typing) => Some(typing.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(typing.member.name, "quic");

    // Typing is never history.
    let mut late = WsClient::connect(&server).await?;
    let (joined, history) = late.join("desk", "late").await?;
    assert_eq!((joined.history.count, history.len(), joined.next_seq), (0, 0, 1));
    server.stop().await
}

#[tokio::test]
async fn bad_frames_on_the_stream_get_errors_or_a_close_and_others_carry_on() -> Result<()> {
    let server = TestServer::start().await;
    let mut bystander = WtClient::connect(&server).await?;
    bystander.join("calm", "bystander").await?;
    let mut client = WtClient::connect(&server).await?;

    // A whole frame whose message is cut short.
    client.send_stream_bytes(&prefixed(&[PROTOCOL_VERSION, 1, 0])).await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!(error.code, ErrorCode::MALFORMED_FRAME);
    // A frame that is not a message at all, and an empty frame.
    client.send_stream_bytes(&prefixed(&[PROTOCOL_VERSION, 0xff, 0xff, 0xff])).await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!(error.code, ErrorCode::MALFORMED_FRAME);
    client.send_stream_bytes(&[0, 0, 0, 0]).await?;
    let ServerMessage::Error(error) = client.next_message().await? else { panic!("expected an error") };
    assert_eq!(error.code, ErrorCode::MALFORMED_FRAME);
    // Frames split across writes still arrive whole.
    let (request, ping) = client.encode(ClientMessage::Ping { nonce: 9 });
    let ping = prefixed(&ping);
    client.send_stream_bytes(&ping[..2]).await?;
    client.send_stream_bytes(&ping[2..]).await?;
    let ServerMessage::Pong(pong) = client.next_message().await? else { panic!("expected a pong") };
    assert_eq!((pong.request_id, pong.nonce), (request, 9));

    // A length prefix over the limit closes the session with its code; the
    // server does not wait for (or buffer) the body.
    let max = client.welcome.as_ref().map(|w| w.limits.max_frame_bytes).unwrap_or_default();
    client.send_stream_bytes(&(max + 1).to_be_bytes()).await?;
    let (notice, code) = client.until_closed().await?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::FRAME_TOO_LARGE));
    assert_eq!(code, Some(ReasonCode::FRAME_TOO_LARGE.0));

    // Everyone else is unaffected, and new sessions still open.
    bystander.publish("calm", "still here").await?;
    assert_eq!(bystander.chat(1).await?[0].body, "still here");
    let mut newcomer = WtClient::connect(&server).await?;
    newcomer.join("calm", "newcomer").await?;
    server.stop().await
}

#[tokio::test]
async fn requests_that_are_not_webtransport_get_http3_errors() -> Result<()> {
    let server = TestServer::start().await;
    assert_eq!(h3_request(&server, "GET", "/", None).await?, 404);
    assert_eq!(h3_request(&server, "GET", "/wt", None).await?, 400);
    assert_eq!(h3_request(&server, "CONNECT", "/wt", Some("connect-udp")).await?, 400);
    assert_eq!(h3_request(&server, "CONNECT", "/elsewhere", Some("webtransport")).await?, 404);
    // The endpoint still serves WebTransport.
    let mut client = WtClient::connect(&server).await?;
    client.join("after", "me").await?;
    server.stop().await
}

#[tokio::test]
async fn foreign_origins_are_refused_on_webtransport() -> Result<()> {
    let server = TestServer::start_with(|c| c.allowed_origins = vec!["https://chat.example".into()]).await;
    let hashes = published_hashes(&server).await?;
    let refused = WtClient::session(&server.wt_url(), &hashes, Some("https://evil.example")).await;
    assert!(refused.is_err(), "a foreign origin opened a session");
    let mut allowed = WtClient::open(&server.wt_url(), &hashes, Some("https://chat.example")).await?;
    allowed.hello().await?;
    server.stop().await
}

#[tokio::test]
async fn published_hashes_match_the_certificate_actually_served() -> Result<()> {
    let server = TestServer::start().await;
    let hashes = published_hashes(&server).await?;
    assert_eq!(hashes, server.certificates.hashes());
    let client = WtClient::connect(&server).await?;
    assert_eq!(client.peer_certificate_hash(), Some(hashes[0]));
    // A page with a wrong hash is refused, as a browser would refuse it.
    let mut wrong = hashes[0];
    wrong[0] ^= 0xff;
    assert!(WtClient::session(&server.wt_url(), &[wrong], None).await.is_err());
    server.stop().await
}

#[tokio::test]
async fn certificates_rotate_without_a_restart() -> Result<()> {
    const DAY: Duration = Duration::from_secs(24 * 60 * 60);
    let now = SystemTime::now();
    // A kept certificate made eight days ago has five days left: the server
    // reuses it and announces its successor at once.
    let server = TestServer::start_with(|c| {
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from);
        let old = Identity::self_signed(&names, now - 8 * DAY).unwrap();
        old.write_pem_files(&c.cert_dir.join("current.pem"), &c.cert_dir.join("current.key")).unwrap();
    })
    .await;
    let hashes = published_hashes(&server).await?;
    assert_eq!(hashes.len(), 2, "the next certificate is announced beside the current one");
    let (current, next) = (hashes[0], hashes[1]);
    let early = WtClient::open(&server.wt_url(), &[current, next], None).await?;
    assert_eq!(early.peer_certificate_hash(), Some(current));
    assert!(WtClient::session(&server.wt_url(), &[next], None).await.is_err(), "next is not served yet");

    // Three and a half days on, the current one has under two days left.
    assert!(server.certificates.refresh(now + 3 * DAY + DAY / 2)?);
    let late = WtClient::open(&server.wt_url(), &[current, next], None).await?;
    assert_eq!(late.peer_certificate_hash(), Some(next), "the successor is served without a restart");
    assert_eq!(published_hashes(&server).await?[0], next);
    // The session opened before the rotation goes on.
    let mut early = early;
    early.hello().await?;
    server.stop().await
}

#[tokio::test]
async fn ca_certificates_serve_https_and_wss_on_tcp_and_quic() -> Result<()> {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = wtchat_tests::server::temp_dir("ca");
    let (cert, key) = (dir.join("chain.pem"), dir.join("key.pem"));
    let identity = Identity::self_signed(&["localhost".into(), "127.0.0.1".into()], SystemTime::now())?;
    identity.write_pem_files(&cert, &key)?;
    let server = TestServer::start_with(|c| {
        c.cert_file = Some(cert.clone());
        c.key_file = Some(key.clone());
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.leaf().clone())?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let name = rustls::pki_types::ServerName::try_from("localhost")?;

    // HTTPS.
    let tcp = tokio::net::TcpStream::connect(server.address).await?;
    let mut https = connector.connect(name.clone(), tcp).await?;
    https.write_all(b"GET /cert-hashes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut response = String::new();
    https.read_to_string(&mut response).await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("[]"), "a CA certificate needs no hashes: {response}");

    // wss://
    let tcp = tokio::net::TcpStream::connect(server.address).await?;
    let tls_stream = connector.connect(name, tcp).await?;
    let (mut wss, _) = tokio_tungstenite::client_async("wss://localhost/ws", tls_stream).await?;
    let hello = ClientMessage::Hello {
        protocol_version: u16::from(PROTOCOL_VERSION),
        client_name: "wss".into(),
        fallback: None,
    };
    let body = encode(&wtchat_protocol::ClientFrame { request_id: 1, message: hello });
    futures_util::SinkExt::send(&mut wss, tokio_tungstenite::tungstenite::Message::Binary(body.into()))
        .await?;
    let reply = futures_util::StreamExt::next(&mut wss).await.expect("a reply")?;
    let decoded: ServerMessage = wtchat_protocol::decode(&reply.into_data(), usize::MAX)?;
    assert!(matches!(decoded, ServerMessage::Welcome(_)));

    // QUIC presents the same certificate (the h3 client trusts only it).
    assert_eq!(h3_request(&server, "GET", "/", None).await?, 404);
    server.stop().await?;
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

#[tokio::test]
async fn a_loopback_server_answers_on_both_loopback_families() -> Result<()> {
    let server = TestServer::start().await;
    let v4 = server.quic_address.expect("QUIC is on");
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        // This host has no IPv6 loopback; there is nothing to bind there.
        assert_eq!(server.quic_addresses.len(), 1);
        return server.stop().await;
    }
    let v6 = *server.quic_addresses.iter().find(|a| a.is_ipv6()).expect("QUIC listens on [::1] too");
    assert_eq!(v6.port(), v4.port(), "browsers reach localhost:PORT on either family");
    let tcp_v6 = *server.tcp_addresses.iter().find(|a| a.is_ipv6()).expect("TCP listens on [::1] too");
    assert_eq!(tcp_v6.port(), server.address.port());

    let hashes = published_hashes(&server).await?;
    let mut over_v6 = WtClient::open(&format!("https://[::1]:{}/wt", v6.port()), &hashes, None).await?;
    over_v6.hello().await?;
    over_v6.join("both", "six").await?;
    let mut ws_v6 = WsClient::connect_at(tcp_v6, None, None).await?;
    ws_v6.hello().await?;
    ws_v6.join("both", "tcp-six").await?;
    ws_v6.publish("both", "hello over ::1").await?;
    assert_eq!(over_v6.chat(1).await?[0].body, "hello over ::1");
    server.stop().await
}

#[tokio::test]
async fn transports_tell_a_client_where_each_transport_is() -> Result<()> {
    let server = TestServer::start().await;
    let quic_port = server.quic_address.expect("QUIC is on").port();
    let (status, body) = wtchat_tests::http_get(server.address, "/transports", &[]).await?;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(answer["websocket"]["url"], format!("ws://{}/ws", server.address));
    assert_eq!(answer["webtransport"]["url"], format!("https://127.0.0.1:{quic_port}/wt"));
    let hashes: Vec<Vec<u8>> = serde_json::from_value(answer["webtransport"]["certificateHashes"].clone())?;
    assert_eq!(hashes, server.certificates.hashes().iter().map(|h| h.to_vec()).collect::<Vec<_>>());
    // The host the client used is the host it is told: a page on [::1]
    // keeps to [::1].
    let (_, body) = wtchat_tests::http_get(server.address, "/transports", &[("Host", "[::1]:9999")]).await?;
    let answer: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(answer["webtransport"]["url"], format!("https://[::1]:{quic_port}/wt"));
    server.stop().await?;

    let websocket_only = TestServer::start_with(|c| c.no_webtransport = true).await;
    let (_, body) = wtchat_tests::http_get(websocket_only.address, "/transports", &[]).await?;
    let answer: serde_json::Value = serde_json::from_str(&body)?;
    assert!(answer["webtransport"].is_null(), "{answer}");
    websocket_only.stop().await
}
