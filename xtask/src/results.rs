//! Reading a run's results: each workload's JSON lines, by what they
//! measured (wtchat, or a yardstick the same load ran against), and the
//! medians and ramp summaries the report tables are made of.

use serde_json::Value;

use crate::bench::Section;

/// What a result line measured: `wtchat` unless it names a yardstick.
fn target_of(v: &Value) -> &str {
    v["target"].as_str().unwrap_or("wtchat")
}

/// A workload's results for wtchat, if it ran.
pub(crate) fn lines_of<'a>(sections: &'a [Section], name: &str) -> Vec<&'a Value> {
    target_lines(sections, name, "wtchat")
}

/// A workload's results for one target (`wtchat`, `textbook`, `floor`).
pub(crate) fn target_lines<'a>(sections: &'a [Section], name: &str, target: &str) -> Vec<&'a Value> {
    sections
        .iter()
        .find(|(w, ..)| w.name == name)
        .map_or(Vec::new(), |(_, lines, ..)| lines.iter().filter(|v| target_of(v) == target).collect())
}

/// A figure of a result line; `NaN` when absent.
pub(crate) fn figure(v: &Value, path: &[&str]) -> f64 {
    path.iter().fold(v, |v, key| &v[*key]).as_f64().unwrap_or(f64::NAN)
}

/// The median of a figure over a workload's rounds for wtchat (each plain
/// run is one line), or `NaN` when it did not run.
pub(crate) fn median(sections: &[Section], name: &str, path: &[&str]) -> f64 {
    median_of(&lines_of(sections, name), path)
}

/// The median of a figure over some lines, or `NaN` when there are none.
pub(crate) fn median_of(lines: &[&Value], path: &[&str]) -> f64 {
    let mut values: Vec<f64> = lines.iter().map(|v| figure(v, path)).filter(|v| !v.is_nan()).collect();
    values.sort_by(f64::total_cmp);
    if values.is_empty() { f64::NAN } else { values[values.len() / 2] }
}

/// The highest load a ramp carried with every delivery made and p99 within
/// `p99_ms`: its achieved deliveries/s, or 0.
pub(crate) fn last_good_step(lines: &[&Value], p99_ms: f64) -> f64 {
    lines
        .iter()
        .filter(|v| figure(v, &["delivery_ratio"]) >= 0.99 && figure(v, &["latency_ms", "p99"]) <= p99_ms)
        .map(|v| figure(v, &["achieved_deliveries_per_s"]))
        .fold(0.0, f64::max)
}
