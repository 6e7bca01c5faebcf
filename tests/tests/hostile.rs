//! What a hostile or broken client tries against the real server, each
//! answered as documented, with a bystander in the same room checking that
//! nobody else notices.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use wtchat_protocol::Resume;
use wtchat_tests::{PATIENCE, TestServer, WsClient};

#[tokio::test]
async fn a_resume_from_the_largest_numbers_is_answered_like_any_number_past_the_room() -> Result<()> {
    let server = TestServer::start().await;
    let mut bystander = WsClient::connect(&server).await?;
    let (joined, _) = bystander.join("numbers", "bystander").await?;
    for n in 0..5 {
        bystander.publish("numbers", &format!("m{n}")).await?;
    }
    assert_eq!(bystander.chat(5).await?.len(), 5);
    for last_seq in [u64::MAX, u64::MAX - 1, u64::MAX / 2] {
        let mut client = WsClient::connect(&server).await?;
        let resume = Resume { epoch: joined.epoch, last_seq };
        let (answer, history) = client.join_from("numbers", "resumer", Some(resume)).await?;
        assert!(!answer.history.gap, "last_seq {last_seq}: a number past the room is not a gap");
        assert!(history.is_empty(), "last_seq {last_seq}: nothing newer to give");
        assert_eq!(answer.next_seq, 6);
    }
    bystander.publish("numbers", "still in order").await?;
    let after = bystander.chat(1).await?;
    assert_eq!((after[0].seq, after[0].body.as_str()), (6, "still in order"));
    server.stop().await
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))
}

/// Rooms the binary reports.
async fn rooms(binary: &wtchat_tests::binary::Binary) -> anyhow::Result<u64> {
    let (_, body) = wtchat_tests::http_get(binary.address, "/status", &[]).await?;
    let status: serde_json::Value = serde_json::from_str(&body)?;
    Ok(status["rooms"].as_u64().unwrap_or(u64::MAX))
}

/// The real `wtchat` binary on a loopback port, WebSocket only, with these
/// options besides; and its certificate directory, for the caller to remove.
fn websocket_binary(
    tag: &str,
    options: &[&str],
) -> Result<(wtchat_tests::binary::Binary, std::path::PathBuf)> {
    let certs = wtchat_tests::server::temp_dir(&format!("{tag}-certs"));
    let mut args = vec!["--listen", "127.0.0.1:0", "--no-webtransport", "--cert-dir"];
    args.push(certs.to_str().unwrap_or_default());
    args.extend_from_slice(options);
    Ok((wtchat_tests::binary::Binary::start(&args)?, certs))
}

