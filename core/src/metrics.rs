//! The server's counters, and their Prometheus text rendering.
//!
//! Counting stays off the per-recipient path: a publish adds its recipient
//! count once, bytes and frames sent are counted by each outbox under the
//! lock its writer takes anyway (and summed when scraped), and the queue
//! histogram is read from the live outboxes at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use wtchat_protocol::{FallbackReason, ReasonCode};

use crate::arrival::TransportKind;
use crate::outbox::OutboxStats;

/// Upper bounds of the fan-out latency buckets, in seconds.
const FANOUT_BUCKETS: [f64; 10] =
    [0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05];

/// Upper bounds of the queued-bytes buckets.
const QUEUE_BUCKETS: [f64; 8] = [0.0, 1024.0, 4096.0, 16384.0, 65536.0, 262_144.0, 1_048_576.0, 4_194_304.0];

/// A histogram with fixed buckets, updated with atomics.
#[derive(Debug)]
struct Histogram<const N: usize> {
    bounds: [f64; N],
    /// Per bucket, not cumulative; the last slot is +Inf.
    counts: Vec<AtomicU64>,
    /// The sum, in millionths of the unit, so that it fits an integer.
    sum_micros: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: [f64; N]) -> Self {
        Self { bounds, counts: (0..=N).map(|_| AtomicU64::new(0)).collect(), sum_micros: AtomicU64::new(0) }
    }

    fn observe(&self, value: f64) {
        let slot = self.bounds.iter().position(|bound| value <= *bound).unwrap_or(N);
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        family(out, name, "histogram", help);
        let mut cumulative = 0;
        for (slot, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = self.bounds.get(slot).map_or_else(|| "+Inf".to_owned(), f64::to_string);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// The counters the core keeps.
#[derive(Debug)]
pub struct Metrics {
    /// Sessions open now, by transport.
    open: [AtomicI64; 2],
    /// Sessions opened since start, by transport.
    opened: [AtomicU64; 2],
    /// Sessions closed since start, by reason name.
    closed: Mutex<BTreeMap<&'static str, u64>>,
    /// Frames and bytes sent by sessions that have ended.
    ended_frames: AtomicU64,
    ended_bytes: AtomicU64,
    /// Chat messages accepted for publishing.
    published: AtomicU64,
    /// Deliveries queued: one per recipient of each message.
    delivered: AtomicU64,
    /// Publishes refused by the rate limit.
    rate_limited: AtomicU64,
    /// Hellos reporting a WebTransport fallback, by reason.
    fallbacks: [AtomicU64; FallbackReason::ALL.len()],
    /// Time to queue one message for every member of its room.
    fanout: Histogram<{ FANOUT_BUCKETS.len() }>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            open: Default::default(),
            opened: Default::default(),
            closed: Mutex::new(BTreeMap::new()),
            ended_frames: AtomicU64::new(0),
            ended_bytes: AtomicU64::new(0),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            fallbacks: Default::default(),
            fanout: Histogram::new(FANOUT_BUCKETS),
        }
    }
}

/// Writes a metric family's `HELP` and `TYPE` lines.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The name a session's end is counted under: its closing code's name, or
/// `CLIENT_CLOSED` when the client went first.
fn close_name(code: Option<ReasonCode>) -> &'static str {
    match code {
        None => "CLIENT_CLOSED",
        Some(code) => code.name().unwrap_or("OTHER"),
    }
}

