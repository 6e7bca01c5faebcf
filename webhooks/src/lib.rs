//! Signed webhooks: what happens in wtchat's rooms (messages, members,
//! rooms occupied and vacated), posted as JSON to the application's
//! backend.
//!
//! The core announces events through its `BackendEvents` seam, which
//! [`Webhooks`] implements. Each receiver gets every event in the order
//! this server announced it, in batches, signed with HMAC-SHA256 over a
//! timestamp and the body (`signature.rs`), retried with backoff until the
//! receiver answers 2xx. A receiver's queue is bounded in bytes
//! (`queue.rs`); what does not fit is dropped, counted in `/metrics` and
//! reported in the next delivery.
//!
//! It also implements the core's `Moderator` (`moderation.rs`): each
//! message a member publishes is posted to the backend, signed the same
//! way, and its answer accepts, replaces or rejects it.

pub mod endpoint;
pub mod moderation;
pub mod payload;
pub mod queue;
pub mod signature;

mod delivery;
mod webhooks;

pub use moderation::{Moderation, ModerationOptions};
pub use webhooks::{WebhookOptions, Webhooks};