/// Opens `sessions` sessions that each fill their 32 rooms, each room their
/// own: `32 * sessions` empty rooms. Each session comes from an address of
/// its own in `127.<storm>.0.0/16`, as a storm from many clients would, so
/// that the quota of rooms per address is not what stops it.
async fn fill_rooms(
    binary: &wtchat_tests::binary::Binary,
    sessions: usize,
    storm: u8,
    tag: &str,
) -> Result<Vec<WsClient>> {
    let mut clients = Vec::with_capacity(sessions);
    for s in 0..sessions {
        let [_, _, high, low] = u32::try_from(s + 1)?.to_be_bytes();
        let local = std::net::Ipv4Addr::new(127, storm, high, low);
        let mut client =
            WsClient::connect_from(Some(local.into()), binary.address, "/ws", None, None).await?;
        client.hello().await?;
        for r in 0..32 {
            client.join(&format!("{tag}-{s}-{r}"), "storm").await?;
        }
        clients.push(client);
    }
    Ok(clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_empty_rooms_costs_little_and_its_memory_is_reused() -> Result<()> {
    let (binary, certs) = websocket_binary("storm", &["--max-new-connections-per-sec", "0"])?;
    let pid = binary.child.id();
    let all_gone = || async { rooms(&binary).await.is_ok_and(|r| r == 0) };
    // A warm-up storm, so that the baseline holds the allocator's pools.
    drop(fill_rooms(&binary, 40, 1, "warm").await?);
    wtchat_tests::server::eventually_async(PATIENCE, all_gone).await?;
    let baseline = rss_kib(pid)?;
    let sessions = 400;
    let total = 32 * sessions as u64;
    let clients = fill_rooms(&binary, sessions, 2, "storm").await?;
    assert_eq!(rooms(&binary).await?, total);
    let holding = rss_kib(pid)?;
    drop(clients);
    wtchat_tests::server::eventually_async(PATIENCE, all_gone).await?;
    let after_first = rss_kib(pid)?;
    // The allocator keeps what the rooms freed for reuse rather than handing
    // it back to the system at once: a second storm must fit in it.
    drop(fill_rooms(&binary, sessions, 3, "again").await?);
    wtchat_tests::server::eventually_async(PATIENCE, all_gone).await?;
    let after_second = rss_kib(pid)?;
    let per_room = holding.saturating_sub(baseline) as f64 * 1024.0 / total as f64;
    eprintln!(
        "room storm: RSS {baseline} KiB before, {holding} KiB holding {total} rooms \
         ({per_room:.0} B a room, its share of the sessions included), {after_first} KiB after, \
         {after_second} KiB after a second storm"
    );
    // Each room once reserved its history slots, about 3.5 KB.
    assert!(per_room <= 1024.0, "an empty room costs {per_room:.0} B");
    assert!(after_second <= after_first + 1024, "the second storm did not reuse the first one's memory");
    let _ = std::fs::remove_dir_all(certs);
    Ok(())
}

#[tokio::test]
async fn a_client_retrying_a_join_on_a_full_server_is_not_blamed_for_it() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.max_rooms = 1;
        c.error_tolerance = 3;
    })
    .await;
    let mut holder = WsClient::connect(&server).await?;
    holder.join("the-only-room", "holder").await?;
    let mut client = WsClient::connect(&server).await?;
    for attempt in 0..10 {
        client
            .send(wtchat_protocol::ClientMessage::Join {
                room: format!("another-{attempt}"),
                display_name: "retrier".into(),
                resume: None,
            })
            .await?;
        let wtchat_protocol::ServerMessage::Error(error) = client.next_message().await? else {
            anyhow::bail!("expected a refusal")
        };
        assert_eq!(error.code, wtchat_protocol::ErrorCode::ROOM_LIMIT_REACHED, "attempt {attempt}");
    }
    // Still open, and welcome in the room that exists.
    client.join("the-only-room", "retrier").await?;
    holder.publish("the-only-room", "hello").await?;
    assert_eq!(client.chat(1).await?[0].body, "hello");
    server.stop().await
}

/// A WebSocket opened by hand on a TCP connection, to send what no client
/// library would.
async fn raw_websocket(server: &TestServer) -> Result<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.address).await?;
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.address
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await?);
    }
    anyhow::ensure!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    Ok(tcp)
}

/// Reads server frames (unmasked) until a close frame; its status code.
async fn close_code_of(tcp: &mut tokio::net::TcpStream) -> Result<Option<u16>> {
    close_code_of_half(tcp, PATIENCE).await
}

/// As [`close_code_of`], on any reading half, waiting at most `within`.
async fn close_code_of_half(
    tcp: &mut (impl tokio::io::AsyncRead + Unpin),
    within: std::time::Duration,
) -> Result<Option<u16>> {
    use tokio::io::AsyncReadExt;
    let read = async {
        loop {
            let head = [tcp.read_u8().await?, tcp.read_u8().await?];
            let len = match head[1] & 0x7f {
                126 => u64::from(tcp.read_u16().await?),
                127 => tcp.read_u64().await?,
                n => u64::from(n),
            };
            let mut payload = vec![0; usize::try_from(len)?];
            tcp.read_exact(&mut payload).await?;
            if head[0] & 0x0f == 0x8 {
                return anyhow::Ok(payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])));
            }
        }
    };
    tokio::time::timeout(within, read).await?
}

#[tokio::test]
async fn a_websocket_client_that_breaks_the_framing_is_closed_as_a_protocol_violation() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let mut bystander = WsClient::connect(&server).await?;
    bystander.join("framing", "bystander").await?;
    // A client's frame without a mask (RFC 6455 section 5.1), and a text
    // frame that is not UTF-8 (section 8.1).
    let unmasked: &[u8] = &[0x82, 0x03, 1, 2, 3];
    let bad_text: &[u8] = &[0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28];
    for (what, frame) in [("an unmasked frame", unmasked), ("invalid UTF-8 text", bad_text)] {
        let mut tcp = raw_websocket(&server).await?;
        tcp.write_all(frame).await?;
        let code = close_code_of(&mut tcp).await?;
        assert_eq!(code, Some(wtchat_protocol::ReasonCode::PROTOCOL_VIOLATION.0), "{what}");
    }
    let metrics = wtchat_tests::scrape_metrics(server.address).await?;
    let closed =
        wtchat_tests::metric(&metrics, "wtchat_sessions_closed_total{reason=\"PROTOCOL_VIOLATION\"}");
    assert_eq!(closed, Some(2.0), "counted as what they are:\n{metrics}");
    bystander.publish("framing", "unaffected").await?;
    assert_eq!(bystander.chat(1).await?[0].body, "unaffected");
    server.stop().await
}

