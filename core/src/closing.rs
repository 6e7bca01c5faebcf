//! Every closing notice the server sends, with its retry hint, in one place.
//!
//! A session ends with a [`Closing`]: a reason code from the protocol's
//! table, a text for people, and a retry hint for clients that may come
//! back. Each reason the server closes for has one constructor here, so that
//! a reader sees every code, text and hint side by side, and the hints an
//! operator may want to tune come from [`RetryHints`] (the configuration)
//! rather than from literals spread through the core.

use std::time::Duration;

use wtchat_protocol::{Closing, PROTOCOL_VERSION, ReasonCode};

/// A retry hint: at least `base`, plus a random share of `spread`, so that
/// clients told to come back together do not all come back at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryHint {
    /// The smallest hint.
    pub base: Duration,
    /// The width of the random share added to it.
    pub spread: Duration,
}

impl RetryHint {
    /// A hint of exactly `base`.
    pub const fn fixed(base: Duration) -> Self {
        Self { base, spread: Duration::ZERO }
    }

    /// One hint in milliseconds, drawn from the spread.
    pub fn pick(&self) -> u32 {
        let spread = u64::try_from(self.spread.as_millis()).unwrap_or(u64::MAX);
        let base = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        u32::try_from(base.saturating_add(fastrand::u64(0..=spread))).unwrap_or(u32::MAX)
    }
}

/// The retry hints of the notices that carry one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryHints {
    /// After a graceful shutdown (`SERVER_SHUTDOWN`).
    pub shutdown: RetryHint,
    /// After a refusal for the server's own condition (`OVERLOADED`,
    /// `BROKER_UNAVAILABLE`).
    pub refusal: RetryHint,
    /// After `FLOODING`; the client is also turned away until it passes
    /// (see `cool_down.rs`).
    pub flooding: Duration,
}

/// After `SLOW_CONSUMER`: soon, since the client only read too slowly. Not
/// an option: a client that reads too slowly is helped by coming back, and
/// the eviction itself already protects the server.
const SLOW_CONSUMER_RETRY: RetryHint = RetryHint::fixed(Duration::from_secs(1));

/// After a room's shared feed broke: a resume repairs it, spread over two
/// seconds so that a big room's members do not all resume at once.
const FEED_BREAK_RETRY: RetryHint =
    RetryHint { base: Duration::from_millis(200), spread: Duration::from_secs(2) };

/// `SERVER_SHUTDOWN`: the server is draining.
pub fn shutdown(hints: &RetryHints) -> Closing {
    notice(
        ReasonCode::SERVER_SHUTDOWN,
        "the server is shutting down; reconnect after the retry hint".into(),
        Some(hints.shutdown.pick()),
    )
}

/// `BROKER_UNAVAILABLE`: the link to the broker was lost, or is down as the
/// session opens.
pub fn broker_unavailable(hints: &RetryHints) -> Closing {
    notice(
        ReasonCode::BROKER_UNAVAILABLE,
        "the server lost its link to the message broker; reconnect after the retry hint and resume".into(),
        Some(hints.refusal.pick()),
    )
}

/// `BROKER_UNAVAILABLE`: a room's shared feed broke (a skipped number, a
/// new epoch), which only a resume repairs without a silent gap.
pub fn feed_broke(room: &str) -> Closing {
    notice(
        ReasonCode::BROKER_UNAVAILABLE,
        format!("the shared feed of room {room} broke; reconnect and resume"),
        Some(FEED_BREAK_RETRY.pick()),
    )
}

/// `OVERLOADED`: admission control turned the session away.
pub fn overloaded(text: &str, hints: &RetryHints) -> Closing {
    notice(ReasonCode::OVERLOADED, text.into(), Some(hints.refusal.pick()))
}

/// `UNAUTHORIZED`: no valid token.
pub fn unauthorized(why: String) -> Closing {
    notice(ReasonCode::UNAUTHORIZED, why, None)
}

/// `UNAUTHORIZED`: the token expired during the session.
pub fn token_expired() -> Closing {
    unauthorized("the token has expired; connect again with a fresh one".into())
}

/// `DISCONNECTED`: the application's backend ended the session, for the
/// reason it gave (or a default one).
pub fn disconnected(reason: Option<&str>) -> Closing {
    let text = reason.filter(|r| !r.is_empty()).unwrap_or("disconnected by the application");
    notice(ReasonCode::DISCONNECTED, text.into(), None)
}

