//! A budget for log lines an outsider can cause.
//!
//! Every refused session is worth a line to an operator, but a client that
//! churns refused connections would otherwise write a line each (170 bytes,
//! megabytes a minute). A [`LogLimit`] lets a few lines a second through and
//! counts the rest; the next line that passes says how many were left out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines let through per second.
const LINES_PER_SECOND: u64 = 5;

/// How many lines of one kind were written and left out this second.
#[derive(Debug, Default)]
pub struct LogLimit {
    /// The second (since the Unix epoch) the counts are for.
    second: AtomicU64,
    /// Lines asked for in that second.
    asked: AtomicU64,
    /// Lines left out since the last one written.
    left_out: AtomicU64,
}

impl LogLimit {
    /// A budget of a few lines a second.
    pub const fn new() -> Self {
        Self { second: AtomicU64::new(0), asked: AtomicU64::new(0), left_out: AtomicU64::new(0) }
    }

    /// Whether a line may be written now: `Some(n)` with the number of
    /// lines left out before it, or `None` to leave this one out.
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.allow_at(now)
    }

    fn allow_at(&self, second: u64) -> Option<u64> {
        if self.second.swap(second, Ordering::AcqRel) != second {
            self.asked.store(0, Ordering::Release);
        }
        if self.asked.fetch_add(1, Ordering::AcqRel) < LINES_PER_SECOND {
            Some(self.left_out.swap(0, Ordering::AcqRel))
        } else {
            self.left_out.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_lines_a_second_pass_and_the_next_one_counts_the_rest() {
        let limit = LogLimit::new();
        let passed: Vec<_> = (0..100).filter_map(|_| limit.allow_at(10)).collect();
        assert_eq!(passed, vec![0; LINES_PER_SECOND as usize]);
        assert_eq!(limit.allow_at(11), Some(100 - LINES_PER_SECOND));
        assert_eq!(limit.allow_at(11), Some(0));
    }
}
