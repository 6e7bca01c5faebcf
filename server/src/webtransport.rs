//! The WebTransport transport: HTTP/3 over QUIC, adapted to the core.
//!
//! A QUIC connection carries one HTTP/3 connection, which carries at most one
//! WebTransport session (at the configured path). In the session the client
//! opens one bidirectional stream for protocol frames, length-prefixed both
//! ways, and uses datagrams for ephemeral messages (typing notices) both
//! ways. Requests that are not a WebTransport session at the right path get
//! an HTTP/3 error response and the connection stays usable.
//!
//! Everything about chat (limits, heartbeat, closing) is the core's; this
//! module only turns streams and datagrams into [`Inbound`] items and frames
//! back into bytes. The heartbeat matters more here than on WebSocket: a
//! browser that closes a session does not tell the server (h3-webtransport
//! does not surface the session's CONNECT stream), so silence is how the
//! server notices.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use h3::ext::Protocol;
use h3_datagram::datagram_handler::DatagramSender;
use h3_webtransport::server::{AcceptedBi, WebTransportSession};
use http::{Method, Request, Response, StatusCode, header};
use quinn::crypto::rustls::QuicServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wtchat_protocol::{DecodeError, ReasonCode, split_stream_frame};

use crate::arrival::{Arrival, TransportKind};
use crate::certificate_store::CertificateStore;
use crate::frame::Frame;
use crate::hub::Hub;
use crate::origin::OriginPolicy;
use crate::session::Inbound;
use crate::tls;
use crate::transport::{self, FrameSink};

type Connection = h3_quinn::Connection;
type Session = WebTransportSession<Connection, Bytes>;
type SendStream = h3_webtransport::stream::SendStream<h3_quinn::SendStream<Bytes>, Bytes>;
type RecvStream = h3_webtransport::stream::RecvStream<h3_quinn::RecvStream, Bytes>;
type Datagrams = DatagramSender<h3_quinn::datagram::SendDatagramHandler, Bytes>;

/// Inbound frames waiting for the core; a reader that gets this far ahead
/// waits, which pushes back on the client through QUIC flow control.
const INBOUND_QUEUE: usize = 32;

/// How many bytes the stream reader asks for at a time.
const READ_CHUNK: usize = 4 * 1024;

/// How long a closing session waits for the client to take its closing
/// notice and close first; quinn discards unsent stream data when the
/// server closes the connection itself.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// What every WebTransport connection shares.
#[derive(Debug)]
pub struct WebTransportState {
    /// The core.
    pub hub: Arc<Hub>,
    /// Who may open a session.
    pub origins: OriginPolicy,
    /// The path sessions are accepted at, such as `/wt`.
    pub path: String,
}

/// Binds a QUIC endpoint that presents the store's certificate.
pub fn bind(address: SocketAddr, store: Arc<CertificateStore>, hub: &Hub) -> io::Result<quinn::Endpoint> {
    let crypto = tls::quic_config(store).map_err(io::Error::other)?;
    let crypto = QuicServerConfig::try_from(crypto).map_err(io::Error::other)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config(hub)));
    quinn::Endpoint::server(server, address)
}

/// QUIC limits sized for chat sessions rather than bulk transfer.
fn transport_config(hub: &Hub) -> quinn::TransportConfig {
    let config = hub.config();
    let window = u32::try_from(2 * config.session.max_frame_bytes).unwrap_or(u32::MAX);
    let mut transport = quinn::TransportConfig::default();
    transport
        // The application heartbeat decides when a silent client is gone;
        // QUIC's idle timeout is only the backstop behind it.
        .max_idle_timeout(quinn::IdleTimeout::try_from(2 * config.heartbeat_timeout).ok())
        .keep_alive_interval(Some(config.heartbeat_interval))
        // One session stream and the CONNECT request; a few spare for
        // requests the server refuses.
        .max_concurrent_bidi_streams(8u32.into())
        // HTTP/3's control and QPACK streams, with room for grease.
        .max_concurrent_uni_streams(8u32.into())
        .stream_receive_window(window.into())
        .receive_window(window.into())
        .send_window(u64::try_from(config.session.outbound_queue_bytes).unwrap_or(u64::MAX))
        .datagram_receive_buffer_size(Some(64 * 1024))
        .datagram_send_buffer_size(64 * 1024);
    transport
}

/// Accepts QUIC connections until the endpoint is closed.
pub async fn serve(endpoint: quinn::Endpoint, state: Arc<WebTransportState>) {
    while let Some(incoming) = endpoint.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => {
                    if let Err(error) = serve_connection(connection, &state).await {
                        tracing::debug!(%remote, %error, "HTTP/3 connection ended with an error");
                    }
                }
                Err(error) => tracing::debug!(%remote, %error, "QUIC handshake failed"),
            }
        });
    }
}

