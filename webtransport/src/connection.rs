//! An HTTP/3 connection up to its WebTransport session: the control streams,
//! the SETTINGS exchange, and requests that are answered or accepted.
//!
//! One QUIC connection carries at most one session, as the server advertises
//! (`MAX_SESSIONS` = 1); requests that are not a session at the right path
//! get a plain HTTP/3 response and the connection stays usable.

use std::time::Duration;

use bytes::BytesMut;
use tokio::time::timeout;

use crate::error::{Error, from_read};
use crate::frame::{self, error_code, stream_type};
use crate::qpack;
use crate::request::Request;
use crate::settings::{PeerSettings, ServerSettings};
use crate::varint;

/// The limits a server applies to every connection.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// What the server advertises.
    pub settings: ServerSettings,
    /// How long a client may take for each step before its session: to send
    /// its SETTINGS, its request, its request's head, and its first stream.
    pub step_timeout: Duration,
}

/// How much of a stream is read at a time while looking for its head.
const READ_CHUNK: usize = 4096;

/// How many unidirectional streams of the client's the server keeps open:
/// its QPACK encoder and decoder streams. Further ones are stopped.
const KEPT_UNI_STREAMS: usize = 2;

/// An HTTP/3 connection whose client has not opened a session yet.
#[derive(Debug)]
pub struct Connection {
    pub(crate) quic: quinn::Connection,
    pub(crate) config: Config,
    /// The server's control stream, which must stay open for the
    /// connection's life.
    pub(crate) control: quinn::SendStream,
    /// The client's control stream and what was read of it.
    pub(crate) peer_control: quinn::RecvStream,
    pub(crate) peer_control_buffer: BytesMut,
    /// The client's QPACK streams, kept open (closing a peer's critical
    /// stream is an error); with no dynamic table they carry nothing the
    /// server needs.
    pub(crate) kept_uni: Vec<quinn::RecvStream>,
    pub(crate) peer_settings: PeerSettings,
}

/// A request whose head has arrived and which awaits an answer.
#[derive(Debug)]
pub struct IncomingRequest {
    /// The request head.
    pub request: Request,
    pub(crate) send: quinn::SendStream,
    pub(crate) recv: quinn::RecvStream,
    /// What the client sent after the head (capsules it sent before the
    /// answer, which the draft allows).
    pub(crate) rest: BytesMut,
}

impl Connection {
    /// Opens the server's control stream with its SETTINGS and waits for the
    /// client's: the drafts forbid acting on a WebTransport request before
    /// the client's SETTINGS are known.
    pub async fn accept(quic: quinn::Connection, config: Config) -> Result<Self, Error> {
        let mut control = quic.open_uni().await?;
        control
            .write_all(&config.settings.control_stream_preface())
            .await
            .map_err(|_| Error::protocol(error_code::CLOSED_CRITICAL_STREAM, "cannot write SETTINGS"))?;
        let mut kept_uni = Vec::new();
        let step = timeout(config.step_timeout, async {
            loop {
                let mut recv = quic.accept_uni().await?;
                let mut buffer = BytesMut::new();
                match read_stream_type(&mut recv, &mut buffer).await? {
                    stream_type::CONTROL => {
                        let settings = read_settings(&mut recv, &mut buffer).await?;
                        return Ok::<_, Error>((recv, buffer, settings));
                    }
                    kind => keep_or_stop(&mut kept_uni, kind, recv),
                }
            }
        });
        let (peer_control, peer_control_buffer, peer_settings) =
            step.await.map_err(|_| Error::Timeout("send its SETTINGS"))??;
        tracing::debug!(?peer_settings, "HTTP/3 client SETTINGS");
        Ok(Self { quic, config, control, peer_control, peer_control_buffer, kept_uni, peer_settings })
    }

    /// The QUIC connection.
    pub fn quic(&self) -> &quinn::Connection {
        &self.quic
    }

    /// What the client declared in its SETTINGS.
    pub fn peer_settings(&self) -> PeerSettings {
        self.peer_settings
    }

    /// Waits for the client's next request and reads its head. `None` when
    /// the client closes the connection instead. Both waits have the step
    /// deadline: a connection that never asks for anything is closed.
    pub async fn next_request(&mut self) -> Result<Option<IncomingRequest>, Error> {
        let deadline = self.config.step_timeout;
        let accepted = timeout(deadline, async {
            loop {
                tokio::select! {
                    bidi = self.quic.accept_bi() => return bidi.map(Some),
                    uni = self.quic.accept_uni() => {
                        let mut recv = uni?;
                        let mut buffer = BytesMut::new();
                        let kind = match timeout(deadline, read_stream_type(&mut recv, &mut buffer)).await {
                            Ok(kind) => kind.ok(),
                            Err(_) => None,
                        };
                        match kind {
                            Some(kind) => keep_or_stop(&mut self.kept_uni, kind, recv),
                            None => { let _ = recv.stop(quinn::VarInt::from_u32(error_code::STREAM_CREATION_ERROR as u32)); }
                        }
                    }
                }
            }
        });
        let (send, mut recv) = match accepted.await {
            Ok(Ok(Some(streams))) => streams,
            Ok(Ok(None)) => return Ok(None),
            Ok(Err(quinn::ConnectionError::ApplicationClosed(_) | quinn::ConnectionError::LocallyClosed)) => {
                return Ok(None);
            }
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => return Err(Error::Timeout("open a session")),
        };
        let max = self.config.settings.max_field_section_size;
        let head = timeout(deadline, read_request_head(&mut recv, max)).await;
        let (request, rest) = head.map_err(|_| Error::Timeout("send its request"))??;
        Ok(Some(IncomingRequest { request, send, recv, rest }))
    }

