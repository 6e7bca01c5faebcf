//! An accepted WebTransport session: its data stream, datagrams, session
//! flow control, and a close that reaches the browser with its code.
//!
//! The server's protocol uses one client-opened bidirectional stream per
//! session and datagrams; further streams are refused. When both sides
//! declare session flow control (Safari does; see [`crate::settings`]), the
//! server grants the client credit with `WT_MAX_DATA` as it reads, and never
//! sends more stream payload than the client granted it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::{Mutex, Notify};
use tokio::time::timeout;

use crate::capsule::{self, Capsule};
use crate::connection::{Connection, IncomingRequest, fill, keep_or_stop, respond};
use crate::error::Error;
use crate::frame::{self, error_code};
use crate::qpack;
use crate::varint;

/// Session-level flow control, when both sides declared it.
#[derive(Debug)]
struct FlowControl {
    /// How much stream payload the client allows the server to send in
    /// total (its `WT_INITIAL_MAX_DATA`, raised by `WT_MAX_DATA`).
    peer_max_data: AtomicU64,
    /// Wakes a writer waiting for credit.
    credit: Notify,
    /// How far ahead of what it has read the server lets the client send.
    window: u64,
}

/// The parts of the connection a running session looks after but rarely
/// touches: the CONNECT stream's receiving side and the client's control
/// and QPACK streams.
#[derive(Debug)]
struct Housekeeping {
    connect_recv: quinn::RecvStream,
    /// HTTP/3 frames read from the CONNECT stream and not yet split.
    connect_buffer: BytesMut,
    /// The capsule sequence: the payloads of the stream's DATA frames.
    capsules: BytesMut,
    peer_control: quinn::RecvStream,
    peer_control_buffer: BytesMut,
    kept_uni: Vec<quinn::RecvStream>,
}

/// How a session ended, seen from its housekeeping.
#[derive(Debug)]
pub enum SessionEnd {
    /// The client closed the session, with its code and text (0 and empty
    /// for a plain end of the CONNECT stream).
    ClosedByClient {
        /// The client's code.
        code: u32,
        /// The client's text.
        text: String,
    },
    /// The connection or the protocol failed.
    Failed(Error),
}

/// An established WebTransport session.
#[derive(Debug)]
pub struct Session {
    quic: quinn::Connection,
    /// The CONNECT stream's id, which names the session on its streams.
    session_id: u64,
    step_timeout: Duration,
    /// The CONNECT stream's sending side, for capsules; shared by the
    /// reader (credit) and the writer (the close).
    connect_send: Mutex<quinn::SendStream>,
    flow: Option<FlowControl>,
    housekeeping: Mutex<Housekeeping>,
    /// The server's control stream, open for the connection's life.
    _control: quinn::SendStream,
}

/// The sending side of the session's data stream.
#[derive(Debug)]
pub struct DataSend {
    stream: quinn::SendStream,
    session: Arc<Session>,
    /// Stream payload sent so far, for session flow control.
    sent: u64,
}

/// The receiving side of the session's data stream. It holds the session,
/// so that reading can run in a task of its own: polled only when data
/// arrives, not whenever the writer wakes.
#[derive(Debug)]
pub struct DataRecv {
    stream: quinn::RecvStream,
    session: Arc<Session>,
    /// Payload that arrived with the stream's header.
    early: Option<Bytes>,
    /// Payload read so far, and the credit granted to the client.
    consumed: u64,
    granted: u64,
}

/// Accepting a session is the step from a connection to a session, so it
/// lives here, with the session it makes (the connection knows nothing of
/// sessions).
impl Connection {
    /// Accepts a request as the connection's WebTransport session: answers
    /// 200 and hands over everything the session needs.
    pub async fn accept_session(self, request: IncomingRequest) -> Result<Session, Error> {
        let IncomingRequest { mut send, recv, rest, .. } = request;
        let head = qpack::encode(&[(":status", "200"), ("sec-webtransport-http3-draft", "draft02")]);
        let mut bytes = Vec::with_capacity(head.len() + 4);
        frame::write(&mut bytes, frame::HEADERS, &head);
        timeout(self.config.step_timeout, send.write_all(&bytes))
            .await
            .map_err(|_| Error::Timeout("take the session's answer"))?
            .map_err(|_| Error::protocol(error_code::REQUEST_CANCELLED, "the CONNECT stream broke"))?;
        Ok(Session::new(self, send, recv, rest))
    }
}

