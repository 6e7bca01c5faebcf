//! Peers that stop answering at the transport level: a TCP connection that
//! never finishes its request, and a QUIC connection whose packets stop
//! arriving altogether. Each is cut off and nothing else is affected.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use wtchat_protocol::PresenceChange;
use wtchat_tests::webtransport::published_hashes;
use wtchat_tests::{TestServer, WsClient, WtClient};

/// A UDP relay on loopback between one client and the server, which the
/// test can cut: after that no packet passes in either direction, as when a
/// client's network drops without a word.
struct Relay {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        back.connect(server).await?;
        let address = front.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let client: Arc<tokio::sync::Mutex<Option<SocketAddr>>> = Arc::default();
        let (f, b, c, k) = (front.clone(), back.clone(), client.clone(), cut.clone());
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_536];
            while let Ok((n, from)) = f.recv_from(&mut buffer).await {
                *c.lock().await = Some(from);
                if !k.load(Ordering::Relaxed) {
                    let _ = b.send(&buffer[..n]).await;
                }
            }
        });
        let (f, k) = (front, cut.clone());
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_536];
            while let Ok(n) = back.recv(&mut buffer).await {
                let to = *client.lock().await;
                if let (Some(to), false) = (to, k.load(Ordering::Relaxed)) {
                    let _ = f.send_to(&buffer[..n], to).await;
                }
            }
        });
        Ok(Self { address, cut })
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn a_quic_client_that_stops_answering_is_removed_and_its_room_told() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.heartbeat_interval_ms = 200;
        c.heartbeat_timeout_ms = 800;
    })
    .await;
    let mut watcher = WsClient::connect(&server).await?;
    watcher.join("net", "watcher").await?;
    let relay = Relay::start(server.quic_address.context("QUIC is on")?).await?;
    let hashes = published_hashes(&server).await?;
    let mut lost = WtClient::open(&format!("https://{}/wt", relay.address), &hashes, None).await?;
    lost.hello().await?;
    lost.join("net", "lost").await?;
    server.wait_for_sessions(2).await?;
    relay.cut();
    let started = Instant::now();
    // The watcher keeps pinging, so it is never silent itself, and sees the
    // lost member disconnected; the server forgets the session.
    watcher.ping_until_presence("lost", PresenceChange::Disconnected, Duration::from_millis(100)).await?;
    server.wait_for_sessions(1).await?;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "noticed within the heartbeat, not QUIC's idle timeout"
    );
    watcher.publish("net", "still here").await?;
    assert_eq!(watcher.chat(1).await?[0].body, "still here");
    drop(lost);
    server.stop().await
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_request_is_closed() -> Result<()> {
    let server = TestServer::start().await;
    let mut member = WsClient::connect(&server).await?;
    member.join("lobby", "member").await?;
    // Half a request line, then nothing: the slow-loris pattern.
    let mut stalled = TcpStream::connect(server.address).await?;
    stalled.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await?;
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(20), stalled.read(&mut buffer)).await;
    let read = read.context("the server kept a stalled request open")??;
    let answer = String::from_utf8_lossy(&buffer[..read]);
    assert!(read == 0 || answer.starts_with("HTTP/1.1 408"), "closed, or told it timed out: {answer:?}");
    assert!(started.elapsed() >= Duration::from_secs(5), "not before the header timeout");
    // Meanwhile the server served everyone else.
    member.publish("lobby", "unaffected").await?;
    assert_eq!(member.chat(1).await?[0].body, "unaffected");
    server.stop().await
}
