//! What keyed publishes got, so that a publish repeated with the same key
//! (a backend's retry after a timeout, a client's after its connection
//! died) answers the first one's number instead of publishing twice.
//!
//! Receipts are kept for a window and up to a count, oldest forgotten
//! first, so that a caller inventing keys cannot grow the server's memory
//! without bound.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::room_event::Sequenced;

/// How long a backend's idempotency key is kept: longer than any sane
/// retry loop.
pub const WINDOW: Duration = Duration::from_secs(10 * 60);

/// The most receipts of the backend's posts kept.
pub const CAPACITY: usize = 100_000;

/// How long a member's message id is kept: the protocol's promise to
/// clients, shorter than the backend's because every member's message may
/// carry one.
pub const MESSAGE_ID_WINDOW: Duration = Duration::from_millis(wtchat_protocol::MESSAGE_ID_WINDOW_MS);

/// The most message ids one room keeps: a busy room remembers its last ones
/// rather than everything within the window.
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

/// A room and the key the caller gave.
pub type ReceiptKey = (Arc<str>, String);

/// The receipts of recent keyed publishes.
#[derive(Debug)]
pub struct Receipts<K = ReceiptKey> {
    by_key: HashMap<K, Sequenced>,
    /// Keys in the order they were kept, with when.
    order: VecDeque<(Instant, K)>,
    window: Duration,
    capacity: usize,
}

impl Default for Receipts {
    fn default() -> Self {
        Self::new(WINDOW, CAPACITY)
    }
}

impl<K: Hash + Eq + Clone> Receipts<K> {
    /// Keeps each receipt for `window`, and at most `capacity` of them.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self { by_key: HashMap::new(), order: VecDeque::new(), window, capacity }
    }

    /// What the publish with this key got, if it is remembered.
    pub fn get(&mut self, key: &K) -> Option<Sequenced> {
        self.forget_old(Instant::now());
        self.by_key.get(key).copied()
    }

    /// Remembers what a keyed publish got.
    pub fn insert(&mut self, key: K, sequenced: Sequenced) {
        let now = Instant::now();
        self.forget_old(now);
        if self.by_key.insert(key.clone(), sequenced).is_none() {
            self.order.push_back((now, key));
        }
        while self.order.len() > self.capacity {
            self.forget_oldest();
        }
    }

    fn forget_old(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(at, _)| now.duration_since(*at) > self.window) {
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

    #[test]
    fn a_key_answers_its_first_publish_and_the_oldest_go_first_beyond_the_capacity() {
        let mut receipts = Receipts::default();
        let key = |n: usize| (Arc::from("room"), format!("k{n}"));
        let first = Sequenced { seq: 1, epoch: 7 };
        receipts.insert(key(0), first);
        assert_eq!(receipts.get(&key(0)), Some(first));
        assert_eq!(receipts.get(&(Arc::from("other"), "k0".into())), None, "keys are per room");
        for n in 1..=CAPACITY {
            receipts.insert(key(n), Sequenced { seq: n as u64 + 1, epoch: 7 });
        }
        assert_eq!(receipts.len(), CAPACITY);
        assert_eq!(receipts.get(&key(0)), None, "the oldest was forgotten");
        assert_eq!(receipts.get(&key(CAPACITY)).map(|s| s.seq), Some(CAPACITY as u64 + 1));
    }
}
