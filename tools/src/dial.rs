//! Connecting to a server over either transport, as a native client.
//!
//! A [`Dialer`] asks the server where its transports are (`GET /transports`),
//! then opens sessions: WebSocket with tokio-tungstenite, WebTransport with
//! wtransport (one QUIC endpoint shared by every session, trusting the
//! certificate hashes the server publishes). Each session is split into an
//! [`Outgoing`] half and an [`Incoming`] half so that a task can read while
//! another writes.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wtchat_protocol::{
    ClientFrame, ClientMessage, Closing, FallbackReason, LENGTH_PREFIX_BYTES, PROTOCOL_VERSION,
    ServerMessage, Welcome, decode, encode, split_stream_frame,
};

/// How many QUIC endpoints (UDP sockets) a dialer spreads sessions over.
const ENDPOINTS: usize = 16;

/// Which transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// WebSocket.
    Ws,
    /// WebTransport over HTTP/3.
    Wt,
    /// WebTransport if it connects within two seconds, WebSocket otherwise.
    Auto,
}

/// Where the server's transports are.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Plan {
    webtransport: Option<WebTransportPlan>,
    websocket: WebSocketPlan,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebTransportPlan {
    url: String,
    certificate_hashes: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Deserialize)]
struct WebSocketPlan {
    url: String,
}

/// How a WebSocket session is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebSocketClient {
    /// tokio-tungstenite: complete and careful, for people and tests.
    Tungstenite,
    /// A minimal client that parses frames in place from one read buffer,
    /// with no allocation per message: cheap enough that a load generator
    /// does not starve the server it shares a machine with.
    Raw,
}

/// Opens sessions to one server.
pub struct Dialer {
    plan: Plan,
    /// QUIC endpoints for WebTransport sessions, created on first use. Each
    /// endpoint is one UDP socket whose incoming packets one task sorts to
    /// their connections; spreading many sessions over a few endpoints keeps
    /// that task from becoming the load generator's bottleneck.
    endpoints: Vec<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>>,
    /// The endpoint the next session uses.
    next_endpoint: usize,
    /// Which WebSocket client to use.
    websocket_client: WebSocketClient,
    /// The token presented at connect, if the server wants one.
    token: Option<String>,
}

/// A greeted session, split in two.
pub struct Session {
    /// The transport it uses.
    pub transport: Transport,
    /// The server's welcome.
    pub welcome: Welcome,
    /// The sending half.
    pub outgoing: Outgoing,
    /// The receiving half.
    pub incoming: Incoming,
}

impl Dialer {
    /// Asks the server at `address` (host:port of its TCP listener) where its
    /// transports are.
    pub async fn new(address: SocketAddr) -> Result<Self> {
        let body = http_get(address, "/transports").await?;
        let plan: Plan = serde_json::from_str(&body).context("the server's /transports answer")?;
        Ok(Self {
            plan,
            endpoints: Vec::new(),
            next_endpoint: 0,
            websocket_client: WebSocketClient::Tungstenite,
            token: None,
        })
    }

    /// Presents `token` (a JWT) with every session.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// `url` with the token in its query, if there is one. A JWT is
    /// URL-safe base64 and dots, so it needs no escaping.
    fn with_token_query(&self, url: &str) -> String {
        match &self.token {
            None => url.to_owned(),
            Some(token) => {
                let separator = if url.contains('?') { '&' } else { '?' };
                format!("{url}{separator}token={token}")
            }
        }
    }

    /// Chooses the WebSocket client implementation.
    pub fn with_websocket_client(mut self, client: WebSocketClient) -> Self {
        self.websocket_client = client;
        self
    }

