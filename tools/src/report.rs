//! Benchmark results: one JSON line per step for machines, a table row per
//! step for people.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds, in milliseconds.
    pub fn from_micros(histogram: &hdrhistogram::Histogram<u64>) -> Self {
        let quantile = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        Self {
            p50: quantile(0.5),
            p90: quantile(0.9),
            p99: quantile(0.99),
            p999: quantile(0.999),
            max: histogram.max() as f64 / 1000.0,
        }
    }
}

/// The results of one load step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// What was measured: `wtchat`, or a yardstick (`textbook`, `floor`).
    pub target: &'static str,
    /// `run` or `ramp`.
    pub mode: &'static str,
    /// `ws` or `wt`.
    pub transport: &'static str,
    /// The step's number (0 for a plain run).
    pub step: usize,
    /// Sessions in the room.
    pub subscribers: usize,
    /// How many of them publish.
    pub publishers: usize,
    /// Message body size.
    pub message_bytes: usize,
    /// How long publishers sent.
    pub duration_s: f64,
    /// Messages per second the publishers were told to send.
    pub offered_messages_per_s: f64,
    /// Messages actually sent.
    pub messages_sent: u64,
    /// Deliveries per second the offered rate implies.
    pub offered_deliveries_per_s: f64,
    /// Unique deliveries per second of the send window.
    pub achieved_deliveries_per_s: f64,
    /// Unique deliveries over sent messages times subscribers.
    pub delivery_ratio: f64,
    /// Deliveries that never arrived.
    pub lost: u64,
    /// Deliveries that arrived more than once.
    pub duplicated: u64,
    /// Sessions the server closed during the step.
    pub disconnected: usize,
    /// From intended send time to receipt.
    pub latency_ms: Latency,
    /// Time to connect and join everyone, for the run.
    pub connect_s: f64,
    /// Server CPU seconds during the step (if its pid was given).
    pub server_cpu_s: Option<f64>,
    /// Server CPU seconds per million deliveries.
    pub server_cpu_s_per_million: Option<f64>,
    /// Server resident memory per connection, measured after connecting.
    pub server_rss_per_connection_kb: Option<f64>,
    /// The load generator's own CPU seconds during the step.
    pub loadgen_cpu_s: f64,
    /// The load generator's CPU seconds per million deliveries.
    pub loadgen_cpu_s_per_million: f64,
    /// UDP datagrams the kernel dropped for full receive buffers during the
    /// step, machine-wide (server and generator alike).
    pub udp_receive_buffer_errors: Option<u64>,
    /// UDP datagrams the kernel dropped for full send buffers.
    pub udp_send_buffer_errors: Option<u64>,
}

/// The results of an idle run.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Always `idle`.
    pub mode: &'static str,
    /// `ws` or `wt`.
    pub transport: &'static str,
    /// Connections held.
    pub connections: usize,
    /// Time to open them all.
    pub connect_s: f64,
    /// Server resident memory before connecting.
    pub server_rss_before_mb: Option<f64>,
    /// Server resident memory with every connection open.
    pub server_rss_after_mb: Option<f64>,
    /// The difference per connection.
    pub server_rss_per_connection_kb: Option<f64>,
}

/// Appends one JSON line to a file (and creates it if needed).
pub fn append_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{}", serde_json::to_string(value)?)?;
    Ok(())
}

/// The table header.
pub fn header() -> String {
    format!(
        "{:>4} {:>3} {:>6} {:>9} {:>12} {:>12} {:>7} {:>7} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8}",
        "step",
        "tr",
        "subs",
        "msg/s",
        "offered/s",
        "achieved/s",
        "ratio",
        "lost",
        "dup",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9",
        "max ms",
        "srv s/M",
        "gen s/M",
        "udp drop"
    )
}

/// One table row.
pub fn row(report: &StepReport) -> String {
    let optional = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    format!(
        "{:>4} {:>3} {:>6} {:>9.0} {:>12.0} {:>12.0} {:>7.4} {:>7} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>9.3} {:>8}",
        report.step,
        report.transport,
        report.subscribers,
        report.offered_messages_per_s,
        report.offered_deliveries_per_s,
        report.achieved_deliveries_per_s,
        report.delivery_ratio,
        report.lost,
        report.duplicated,
        report.latency_ms.p50,
        report.latency_ms.p90,
        report.latency_ms.p99,
        report.latency_ms.p999,
        report.latency_ms.max,
        optional(report.server_cpu_s_per_million),
        report.loadgen_cpu_s_per_million,
        match (report.udp_receive_buffer_errors, report.udp_send_buffer_errors) {
            (Some(receive), Some(send)) => (receive + send).to_string(),
            _ => "-".to_owned(),
        },
    )
}