/// The secret the test issuer signs tokens with.
const SECRET: &str = "the test issuer's secret, forty-four bytes!!";

/// Turns authentication on with the test issuer's secret.
fn with_auth(config: &mut wtchat_server::Config) {
    config.auth_hs256_secret = Some(SECRET.into());
}

/// A token the test issuer signs for `subject` with any further claims,
/// valid for ten minutes.
fn token_with(subject: &str, mut claims: serde_json::Value) -> Result<String> {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 600;
    claims["sub"] = subject.into();
    claims["exp"] = exp.into();
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )?)
}

/// A token the test issuer signs for `subject`.
fn token_for(subject: &str) -> Result<String> {
    token_with(subject, serde_json::json!({}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_churning_without_tokens_spends_only_its_own_budget() -> Result<()> {
    let server = TestServer::start_with(|c| {
        with_auth(c);
        // 40 new sessions per second in all: 10 per address, bursts of 20.
        c.max_new_connections_per_sec = 40;
    })
    .await;
    let address = server.address;
    // 127.0.0.2 churns connections without a token as fast as it can.
    let churner = tokio::spawn(async move {
        let mut refused = 0;
        for _ in 0..300 {
            let client =
                WsClient::connect_from(Some([127, 0, 0, 2].into()), address, "/ws", None, None).await;
            if let Ok(mut client) = client {
                if let Ok((notice, _)) = client.until_closed().await {
                    refused += usize::from(notice.is_some());
                }
            }
        }
        refused
    });
    // Meanwhile clients with tokens arrive from 127.0.0.1 at 8 per second,
    // within that address's own share: every one gets in.
    let token = token_for("valid")?;
    for n in 0..16 {
        let path = format!("/ws?token={token}");
        let mut client =
            WsClient::connect_from(Some([127, 0, 0, 1].into()), address, &path, None, None).await?;
        let welcome = client.hello().await;
        assert!(welcome.is_ok(), "valid client {n} was turned away: {welcome:?}");
        tokio::time::sleep(std::time::Duration::from_millis(125)).await;
    }
    assert!(churner.await? >= 290, "the churner was turned away");
    let metrics = wtchat_tests::scrape_metrics(server.address).await?;
    let rate = wtchat_tests::metric(&metrics, "wtchat_admission_refusals_total{limit=\"rate\"}");
    assert_eq!(rate, Some(0.0), "nobody spent the shared budget:\n{metrics}");
    server.stop().await
}

/// A UDP relay that passes one client's packets to the server from another
/// loopback address (127.0.0.2) and drops every answer, counting the bytes
/// each way: the client's handshakes never complete, as when a flood of
/// Initial packets comes from spoofed or silent addresses.
struct BlackHoleRelay {
    address: std::net::SocketAddr,
    sent: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    answers: Arc<AtomicU64>,
}

impl BlackHoleRelay {
    async fn start(server: std::net::SocketAddr) -> Result<Self> {
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.2:0").await?);
        back.connect(server).await?;
        let address = front.local_addr()?;
        let (sent, answered, answers): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>) = Default::default();
        let (s, b) = (Arc::clone(&sent), back.clone());
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_536];
            while let Ok((n, _)) = front.recv_from(&mut buffer).await {
                s.fetch_add(n as u64, Ordering::Relaxed);
                let _ = b.send(&buffer[..n]).await;
            }
        });
        let (a, count) = (Arc::clone(&answered), Arc::clone(&answers));
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_536];
            while let Ok(n) = back.recv(&mut buffer).await {
                a.fetch_add(n as u64, Ordering::Relaxed);
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Self { address, sent, answered, answers })
    }
}

