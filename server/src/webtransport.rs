//! The WebTransport transport: HTTP/3 over QUIC, adapted to the core.
//!
//! A QUIC connection carries one HTTP/3 connection, which carries at most one
//! WebTransport session (at the configured path). In the session the client
//! opens one bidirectional stream for protocol frames, length-prefixed both
//! ways, and uses datagrams for ephemeral messages (typing notices) both
//! ways. Requests that are not a WebTransport session at the right path get
//! an HTTP/3 error response and the connection stays usable.
//!
//! HTTP/3 itself (SETTINGS for every browser's dialect, requests, session
//! flow control, the close capsule) is the `wtchat-webtransport` crate's;
//! everything about chat (limits, heartbeat, closing) is the core's. This
//! module only routes requests, turns the stream and datagrams into
//! [`Inbound`] items, and writes frames back: each batch in one zero-copy
//! write of the frames' own buffers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_channel::mpsc;
use futures_util::SinkExt;
use quinn::crypto::rustls::QuicServerConfig;
use wtchat_core::admission::Ticket;
use wtchat_core::arrival::{Arrival, TransportKind};
use wtchat_core::frame::Frame;
use wtchat_core::hub::Hub;
use wtchat_core::session::Inbound;
use wtchat_core::transport::{self, FrameSink};
use wtchat_protocol::{DecodeError, ReasonCode, split_stream_frame};
use wtchat_webtransport::{self as wt, DataRecv, DataSend, Session, SessionEnd};

use crate::handshakes::{Decision, HANDSHAKE_TIMEOUT, HandshakeGuard, Handshakes};
use crate::options::Config;
use crate::origin::OriginPolicy;
use crate::tls;
use crate::tls::certificate_store::CertificateStore;

/// Inbound frames waiting for the core; a reader that gets this far ahead
/// waits, which pushes back on the client through QUIC flow control. The
/// queue is futures' channel, which allocates per message rather than a
/// block of slots up front: an idle session's queue is nearly free.
const INBOUND_QUEUE: usize = 32;

/// How many bytes the stream reader takes at a time.
const READ_CHUNK: usize = 4 * 1024;

/// How long each step of a server-initiated close waits for the client: to
/// acknowledge the last frames, then to close the connection after the
/// close capsule. Both fit in the seam's goodbye step.
const CLOSE_WAIT: Duration = Duration::from_millis(400);

/// The UDP socket buffers the server asks for. Loopback and LAN bursts of
/// fan-out (a thousand members answered at once) overflow the kernel's
/// default of about 200 KB, and every dropped packet holds up its stream
/// until a retransmission. The kernel caps the request at
/// `net.core.rmem_max` / `wmem_max`; the effective size is logged.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Bidirectional streams a client may have open: the CONNECT stream, the
/// session's stream, and one spare (a refused request, or a stream opened
/// while the previous one closes). quinn keeps state per allowed stream.
const MAX_BIDI_STREAMS: u32 = 3;

/// Unidirectional streams a client may have open: HTTP/3's control stream,
/// the two QPACK streams, and one spare for grease.
const MAX_UNI_STREAMS: u32 = 4;

/// The options the WebTransport adapter uses.
#[derive(Debug, Clone, Copy)]
pub struct WebTransportSettings {
    /// How often clients send something: QUIC keeps the path alive as often.
    pub heartbeat_interval: Duration,
    /// When a silent client is closed; QUIC's idle timeout is twice this.
    pub heartbeat_timeout: Duration,
    /// The largest frame a client may send.
    pub max_frame_bytes: usize,
    /// The byte bound of a session's outbound queue.
    pub outbound_queue_bytes: usize,
}

impl WebTransportSettings {
    /// The settings of a configuration.
    pub fn of(config: &Config) -> Self {
        Self {
            heartbeat_interval: config.heartbeat_interval(),
            heartbeat_timeout: config.heartbeat_timeout(),
            max_frame_bytes: config.max_frame_bytes,
            outbound_queue_bytes: config.outbound_queue_bytes,
        }
    }

    /// How far a client may send ahead of what the server has read: two
    /// frames of the largest size, on the stream (QUIC) and in the session
    /// (`WT_MAX_DATA`) alike.
    fn session_window(&self) -> u64 {
        2 * self.max_frame_bytes as u64
    }
}

/// What every WebTransport connection shares.
#[derive(Debug)]
pub struct WebTransportState {
    /// The core.
    pub hub: Arc<Hub>,
    /// The options it uses.
    pub settings: WebTransportSettings,
    /// Who may open a session.
    pub origins: OriginPolicy,
    /// The path sessions are accepted at, such as `/wt`.
    pub path: String,
    /// QUIC handshakes under way, on every endpoint.
    pub handshakes: Arc<Handshakes>,
}

