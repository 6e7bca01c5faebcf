//! What every mode of the load generator shares: its options, opening the
//! sessions, the server's figures from `/proc`, and the tags that sort
//! frames without decoding them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use futures_util::StreamExt;
use wtchat_protocol::{HistoryReplay, Joined, ServerMessage, encode};

use crate::dial::{Dialer, Session, Transport, WebSocketClient};
use crate::procstat;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One load step.
    Run,
    /// Raise the load step by step until it breaks.
    Ramp,
    /// Hold connections and measure memory.
    Idle,
    /// Connect a crowd, then have it join one room: admission time, join
    /// latency, presence bytes and memory per member (`crowd.rs`).
    Join,
}

/// A yardstick the same load runs against, in the same run (`versus.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Versus {
    /// The textbook design: one broadcast channel, a task per connection.
    Textbook,
    /// The floor: one send per delivery and nothing else.
    Floor,
}

impl Versus {
    /// Its name, as `wtchat yardstick` and the reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Textbook => "textbook",
            Self::Floor => "floor",
        }
    }
}

/// Options of `wtchat bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The server's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub server: SocketAddr,
    /// The transport (ws or wt).
    #[arg(long, value_enum, default_value = "ws")]
    pub transport: Transport,
    /// What to measure.
    #[arg(long, value_enum, default_value = "run")]
    pub mode: Mode,
    /// Sessions in the room (publishers included).
    #[arg(long, short = 's', default_value_t = 1000)]
    pub subscribers: usize,
    /// How many of them publish.
    #[arg(long, short = 'p', default_value_t = 10)]
    pub publishers: usize,
    /// Message body size in bytes (at least 40).
    #[arg(long, short = 'b', default_value_t = 128)]
    pub bytes: usize,
    /// Total messages per second (the first step's, in a ramp).
    #[arg(long, short = 'r', default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of publishing per step.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// The factor between ramp steps.
    #[arg(long, default_value_t = 1.5)]
    pub ramp_factor: f64,
    /// The highest rate a ramp tries, in messages per second.
    #[arg(long, default_value_t = 20_000.0)]
    pub ramp_max: f64,
    /// Connections to hold in idle mode.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Seconds to hold them (idle), or to let a crowd settle after it joined
    /// (join).
    #[arg(long, default_value_t = 3.0)]
    pub hold: f64,
    /// Joins per second in join mode; 0 joins everyone at once.
    #[arg(long, default_value_t = 1000.0)]
    pub join_rate: f64,
    /// More servers sharing the room through Redis; sessions are spread
    /// over all of them in turn (repeatable).
    #[arg(long)]
    pub also_server: Vec<SocketAddr>,
    /// Process ids whose CPU time and memory count as the server's
    /// (repeatable: every wtchat process, and Redis, for a split room).
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// The room to use (the prefix of the rooms' names, with
    /// `--room-size`).
    #[arg(long, default_value = "bench")]
    pub room: String,
    /// Sessions per room: 0 puts every session in one room; otherwise the
    /// sessions fill rooms of this many (`ROOM-0`, `ROOM-1`, …), the first
    /// member of each publishing and `--publishers` unused, which is how
    /// many small conversations load a server and its Redis. Sessions are
    /// dealt over the servers in turn, so a room spans them.
    #[arg(long, default_value_t = 0)]
    pub room_size: usize,
    /// Also run the same load against a yardstick that this command starts
    /// (`wtchat yardstick`), after the server, and compare (WebSocket, run
    /// and ramp modes; repeatable).
    #[arg(long, value_enum)]
    pub versus: Vec<Versus>,
    /// Append one JSON line per result to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw latency percentiles against load to this PNG (ramp mode).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

pub(crate) fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Wt => "wt",
        _ => "ws",
    }
}

/// The summed CPU seconds of the server's processes, if every one is known.
pub(crate) fn server_cpu_seconds(args: &BenchArgs) -> Option<f64> {
    let each: Option<Vec<f64>> = args.server_pid.iter().map(|pid| procstat::cpu_seconds(*pid)).collect();
    each.filter(|e| !e.is_empty()).map(|e| e.iter().sum())
}

/// The summed resident memory of the server's processes, if every one is
/// known.
pub(crate) fn server_rss_bytes(args: &BenchArgs) -> Option<u64> {
    let each: Option<Vec<u64>> = args.server_pid.iter().map(|pid| procstat::rss_bytes(*pid)).collect();
    each.filter(|e| !e.is_empty()).map(|e| e.iter().sum())
}

/// Opens `count` greeted sessions, a few at a time, spread in turn over
/// `--server` and every `--also-server`.
pub(crate) async fn connect_all(args: &BenchArgs, count: usize) -> Result<Vec<Session>> {
    let mut dialers = Vec::new();
    for server in std::iter::once(args.server).chain(args.also_server.iter().copied()) {
        let dialer = Dialer::new(server).await?.with_websocket_client(WebSocketClient::Raw);
        dialers.push(Arc::new(tokio::sync::Mutex::new(dialer)));
    }
    let transport = args.transport;
    // Each server's first session creates its dialer's QUIC endpoint, one
    // at a time; the rest reuse them.
    let mut sessions = Vec::new();
    for dialer in dialers.iter().take(count) {
        sessions.push(dialer.lock().await.open(transport, "wtchat-bench").await?);
    }
    let rest = futures_util::stream::iter(sessions.len()..count)
        .map(|index| {
            let dialer = dialers[index % dialers.len()].clone();
            async move {
                // The dialer is shared for its endpoint; opening a session
                // holds its lock only while it starts the handshake.
                let mut dialer = dialer.lock().await;
                dialer.open(transport, "wtchat-bench").await
            }
        })
        .buffer_unordered(args.connect_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    for session in rest {
        sessions.push(session?);
    }
    Ok(sessions)
}

/// The byte after the version that identifies a server message's variant,
/// read from an encoded sample, so that subscribers can sort frames without
/// decoding them and the bench follows the protocol if its variants move.
pub(crate) fn variant_tag(sample: &ServerMessage) -> u8 {
    encode(sample)[1]
}

/// The tag of a join answer.
pub(crate) fn joined_tag() -> u8 {
    variant_tag(&ServerMessage::Joined(Joined {
        request_id: 0,
        room: String::new(),
        epoch: 0,
        next_seq: 0,
        member_count: 0,
        members: Vec::new(),
        history: HistoryReplay { count: 0, gap: false },
    }))
}
