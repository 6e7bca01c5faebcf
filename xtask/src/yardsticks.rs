//! The WebSocket figures beside the yardsticks measured in the same run
//! (`wtchat bench --versus textbook --versus floor`), with the targets of
//! the everyday-load work (issue 16).

use std::fmt::Write as _;

use crate::bench::Section;
use crate::results::{figure, median_of, ramp_reach, target_lines};

/// The table.
pub(crate) fn comparison(sections: &[Section]) -> String {
    let of = |name: &str, target: &str| target_lines(sections, name, target);
    let rounds = of("ws-100", "textbook").len();
    let ramps = of("ws-ramp", "textbook").iter().filter(|v| figure(v, &["step"]) == 0.0).count();
    if rounds == 0 {
        return "(the yardsticks did not run)\n".into();
    }
    let mut table = format!(
        "The same WebSocket load (a room of 1000, 10 publishers, 128-byte messages) against wtchat, then, \
         right after it with the same generator, against two yardsticks: the *textbook* server (one \
         `tokio::sync::broadcast` channel, a task per connection, `sink.send` per item) and the *floor* \
         (each message encoded once and written to every member with one `send`, nothing else); see \
         `yardsticks/`. At 100,000 deliveries/s each figure is the median of {rounds} round(s) (each round \
         wtchat, textbook, floor, fresh processes); the ramp's figure is the median over {ramps} round(s) of \
         each round's highest good step. `gen` is the load generator's own CPU on the same two cores: what \
         measuring cost.\n\n\
         | | wtchat | textbook | floor | wtchat ÷ textbook | wtchat ÷ floor | target | |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    let median = |target: &str, path: &[&str]| median_of(&of("ws-100", target), path);
    let ratio = |a: f64, b: f64| if a.is_nan() || b.is_nan() || b == 0.0 { f64::NAN } else { a / b };
    let verdict = |met: bool| if met { "met" } else { "**not met**" };
    let mut row = |what: &str, path: &[&str], target: &str, met: Option<bool>| {
        let (ours, textbook, floor) =
            (median("wtchat", path), median("textbook", path), median("floor", path));
        let _ = writeln!(
            table,
            "| {what} | {ours:.2} | {textbook:.2} | {floor:.2} | {:.2}× | {:.2}× | {target} | {} |",
            ratio(ours, textbook),
            ratio(ours, floor),
            met.map_or("", verdict),
        );
    };
    let cpu = ["server_cpu_s_per_million"];
    let (cpu_vs_textbook, cpu_vs_floor) = (
        ratio(median("wtchat", &cpu), median("textbook", &cpu)),
        ratio(median("wtchat", &cpu), median("floor", &cpu)),
    );
    row(
        "server CPU-s per million deliveries, 100,000/s",
        &cpu,
        "≤ 0.7× textbook, ≤ 1.5× floor",
        Some(cpu_vs_textbook <= 0.7 && cpu_vs_floor <= 1.5),
    );
    let p99 = ["latency_ms", "p99"];
    let p99_vs_textbook = ratio(median("wtchat", &p99), median("textbook", &p99));
    row("p99 latency ms, 100,000/s", &p99, "≤ 0.7× textbook", Some(p99_vs_textbook <= 0.7));
    row("p50 latency ms, 100,000/s", &["latency_ms", "p50"], "", None);
    row("load generator CPU-s per million deliveries", &["loadgen_cpu_s_per_million"], "", None);
    let lost = |target: &str| of("ws-100", target).iter().map(|v| figure(v, &["lost"])).sum::<f64>();
    let _ = writeln!(
        table,
        "| deliveries lost, all rounds | {} | {} | {} | | | none | {} |",
        lost("wtchat"),
        lost("textbook"),
        lost("floor"),
        verdict(lost("wtchat") == 0.0)
    );
    let ramp = |target: &str| ramp_reach(&of("ws-ramp", target), 50.0);
    let (ours, textbook, floor) = (ramp("wtchat"), ramp("textbook"), ramp("floor"));
    let _ = writeln!(
        table,
        "| ramp: highest deliveries/s with none lost and p99 ≤ 50 ms | {ours:.0} | {textbook:.0} | {floor:.0} | \
         {:.2}× | {:.2}× | ≥ 3× textbook | {} |",
        ratio(ours, textbook),
        ratio(ours, floor),
        verdict(ours >= 3.0 * textbook && textbook > 0.0)
    );
    let idle_lines = target_lines(sections, "idle-ws", "wtchat");
    let idle = median_of(&idle_lines, &["server_rss_per_connection_kb"]);
    let connections = idle_lines.first().map_or(0.0, |v| figure(v, &["connections"]));
    let _ = writeln!(
        table,
        "| idle: server memory per connection, KB ({connections:.0} connections) | {idle:.2} | | | | | ≤ 4 KB | {} |",
        verdict(idle <= 4.0)
    );
    table
}
