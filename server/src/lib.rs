//! The wtchat server: the transports, HTTP routes, TLS and configuration
//! around the broadcast core (`wtchat-core`).
//!
//! [`websocket`] and [`webtransport`] are thin adapters over the core's
//! transport seam; [`http`] routes the TCP listener, [`api`] its server
//! API for the application's backend; [`tls`] holds the
//! certificates; [`options`] is the one table of options; [`server`] wires
//! the pieces (the core, the broker, the transports) and runs them.

pub mod api;
mod bearer;
pub mod console;
pub mod encoding;
pub mod handshakes;
pub mod http;
pub mod options;
pub mod origin;
pub mod response;
pub mod server;
pub mod static_files;
pub mod tls;
pub mod websocket;
pub mod webtransport;

pub use options::{Config, ConfigError, Settings};
pub use server::{Server, ServerError};
pub use wtchat_core::Hub;

#[cfg(test)]
mod tests;
