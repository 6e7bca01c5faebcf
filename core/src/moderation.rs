//! The seam to the application's moderation: a hook that sees each
//! message a member publishes before it is accepted, and may let it
//! through, replace its text, or refuse it.
//!
//! The core asks and never waits: [`Moderator::review`] returns at once
//! and calls back with the [`Verdict`] from wherever the answer comes
//! (`wtchat-webhooks` asks over HTTP). A session's messages keep their
//! order whatever order the verdicts come in (`review_line.rs`).

use std::fmt;
use std::sync::Arc;

use crate::room_event::EventMember;

/// A message waiting for moderation, as the member sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The room.
    pub room: Arc<str>,
    /// Who sent it.
    pub sender: EventMember,
    /// The sender's user (their token's `sub`), when sessions authenticate.
    pub user: Option<Arc<str>>,
    /// When the server accepted it for review.
    pub sent_at_ms: u64,
    /// The text.
    pub body: String,
}

/// What became of a message under review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Publish it as sent.
    Accept,
    /// Publish this text instead.
    Replace(String),
    /// Refuse it, telling the sender why.
    Reject(String),
    /// No verdict could be had and the configuration says to refuse then;
    /// the sender may try again.
    Unavailable(String),
}

/// Where the core sends messages for review.
pub trait Moderator: Send + Sync + fmt::Debug {
    /// Reviews `review` and calls `done` exactly once with the verdict,
    /// from any thread; returns at once.
    fn review(&self, review: Review, done: Box<dyn FnOnce(Verdict) + Send>);

    /// Writes its own figures for `/metrics`.
    fn render_metrics(&self, out: &mut String);
}
