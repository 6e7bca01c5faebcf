//! Frames: how a message becomes bytes and back.
//!
//! A frame's body is one byte of [`PROTOCOL_VERSION`] followed by the postcard
//! encoding of the message. Message-based transports (WebSocket) carry one body
//! per transport message. Byte streams (a WebTransport stream) carry each body
//! behind a 4-byte big-endian length prefix that counts the body's bytes.
//!
//! [`encode_prefixed`] writes the prefix and the body into one buffer, so a
//! server can encode a message once and hand the whole buffer to stream
//! transports and the slice after the prefix to message transports: both
//! share one allocation.
//!
//! Decoding never panics on any input: too short, too long, a foreign version
//! or bytes that are not a message each give a [`DecodeError`].

use alloc::vec::Vec;
use core::fmt;
use serde::{Serialize, de::DeserializeOwned};

use crate::{ErrorCode, PROTOCOL_VERSION};

/// The length of the prefix in front of each body on byte streams.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame has no bytes at all.
    Empty,
    /// The frame ends before the message does.
    Truncated,
    /// The frame is longer than the receiver accepts.
    TooLarge {
        /// The frame's length in bytes.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// The frame's version byte is not [`PROTOCOL_VERSION`].
    UnknownVersion(u8),
    /// The bytes do not decode to a message (an unknown variant, invalid
    /// UTF-8, an out-of-range number).
    Malformed,
    /// A whole message decoded but bytes were left over.
    TrailingBytes,
}

impl DecodeError {
    /// The error code a server answers this failure with. `TooLarge` has one
    /// too, but a server closes the session for it instead of answering.
    pub fn error_code(self) -> ErrorCode {
        match self {
            Self::UnknownVersion(_) => ErrorCode::UNSUPPORTED_VERSION,
            _ => ErrorCode::MALFORMED_FRAME,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty frame"),
            Self::Truncated => f.write_str("truncated frame"),
            Self::TooLarge { len, max } => write!(f, "frame of {len} bytes is over the limit of {max}"),
            Self::UnknownVersion(v) => write!(f, "unknown protocol version {v}"),
            Self::Malformed => f.write_str("malformed frame"),
            Self::TrailingBytes => f.write_str("trailing bytes after the message"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Encodes a message as a frame body: the version byte and the postcard bytes.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(PROTOCOL_VERSION);
    postcard_into(message, out)
}

/// Encodes a message as a length prefix followed by the frame body, ready for
/// a byte stream. `&result[LENGTH_PREFIX_BYTES..]` is the body alone, ready
/// for a message-based transport.
pub fn encode_prefixed<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0; LENGTH_PREFIX_BYTES]);
    out.push(PROTOCOL_VERSION);
    let mut out = postcard_into(message, out);
    // A body longer than u32::MAX cannot be built from any message a peer
    // accepts; saturating keeps this function total, and the receiver's size
    // limit refuses such a frame.
    let body_len = u32::try_from(out.len() - LENGTH_PREFIX_BYTES).unwrap_or(u32::MAX);
    out[..LENGTH_PREFIX_BYTES].copy_from_slice(&body_len.to_be_bytes());
    out
}

fn postcard_into<T: Serialize>(message: &T, out: Vec<u8>) -> Vec<u8> {
    // Serializing into a growable vector fails only for types postcard cannot
    // represent (sequences of unknown length); no protocol type is one, and
    // the round-trip tests cover every message.
    postcard::to_extend(message, out).expect("every protocol message is postcard-encodable")
}

