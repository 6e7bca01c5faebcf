//! `cargo xtask bench`: runs every benchmark workload against a fresh
//! release server and writes BENCHMARKS.md with the figures, the commands
//! that reproduce each, the plots, and a CPU profile of the server.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::redis_deployment::{Deployment, RedisDeployment};
use crate::results::{figure, lines_of, median, ramp_reach};
use crate::{Result, cargo, root, step, target_dir};

/// Server options every workload needs: the load comes from a few
/// publishers and thousands of sessions on one address, far past the limits
/// meant for the public.
const BENCH_SERVER: &[&str] = &[
    "--publish-rate-per-sec",
    "1000000",
    "--publish-burst",
    "1000000",
    "--max-connections-per-ip",
    "0",
    "--max-new-connections-per-sec",
    "0",
];

/// The WebSocket loads run again, right after the server, against the
/// textbook server and the floor (`wtchat bench --versus`), so that every
/// WebSocket figure has a baseline measured minutes apart on the same
/// machine.
const VERSUS: &[&str] = &["--versus", "textbook", "--versus", "floor"];

/// One workload: a name, the server's extra flags, the bench's arguments.
pub(crate) struct Workload {
    pub(crate) name: &'static str,
    pub(crate) title: &'static str,
    pub(crate) server: &'static [&'static str],
    pub(crate) bench: Vec<String>,
    /// How many servers share the rooms.
    pub(crate) servers: usize,
    /// The Redis they share them through, started for the workload.
    pub(crate) redis: Deployment,
}

/// How many times the WebSocket/WebTransport pair at 100,000 deliveries/s
/// runs, alternating, in a full run: the machine is shared and noisy, so
/// the comparison uses the median of each.
const ROUNDS: usize = 3;

