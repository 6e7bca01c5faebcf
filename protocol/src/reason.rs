//! Why a session ended: the one list of reason codes.
//!
//! Both transports use these numbers. On WebSocket the code is the close
//! frame's status code; on WebTransport it is the session's close code. In
//! both cases a [`Closing`](crate::Closing) frame with the same code, a text
//! and a retry hint precedes the close whenever the connection can still
//! carry it.
//!
//! | code | name | retry? | meaning |
//! |------|------|--------|---------|
//! | 1000 | `NORMAL` | no | The client asked to close, or the session ended cleanly. |
//! | 4000 | `SERVER_SHUTDOWN` | yes, after the hint | The server is shutting down or draining; reconnect, possibly elsewhere. |
//! | 4001 | `SLOW_CONSUMER` | yes | The client read too slowly and its outbound queue overflowed; messages queued for it were dropped. |
//! | 4002 | `HEARTBEAT_TIMEOUT` | yes | Nothing arrived from the client within the heartbeat timeout. |
//! | 4003 | `FRAME_TOO_LARGE` | no | A frame exceeded `max_frame_bytes`. |
//! | 4004 | `PROTOCOL_VIOLATION` | no | The client kept sending frames the server could not accept (malformed frames, requests before hello). |
//! | 4005 | `FLOODING` | after the hint | The client kept publishing over its rate limit after being told. |
//! | 4006 | `UNSUPPORTED_VERSION` | no | The client speaks a protocol version this server does not. |
//! | 4007 | `OVERLOADED` | yes, after the hint | The server refuses new sessions for now. |
//! | 4008 | `UNAUTHORIZED` | no | The session's credentials were missing, invalid or expired. |
//! | 4011 | `BROKER_UNAVAILABLE` | yes, after the hint | The server lost its link to the broker (Redis) that orders rooms across servers, or a room's history there was lost; reconnect and resume. |
//! | 4012 | `DISCONNECTED` | no | The application's backend disconnected the session through the server API; the text says why. |
//!
//! Codes below 4000 other than 1000 come from the transport itself (for
//! example a WebSocket 1006 when the connection dropped without a close).
//!
//! 4009 and 4010 are retired and never reused: they named a forbidden
//! origin and an internal error, which no session was ever closed with (a
//! foreign origin is refused with HTTP 403 before a session exists, and an
//! internal failure ends the connection rather than sending a notice). A
//! client treats them, like any code it does not know, as worth a retry
//! with backoff.

use core::fmt;
use serde::{Deserialize, Serialize};

/// A reason code; see the [module documentation](self) for the table.
///
/// It is a number rather than a Rust enum so that a client keeps decoding
/// frames from a newer server that knows more codes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ReasonCode(pub u16);

impl ReasonCode {
    /// The client asked to close, or the session ended cleanly.
    pub const NORMAL: Self = Self(1000);
    /// The server is shutting down or draining.
    pub const SERVER_SHUTDOWN: Self = Self(4000);
    /// The client's outbound queue overflowed.
    pub const SLOW_CONSUMER: Self = Self(4001);
    /// Nothing arrived from the client within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: Self = Self(4002);
    /// A frame exceeded `max_frame_bytes`.
    pub const FRAME_TOO_LARGE: Self = Self(4003);
    /// The client kept sending frames the server could not accept.
    pub const PROTOCOL_VIOLATION: Self = Self(4004);
    /// The client kept publishing over its rate limit.
    pub const FLOODING: Self = Self(4005);
    /// The client's protocol version is not supported.
    pub const UNSUPPORTED_VERSION: Self = Self(4006);
    /// The server refuses new sessions for now.
    pub const OVERLOADED: Self = Self(4007);
    /// Credentials were missing, invalid or expired.
    pub const UNAUTHORIZED: Self = Self(4008);
    /// The server cannot reach the broker that orders rooms across servers.
    pub const BROKER_UNAVAILABLE: Self = Self(4011);
    /// The application's backend disconnected the session.
    pub const DISCONNECTED: Self = Self(4012);

    /// Every code this version defines, for documentation and tests.
    pub const ALL: [Self; 12] = [
        Self::NORMAL,
        Self::SERVER_SHUTDOWN,
        Self::SLOW_CONSUMER,
        Self::HEARTBEAT_TIMEOUT,
        Self::FRAME_TOO_LARGE,
        Self::PROTOCOL_VIOLATION,
        Self::FLOODING,
        Self::UNSUPPORTED_VERSION,
        Self::OVERLOADED,
        Self::UNAUTHORIZED,
        Self::BROKER_UNAVAILABLE,
        Self::DISCONNECTED,
    ];

    /// The code's name as written in the table, or `None` for a code this
    /// version does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NORMAL => "NORMAL",
            Self::SERVER_SHUTDOWN => "SERVER_SHUTDOWN",
            Self::SLOW_CONSUMER => "SLOW_CONSUMER",
            Self::HEARTBEAT_TIMEOUT => "HEARTBEAT_TIMEOUT",
            Self::FRAME_TOO_LARGE => "FRAME_TOO_LARGE",
            Self::PROTOCOL_VIOLATION => "PROTOCOL_VIOLATION",
            Self::FLOODING => "FLOODING",
            Self::UNSUPPORTED_VERSION => "UNSUPPORTED_VERSION",
            Self::OVERLOADED => "OVERLOADED",
            Self::UNAUTHORIZED => "UNAUTHORIZED",
            Self::BROKER_UNAVAILABLE => "BROKER_UNAVAILABLE",
            Self::DISCONNECTED => "DISCONNECTED",
            _ => return None,
        })
    }

    /// Whether a client should reconnect on its own after this code.
    ///
    /// Codes the client cannot fix by trying again (a bad frame, a wrong
    /// version, missing credentials) say no, so that a broken client does not
    /// hammer the server in a loop. Unknown codes say yes, with backoff.
    pub fn should_reconnect(self) -> bool {
        !matches!(
            self,
            Self::NORMAL
                | Self::FRAME_TOO_LARGE
                | Self::PROTOCOL_VIOLATION
                | Self::UNSUPPORTED_VERSION
                | Self::UNAUTHORIZED
                | Self::DISCONNECTED
        )
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "ReasonCode({})", self.0),
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