/// Starts `count` QUIC handshakes with `target` (a [`BlackHoleRelay`], so
/// that none completes); the attempts and the endpoint, to drop afterwards.
fn start_handshakes(
    target: std::net::SocketAddr,
    count: usize,
) -> Result<(Vec<quinn::Connecting>, quinn::Endpoint)> {
    // The answers never arrive, so the server's certificate is never checked.
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut tls = tls;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let client = quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls)?));
    let mut flooder = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    flooder.set_default_client_config(client);
    let attempts = (0..count).map(|_| flooder.connect(target, "localhost")).collect::<Result<_, _>>()?;
    Ok((attempts, flooder))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_handshakes_is_asked_to_validate_and_amplifies_nothing() -> Result<()> {
    let server = TestServer::start().await;
    let quic = server.quic_address.expect("QUIC is on");
    let relay = BlackHoleRelay::start(quic).await?;
    // A QUIC client whose every answer is lost starts 400 handshakes.
    let (attempts, flooder) = start_handshakes(relay.address, 400)?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (sent, answered) = (relay.sent.load(Ordering::Relaxed), relay.answered.load(Ordering::Relaxed));
    let answers = relay.answers.load(Ordering::Relaxed);
    eprintln!("handshake flood: {sent} bytes in, {answered} bytes in {answers} answers out");
    // Past the first few, every handshake was answered with a Retry, which
    // is smaller than the Initial that asked for it.
    assert!(answered * 2 <= sent, "the server answered {answered} bytes to {sent}: amplification");
    // Meanwhile a client from another address opens a session as usual.
    let mut bystander = wtchat_tests::WtClient::connect(&server).await?;
    bystander.join("calm", "bystander").await?;
    bystander.publish("calm", "unaffected").await?;
    assert_eq!(bystander.chat(1).await?[0].body, "unaffected");
    drop(attempts);
    flooder.close(0u32.into(), b"");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_handshakes_costs_the_server_no_memory_per_handshake() -> Result<()> {
    let certs = wtchat_tests::server::temp_dir("handshake-flood-certs");
    let certs_arg = certs.to_str().unwrap_or_default();
    let binary = wtchat_tests::binary::Binary::start(&["--listen", "127.0.0.1:0", "--cert-dir", certs_arg])?;
    let url = binary.webtransport_url.as_deref().expect("WebTransport is on");
    let authority = url.trim_start_matches("https://").split('/').next().unwrap_or_default();
    let relay = BlackHoleRelay::start(authority.parse()?).await?;
    let pid = binary.child.id();
    let before = rss_kib(pid)?;
    // 2,000 handshakes that never complete: answered at once, each would
    // hold about 37 KB for most of a minute, 74 MB in all.
    let (attempts, flooder) = start_handshakes(relay.address, 2_000)?;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let during = rss_kib(pid)?;
    eprintln!(
        "handshake flood: RSS {before} KiB before, {during} KiB with 2000 handshakes started, {} answers",
        relay.answers.load(Ordering::Relaxed)
    );
    assert!(during < before + 16 * 1024, "2000 half-open handshakes took {} KiB", during - before);
    drop(attempts);
    flooder.close(0u32.into(), b"");
    let _ = std::fs::remove_dir_all(certs);
    Ok(())
}

#[tokio::test]
async fn quic_connections_count_under_admission_before_they_ask_for_a_session() -> Result<()> {
    let server = TestServer::start_with(|c| c.max_connections_per_ip = 2).await;
    // Two connections that never ask for a session hold this address's
    // two places.
    let settings = [(0x33, 1), (0x2b60_3742, 1)];
    let first = wtchat_tests::h3::H3Client::connect(&server, &settings).await?;
    let second = wtchat_tests::h3::H3Client::connect(&server, &settings).await?;
    let (_, body) = wtchat_tests::http_get(server.address, "/status", &[]).await?;
    let status: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!((status["sessions"].as_u64(), status["admitted"].as_u64()), (Some(0), Some(2)), "{status}");
    // A third from the same address is refused at the handshake.
    let third = wtchat_tests::h3::H3Client::connect(&server, &settings).await;
    assert!(third.is_err(), "a third QUIC connection was let in");
    drop((first, second));
    server.stop().await
}

/// Sends a join and returns the refusal's code, if it was refused.
async fn join_refusal(
    client: &mut WsClient,
    room: &str,
    name: &str,
) -> Result<Option<wtchat_protocol::ErrorCode>> {
    client
        .send(wtchat_protocol::ClientMessage::Join {
            room: room.into(),
            display_name: name.into(),
            resume: None,
        })
        .await?;
    loop {
        match client.next_message().await? {
            wtchat_protocol::ServerMessage::Error(error) => return Ok(Some(error.code)),
            wtchat_protocol::ServerMessage::Joined(_) => return Ok(None),
            _ => {}
        }
    }
}

#[tokio::test]
async fn names_that_would_pass_for_someone_else_are_refused_from_clients_and_tokens() -> Result<()> {
    let server = TestServer::start().await;
    let mut client = WsClient::connect(&server).await?;
    let invalid = Some(wtchat_protocol::ErrorCode::INVALID_DISPLAY_NAME);
    for name in ["al\u{200b}ice", "\u{200d}", "eve\u{202e}nimda", "bob\u{2028}admin: hi"] {
        assert_eq!(join_refusal(&mut client, "names", name).await?, invalid, "{name:?}");
    }
    assert_eq!(join_refusal(&mut client, "names", "Mallory 👩\u{200d}💻").await?, None);
    server.stop().await?;
    // A token's name claim, which replaces the name a client asks for, is
    // held to the same rules.
    let server = TestServer::start_with(with_auth).await;
    let token = token_with("m2", serde_json::json!({"name": "admin\u{202e}"}))?;
    let mut forged = WsClient::connect_with_token(&server, &token).await?;
    forged.hello().await?;
    assert_eq!(join_refusal(&mut forged, "names", "anything").await?, invalid);
    server.stop().await
}

/// The status line of a WebSocket upgrade sent by hand with these `Host`
/// and `Origin` header bytes.
async fn upgrade_status(server: &TestServer, host: &str, origin: &[u8]) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.address).await?;
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: "
    )
    .into_bytes();
    request.extend_from_slice(origin);
    request.extend_from_slice(b"\r\n\r\n");
    tcp.write_all(&request).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n") {
        head.push(tcp.read_u8().await?);
    }
    Ok(String::from_utf8_lossy(&head).trim().to_owned())
}

