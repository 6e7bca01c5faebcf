//! The wtchat browser client.
//!
//! A skeleton for now: it builds for `wasm32-unknown-unknown` against the
//! protocol crate, which proves that the wire format compiles for the
//! browser. The client itself (transport choice, reconnects, the page API)
//! comes with the wasm client issue.

pub use wtchat_protocol as protocol;
