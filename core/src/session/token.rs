//! A session's token, replaced while the session goes on.
//!
//! A token carries an expiry; the transport's timer tells the session ahead
//! of it (`TokenExpiring`, see `transport.rs`) and closes it with
//! `UNAUTHORIZED` when it passes. A client that sends a fresh token for
//! the same user before then keeps its session: the new expiry and grants
//! apply at once, and rooms the new grants no longer allow are left.

use std::time::Duration;

use tokio::time::Instant;
use wtchat_protocol::{ErrorCode, ServerMessage, TokenExpiring, TokenRefreshed};

use super::{Flow, Session};
use crate::authenticator::remaining;

impl Session {
    /// Checks a fresh token like the first one and, when it names the same
    /// user, takes it.
    pub(super) fn refresh_token(&mut self, request_id: u32, token: &str, now: Instant) -> Flow {
        // Checking a signature costs more than most requests; refreshes
        // share the budget of joins and leaves.
        if let Some(flow) = self.membership_rate_limited(request_id, now) {
            return flow;
        }
        let (Some(current), Some(authenticator)) = (&self.user, self.hub.authenticator()) else {
            let text = "this server does not authenticate sessions; there is no token to refresh".into();
            return self.refuse(Some(request_id), ErrorCode::INVALID_TOKEN, text, now);
        };
        let fresh = match authenticator.verify(Some(token)) {
            Ok(fresh) if fresh.id == current.id => fresh,
            Ok(_) => {
                let text = "the token names another user; a session keeps its user".into();
                return self.refuse(Some(request_id), ErrorCode::INVALID_TOKEN, text, now);
            }
            Err(why) => {
                return self.refuse(
                    Some(request_id),
                    ErrorCode::INVALID_TOKEN,
                    format!("the token was refused: {why}"),
                    now,
                );
            }
        };
        // The new grants apply at once: a room they no longer allow is
        // left, as if the client had asked.
        while let Some(index) = self.memberships.iter().position(|m| !fresh.join.covers(m.room.name())) {
            self.leave_at(index, request_id);
        }
        let expires_in_ms = fresh.expires_at.map_or(u64::MAX, |at| millis(remaining(at)));
        self.user = Some(Box::new(fresh));
        self.send(&ServerMessage::TokenRefreshed(TokenRefreshed { request_id, expires_in_ms }));
        Flow::Continue
    }

    /// How long before its token expires the session is told so.
    pub(crate) fn token_refresh_notice(&self) -> Duration {
        self.hub.config().token_refresh_notice
    }

    /// Tells the client its token has `left` to live.
    pub(crate) fn tell_token_expiring(&self, left: Duration) {
        self.send(&ServerMessage::TokenExpiring(TokenExpiring { expires_in_ms: millis(left) }));
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