fn workloads(quick: bool) -> Vec<Workload> {
    let seconds = if quick { "3" } else { "10" };
    let step_seconds = if quick { "2" } else { "5" };
    let idle = if quick { "2000" } else { "10000" };
    let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let room = ["-s", "1000", "-p", "10", "-b", "128"];
    let run = |transport: &str| {
        args(
            &[&["--transport", transport, "--mode", "run", "-r", "100", "-d", seconds][..], &room[..]]
                .concat(),
        )
    };
    // Both ramps start at the same everyday load and climb by the same
    // factor, so that their steps line up.
    let ramp = |transport: &str, plot: &str| {
        args(
            &[
                &["--transport", transport, "--mode", "ramp", "-r", "25", "--ramp-factor", "1.5"][..],
                &["--ramp-max", "4000", "-d", step_seconds, "--plot", plot][..],
                &room[..],
            ]
            .concat(),
        )
    };
    let mut list = Vec::new();
    // The pair at 100,000 deliveries/s alternates, each on a fresh server,
    // so that both meet the same machine.
    for _ in 0..if quick { 1 } else { ROUNDS } {
        list.push(Workload {
            name: "ws-100",
            title: "WebSocket, 100 messages/s (100,000 deliveries/s)",
            server: &[],
            servers: 1,
            redis: Deployment::None,
            bench: [run("ws"), args(VERSUS)].concat(),
        });
        list.push(Workload {
            name: "wt-100",
            title: "WebTransport, 100 messages/s (100,000 deliveries/s)",
            server: &[],
            servers: 1,
            redis: Deployment::None,
            bench: run("wt"),
        });
    }
    // The WebSocket ramp, against the yardsticks, runs in rounds too: one
    // round's highest good step swings by a step or more on this machine.
    for _ in 0..if quick { 1 } else { ROUNDS } {
        list.push(Workload {
            name: "ws-ramp",
            title: "WebSocket ramp",
            server: &[],
            servers: 1,
            redis: Deployment::None,
            bench: [ramp("ws", "docs/bench/ramp-ws.png"), args(VERSUS)].concat(),
        });
    }
    list.push(Workload {
        name: "wt-ramp",
        title: "WebTransport ramp",
        server: &[],
        servers: 1,
        redis: Deployment::None,
        bench: ramp("wt", "docs/bench/ramp-wt.png"),
    });
    // Idle connections must not time out while thousands of others connect.
    const IDLE_SERVER: &[&str] = &["--heartbeat-interval-ms", "60000", "--heartbeat-timeout-ms", "300000"];
    for (name, title, transport) in
        [("idle-ws", "Idle WebSocket connections", "ws"), ("idle-wt", "Idle WebTransport sessions", "wt")]
    {
        list.push(Workload {
            name,
            title,
            server: IDLE_SERVER,
            servers: 1,
            redis: Deployment::None,
            bench: args(&["--transport", transport, "--mode", "idle", "--connections", idle, "--hold", "3"]),
        });
    }
    // A crowd filling one room (issue 15): the presence and join costs of
    // a big room, against the same crowd connecting with no room.
    let mut crowds = vec![("join-ws-1k", "A crowd of 1,000 joining one room over WebSocket", "ws", "1000")];
    if !quick {
        crowds.push(("join-ws-10k", "A crowd of 10,000 joining one room over WebSocket", "ws", "10000"));
        crowds.push(("join-wt-10k", "A crowd of 10,000 joining one room over WebTransport", "wt", "10000"));
        // 50,000 WebSocket sessions need 50,000 descriptors in the server
        // and as many in the generator. WebTransport sessions share one UDP
        // socket in the server and a few in the generator, so a machine
        // whose limit is lower fills the room of 50,000 over WebTransport.
        crowds.push(if crate::large_rooms::open_files_limit() >= 110_000 {
            ("join-ws-50k", "A crowd of 50,000 joining one room over WebSocket", "ws", "50000")
        } else {
            (
                "join-wt-50k",
                "A crowd of 50,000 joining one room over WebTransport (the open-files limit rules out 50,000 over WebSocket)",
                "wt",
                "50000",
            )
        });
    }
    for (name, title, transport, members) in crowds {
        list.push(Workload {
            name,
            title,
            server: IDLE_SERVER,
            servers: 1,
            redis: Deployment::None,
            bench: args(&["--transport", transport, "--mode", "join", "-s", members, "--join-rate", "1000"]),
        });
    }
    // The same crowd joining all at once: how long admitting it takes
    // beside connecting it.
    list.push(Workload {
        name: "join-ws-burst",
        title: "A crowd joining one room all at once over WebSocket",
        server: IDLE_SERVER,
        servers: 1,
        redis: Deployment::None,
        bench: args(&["--transport", "ws", "--mode", "join", "-s", idle, "--join-rate", "0"]),
    });
    // The ws-100 load again, through Redis: on one server, then with the
    // room split over two (members alternate between them).
    for (name, title, servers) in [
        ("redis-1", "WebSocket, 100 messages/s, one server through Redis", 1),
        ("redis-split", "WebSocket, 100 messages/s, the room split over two servers through Redis", 2),
    ] {
        list.push(Workload { name, title, server: &[], servers, redis: Deployment::One, bench: run("ws") });
    }
    list.extend(crate::capacity::workloads(quick));
    list
}

/// A workload's results: every step of every round, the command that
/// reproduces it, and the tables the bench printed.
pub(crate) type Section = (Workload, Vec<Value>, String, String);

