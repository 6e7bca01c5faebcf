//! What a deployment of several servers carries, measured: the highest
//! publish rate many small rooms sustain through one Redis, three shards
//! and a three-master Redis Cluster, and the deliveries per second of one
//! large room split over two and three servers, each as a ratio to its
//! baseline (one Redis; one server in memory), with where the time goes
//! (the servers' CPU, and each Redis's own account of its scripts, CPU and
//! latency).

use std::fmt::Write as _;

use serde_json::Value;

use crate::bench::{Section, Workload};
use crate::redis_deployment::Deployment;
use crate::results::{figure, lines_of, ramp_reach, target_lines};

/// The latency bound a step must meet to count.
const P99_MS: f64 = 50.0;

/// The small-room loads, and the large-room splits.
pub(crate) fn workloads(quick: bool) -> Vec<Workload> {
    let step_seconds = if quick { "2" } else { "5" };
    let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    // 2,000 sessions in rooms of five, one publisher each, climbing from a
    // rate every deployment carries by half again each step.
    let small = args(&[
        "--transport",
        "ws",
        "--mode",
        "ramp",
        "-s",
        "2000",
        "--room-size",
        "5",
        "-b",
        "128",
        "-r",
        "1500",
        "--ramp-factor",
        "1.5",
        "--ramp-max",
        if quick { "3500" } else { "12000" },
        "-d",
        step_seconds,
        "--quiet",
    ]);
    // The large room of the WebSocket ramp, split over the servers.
    let large = args(&[
        "--transport",
        "ws",
        "--mode",
        "ramp",
        "-s",
        "1000",
        "-p",
        "10",
        "-b",
        "128",
        "-r",
        "25",
        "--ramp-factor",
        "1.5",
        "--ramp-max",
        if quick { "60" } else { "4000" },
        "-d",
        step_seconds,
        "--quiet",
    ]);
    let mut list = Vec::new();
    for (name, title, servers, redis) in [
        ("cap-memory", "Small rooms: one server, in memory", 1, Deployment::None),
        ("cap-redis-1", "Small rooms: two servers, one Redis", 2, Deployment::One),
        ("cap-redis-shards", "Small rooms: two servers, three Redis shards", 2, Deployment::Shards(3)),
        (
            "cap-redis-cluster",
            "Small rooms: two servers, a three-master Redis Cluster",
            2,
            Deployment::Cluster(3),
        ),
    ] {
        list.push(Workload { name, title, server: &[], bench: small.clone(), servers, redis });
    }
    for (name, title, servers) in [
        ("cap-split-2", "A room of 1,000 split over two servers, one Redis", 2),
        ("cap-split-3", "A room of 1,000 split over three servers, one Redis", 3),
    ] {
        list.push(Workload {
            name,
            title,
            server: &[],
            bench: large.clone(),
            servers,
            redis: Deployment::One,
        });
    }
    list
}

/// A ramp's highest step with none lost and p99 within the bound.
fn best_step<'a>(lines: &[&'a Value]) -> Option<&'a Value> {
    lines
        .iter()
        .filter(|v| figure(v, &["delivery_ratio"]) >= 0.99 && figure(v, &["latency_ms", "p99"]) <= P99_MS)
        .max_by(|a, b| {
            figure(a, &["achieved_deliveries_per_s"]).total_cmp(&figure(b, &["achieved_deliveries_per_s"]))
        })
        .copied()
}

