//! Clients closed for flooding wait out their retry hint.
//!
//! A client closed with `FLOODING` is told when it may come back. Its next
//! session would start from the budgets it spent (see `budgets.rs`) and be
//! closed again at its first refused request, but it would still cost a
//! handshake, a session and a room's presence notices each time. So the hub
//! remembers who was closed (a [`Party`]: the token's user when
//! authentication is on, otherwise the address) until the hint has passed,
//! and turns their new sessions away at admission until then.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::party::Party;

/// How many parties are remembered before those whose time is up are
/// forgotten; bounds the map under a flood from many addresses.
const REMEMBERED: usize = 4096;

/// Parties and when each may come back.
#[derive(Debug, Default)]
pub struct CoolDowns {
    until: Mutex<HashMap<Party, Instant>>,
}

impl CoolDowns {
    /// Turns `who` away until `until`.
    pub fn impose(&self, who: Party, until: Instant, now: Instant) {
        let mut map = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= REMEMBERED {
            map.retain(|_, until| *until > now);
        }
        let entry = map.entry(who).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// How long `who` must still wait, if at all.
    pub fn remaining(&self, who: &Party, now: Instant) -> Option<Duration> {
        let map = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(who).and_then(|until| until.checked_duration_since(now)).filter(|left| !left.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_party_waits_out_the_hint_and_others_do_not() {
        let cool = CoolDowns::default();
        let now = Instant::now();
        let flooder = Party::of(None, [10, 0, 0, 1].into());
        cool.impose(flooder.clone(), now + Duration::from_secs(10), now);
        assert_eq!(cool.remaining(&flooder, now + Duration::from_secs(4)), Some(Duration::from_secs(6)));
        assert_eq!(cool.remaining(&flooder, now + Duration::from_secs(10)), None);
        assert_eq!(cool.remaining(&Party::of(None, [10, 0, 0, 2].into()), now), None);
        // A user is known by name from any address.
        let user = Party::of(Some("mallory"), [10, 0, 0, 3].into());
        cool.impose(user, now + Duration::from_secs(10), now);
        assert!(cool.remaining(&Party::of(Some("mallory"), [10, 9, 9, 9].into()), now).is_some());
    }

    #[test]
    fn parties_whose_time_is_up_are_forgotten() {
        let cool = CoolDowns::default();
        let now = Instant::now();
        for n in 0..REMEMBERED as u32 {
            cool.impose(
                Party::Address(std::net::Ipv4Addr::from(n).into()),
                now + Duration::from_secs(1),
                now,
            );
        }
        let later = now + Duration::from_secs(2);
        cool.impose(Party::Address([192, 168, 0, 1].into()), later + Duration::from_secs(1), later);
        assert_eq!(cool.until.lock().unwrap().len(), 1);
    }
}
