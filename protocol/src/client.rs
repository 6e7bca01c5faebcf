//! Messages a client sends to the server.

use alloc::string::String;
use serde::{Deserialize, Serialize};

/// One client-to-server frame: a request and the number that names it.
///
/// The server echoes `request_id` in the answer to the request (joined, left,
/// pong) and in any error it causes, so a client can match answers to requests
/// without relying on ordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ClientFrame {
    /// Chosen by the client; the server never interprets it.
    pub request_id: u32,
    /// What the client asks for.
    pub message: ClientMessage,
}

/// Everything a client can ask of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ClientMessage {
    /// The first frame of every session. The server answers with a welcome,
    /// or closes with `UNSUPPORTED_VERSION`.
    Hello {
        /// The [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) the client speaks.
        protocol_version: u16,
        /// Free-form client identification for logs, such as "wtchat-web/0.1".
        client_name: String,
        /// Why this client is not on its preferred transport, when it fell
        /// back (for example `"timeout"` when WebTransport did not connect in
        /// time); operators count these to see how often WebTransport fails.
        /// See [`FallbackReason`](crate::FallbackReason) for the names.
        fallback: Option<String>,
    },
    /// Join a room, creating it if it does not exist.
    Join {
        /// The room's name; see the server's limits for what is valid.
        room: String,
        /// The name other members see for this session in this room.
        display_name: String,
        /// Where the client left off in this room, so that it receives only
        /// the messages it missed instead of the whole recent history.
        resume: Option<Resume>,
    },
    /// Leave a room this session is in.
    Leave {
        /// The room to leave.
        room: String,
    },
    /// Send a chat message to every member of a room the session is in.
    Publish {
        /// The room to publish to.
        room: String,
        /// The message text, at most the server's `max_message_bytes` long.
        body: String,
        /// The client's name for this message, unique among its user's
        /// messages (1 to [`MESSAGE_ID_MAX_BYTES`](crate::MESSAGE_ID_MAX_BYTES)
        /// bytes). With one, the server answers with a
        /// [`Published`](crate::Published) once the message has its number,
        /// and a publish repeated with the same id within
        /// [`MESSAGE_ID_WINDOW_MS`](crate::MESSAGE_ID_WINDOW_MS), on any
        /// server, gets the first one's answer and publishes nothing: a
        /// client whose connection died before the answer came sends it again
        /// safely. The ids are the user's (the token's subject), or the
        /// client's own without a token.
        message_id: Option<String>,
    },
    /// Keep the session alive and measure the round trip. A client sends a
    /// ping whenever it has sent nothing else for a heartbeat interval.
    Ping {
        /// Echoed in the pong.
        nonce: u64,
    },
    /// Tell a room this session is typing. Ephemeral: never stored, never
    /// answered, and dropped rather than queued when a reader is behind. On
    /// WebTransport a client sends it as a datagram.
    Typing {
        /// The room, which the session must be in.
        room: String,
    },
    /// Ask for a page of a room's members, by session id: those above
    /// `after` (0 for the first page), at most `limit` of them (the server
    /// caps it). The answer is a [`MembersPage`](crate::MembersPage).
    Members {
        /// The room, which the session must be in.
        room: String,
        /// The last session id of the previous page, or 0.
        after: u64,
        /// How many members the page may hold.
        limit: u32,
    },
    /// Ask for older messages of a room the session is in: the newest the
    /// server keeps numbered below `before` (in the room's current epoch),
    /// at most `limit` of them (the server caps it at 100). A client pages
    /// back from the oldest number it holds. The answer is a
    /// [`HistoryPage`](crate::HistoryPage).
    History {
        /// The room, which the session must be in.
        room: String,
        /// The page ends below this number.
        before: u64,
        /// How many messages the page may hold.
        limit: u32,
    },
    /// Replace the session's token with a fresh one for the same user,
    /// typically after a [`TokenExpiring`](crate::TokenExpiring) notice. The
    /// server checks it like the first: its expiry and grants apply at once
    /// (rooms it no longer allows are left, each answered with a `Left`
    /// under this request's id), and the answer is a
    /// [`TokenRefreshed`](crate::TokenRefreshed); a token that is invalid,
    /// expired or names another user gets an `INVALID_TOKEN` error and
    /// changes nothing.
    RefreshToken {
        /// The new token (a JWT, as at connect).
        token: String,
    },
}

/// A client's position in a room's message sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Resume {
    /// The room epoch the client saw in its last joined answer. Sequence
    /// numbers are only comparable within one epoch.
    pub epoch: u64,
    /// The highest sequence number the client has received in that epoch.
    pub last_seq: u64,
}
