//! How many rooms each party has opened, under `max_rooms_per_user`.
//!
//! `max_rooms` is one pool for the whole server, so without a quota one
//! party with a few thousand sessions could fill it and leave everyone else
//! unable to open a room. The quota counts the rooms a party opened (its
//! join created them) and that still exist, not its memberships: a thousand
//! people behind one address joining the same room cost that address one
//! room, and joining rooms that exist is never limited by it. A room's
//! place goes back to its opener when the room closes, whoever was last in
//! it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::party::Party;

/// Rooms opened and still open, by the party that opened them.
#[derive(Debug, Default)]
pub struct RoomQuota {
    /// The most rooms one party may hold open; 0 is no limit.
    limit: usize,
    /// Parties with at least one room open.
    counts: Mutex<HashMap<Party, usize>>,
}

impl RoomQuota {
    /// A quota of `limit` rooms a party (0: none).
    pub fn new(limit: usize) -> Self {
        Self { limit, counts: Mutex::default() }
    }

    /// Whether there is a limit to keep, and so openers to remember.
    pub fn is_limited(&self) -> bool {
        self.limit > 0
    }

    /// The most rooms one party may hold open; 0 is no limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes one room for `party`, or says no when it is at its limit.
    pub fn take(&self, party: &Party) -> bool {
        // Without a limit there is nothing to count, and openings skip the lock.
        if !self.is_limited() {
            return true;
        }
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        match counts.get_mut(party) {
            Some(count) if *count >= self.limit => false,
            Some(count) => {
                *count += 1;
                true
            }
            None => {
                counts.insert(party.clone(), 1);
                true
            }
        }
    }

    /// Gives one room of `party` back.
    pub fn give_back(&self, party: &Party) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(party) {
            *count -= 1;
            if *count == 0 {
                counts.remove(party);
            }
        }
    }

    /// Parties with at least one room open.
    #[cfg(test)]
    fn parties(&self) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_party_is_held_to_its_rooms_and_given_them_back() {
        let quota = RoomQuota::new(2);
        let a = Party::of(None, [10, 0, 0, 1].into());
        let b = Party::of(Some("b"), [10, 0, 0, 1].into());
        assert!(quota.take(&a) && quota.take(&a));
        assert!(!quota.take(&a), "a third room");
        assert!(quota.take(&b), "another party behind the same address");
        quota.give_back(&a);
        assert!(quota.take(&a));
        for party in [&a, &a, &b] {
            quota.give_back(party);
        }
        assert_eq!(quota.parties(), 0, "nothing is kept for parties with no room open");
        let unlimited = RoomQuota::new(0);
        assert!((0..10_000).all(|_| unlimited.take(&a)));
        assert_eq!(unlimited.parties(), 0);
    }
}
