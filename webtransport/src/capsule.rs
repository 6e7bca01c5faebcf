//! Capsules on a session's CONNECT stream (RFC 9297, section 3.2, and
//! draft-ietf-webtrans-http3, sections 4.7, 5.6 and 6).

use bytes::{Buf, BufMut, BytesMut};

use crate::varint;

/// `WT_CLOSE_SESSION`: the session ends with an application code and text.
pub const CLOSE_SESSION: u64 = 0x2843;
/// `WT_DRAIN_SESSION`: the sender asks for a graceful end.
pub const DRAIN_SESSION: u64 = 0x78ae;
/// `WT_MAX_DATA`: session-level data credit.
pub const MAX_DATA: u64 = 0x190b_4d3d;
/// `WT_MAX_STREAMS` for bidirectional streams.
pub const MAX_STREAMS_BIDI: u64 = 0x190b_4d3f;
/// `WT_MAX_STREAMS` for unidirectional streams.
pub const MAX_STREAMS_UNI: u64 = 0x190b_4d40;
/// `WT_DATA_BLOCKED`.
pub const DATA_BLOCKED: u64 = 0x190b_4d41;
/// `WT_STREAMS_BLOCKED` for bidirectional streams.
pub const STREAMS_BLOCKED_BIDI: u64 = 0x190b_4d43;
/// `WT_STREAMS_BLOCKED` for unidirectional streams.
pub const STREAMS_BLOCKED_UNI: u64 = 0x190b_4d44;

/// The longest close text a capsule carries, in bytes.
pub const MAX_CLOSE_TEXT: usize = 1024;

/// The largest capsule the server reads: a close with its longest text, with
/// room to spare. Anything larger is not one this protocol uses.
pub const MAX_CAPSULE: u64 = 4096;

/// A capsule the server understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capsule {
    /// `WT_CLOSE_SESSION`.
    Close {
        /// The application's code.
        code: u32,
        /// Why, in at most [`MAX_CLOSE_TEXT`] bytes of UTF-8.
        text: String,
    },
    /// `WT_DRAIN_SESSION`.
    Drain,
    /// `WT_MAX_DATA`.
    MaxData(u64),
    /// `WT_MAX_STREAMS`.
    MaxStreams {
        /// Bidirectional (true) or unidirectional.
        bidi: bool,
        /// The cumulative count.
        count: u64,
    },
    /// `WT_DATA_BLOCKED`.
    DataBlocked(u64),
    /// `WT_STREAMS_BLOCKED`.
    StreamsBlocked {
        /// Bidirectional (true) or unidirectional.
        bidi: bool,
        /// The limit that blocked.
        count: u64,
    },
    /// Any other capsule (grease, HTTP datagrams in capsules), skipped.
    Other(u64),
}

/// Why the capsules on a CONNECT stream could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapsuleError {
    /// A capsule longer than any this protocol uses.
    #[error("a capsule of type {kind:#x} is {len} bytes long")]
    TooLarge {
        /// The capsule type.
        kind: u64,
        /// Its declared length.
        len: u64,
    },
    /// A known capsule whose payload does not match its type.
    #[error("a capsule of type {0:#x} is malformed")]
    Malformed(u64),
}

