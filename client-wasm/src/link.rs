//! A live connection to the server over one transport, as the client sees it:
//! frame bodies out, frame bodies in, and an end.

use crate::channel::Sender;
use wasm_bindgen::JsValue;
use wtchat_protocol::{Closing, ReasonCode};

use crate::websocket::WebSocketLink;
use crate::webtransport::WebTransportLink;

/// Which transport a link uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP/3 WebTransport.
    WebTransport,
    /// WebSocket.
    WebSocket,
}

impl TransportKind {
    /// The name the page sees.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebTransport => "webtransport",
            Self::WebSocket => "websocket",
        }
    }
}

/// What a link reports.
#[derive(Debug)]
pub enum LinkEvent {
    /// The transport is open (WebSocket only; WebTransport is open once its
    /// stream exists).
    Opened,
    /// A frame body arrived (on the stream, or as a datagram).
    Frame(Vec<u8>),
    /// The link ended.
    Closed(LinkEnd),
}

/// How a link ended, as its transport reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEnd {
    /// The code the transport's close carried: a WebSocket close frame's
    /// status, a WebTransport session's close code (`WebTransport.closed`).
    /// `None` when the connection broke without one.
    pub code: Option<u32>,
    /// The text that came with the code.
    pub reason: String,
    /// What happened, for people.
    pub why: String,
}

impl LinkEnd {
    /// An end with no close code: the connection broke, or the client
    /// gave up on it.
    pub fn broken(why: impl Into<String>) -> Self {
        Self { code: None, reason: String::new(), why: why.into() }
    }

    /// An end the transport reported with a code and text.
    pub fn closed(transport: &str, code: u32, reason: String) -> Self {
        let why = if reason.is_empty() {
            format!("{transport} closed (code {code})")
        } else {
            format!("{transport} closed (code {code}: {reason})")
        };
        Self { code: Some(code), reason, why }
    }

    /// The closing notice this close stands for when the notice frame
    /// itself did not arrive: the server's codes (4000 to 4999, see
    /// `protocol/src/reason.rs`) with the close's text. The retry hint
    /// travels only in the notice, so there is none.
    pub fn as_closing(&self) -> Option<Closing> {
        let code = u16::try_from(self.code?).ok().filter(|code| (4000..5000).contains(code))?;
        Some(Closing { code: ReasonCode(code), text: self.reason.clone(), retry_after_ms: None })
    }
}

/// Where a link reports to.
pub type Events = Sender<LinkEvent>;

/// A connection over either transport.
#[derive(Debug)]
pub enum Link {
    /// Over WebTransport.
    WebTransport(WebTransportLink),
    /// Over WebSocket.
    WebSocket(WebSocketLink),
}

impl Link {
    /// The transport.
    pub fn kind(&self) -> TransportKind {
        match self {
            Self::WebTransport(_) => TransportKind::WebTransport,
            Self::WebSocket(_) => TransportKind::WebSocket,
        }
    }

    /// Sends a frame body reliably, in order.
    pub fn send(&self, body: &[u8]) -> Result<(), JsValue> {
        match self {
            Self::WebTransport(link) => link.send(body),
            Self::WebSocket(link) => link.send(body),
        }
    }

    /// Sends an ephemeral frame body: a datagram where the transport has
    /// them, an ordinary frame otherwise.
    pub fn send_ephemeral(&self, body: &[u8]) -> Result<(), JsValue> {
        match self {
            Self::WebTransport(link) => link.send_datagram(body),
            Self::WebSocket(link) => link.send(body),
        }
    }

    /// Closes the transport.
    pub fn close(&self) {
        match self {
            Self::WebTransport(link) => link.close(),
            Self::WebSocket(link) => link.close(),
        }
    }
}

/// A readable message for a JavaScript error value.
pub fn describe(error: &JsValue) -> String {
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    error
        .as_string()
        .or_else(|| js_sys::JSON::stringify(error).ok().map(String::from))
        .unwrap_or_else(|| "an error".into())
}

use wasm_bindgen::JsCast;