#[tokio::test]
async fn malformed_origins_are_refused_and_the_own_origin_shortcut_can_be_turned_off() -> Result<()> {
    let server = TestServer::start_with(|c| c.allowed_origins = vec!["*".into()]).await;
    let host = server.address.to_string();
    // Even where every origin is welcome, one that is not an origin is not.
    for bad in [&b"https://\xc3\xa9vil.example"[..], b"https://evil.example/path", b"javascript:alert(1)"] {
        let status = upgrade_status(&server, &host, bad).await?;
        assert!(status.contains("403"), "{} got {status}", String::from_utf8_lossy(bad));
    }
    assert!(upgrade_status(&server, &host, b"https://fine.example").await?.contains("101"));
    server.stop().await?;

    // By default a page from the host the request names passes, which a
    // DNS-rebinding page also satisfies; listing origins with the shortcut
    // off refuses it.
    let rebinding = |server: &TestServer| {
        let port = server.address.port();
        (format!("rebind.example:{port}"), format!("http://rebind.example:{port}"))
    };
    let default = TestServer::start().await;
    let (host, origin) = rebinding(&default);
    assert!(upgrade_status(&default, &host, origin.as_bytes()).await?.contains("101"));
    default.stop().await?;
    let strict = TestServer::start_with(|c| {
        c.allowed_origins = vec!["https://chat.example".into()];
        c.no_own_origin = true;
    })
    .await;
    let (host, origin) = rebinding(&strict);
    assert!(upgrade_status(&strict, &host, origin.as_bytes()).await?.contains("403"));
    let own = format!("http://{}", strict.address);
    assert!(upgrade_status(&strict, &strict.address.to_string(), own.as_bytes()).await?.contains("403"));
    let listed = upgrade_status(&strict, &strict.address.to_string(), b"https://chat.example").await?;
    assert!(listed.contains("101"), "{listed}");
    strict.stop().await
}

