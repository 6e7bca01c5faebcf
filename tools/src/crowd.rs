//! `wtchat bench --mode join`: a crowd of S sessions fills one room.
//!
//! First every session connects and says hello, with no room: that is the
//! baseline, what admitting the crowd costs without a room, and the idle
//! memory of the same run. Then the sessions join one room at `--join-rate`
//! joins per second (open loop: each join is sent at its scheduled time and
//! its latency counts from that time, so a slow server cannot slow the
//! crowd down). After `--hold` seconds of settling, one member publishes a
//! message, which must reach every member once.
//!
//! The report: time to connect the crowd, time to admit it into the room,
//! join latency percentiles, server memory per connection (idle) and per
//! member (after the room settled), the presence bytes that every member
//! received, summed and divided by the number of joins (what one join costs
//! the room), the bytes of the join answers, and whether the message
//! reached everyone once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Result;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use wtchat_protocol::{ChatMessage, ClientFrame, ClientMessage, Member, PresenceDiff, ServerMessage, encode};

use crate::dial::{Received, Session};
use crate::load::{BenchArgs, connect_all, joined_tag, server_rss_bytes, transport_name, variant_tag};
use crate::procstat;
use crate::report::{self, Latency};

/// The body of the message that must reach every member.
const CHECK: &str = "crowd-check";

/// The results of a join run.
#[derive(Debug, Clone, Serialize)]
pub struct JoinReport {
    /// Always `join`.
    pub mode: &'static str,
    /// `ws` or `wt`.
    pub transport: &'static str,
    /// Sessions in the crowd.
    pub members: usize,
    /// Joins per second asked for (0: all at once).
    pub join_rate: f64,
    /// Time to connect and greet the crowd, with no room.
    pub connect_s: f64,
    /// Time from the first scheduled join to the last join answer.
    pub join_s: f64,
    /// `join_s` over the time the schedule itself takes (1.0: the server
    /// kept up with the schedule; 0 when everyone joined at once).
    pub join_s_over_schedule: Option<f64>,
    /// Join latency: from a join's scheduled time to its answer.
    pub join_latency_ms: Latency,
    /// Joins never answered (the session closed first).
    pub not_joined: usize,
    /// Server memory per connection of the crowd before it joined.
    pub server_rss_idle_per_connection_kb: Option<f64>,
    /// Server memory per member once the room settled, counted from before
    /// the crowd connected.
    pub server_rss_per_member_kb: Option<f64>,
    /// Bytes of presence frames every member received while the crowd
    /// joined, summed over the room, per join.
    pub presence_bytes_per_join: f64,
    /// Bytes of the join answers, per join.
    pub joined_bytes_per_join: f64,
    /// Members that received the check message.
    pub check_received: usize,
    /// Extra copies of it (0 when every member received it once).
    pub check_duplicates: usize,
    /// Time from the check message's publish to its last copy received:
    /// how long one message takes to reach the whole room.
    pub check_s: f64,
    /// UDP datagrams the kernel dropped for full socket buffers, on the
    /// whole machine, from the first join to the end of the check: over
    /// WebTransport each one is a QUIC packet that must wait to be sent
    /// again, which shows as a long tail.
    pub udp_drops: Option<u64>,
}

/// What the members do, as the controller says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Join at the scheduled time and keep reading.
    Join,
    /// The first member publishes the check message.
    Check,
    /// Leave.
    Stop,
}

/// What every member shares with the controller.
struct Crowd {
    /// When the first join is due.
    start: Instant,
    /// Seconds between scheduled joins.
    spacing_s: f64,
    /// The room.
    room: String,
    /// Tags of the frames counted.
    joined_tag: u8,
    presence_tag: u8,
    message_tag: u8,
    /// Join latency in microseconds, from every member.
    latency_us: Mutex<Histogram<u64>>,
    /// Joins answered, and joins that never will be.
    joined: AtomicUsize,
    failed: AtomicUsize,
    /// The latest answer, in nanoseconds after `start`.
    last_answer_ns: AtomicU64,
    /// Bytes received, by kind.
    presence_bytes: AtomicU64,
    joined_bytes: AtomicU64,
    /// Copies of the check message received.
    check_copies: AtomicUsize,
    /// Members that received it at least once.
    check_received: AtomicUsize,
    /// When the last of them received it, in ns since `start`.
    check_last_ns: AtomicU64,
}

