//! `wtchat bench`: an open-loop load generator for a running server.
//!
//! S sessions join one room; P of them publish B-byte messages at a total of
//! R messages per second for D seconds. Sends follow the clock, not the
//! replies: a publisher that falls behind catches up at once, and each
//! message's latency is measured from when it was meant to be sent, so a
//! slow server cannot hide its delay by slowing the load down (coordinated
//! omission). Modes: `run` (one step), `ramp` (raise R by a factor until the
//! delivery ratio drops below 0.99 or p99 passes 100 ms), `idle` (hold N
//! connections and report memory per connection), `join` (a crowd of S
//! joins one room; see `crowd.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::sync::watch;
use tokio::time::Instant;
use wtchat_protocol::{
    ChatMessage, ClientFrame, ClientMessage, Member, PROTOCOL_VERSION, ServerMessage, encode,
};

use crate::dial::{Received, Session, Transport};
pub use crate::load::{BenchArgs, Mode};
use crate::load::{
    connect_all, joined_tag, server_cpu_seconds, server_rss_bytes, transport_name, variant_tag,
};
use crate::measure::{HEADER_BYTES, Stamp, StepStats};
use crate::procstat;
use crate::report::{self, IdleReport, Latency, StepReport};
use crate::versus::{self, Yardstick};

/// What the controller tells every session.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Connected, nothing to publish.
    Wait,
    /// Publish this step.
    Publish { step: usize, rate_per_publisher: f64, start: Instant, end: Instant },
    /// Leave.
    Stop,
}

/// What every session shares with the controller.
struct Shared {
    /// The time base of stamps.
    origin: Instant,
    /// Message body size.
    bytes: usize,
    /// How many sessions each message reaches.
    fan_out: usize,
    /// The publisher count.
    publishers: usize,
    /// The tag byte that marks a chat message frame.
    message_tag: u8,
    /// The tag byte that marks a joined answer.
    joined_tag: u8,
    /// Messages sent, by step and publisher.
    sent: Mutex<Vec<Vec<u64>>>,
    /// Sessions the server closed.
    disconnected: AtomicUsize,
}

/// One session's results by step; a std mutex, uncontended except when the
/// controller reads it between steps or for the progress line.
type Results = Arc<Mutex<Vec<StepStats>>>;

/// Runs the benchmark and prints its report.
pub async fn run(args: BenchArgs) -> Result<Vec<StepReport>> {
    if args.bytes < HEADER_BYTES {
        bail!("messages must be at least {HEADER_BYTES} bytes (they carry a send time and an id)");
    }
    if args.transport == Transport::Auto {
        bail!("choose ws or wt for a benchmark");
    }
    match args.mode {
        Mode::Idle => idle(&args).await.map(|_| Vec::new()),
        Mode::Join => crate::crowd::run(&args).await.map(|_| Vec::new()),
        Mode::Run | Mode::Ramp => against_each(&args).await,
    }
}

