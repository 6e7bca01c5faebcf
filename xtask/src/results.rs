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
/// `p99_ms`, as the median over the ramp's rounds (each round starts again
/// at step 0): its achieved deliveries/s, or 0. One round's figure swings by
/// a step or more from run to run on a shared machine, since the p99 of
/// every step lies within a few tens of milliseconds of the bound.
pub(crate) fn ramp_reach(lines: &[&Value], p99_ms: f64) -> f64 {
    let mut reached: Vec<f64> = rounds(lines).iter().map(|round| last_good_step(round, p99_ms)).collect();
    reached.sort_by(f64::total_cmp);
    reached.get(reached.len() / 2).copied().unwrap_or(0.0)
}

/// A ramp's lines cut into rounds, in the order they ran.
fn rounds<'a>(lines: &[&'a Value]) -> Vec<Vec<&'a Value>> {
    let mut rounds: Vec<Vec<&Value>> = Vec::new();
    for line in lines {
        match rounds.last_mut() {
            Some(round) if figure(line, &["step"]) != 0.0 => round.push(line),
            _ => rounds.push(vec![line]),
        }
    }
    rounds
}

/// One round's highest step with every delivery made and p99 within `p99_ms`.
fn last_good_step(lines: &[&Value], p99_ms: f64) -> f64 {
    lines
        .iter()
        .filter(|v| figure(v, &["delivery_ratio"]) >= 0.99 && figure(v, &["latency_ms", "p99"]) <= p99_ms)
        .map(|v| figure(v, &["achieved_deliveries_per_s"]))
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn step(step: u32, rate: f64, p99: f64) -> Value {
        json!({ "step": step, "achieved_deliveries_per_s": rate, "delivery_ratio": 1.0, "latency_ms": { "p99": p99 } })
    }

    #[test]
    fn a_ramps_reach_is_the_median_of_its_rounds() {
        let lines = [
            step(0, 10.0, 5.0),
            step(1, 20.0, 5.0),
            step(2, 40.0, 5.0),
            step(0, 10.0, 5.0),
            step(1, 20.0, 90.0),
            step(0, 10.0, 5.0),
            step(1, 20.0, 5.0),
            step(2, 40.0, 60.0),
        ];
        let lines: Vec<&Value> = lines.iter().collect();
        assert_eq!(ramp_reach(&lines, 50.0), 20.0);
        assert_eq!(ramp_reach(&lines[..3], 50.0), 40.0);
        assert_eq!(ramp_reach(&[], 50.0), 0.0);
    }
}
