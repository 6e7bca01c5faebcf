//! `wtchat bench --versus textbook --versus floor`: the same load against
//! the server and then against yardsticks that the bench starts itself
//! (`wtchat yardstick`), in the same run on the same machine, with a table
//! of ratios. Absolute figures do not carry from one machine to another;
//! how wtchat compares with a textbook server and with the floor, measured
//! minutes apart by the same generator, does.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::dial::Transport;
use crate::load::{BenchArgs, Mode, Versus};
use crate::report::StepReport;

/// The p99 under which a ramp step counts, in the comparison of ramps.
pub const RAMP_P99_MS: f64 = 50.0;

/// Refuses what cannot be compared.
pub(crate) fn check(args: &BenchArgs) -> Result<()> {
    if args.versus.is_empty() {
        return Ok(());
    }
    if args.transport != Transport::Ws {
        bail!("the yardsticks speak WebSocket only: use --transport ws with --versus");
    }
    if !args.also_server.is_empty() {
        bail!("--versus compares one server with the yardsticks: leave out --also-server");
    }
    if args.room_size != 0 {
        bail!("the yardsticks serve one room: leave out --room-size with --versus");
    }
    Ok(())
}

/// The step a run is compared by: the only one, or a ramp's highest with
/// no loss to speak of and p99 within [`RAMP_P99_MS`].
pub fn compared_step(reports: &[StepReport], mode: Mode) -> Option<&StepReport> {
    match mode {
        Mode::Ramp => reports
            .iter()
            .filter(|r| r.delivery_ratio >= 0.99 && r.latency_ms.p99 <= RAMP_P99_MS)
            .max_by(|a, b| a.achieved_deliveries_per_s.total_cmp(&b.achieved_deliveries_per_s)),
        _ => reports.first(),
    }
}

/// The table: each target's figures, and wtchat's over each yardstick's.
pub(crate) fn comparison(runs: &[(&'static str, Vec<StepReport>)], mode: Mode) -> String {
    let steps: Vec<(&str, Option<&StepReport>)> =
        runs.iter().map(|(target, reports)| (*target, compared_step(reports, mode))).collect();
    let mut table = format!(
        "{:<9} {:>12} {:>9} {:>9} {:>8} {:>8} {:>7}\n",
        "target", "deliveries/s", "srv s/M", "gen s/M", "p50 ms", "p99 ms", "lost"
    );
    for (target, step) in &steps {
        match step {
            Some(s) => table.push_str(&format!(
                "{:<9} {:>12.0} {:>9} {:>9.3} {:>8.2} {:>8.2} {:>7}\n",
                target,
                s.achieved_deliveries_per_s,
                s.server_cpu_s_per_million.map_or("-".into(), |v| format!("{v:.3}")),
                s.loadgen_cpu_s_per_million,
                s.latency_ms.p50,
                s.latency_ms.p99,
                s.lost,
            )),
            None => table.push_str(&format!("{target:<9} no step with p99 <= {RAMP_P99_MS} ms\n")),
        }
    }
    let Some((_, Some(ours))) = steps.first() else { return table };
    for (target, step) in &steps[1..] {
        let Some(theirs) = step else { continue };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "-".into(),
        };
        let line = match mode {
            Mode::Ramp => format!(
                "wtchat ÷ {target}: highest deliveries/s with p99 <= {RAMP_P99_MS} ms {}\n",
                ratio(Some(ours.achieved_deliveries_per_s), Some(theirs.achieved_deliveries_per_s))
            ),
            _ => format!(
                "wtchat ÷ {target}: server CPU per delivery {}, p99 {}\n",
                ratio(ours.server_cpu_s_per_million, theirs.server_cpu_s_per_million),
                ratio(Some(ours.latency_ms.p99), Some(theirs.latency_ms.p99)),
            ),
        };
        table.push_str(&line);
    }
    table
}

/// A yardstick process on a free loopback port, ended when dropped.
pub(crate) struct Yardstick {
    child: Child,
    address: SocketAddr,
}

impl Yardstick {
    /// Starts `wtchat yardstick <name>` (this very program).
    pub(crate) fn start(versus: Versus) -> Result<Self> {
        let program = std::env::current_exe().context("where this program is")?;
        let mut child = Command::new(program)
            .args(["yardstick", versus.name(), "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start the {} yardstick", versus.name()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("the yardstick's output")?;
        BufReader::new(stdout).read_line(&mut line)?;
        let announced: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("the yardstick announced {line:?}"))?;
        let address = announced["listening"]["http"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("no address in {line:?}"))?;
        Ok(Self { child, address })
    }
}

impl Yardstick {
    /// The arguments that point the same load at this yardstick.
    pub(crate) fn args(&self, args: &BenchArgs) -> BenchArgs {
        BenchArgs { server: self.address, server_pid: vec![self.child.id()], plot: None, ..args.clone() }
    }
}

impl Drop for Yardstick {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