/// A client binary frame, masked as RFC 6455 requires (with a zero mask,
/// which leaves the payload as it is).
fn masked_binary(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x82];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn the_closing_notice_reaches_a_client_that_is_still_sending() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    for round in 0..3 {
        let tcp = raw_websocket(&server).await?;
        let (read, mut write) = tcp.into_split();
        // A frame of an unknown protocol version closes the session at
        // once; eight megabytes of frames are on their way behind it, more
        // than the socket buffers hold.
        let mut burst = masked_binary(&[99, 0, 0]);
        let junk = masked_binary(&[wtchat_protocol::PROTOCOL_VERSION, 0xff, 0xff].repeat(300));
        for _ in 0..9000 {
            burst.extend_from_slice(&junk);
        }
        let sending = tokio::spawn(async move { write.write_all(&burst).await.map(|()| write) });
        let mut read = read;
        let code = close_code_of_half(&mut read, PATIENCE).await?;
        assert_eq!(code, Some(wtchat_protocol::ReasonCode::UNSUPPORTED_VERSION.0), "round {round}");
        // The server read what was in flight rather than resetting the
        // connection under the client's feet.
        let sent = sending.await?;
        assert!(sent.is_ok(), "round {round}: the connection was reset: {:?}", sent.err());
    }
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churning_refused_connections_cannot_flood_the_log() -> Result<()> {
    let options = ["--log", "info", "--auth-hs256-secret", SECRET];
    let (binary, certs) = websocket_binary("log", &options)?;
    // 300 connections without a token, as fast as they come.
    let mut refused = 0;
    let started = std::time::Instant::now();
    for _ in 0..300 {
        let mut client = WsClient::connect_at(binary.address, None, None).await?;
        let (notice, _) = client.until_closed().await?;
        refused += usize::from(notice.is_some_and(|n| n.code == wtchat_protocol::ReasonCode::UNAUTHORIZED));
    }
    let seconds = started.elapsed().as_secs() + 1;
    assert_eq!(refused, 300);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let lines = binary.log.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let refusals = lines.iter().filter(|line| line.contains("refused a token")).count() as u64;
    eprintln!("{refusals} log lines for 300 refused tokens in {seconds} s");
    assert!(refusals > 0, "refusals are still logged");
    assert!(refusals <= 5 * (seconds + 1), "{refusals} lines in {seconds} s");
    let _ = std::fs::remove_dir_all(certs);
    Ok(())
}

#[tokio::test]
async fn joining_and_leaving_in_a_loop_is_limited_and_then_closed() -> Result<()> {
    use wtchat_protocol::{ClientMessage, ErrorCode, ReasonCode, ServerMessage};
    let server = TestServer::start().await;
    let mut bystander = WsClient::connect(&server).await?;
    bystander.join("busy", "bystander").await?;
    let mut churner = WsClient::connect(&server).await?;
    // Requests go out as fast as they can, without waiting for answers.
    for n in 0..400 {
        let message = if n % 2 == 0 {
            ClientMessage::Join { room: "busy".into(), display_name: "churner".into(), resume: None }
        } else {
            ClientMessage::Leave { room: "busy".into() }
        };
        if churner.send(message).await.is_err() {
            break;
        }
    }
    let mut limited = 0;
    let code = loop {
        match churner.receive().await? {
            wtchat_tests::Received::Message(ServerMessage::Error(e)) if e.code == ErrorCode::RATE_LIMITED => {
                limited += 1
            }
            wtchat_tests::Received::Closed(code) => break code,
            _ => {}
        }
    };
    assert!(limited > 0, "no change was refused");
    assert_eq!(code, Some(ReasonCode::FLOODING.0));
    // The bystander heard a bounded number of comings and goings, and still
    // chats.
    bystander.publish("busy", "after the storm").await?;
    let mut presences = 0;
    loop {
        match bystander.next_message().await? {
            ServerMessage::PresenceDiff(diff) => presences += diff.joins + diff.leaves,
            ServerMessage::Message(m) if m.body == "after the storm" => break,
            _ => {}
        }
    }
    assert!(presences <= 60, "{presences} presence notices reached the bystander");
    server.stop().await
}

/// Publishes as fast as the socket takes it until the server closes the
/// session; the close code.
async fn flood_until_closed(client: &mut WsClient, room: &str) -> Result<Option<u16>> {
    for n in 0..500 {
        if client.publish(room, &format!("flood {n}")).await.is_err() {
            break;
        }
    }
    let (_, code) = client.until_closed().await?;
    Ok(code)
}

