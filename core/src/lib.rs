//! The wtchat broadcast core: sessions, rooms, limits and the seams.
//!
//! The core owns every chat rule and knows no transport, no broker
//! implementation and no configuration format; its `Cargo.toml` has none of
//! their crates. Transports reach it through [`transport`] (`serve`,
//! [`transport::FrameSink`], [`session::Inbound`]); a broker through
//! [`broker`] (the [`broker::Broker`] it implements and the
//! [`broker::BrokerHost`] the hub implements for it).

pub mod admission;
pub mod announcer;
pub mod arrival;
pub mod authenticator;
pub mod backend;
pub mod backend_event;
pub mod broker;
pub mod budgets;
pub mod clock;
pub mod closing;
pub mod config;
pub mod cool_down;
pub mod frame;
pub mod history;
pub mod hub;
pub mod log_limit;
pub mod message_id;
pub mod metrics;
pub mod moderation;
pub mod name;
pub mod outbox;
pub mod party;
pub mod presence;
pub mod receipts;
pub mod review_line;
pub mod room;
pub mod room_event;
pub mod room_pattern;
pub mod room_quota;
pub mod room_registry;
pub mod session;
pub mod token_bucket;
pub mod transport;
pub mod user;

pub use config::{HubConfig, SessionLimits};
pub use hub::Hub;
