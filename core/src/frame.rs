//! An encoded server message, shared by every recipient.
//!
//! A [`Frame`] is encoded once, with the stream length prefix in front, into a
//! reference-counted [`Bytes`]. Cloning a frame copies a pointer and bumps a
//! count; it never copies the message. Message-based transports send
//! [`Frame::body`], stream transports send [`Frame::prefixed`]; both are views
//! of the same allocation.

use bytes::Bytes;
use wtchat_protocol::{LENGTH_PREFIX_BYTES, ServerMessage, encode_prefixed};

/// One encoded server message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The length prefix followed by the body, as one allocation.
    prefixed: Bytes,
    /// Whether the message is ephemeral (a typing notice): transports that
    /// have an unreliable channel send it there, and queues drop it rather
    /// than hold it for a reader that is behind.
    ephemeral: bool,
}

impl Frame {
    /// Encodes a message. This is the only place the server serializes a
    /// message; everything downstream moves the resulting bytes.
    pub fn encode(message: &ServerMessage) -> Self {
        Self { prefixed: Bytes::from(encode_prefixed(message)), ephemeral: message.is_ephemeral() }
    }

    /// Whether the frame is ephemeral.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The frame as a byte stream carries it: length prefix and body.
    pub fn prefixed(&self) -> &Bytes {
        &self.prefixed
    }

    /// The frame as a message-based transport carries it: the body alone. The
    /// returned `Bytes` shares the frame's allocation.
    pub fn body(&self) -> Bytes {
        self.prefixed.slice(LENGTH_PREFIX_BYTES..)
    }

    /// The body alone, borrowed: what a writer hands the kernel straight
    /// from the shared allocation, without touching its reference count.
    pub fn body_slice(&self) -> &[u8] {
        &self.prefixed[LENGTH_PREFIX_BYTES..]
    }

    /// The frame as a byte stream carries it, consuming the frame: the same
    /// allocation as [`Frame::prefixed`], handed over without touching the
    /// shared reference count.
    pub fn into_prefixed(self) -> Bytes {
        self.prefixed
    }

    /// The body alone, consuming the frame: the same view as [`Frame::body`]
    /// without touching the shared reference count, which every recipient's
    /// copy of the frame contends on.
    pub fn into_body(self) -> Bytes {
        let mut bytes = self.prefixed;
        bytes::Buf::advance(&mut bytes, LENGTH_PREFIX_BYTES);
        bytes
    }

    /// The size the frame counts for in an outbound queue.
    pub fn len(&self) -> usize {
        self.prefixed.len()
    }

    /// Whether the frame is empty; no encoded message is.
    pub fn is_empty(&self) -> bool {
        self.prefixed.is_empty()
    }
}
