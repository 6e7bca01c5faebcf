//! The wtchat server: a broadcast core and the transports that feed it.
//!
//! The core ([`hub`], [`session`], [`room`], [`room_registry`], [`history`],
//! [`outbox`], [`frame`]) owns every chat rule and knows no transport. The
//! [`transport`] module is the seam; [`websocket`] is an adapter over it;
//! [`http`] routes the TCP listener; [`server`] ties them together.

pub mod admission;
pub mod arrival;
pub mod authenticator;
pub mod broker;
pub mod budgets;
pub mod certificate;
pub mod certificate_store;
pub mod config;
pub mod cool_down;
pub mod frame;
pub mod handshakes;
pub mod history;
pub mod http;
pub mod hub;
pub mod in_memory_broker;
pub mod log_limit;
pub mod metrics;
pub mod name;
pub mod origin;
pub mod outbox;
pub mod party;
pub mod redis_broker;
pub mod room;
pub mod room_event;
pub mod room_pattern;
pub mod room_quota;
pub mod room_registry;
pub mod server;
pub mod session;
pub mod static_files;
pub mod tls;
pub mod token_bucket;
pub mod transport;
pub mod user;
pub mod websocket;
pub mod webtransport;

pub use config::{Config, Settings};
pub use hub::Hub;
pub use server::{Server, ServerError};
