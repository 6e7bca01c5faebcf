//! The WebSocket transport: an adapter between tokio-tungstenite and the core.
//!
//! It answers the HTTP upgrade, turns WebSocket messages into [`Inbound`]
//! items, and writes each batch of frames as binary messages: on plain TCP
//! straight from the frames' shared allocations in vectored writes
//! (`wire.rs`), over TLS through tungstenite with a single flush.
//! Everything else (limits, heartbeat, closing) is the core's.

mod wire;

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wtchat_core::SessionLimits;
use wtchat_core::arrival::{Arrival, TransportKind};
use wtchat_core::frame::Frame;
use wtchat_core::hub::Hub;
use wtchat_core::session::Inbound;
use wtchat_core::transport::{self, FrameSink};
use wtchat_protocol::ReasonCode;

use self::wire::{ControlStream, Wire, WireSink};
use crate::origin::OriginPolicy;
use crate::response::text;

/// Bytes tungstenite reads from the socket at a time. Its default is 128 KiB,
/// allocated up front for every connection, idle or not. What clients send is
/// small (a hello, a join or a ping is tens of bytes, a typical message under
/// 200), and a larger frame grows the buffer only while it arrives. This is
/// the largest single item of an idle connection's memory.
const READ_BUFFER_BYTES: usize = 256;

/// Bytes tungstenite gathers before it writes to the socket on its own
/// (over TLS; on plain TCP it writes only control frames). A batch is
/// flushed as a whole anyway; this only bounds how much one write call
/// carries.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The tungstenite configuration for server sessions: the adapter's
/// settings.
pub fn config(limits: &SessionLimits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        // The outbound queue bounds what waits for a client; tungstenite's
        // own buffer only needs room for one batch chunk and one frame.
        .max_write_buffer_size(WRITE_BUFFER_BYTES + limits.outbound_queue_bytes)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

/// Answers a `GET /ws` request: refuses it with an HTTP status, or accepts it
/// with `101 Switching Protocols` and runs the session on the upgraded
/// connection in a task of its own.
pub fn upgrade<B: Send + 'static>(
    mut request: Request<B>,
    peer: IpAddr,
    hub: &Arc<Hub>,
    origins: &OriginPolicy,
    config: WebSocketConfig,
) -> Response<Full<Bytes>> {
    let headers = request.headers();
    let origin = headers.get(header::ORIGIN).map(HeaderValue::as_bytes);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !origins.allows(origin, host) {
        let origin = origin.map(String::from_utf8_lossy);
        tracing::debug!(?origin, "refused WebSocket upgrade from a foreign origin");
        return text(StatusCode::FORBIDDEN, "this origin may not open a session; see allowed_origins\n");
    }
    let Some(key) = websocket_key(headers) else {
        return text(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade (version 13) on /ws\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = Arrival::token_from(request.uri().query(), authorization);
    // Boxed: the task below keeps what it captures for the connection's
    // whole life (see `transport::serve`).
    let arrival = Box::new(Arrival { transport: TransportKind::WebSocket, peer, token, place: None });
    let on_upgrade = hyper::upgrade::on(&mut request);
    let hub = hub.clone();
    tokio::spawn(async move {
        match on_upgrade.await.map(|upgraded| upgraded.downcast::<TokioIo<TcpStream>>()) {
            // Plain TCP: the frames go to the socket without tungstenite.
            Ok(Ok(parts)) => {
                let queue_bytes = hub.config().session.outbound_queue_bytes;
                let wire = Wire::new(parts.io.into_inner(), &parts.read_buf, queue_bytes);
                drop(parts.read_buf);
                let control = ControlStream::new(wire.clone());
                // Unsplit: tungstenite only reads here, so nothing else
                // needs a lock on it.
                let stream = WebSocketStream::from_raw_socket(control, Role::Server, Some(config)).await;
                let sink = PlainSink { data: WireSink::new(wire) };
                transport::serve(hub, arrival, WebSocketInbound { stream }, sink).await;
            }
            Ok(Err(upgraded)) => {
                let stream =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                        .await;
                serve(hub, arrival, stream).await;
            }
            Err(error) => tracing::debug!(%error, "WebSocket upgrade failed"),
        }
    });
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// The `Sec-WebSocket-Key` of a well-formed version 13 upgrade request.
fn websocket_key(headers: &HeaderMap) -> Option<&HeaderValue> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    let version_13 = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    (has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket") && version_13)
        .then(|| headers.get(header::SEC_WEBSOCKET_KEY))
        .flatten()
}

/// Runs a session over an established WebSocket.
pub async fn serve<S>(hub: Arc<Hub>, arrival: Box<Arrival>, stream: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = stream.split();
    transport::serve(hub, arrival, WebSocketInbound { stream }, WebSocketSink { sink }).await;
}

/// WebSocket messages as the core sees them.
struct WebSocketInbound<T> {
    /// The WebSocket, or its reading half.
    stream: T,
}

impl<T: Stream<Item = Result<Message, WsError>> + Unpin> Stream for WebSocketInbound<T> {
    type Item = Inbound;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        let item = match ready!(self.stream.poll_next_unpin(cx)) {
            Some(Ok(Message::Binary(body))) => Some(Inbound::Frame(body)),
            Some(Ok(Message::Text(_))) => Some(Inbound::Unsupported),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Some(Inbound::Keepalive),
            Some(Ok(Message::Close(_))) | None => None,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                Some(Inbound::TooLarge(size))
            }
            // The client broke RFC 6455: the core closes with a code that
            // says so, rather than as if the client had left.
            Some(Err(error @ (WsError::Protocol(_) | WsError::Utf8(_)))) => {
                Some(Inbound::Broken(error.to_string()))
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "WebSocket read failed");
                None
            }
        };
        Poll::Ready(item)
    }
}

