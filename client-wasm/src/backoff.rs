//! How long to wait before reconnecting: exponential backoff with full
//! jitter, never sooner than the server asked.
//!
//! Full jitter (a uniformly random delay between zero and the exponential
//! cap) spreads a crowd of clients that lost the same server over the whole
//! window, so that a restart is not met by all of them at once.

/// The backoff policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The cap of the first retry, in milliseconds.
    pub base_ms: f64,
    /// The largest cap, in milliseconds.
    pub max_ms: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base_ms: 500.0, max_ms: 30_000.0 }
    }
}

impl Backoff {
    /// The cap for the `attempt`-th retry (0 for the first): `base * 2^attempt`,
    /// at most `max`.
    pub fn cap_ms(&self, attempt: u32) -> f64 {
        (self.base_ms * 2f64.powi(attempt.min(30) as i32)).min(self.max_ms)
    }

    /// The delay before the `attempt`-th retry. `random` is uniform in
    /// [0, 1); `retry_after_ms` is the server's hint, a floor on the delay.
    pub fn delay_ms(&self, attempt: u32, random: f64, retry_after_ms: Option<u32>) -> f64 {
        let jittered = self.cap_ms(attempt) * random.clamp(0.0, 1.0);
        jittered.max(retry_after_ms.map_or(0.0, f64::from))
    }
}