    /// Opens a session and says hello.
    pub async fn open(&mut self, transport: Transport, client_name: &str) -> Result<Session> {
        match transport {
            Transport::Ws => self.open_websocket(client_name, None).await,
            Transport::Wt => self.open_webtransport(client_name).await,
            Transport::Auto => {
                if self.plan.webtransport.is_none() {
                    return self.open_websocket(client_name, Some(FallbackReason::NOT_OFFERED)).await;
                }
                let attempt =
                    tokio::time::timeout(Duration::from_secs(2), self.open_webtransport(client_name));
                match attempt.await {
                    Ok(Ok(session)) => Ok(session),
                    Ok(Err(_)) => self.open_websocket(client_name, Some(FallbackReason::FAILED)).await,
                    Err(_) => self.open_websocket(client_name, Some(FallbackReason::TIMEOUT)).await,
                }
            }
        }
    }

    async fn open_websocket(
        &mut self,
        client_name: &str,
        fallback: Option<FallbackReason>,
    ) -> Result<Session> {
        let url = self.with_token_query(&self.plan.websocket.url);
        if self.websocket_client == WebSocketClient::Raw {
            let (read, write, leftover) = raw_websocket_handshake(&url).await?;
            let incoming = Incoming::RawWs { read, buffer: leftover };
            return greet(Transport::Ws, Outgoing::RawWs(write), incoming, client_name, fallback).await;
        }
        let (stream, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("WebSocket to {}", self.plan.websocket.url))?;
        let (sink, stream) = stream.split();
        greet(Transport::Ws, Outgoing::Ws(sink), Incoming::Ws(stream), client_name, fallback).await
    }

    async fn open_webtransport(&mut self, client_name: &str) -> Result<Session> {
        let plan = self.plan.webtransport.clone().context("the server offers no WebTransport")?;
        if self.endpoints.len() < ENDPOINTS {
            let hashes =
                plan.certificate_hashes.iter().filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok());
            let config = wtransport::ClientConfig::builder()
                .with_bind_socket(roomy_udp_socket(plan.url.contains("://["))?)
                .with_server_certificate_hashes(hashes.map(wtransport::tls::Sha256Digest::new))
                .keep_alive_interval(Some(Duration::from_secs(5)))
                .build();
            self.endpoints.push(wtransport::Endpoint::client(config)?);
        }
        let endpoint = &self.endpoints[self.next_endpoint % self.endpoints.len()];
        self.next_endpoint += 1;
        let url = self.with_token_query(&plan.url);
        let connection =
            endpoint.connect(&url).await.with_context(|| format!("WebTransport to {}", plan.url))?;
        let (send, recv) = connection.open_bi().await?.await?;
        let outgoing = Outgoing::Wt { send, connection: connection.clone() };
        let incoming = Incoming::Wt { recv, connection, buffer: BytesMut::new() };
        greet(Transport::Wt, outgoing, incoming, client_name, None).await
    }
}

/// The server turned a session away before its welcome, with this notice
/// (overloaded, an invalid token); whether and when to try again is the
/// notice's to say.
#[derive(Debug, Clone)]
pub struct Refused(pub Closing);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server turned the session away: {} ({})", self.0.text, self.0.code)
    }
}

impl std::error::Error for Refused {}

async fn greet(
    transport: Transport,
    mut outgoing: Outgoing,
    mut incoming: Incoming,
    name: &str,
    fallback: Option<FallbackReason>,
) -> Result<Session> {
    let hello = ClientMessage::Hello {
        protocol_version: u16::from(PROTOCOL_VERSION),
        client_name: name.into(),
        fallback: fallback.map(|reason| reason.name().to_owned()),
    };
    outgoing.send(&encode(&ClientFrame { request_id: 0, message: hello })).await?;
    match incoming.next().await {
        Some(Received::Frame(body)) => match decode::<ServerMessage>(&body, usize::MAX)? {
            ServerMessage::Welcome(welcome) => Ok(Session { transport, welcome, outgoing, incoming }),
            ServerMessage::Closing(closing) => Err(Refused(closing).into()),
            other => bail!("expected a welcome, got {other:?}"),
        },
        Some(Received::Closed(why)) => bail!("closed before the welcome: {why}"),
        None => bail!("closed before the welcome"),
    }
}