/// Runs the load against the server, then against each yardstick of
/// `--versus`, started for it (`versus.rs`), and compares them.
async fn against_each(args: &BenchArgs) -> Result<Vec<StepReport>> {
    versus::check(args)?;
    let mut runs: Vec<(&'static str, Vec<StepReport>)> = vec![("wtchat", load(args, "wtchat").await?)];
    for kind in &args.versus {
        let yardstick = Yardstick::start(*kind)?;
        println!("\nthe same load against the {} yardstick", kind.name());
        runs.push((kind.name(), load(&yardstick.args(args), kind.name()).await?));
    }
    if runs.len() > 1 {
        println!("\n{}", versus::comparison(&runs, args.mode));
    }
    Ok(runs.into_iter().flat_map(|(_, reports)| reports).collect())
}

/// Runs the load (a step, or a ramp) against `args.server`, which is
/// `target` (`wtchat` or a yardstick's name).
async fn load(args: &BenchArgs, target: &'static str) -> Result<Vec<StepReport>> {
    let (publishers, fan_out) = match args.room_size {
        0 => (args.publishers.clamp(1, args.subscribers.max(1)), args.subscribers),
        size => {
            anyhow::ensure!(
                args.subscribers >= size && args.subscribers % size == 0,
                "--subscribers ({}) must be a multiple of --room-size ({size})",
                args.subscribers
            );
            (args.subscribers / size, size)
        }
    };
    let server_rss_before = server_rss_bytes(args);
    let connect_started = Instant::now();
    let sessions = connect_all(args, args.subscribers).await?;
    let shared = Arc::new(Shared {
        origin: Instant::now(),
        bytes: args.bytes,
        fan_out,
        publishers,
        message_tag: variant_tag(&ServerMessage::Message(ChatMessage {
            room: String::new(),
            seq: 0,
            sender: Member { session_id: 0, name: String::new() },
            sent_at_ms: 0,
            body: String::new(),
        })),
        joined_tag: joined_tag(),
        sent: Mutex::new(Vec::new()),
        disconnected: AtomicUsize::new(0),
    });
    let (phase, phase_receiver) = watch::channel(Phase::Wait);
    let joined = Arc::new(AtomicUsize::new(0));
    let mut results: Vec<Results> = Vec::new();
    let mut tasks = Vec::new();
    for (index, session) in sessions.into_iter().enumerate() {
        let stats: Results = Arc::new(Mutex::new(Vec::new()));
        results.push(stats.clone());
        let (room, publisher) = match args.room_size {
            0 => (args.room.clone(), (index < publishers).then_some(index)),
            size => (format!("{}-{}", args.room, index / size), (index % size == 0).then_some(index / size)),
        };
        tasks.push(tokio::spawn(member(
            session,
            room,
            publisher,
            shared.clone(),
            phase_receiver.clone(),
            stats,
            joined.clone(),
        )));
    }
    while joined.load(Ordering::Relaxed) < tasks.len() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_s = connect_started.elapsed().as_secs_f64();
    let server_rss_per_connection_kb = match (server_rss_before, server_rss_bytes(args)) {
        (Some(before), Some(after)) => {
            Some(after.saturating_sub(before) as f64 / 1024.0 / args.subscribers as f64)
        }
        _ => None,
    };
    if !args.quiet {
        eprintln!(
            "connected and joined {} sessions over {} in {connect_s:.2} s",
            args.subscribers,
            transport_name(args.transport)
        );
    }
    println!("{}", report::header());

    let mut reports = Vec::new();
    let mut rate = args.rate;
    let mut step = 0;
    loop {
        let step_report = run_step(
            args,
            target,
            &shared,
            &phase,
            &results,
            step,
            rate,
            publishers,
            connect_s,
            server_rss_per_connection_kb,
        )
        .await?;
        println!("{}", report::row(&step_report));
        if let Some(path) = &args.json {
            report::append_json(path, &step_report)?;
        }
        let good = step_report.delivery_ratio >= 0.99 && step_report.latency_ms.p99 <= 100.0;
        reports.push(step_report);
        if args.mode != Mode::Ramp || !good || rate * args.ramp_factor > args.ramp_max {
            break;
        }
        rate *= args.ramp_factor;
        step += 1;
    }
    let _ = phase.send(Phase::Stop);
    for task in tasks {
        let _ = task.await;
    }
    if args.mode == Mode::Ramp {
        match reports.iter().rev().find(|r| r.delivery_ratio >= 0.99 && r.latency_ms.p99 <= 100.0) {
            Some(best) => println!(
                "last good step: {:.0} deliveries/s achieved (offered {:.0}), p99 {:.2} ms, server {} s per million deliveries",
                best.achieved_deliveries_per_s,
                best.offered_deliveries_per_s,
                best.latency_ms.p99,
                best.server_cpu_s_per_million.map_or("-".to_owned(), |v| format!("{v:.3}"))
            ),
            None => println!("no step met delivery ratio >= 0.99 and p99 <= 100 ms"),
        }
        if let Some(path) = &args.plot {
            crate::plot::latency_against_load(path, &reports)?;
            println!("plot written to {}", path.display());
        }
    }
    Ok(reports)
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    args: &BenchArgs,
    target: &'static str,
    shared: &Arc<Shared>,
    phase: &watch::Sender<Phase>,
    results: &[Results],
    step: usize,
    rate: f64,
    publishers: usize,
    connect_s: f64,
    server_rss_per_connection_kb: Option<f64>,
) -> Result<StepReport> {
    let server_cpu_before = server_cpu_seconds(args);
    let own_cpu_before = procstat::cpu_seconds(std::process::id()).unwrap_or(0.0);
    let udp_before = procstat::udp_buffer_errors();
    let disconnected_before = shared.disconnected.load(Ordering::Relaxed);
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(args.duration);
    let _ = phase.send(Phase::Publish { step, rate_per_publisher: rate / publishers as f64, start, end });

    // Progress while publishing.
    let unique =
        |step: usize| -> u64 { results.iter().map(|r| lock(r).get(step).map_or(0, |s| s.unique)).sum() };
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1).min(end.saturating_duration_since(Instant::now()))).await;
        if !args.quiet {
            let elapsed = Instant::now().saturating_duration_since(start).as_secs_f64().max(0.001);
            let delivered = unique(step);
            eprint!(
                "\r  step {step}: {elapsed:4.1}/{:.0} s, {rate:.0} msg/s offered, {:.0} deliveries/s   ",
                args.duration,
                delivered as f64 / elapsed
            );
        }
    }
    let _ = phase.send(Phase::Wait);
    // Drain: wait for stragglers until everything arrived, nothing moved for
    // a second, or five seconds passed.
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    let mut last = unique(step);
    let mut still_since = Instant::now();
    loop {
        let sent: u64 = lock(&shared.sent).get(step).map_or(0, |s| s.iter().sum());
        let live = results.len() - (shared.disconnected.load(Ordering::Relaxed) - disconnected_before);
        let now_unique = unique(step);
        if now_unique >= sent * live.min(shared.fan_out) as u64 || Instant::now() > drain_deadline {
            break;
        }
        if now_unique != last {
            last = now_unique;
            still_since = Instant::now();
        } else if still_since.elapsed() > Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !args.quiet {
        eprint!("\r{:80}\r", "");
    }
    let server_cpu_s = match (server_cpu_before, server_cpu_seconds(args)) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let own_cpu_s = procstat::cpu_seconds(std::process::id()).unwrap_or(0.0) - own_cpu_before;
    let udp = udp_before.zip(procstat::udp_buffer_errors()).map(|(before, after)| after.since(before));

    let mut merged = StepStats::new(publishers);
    for result in results {
        if let Some(stats) = lock(result).get(step) {
            merged.merge(stats);
        }
    }
    let messages_sent: u64 = lock(&shared.sent).get(step).map_or(0, |s| s.iter().sum());
    let expected = messages_sent * shared.fan_out as u64;
    let millions = merged.unique as f64 / 1e6;
    Ok(StepReport {
        target,
        mode: if args.mode == Mode::Ramp { "ramp" } else { "run" },
        transport: transport_name(args.transport),
        step,
        subscribers: results.len(),
        publishers,
        message_bytes: args.bytes,
        duration_s: args.duration,
        offered_messages_per_s: rate,
        messages_sent,
        offered_deliveries_per_s: rate * shared.fan_out as f64,
        achieved_deliveries_per_s: merged.unique as f64 / args.duration,
        delivery_ratio: if expected == 0 { 0.0 } else { merged.unique as f64 / expected as f64 },
        lost: expected.saturating_sub(merged.unique),
        duplicated: merged.duplicates,
        disconnected: shared.disconnected.load(Ordering::Relaxed) - disconnected_before,
        latency_ms: Latency::from_micros(&merged.latency_us),
        connect_s,
        server_cpu_s,
        server_cpu_s_per_million: server_cpu_s.filter(|_| millions > 0.0).map(|cpu| cpu / millions),
        server_rss_per_connection_kb,
        loadgen_cpu_s: own_cpu_s,
        loadgen_cpu_s_per_million: if millions > 0.0 { own_cpu_s / millions } else { 0.0 },
        udp_receive_buffer_errors: udp.map(|udp| udp.receive),
        udp_send_buffer_errors: udp.map(|udp| udp.send),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One session: joins, receives and measures, pings, and publishes when it
/// is a publisher and a step says so.
async fn member(
    session: Session,
    room: String,
    publisher: Option<usize>,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    results: Results,
    joined: Arc<AtomicUsize>,
) {
    let Session { welcome, mut outgoing, mut incoming, .. } = session;
    let mut request_id = 0u32;
    let mut frame = |message: ClientMessage| {
        request_id += 1;
        encode(&ClientFrame { request_id, message })
    };
    let join = ClientMessage::Join { room: room.clone(), display_name: "bench".into(), resume: None };
    if outgoing.send(&frame(join)).await.is_err() {
        shared.disconnected.fetch_add(1, Ordering::Relaxed);
        joined.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut is_joined = false;
    let mut ping =
        tokio::time::interval(Duration::from_millis(u64::from(welcome.heartbeat_interval_ms.max(100))));
    let mut current = Phase::Wait;
    let mut counter = 0u64;
    let mut next_due = Instant::now();
    // Publishers are spread evenly over one sending interval, so that R
    // messages/s arrive as a steady stream rather than as P simultaneous
    // bursts, which is how independent users' messages arrive.
    let phase_offset = publisher.map_or(0.0, |index| index as f64 / shared.publishers as f64);
    loop {
        let publishing = matches!(current, Phase::Publish { .. }) && publisher.is_some();
        tokio::select! {
            received = incoming.next() => match received {
                Some(Received::Frame(body)) => {
                    if body.len() > 2 && body[0] == PROTOCOL_VERSION && body[1] == shared.message_tag {
                        if let Some(stamp) = body.len().checked_sub(shared.bytes).and_then(|at| Stamp::parse(&body[at..])) {
                            let now_ns = shared.origin.elapsed().as_nanos() as u64;
                            let latency_us = now_ns.saturating_sub(stamp.sent_ns) / 1000;
                            let mut results = lock(&results);
                            while results.len() <= stamp.step {
                                results.push(StepStats::new(shared.publishers));
                            }
                            results[stamp.step].record(&stamp, latency_us);
                        }
                    } else if !is_joined && body.len() > 1 && body[1] == shared.joined_tag {
                        // The joined answer: count this session in.
                        is_joined = true;
                        joined.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Received::Closed(_)) | None => {
                    shared.disconnected.fetch_add(1, Ordering::Relaxed);
                    if !is_joined {
                        joined.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
            },
            _ = ping.tick() => {
                if outgoing.send(&frame(ClientMessage::Ping { nonce: 0 })).await.is_err() {
                    continue;
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
                current = phase.borrow_and_update().clone();
                match &current {
                    Phase::Stop => return,
                    Phase::Publish { start, rate_per_publisher, .. } => {
                        counter = 0;
                        next_due = due_time(*start, *rate_per_publisher, phase_offset, 0);
                    }
                    Phase::Wait => {}
                }
            }
            () = tokio::time::sleep_until(next_due), if publishing => {
                let (Some(index), Phase::Publish { step, rate_per_publisher, start, end }) = (publisher, &current) else { continue };
                let now = Instant::now();
                // Everything due by now goes out in one batch; the stamp is
                // the time each message was due, not when it left.
                let mut batch = Vec::new();
                loop {
                    let due = due_time(*start, *rate_per_publisher, phase_offset, counter);
                    // The step's window is [start, end): a message due at
                    // the end belongs to no step.
                    if due > now || due >= *end {
                        next_due = due;
                        break;
                    }
                    let sent_ns = due.saturating_duration_since(shared.origin).as_nanos() as u64;
                    let stamp = Stamp { step: *step, publisher: index, counter, sent_ns };
                    batch.push(frame(ClientMessage::Publish { room: room.clone(), body: stamp.body(shared.bytes), message_id: None }));
                    counter += 1;
                }
                let count = batch.len() as u64;
                if count > 0 && outgoing.send_batch(batch).await.is_ok() {
                    let mut sent = lock(&shared.sent);
                    while sent.len() <= *step {
                        sent.push(vec![0; shared.publishers]);
                    }
                    sent[*step][index] += count;
                }
                if next_due >= *end {
                    // This step is over for this publisher.
                    current = Phase::Wait;
                }
            }
        }
    }
}

/// When a publisher's `counter`th message of a step is due: `offset` (a
/// fraction of one interval, below 1) staggers publishers against each other.
fn due_time(start: Instant, rate_per_publisher: f64, offset: f64, counter: u64) -> Instant {
    let interval = 1.0 / rate_per_publisher.max(0.001);
    start + Duration::from_secs_f64((counter as f64 + offset) * interval)
}

/// Holds `connections` greeted sessions and reports the server's memory per
/// connection.
async fn idle(args: &BenchArgs) -> Result<IdleReport> {
    let before = server_rss_bytes(args);
    let started = Instant::now();
    let sessions = connect_all(args, args.connections).await?;
    let connect_s = started.elapsed().as_secs_f64();
    // Let the server settle (allocator, lazily grown buffers) before reading.
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let after = server_rss_bytes(args);
    let mb = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
    let report = IdleReport {
        mode: "idle",
        transport: transport_name(args.transport),
        connections: sessions.len(),
        connect_s,
        server_rss_before_mb: before.map(mb),
        server_rss_after_mb: after.map(mb),
        server_rss_per_connection_kb: match (before, after) {
            (Some(before), Some(after)) => {
                Some(after.saturating_sub(before) as f64 / 1024.0 / sessions.len() as f64)
            }
            _ => None,
        },
    };
    println!(
        "idle: {} {} connections in {connect_s:.2} s; server RSS {} -> {} MB, {} KB per connection",
        report.connections,
        report.transport,
        report.server_rss_before_mb.map_or("-".into(), |v| format!("{v:.1}")),
        report.server_rss_after_mb.map_or("-".into(), |v| format!("{v:.1}")),
        report.server_rss_per_connection_kb.map_or("-".into(), |v| format!("{v:.2}")),
    );
    if let Some(path) = &args.json {
        report::append_json(path, &report)?;
    }
    drop(sessions);
    Ok(report)
}