/// Binds a QUIC endpoint that presents the store's certificate, with large
/// socket buffers.
pub fn bind(
    address: SocketAddr,
    store: Arc<CertificateStore>,
    settings: &WebTransportSettings,
) -> io::Result<quinn::Endpoint> {
    let crypto = tls::quic_config(store).map_err(io::Error::other)?;
    let crypto = QuicServerConfig::try_from(crypto).map_err(io::Error::other)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config(settings)));
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if let Err(error) = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::warn!(%error, "cannot size the UDP receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::warn!(%error, "cannot size the UDP send buffer");
    }
    // Linux reports twice what it was asked for (half is its bookkeeping),
    // and caps the request at net.core.rmem_max / wmem_max.
    let (receive, send) = (socket.recv_buffer_size()?, socket.send_buffer_size()?);
    if receive < SOCKET_BUFFER_BYTES || send < SOCKET_BUFFER_BYTES {
        tracing::info!(
            receive,
            send,
            wanted = SOCKET_BUFFER_BYTES,
            "UDP socket buffers are smaller than asked; raise net.core.rmem_max and wmem_max for bursts"
        );
    }
    socket.bind(&address.into())?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket.into(),
        Arc::new(quinn::TokioRuntime),
    )
}

/// QUIC limits sized for chat sessions rather than bulk transfer.
fn transport_config(config: &WebTransportSettings) -> quinn::TransportConfig {
    let window = u32::try_from(config.session_window()).unwrap_or(u32::MAX);
    let mut transport = quinn::TransportConfig::default();
    transport
        // The application heartbeat decides when a silent client is gone;
        // QUIC's idle timeout is only the backstop behind it.
        .max_idle_timeout(quinn::IdleTimeout::try_from(2 * config.heartbeat_timeout).ok())
        .keep_alive_interval(Some(config.heartbeat_interval))
        .max_concurrent_bidi_streams(MAX_BIDI_STREAMS.into())
        .max_concurrent_uni_streams(MAX_UNI_STREAMS.into())
        .stream_receive_window(window.into())
        // The session's stream and, beside it, the small control streams.
        .receive_window((window + 16 * 1024).into())
        .send_window(u64::try_from(config.outbound_queue_bytes).unwrap_or(u64::MAX))
        .datagram_receive_buffer_size(Some(64 * 1024))
        .datagram_send_buffer_size(64 * 1024);
    transport
}

/// What the HTTP/3 layer is told of the server's limits.
fn h3_config(config: &WebTransportSettings) -> wt::Config {
    wt::Config {
        settings: wt::ServerSettings {
            max_field_section_size: MAX_FIELD_SECTION,
            initial_max_data: config.session_window(),
            // The protocol needs exactly one stream, opened by the client.
            initial_max_streams_bidi: 1,
            initial_max_streams_uni: 0,
        },
        // A client gets the heartbeat timeout for each step before its
        // session exists, as a silent session does.
        step_timeout: config.heartbeat_timeout,
    }
}

/// The largest request head the server reads: a URL with a token and the
/// usual browser headers fit comfortably.
const MAX_FIELD_SECTION: u64 = 16 * 1024;

/// Accepts QUIC connections until the endpoint is closed. Each new
/// handshake is counted and may be asked to validate its address or be
/// refused (see [`crate::handshakes`]); an accepted one takes its place
/// under admission control at once, so that a connection counts from its
/// first packet, whether or not it ever asks for a session.
pub async fn serve(endpoint: quinn::Endpoint, state: Arc<WebTransportState>) {
    let config = h3_config(&state.settings);
    while let Some(incoming) = endpoint.accept().await {
        let peer = incoming.remote_address().ip();
        let handshake = match state.handshakes.decide(peer, incoming.remote_address_validated()) {
            Decision::Accept(handshake) => handshake,
            Decision::Validate if incoming.may_retry() => {
                // Stateless: nothing is kept until the client answers.
                let _ = incoming.retry();
                continue;
            }
            Decision::Validate | Decision::Refuse => {
                incoming.refuse();
                continue;
            }
        };
        let place = match state.hub.admission().hold(peer) {
            Ok(place) => place,
            Err(refusal) => {
                tracing::debug!(%peer, reason = refusal.name(), "refused a QUIC connection");
                incoming.refuse();
                continue;
            }
        };
        let opening = Opening { incoming, handshake, place };
        tokio::spawn(serve_connection(Box::new(opening), config, state.clone()));
    }
}