/// Runs the workloads and writes BENCHMARKS.md; with `only`, runs the
/// workloads whose names start with it and prints the report instead, for
/// trying one part.
pub fn run(quick: bool, only: Option<&str>) -> Result {
    step(
        "build the release server",
        cargo().args(["build", "--release", "--package", "wtchat", "--bin", "wtchat"]),
    )?;
    let wtchat = target_dir().join("release").join("wtchat");
    let out = root().join("docs").join("bench");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    // A partial run keeps its results apart from the full run's.
    let results =
        if only.is_some() { target_dir().join("bench-only.jsonl") } else { out.join("results.jsonl") };
    let _ = std::fs::remove_file(&results);
    let mut sections: Vec<Section> = Vec::new();
    for workload in workloads(quick).into_iter().filter(|w| only.is_none_or(|only| w.name.starts_with(only)))
    {
        eprintln!("\n==> benchmark {}: {}", workload.name, workload.title);
        let redis = RedisDeployment::start(workload.redis)?;
        let mut flags: Vec<String> = workload.server.iter().map(|f| (*f).to_owned()).collect();
        flags.extend(redis.iter().flat_map(RedisDeployment::flags));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let servers =
            (0..workload.servers).map(|_| Server::start(&wtchat, &flags)).collect::<Result<Vec<_>>>()?;
        let before = std::fs::read_to_string(&results).unwrap_or_default().lines().count();
        let mut command = Command::new(&wtchat);
        command.current_dir(root()).arg("bench").args(["--server", &servers[0].address]);
        for server in &servers[1..] {
            command.args(["--also-server", &server.address]);
        }
        // The CPU of every wtchat process and every Redis; Redis also
        // reports its own (`RedisDeployment::stats`).
        for pid in servers.iter().map(Server::pid).chain(redis.iter().flat_map(RedisDeployment::pids)) {
            command.args(["--server-pid", &pid.to_string()]);
        }
        command.args(&workload.bench).arg("--json").arg(&results);
        let output = command.stderr(Stdio::inherit()).output().map_err(|e| e.to_string())?;
        let table = String::from_utf8_lossy(&output.stdout).into_owned();
        print!("{table}");
        drop(servers);
        let redis_stats = redis.as_ref().map(|redis| redis.stats(workload.name));
        drop(redis);
        if let Some(stats) = &redis_stats {
            use std::io::Write as _;
            let mut file =
                std::fs::OpenOptions::new().append(true).open(&results).map_err(|e| e.to_string())?;
            writeln!(file, "{stats}").map_err(|e| e.to_string())?;
        }
        if !output.status.success() {
            return Err(format!("benchmark {} failed", workload.name));
        }
        let lines: Vec<Value> = std::fs::read_to_string(&results)
            .unwrap_or_default()
            .lines()
            .skip(before)
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let command_line = reproduce(&workload);
        // A workload run again (a round of the alternating pair) adds its
        // results and its table to the first run's section.
        match sections.iter_mut().find(|(w, ..): &&mut Section| w.name == workload.name) {
            Some((_, all, _, tables)) => {
                all.extend(lines);
                tables.push_str(&table);
            }
            None => sections.push((workload, lines, command_line, table)),
        }
    }
    // One profile where the latency target is set and one near the
    // throughput knee: the hot spots differ, since batching grows with load.
    let perf_works = Command::new("perf")
        .args(["stat", "-e", "task-clock", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut profiles = String::new();
    if only.is_some() {
        profiles.push_str("(no profile with --only)\n");
    } else if perf_works {
        for (transport, rate) in [("ws", 100), ("ws", 1000), ("wt", 100)] {
            profiles.push_str(&profile(&wtchat, transport, rate, quick)?);
        }
    } else {
        profiles.push_str("perf is not available on this machine, so no profile was recorded.\n");
    }
    write_report(&sections, &profiles, quick, only.is_some())
}

/// The commands that reproduce a workload by hand.
fn reproduce(workload: &Workload) -> String {
    let redis_url = match workload.redis {
        Deployment::None => None,
        Deployment::One => Some("redis://127.0.0.1:6379".to_owned()),
        Deployment::Shards(count) | Deployment::Cluster(count) => {
            Some((0..count).map(|i| format!("redis://127.0.0.1:{}", 7000 + i)).collect::<Vec<_>>().join(","))
        }
    };
    let Some(redis_url) = redis_url else {
        return format!(
            "wtchat serve --listen 127.0.0.1:PORT {}{}\n\
             wtchat bench --server 127.0.0.1:PORT --server-pid PID {}",
            BENCH_SERVER.join(" "),
            workload.server.iter().map(|a| format!(" {a}")).collect::<String>(),
            workload.bench.join(" ")
        );
    };
    let redis = match workload.redis {
        Deployment::Shards(count) => (0..count)
            .map(|i| format!("redis-server --port {} --save '' --appendonly no &\n", 7000 + i))
            .collect::<String>(),
        Deployment::Cluster(count) => format!(
            "# {count} nodes started with --cluster-enabled yes on ports 7000…, then:\n\
             redis-cli --cluster create {} --cluster-yes\n",
            (0..count).map(|i| format!("127.0.0.1:{}", 7000 + i)).collect::<Vec<_>>().join(" ")
        ),
        _ => "redis-server --port 6379 --save '' --appendonly no &\n".to_owned(),
    };
    let cluster = if matches!(workload.redis, Deployment::Cluster(_)) { " --redis-cluster" } else { "" };
    let ports: Vec<String> = (1..=workload.servers).map(|i| format!("PORT{i}")).collect();
    let serve: String = ports
        .iter()
        .map(|port| {
            format!(
                "wtchat serve --listen 127.0.0.1:{port} {} --redis-url {redis_url}{cluster} &\n",
                BENCH_SERVER.join(" ")
            )
        })
        .collect();
    let also: String = ports[1..].iter().map(|p| format!(" --also-server 127.0.0.1:{p}")).collect();
    let pids: String = ports.iter().map(|p| format!(" --server-pid PID_{p}")).collect();
    format!("{redis}{serve}wtchat bench --server 127.0.0.1:PORT1{also}{pids} {}", workload.bench.join(" "))
}

/// Records where the server's CPU time goes while `rate` messages/s go to a
/// room of 1000 over `transport` (`ws` or `wt`).
fn profile(wtchat: &Path, transport: &str, rate: u32, quick: bool) -> Result<String> {
    let deliveries = format_thousands(u64::from(rate) * 1000);
    let over = if transport == "wt" { "WebTransport" } else { "WebSocket" };
    eprintln!("\n==> profile the server at {deliveries} deliveries/s over {over}");
    let server = Server::start(wtchat, &[])?;
    let seconds = if quick { "6" } else { "10" };
    let mut bench = Command::new(wtchat)
        .args([
            "bench",
            "--server",
            &server.address,
            "--transport",
            transport,
            "-s",
            "1000",
            "-p",
            "10",
            "-r",
            &rate.to_string(),
        ])
        .args(["-d", seconds, "--quiet", "--server-pid", &server.pid().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(3));
    let data = target_dir().join("wtchat-bench-perf.data");
    let recorded = Command::new("perf")
        .args(["record", "-F", "999", "-g", "-p", &server.pid().to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    let _ = bench.wait();
    drop(server);
    if !recorded.success() {
        return Ok("perf could not record the server here, so no profile was recorded.\n".into());
    }
    let report = Command::new("perf")
        .args(["report", "--no-children", "--sort", "symbol", "--stdio", "-g", "none", "-i"])
        .arg(&data)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&report.stdout);
    let top: Vec<String> = text
        .lines()
        .filter(|line| line.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()))
        .take(25)
        .map(|line| {
            // perf pads each row with empty columns shown as "-".
            let words: Vec<&str> = line.split_whitespace().collect();
            let end = words.iter().rposition(|w| *w != "-").map_or(0, |i| i + 1);
            words[..end].join(" ")
        })
        .collect();
    Ok(format!(
        "`perf record -F 999 -g -p <server>` for 3 s while `wtchat bench` offered {deliveries} deliveries/s \
         over {over}; the 25 hottest symbols (self time, `[k]` is the kernel):\n\n```\n{}\n```\n\n",
        top.join("\n")
    ))
}

/// 1000000 as "1,000,000".
fn format_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn write_report(sections: &[Section], profile: &str, quick: bool, to_stdout: bool) -> Result {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `cargo xtask bench`{} on {cores} cores ({cpu}, Linux {}). The load generator \
         (`wtchat bench`) runs on the same machine as the server, over loopback, and its own CPU time is \
         reported beside the server's. Each workload starts a fresh release server.\n",
        if quick { " --quick (short runs)" } else { "" },
        kernel.trim()
    );
    let _ = writeln!(
        md,
        "Raw results, one JSON object per step: [`docs/bench/results.jsonl`](docs/bench/results.jsonl).\n"
    );
    let _ = writeln!(
        md,
        "## WebSocket against the textbook server and the floor\n\n{}",
        crate::yardsticks::comparison(sections)
    );
    let _ = writeln!(md, "## WebTransport against WebSocket\n\n{}", targets(sections));
    let _ = writeln!(md, "## Scale-out through Redis\n\n{}", scale_out(sections));
    let _ = writeln!(md, "## Capacity of a deployment\n\n{}", crate::capacity::table(sections));
    let _ = writeln!(md, "## Large rooms\n\n{}", crate::large_rooms::crowds(sections));
    for (workload, lines, command, table) in sections {
        let _ = writeln!(md, "## {}\n", workload.title);
        let _ = writeln!(md, "```sh\n{command}\n```\n");
        let _ = writeln!(md, "```\n{}```\n", table);
        if workload.name.ends_with("ramp") {
            let plot = if workload.name.starts_with("ws") { "ramp-ws.png" } else { "ramp-wt.png" };
            let _ = writeln!(md, "![latency against load](docs/bench/{plot})\n");
        }
        if lines.is_empty() {
            let _ = writeln!(md, "(no results)\n");
        }
    }
    let _ = writeln!(md, "## Where the time goes\n\n{profile}");
    if let Ok(analysis) = std::fs::read_to_string(root().join("docs").join("bench").join("analysis.md")) {
        let _ = writeln!(md, "{analysis}");
    }
    if to_stdout {
        println!("{md}");
        return Ok(());
    }
    std::fs::write(root().join("BENCHMARKS.md"), md).map_err(|e| e.to_string())?;
    eprintln!("\nwrote BENCHMARKS.md");
    Ok(())
}

/// The same room and load on one in-memory server, on one server through
/// Redis, and split over two servers through Redis, side by side.
fn scale_out(sections: &[Section]) -> String {
    let mut rows = String::from(
        "The `ws-100` load (1000 members, 10 publishers, 100 messages/s of 128 bytes over WebSocket) three \
         ways (medians where a load ran several times). With Redis, the CPU counted is every wtchat process plus `redis-server`.\n\n\
         | setup | deliveries/s | lost | p50 ms | p99 ms | CPU s per million deliveries | vs. one server |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let cost =
        |name: &str| Some(median(sections, name, &["server_cpu_s_per_million"])).filter(|c| !c.is_nan());
    let baseline = cost("ws-100");
    for (name, setup) in [
        ("ws-100", "one server, in memory"),
        ("redis-1", "one server, through Redis"),
        ("redis-split", "two servers, 500 members each, through Redis"),
    ] {
        let lines = lines_of(sections, name);
        if lines.is_empty() {
            continue;
        }
        let ratio = match (cost(name), baseline) {
            (Some(c), Some(b)) if b > 0.0 => format!("{:.2}×", c / b),
            _ => "n/a".into(),
        };
        let _ = writeln!(
            rows,
            "| {setup} | {:.0} | {} | {:.2} | {:.2} | {} | {ratio} |",
            median(sections, name, &["achieved_deliveries_per_s"]),
            lines.iter().map(|v| figure(v, &["lost"])).sum::<f64>(),
            median(sections, name, &["latency_ms", "p50"]),
            median(sections, name, &["latency_ms", "p99"]),
            cost(name).map_or("n/a".into(), |c| format!("{c:.2}")),
        );
    }
    rows
}

/// WebTransport against WebSocket, every figure measured in this run, with
/// the targets of the WebTransport cost work (issue 12) beside them.
fn targets(sections: &[Section]) -> String {
    let mark = |ok: bool| if ok { "met" } else { "**not met**" };
    let ratio = |wt: f64, ws: f64| if ws > 0.0 { wt / ws } else { f64::NAN };
    let rounds = lines_of(sections, "wt-100").len();
    let mut rows = format!(
        "WebSocket is the baseline, measured in the same run on the same machine. Each figure at 100,000 \
         deliveries/s is the median of {rounds} alternating runs per transport, each on a fresh server (the \
         table rows of every run are below). `gen` is the load generator's own CPU, on the same two \
         cores.\n\n\
         | | WebSocket | WebTransport | WebTransport ÷ WebSocket | target | |\n|---|---|---|---|---|---|\n"
    );
    let cpu = |name| median(sections, name, &["server_cpu_s_per_million"]);
    let (ws_cpu, wt_cpu) = (cpu("ws-100"), cpu("wt-100"));
    let _ = writeln!(
        rows,
        "| server CPU-s per million deliveries | {ws_cpu:.2} | {wt_cpu:.2} | {:.2}× | ≤ 1.5× | {} |",
        ratio(wt_cpu, ws_cpu),
        mark(ratio(wt_cpu, ws_cpu) <= 1.5)
    );
    let p99 = |name| median(sections, name, &["latency_ms", "p99"]);
    let (ws_p99, wt_p99) = (p99("ws-100"), p99("wt-100"));
    let _ = writeln!(
        rows,
        "| p99 latency, ms | {ws_p99:.1} | {wt_p99:.1} | {:.2}× | ≤ 2× | {} |",
        ratio(wt_p99, ws_p99),
        mark(ratio(wt_p99, ws_p99) <= 2.0)
    );
    let p50 = |name| median(sections, name, &["latency_ms", "p50"]);
    let _ = writeln!(
        rows,
        "| p50 latency, ms | {:.1} | {:.1} | {:.2}× | | |",
        p50("ws-100"),
        p50("wt-100"),
        ratio(p50("wt-100"), p50("ws-100"))
    );
    let lost = |name| lines_of(sections, name).iter().map(|v| figure(v, &["lost"])).sum::<f64>();
    let _ = writeln!(
        rows,
        "| deliveries lost, all runs | {} | {} | | none | {} |",
        lost("ws-100"),
        lost("wt-100"),
        mark(lost("wt-100") == 0.0)
    );
    let drops = |name| {
        lines_of(sections, name)
            .iter()
            .map(|v| figure(v, &["udp_receive_buffer_errors"]) + figure(v, &["udp_send_buffer_errors"]))
            .sum::<f64>()
    };
    let _ = writeln!(
        rows,
        "| UDP datagrams dropped for full socket buffers, all runs (machine-wide) | {} | {} | | | |",
        drops("ws-100"),
        drops("wt-100")
    );
    let gen_cost = |name| median(sections, name, &["loadgen_cpu_s_per_million"]);
    let _ = writeln!(
        rows,
        "| load generator CPU-s per million deliveries | {:.2} | {:.2} | {:.2}× | | |",
        gen_cost("ws-100"),
        gen_cost("wt-100"),
        ratio(gen_cost("wt-100"), gen_cost("ws-100"))
    );
    let (ws_step, wt_step) =
        (ramp_reach(&lines_of(sections, "ws-ramp"), 50.0), ramp_reach(&lines_of(sections, "wt-ramp"), 50.0));
    let _ = writeln!(
        rows,
        "| ramp: highest deliveries/s with none lost and p99 ≤ 50 ms | {ws_step:.0} | {wt_step:.0} | {:.2}× | ≥ 0.5× | {} |",
        ratio(wt_step, ws_step),
        mark(ratio(wt_step, ws_step) >= 0.5)
    );
    let idle = |name| median(sections, name, &["server_rss_per_connection_kb"]);
    let connections = lines_of(sections, "idle-wt").first().map_or(Value::Null, |v| v["connections"].clone());
    let _ = writeln!(
        rows,
        "| idle: server memory per connection, KB ({connections} each) | {:.1} | {:.1} | {:.2}× | WebTransport ≤ 16 KB | {} |",
        idle("idle-ws"),
        idle("idle-wt"),
        ratio(idle("idle-wt"), idle("idle-ws")),
        mark(idle("idle-wt") <= 16.0)
    );
    rows
}

pub(crate) fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

pub(crate) fn wait_for_port(address: &str, what: &str) -> Result {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(address).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not start"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Waits until a server's `/healthz` answers 200: with Redis, a server
/// turns sessions away until its link is up.
fn wait_healthy(address: &str) -> Result {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut reply = String::new();
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            let _ = write!(stream, "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
            let _ = stream.read_to_string(&mut reply);
        }
        if reply.starts_with("HTTP/1.1 200") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the server at {address} never became healthy"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A release server on a free loopback port, stopped when dropped.
struct Server {
    child: Child,
    address: String,
    _certs: PathBuf,
}

impl Server {
    fn start(wtchat: &Path, extra: &[&str]) -> Result<Self> {
        let address = format!("127.0.0.1:{}", free_port()?);
        let certs = std::env::temp_dir().join(format!("wtchat-bench-certs-{}", std::process::id()));
        let child = Command::new(wtchat)
            .args(["serve", "--listen", &address, "--log", "warn"])
            .args(BENCH_SERVER)
            .arg("--cert-dir")
            .arg(&certs)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        wait_for_port(&address, "the server")?;
        wait_healthy(&address)?;
        Ok(Self { child, address, _certs: certs })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}