/// `FLOODING`: the client kept going over a rate limit.
pub fn flooding(what: &str, hints: &RetryHints) -> Closing {
    let wait = u32::try_from(hints.flooding.as_millis()).unwrap_or(u32::MAX);
    notice(ReasonCode::FLOODING, what.into(), Some(wait))
}

/// `FLOODING`: a party closed for flooding came back before its hint
/// passed; `left` is what remains of it.
pub fn still_cooling_down(left: Duration) -> Closing {
    notice(
        ReasonCode::FLOODING,
        "still waiting out the flooding that closed an earlier session".into(),
        Some(u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1)),
    )
}

/// `SLOW_CONSUMER`: the outbound queue overflowed.
pub fn slow_consumer(queued: usize, limit: usize) -> Closing {
    notice(
        ReasonCode::SLOW_CONSUMER,
        format!("the client read too slowly: {queued} bytes were waiting, the limit is {limit}"),
        Some(SLOW_CONSUMER_RETRY.pick()),
    )
}

/// `HEARTBEAT_TIMEOUT`: nothing arrived for the timeout. The client may come
/// back at once: it was the connection, not the server, that failed.
pub fn heartbeat_timeout(silence: Duration) -> Closing {
    notice(ReasonCode::HEARTBEAT_TIMEOUT, format!("nothing received for {} ms", silence.as_millis()), Some(0))
}

/// `PROTOCOL_VIOLATION`: the client broke the protocol in a way that an
/// error frame cannot answer.
pub fn protocol_violation(text: String) -> Closing {
    notice(ReasonCode::PROTOCOL_VIOLATION, text, None)
}

/// `FRAME_TOO_LARGE`: a frame over the limit.
pub fn frame_too_large(len: usize, max: usize) -> Closing {
    notice(ReasonCode::FRAME_TOO_LARGE, format!("a frame of {len} bytes is over the limit of {max}"), None)
}

/// `UNSUPPORTED_VERSION`: a frame or hello of another protocol version.
pub fn unsupported_version(what: &str, version: impl std::fmt::Display) -> Closing {
    notice(
        ReasonCode::UNSUPPORTED_VERSION,
        format!("{what} {version} is not supported; this server speaks {PROTOCOL_VERSION}"),
        None,
    )
}

fn notice(code: ReasonCode, text: String, retry_after_ms: Option<u32>) -> Closing {
    Closing { code, text, retry_after_ms }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hints_are_spread() {
        let hint = RetryHint { base: Duration::from_secs(1), spread: Duration::from_secs(4) };
        let hints: std::collections::HashSet<u32> = (0..50).map(|_| hint.pick()).collect();
        assert!(hints.iter().all(|h| (1000..=5000).contains(h)));
        assert!(hints.len() > 10, "the hints are not all the same");
    }

    /// Every code of the protocol's table is one the server sends: each
    /// has its notice here (`NORMAL` is the transport's own clean close,
    /// with no notice).
    #[test]
    fn every_reason_code_has_its_notice() {
        let hints = RetryHints {
            shutdown: RetryHint::fixed(Duration::from_secs(1)),
            refusal: RetryHint::fixed(Duration::from_secs(1)),
            flooding: Duration::from_secs(10),
        };
        let notices = [
            shutdown(&hints),
            broker_unavailable(&hints),
            feed_broke("r"),
            overloaded("full", &hints),
            unauthorized("no token".into()),
            token_expired(),
            flooding("spam", &hints),
            still_cooling_down(Duration::from_secs(3)),
            slow_consumer(10, 5),
            heartbeat_timeout(Duration::from_secs(25)),
            protocol_violation("bad".into()),
            frame_too_large(10, 5),
            unsupported_version("protocol version", 99),
            disconnected(Some("spam")),
        ];
        let sent: std::collections::BTreeSet<ReasonCode> = notices.iter().map(|n| n.code).collect();
        let table: std::collections::BTreeSet<ReasonCode> =
            ReasonCode::ALL.into_iter().filter(|code| *code != ReasonCode::NORMAL).collect();
        assert_eq!(sent, table);
        for notice in &notices {
            let retry = notice.code.should_reconnect();
            assert_eq!(
                notice.retry_after_ms.is_some(),
                retry,
                "{notice:?}: a hint exactly when a retry helps"
            );
        }
    }
}
