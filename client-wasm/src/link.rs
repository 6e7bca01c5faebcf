//! A live connection to the server over one transport, as the client sees it:
//! frame bodies out, frame bodies in, and an end.

use futures::channel::mpsc::UnboundedSender;
use wasm_bindgen::JsValue;

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
    /// The link ended, and why.
    Closed(String),
}

/// Where a link reports to.
pub type Events = UnboundedSender<LinkEvent>;

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
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

use wasm_bindgen::JsCast;
