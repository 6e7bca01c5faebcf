//! A session's rate limits and tolerances, and what is kept of them for the
//! user's next session.
//!
//! Each session draws on token buckets: publishes, typing notices, joins and
//! leaves, transport keep-alives, and the flood and error budgets that close
//! it when spent. Were they to start full with every session, a client could
//! publish its burst, disconnect, reconnect and publish another, as fast as
//! admission lets it connect. So a closing session of an authenticated user
//! leaves its buckets with the hub, and the user's next sessions, from any
//! address, start from them, refilled for the time that passed. Once every
//! bucket is full again nothing is remembered.
//!
//! Anonymous sessions start full. Kept by address, the budgets would chain
//! every client behind a NAT or a proxy into one: each new session starts
//! where the last one left off, so ordinary use drains them (sixteen clients
//! at a time each joining one room exhausted an address's join budget within
//! 140 sessions). Anonymous reconnecting is bounded by admission instead:
//! an address's share of new sessions per second, and its sessions at once.
//!
//! The cost is one map look-up when a user's session opens and one when it
//! closes; the publish path never touches the map.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;

use crate::config::SessionLimits;
use crate::token_bucket::TokenBucket;

/// Typing notices a session may send in a burst, and per second after it.
/// A client that shows a typing indicator sends one every few seconds.
const TYPING_BURST: u32 = 5;
const TYPING_RATE_PER_SEC: f64 = 2.0;

/// Members pages a session may ask for in a burst, and per second after
/// it: enough to page through a big room in seconds, not to make the
/// server list it in a loop.
const PAGES_BURST: u32 = 20;
const PAGES_RATE_PER_SEC: f64 = 10.0;

/// Room joins and leaves a session may make per second after a burst as
/// large as its room limit: each tells every member of the room, so a client
/// that joins and leaves in a loop would otherwise flood a large room.
pub const MEMBERSHIP_RATE_PER_SEC: f64 = 2.0;
/// The smallest burst of joins and leaves, for servers with a low room
/// limit per session.
const MEMBERSHIP_BURST_FLOOR: usize = 8;

/// Transport-level keepalives (WebSocket pings and pongs) a session may send
/// in a burst, and per second after it. Each costs the server an answer; a
/// client that sends them faster spends its flood budget.
const KEEPALIVE_BURST: u32 = 10;
const KEEPALIVE_RATE_PER_SEC: f64 = 2.0;

/// How many users' budgets are kept before those that have refilled are
/// forgotten; past it, after that sweep, the budgets of a further user are
/// not kept, so the map stays bounded under churn from many users.
const KEPT: usize = 16_384;

/// One session's buckets.
#[derive(Debug, Clone)]
pub struct Budgets {
    /// Publishes.
    pub publish: TokenBucket,
    /// Rate-limited requests tolerated before closing with `FLOODING`.
    pub flood: TokenBucket,
    /// Other refused requests tolerated before closing with
    /// `PROTOCOL_VIOLATION`.
    pub error: TokenBucket,
    /// Typing notices; the excess is dropped without an answer.
    pub typing: TokenBucket,
    /// Transport keep-alives; the excess spends the flood budget.
    pub keepalive: TokenBucket,
    /// Joins and leaves; the excess is refused and spends the flood budget.
    pub membership: TokenBucket,
    /// Members pages; the excess is refused and spends the flood budget.
    pub pages: TokenBucket,
}

impl Budgets {
    /// Full buckets for a first session.
    pub fn full(limits: &SessionLimits, now: Instant) -> Self {
        let membership_burst = limits.max_rooms_per_session.max(MEMBERSHIP_BURST_FLOOR);
        Self {
            publish: TokenBucket::new(limits.publish_burst, f64::from(limits.publish_rate_per_sec), now),
            flood: TokenBucket::new(limits.flood_tolerance, 1.0, now),
            error: TokenBucket::new(limits.error_tolerance, 1.0, now),
            typing: TokenBucket::new(TYPING_BURST, TYPING_RATE_PER_SEC, now),
            keepalive: TokenBucket::new(KEEPALIVE_BURST, KEEPALIVE_RATE_PER_SEC, now),
            membership: TokenBucket::new(
                u32::try_from(membership_burst).unwrap_or(u32::MAX),
                MEMBERSHIP_RATE_PER_SEC,
                now,
            ),
            pages: TokenBucket::new(PAGES_BURST, PAGES_RATE_PER_SEC, now),
        }
    }