impl Metrics {
    /// A session opened.
    pub fn session_opened(&self, transport: TransportKind) {
        self.open[transport as usize].fetch_add(1, Ordering::Relaxed);
        self.opened[transport as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A session ended with these final outbox figures.
    pub fn session_closed(&self, transport: TransportKind, stats: OutboxStats) {
        self.open[transport as usize].fetch_sub(1, Ordering::Relaxed);
        self.ended_frames.fetch_add(stats.sent_frames, Ordering::Relaxed);
        self.ended_bytes.fetch_add(stats.sent_bytes, Ordering::Relaxed);
        let mut closed = self.closed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *closed.entry(close_name(stats.close_code)).or_insert(0) += 1;
    }

    /// A message went out to `recipients` members, queued in `fanout`.
    pub fn published(&self, recipients: usize, fanout: Duration) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.delivered.fetch_add(recipients as u64, Ordering::Relaxed);
        self.fanout.observe(fanout.as_secs_f64());
    }

    /// A publish was refused by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// A client said it fell back from WebTransport.
    pub fn fallback(&self, reason: FallbackReason) {
        if let Some(slot) = FallbackReason::ALL.iter().position(|r| *r == reason) {
            self.fallbacks[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sessions open now over `transport`.
    pub fn open_sessions(&self, transport: TransportKind) -> i64 {
        self.open[transport as usize].load(Ordering::Relaxed)
    }

    /// Messages published since start.
    pub fn published_count(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Sessions closed since start, by reason name.
    pub fn closed_counts(&self) -> BTreeMap<&'static str, u64> {
        self.closed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Renders the core's metrics; `live` is every live session's outbox
    /// figures, read at scrape time.
    pub fn render(&self, out: &mut String, live: &[OutboxStats]) {
        family(out, "wtchat_connections", "gauge", "Sessions open now, by transport.");
        for transport in TransportKind::ALL {
            let _ = writeln!(
                out,
                "wtchat_connections{{transport=\"{}\"}} {}",
                transport.name(),
                self.open_sessions(transport)
            );
        }
        family(out, "wtchat_sessions_opened_total", "counter", "Sessions opened, by transport.");
        for transport in TransportKind::ALL {
            let opened = self.opened[transport as usize].load(Ordering::Relaxed);
            let _ =
                writeln!(out, "wtchat_sessions_opened_total{{transport=\"{}\"}} {opened}", transport.name());
        }
        let closed = self.closed_counts();
        family(
            out,
            "wtchat_sessions_closed_total",
            "counter",
            "Sessions closed, by the reason code the server closed them with (CLIENT_CLOSED: the client went first).",
        );
        for (reason, count) in &closed {
            let _ = writeln!(out, "wtchat_sessions_closed_total{{reason=\"{reason}\"}} {count}");
        }
        family(
            out,
            "wtchat_slow_consumer_evictions_total",
            "counter",
            "Sessions evicted for reading too slowly.",
        );
        let evicted = closed.get("SLOW_CONSUMER").copied().unwrap_or(0);
        let _ = writeln!(out, "wtchat_slow_consumer_evictions_total {evicted}");
        family(out, "wtchat_messages_published_total", "counter", "Chat messages accepted for publishing.");
        let _ = writeln!(out, "wtchat_messages_published_total {}", self.published_count());
        family(out, "wtchat_messages_delivered_total", "counter", "Chat messages queued for a recipient.");
        let _ = writeln!(out, "wtchat_messages_delivered_total {}", self.delivered.load(Ordering::Relaxed));
        let frames: u64 =
            live.iter().map(|s| s.sent_frames).sum::<u64>() + self.ended_frames.load(Ordering::Relaxed);
        let bytes: u64 =
            live.iter().map(|s| s.sent_bytes).sum::<u64>() + self.ended_bytes.load(Ordering::Relaxed);
        family(out, "wtchat_frames_sent_total", "counter", "Frames written to clients.");
        let _ = writeln!(out, "wtchat_frames_sent_total {frames}");
        family(out, "wtchat_bytes_sent_total", "counter", "Frame bytes written to clients.");
        let _ = writeln!(out, "wtchat_bytes_sent_total {bytes}");
        family(
            out,
            "wtchat_rate_limited_total",
            "counter",
            "Publishes refused by the per-session rate limit.",
        );
        let _ = writeln!(out, "wtchat_rate_limited_total {}", self.rate_limited.load(Ordering::Relaxed));
        family(
            out,
            "wtchat_webtransport_fallbacks_total",
            "counter",
            "Sessions whose client reported falling back from WebTransport, by reason.",
        );
        for (slot, reason) in FallbackReason::ALL.iter().enumerate() {
            let count = self.fallbacks[slot].load(Ordering::Relaxed);
            let _ =
                writeln!(out, "wtchat_webtransport_fallbacks_total{{reason=\"{}\"}} {count}", reason.name());
        }
        self.fanout.render(
            out,
            "wtchat_fanout_seconds",
            "Time to queue one message for every member of its room.",
        );
        let queued = Histogram::new(QUEUE_BUCKETS);
        for stats in live {
            queued.observe(stats.queued_bytes as f64);
        }
        queued.render(
            out,
            "wtchat_session_queued_bytes",
            "Bytes waiting in each live session's outbound queue.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.session_opened(TransportKind::WebSocket);
        metrics.session_opened(TransportKind::WebTransport);
        metrics.session_closed(
            TransportKind::WebTransport,
            OutboxStats {
                sent_frames: 3,
                sent_bytes: 300,
                queued_bytes: 0,
                close_code: Some(ReasonCode::SLOW_CONSUMER),
            },
        );
        metrics.published(10, Duration::from_micros(30));
        metrics.published(10, Duration::from_secs(1));
        metrics.fallback(FallbackReason::TIMEOUT);
        let live = [OutboxStats { sent_frames: 2, sent_bytes: 100, queued_bytes: 2000, close_code: None }];
        let mut out = String::new();
        metrics.render(&mut out, &live);
        for line in [
            "wtchat_connections{transport=\"websocket\"} 1",
            "wtchat_connections{transport=\"webtransport\"} 0",
            "wtchat_sessions_closed_total{reason=\"SLOW_CONSUMER\"} 1",
            "wtchat_slow_consumer_evictions_total 1",
            "wtchat_messages_delivered_total 20",
            "wtchat_bytes_sent_total 400",
            "wtchat_frames_sent_total 5",
            "wtchat_webtransport_fallbacks_total{reason=\"timeout\"} 1",
            "wtchat_fanout_seconds_bucket{le=\"0.00005\"} 1",
            "wtchat_fanout_seconds_bucket{le=\"+Inf\"} 2",
            "wtchat_fanout_seconds_count 2",
            "wtchat_session_queued_bytes_bucket{le=\"1024\"} 0",
            "wtchat_session_queued_bytes_bucket{le=\"4096\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
    }
}
