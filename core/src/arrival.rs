//! What a transport knows about a new connection when it hands it to the
//! core: which transport, from where, the token it presented, and the
//! admission place it already holds, if any.

use std::net::IpAddr;

use crate::admission::Ticket;

/// The transports, as names for metrics and logs. The core treats them
/// alike; it only counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// WebSocket over TCP.
    WebSocket,
    /// WebTransport over HTTP/3 and QUIC.
    WebTransport,
}

impl TransportKind {
    /// Every transport.
    pub const ALL: [Self; 2] = [Self::WebSocket, Self::WebTransport];

    /// The name used in metrics and `/status`.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::WebTransport => "webtransport",
        }
    }
}

/// A connection arriving at the core.
#[derive(Debug)]
pub struct Arrival {
    /// The transport it came over.
    pub transport: TransportKind,
    /// The client's address, for per-address limits and logs.
    pub peer: IpAddr,
    /// The token it presented (`?token=` or a bearer token), if any.
    pub token: Option<String>,
    /// The admission place the transport took for the connection before
    /// the session existed (QUIC counts a connection from its handshake on);
    /// the session keeps it instead of taking another.
    pub place: Option<Ticket>,
}

impl Arrival {
    /// A connection from this machine without a token, as tests make.
    pub fn local(transport: TransportKind) -> Self {
        Self { transport, peer: IpAddr::from([127, 0, 0, 1]), token: None, place: None }
    }

    /// The token from a request's query string (`token=...`) or its
    /// `Authorization: Bearer ...` header, the query first: browsers cannot
    /// set headers on WebSocket or WebTransport requests.
    pub fn token_from(query: Option<&str>, authorization: Option<&str>) -> Option<String> {
        let from_query = query.and_then(|query| {
            query.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key == "token").then(|| percent_decode(value))
            })
        });
        from_query.or_else(|| bearer(authorization?).map(str::to_owned))
    }
}

/// The token of an `Authorization: Bearer ...` header value.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Decodes `%XX` escapes and `+`; a JWT needs neither, but a client that
/// escapes it anyway must not be refused for that.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_query_or_a_bearer_header() {
        assert_eq!(Arrival::token_from(Some("a=1&token=abc.def"), None).as_deref(), Some("abc.def"));
        assert_eq!(Arrival::token_from(Some("token=a%2Eb"), None).as_deref(), Some("a.b"));
        assert_eq!(Arrival::token_from(None, Some("Bearer xyz")).as_deref(), Some("xyz"));
        assert_eq!(Arrival::token_from(Some("token=q"), Some("Bearer h")).as_deref(), Some("q"));
        assert_eq!(Arrival::token_from(Some("tokens=q"), Some("Basic h")), None);
        assert_eq!(Arrival::token_from(Some("token=%"), None).as_deref(), Some("%"));
    }
}