    fn buckets(&mut self) -> [&mut TokenBucket; 7] {
        [
            &mut self.publish,
            &mut self.flood,
            &mut self.error,
            &mut self.typing,
            &mut self.keepalive,
            &mut self.membership,
            &mut self.pages,
        ]
    }

    /// Whether every bucket has refilled: nothing is left to remember.
    fn is_full(&mut self, now: Instant) -> bool {
        self.buckets().into_iter().all(|bucket| bucket.is_full(now))
    }

    /// Keeps, bucket by bucket, whichever of the two is emptier.
    fn merge_emptier(&mut self, mut other: Self, now: Instant) {
        for (mine, theirs) in self.buckets().into_iter().zip(other.buckets()) {
            if theirs.level(now) < mine.level(now) {
                *mine = theirs.clone();
            }
        }
    }
}

/// Budgets closed sessions left, by user.
#[derive(Debug, Default)]
pub struct KeptBudgets {
    kept: Mutex<HashMap<Box<str>, Budgets>>,
}

impl KeptBudgets {
    /// The budgets a new session of `user` starts from: what their earlier
    /// sessions left, or full ones.
    pub fn resume(&self, user: &str, limits: &SessionLimits, now: Instant) -> Budgets {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(budgets) = kept.get_mut(user) else { return Budgets::full(limits, now) };
        if budgets.is_full(now) {
            kept.remove(user);
            return Budgets::full(limits, now);
        }
        budgets.clone()
    }

    /// Keeps what a closing session of `user` left, unless it is full.
    /// Sessions of one user that overlap leave the emptier of each bucket.
    pub fn keep(&self, user: &str, mut budgets: Budgets, now: Instant) {
        if budgets.is_full(now) {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(earlier) = kept.get_mut(user) {
            earlier.merge_emptier(budgets, now);
            return;
        }
        if kept.len() >= KEPT {
            kept.retain(|_, budgets| !budgets.is_full(now));
            if kept.len() >= KEPT {
                return;
            }
        }
        kept.insert(user.into(), budgets);
    }

    /// Users whose budgets are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> SessionLimits {
        let mut limits = crate::HubConfig::for_tests().session;
        limits.publish_burst = 4;
        limits.publish_rate_per_sec = 2;
        limits
    }

    #[test]
    fn a_reconnecting_user_starts_from_what_they_left_refilled_for_the_time_away() {
        let kept = KeptBudgets::default();
        let (limits, now) = (limits(), Instant::now());
        let user = "mallory";
        let mut first = kept.resume(user, &limits, now);
        assert!((0..4).all(|_| first.publish.try_take(now)));
        kept.keep(user, first, now);
        let mut second = kept.resume(user, &limits, now);
        assert!(!second.publish.try_take(now), "reconnecting restored the burst");
        // Half a second later one publish has refilled, at two a second.
        let later = now + Duration::from_millis(500);
        let mut third = kept.resume(user, &limits, later);
        assert!(third.publish.try_take(later) && !third.publish.try_take(later));
        // Another user starts full.
        let mut other = kept.resume("alice", &limits, now);
        assert!((0..4).all(|_| other.publish.try_take(now)));
        // Once refilled, the user is forgotten.
        let much_later = now + Duration::from_secs(60);
        let _refilled = kept.resume(user, &limits, much_later);
        assert_eq!(kept.len(), 0);
    }

    #[test]
    fn overlapping_sessions_leave_the_emptier_bucket_and_full_ones_are_not_kept() {
        let kept = KeptBudgets::default();
        let (limits, now) = (limits(), Instant::now());
        let mut spent = Budgets::full(&limits, now);
        assert!((0..4).all(|_| spent.publish.try_take(now)));
        kept.keep("u", spent, now);
        kept.keep("u", Budgets::full(&limits, now), now);
        assert!(!kept.resume("u", &limits, now).publish.try_take(now));
        kept.keep("v", Budgets::full(&limits, now), now);
        assert_eq!(kept.len(), 1);
    }
}
