//! Why a request was refused: the machine-readable codes of error frames.
//!
//! An error frame refuses one request and leaves the session open; what ends a
//! session is a [`ReasonCode`](crate::ReasonCode). Repeated errors do count
//! against the session, and a client that keeps causing them is closed with
//! `PROTOCOL_VIOLATION` or `FLOODING`.
//!
//! | code | name | meaning |
//! |------|------|---------|
//! | 1 | `MALFORMED_FRAME` | The frame could not be decoded (truncated, trailing bytes, unknown message). |
//! | 2 | `UNSUPPORTED_FRAME` | The transport frame type is not used by the protocol (a WebSocket text message). |
//! | 3 | `HELLO_REQUIRED` | The request came before the session's hello. |
//! | 4 | `ALREADY_GREETED` | A second hello on one session. |
//! | 5 | `INVALID_ROOM_NAME` | The room name is empty, too long, or has characters outside the allowed set. |
//! | 6 | `INVALID_DISPLAY_NAME` | The display name is empty, too long, shows nothing, or has control characters, line separators, bidirectional controls or needless invisible characters (`server/src/name.rs` has the policy). |
//! | 7 | `NOT_IN_ROOM` | The session is not in the room it named (an unknown room, or one it left). |
//! | 8 | `ALREADY_IN_ROOM` | The session is already in the room it asked to join. |
//! | 9 | `TOO_MANY_ROOMS` | The session is in `max_rooms_per_session` rooms already. |
//! | 10 | `ROOM_LIMIT_REACHED` | The server holds as many rooms as it is configured to. |
//! | 11 | `MESSAGE_TOO_LARGE` | The message body is over `max_message_bytes`. |
//! | 12 | `EMPTY_MESSAGE` | The message body is empty. |
//! | 13 | `RATE_LIMITED` | The session publishes faster than its rate limit allows. |
//! | 14 | `UNSUPPORTED_VERSION` | A frame carried a protocol version the server does not speak. |
//! | 15 | `FORBIDDEN` | The session's credentials do not allow this room (joining or publishing). |
//! | 16 | `BROKER_UNAVAILABLE` | The broker that orders rooms across servers (Redis) cannot be reached; the message was not sent, or the room not joined. Try again. |
//! | 17 | `INVALID_TOKEN` | A token refresh was refused: the token is invalid or expired, names another user, or the server does not authenticate sessions. The session keeps its token until that expires. |
//! | 18 | `REJECTED` | The application's moderation refused the message; the text says why. Sending it again gets the same answer. |
//! | 19 | `MODERATION_UNAVAILABLE` | The message was not sent: the server could not reach the application's moderation, and is configured to refuse messages then. Try again. |
//! | 20 | `INVALID_MESSAGE_ID` | A publish's message id is empty or longer than `MESSAGE_ID_MAX_BYTES`. |

use core::fmt;
use serde::{Deserialize, Serialize};

/// An error code; see the [module documentation](self) for the table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The frame could not be decoded.
    pub const MALFORMED_FRAME: Self = Self(1);
    /// The transport frame type is not used by the protocol.
    pub const UNSUPPORTED_FRAME: Self = Self(2);
    /// The request came before the session's hello.
    pub const HELLO_REQUIRED: Self = Self(3);
    /// A second hello on one session.
    pub const ALREADY_GREETED: Self = Self(4);
    /// The room name is not valid.
    pub const INVALID_ROOM_NAME: Self = Self(5);
    /// The display name is not valid.
    pub const INVALID_DISPLAY_NAME: Self = Self(6);
    /// The session is not in the room it named.
    pub const NOT_IN_ROOM: Self = Self(7);
    /// The session is already in the room.
    pub const ALREADY_IN_ROOM: Self = Self(8);
    /// The session is in too many rooms.
    pub const TOO_MANY_ROOMS: Self = Self(9);
    /// No room may be opened now: the server holds as many as it may, or
    /// the client's user (or address) has opened as many as it may hold
    /// open. Rooms that exist may still be joined.
    pub const ROOM_LIMIT_REACHED: Self = Self(10);
    /// The message body is too large.
    pub const MESSAGE_TOO_LARGE: Self = Self(11);
    /// The message body is empty.
    pub const EMPTY_MESSAGE: Self = Self(12);
    /// The session publishes too fast.
    pub const RATE_LIMITED: Self = Self(13);
    /// A frame carried an unknown protocol version.
    pub const UNSUPPORTED_VERSION: Self = Self(14);
    /// The session's credentials do not allow this room.
    pub const FORBIDDEN: Self = Self(15);
    /// The broker that orders rooms across servers cannot be reached.
    pub const BROKER_UNAVAILABLE: Self = Self(16);
    /// A token refresh was refused.
    pub const INVALID_TOKEN: Self = Self(17);
    /// The application's moderation refused the message.
    pub const REJECTED: Self = Self(18);
    /// The application's moderation could not be reached.
    pub const MODERATION_UNAVAILABLE: Self = Self(19);
    /// A publish's message id is empty or too long.
    pub const INVALID_MESSAGE_ID: Self = Self(20);

    /// The code's name as written in the table, or `None` for a code this
    /// version does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::MALFORMED_FRAME => "MALFORMED_FRAME",
            Self::UNSUPPORTED_FRAME => "UNSUPPORTED_FRAME",
            Self::HELLO_REQUIRED => "HELLO_REQUIRED",
            Self::ALREADY_GREETED => "ALREADY_GREETED",
            Self::INVALID_ROOM_NAME => "INVALID_ROOM_NAME",
            Self::INVALID_DISPLAY_NAME => "INVALID_DISPLAY_NAME",
            Self::NOT_IN_ROOM => "NOT_IN_ROOM",
            Self::ALREADY_IN_ROOM => "ALREADY_IN_ROOM",
            Self::TOO_MANY_ROOMS => "TOO_MANY_ROOMS",
            Self::ROOM_LIMIT_REACHED => "ROOM_LIMIT_REACHED",
            Self::MESSAGE_TOO_LARGE => "MESSAGE_TOO_LARGE",
            Self::EMPTY_MESSAGE => "EMPTY_MESSAGE",
            Self::RATE_LIMITED => "RATE_LIMITED",
            Self::UNSUPPORTED_VERSION => "UNSUPPORTED_VERSION",
            Self::FORBIDDEN => "FORBIDDEN",
            Self::BROKER_UNAVAILABLE => "BROKER_UNAVAILABLE",
            Self::INVALID_TOKEN => "INVALID_TOKEN",
            Self::REJECTED => "REJECTED",
            Self::MODERATION_UNAVAILABLE => "MODERATION_UNAVAILABLE",
            Self::INVALID_MESSAGE_ID => "INVALID_MESSAGE_ID",
            _ => return None,
        })
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "ErrorCode({})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
