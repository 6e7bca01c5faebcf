//! The wtchat wire format, shared by the server and the browser client.
//!
//! Every message between a client and the server is one of two serde enums,
//! [`ClientFrame`] (client to server) and [`ServerMessage`] (server to client),
//! encoded with postcard behind a one-byte protocol version. See [`codec`] for
//! the exact frame layout on message-based transports (WebSocket) and on byte
//! streams (WebTransport).
//!
//! This crate is deliberately small: it has no async runtime, no I/O and no
//! `std`, so it builds unchanged for `wasm32-unknown-unknown`. It is the only
//! place where the wire format is defined; the server and the client can never
//! disagree about it because they compile the same code.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod client;
pub mod codec;
pub mod error_code;
pub mod fallback;
pub mod reason;
pub mod server;

pub use client::{ClientFrame, ClientMessage, Resume};
pub use codec::{DecodeError, LENGTH_PREFIX_BYTES, decode, encode, encode_prefixed, split_stream_frame};
pub use error_code::ErrorCode;
pub use fallback::FallbackReason;
pub use reason::ReasonCode;
pub use server::{
    ChatMessage, Closing, ErrorNotice, HistoryPage, HistoryReplay, Joined, Left, Limits, Member,
    MemberChange, MembersPage, Pong, PresenceChange, PresenceDiff, Published, ServerMessage, TokenExpiring,
    TokenRefreshed, Typing, Welcome,
};

/// The protocol version this crate speaks.
///
/// It is the first byte of every frame and the version a client announces in
/// its hello. A peer that sees another value refuses the frame with
/// [`DecodeError::UnknownVersion`] instead of guessing at its layout.
pub const PROTOCOL_VERSION: u8 = 3;

/// The longest message id a publish may carry, in bytes.
pub const MESSAGE_ID_MAX_BYTES: usize = 64;

/// How long the server remembers a message id and what its publish got, in
/// ms: a publish repeated within this window is answered, not published
/// again. A client must not repeat one later, since it might then appear
/// twice; the browser client gives such a message up as unconfirmed.
pub const MESSAGE_ID_WINDOW_MS: u64 = 120_000;
