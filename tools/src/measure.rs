//! What a benchmark subscriber measures, per step of the load.
//!
//! Every benchmark message body starts with 40 ASCII digits: the step, the
//! publisher, the publisher's counter and the intended send time (ns since
//! the run's start), then padding. Because a room keeps each publisher's
//! messages in order, a subscriber detects loss and duplicates from the
//! counters alone, and needs no per-message memory.

use hdrhistogram::Histogram;

/// The length of the header at the start of every benchmark body.
pub const HEADER_BYTES: usize = 40;

/// A parsed benchmark body header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The load step the message belongs to.
    pub step: usize,
    /// Which publisher sent it.
    pub publisher: usize,
    /// The publisher's counter, from 0, per step.
    pub counter: u64,
    /// When it was meant to be sent, in ns since the run started.
    pub sent_ns: u64,
}

impl Stamp {
    /// The body for this stamp, padded to `bytes` (at least the header).
    pub fn body(&self, bytes: usize) -> String {
        let mut body =
            format!("{:04}{:04}{:012}{:020}", self.step, self.publisher, self.counter, self.sent_ns);
        body.extend(std::iter::repeat_n('x', bytes.saturating_sub(HEADER_BYTES)));
        body
    }

    /// Reads the stamp at the start of a body.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let header = body.get(..HEADER_BYTES)?;
        let number = |range: std::ops::Range<usize>| -> Option<u64> {
            header[range]
                .iter()
                .try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
        };
        Some(Self {
            step: usize::try_from(number(0..4)?).ok()?,
            publisher: usize::try_from(number(4..8)?).ok()?,
            counter: number(8..20)?,
            sent_ns: number(20..40)?,
        })
    }
}

/// One subscriber's results for one step.
#[derive(Debug, Clone)]
pub struct StepStats {
    /// Messages received once.
    pub unique: u64,
    /// Messages received again (or out of a publisher's order).
    pub duplicates: u64,
    /// The next counter expected from each publisher.
    next_counter: Vec<u64>,
    /// Latency from intended send to receipt, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl StepStats {
    /// Empty results for a run with `publishers` publishers.
    pub fn new(publishers: usize) -> Self {
        Self {
            unique: 0,
            duplicates: 0,
            next_counter: vec![0; publishers],
            // 1 µs to 100 s at three significant digits.
            latency_us: Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds"),
        }
    }

    /// Records a received message.
    pub fn record(&mut self, stamp: &Stamp, latency_us: u64) {
        let Some(next) = self.next_counter.get_mut(stamp.publisher) else { return };
        if stamp.counter < *next {
            self.duplicates += 1;
            return;
        }
        *next = stamp.counter + 1;
        self.unique += 1;
        let _ = self.latency_us.record(latency_us.clamp(1, 100_000_000));
    }

    /// Adds another subscriber's results.
    pub fn merge(&mut self, other: &Self) {
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        let _ = self.latency_us.add(&other.latency_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_pad() {
        let stamp = Stamp { step: 3, publisher: 7, counter: 123_456, sent_ns: 9_876_543_210 };
        let body = stamp.body(128);
        assert_eq!(body.len(), 128);
        assert_eq!(Stamp::parse(body.as_bytes()), Some(stamp));
        assert_eq!(Stamp::parse(b"short"), None);
        assert_eq!(Stamp::parse(&[b'x'; 64]), None);
    }

    #[test]
    fn counters_reveal_loss_and_duplicates() {
        let mut stats = StepStats::new(2);
        let at = |publisher, counter| Stamp { step: 0, publisher, counter, sent_ns: 0 };
        for counter in [0, 1, 2, 5, 6] {
            stats.record(&at(0, counter), 100);
        }
        stats.record(&at(0, 6), 100);
        stats.record(&at(1, 0), 100);
        assert_eq!((stats.unique, stats.duplicates), (6, 1));
        assert_eq!(stats.latency_us.len(), 6);
    }
}