    /// Answers a request that is not a session with a status and a short
    /// text body, and finishes its stream. The connection stays usable.
    pub async fn respond(&self, request: IncomingRequest, status: u16, text: &str) {
        let IncomingRequest { mut send, mut recv, .. } = request;
        respond(&mut send, status, text, self.config.step_timeout).await;
        let _ = recv.stop(quinn::VarInt::from_u32(0x100));
    }
}

/// Writes a response head and body on a request stream and finishes it,
/// giving up after `patience` (a client that does not read cannot hold the
/// server).
pub(crate) async fn respond(send: &mut quinn::SendStream, status: u16, text: &str, patience: Duration) {
    let status = status.to_string();
    let head = qpack::encode(&[(":status", &status), ("content-type", "text/plain;charset=utf-8")]);
    let mut bytes = Vec::with_capacity(head.len() + text.len() + 8);
    frame::write(&mut bytes, frame::HEADERS, &head);
    frame::write(&mut bytes, frame::DATA, text.as_bytes());
    let _ = timeout(patience, send.write_all(&bytes)).await;
    let _ = send.finish();
}

/// Keeps a client's QPACK stream open, and stops any other unidirectional
/// stream: push streams are the server's to open, WebTransport streams are
/// not part of this protocol, and unknown types may be refused (RFC 9114,
/// section 6.2).
pub(crate) fn keep_or_stop(kept: &mut Vec<quinn::RecvStream>, kind: u64, mut recv: quinn::RecvStream) {
    let is_qpack = matches!(kind, stream_type::QPACK_ENCODER | stream_type::QPACK_DECODER);
    if is_qpack && kept.len() < KEPT_UNI_STREAMS {
        kept.push(recv);
        return;
    }
    let code = if kind == stream_type::WEBTRANSPORT {
        error_code::WT_BUFFERED_STREAM_REJECTED
    } else {
        error_code::STREAM_CREATION_ERROR
    };
    let _ = recv.stop(quinn::VarInt::from_u64(code).unwrap_or(quinn::VarInt::MAX));
}

/// Reads more of a stream into `buffer`; false at its end.
pub(crate) async fn fill(
    recv: &mut quinn::RecvStream,
    buffer: &mut BytesMut,
) -> Result<bool, quinn::ReadError> {
    match recv.read_chunk(READ_CHUNK, true).await? {
        Some(chunk) => {
            buffer.extend_from_slice(&chunk.bytes);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Reads a unidirectional stream's type.
async fn read_stream_type(recv: &mut quinn::RecvStream, buffer: &mut BytesMut) -> Result<u64, Error> {
    loop {
        if let Some((kind, used)) = varint::peek(buffer) {
            let _ = buffer.split_to(used);
            return Ok(kind);
        }
        if !fill(recv, buffer).await.map_err(|e| from_read(e, "new stream"))? {
            return Err(Error::protocol(error_code::STREAM_CREATION_ERROR, "a stream ended before its type"));
        }
    }
}

/// The largest SETTINGS frame the server reads.
const MAX_SETTINGS_FRAME: u64 = 16 * 1024;

/// Reads the SETTINGS frame that must open the client's control stream.
async fn read_settings(recv: &mut quinn::RecvStream, buffer: &mut BytesMut) -> Result<PeerSettings, Error> {
    loop {
        let split = frame::split(buffer, MAX_SETTINGS_FRAME)
            .map_err(|e| Error::protocol(error_code::FRAME_ERROR, e.to_string()))?;
        if let Some(frame) = split {
            if frame.kind != frame::SETTINGS {
                return Err(Error::protocol(
                    error_code::MISSING_SETTINGS,
                    "the control stream does not start with SETTINGS",
                ));
            }
            return PeerSettings::decode(&frame.payload)
                .map_err(|e| Error::protocol(error_code::SETTINGS_ERROR, e.to_string()));
        }
        if !fill(recv, buffer).await.map_err(|e| from_read(e, "control stream"))? {
            return Err(Error::protocol(error_code::CLOSED_CRITICAL_STREAM, "the control stream ended"));
        }
    }
}

/// Reads a request stream up to its HEADERS frame and decodes the head.
/// Grease and unknown frames before it are skipped (RFC 9114, section 9);
/// DATA first is an error.
async fn read_request_head(recv: &mut quinn::RecvStream, max: u64) -> Result<(Request, BytesMut), Error> {
    let mut buffer = BytesMut::new();
    loop {
        let split = frame::split(&mut buffer, max)
            .map_err(|e| Error::protocol(error_code::MESSAGE_ERROR, e.to_string()))?;
        match split {
            Some(frame) if frame.kind == frame::HEADERS => {
                let fields = qpack::decode(&frame.payload, max as usize)
                    .map_err(|e| Error::protocol(error_code::QPACK_DECOMPRESSION_FAILED, e.to_string()))?;
                let request = Request::from_fields(&fields)
                    .map_err(|e| Error::protocol(error_code::MESSAGE_ERROR, e.to_string()))?;
                return Ok((request, buffer));
            }
            Some(frame) if frame.kind == frame::DATA || frame::RESERVED_HTTP2.contains(&frame.kind) => {
                return Err(Error::protocol(
                    error_code::FRAME_UNEXPECTED,
                    format!("frame {:#x} before the request head", frame.kind),
                ));
            }
            Some(_) => continue,
            None => {}
        }
        if !fill(recv, &mut buffer).await.map_err(|e| from_read(e, "request stream"))? {
            return Err(Error::protocol(error_code::REQUEST_CANCELLED, "the request ended before its head"));
        }
    }
}
