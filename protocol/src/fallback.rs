//! Why a client is on WebSocket rather than WebTransport, as it tells the
//! server in its hello.
//!
//! The names form a closed set so that the server can count them without
//! letting clients invent labels; a name the server does not know is counted
//! as [`OTHER`](FallbackReason::OTHER).
//!
//! | name | meaning |
//! |------|---------|
//! | `unsupported` | The browser has no WebTransport here (an old browser, or not a secure context). |
//! | `not_offered` | The server offered no WebTransport endpoint. |
//! | `requested` | The page asked for WebSocket. |
//! | `remembered` | WebTransport failed on this page before, so WebSocket went first. |
//! | `failed` | The WebTransport attempt failed (UDP blocked, certificate refused, connection refused). |
//! | `timeout` | WebTransport did not connect within the client's timeout. |
//! | `slow` | WebSocket connected first while WebTransport was still connecting. |
//! | `other` | Anything else. |

/// The fallback reasons a client may report; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FallbackReason(&'static str);

impl FallbackReason {
    /// No WebTransport API in this browser or context.
    pub const UNSUPPORTED: Self = Self("unsupported");
    /// The server offered no WebTransport.
    pub const NOT_OFFERED: Self = Self("not_offered");
    /// The page asked for WebSocket.
    pub const REQUESTED: Self = Self("requested");
    /// WebTransport failed here before.
    pub const REMEMBERED: Self = Self("remembered");
    /// The WebTransport attempt failed.
    pub const FAILED: Self = Self("failed");
    /// WebTransport did not connect in time.
    pub const TIMEOUT: Self = Self("timeout");
    /// WebSocket won the race.
    pub const SLOW: Self = Self("slow");
    /// Anything else.
    pub const OTHER: Self = Self("other");

    /// Every reason, in table order.
    pub const ALL: [Self; 8] = [
        Self::UNSUPPORTED,
        Self::NOT_OFFERED,
        Self::REQUESTED,
        Self::REMEMBERED,
        Self::FAILED,
        Self::TIMEOUT,
        Self::SLOW,
        Self::OTHER,
    ];

    /// The reason's name, as sent in the hello.
    pub fn name(self) -> &'static str {
        self.0
    }

    /// The reason a client named, or [`OTHER`](Self::OTHER) for a name this
    /// version does not know.
    pub fn from_name(name: &str) -> Self {
        Self::ALL.into_iter().find(|reason| reason.0 == name).unwrap_or(Self::OTHER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_other() {
        for reason in FallbackReason::ALL {
            assert_eq!(FallbackReason::from_name(reason.name()), reason);
        }
        assert_eq!(FallbackReason::from_name("made-up label"), FallbackReason::OTHER);
    }
}