/// The capacity table, with the ratios and where the time went.
pub(crate) fn table(sections: &[Section]) -> String {
    let mut md = format!(
        "Each row is a ramp (5 s steps, the rate raised by half each step) on fresh servers and Redis; a \
         step counts when nothing is lost and p99 ≤ {P99_MS:.0} ms. Everything, load generator included, \
         shares this machine's cores, so these ratios say how each deployment compares here, not what a \
         Redis core carries on a machine of its own. The CPU per delivery counts every wtchat process and \
         every `redis-server` during the step; Redis's own share is from its `INFO cpu` over the whole \
         ramp (joins included) per script it ran, and the script time from `INFO commandstats` \
         (`EVALSHA`). `LATENCY LATEST` is the worst event Redis recorded above 1 ms.\n\n\
         Many small rooms (2,000 sessions in rooms of 5 members, one publisher per room, 128-byte \
         messages over WebSocket); the baseline is one Redis:\n\n\
         | deployment | highest messages/s | deliveries/s | ÷ one Redis | p99 ms there | wtchat and Redis CPU-s per million deliveries there | load generator, same | Redis: µs per script | Redis CPU-s per million scripts | Redis worst latency, ms |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    );
    let reach =
        |name: &str| best_step(&lines_of(sections, name)).map(|v| figure(v, &["achieved_deliveries_per_s"]));
    let baseline = reach("cap-redis-1");
    for name in ["cap-redis-1", "cap-redis-shards", "cap-redis-cluster", "cap-memory"] {
        let Some(section) = sections.iter().find(|(w, ..)| w.name == name) else { continue };
        let deployment = section.0.redis.describe();
        let setup = if name == "cap-memory" {
            "one server, in memory".to_owned()
        } else {
            format!("two servers, {deployment}")
        };
        let _ = writeln!(md, "{}", row(&setup, sections, name, baseline));
    }
    let _ = write!(
        md,
        "\nOne room of 1,000 members (10 publishers) split over several servers through one Redis; the \
         baseline is the same ramp on one server in memory (`ws-ramp` above):\n\n\
         | setup | highest deliveries/s | ÷ one server in memory | p99 ms there | wtchat and Redis CPU-s per million deliveries there | load generator, same | Redis: µs per script | Redis CPU-s per million scripts | Redis worst latency, ms |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    // The in-memory ramp's figure as the WebSocket table gives it: the
    // median over its rounds of each round's highest good step.
    let memory_ramp = lines_of(sections, "ws-ramp");
    let memory = Some(ramp_reach(&memory_ramp, P99_MS)).filter(|reach| *reach > 0.0);
    if let Some(memory) = memory {
        let rounds = memory_ramp.iter().filter(|v| figure(v, &["step"]) == 0.0).count();
        let _ = writeln!(
            md,
            "| one server, in memory (median of {rounds} rounds) | {memory:.0} | 1.00× | | | | – | – | – |"
        );
    }
    for (name, setup) in
        [("cap-split-2", "two servers, one Redis"), ("cap-split-3", "three servers, one Redis")]
    {
        let lines = lines_of(sections, name);
        if lines.is_empty() {
            continue;
        }
        let redis = target_lines(sections, name, "redis").first().copied();
        let _ = writeln!(md, "{}", large_row(setup, &lines, redis, memory));
    }
    md
}

/// One small-rooms row.
fn row(setup: &str, sections: &[Section], name: &str, baseline: Option<f64>) -> String {
    let lines = lines_of(sections, name);
    let redis = target_lines(sections, name, "redis").first().copied();
    let Some(best) = best_step(&lines) else {
        return format!("| {setup} | no step met the bound | | | | | | | | |");
    };
    let deliveries = figure(best, &["achieved_deliveries_per_s"]);
    let ratio = baseline.filter(|b| *b > 0.0).map_or("n/a".into(), |b| format!("{:.2}×", deliveries / b));
    format!(
        "| {setup} | {:.0} | {deliveries:.0} | {ratio} | {:.1} | {:.1} | {:.1} | {} |",
        figure(best, &["offered_messages_per_s"]),
        figure(best, &["latency_ms", "p99"]),
        figure(best, &["server_cpu_s_per_million"]),
        figure(best, &["loadgen_cpu_s_per_million"]),
        redis_columns(redis),
    )
}

/// One large-room row.
fn large_row(setup: &str, lines: &[&Value], redis: Option<&Value>, baseline: Option<f64>) -> String {
    let Some(best) = best_step(lines) else {
        return format!("| {setup} | no step met the bound | | | | | | | |");
    };
    let deliveries = figure(best, &["achieved_deliveries_per_s"]);
    let ratio = baseline.filter(|b| *b > 0.0).map_or("n/a".into(), |b| format!("{:.2}×", deliveries / b));
    format!(
        "| {setup} | {deliveries:.0} | {ratio} | {:.1} | {:.1} | {:.1} | {} |",
        figure(best, &["latency_ms", "p99"]),
        figure(best, &["server_cpu_s_per_million"]),
        figure(best, &["loadgen_cpu_s_per_million"]),
        redis_columns(redis),
    )
}

/// Redis's script time, CPU per script and worst latency, or blanks.
fn redis_columns(redis: Option<&Value>) -> String {
    let Some(redis) = redis else { return "– | – | –".into() };
    let calls = figure(redis, &["redis", "evalsha_calls"]);
    let per_million = if calls > 0.0 { figure(redis, &["redis", "cpu_s"]) / calls * 1e6 } else { f64::NAN };
    format!(
        "{:.1} | {per_million:.0} | {:.0}",
        figure(redis, &["redis", "evalsha_usec_per_call"]),
        figure(redis, &["redis", "latency_max_ms"]),
    )
}