#[tokio::test]
async fn a_client_closed_for_flooding_waits_out_its_hint_before_it_may_return() -> Result<()> {
    let flooding = Some(wtchat_protocol::ReasonCode::FLOODING.0);
    let limits = |c: &mut wtchat_server::Config| {
        c.publish_rate_per_sec = 5;
        c.publish_burst = 5;
        c.flood_tolerance = 3;
    };
    // Anonymous clients are known by their address.
    let server = TestServer::start_with(limits).await;
    let mut flooder = WsClient::connect(&server).await?;
    flooder.join("loud", "flooder").await?;
    assert_eq!(flood_until_closed(&mut flooder, "loud").await?, flooding);
    let mut again = WsClient::connect_quietly(&server).await?;
    let (notice, code) = again.until_closed().await?;
    let notice = notice.expect("a notice");
    assert_eq!((notice.code.0, code), (wtchat_protocol::ReasonCode::FLOODING.0, flooding));
    assert!(notice.retry_after_ms.is_some_and(|ms| ms > 5_000), "the hint is the time left: {notice:?}");
    let elsewhere =
        WsClient::connect_from(Some([127, 0, 0, 2].into()), server.address, "/ws", None, None).await;
    elsewhere?.hello().await?;
    server.stop().await?;

    // Users are known by their token, from any address.
    let server = TestServer::start_with(|c| {
        limits(c);
        with_auth(c);
    })
    .await;
    let token = token_for("loud-user")?;
    let mut flooder = WsClient::connect_with_token(&server, &token).await?;
    flooder.hello().await?;
    flooder.join("loud", "ignored").await?;
    assert_eq!(flood_until_closed(&mut flooder, "loud").await?, flooding);
    let path = format!("/ws?token={token}");
    let mut moved =
        WsClient::connect_from(Some([127, 0, 0, 2].into()), server.address, &path, None, None).await?;
    assert_eq!(moved.until_closed().await?.1, flooding, "the same user from another address");
    let mut other = WsClient::connect_with_token(&server, &token_for("quiet-user")?).await?;
    other.hello().await?;
    server.stop().await
}