impl Session {
    pub(crate) fn new(
        connection: Connection,
        connect_send: quinn::SendStream,
        connect_recv: quinn::RecvStream,
        connect_buffer: BytesMut,
    ) -> Self {
        let Connection { quic, config, control, peer_control, peer_control_buffer, kept_uni, peer_settings } =
            connection;
        let session_id = connect_send.id().index() << 2;
        let flow = peer_settings.flow_control.then(|| FlowControl {
            peer_max_data: AtomicU64::new(peer_settings.initial_max_data),
            credit: Notify::new(),
            window: config.settings.initial_max_data,
        });
        Self {
            quic,
            session_id,
            step_timeout: config.step_timeout,
            connect_send: Mutex::new(connect_send),
            flow,
            housekeeping: Mutex::new(Housekeeping {
                connect_recv,
                connect_buffer,
                capsules: BytesMut::new(),
                peer_control,
                peer_control_buffer,
                kept_uni,
            }),
            _control: control,
        }
    }

    /// The QUIC connection.
    pub fn quic(&self) -> &quinn::Connection {
        &self.quic
    }

    /// Whether session flow control is in force.
    pub fn flow_controlled(&self) -> bool {
        self.flow.is_some()
    }

    /// Waits (at most the step deadline) for the client's bidirectional
    /// stream in this session. Requests and streams of other kinds that
    /// come first are refused.
    pub async fn accept_stream(self: &Arc<Self>) -> Result<(DataSend, DataRecv), Error> {
        let accept = async {
            loop {
                let (mut send, mut recv) = self.quic.accept_bi().await?;
                let mut buffer = BytesMut::new();
                let (kind, session) = loop {
                    if let Some((kind, a)) = varint::peek(&buffer) {
                        if kind != frame::WEBTRANSPORT_STREAM {
                            break (kind, None);
                        }
                        if let Some((session, b)) = varint::peek(&buffer[a..]) {
                            buffer.advance(a + b);
                            break (kind, Some(session));
                        }
                    }
                    if !fill(&mut recv, &mut buffer).await.unwrap_or(false) {
                        break (u64::MAX, None);
                    }
                };
                match session {
                    Some(id) if id == self.session_id => {
                        let early = (!buffer.is_empty()).then(|| buffer.freeze());
                        let granted = self.flow.as_ref().map_or(0, |flow| flow.window);
                        return Ok((
                            DataSend { stream: send, session: self.clone(), sent: 0 },
                            DataRecv { stream: recv, session: self.clone(), early, consumed: 0, granted },
                        ));
                    }
                    Some(_) => refuse(send, recv, error_code::WT_BUFFERED_STREAM_REJECTED),
                    None if kind == frame::HEADERS => {
                        respond(
                            &mut send,
                            429,
                            "one WebTransport session per connection\n",
                            self.step_timeout,
                        )
                        .await;
                    }
                    None => refuse(send, recv, error_code::REQUEST_REJECTED),
                }
            }
        };
        timeout(self.step_timeout, accept).await.map_err(|_| Error::Timeout("open its stream"))?
    }

