//! A real Redis Cluster on loopback ports: `redis-server` processes in
//! cluster mode, joined by `redis-cli --cluster create` (both from Debian's
//! packages, which `cargo xtask test` installs), masters first and then a
//! replica for each when asked.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::redis::RedisServer;

/// Where Debian installs the client.
const REDIS_CLI: &str = "/usr/bin/redis-cli";

/// How long a master may be unreachable before its replica takes over:
/// short, so that a failover fits within a test.
pub const NODE_TIMEOUT_MS: u64 = 1_000;

/// A loopback port that is free, as is the one 10,000 above it, which a
/// cluster node listens on for the other nodes (so at most 55,535).
fn free_port_pair() -> Result<u16> {
    for _ in 0..200 {
        let port = fastrand::u16(20_000..45_000);
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(port) && free(port + 10_000) {
            return Ok(port);
        }
    }
    bail!("found no free pair of ports for a cluster node")
}

/// A running Redis Cluster.
pub struct RedisCluster {
    /// Every node, the masters first (in the order `redis-cli` gave them
    /// slots: the first holds the lowest).
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` masters, each with `replicas` replicas, and waits
    /// until the cluster serves every slot.
    pub fn start(masters: usize, replicas: usize) -> Result<Self> {
        if !Path::new(REDIS_CLI).exists() {
            bail!("{REDIS_CLI} is missing; `cargo xtask test` installs Debian's redis-tools");
        }
        let timeout = NODE_TIMEOUT_MS.to_string();
        // Replicas sync at once rather than after diskless replication's
        // default pause of 5 s, so that a failover soon after the start
        // has a replica in sync to promote.
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            &timeout,
            "--repl-diskless-sync-delay",
            "0",
            "--cluster-config-file",
        ];
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                // Each node's own state file, in its own directory.
                let mut with_file: Vec<&str> = args.to_vec();
                with_file.push("nodes.conf");
                RedisServer::start_on(free_port_pair()?, &with_file)
            })
            .collect::<Result<_>>()?;
        let cluster = Self { nodes };
        let addresses: Vec<String> =
            cluster.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect();
        let status = Command::new(REDIS_CLI)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running redis-cli --cluster create")?;
        ensure!(status.success(), "redis-cli --cluster create failed");
        cluster.wait_ready(Duration::from_secs(20))?;
        cluster.wait_replicas_synced(masters, replicas, Duration::from_secs(20))?;
        Ok(cluster)
    }

    /// Every node's URL, comma-separated: the seeds wtchat's `redis_url`
    /// takes with `redis_cluster`.
    pub fn seeds(&self) -> String {
        self.nodes.iter().map(RedisServer::url).collect::<Vec<_>>().join(",")
    }

    /// Waits until every running node reports the cluster healthy.
    pub fn wait_ready(&self, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            let healthy = self.nodes.iter().filter(|node| node.is_running()).all(|node| {
                node.query(&["CLUSTER", "INFO"]).is_ok_and(|info: String| info.contains("cluster_state:ok"))
            });
            if healthy {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "the cluster did not become healthy");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until each master has its replicas online.
    fn wait_replicas_synced(&self, masters: usize, replicas: usize, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            let synced = self.nodes.iter().filter_map(|node| node.query(&["INFO", "replication"]).ok()).all(
                |info: String| {
                    !info.contains("role:master") || info.matches("state=online").count() >= replicas
                },
            );
            let masters_seen = self
                .nodes
                .iter()
                .filter(|node| {
                    node.query(&["INFO", "replication"])
                        .is_ok_and(|info: String| info.contains("role:master"))
                })
                .count();
            if synced && masters_seen == masters {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "the replicas did not sync");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Moves the slot of `key` from its master to master `to`, keys and
    /// all, as `redis-cli --cluster reshard` moves each slot: the target
    /// imports, the source migrates, the keys are copied over, and every
    /// master learns the new owner.
    pub fn migrate_slot_of(&self, key: &str, to: usize) -> Result<()> {
        let slot = wtchat_redis::slot::slot(key.as_bytes()).to_string();
        let from = self.master_of(key)?;
        ensure!(from != to, "the slot is already there");
        let id = |node: usize| self.nodes[node].query::<String>(&["CLUSTER", "MYID"]);
        let (from_id, to_id) = (id(from)?, id(to)?);
        let () = self.nodes[to].query(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id])?;
        let () = self.nodes[from].query(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id])?;
        loop {
            let keys: Vec<String> = self.nodes[from].query(&["CLUSTER", "GETKEYSINSLOT", &slot, "100"])?;
            if keys.is_empty() {
                break;
            }
            let port = self.nodes[to].port.to_string();
            let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            migrate.extend(keys.iter().map(String::as_str));
            let _: redis::Value = self.nodes[from].query(&migrate)?;
        }
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            if node.query(&["INFO", "replication"]).is_ok_and(|info: String| info.contains("role:master")) {
                let () = node.query(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id])?;
            }
        }
        Ok(())
    }

    /// The index in `nodes` of the master that now serves `key`'s slot.
    pub fn master_of(&self, key: &str) -> Result<usize> {
        let slot = wtchat_redis::slot::slot(key.as_bytes());
        let seed = self.nodes.iter().find(|node| node.is_running()).context("no node runs")?;
        let reply: Vec<redis::Value> = seed.query(&["CLUSTER", "SLOTS"])?;
        let ranges = wtchat_redis::topology::slot_ranges(&reply)?;
        let owner = ranges.iter().find(|range| range.holds(slot)).context("an unserved slot")?;
        self.nodes.iter().position(|node| node.port == owner.port).context("a master that is not ours")
    }
}