/// What to do with an HTTP/3 request.
enum Route {
    /// Open a WebTransport session.
    Session,
    /// Answer with an error status.
    Refuse(StatusCode, &'static str),
}

fn route(request: &Request<()>, state: &WebTransportState) -> Route {
    let is_webtransport = request.method() == Method::CONNECT
        && request.extensions().get::<Protocol>() == Some(&Protocol::WEB_TRANSPORT);
    if request.uri().path() != state.path {
        return Route::Refuse(
            StatusCode::NOT_FOUND,
            "not found: WebTransport sessions are accepted at another path\n",
        );
    }
    if !is_webtransport {
        return Route::Refuse(
            StatusCode::BAD_REQUEST,
            "this path accepts WebTransport sessions only (extended CONNECT with :protocol webtransport)\n",
        );
    }
    let headers = request.headers();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let authority = request.uri().authority().map(|a| a.as_str());
    if !state.origins.allows(origin, authority) {
        tracing::info!(origin, "refused WebTransport session from a foreign origin");
        return Route::Refuse(
            StatusCode::FORBIDDEN,
            "this origin may not open a session; see allowed_origins\n",
        );
    }
    Route::Session
}

async fn serve_connection(connection: quinn::Connection, state: &WebTransportState) -> anyhow::Result<()> {
    let quic = connection.clone();
    let mut h3 = h3::server::builder()
        .enable_webtransport(true)
        .enable_extended_connect(true)
        .enable_datagram(true)
        .max_webtransport_sessions(1)
        .send_grease(true)
        .build::<Connection, Bytes>(h3_quinn::Connection::new(connection))
        .await?;
    let header_timeout = state.hub.config().heartbeat_timeout;
    loop {
        let Some(resolver) = h3.accept().await? else { return Ok(()) };
        let (request, mut stream) =
            tokio::time::timeout(header_timeout, resolver.resolve_request()).await??;
        match route(&request, state) {
            Route::Refuse(status, text) => {
                let response = Response::builder()
                    .status(status)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(())?;
                // A client that stops reading cannot hold the connection's
                // accept loop: the answer gets the header timeout too.
                let answer = async {
                    stream.send_response(response).await?;
                    stream.send_data(Bytes::from_static(text.as_bytes())).await?;
                    stream.finish().await
                };
                let _ = tokio::time::timeout(header_timeout, answer).await;
            }
            Route::Session => {
                let authorization =
                    request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                let token = Arrival::token_from(request.uri().query(), authorization);
                let arrival = Arrival {
                    transport: TransportKind::WebTransport,
                    peer: quic.remote_address().ip(),
                    token,
                };
                let session = Session::accept(request, stream, h3).await?;
                run_session(session, quic, arrival, state).await;
                return Ok(());
            }
        }
    }
}

/// Runs an accepted WebTransport session: waits for the client's stream, then
/// hands the session to the core.
async fn run_session(session: Session, quic: quinn::Connection, arrival: Arrival, state: &WebTransportState) {
    let hub = state.hub.clone();
    let config = hub.config();
    let opened = tokio::time::timeout(config.heartbeat_timeout, first_stream(&session)).await;
    let Ok(Some((send, recv))) = opened else {
        quic.close(ReasonCode::HEARTBEAT_TIMEOUT.0.into(), b"no stream opened");
        return;
    };
    let (inbound_sender, inbound) = mpsc::channel(INBOUND_QUEUE);
    let sink = WebTransportSink { send, datagrams: session.datagram_sender(), quic };
    let reader = read(&session, recv, inbound_sender, config.session.max_frame_bytes);
    let serve = transport::serve(hub.clone(), Box::new(arrival), InboundQueue(inbound), sink);
    tokio::pin!(reader, serve);
    // The core decides when the session ends. If the reader stops first
    // (the peer went away), its queue closes and the core notices.
    tokio::select! {
        () = &mut serve => {}
        () = &mut reader => serve.await,
    }
}

/// Waits for the client's bidirectional stream, the one that carries frames.
async fn first_stream(session: &Session) -> Option<(SendStream, RecvStream)> {
    // Both accept futures live across iterations: `accept_bi` reads a
    // stream's first frame after accepting it, and dropping it in between
    // would lose the stream.
    let accept_bi = session.accept_bi();
    let accept_uni = session.accept_uni();
    tokio::pin!(accept_bi, accept_uni);
    loop {
        tokio::select! {
            accepted = &mut accept_bi => {
                match accepted {
                    Ok(Some(AcceptedBi::BidiStream(_, stream))) => return Some(quic_split(stream)),
                    Ok(Some(AcceptedBi::Request(_, mut stream))) => refuse_second_request(&mut stream).await,
                    Ok(None) | Err(_) => return None,
                }
                accept_bi.set(session.accept_bi());
            }
            // HTTP/3 itself opens unidirectional streams; they must be
            // accepted from the same task as the bidirectional ones or
            // neither makes progress.
            accepted = &mut accept_uni => {
                if accepted.is_err() {
                    return None;
                }
                accept_uni.set(session.accept_uni());
            }
        }
    }
}

fn quic_split(
    stream: h3_webtransport::stream::BidiStream<h3_quinn::BidiStream<Bytes>, Bytes>,
) -> (SendStream, RecvStream) {
    use h3::quic::BidiStream as _;
    stream.split()
}

async fn refuse_second_request(stream: &mut h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>) {
    if let Ok(response) = Response::builder().status(StatusCode::TOO_MANY_REQUESTS).body(()) {
        let _ = stream.send_response(response).await;
        let _ = stream.finish().await;
    }
}

/// Reads frames from the session's stream and datagrams, and keeps accepting
/// (and dropping) any further streams, until the peer goes away.
async fn read(session: &Session, mut recv: RecvStream, inbound: mpsc::Sender<Inbound>, max_frame: usize) {
    let mut buffer = BytesMut::new();
    let mut datagrams = session.datagram_reader();
    let accept_bi = session.accept_bi();
    let accept_uni = session.accept_uni();
    tokio::pin!(accept_bi, accept_uni);
    loop {
        if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
            buffer.reserve(READ_CHUNK);
        }
        tokio::select! {
            read = recv.read_buf(&mut buffer) => {
                if !matches!(read, Ok(n) if n > 0) {
                    return;
                }
                if !split_frames(&mut buffer, max_frame, &inbound).await {
                    return;
                }
            }
            datagram = datagrams.read_datagram() => match datagram {
                Ok(datagram) => {
                    if inbound.send(Inbound::Frame(datagram.into_payload())).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            accepted = &mut accept_bi => {
                match accepted {
                    // The protocol uses one stream; others are dropped
                    // (which resets them) and requests are refused.
                    Ok(Some(AcceptedBi::BidiStream(..))) => {}
                    Ok(Some(AcceptedBi::Request(_, mut stream))) => refuse_second_request(&mut stream).await,
                    Ok(None) | Err(_) => return,
                }
                accept_bi.set(session.accept_bi());
            }
            accepted = &mut accept_uni => {
                if accepted.is_err() {
                    return;
                }
                accept_uni.set(session.accept_uni());
            }
        }
    }
}

/// Moves every complete frame in the buffer to the core. Returns false when
/// reading must stop: the core is gone, or a frame is over the limit (the
/// core closes the session for that; buffering it would cost its size).
async fn split_frames(buffer: &mut BytesMut, max_frame: usize, inbound: &mpsc::Sender<Inbound>) -> bool {
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

/// The reader's queue as the stream the core reads.
struct InboundQueue(mpsc::Receiver<Inbound>);

impl Stream for InboundQueue {
    type Item = Inbound;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Inbound>> {
        self.0.poll_recv(cx)
    }
}

/// What goes on the session stream for a frame: the frame's own allocation,
/// length prefix included.
pub(crate) fn stream_bytes(frame: &Frame) -> &Bytes {
    frame.prefixed()
}

/// What goes in a datagram for an ephemeral frame: the body, as a view of
/// the frame's allocation (datagrams delimit themselves).
pub(crate) fn datagram_payload(frame: Frame) -> Bytes {
    frame.into_body()
}

/// Frames as stream writes and datagrams.
struct WebTransportSink {
    /// The session stream's sending half.
    send: SendStream,
    /// Datagrams to the client.
    datagrams: Datagrams,
    /// The QUIC connection, to close it with a reason code.
    quic: quinn::Connection,
}

impl FrameSink for WebTransportSink {
    async fn send_batch(&mut self, frames: &mut Vec<Frame>) -> io::Result<()> {
        for frame in frames.drain(..) {
            if frame.is_ephemeral() {
                // Best effort by design: a typing notice that does not fit
                // a datagram, or finds the datagram buffer full, is dropped.
                let _ = self.datagrams.send_datagram(datagram_payload(frame));
            } else {
                self.send.write_all(stream_bytes(&frame)).await?;
            }
        }
        self.send.flush().await
    }

    async fn close(&mut self, code: ReasonCode, text: &str) -> io::Result<()> {
        // Give the client a moment to read the closing notice and close on
        // its own; closing first would discard the notice if it is still in
        // flight. Both waits are bounded: a stalled stream must not keep the
        // code from the client, and QUIC's close travels outside the stream.
        let wait = async {
            let _ = self.send.shutdown().await;
            self.quic.closed().await;
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, wait).await;
        self.quic.close(code.0.into(), text.as_bytes());
        Ok(())
    }
}