/// A connection on its way in: its first packet, its handshake's count and
/// its admission place.
struct Opening {
    incoming: quinn::Incoming,
    handshake: HandshakeGuard,
    place: Ticket,
}

/// One connection's life. An async function keeps its arguments, and the
/// state of each step it awaits, in one allocation for as long as it runs:
/// so the connection arrives boxed, and the steps before the session (large,
/// short-lived futures) run boxed, leaving the session itself small.
async fn serve_connection(opening: Box<Opening>, config: wt::Config, state: Arc<WebTransportState>) {
    if let Some(opened) = Box::pin(open(opening, config, &state)).await {
        run_session(opened, &state).await;
    }
}

/// What to do with an HTTP/3 request.
enum Route {
    /// Open a WebTransport session.
    Session,
    /// Answer with an error status.
    Refuse(u16, &'static str),
}

fn route(request: &wt::Request, state: &WebTransportState) -> Route {
    if request.path() != state.path {
        return Route::Refuse(404, "not found: WebTransport sessions are accepted at another path\n");
    }
    if !request.is_webtransport() {
        return Route::Refuse(
            400,
            "this path accepts WebTransport sessions only (extended CONNECT with :protocol webtransport)\n",
        );
    }
    let authority = (!request.authority.is_empty()).then_some(request.authority.as_str());
    if !state.origins.allows(request.origin.as_deref().map(str::as_bytes), authority) {
        tracing::debug!(origin = request.origin, "refused WebTransport session from a foreign origin");
        return Route::Refuse(403, "this origin may not open a session; see allowed_origins\n");
    }
    Route::Session
}

/// A session ready for the core: accepted, with its stream open.
struct Opened {
    session: Arc<Session>,
    send: DataSend,
    recv: DataRecv,
    arrival: Box<Arrival>,
}

/// Takes a connection from its QUIC handshake to an open session: the
/// HTTP/3 handshake, requests answered with errors until one is the session,
/// then the session's stream. `None` when the connection ends first.
async fn open(opening: Box<Opening>, config: wt::Config, state: &WebTransportState) -> Option<Opened> {
    let Opening { incoming, handshake, place } = *opening;
    let remote = incoming.remote_address();
    // A handshake has the same deadline as TLS on TCP; giving up on it
    // drops the connection's state.
    let quic = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
        Ok(Ok(quic)) => quic,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "QUIC handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%remote, "QUIC handshake timed out");
            return None;
        }
    };
    drop(handshake);
    let fail = |error: wt::Error, what: &str| -> Option<Opened> {
        tracing::debug!(%remote, %error, "{what}");
        error.close(&quic);
        None
    };
    let mut h3 = match wt::Connection::accept(quic.clone(), config).await {
        Ok(h3) => h3,
        Err(error) => return fail(error, "HTTP/3 connection refused"),
    };
    let incoming = loop {
        match h3.next_request().await {
            Ok(Some(incoming)) => match route(&incoming.request, state) {
                Route::Refuse(status, text) => h3.respond(incoming, status, text).await,
                Route::Session => break incoming,
            },
            Ok(None) => return None,
            Err(error) => return fail(error, "HTTP/3 connection ended"),
        }
    };
    let request = &incoming.request;
    let token = Arrival::token_from(request.query(), request.authorization.as_deref());
    let arrival = Box::new(Arrival {
        transport: TransportKind::WebTransport,
        peer: remote.ip(),
        token,
        place: Some(place),
    });
    let session = match h3.accept_session(incoming).await {
        Ok(session) => Arc::new(session),
        Err(error) => return fail(error, "the WebTransport session could not be accepted"),
    };
    match session.accept_stream().await {
        Ok((send, recv)) => Some(Opened { session, send, recv, arrival }),
        Err(error) => {
            tracing::debug!(%remote, %error, "the client opened no stream");
            session.close(ReasonCode::HEARTBEAT_TIMEOUT.0.into(), "no stream opened", CLOSE_WAIT).await;
            None
        }
    }
}

/// Runs an open session: the core serves it while a reader task feeds it.
async fn run_session(opened: Opened, state: &WebTransportState) {
    let Opened { session, send, recv, arrival } = opened;
    let hub = state.hub.clone();
    let (inbound_sender, inbound) = mpsc::channel(INBOUND_QUEUE);
    // The reader runs in a task of its own, so that it is polled when the
    // client sends something rather than each time the writer wakes (every
    // poll of a QUIC stream takes the connection's lock). If it stops first
    // (the peer went away or closed the session), its queue closes and the
    // core notices.
    let reader = tokio::spawn(read(recv, inbound_sender, state.settings.max_frame_bytes));
    let sink = WebTransportSink { send, session, chunks: Vec::new() };
    transport::serve(hub.clone(), arrival, inbound, sink).await;
    reader.abort();
}

