//! Helpers for end-to-end tests: the real server on a loopback port, and real
//! clients that speak the protocol over real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use wtchat_protocol::{
    ChatMessage, ClientFrame, ClientMessage, Joined, PROTOCOL_VERSION, Resume, ServerMessage, Welcome,
    decode, encode,
};
use wtchat_server::certificate_store::CertificateStore;
use wtchat_server::{Config, Hub, Server};

/// How long a test waits for something it expects before failing. Generous,
/// because CI machines are slow; no test asserts how fast anything is.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The real server, listening on a free loopback port.
pub struct TestServer {
    /// Where it listens for HTTP and WebSocket.
    pub address: SocketAddr,
    /// Where it listens for WebTransport, if it does.
    pub quic_address: Option<SocketAddr>,
    /// Its core, for counts.
    pub hub: Arc<Hub>,
    /// Its certificates.
    pub certificates: Arc<CertificateStore>,
    /// Its certificate folder, removed when the server is dropped.
    cert_dir: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with the default configuration, adjusted.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let cert_dir = std::env::temp_dir().join(format!(
            "wtchat-test-certs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            shutdown_timeout: Duration::from_secs(5),
            cert_dir: cert_dir.clone(),
            ..Config::default()
        };
        adjust(&mut config);
        config.validate().expect("the test configuration is valid");
        let server = Server::new(config).expect("certificates");
        let listeners = server.bind().await.expect("bind loopback ports");
        let address = listeners.tcp_addresses()[0];
        let quic_address = listeners.quic_addresses().first().copied();
        let hub = server.hub().clone();
        let certificates = server.certificates().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listeners, async move {
            let _ = stopped.await;
        }));
        Self { address, quic_address, hub, certificates, cert_dir, stop: Some(stop), task: Some(task) }
    }

    /// Starts a server with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }

    /// Begins a graceful shutdown and waits for the server to return.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().context("stopped twice")?;
        tokio::time::timeout(PATIENCE, task).await.context("the server did not stop in time")???;
        Ok(())
    }

    /// Waits until the server has `n` live sessions.
    pub async fn wait_for_sessions(&self, n: usize) -> Result<()> {
        let hub = self.hub.clone();
        eventually(|| hub.session_count() == n)
            .await
            .with_context(|| format!("expected {n} sessions, the server has {}", self.hub.session_count()))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.cert_dir);
    }
}

/// Polls a condition until it holds or patience runs out.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            bail!("the condition never held");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// What a client can receive.
#[derive(Debug)]
pub enum Received {
    /// A protocol message.
    Message(ServerMessage),
    /// The WebSocket closed, with the close frame if there was one.
    Closed(Option<CloseFrame>),
}

/// A protocol client over a real WebSocket.
pub struct WsClient {
    stream: WebSocketStream<TcpStream>,
    next_request: u32,
    /// The welcome, once hello was answered.
    pub welcome: Option<Welcome>,
}

impl WsClient {
    /// Connects and says hello.
    pub async fn connect(server: &TestServer) -> Result<Self> {
        let mut client = Self::connect_quietly(server).await?;
        client.hello().await?;
        Ok(client)
    }

    /// Connects without saying anything.
    pub async fn connect_quietly(server: &TestServer) -> Result<Self> {
        Self::connect_with(server, None, None).await
    }

