//! A token bucket: a sustained rate with room for bursts.
//!
//! Sessions use one for their publish rate and others as budgets for errors,
//! so that occasional mistakes are answered and persistent abuse is closed.

use tokio::time::Instant;

/// Tokens refill continuously at `rate_per_sec` up to `capacity`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// The most tokens the bucket holds, which is the largest burst.
    capacity: f64,
    /// Tokens added per second.
    rate_per_sec: f64,
    /// Tokens available at `updated`.
    tokens: f64,
    /// When `tokens` was last brought up to date. Tokio's clock, so that tests
    /// can pause time.
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: u32, rate_per_sec: f64, now: Instant) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self { capacity, rate_per_sec: rate_per_sec.max(0.0), tokens: capacity, updated: now }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely: it then remembers
    /// nothing of past use, and a bucket kept per client can be forgotten.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }

    /// Tokens available now.
    pub fn level(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.capacity);
        self.updated = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3, 2.0, start);
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        // Half a second refills one token at two per second.
        let later = start + Duration::from_millis(500);
        assert!(bucket.try_take(later));
        assert!(!bucket.try_take(later));
        // A long pause refills to capacity and no further.
        let much_later = later + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(much_later)));
        assert!(!bucket.try_take(much_later));
    }
}