/// Cuts `text` to at most `max` bytes at a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Capsule {
    /// Splits the next whole capsule off the front of `buffer`, if it holds
    /// one.
    pub fn split(buffer: &mut BytesMut) -> Result<Option<Self>, CapsuleError> {
        let Some((kind, a)) = varint::peek(buffer) else { return Ok(None) };
        let Some((len, b)) = varint::peek(&buffer[a..]) else { return Ok(None) };
        if len > MAX_CAPSULE {
            return Err(CapsuleError::TooLarge { kind, len });
        }
        if buffer.len() < a + b + len as usize {
            return Ok(None);
        }
        buffer.advance(a + b);
        let payload = buffer.split_to(len as usize);
        Self::parse(kind, &payload).map(Some)
    }

    fn parse(kind: u64, payload: &[u8]) -> Result<Self, CapsuleError> {
        let malformed = || CapsuleError::Malformed(kind);
        let single = |payload: &[u8]| -> Result<u64, CapsuleError> {
            match varint::peek(payload) {
                Some((value, used)) if used == payload.len() => Ok(value),
                _ => Err(malformed()),
            }
        };
        Ok(match kind {
            CLOSE_SESSION => {
                if payload.len() < 4 || payload.len() > 4 + MAX_CLOSE_TEXT {
                    return Err(malformed());
                }
                let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let text = std::str::from_utf8(&payload[4..]).map_err(|_| malformed())?.to_owned();
                Self::Close { code, text }
            }
            DRAIN_SESSION if payload.is_empty() => Self::Drain,
            DRAIN_SESSION => return Err(malformed()),
            MAX_DATA => Self::MaxData(single(payload)?),
            MAX_STREAMS_BIDI | MAX_STREAMS_UNI => {
                Self::MaxStreams { bidi: kind == MAX_STREAMS_BIDI, count: single(payload)? }
            }
            DATA_BLOCKED => Self::DataBlocked(single(payload)?),
            STREAMS_BLOCKED_BIDI | STREAMS_BLOCKED_UNI => {
                Self::StreamsBlocked { bidi: kind == STREAMS_BLOCKED_BIDI, count: single(payload)? }
            }
            other => Self::Other(other),
        })
    }

    /// Appends the capsule's wire form to `out`. A close text is cut to
    /// [`MAX_CLOSE_TEXT`] bytes at a character boundary.
    pub fn write(&self, out: &mut impl BufMut) {
        let mut payload = Vec::new();
        let kind = match self {
            Self::Close { code, text } => {
                payload.put_u32(*code);
                payload.put_slice(truncate(text, MAX_CLOSE_TEXT).as_bytes());
                CLOSE_SESSION
            }
            Self::Drain => DRAIN_SESSION,
            Self::MaxData(max) => {
                varint::write(&mut payload, *max);
                MAX_DATA
            }
            Self::MaxStreams { bidi, count } => {
                varint::write(&mut payload, *count);
                if *bidi { MAX_STREAMS_BIDI } else { MAX_STREAMS_UNI }
            }
            Self::DataBlocked(max) => {
                varint::write(&mut payload, *max);
                DATA_BLOCKED
            }
            Self::StreamsBlocked { bidi, count } => {
                varint::write(&mut payload, *count);
                if *bidi { STREAMS_BLOCKED_BIDI } else { STREAMS_BLOCKED_UNI }
            }
            Self::Other(kind) => *kind,
        };
        varint::write(out, kind);
        varint::write(out, payload.len() as u64);
        out.put_slice(&payload);
    }

    /// The capsule's wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capsules_round_trip() {
        let all = [
            Capsule::Close { code: 4007, text: "overloaded; retry in 2 s".into() },
            Capsule::Drain,
            Capsule::MaxData(1 << 20),
            Capsule::MaxStreams { bidi: true, count: 3 },
            Capsule::MaxStreams { bidi: false, count: 0 },
            Capsule::DataBlocked(65_536),
            Capsule::StreamsBlocked { bidi: false, count: 1 },
            Capsule::Other(0x21),
        ];
        let mut buffer = BytesMut::new();
        for capsule in &all {
            capsule.write(&mut buffer);
        }
        let whole = buffer.clone();
        // Fed a byte at a time, each capsule comes out once it is whole.
        let mut fed = BytesMut::new();
        let mut out = Vec::new();
        for &byte in whole.iter() {
            fed.put_u8(byte);
            while let Some(capsule) = Capsule::split(&mut fed).unwrap() {
                out.push(capsule);
            }
        }
        assert_eq!(out, all);
    }

    #[test]
    fn the_close_capsule_has_the_drafts_layout() {
        let bytes = Capsule::Close { code: 4000, text: "bye".into() }.to_bytes();
        // Type 0x2843 (two-byte varint), length 7, code as 32 bits, text.
        assert_eq!(bytes, [0x68, 0x43, 7, 0, 0, 0x0f, 0xa0, b'b', b'y', b'e']);
    }

    #[test]
    fn long_close_texts_are_cut_at_a_character_boundary() {
        let text = "é".repeat(600);
        let bytes = Capsule::Close { code: 1, text }.to_bytes();
        let Some(Capsule::Close { text, .. }) = Capsule::split(&mut BytesMut::from(&bytes[..])).unwrap()
        else {
            panic!("a close capsule")
        };
        assert_eq!(text.len(), 1024);
        assert!(text.chars().all(|c| c == 'é'));
        assert_eq!(truncate("aé", 2), "a");
    }

    #[test]
    fn malformed_capsules_are_refused() {
        let mut buffer = BytesMut::new();
        varint::write(&mut buffer, MAX_DATA);
        varint::write(&mut buffer, 2);
        buffer.put_slice(&[1, 2]);
        assert_eq!(Capsule::split(&mut buffer), Err(CapsuleError::Malformed(MAX_DATA)));
        let mut huge = BytesMut::new();
        varint::write(&mut huge, 0x21);
        varint::write(&mut huge, 1 << 30);
        assert!(matches!(Capsule::split(&mut huge), Err(CapsuleError::TooLarge { .. })));
        let mut short_close = BytesMut::new();
        varint::write(&mut short_close, CLOSE_SESSION);
        varint::write(&mut short_close, 2);
        short_close.put_slice(&[0, 0]);
        assert_eq!(Capsule::split(&mut short_close), Err(CapsuleError::Malformed(CLOSE_SESSION)));
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut buffer = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = Capsule::split(&mut buffer) {}
        }
    }
}
