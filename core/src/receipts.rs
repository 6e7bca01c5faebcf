//! What keyed publishes got, so that a publish repeated with the same key
//! (a backend's retry after a timeout, a client's after its connection
//! died) answers the first one's number instead of publishing twice.
//!
//! A room that numbers its own messages keeps them (`room/receipts.rs`);
//! with a broker, the broker keeps them where every server finds them.
//! Each is kept for its window and a room keeps at most [`ROOM_CAPACITY`],
//! oldest forgotten first, so that a caller inventing keys cannot grow the
//! server's memory without bound.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::room_event::Sequenced;

/// How long a backend's idempotency key is kept: longer than any sane
/// retry loop.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);

/// How long a member's message id is kept: the protocol's promise to
/// clients, shorter than the backend's because every member's message may
/// carry one.
pub const MESSAGE_ID_WINDOW: Duration = Duration::from_millis(wtchat_protocol::MESSAGE_ID_WINDOW_MS);

/// The most receipts one room keeps: a busy room remembers its last ones
/// rather than everything within their windows.
pub const ROOM_CAPACITY: usize = 10_000;

/// What a keyed publish is remembered under, and for how long: the key is
/// one of `message_id`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The key, unique in its room.
    pub key: String,
    /// How long it is kept.
    pub window: Duration,
}

/// The receipts of recent keyed publishes.
#[derive(Debug)]
pub struct Receipts {
    /// What each key got, and until when it is kept.
    by_key: HashMap<String, (Sequenced, Instant)>,
    /// Keys in the order they were kept, with when each expires. Windows
    /// differ (a backend's key outlives a member's id), so the front is the
    /// oldest, not always the first to expire: an expired key behind it
    /// waits for its turn or for the capacity, and `get` ignores it.
    order: VecDeque<(Instant, String)>,
    capacity: usize,
}

impl Receipts {
    /// Keeps at most `capacity` receipts.
    pub fn new(capacity: usize) -> Self {
        Self { by_key: HashMap::new(), order: VecDeque::new(), capacity }
    }

    /// What the publish with this key got, if it is remembered.
    pub fn get(&mut self, key: &str) -> Option<Sequenced> {
        let now = Instant::now();
        self.forget_old(now);
        self.by_key.get(key).filter(|(_, expires)| *expires > now).map(|(sequenced, _)| *sequenced)
    }

    /// Remembers what a keyed publish got, for the receipt's window.
    pub fn insert(&mut self, receipt: &Receipt, sequenced: Sequenced) {
        let now = Instant::now();
        self.forget_old(now);
        let expires = now + receipt.window;
        if self.by_key.insert(receipt.key.clone(), (sequenced, expires)).is_none() {
            self.order.push_back((expires, receipt.key.clone()));
        }
        while self.order.len() > self.capacity {
            self.forget_oldest();
        }
    }

    fn forget_old(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(expires, _)| *expires <= now) {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_front() {
            self.by_key.remove(&key);
        }
    }

    /// How many receipts are kept.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(n: usize, window: Duration) -> Receipt {
        Receipt { key: format!("k{n}"), window }
    }

    #[test]
    fn a_key_answers_its_first_publish_within_its_window_and_the_oldest_go_first_beyond_the_capacity() {
        let mut receipts = Receipts::new(3);
        let first = Sequenced { seq: 1, epoch: 7 };
        receipts.insert(&receipt(0, WINDOW), first);
        assert_eq!(receipts.get("k0"), Some(first));
        for n in 1..=3 {
            receipts.insert(&receipt(n, WINDOW), Sequenced { seq: n as u64 + 1, epoch: 7 });
        }
        assert_eq!(receipts.len(), 3);
        assert_eq!(receipts.get("k0"), None, "the oldest was forgotten");
        assert_eq!(receipts.get("k3").map(|s| s.seq), Some(4));
        // A receipt past its window answers nothing, even behind one that
        // is kept longer.
        receipts.insert(&receipt(9, Duration::ZERO), Sequenced { seq: 9, epoch: 7 });
        assert_eq!(receipts.get("k9"), None);
    }
}