    /// Looks after the session until it ends: reads the client's capsules
    /// (credit, close), drains its control stream, and refuses streams the
    /// protocol does not use. Only one call runs at a time.
    pub async fn maintain(&self) -> SessionEnd {
        let mut guard = self.housekeeping.lock().await;
        let keeping = &mut *guard;
        loop {
            let step = tokio::select! {
                read = fill(&mut keeping.connect_recv, &mut keeping.connect_buffer) => match read {
                    Ok(true) => unwrap_data_frames(&mut keeping.connect_buffer, &mut keeping.capsules)
                        .and_then(|()| self.apply_capsules(&mut keeping.capsules)),
                    // A plain end of the CONNECT stream is a close with code
                    // 0 (draft-ietf-webtrans-http3, section 6).
                    Ok(false) => Err(SessionEnd::ClosedByClient { code: 0, text: String::new() }),
                    Err(error) => Err(SessionEnd::Failed(crate::error::from_read(error, "CONNECT stream"))),
                },
                read = fill(&mut keeping.peer_control, &mut keeping.peer_control_buffer) => match read {
                    Ok(true) => skip_control_frames(&mut keeping.peer_control_buffer),
                    Ok(false) => Err(SessionEnd::Failed(Error::protocol(
                        error_code::CLOSED_CRITICAL_STREAM,
                        "the client's control stream ended",
                    ))),
                    Err(error) => Err(SessionEnd::Failed(crate::error::from_read(error, "control stream"))),
                },
                uni = self.quic.accept_uni() => match uni {
                    Ok(mut recv) => {
                        // Boxed: rare, and inline its timer would enlarge
                        // every session's reader.
                        let kind = Box::pin(timeout(self.step_timeout, async {
                            let mut buffer = BytesMut::new();
                            loop {
                                if let Some((kind, _)) = varint::peek(&buffer) {
                                    return Some(kind);
                                }
                                if !fill(&mut recv, &mut buffer).await.unwrap_or(false) {
                                    return None;
                                }
                            }
                        }));
                        let kind = kind.await.ok().flatten().unwrap_or(u64::MAX);
                        keep_or_stop(&mut keeping.kept_uni, kind, recv);
                        Ok(())
                    }
                    Err(error) => Err(SessionEnd::Failed(error.into())),
                },
                bidi = self.quic.accept_bi() => match bidi {
                    Ok((send, recv)) => {
                        refuse(send, recv, error_code::REQUEST_REJECTED);
                        Ok(())
                    }
                    Err(error) => Err(SessionEnd::Failed(error.into())),
                },
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Acts on every whole capsule in the buffer.
    fn apply_capsules(&self, buffer: &mut BytesMut) -> Result<(), SessionEnd> {
        loop {
            let capsule = Capsule::split(buffer).map_err(|error| {
                SessionEnd::Failed(Error::protocol(error_code::MESSAGE_ERROR, error.to_string()))
            })?;
            match capsule {
                None => return Ok(()),
                Some(Capsule::Close { code, text }) => return Err(SessionEnd::ClosedByClient { code, text }),
                Some(Capsule::MaxData(max)) => {
                    // Without flow control in force, credit capsules are
                    // ignored (the client may not have seen SETTINGS yet).
                    let Some(flow) = &self.flow else { continue };
                    if max <= flow.peer_max_data.load(Ordering::Acquire) {
                        return Err(SessionEnd::Failed(Error::protocol(
                            error_code::WT_FLOW_CONTROL_ERROR,
                            "WT_MAX_DATA did not increase",
                        )));
                    }
                    flow.peer_max_data.store(max, Ordering::Release);
                    flow.credit.notify_waiters();
                }
                Some(Capsule::Drain) => tracing::debug!("the client asked to drain the session"),
                Some(_) => {}
            }
        }
    }

    /// Reads the next datagram of this session: the HTTP datagram's
    /// payload, a view of the received buffer.
    pub async fn read_datagram(&self) -> Result<Bytes, quinn::ConnectionError> {
        loop {
            let mut datagram = self.quic.read_datagram().await?;
            if let Some((quarter, used)) = varint::peek(&datagram) {
                if quarter == self.session_id / 4 {
                    datagram.advance(used);
                    return Ok(datagram);
                }
            }
        }
    }

    /// Sends a datagram, best effort: one that does not fit a packet or the
    /// send buffer is dropped, and false is returned. The HTTP datagram
    /// header (the quarter session id) goes in front of the payload, which
    /// takes one copy of these small, ephemeral messages.
    pub fn send_datagram(&self, payload: &[u8]) -> bool {
        let quarter = self.session_id / 4;
        let mut datagram = BytesMut::with_capacity(varint::size(quarter) + payload.len());
        varint::write(&mut datagram, quarter);
        datagram.extend_from_slice(payload);
        self.quic.send_datagram(datagram.freeze()).is_ok()
    }

    /// Ends the session with an application code and text, as the draft
    /// intends: a `WT_CLOSE_SESSION` capsule and the end of the CONNECT
    /// stream, so that the browser's `WebTransport.closed` resolves with
    /// them; then, after giving the client `patience` to close the QUIC
    /// connection itself, the connection is closed with the same code.
    pub async fn close(&self, code: u32, text: &str, patience: Duration) {
        let capsule = in_data_frame(&Capsule::Close { code, text: text.to_owned() });
        let sent = timeout(patience, async {
            let mut send = self.connect_send.lock().await;
            let written = send.write_all(&capsule).await.is_ok();
            let _ = send.finish();
            written
        });
        if sent.await.unwrap_or(false) {
            let _ = timeout(patience, self.quic.closed()).await;
        }
        let reason = capsule::truncate(text, capsule::MAX_CLOSE_TEXT);
        self.quic.close(quinn::VarInt::from_u32(code), reason.as_bytes());
    }

    /// Sends a capsule on the CONNECT stream.
    async fn send_capsule(&self, capsule: Capsule) -> Result<(), Error> {
        let bytes = in_data_frame(&capsule);
        let mut send = self.connect_send.lock().await;
        send.write_all(&bytes)
            .await
            .map_err(|_| Error::protocol(error_code::REQUEST_CANCELLED, "the CONNECT stream broke"))
    }
}

/// A capsule as it travels on an HTTP/3 stream: capsules are the content of
/// the CONNECT request and response, and HTTP/3 carries content in DATA
/// frames (RFC 9297, section 3.2).
fn in_data_frame(capsule: &Capsule) -> Vec<u8> {
    let payload = capsule.to_bytes();
    let mut out = Vec::with_capacity(payload.len() + 9);
    frame::write(&mut out, frame::DATA, &payload);
    out
}

/// The longest frame the server accepts on the CONNECT stream.
const MAX_CONNECT_FRAME: u64 = 64 * 1024;

/// Moves the payload of every whole DATA frame from the CONNECT stream's
/// frames to its capsule sequence; other frames (grease, trailers) carry no
/// capsules.
fn unwrap_data_frames(frames: &mut BytesMut, capsules: &mut BytesMut) -> Result<(), SessionEnd> {
    loop {
        match frame::split(frames, MAX_CONNECT_FRAME) {
            Ok(None) => return Ok(()),
            Ok(Some(frame)) if frame.kind == frame::DATA => capsules.extend_from_slice(&frame.payload),
            Ok(Some(_)) => {}
            Err(error) => {
                return Err(SessionEnd::Failed(Error::protocol(
                    error_code::MESSAGE_ERROR,
                    error.to_string(),
                )));
            }
        }
    }
}

/// Refuses a bidirectional stream in both directions.
fn refuse(mut send: quinn::SendStream, mut recv: quinn::RecvStream, code: u64) {
    let code = quinn::VarInt::from_u64(code).unwrap_or(quinn::VarInt::MAX);
    let _ = send.reset(code);
    let _ = recv.stop(code);
}

/// The longest frame the server accepts on the client's control stream.
const MAX_CONTROL_FRAME: u64 = 16 * 1024;

/// Skips whole frames on the client's control stream (GOAWAY, priority
/// updates, grease); a second SETTINGS or a request frame is an error.
fn skip_control_frames(buffer: &mut BytesMut) -> Result<(), SessionEnd> {
    let fail = |code, what: String| SessionEnd::Failed(Error::protocol(code, what));
    loop {
        match frame::split(buffer, MAX_CONTROL_FRAME) {
            Ok(None) => return Ok(()),
            Ok(Some(frame)) if matches!(frame.kind, frame::SETTINGS | frame::DATA | frame::HEADERS) => {
                return Err(fail(
                    error_code::FRAME_UNEXPECTED,
                    format!("frame {:#x} on the control stream", frame.kind),
                ));
            }
            Ok(Some(_)) => {}
            Err(error) => return Err(fail(error_code::FRAME_ERROR, error.to_string())),
        }
    }
}

impl DataSend {
    /// Writes every chunk, in order, without copying them: quinn keeps the
    /// `Bytes` themselves in its send buffer. Under session flow control,
    /// writes stop at the client's credit and wait for more.
    pub async fn write_all_chunks(&mut self, chunks: &mut [Bytes]) -> Result<(), quinn::WriteError> {
        if self.session.flow.is_none() {
            let total: u64 = chunks.iter().map(|chunk| chunk.len() as u64).sum();
            self.stream.write_all_chunks(chunks).await?;
            self.sent += total;
            return Ok(());
        }
        // Boxed: only flow-controlled sessions take this path, and inline
        // its waits would enlarge every session's writer.
        Box::pin(self.write_within_credit(chunks)).await
    }

    /// Writes the chunks no faster than the client's credit allows.
    async fn write_within_credit(&mut self, chunks: &mut [Bytes]) -> Result<(), quinn::WriteError> {
        let session = self.session.clone();
        let Some(flow) = &session.flow else { return Ok(()) };
        let mut rest = chunks;
        while !rest.is_empty() {
            let credit = self.wait_for_credit(flow).await;
            // The longest prefix of whole chunks that fits, then a view of
            // the part of the next one that still fits.
            let mut fits = 0;
            let mut used = 0u64;
            while fits < rest.len() && used + rest[fits].len() as u64 <= credit {
                used += rest[fits].len() as u64;
                fits += 1;
            }
            if fits < rest.len() && used < credit {
                let part = rest[fits].split_to((credit - used) as usize);
                let mut head: Vec<Bytes> = rest[..fits].to_vec();
                head.push(part);
                self.stream.write_all_chunks(&mut head).await?;
                self.sent = self.sent.saturating_add(credit);
                rest = &mut rest[fits..];
            } else {
                self.stream.write_all_chunks(&mut rest[..fits]).await?;
                self.sent += used;
                rest = &mut rest[fits..];
            }
        }
        Ok(())
    }

    /// Returns the credit left, waiting until there is some. Tells the
    /// client once each time the server is blocked (`WT_DATA_BLOCKED`).
    async fn wait_for_credit(&self, flow: &FlowControl) -> u64 {
        loop {
            let granted = flow.credit.notified();
            tokio::pin!(granted);
            granted.as_mut().enable();
            let max = flow.peer_max_data.load(Ordering::Acquire);
            if max > self.sent {
                return max - self.sent;
            }
            let _ = self.session.send_capsule(Capsule::DataBlocked(max)).await;
            granted.await;
        }
    }

    /// Ends the stream after what was written, and waits (at most
    /// `patience`) until the client has acknowledged all of it.
    pub async fn finish(&mut self, patience: Duration) {
        if self.stream.finish().is_ok() {
            let _ = timeout(patience, self.stream.stopped()).await;
        }
    }
}

impl DataRecv {
    /// The session the stream belongs to.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Reads the next chunk of the stream, or `None` at its end. Grants the
    /// client more credit as it goes, under session flow control, and treats
    /// data beyond the credit as the flow-control error it is.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, Error> {
        let chunk = match self.early.take() {
            Some(early) => early,
            None => match self.stream.read_chunk(max, true).await {
                Ok(Some(chunk)) => chunk.bytes,
                Ok(None) => return Ok(None),
                Err(quinn::ReadError::ConnectionLost(error)) => return Err(error.into()),
                Err(_) => return Ok(None),
            },
        };
        self.consumed += chunk.len() as u64;
        if let Some(flow) = &self.session.flow {
            if self.consumed > self.granted {
                return Err(Error::protocol(
                    error_code::WT_FLOW_CONTROL_ERROR,
                    "the client sent more than its session credit",
                ));
            }
            // Top the credit up once half of it is used, as QUIC does.
            if self.granted - self.consumed < flow.window / 2 {
                self.granted = self.consumed + flow.window;
                self.session.send_capsule(Capsule::MaxData(self.granted)).await?;
            }
        }
        Ok(Some(chunk))
    }
}
