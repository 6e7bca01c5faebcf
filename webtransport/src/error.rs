//! What can end an HTTP/3 connection or a WebTransport session early.

use crate::frame::error_code;

/// Why the connection or session cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The QUIC connection is gone.
    #[error("the QUIC connection ended: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The peer took too long for a step that has a deadline.
    #[error("the client took too long to {0}")]
    Timeout(&'static str),
    /// The peer broke HTTP/3 or WebTransport; the connection closes with
    /// this HTTP/3 error code.
    #[error("HTTP/3 error {code:#x}: {what}")]
    Protocol {
        /// The HTTP/3 error code.
        code: u64,
        /// What happened.
        what: String,
    },
}

impl Error {
    pub(crate) fn protocol(code: u64, what: impl Into<String>) -> Self {
        Self::Protocol { code, what: what.into() }
    }

    /// Closes the QUIC connection as this error requires: a protocol error
    /// with its HTTP/3 code, a timeout with `H3_REQUEST_CANCELLED`; a
    /// connection that is already gone is left alone.
    pub fn close(&self, quic: &quinn::Connection) {
        let (code, reason) = match self {
            Self::Connection(_) => return,
            Self::Timeout(what) => (error_code::REQUEST_CANCELLED, *what),
            Self::Protocol { code, .. } => (*code, "protocol error"),
        };
        quic.close(quinn::VarInt::from_u64(code).unwrap_or(quinn::VarInt::MAX), reason.as_bytes());
    }
}

/// A QUIC stream read failure, as the connection sees it: either the
/// connection ended or the stream broke (which, for a critical stream, is a
/// protocol error).
pub(crate) fn from_read(error: quinn::ReadError, critical: &'static str) -> Error {
    match error {
        quinn::ReadError::ConnectionLost(error) => Error::Connection(error),
        _ => Error::protocol(error_code::CLOSED_CRITICAL_STREAM, format!("the {critical} broke")),
    }
}