/// Opens a TCP connection and performs the WebSocket upgrade by hand.
/// Returns the halves and any bytes read past the response.
async fn raw_websocket_handshake(url: &str) -> Result<(OwnedReadHalf, OwnedWriteHalf, BytesMut)> {
    let rest = url.strip_prefix("ws://").context("the raw client speaks ws:// only")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let mut stream =
        TcpStream::connect(authority).await.with_context(|| format!("connect to {authority}"))?;
    stream.set_nodelay(true)?;
    let key = base64_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buffer = BytesMut::with_capacity(16 * 1024);
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > 8192 || stream.read_buf(&mut buffer).await? == 0 {
            bail!("no WebSocket upgrade response");
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    if !head.starts_with("HTTP/1.1 101") {
        bail!("WebSocket upgrade refused: {}", head.lines().next().unwrap_or_default());
    }
    let leftover = buffer.split_off(head_end);
    let (read, write) = stream.into_split();
    Ok((read, write, leftover))
}

/// A `Sec-WebSocket-Key`: 16 bytes, base64. The key only proves that the
/// server understood the upgrade, so the clock is random enough.
fn base64_key() -> String {
    use base64::Engine;
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    base64::engine::general_purpose::STANDARD.encode(nanos.to_le_bytes())
}

/// A client-to-server WebSocket binary frame: always masked (RFC 6455
/// requires it of clients). The mask is fixed; a load generator needs no
/// protection against cache poisoning by proxies.
fn masked_binary_frame(out: &mut Vec<u8>, payload: &[u8]) {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    out.push(0x82);
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
}

/// Splits the next server frame off the front of a buffer: `Some((opcode,
/// payload))`, or `None` until the whole frame has arrived. Server frames
/// are never masked and never fragmented by wtchat.
fn split_websocket_frame(buffer: &mut BytesMut) -> Option<(u8, Bytes)> {
    let (first, second) = (*buffer.first()?, *buffer.get(1)?);
    let (length, header) = match second & 0x7f {
        126 => (usize::from(u16::from_be_bytes([*buffer.get(2)?, *buffer.get(3)?])), 4),
        127 => {
            let bytes: [u8; 8] = buffer.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        short => (usize::from(short), 2),
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    if buffer.len() < header + mask + length {
        return None;
    }
    let mut frame = buffer.split_to(header + mask + length).freeze();
    frame.advance(header + mask);
    Some((first & 0x0f, frame))
}

/// The sending half of a session.
pub enum Outgoing {
    /// Over the raw WebSocket client.
    RawWs(OwnedWriteHalf),
    /// Over WebSocket.
    Ws(SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>),
    /// Over WebTransport.
    Wt {
        /// The frame stream.
        send: wtransport::SendStream,
        /// The session, for datagrams.
        connection: wtransport::Connection,
    },
}

impl Outgoing {
    /// Sends one frame body.
    pub async fn send(&mut self, body: &[u8]) -> Result<()> {
        self.send_batch(std::iter::once(body.to_vec())).await
    }

    /// Sends several frame bodies with one flush.
    pub async fn send_batch(&mut self, bodies: impl IntoIterator<Item = Vec<u8>>) -> Result<()> {
        match self {
            Self::RawWs(write) => {
                let mut buffer = Vec::new();
                for body in bodies {
                    masked_binary_frame(&mut buffer, &body);
                }
                write.write_all(&buffer).await?;
            }
            Self::Ws(sink) => {
                for body in bodies {
                    sink.feed(Message::Binary(body.into())).await?;
                }
                sink.flush().await?;
            }
            Self::Wt { send, .. } => {
                let mut buffer = Vec::new();
                for body in bodies {
                    buffer.extend_from_slice(&u32::try_from(body.len())?.to_be_bytes());
                    buffer.extend_from_slice(&body);
                }
                send.write_all(&buffer).await?;
            }
        }
        Ok(())
    }

    /// Sends an ephemeral frame body: a datagram on WebTransport.
    pub async fn send_ephemeral(&mut self, body: &[u8]) -> Result<()> {
        match self {
            Self::Wt { connection, .. } => connection.send_datagram(body).map_err(|e| anyhow!(e)),
            Self::Ws(_) | Self::RawWs(_) => self.send(body).await,
        }
    }
}

/// What a session receives.
#[derive(Debug)]
pub enum Received {
    /// A frame body (on the stream, or as a datagram).
    Frame(Bytes),
    /// The session ended, and why.
    Closed(String),
}

/// The receiving half of a session.
pub enum Incoming {
    /// Over the raw WebSocket client.
    RawWs {
        /// The socket's reading half.
        read: OwnedReadHalf,
        /// Bytes read and not yet split into frames.
        buffer: BytesMut,
    },
    /// Over WebSocket.
    Ws(SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    /// Over WebTransport.
    Wt {
        /// The frame stream.
        recv: wtransport::RecvStream,
        /// The session, for datagrams and the close reason.
        connection: wtransport::Connection,
        /// Stream bytes not yet split into frames.
        buffer: BytesMut,
    },
}

impl Incoming {
    /// The next frame body, or the end.
    pub async fn next(&mut self) -> Option<Received> {
        match self {
            Self::RawWs { read, buffer } => loop {
                while let Some((opcode, payload)) = split_websocket_frame(buffer) {
                    match opcode {
                        0x2 => return Some(Received::Frame(payload)),
                        0x8 => {
                            let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                            return Some(Received::Closed(format!("closed with code {code:?}")));
                        }
                        _ => {}
                    }
                }
                if buffer.capacity() - buffer.len() < 4096 {
                    buffer.reserve(64 * 1024);
                }
                match read.read_buf(buffer).await {
                    Ok(0) => return Some(Received::Closed("the server closed the connection".into())),
                    Ok(_) => {}
                    Err(error) => return Some(Received::Closed(error.to_string())),
                }
            },
            Self::Ws(stream) => loop {
                match stream.next().await? {
                    Ok(Message::Binary(body)) => return Some(Received::Frame(body)),
                    Ok(Message::Close(frame)) => {
                        let why =
                            frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                        return Some(Received::Closed(why));
                    }
                    Ok(_) => continue,
                    Err(error) => return Some(Received::Closed(error.to_string())),
                }
            },
            Self::Wt { recv, connection, buffer } => loop {
                match split_stream_frame(buffer, usize::MAX) {
                    Ok(Some(end)) => {
                        let mut frame = buffer.split_to(end).freeze();
                        frame.advance(LENGTH_PREFIX_BYTES);
                        return Some(Received::Frame(frame));
                    }
                    Ok(None) => {}
                    Err(error) => return Some(Received::Closed(format!("bad stream: {error}"))),
                }
                if buffer.capacity() - buffer.len() < 4096 {
                    buffer.reserve(16 * 1024);
                }
                tokio::select! {
                    read = recv.read_buf(buffer) => match read {
                        Ok(0) | Err(_) => {
                            let why = tokio::time::timeout(Duration::from_secs(2), connection.closed()).await;
                            return Some(Received::Closed(why.map(|e| e.to_string()).unwrap_or_default()));
                        }
                        Ok(_) => {}
                    },
                    datagram = connection.receive_datagram() => match datagram {
                        Ok(datagram) => return Some(Received::Frame(datagram.payload())),
                        Err(error) => return Some(Received::Closed(error.to_string())),
                    },
                }
            },
        }
    }
}

/// The UDP buffers a load generator's QUIC socket asks for: many sessions
/// share one socket, and a burst of fan-out to all of them overflows the
/// kernel's default (about 200 KB), which the benchmark would then count
/// against the server.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// A UDP socket on an unspecified address of the server's family, with
/// large buffers (capped by the kernel at `net.core.rmem_max`/`wmem_max`).
fn roomy_udp_socket(ipv6: bool) -> Result<std::net::UdpSocket> {
    let address: SocketAddr = if ipv6 {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer still works, it only drops more.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// A minimal HTTP/1.1 GET on a loopback or LAN address; returns the body.
pub async fn http_get(address: SocketAddr, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(address).await.with_context(|| format!("connect to {address}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await??;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").context("no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}