/// Frames as WebSocket binary messages.
struct WebSocketSink<S> {
    /// The writing half of the WebSocket.
    sink: SplitSink<WebSocketStream<S>, Message>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> FrameSink for WebSocketSink<S> {
    async fn send_batch(&mut self, frames: &mut Vec<Frame>) -> io::Result<()> {
        // `feed` only buffers; the single flush at the end writes the whole
        // batch, so a burst costs a handful of system calls, not one each.
        for frame in frames.drain(..) {
            self.sink.feed(binary_message(frame)).await.map_err(io::Error::other)?;
        }
        self.sink.flush().await.map_err(io::Error::other)
    }

    async fn close(&mut self, code: ReasonCode, text: &str) -> io::Result<()> {
        close(&mut self.sink, code, text).await
    }
}

/// Frames on plain TCP, and the server's close, written by the wire.
struct PlainSink {
    data: WireSink,
}

impl FrameSink for PlainSink {
    async fn send_batch(&mut self, frames: &mut Vec<Frame>) -> io::Result<()> {
        let sent = self.data.send(frames).await;
        frames.clear();
        sent
    }

    async fn close(&mut self, code: ReasonCode, text: &str) -> io::Result<()> {
        self.data.close(code.0, close_reason(text)).await
    }
}

/// Sends a close frame with the code and text, and closes the sink.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    code: ReasonCode,
    text: &str,
) -> io::Result<()> {
    let frame = CloseFrame { code: CloseCode::from(code.0), reason: close_reason(text).into() };
    // When the client closed first, tungstenite refuses a close frame of
    // ours and has queued the echo of the client's instead: closing the
    // sink flushes it. Returning at the refusal would drop the connection
    // with the echo unsent, and the client would see its close unanswered
    // (RFC 6455 section 5.5.1).
    match sink.send(Message::Close(Some(frame))).await {
        Ok(()) | Err(WsError::Protocol(ProtocolError::SendAfterClosing)) => {}
        Err(error) => return Err(io::Error::other(error)),
    }
    sink.close().await.map_err(io::Error::other)
}

/// The WebSocket message for a frame: the body, as a view of the frame's
/// shared allocation.
pub(crate) fn binary_message(frame: Frame) -> Message {
    Message::Binary(frame.into_body())
}

/// A close frame's reason may hold at most 123 bytes of UTF-8.
fn close_reason(text: &str) -> &str {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