    /// Connects with an `Origin` header and, optionally, a small socket
    /// receive buffer (so that a client that stops reading backs up quickly).
    pub async fn connect_with(
        server: &TestServer,
        origin: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Result<Self> {
        let socket = TcpSocket::new_v4()?;
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let tcp = socket.connect(server.address).await?;
        let mut request = server.ws_url().into_client_request()?;
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse()?);
        }
        let (stream, _) = tokio_tungstenite::client_async(request, tcp).await?;
        Ok(Self { stream, next_request: 1, welcome: None })
    }

    /// Says hello and waits for the welcome.
    pub async fn hello(&mut self) -> Result<Welcome> {
        self.send(ClientMessage::Hello {
            protocol_version: u16::from(PROTOCOL_VERSION),
            client_name: "wtchat-tests".into(),
        })
        .await?;
        match self.next_message().await? {
            ServerMessage::Welcome(welcome) => {
                self.welcome = Some(welcome.clone());
                Ok(welcome)
            }
            other => bail!("expected a welcome, got {other:?}"),
        }
    }

    /// Sends a request; returns its id.
    pub async fn send(&mut self, message: ClientMessage) -> Result<u32> {
        let request_id = self.next_request;
        self.next_request += 1;
        self.send_raw(Message::Binary(encode(&ClientFrame { request_id, message }).into())).await?;
        Ok(request_id)
    }

    /// Sends any WebSocket message.
    pub async fn send_raw(&mut self, message: Message) -> Result<()> {
        self.stream.send(message).await?;
        Ok(())
    }

    /// Sends bytes as one binary message.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.send_raw(Message::Binary(Bytes::from(bytes))).await
    }

    /// Receives the next protocol message or the close.
    pub async fn receive(&mut self) -> Result<Received> {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.stream.next()).await.context("nothing arrived")?;
            match next {
                Some(Ok(Message::Binary(body))) => {
                    return Ok(Received::Message(
                        decode(&body, usize::MAX).context("the server sent a bad frame")?,
                    ));
                }
                Some(Ok(Message::Close(frame))) => return Ok(Received::Closed(frame)),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => bail!("unexpected WebSocket message {other:?}"),
                Some(Err(error)) => return Err(anyhow!(error).context("the WebSocket failed")),
                None => return Ok(Received::Closed(None)),
            }
        }
    }

    /// Receives the next protocol message; a close is an error.
    pub async fn next_message(&mut self) -> Result<ServerMessage> {
        match self.receive().await? {
            Received::Message(message) => Ok(message),
            Received::Closed(frame) => bail!("the server closed the connection: {frame:?}"),
        }
    }

    /// Receives until the server closes; returns the closing notice and the
    /// close frame, skipping anything before them.
    pub async fn until_closed(&mut self) -> Result<(Option<wtchat_protocol::Closing>, Option<CloseFrame>)> {
        let mut notice = None;
        loop {
            match self.receive().await? {
                Received::Message(ServerMessage::Closing(closing)) => notice = Some(closing),
                Received::Message(_) => {}
                Received::Closed(frame) => return Ok((notice, frame)),
            }
        }
    }

    /// Joins a room; returns the answer and the history that follows it.
    pub async fn join(&mut self, room: &str, name: &str) -> Result<(Joined, Vec<ChatMessage>)> {
        self.join_from(room, name, None).await
    }

    /// Joins a room resuming from a position.
    pub async fn join_from(
        &mut self,
        room: &str,
        name: &str,
        resume: Option<Resume>,
    ) -> Result<(Joined, Vec<ChatMessage>)> {
        self.send(ClientMessage::Join { room: room.into(), display_name: name.into(), resume }).await?;
        let joined = loop {
            match self.next_message().await? {
                ServerMessage::Joined(joined) => break joined,
                ServerMessage::Error(error) => bail!("join refused: {error:?}"),
                _ => continue,
            }
        };
        let mut history = Vec::new();
        for _ in 0..joined.history.count {
            match self.next_message().await? {
                ServerMessage::Message(chat) => history.push(chat),
                other => bail!("expected history, got {other:?}"),
            }
        }
        Ok((joined, history))
    }

    /// Publishes a message.
    pub async fn publish(&mut self, room: &str, body: &str) -> Result<u32> {
        self.send(ClientMessage::Publish { room: room.into(), body: body.into() }).await
    }

    /// Receives `n` chat messages, skipping presence and pongs; an error
    /// frame or a close is a failure.
    pub async fn chat(&mut self, n: usize) -> Result<Vec<ChatMessage>> {
        let mut messages = Vec::with_capacity(n);
        while messages.len() < n {
            match self.next_message().await? {
                ServerMessage::Message(chat) => messages.push(chat),
                ServerMessage::Error(error) => {
                    bail!("error frame after {} messages: {error:?}", messages.len())
                }
                _ => {}
            }
        }
        Ok(messages)
    }

    /// Receives until a message matches, skipping others.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&ServerMessage) -> Option<T>) -> Result<T> {
        loop {
            let message = self.next_message().await?;
            if let Some(found) = pick(&message) {
                return Ok(found);
            }
        }
    }

    /// Drops the TCP connection without a WebSocket close, as a crashed
    /// client or a pulled cable would.
    pub fn vanish(self) {
        drop(self.stream.into_inner());
    }
}

/// A minimal HTTP/1.1 GET; returns the status code and the body.
pub async fn http_get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response)).await??;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {response:?}"))?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((status, body))
}