/// Decodes a frame body (version byte and postcard bytes) of at most
/// `max_len` bytes.
pub fn decode<T: DeserializeOwned>(body: &[u8], max_len: usize) -> Result<T, DecodeError> {
    if body.len() > max_len {
        return Err(DecodeError::TooLarge { len: body.len(), max: max_len });
    }
    let (&version, rest) = body.split_first().ok_or(DecodeError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    match postcard::take_from_bytes::<T>(rest) {
        Ok((message, [])) => Ok(message),
        Ok(_) => Err(DecodeError::TrailingBytes),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(DecodeError::Truncated),
        Err(_) => Err(DecodeError::Malformed),
    }
}

/// Finds the first length-prefixed frame at the start of a byte stream buffer.
///
/// Returns `Ok(None)` while the buffer does not yet hold the whole frame, and
/// `Ok(Some(end))` once it does: the body is `buffer[LENGTH_PREFIX_BYTES..end]`
/// and the next frame starts at `end`. A declared length over `max_len` is an
/// error as soon as the prefix has arrived, so a receiver never buffers an
/// oversized frame.
pub fn split_stream_frame(buffer: &[u8], max_len: usize) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buffer.first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix) as usize;
    if len > max_len {
        return Err(DecodeError::TooLarge { len, max: max_len });
    }
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    let end = LENGTH_PREFIX_BYTES + len;
    Ok((buffer.len() >= end).then_some(end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientFrame, ServerMessage};
    use proptest::prelude::*;
    use std::vec;

    const MAX: usize = 1 << 20;

    proptest! {
        #[test]
        fn every_client_frame_round_trips(frame: ClientFrame) {
            let body = encode(&frame);
            prop_assert_eq!(decode::<ClientFrame>(&body, MAX), Ok(frame.clone()));
            let prefixed = encode_prefixed(&frame);
            prop_assert_eq!(&prefixed[LENGTH_PREFIX_BYTES..], &body[..]);
            prop_assert_eq!(split_stream_frame(&prefixed, MAX), Ok(Some(prefixed.len())));
        }

        #[test]
        fn every_server_message_round_trips(message: ServerMessage) {
            let body = encode(&message);
            prop_assert_eq!(decode::<ServerMessage>(&body, MAX), Ok(message.clone()));
            let prefixed = encode_prefixed(&message);
            prop_assert_eq!(&prefixed[LENGTH_PREFIX_BYTES..], &body[..]);
        }

        #[test]
        fn random_bytes_never_panic(bytes: Vec<u8>) {
            let _ = decode::<ClientFrame>(&bytes, MAX);
            let _ = decode::<ServerMessage>(&bytes, MAX);
            let _ = split_stream_frame(&bytes, MAX);
        }

        #[test]
        fn versioned_random_bytes_never_panic(bytes: Vec<u8>) {
            let mut body = vec![PROTOCOL_VERSION];
            body.extend_from_slice(&bytes);
            let _ = decode::<ClientFrame>(&body, MAX);
            let _ = decode::<ServerMessage>(&body, MAX);
        }

        #[test]
        fn every_truncation_is_an_error(frame: ClientFrame) {
            let body = encode(&frame);
            for cut in 0..body.len() {
                let result = decode::<ClientFrame>(&body[..cut], MAX);
                prop_assert!(result.is_err(), "a {cut}-byte prefix of {} bytes decoded", body.len());
            }
            let prefixed = encode_prefixed(&frame);
            for cut in 0..prefixed.len() {
                prop_assert_eq!(split_stream_frame(&prefixed[..cut], MAX), Ok(None));
            }
        }
    }

    #[test]
    fn typed_errors() {
        let body = encode(&ClientFrame { request_id: 7, message: crate::ClientMessage::Ping { nonce: 1 } });
        assert_eq!(decode::<ClientFrame>(&[], MAX), Err(DecodeError::Empty));
        assert_eq!(decode::<ClientFrame>(&body[..2], MAX), Err(DecodeError::Truncated));
        assert_eq!(decode::<ClientFrame>(&body, 2), Err(DecodeError::TooLarge { len: body.len(), max: 2 }));
        let mut foreign = body.clone();
        foreign[0] = 9;
        assert_eq!(decode::<ClientFrame>(&foreign, MAX), Err(DecodeError::UnknownVersion(9)));
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(decode::<ClientFrame>(&longer, MAX), Err(DecodeError::TrailingBytes));
        // Variant index 100 does not exist.
        assert_eq!(decode::<ClientFrame>(&[PROTOCOL_VERSION, 1, 100], MAX), Err(DecodeError::Malformed));
        assert_eq!(split_stream_frame(&[0, 0, 1, 0], 100), Err(DecodeError::TooLarge { len: 256, max: 100 }));
        assert_eq!(split_stream_frame(&[0, 0, 0, 0], 100), Err(DecodeError::Empty));
    }

    #[test]
    fn stream_splits_back_to_back_frames() {
        let a =
            encode_prefixed(&ClientFrame { request_id: 1, message: crate::ClientMessage::Ping { nonce: 1 } });
        let b = encode_prefixed(&ClientFrame {
            request_id: 2,
            message: crate::ClientMessage::Leave { room: "lobby".into() },
        });
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        let end = split_stream_frame(&stream, MAX).unwrap().unwrap();
        assert_eq!(end, a.len());
        let rest = &stream[end..];
        assert_eq!(split_stream_frame(rest, MAX), Ok(Some(b.len())));
        let second: ClientFrame = decode(&rest[LENGTH_PREFIX_BYTES..], MAX).unwrap();
        assert_eq!(second.request_id, 2);
    }

    #[test]
    fn every_reason_code_has_a_name() {
        for code in crate::ReasonCode::ALL {
            assert!(code.name().is_some(), "{code:?}");
        }
        assert_eq!(crate::ReasonCode(4999).name(), None);
    }
}
