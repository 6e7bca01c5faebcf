//! WebTransport over HTTP/3 on quinn, the server side, as wtchat needs it.
//!
//! Browsers speak several drafts of WebTransport over HTTP/3 at once, and
//! the released Rust stacks each speak one (h3 advertises draft-02 only,
//! which Safari refuses). This crate is the thin HTTP/3 layer between quinn
//! and the server's transport adapter:
//!
//! - [`settings`]: SETTINGS with every codepoint a shipping browser checks,
//!   session flow-control settings included;
//! - [`connection`]: the control streams, SETTINGS exchange and requests,
//!   answered with HTTP/3 errors or accepted as the session
//!   (`:protocol` `webtransport` or `webtransport-h3`);
//! - [`session`]: the session's stream, written with zero-copy chunk writes,
//!   datagrams, session flow control, and a close that carries its code and
//!   text to the browser in a `WT_CLOSE_SESSION` capsule;
//! - sans-IO codecs for what the client sends: [`varint`], [`frame`],
//!   [`qpack`] (static table only: the server advertises no dynamic table),
//!   [`request`], [`capsule`].
//!
//! It is not a general HTTP/3 server: one session per connection, client
//! streams only, no server push, no request bodies.

pub mod capsule;
pub mod connection;
pub mod error;
pub mod frame;
pub mod qpack;
pub mod request;
pub mod session;
pub mod settings;
pub mod varint;

pub use connection::{Config, Connection, IncomingRequest};
pub use error::Error;
pub use request::Request;
pub use session::{DataRecv, DataSend, Session, SessionEnd};
pub use settings::{PeerSettings, ServerSettings};
