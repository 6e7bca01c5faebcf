//! The large-room workloads' report: crowds joining one room (issue 15).

use std::fmt::Write as _;

use crate::bench::Section;
use crate::results::figure;

/// The crowds filling one room, each beside the same crowd connecting with
/// no room in the same run (its baseline).
pub(crate) fn crowds(sections: &[Section]) -> String {
    let mut rows = String::from(
        "Each crowd first connects and greets with no room (the baseline, and the idle memory of the same \
         run), then joins one room at 1,000 joins/s (the burst: all at once); then one message must reach \
         every member once. `admitted ÷ connect` is the time to connect and join over the time to connect \
         alone, in the same run. `UDP drops` counts datagrams the kernel dropped for full socket buffers \
         on the whole machine from the first join to the end of the check; over WebTransport each is a \
         QUIC packet sent again after a timeout, which shows in the tail.\n\n\
         | crowd | connect s | join s (÷ schedule) | admitted ÷ connect | join p50 / p99 ms | not joined | \
         KB per idle connection | KB per member (÷ idle) | presence B per join | join answer B per join | \
         message reached (in s) | UDP drops |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (_, lines, ..) in sections.iter().filter(|(w, ..)| w.name.starts_with("join-")) {
        let Some(v) = lines.first() else { continue };
        let (idle, member) =
            (figure(v, &["server_rss_idle_per_connection_kb"]), figure(v, &["server_rss_per_member_kb"]));
        let (connect, join) = (figure(v, &["connect_s"]), figure(v, &["join_s"]));
        let _ = writeln!(
            rows,
            "| {} {}{} | {connect:.2} | {join:.2} ({}) | {:.2}× | {:.1} / {:.1} | {} | {idle:.2} | {member:.2} ({:.2}×) | {:.0} | {:.0} | {} of {} ({:.2}) | {} |",
            figure(v, &["members"]),
            v["transport"].as_str().unwrap_or(""),
            if figure(v, &["join_rate"]) == 0.0 { ", all at once" } else { "" },
            v["join_s_over_schedule"].as_f64().map_or("-".into(), |r| format!("{r:.2}×")),
            (connect + join) / connect,
            figure(v, &["join_latency_ms", "p50"]),
            figure(v, &["join_latency_ms", "p99"]),
            figure(v, &["not_joined"]),
            member / idle,
            figure(v, &["presence_bytes_per_join"]),
            figure(v, &["joined_bytes_per_join"]),
            figure(v, &["check_received"]),
            figure(v, &["members"]) - figure(v, &["not_joined"]),
            figure(v, &["check_s"]),
            v["udp_drops"].as_u64().map_or("-".into(), |d| d.to_string()),
        );
    }
    rows
}

/// The hard limit of open files of this process, which the server and the
/// generator it starts inherit.
pub(crate) fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?.to_owned();
            line.split_whitespace().nth(4)?.parse().ok()
        })
        .unwrap_or(0)
}
