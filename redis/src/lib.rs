//! The Redis broker of wtchat: rooms shared by several servers, each room's
//! messages numbered by a Lua script in Redis.
//!
//! The crate implements the core's [`Broker`](wtchat_core::broker::Broker)
//! and drives the core through its
//! [`BrokerHost`](wtchat_core::broker::BrokerHost); it knows neither the hub
//! nor its rooms. It is the only crate that depends on `redis`.

mod announcements;
mod broker;
mod cluster;
mod command;
mod connection;
pub mod control;
mod directory;
pub mod feed;
pub mod keys;
mod link;
mod outage;
mod pipeline;
mod reaper;
mod round;
pub mod scripts;
pub mod shard;
pub mod slot;
pub mod topology;

pub use broker::{RedisBroker, RedisOptions};
