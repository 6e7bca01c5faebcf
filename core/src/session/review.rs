//! A member's message on its way through the application's moderation.
//!
//! The session hands the message to the [`Moderator`] and goes on; the
//! verdict, whenever it comes, publishes the message (or its replacement)
//! or tells the sender it was refused, in the order the member sent its
//! messages (`review_line.rs`). Moderation sees only what passed every
//! other check (membership, grants, size, rate), so a flood never reaches
//! the application's backend.

use std::sync::Arc;

use tokio::time::Instant;
use wtchat_protocol::{ErrorCode, ErrorNotice, ServerMessage};

use super::outgoing::Outgoing;
use super::{Flow, Session};
use crate::frame::Frame;
use crate::moderation::{Moderator, Review, Verdict};

/// The most messages of one session under review at once; more are
/// refused as over the rate, since the backend is not keeping up.
pub const MAX_PENDING_REVIEWS: usize = 64;

impl Session {
    /// Sends `outgoing` for review.
    pub(super) fn review(&mut self, moderator: Arc<dyn Moderator>, outgoing: Outgoing, now: Instant) -> Flow {
        let line = self.reviews.get_or_insert_with(Default::default).clone();
        if line.pending() >= MAX_PENDING_REVIEWS {
            let text = format!(
                "{MAX_PENDING_REVIEWS} messages are waiting for moderation already; this one was dropped"
            );
            return self.refuse(Some(outgoing.submission.request_id), ErrorCode::RATE_LIMITED, text, now);
        }
        let review = Review {
            room: outgoing.room.name().clone(),
            sender: outgoing.member.event_member(),
            user: outgoing.member.user.clone(),
            sent_at_ms: outgoing.submission.sent_at_ms,
            body: outgoing.submission.body.clone(),
        };
        let ticket = line.ticket();
        let hub = self.hub.clone();
        let max_message_bytes = hub.config().session.max_message_bytes;
        let done = Box::new(move |verdict: Verdict| {
            let decision = move || decide(&hub, outgoing, verdict, max_message_bytes);
            line.decided(ticket, Box::new(decision));
        });
        moderator.review(review, done);
        Flow::Continue
    }
}

/// Carries out a verdict.
fn decide(hub: &crate::hub::Hub, mut outgoing: Outgoing, verdict: Verdict, max_message_bytes: usize) {
    let refuse = |outgoing: &Outgoing, code: ErrorCode, text: String| {
        let notice = ErrorNotice { request_id: Some(outgoing.submission.request_id), code, text };
        outgoing.member.outbox.push(&Frame::encode(&ServerMessage::Error(notice)));
    };
    match verdict {
        Verdict::Accept => outgoing.send(hub),
        // A replacement is held to the rules the member's text was.
        Verdict::Replace(body) if !body.is_empty() && body.len() <= max_message_bytes => {
            outgoing.submission.body = body;
            outgoing.send(hub);
        }
        Verdict::Replace(_) => {
            let text = "moderation answered with a replacement that breaks the message limits".into();
            refuse(&outgoing, ErrorCode::MODERATION_UNAVAILABLE, text);
        }
        Verdict::Reject(reason) => refuse(&outgoing, ErrorCode::REJECTED, reason),
        Verdict::Unavailable(why) => refuse(&outgoing, ErrorCode::MODERATION_UNAVAILABLE, why),
    }
}
