//! The wtchat browser client, compiled to wasm.
//!
//! A page creates a `Client`, listens for events, connects, joins rooms and
//! sends messages. The client speaks the protocol crate's frames over
//! WebTransport where it works and WebSocket where it does not
//! (`transport_choice`), reconnects with backoff and jitter ([`backoff`]),
//! and resumes every room without gaps or duplicates ([`ledger`]), whichever
//! transport the reconnect lands on.
//!
//! The pure parts (backoff, ledger, framing) have no browser dependency and
//! build everywhere, so they are tested natively and in headless Chromium;
//! the rest needs a browser and builds for wasm32 only.

pub mod backoff;
pub mod channel;
pub mod framing;
pub mod ledger;
pub mod outbox;

#[cfg(target_arch = "wasm32")]
pub mod client;
#[cfg(target_arch = "wasm32")]
pub mod discovery;
#[cfg(target_arch = "wasm32")]
pub mod dispatch;
#[cfg(target_arch = "wasm32")]
pub mod events;
#[cfg(target_arch = "wasm32")]
pub mod history;
#[cfg(target_arch = "wasm32")]
pub mod js_object;
#[cfg(target_arch = "wasm32")]
pub mod link;
#[cfg(target_arch = "wasm32")]
pub mod options;
#[cfg(target_arch = "wasm32")]
pub mod sending;
#[cfg(target_arch = "wasm32")]
pub mod time;
#[cfg(target_arch = "wasm32")]
pub mod token;
#[cfg(target_arch = "wasm32")]
pub mod transport_choice;
#[cfg(target_arch = "wasm32")]
pub mod websocket;
#[cfg(target_arch = "wasm32")]
pub mod webtransport;

pub use wtchat_protocol as protocol;

/// The allocator: TLSF (constant time per call, so a long-lived page does
/// not slow down as its heap fragments), in its build for small code.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();