/// Reads frames from the session's stream and datagrams, and looks after the
/// session, until the peer goes away or closes it.
async fn read(mut recv: DataRecv, mut inbound: mpsc::Sender<Inbound>, max_frame: usize) {
    let session = recv.session().clone();
    let mut buffer = BytesMut::new();
    let maintain = session.maintain();
    tokio::pin!(maintain);
    loop {
        tokio::select! {
            chunk = recv.read_chunk(READ_CHUNK) => match chunk {
                Ok(Some(chunk)) => {
                    buffer.extend_from_slice(&chunk);
                    if !split_frames(&mut buffer, max_frame, &mut inbound).await {
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(%error, "the session's stream failed");
                    error.close(session.quic());
                    return;
                }
            },
            datagram = session.read_datagram() => match datagram {
                Ok(datagram) => {
                    if inbound.send(Inbound::Frame(datagram)).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            end = &mut maintain => {
                match end {
                    SessionEnd::ClosedByClient { code, text } => {
                        tracing::debug!(code, text, "the client closed its WebTransport session");
                    }
                    SessionEnd::Failed(error) => {
                        tracing::debug!(%error, "the WebTransport session failed");
                        error.close(session.quic());
                    }
                }
                return;
            }
        }
    }
}

/// Moves every complete frame in the buffer to the core. Returns false when
/// reading must stop: the core is gone, or a frame is over the limit (the
/// core closes the session for that; buffering it would cost its size).
async fn split_frames(buffer: &mut BytesMut, max_frame: usize, inbound: &mut mpsc::Sender<Inbound>) -> bool {
    loop {
        let item = match split_stream_frame(buffer, max_frame) {
            Ok(None) => return true,
            Ok(Some(end)) => {
                let mut frame = buffer.split_to(end).freeze();
                frame.advance(wtchat_protocol::LENGTH_PREFIX_BYTES);
                Inbound::Frame(frame)
            }
            Err(DecodeError::TooLarge { len, .. }) => {
                let _ = inbound.send(Inbound::TooLarge(len)).await;
                return false;
            }
            // A zero-length frame: skip its prefix and let the core answer
            // the empty body as the malformed frame it is.
            Err(_) => {
                buffer.advance(wtchat_protocol::LENGTH_PREFIX_BYTES);
                Inbound::Frame(Bytes::new())
            }
        };
        if inbound.send(item).await.is_err() {
            return false;
        }
    }
}

/// What goes on the session stream for a frame: the frame's own allocation,
/// length prefix included.
pub(crate) fn stream_bytes(frame: Frame) -> Bytes {
    frame.into_prefixed()
}

/// What goes in a datagram for an ephemeral frame: the body, as a view of
/// the frame's allocation (datagrams delimit themselves).
pub(crate) fn datagram_payload(frame: Frame) -> Bytes {
    frame.into_body()
}

/// Frames as stream writes and datagrams.
struct WebTransportSink {
    /// The session stream's sending half.
    send: DataSend,
    /// The session, for datagrams and the close.
    session: Arc<Session>,
    /// The batch's buffers, handed to quinn in one write; kept for reuse.
    chunks: Vec<Bytes>,
}

impl FrameSink for WebTransportSink {
    async fn send_batch(&mut self, frames: &mut Vec<Frame>) -> io::Result<()> {
        for frame in frames.drain(..) {
            if frame.is_ephemeral() {
                // Best effort by design: a typing notice that does not fit
                // a datagram, or finds the datagram buffer full, is dropped.
                self.session.send_datagram(&datagram_payload(frame));
            } else {
                self.chunks.push(stream_bytes(frame));
            }
        }
        let written = self.send.write_all_chunks(&mut self.chunks).await;
        self.chunks.clear();
        written.map_err(io::Error::other)
    }

    async fn close(&mut self, code: ReasonCode, text: &str) -> io::Result<()> {
        // The closing notice is on the stream already: end the stream and
        // give the client a moment to take it, then close the session with
        // the code and text, which the browser reports from
        // `WebTransport.closed`. Every wait is bounded; a stalled stream
        // does not keep the code from the client. Boxed: it runs once, and
        // inline its timers would enlarge every idle session.
        Box::pin(async {
            self.send.finish(CLOSE_WAIT).await;
            self.session.close(code.0.into(), text, CLOSE_WAIT).await;
        })
        .await;
        Ok(())
    }
}