/// A client from `local` that has said hello, with `path` carrying any token.
async fn greeted_from(server: &TestServer, local: [u8; 4], path: &str) -> Result<WsClient> {
    let mut client = WsClient::connect_from(Some(local.into()), server.address, path, None, None).await?;
    client.hello().await?;
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_party_cannot_hold_open_more_than_its_quota_of_rooms() -> Result<()> {
    use wtchat_protocol::ErrorCode;
    let full = Some(ErrorCode::ROOM_LIMIT_REACHED);
    let quota = |c: &mut wtchat_server::Config| {
        c.max_rooms_per_user = 40;
        c.max_rooms_per_session = 32;
    };
    let server = TestServer::start_with(quota).await;
    // A room someone else opened, which the hoarder may always join.
    let mut bystander = greeted_from(&server, [127, 0, 0, 2], "/ws").await?;
    bystander.join("lobby", "bystander").await?;
    // Anonymous sessions from one address share its quota: 32 rooms in the
    // first session, 8 in the second, then no more.
    let mut first = greeted_from(&server, [127, 0, 0, 1], "/ws").await?;
    for r in 0..32 {
        first.join(&format!("hoard-{r}"), "hoarder").await?;
    }
    let mut second = greeted_from(&server, [127, 0, 0, 1], "/ws").await?;
    for r in 32..40 {
        second.join(&format!("hoard-{r}"), "hoarder").await?;
    }
    assert_eq!(join_refusal(&mut second, "hoard-40", "hoarder").await?, full);
    assert_eq!(join_refusal(&mut second, "lobby", "hoarder").await?, None, "a room that exists");
    // Another address opens its own rooms, and the refusals cost the
    // hoarder nothing: it is still open and chatting.
    assert_eq!(join_refusal(&mut bystander, "hoard-40", "bystander").await?, None);
    second.publish("lobby", "still here").await?;
    assert_eq!(bystander.chat(1).await?[0].body, "still here");
    // A room's place goes back when the room closes: the first session's
    // 32 rooms close with it.
    drop(first);
    let mut freed = false;
    for attempt in 0..50 {
        if join_refusal(&mut second, &format!("after-{attempt}"), "hoarder").await?.is_none() {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "the closed session's rooms were not given back");
    server.stop().await?;

    // A user is one party from any address, and users behind one address
    // each have their own quota.
    let server = TestServer::start_with(|c| {
        quota(c);
        with_auth(c);
    })
    .await;
    let path = |user: &str| -> Result<String> { Ok(format!("/ws?token={}", token_for(user)?)) };
    let mut here = greeted_from(&server, [127, 0, 0, 1], &path("hoarder")?).await?;
    for r in 0..32 {
        here.join(&format!("user-{r}"), "hoarder").await?;
    }
    let mut there = greeted_from(&server, [127, 0, 0, 3], &path("hoarder")?).await?;
    for r in 32..40 {
        there.join(&format!("user-{r}"), "hoarder").await?;
    }
    assert_eq!(join_refusal(&mut there, "user-40", "hoarder").await?, full);
    let mut neighbour = greeted_from(&server, [127, 0, 0, 1], &path("neighbour")?).await?;
    assert_eq!(join_refusal(&mut neighbour, "user-40", "neighbour").await?, None);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_only_pings_is_closed_when_its_hello_is_overdue() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    // A heartbeat far shorter than the hello deadline: the pings keep the
    // session from timing out, so only the hello deadline can close it.
    let server = TestServer::start_with(|c| {
        c.heartbeat_interval_ms = 1_000;
        c.heartbeat_timeout_ms = 2_500;
    })
    .await;
    let tcp = raw_websocket(&server).await?;
    let (mut reading, mut writing) = tcp.into_split();
    let pinger = tokio::spawn(async move {
        // A masked ping with an empty payload, once a second.
        let ping = [0x89, 0x80, 0, 0, 0, 0];
        while writing.write_all(&ping).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
        }
    });
    let started = std::time::Instant::now();
    // The hello deadline is 10 s; the usual patience comes on top of it.
    let code = close_code_of_half(&mut reading, PATIENCE + std::time::Duration::from_secs(10)).await?;
    let waited = started.elapsed();
    pinger.abort();
    assert_eq!(code, Some(wtchat_protocol::ReasonCode::PROTOCOL_VIOLATION.0));
    assert!(waited >= std::time::Duration::from_secs(9), "closed after {waited:?}, before the deadline");
    server.stop().await
}

/// Connects from `local` with `path`, joins `room`, publishes a burst of
/// `burst` and waits for each to be answered, then closes; how many were
/// accepted.
async fn publish_burst_and_close(
    server: &TestServer,
    local: [u8; 4],
    path: &str,
    room: &str,
    burst: usize,
) -> Result<usize> {
    use wtchat_protocol::{ErrorCode, ServerMessage};
    let mut client = greeted_from(server, local, path).await?;
    client.join(room, "reconnector").await?;
    for n in 0..burst {
        client.publish(room, &format!("burst {n}")).await?;
    }
    let (mut accepted, mut refused) = (0, 0);
    while accepted + refused < burst {
        match client.next_message().await? {
            ServerMessage::Message(m) if m.body.starts_with("burst ") => accepted += 1,
            ServerMessage::Error(e) if e.code == ErrorCode::RATE_LIMITED => refused += 1,
            _ => {}
        }
    }
    client.send_raw(tokio_tungstenite::tungstenite::Message::Close(None)).await?;
    client.until_closed().await?;
    Ok(accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_does_not_restore_a_users_spent_burst_and_anonymous_sessions_start_full() -> Result<()> {
    let server = TestServer::start_with(|c| {
        with_auth(c);
        c.publish_burst = 5;
        c.publish_rate_per_sec = 2;
        // Refusals here must not close anyone: the cool-down is tested apart.
        c.flood_tolerance = 1_000;
    })
    .await;
    let path = format!("/ws?token={}", token_for("reconnector")?);
    let (cycles, burst) = (8, 5);
    let started = std::time::Instant::now();
    let mut accepted = 0;
    // From two addresses in turn: a user is one party wherever they are.
    for cycle in 0..cycles {
        let local = if cycle % 2 == 0 { [127, 0, 0, 1] } else { [127, 0, 0, 3] };
        accepted += publish_burst_and_close(&server, local, &path, "reconnect", burst).await?;
    }
    // One burst, and what the rate refilled while the user was away.
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = burst as f64 + 2.0 * elapsed + 1.0;
    eprintln!("{accepted} of {} publishes accepted in {elapsed:.2} s; {allowed:.1} allowed", cycles * burst);
    assert!(accepted as f64 <= allowed, "{accepted} accepted, more than {allowed:.1}");
    assert!(accepted >= burst, "the first burst was refused");
    // Another user starts with a full burst.
    let other = format!("/ws?token={}", token_for("someone-else")?);
    assert_eq!(publish_burst_and_close(&server, [127, 0, 0, 1], &other, "reconnect", burst).await?, burst);
    server.stop().await?;

    // Anonymous sessions from one address, as behind a NAT, each start
    // with their own burst: their reconnecting is bounded by admission.
    let server = TestServer::start_with(|c| {
        c.publish_burst = 5;
        c.publish_rate_per_sec = 2;
    })
    .await;
    for cycle in 0..4 {
        let accepted = publish_burst_and_close(&server, [127, 0, 0, 1], "/ws", "anonymous", burst).await?;
        assert_eq!(accepted, burst, "anonymous session {cycle}");
    }
    server.stop().await
}
