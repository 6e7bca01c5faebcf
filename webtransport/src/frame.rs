//! HTTP/3 frames and stream types (RFC 9114, sections 6.2 and 7), as far as a
//! WebTransport server meets them: the few a client sends before and beside
//! its sessions.

use bytes::{Buf, BufMut, Bytes};

use crate::varint;

/// `DATA`: a body chunk on a request stream.
pub const DATA: u64 = 0x00;
/// `HEADERS`: a field section on a request stream.
pub const HEADERS: u64 = 0x01;
/// `SETTINGS`: the first frame on each control stream.
pub const SETTINGS: u64 = 0x04;
/// `GOAWAY`: the peer will open no more requests.
pub const GOAWAY: u64 = 0x07;
/// HTTP/2 frame types that HTTP/3 reserves; receiving one is an error.
pub const RESERVED_HTTP2: [u64; 4] = [0x02, 0x06, 0x08, 0x09];
/// The signal that starts a client's bidirectional WebTransport stream
/// (`WT_STREAM`), followed by the session id; it has no length.
pub const WEBTRANSPORT_STREAM: u64 = 0x41;

/// Unidirectional stream types.
pub mod stream_type {
    /// The control stream, one per side, carrying SETTINGS first.
    pub const CONTROL: u64 = 0x00;
    /// Server push; a client never opens one.
    pub const PUSH: u64 = 0x01;
    /// The QPACK encoder stream.
    pub const QPACK_ENCODER: u64 = 0x02;
    /// The QPACK decoder stream.
    pub const QPACK_DECODER: u64 = 0x03;
    /// A unidirectional WebTransport stream, followed by the session id.
    pub const WEBTRANSPORT: u64 = 0x54;
}

/// HTTP/3 error codes the server uses (RFC 9114, section 8.1, and the
/// WebTransport draft).
pub mod error_code {
    /// Nothing went wrong.
    pub const NO_ERROR: u64 = 0x100;
    /// The peer broke the protocol in a general way.
    pub const GENERAL_PROTOCOL_ERROR: u64 = 0x101;
    /// A stream of an unknown or unwanted type.
    pub const STREAM_CREATION_ERROR: u64 = 0x103;
    /// A control stream ended.
    pub const CLOSED_CRITICAL_STREAM: u64 = 0x104;
    /// A frame that is not allowed where it arrived.
    pub const FRAME_UNEXPECTED: u64 = 0x105;
    /// A malformed frame.
    pub const FRAME_ERROR: u64 = 0x106;
    /// SETTINGS broke the rules.
    pub const SETTINGS_ERROR: u64 = 0x109;
    /// The control stream did not start with SETTINGS.
    pub const MISSING_SETTINGS: u64 = 0x10a;
    /// A request the server did not process at all.
    pub const REQUEST_REJECTED: u64 = 0x10b;
    /// A request, or the response to it, was cut off.
    pub const REQUEST_CANCELLED: u64 = 0x10c;
    /// A message was malformed.
    pub const MESSAGE_ERROR: u64 = 0x10e;
    /// A field section could not be decoded (RFC 9204, section 6).
    pub const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;
    /// A WebTransport stream that belongs to no session.
    pub const WT_BUFFERED_STREAM_REJECTED: u64 = 0x3994_bd84;
    /// A WebTransport stream aborted because its session ended.
    pub const WT_SESSION_GONE: u64 = 0x170d_7b68;
    /// A WebTransport peer broke session flow control.
    pub const WT_FLOW_CONTROL_ERROR: u64 = 0x045d_4487;
}

/// Whether a frame, stream or setting type is a reserved ("grease") value of
/// the form 0x1f * N + 0x21, which receivers ignore.
pub fn is_grease(value: u64) -> bool {
    value >= 0x21 && (value - 0x21) % 0x1f == 0
}

/// A frame's type and the length of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The frame type.
    pub kind: u64,
    /// The payload length in bytes.
    pub len: u64,
}

/// Reads a frame header from the front of `bytes`: the header and its size,
/// or `None` if `bytes` ends first.
pub fn peek_header(bytes: &[u8]) -> Option<(FrameHeader, usize)> {
    let (kind, a) = varint::peek(bytes)?;
    let (len, b) = varint::peek(&bytes[a..])?;
    Some((FrameHeader { kind, len }, a + b))
}

/// Writes a whole frame.
pub fn write(buf: &mut impl BufMut, kind: u64, payload: &[u8]) {
    varint::write(buf, kind);
    varint::write(buf, payload.len() as u64);
    buf.put_slice(payload);
}

/// A frame split off a buffer: its type and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame type.
    pub kind: u64,
    /// The payload.
    pub payload: Bytes,
}

/// Why a stream of frames could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame longer than the reader accepts.
    #[error("a frame of type {kind:#x} is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// The frame type.
        kind: u64,
        /// Its declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
}

/// Splits the next whole frame off the front of `buffer`, if it holds one.
/// A declared length over `max` is refused before its payload arrives.
pub fn split(buffer: &mut bytes::BytesMut, max: u64) -> Result<Option<Frame>, FrameError> {
    let Some((header, header_len)) = peek_header(buffer) else { return Ok(None) };
    if header.len > max {
        return Err(FrameError::TooLarge { kind: header.kind, len: header.len, max });
    }
    let total = header_len + header.len as usize;
    if buffer.len() < total {
        return Ok(None);
    }
    buffer.advance(header_len);
    let payload = buffer.split_to(header.len as usize).freeze();
    Ok(Some(Frame { kind: header.kind, payload }))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn frames_split_only_when_whole() {
        let mut wire = Vec::new();
        write(&mut wire, HEADERS, b"abc");
        write(&mut wire, 0x21, b"");
        let mut buffer = BytesMut::from(&wire[..3]);
        assert_eq!(split(&mut buffer, 100), Ok(None));
        buffer.extend_from_slice(&wire[3..]);
        let first = split(&mut buffer, 100).unwrap().unwrap();
        assert_eq!((first.kind, &first.payload[..]), (HEADERS, &b"abc"[..]));
        let grease = split(&mut buffer, 100).unwrap().unwrap();
        assert!(is_grease(grease.kind) && grease.payload.is_empty());
        assert!(buffer.is_empty());
    }

    #[test]
    fn an_oversize_frame_is_refused_from_its_header() {
        let mut buffer = BytesMut::new();
        varint::write(&mut buffer, HEADERS);
        varint::write(&mut buffer, 1 << 20);
        assert_eq!(
            split(&mut buffer, 1000),
            Err(FrameError::TooLarge { kind: HEADERS, len: 1 << 20, max: 1000 })
        );
    }

    #[test]
    fn grease_values_follow_the_rfc_formula() {
        assert!(is_grease(0x21) && is_grease(0x40) && is_grease(0x1f * 1000 + 0x21));
        assert!(!is_grease(0x20) && !is_grease(HEADERS) && !is_grease(0x41));
    }
}