/// Runs a join benchmark and prints its report.
pub async fn run(args: &BenchArgs) -> Result<JoinReport> {
    let members = args.subscribers.max(1);
    let before = server_rss_bytes(args);
    let connect_started = Instant::now();
    let sessions = connect_all(args, members).await?;
    let connect_s = connect_started.elapsed().as_secs_f64();
    if !args.quiet {
        eprintln!("connected and greeted {members} sessions in {connect_s:.2} s; settling");
    }
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let idle = server_rss_bytes(args);
    let udp_before = procstat::udp_buffer_errors();

    let spacing_s = if args.join_rate > 0.0 { 1.0 / args.join_rate } else { 0.0 };
    let empty = || Member { session_id: 0, name: String::new() };
    let crowd = Arc::new(Crowd {
        start: Instant::now() + Duration::from_millis(100),
        spacing_s,
        room: args.room.clone(),
        joined_tag: joined_tag(),
        presence_tag: variant_tag(&ServerMessage::PresenceDiff(PresenceDiff {
            room: String::new(),
            member_count: 0,
            joins: 0,
            leaves: 0,
            changes: Vec::new(),
        })),
        message_tag: variant_tag(&ServerMessage::Message(ChatMessage {
            room: String::new(),
            seq: 0,
            sender: empty(),
            sent_at_ms: 0,
            body: String::new(),
        })),
        latency_us: Mutex::new(
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
        ),
        joined: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        last_answer_ns: AtomicU64::new(0),
        presence_bytes: AtomicU64::new(0),
        joined_bytes: AtomicU64::new(0),
        check_copies: AtomicUsize::new(0),
        check_received: AtomicUsize::new(0),
        check_last_ns: AtomicU64::new(0),
    });
    let (phase, phase_receiver) = watch::channel(Phase::Join);
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(index, session)| tokio::spawn(member(index, session, crowd.clone(), phase_receiver.clone())))
        .collect();

    // Everyone is answered, or the schedule plus a minute passes.
    let patience = Duration::from_secs_f64(spacing_s * members as f64) + Duration::from_secs(60);
    while crowd.joined.load(Ordering::Relaxed) + crowd.failed.load(Ordering::Relaxed) < members
        && crowd.start.elapsed() < patience
    {
        if !args.quiet {
            eprint!("\r  joined {} of {members}", crowd.joined.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let joined = crowd.joined.load(Ordering::Relaxed);
    let join_s = crowd.last_answer_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let joined_bytes = crowd.joined_bytes.load(Ordering::Relaxed);
    if !args.quiet {
        eprintln!("\r  joined {joined} of {members} in {join_s:.2} s; settling");
    }
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let settled = server_rss_bytes(args);
    // Read after settling: the server tells presence once per interval, so
    // the last joins are told after their answers.
    let presence_bytes = crowd.presence_bytes.load(Ordering::Relaxed);

    phase.send_replace(Phase::Check);
    let check_sent = crowd.start.elapsed();
    // Wait while copies keep arriving: a fan-out to tens of thousands of
    // sessions sharing two cores with their server takes a while, and a
    // fixed deadline would report slow delivery as loss.
    let (mut seen, mut progress_at) = (0, Instant::now());
    let cap = Instant::now() + Duration::from_secs(120);
    while seen < joined && progress_at.elapsed() < Duration::from_secs(10) && Instant::now() < cap {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now_seen = crowd.check_received.load(Ordering::Relaxed);
        if now_seen > seen {
            (seen, progress_at) = (now_seen, Instant::now());
        }
    }
    let udp_drops =
        udp_before.zip(procstat::udp_buffer_errors()).map(|(before, after)| after.since(before).total());
    let check_s = Duration::from_nanos(crowd.check_last_ns.load(Ordering::Relaxed))
        .saturating_sub(check_sent)
        .as_secs_f64();
    phase.send_replace(Phase::Stop);
    for task in tasks {
        let _ = task.await;
    }

    let schedule_s = spacing_s * members.saturating_sub(1) as f64;
    let per = |bytes: u64| bytes as f64 / members as f64;
    let kb = |delta: u64| delta as f64 / 1024.0 / members as f64;
    let report = JoinReport {
        mode: "join",
        transport: transport_name(args.transport),
        members,
        join_rate: args.join_rate,
        connect_s,
        join_s,
        join_s_over_schedule: (schedule_s > 0.0).then(|| join_s / schedule_s),
        join_latency_ms: Latency::from_micros(
            &crowd.latency_us.lock().unwrap_or_else(PoisonError::into_inner),
        ),
        not_joined: members - joined,
        server_rss_idle_per_connection_kb: before.zip(idle).map(|(b, i)| kb(i.saturating_sub(b))),
        server_rss_per_member_kb: before.zip(settled).map(|(b, s)| kb(s.saturating_sub(b))),
        presence_bytes_per_join: per(presence_bytes),
        joined_bytes_per_join: per(joined_bytes),
        check_received: crowd.check_received.load(Ordering::Relaxed),
        check_duplicates: crowd.check_copies.load(Ordering::Relaxed)
            - crowd.check_received.load(Ordering::Relaxed),
        check_s,
        udp_drops,
    };
    let optional = |value: Option<f64>| value.map_or("-".into(), |v| format!("{v:.2}"));
    println!(
        "join: {} {} members; connect {:.2} s, join {:.2} s (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} not joined); \
         server RSS {} KB per idle connection, {} KB per member; presence {:.0} B and join answers {:.0} B per join; \
         check message reached {} of {} in {:.2} s ({} duplicates); {} UDP datagrams dropped for full buffers",
        report.members,
        report.transport,
        report.connect_s,
        report.join_s,
        report.join_latency_ms.p50,
        report.join_latency_ms.p99,
        report.join_latency_ms.max,
        report.not_joined,
        optional(report.server_rss_idle_per_connection_kb),
        optional(report.server_rss_per_member_kb),
        report.presence_bytes_per_join,
        report.joined_bytes_per_join,
        report.check_received,
        joined,
        report.check_s,
        report.check_duplicates,
        report.udp_drops.map_or("-".into(), |d| d.to_string()),
    );
    if let Some(path) = &args.json {
        report::append_json(path, &report)?;
    }
    Ok(report)
}

/// One member of the crowd: joins at its time, counts what it receives,
/// keeps the heartbeat, and publishes the check message when it is the
/// first and is told to.
async fn member(index: usize, session: Session, crowd: Arc<Crowd>, mut phase: watch::Receiver<Phase>) {
    let Session { welcome, mut outgoing, mut incoming, .. } = session;
    let mut request_id = 0u32;
    let mut frame = |message: ClientMessage| {
        request_id += 1;
        encode(&ClientFrame { request_id, message })
    };
    let due = crowd.start + Duration::from_secs_f64(crowd.spacing_s * index as f64);
    tokio::time::sleep_until(due).await;
    let join =
        ClientMessage::Join { room: crowd.room.clone(), display_name: format!("m{index}"), resume: None };
    let mut answered = false;
    if outgoing.send(&frame(join)).await.is_err() {
        crowd.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut ping =
        tokio::time::interval(Duration::from_millis(u64::from(welcome.heartbeat_interval_ms.max(100))));
    let mut copies = 0usize;
    loop {
        tokio::select! {
            received = incoming.next() => match received {
                Some(Received::Frame(body)) if body.len() > 1 => {
                    let tag = body[1];
                    if tag == crowd.presence_tag {
                        crowd.presence_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    } else if tag == crowd.joined_tag && !answered {
                        answered = true;
                        let now = Instant::now();
                        let latency_us = now.saturating_duration_since(due).as_micros() as u64;
                        let _ = crowd.latency_us.lock().unwrap_or_else(PoisonError::into_inner).record(latency_us.max(1));
                        let since_start = now.saturating_duration_since(crowd.start).as_nanos() as u64;
                        crowd.last_answer_ns.fetch_max(since_start, Ordering::Relaxed);
                        crowd.joined_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                        crowd.joined.fetch_add(1, Ordering::Relaxed);
                    } else if tag == crowd.message_tag && body.windows(CHECK.len()).any(|w| w == CHECK.as_bytes()) {
                        copies += 1;
                        crowd.check_copies.fetch_add(1, Ordering::Relaxed);
                        if copies == 1 {
                            crowd.check_received.fetch_add(1, Ordering::Relaxed);
                            let since_start = crowd.start.elapsed().as_nanos() as u64;
                            crowd.check_last_ns.fetch_max(since_start, Ordering::Relaxed);
                        }
                    }
                }
                Some(Received::Frame(_)) => {}
                Some(Received::Closed(_)) | None => {
                    if !answered {
                        crowd.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
            },
            _ = ping.tick() => {
                if outgoing.send(&frame(ClientMessage::Ping { nonce: 0 })).await.is_err() && !answered {
                    crowd.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Check if index == 0 => {
                        let publish = ClientMessage::Publish { room: crowd.room.clone(), body: CHECK.into(), message_id: None };
                        let _ = outgoing.send(&frame(publish)).await;
                    }
                    Phase::Stop => return,
                    Phase::Join | Phase::Check => {}
                }
            }
        }
    }
}
