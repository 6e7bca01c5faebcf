//! The Redis a scale-out benchmark runs against: one `redis-server`,
//! several independent ones (client-side shards), or a Redis Cluster of
//! several masters made with `redis-cli --cluster create`; each on free
//! loopback ports, without persistence, stopped when dropped. After a
//! run, each reports where its time went (`INFO commandstats`, `INFO cpu`,
//! `LATENCY LATEST`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::Result;

/// Which Redis a workload's servers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deployment {
    /// None: one server, rooms in memory.
    None,
    /// One Redis.
    One,
    /// Several independent Redis, rooms spread by the servers.
    Shards(usize),
    /// A Redis Cluster of this many masters.
    Cluster(usize),
}

impl Deployment {
    /// How it reads in the report.
    pub(crate) fn describe(self) -> String {
        match self {
            Self::None => "in memory".into(),
            Self::One => "one Redis".into(),
            Self::Shards(count) => format!("{count} Redis shards"),
            Self::Cluster(count) => format!("a Redis Cluster of {count} masters"),
        }
    }
}

/// Running Redis processes.
pub(crate) struct RedisDeployment {
    children: Vec<Child>,
    ports: Vec<u16>,
    cluster: bool,
    dir: PathBuf,
}

impl RedisDeployment {
    /// Starts what `deployment` names; `None` for no Redis.
    pub(crate) fn start(deployment: Deployment) -> Result<Option<Self>> {
        let (count, cluster) = match deployment {
            Deployment::None => return Ok(None),
            Deployment::One => (1, false),
            Deployment::Shards(count) => (count, false),
            Deployment::Cluster(count) => (count, true),
        };
        crate::ensure_redis()?;
        let dir = std::env::temp_dir().join(format!("wtchat-bench-redis-{}", std::process::id()));
        let mut started = Self { children: Vec::new(), ports: Vec::new(), cluster, dir };
        for _ in 0..count {
            // A cluster node also listens 10,000 ports higher, for the
            // other nodes.
            let port = if cluster { free_port_pair()? } else { crate::bench::free_port()? };
            let node_dir = started.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
            let mut command = Command::new("/usr/bin/redis-server");
            command
                .current_dir(&node_dir)
                .args([
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--latency-monitor-threshold", "1"]);
            if cluster {
                command.args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
            }
            let child =
                command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| e.to_string())?;
            started.children.push(child);
            started.ports.push(port);
            crate::bench::wait_for_port(&format!("127.0.0.1:{port}"), "redis-server")?;
        }
        if cluster {
            let addresses: Vec<String> =
                started.ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
            let created = Command::new("/usr/bin/redis-cli")
                .args(["--cluster", "create"])
                .args(&addresses)
                .arg("--cluster-yes")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| e.to_string())?;
            if !created.success() {
                return Err("redis-cli --cluster create failed".into());
            }
            started.wait_cluster_ok()?;
        }
        Ok(Some(started))
    }

    fn wait_cluster_ok(&self) -> Result {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !self.ports.iter().all(|&port| cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")) {
            if std::time::Instant::now() > deadline {
                return Err("the Redis Cluster did not become healthy".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    /// The server flags that point at it.
    pub(crate) fn flags(&self) -> Vec<String> {
        let urls: Vec<String> = self.ports.iter().map(|port| format!("redis://127.0.0.1:{port}")).collect();
        let mut flags = vec!["--redis-url".to_owned(), urls.join(",")];
        if self.cluster {
            flags.push("--redis-cluster".into());
        }
        flags
    }

    /// The processes, for the load generator's CPU count.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// What each Redis spent, summed: script calls and their time, CPU,
    /// and the worst latency event it recorded, as one result line for
    /// `workload` (target `redis`, so that the wtchat figures leave it
    /// aside).
    pub(crate) fn stats(&self, workload: &str) -> Value {
        let (mut calls, mut usec, mut cpu, mut latency_ms) = (0.0, 0.0, 0.0, 0.0_f64);
        for &port in &self.ports {
            let commandstats = cli(port, &["INFO", "commandstats"]);
            for line in commandstats.lines().filter(|line| line.starts_with("cmdstat_evalsha:")) {
                calls += field(line, "calls=");
                usec += field(line, "usec=");
            }
            let info = cli(port, &["INFO", "cpu"]);
            cpu += field(&info, "used_cpu_user:") + field(&info, "used_cpu_sys:");
            // `LATENCY LATEST`: event, time, latest ms, all-time max ms.
            let latest = cli(port, &["LATENCY", "LATEST"]);
            let numbers: Vec<f64> = latest.lines().filter_map(|line| line.trim().parse().ok()).collect();
            for event in numbers.chunks(3) {
                latency_ms = latency_ms.max(event.last().copied().unwrap_or(0.0));
            }
        }
        json!({
            "target": "redis",
            "workload": workload,
            "redis": {
                "processes": self.ports.len(),
                "evalsha_calls": calls,
                "evalsha_usec_per_call": if calls > 0.0 { usec / calls } else { 0.0 },
                "cpu_s": cpu,
                "latency_max_ms": latency_ms,
            }
        })
    }
}

impl Drop for RedisDeployment {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli -p PORT …`'s output, or nothing.
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("/usr/bin/redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default()
}

/// The number after `name` in `text` (up to a comma or the line's end).
fn field(text: &str, name: &str) -> f64 {
    text.split(name)
        .nth(1)
        .and_then(|rest| rest.split([',', '\r', '\n']).next())
        .and_then(|number| number.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A free loopback port whose neighbour 10,000 higher is free too.
fn free_port_pair() -> Result<u16> {
    for _ in 0..200 {
        let port = crate::bench::free_port()?;
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if port <= 55_535 && free(port + 10_000) {
            return Ok(port);
        }
    }
    Err("found no free pair of ports for a Redis Cluster node".into())
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn redis_info_fields_are_read() {
        let line = "cmdstat_evalsha:calls=24162,usec=664575,usec_per_call=27.50,rejected_calls=0";
        assert_eq!((field(line, "calls="), field(line, "usec=")), (24_162.0, 664_575.0));
        let cpu = "# CPU\r\nused_cpu_sys:1.25\r\nused_cpu_user:2.5\r\n";
        assert_eq!(field(cpu, "used_cpu_user:") + field(cpu, "used_cpu_sys:"), 3.75);
    }
}
