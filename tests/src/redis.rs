//! A real Redis server in a child process on a loopback port, for the
//! scale-out tests. `cargo xtask test` installs Debian's `redis-server`
//! when it is missing; each test starts its own, with persistence off, so
//! that a restart loses everything as a crashed Redis without a disk would.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::server::temp_dir;

/// Where Debian installs the server.
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    /// The loopback port it listens on, kept across restarts.
    pub port: u16,
    dir: PathBuf,
    /// Arguments beyond the defaults, kept across restarts.
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts Redis on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts Redis on a free loopback port with more arguments.
    pub fn start_with(extra: &[&str]) -> Result<Self> {
        // Ask the kernel for a free port, then give it to Redis, which
        // cannot report a port it chose itself.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        Self::start_on(port, extra)
    }

    /// Starts Redis on `port` with more arguments (those of a cluster
    /// node, say).
    pub fn start_on(port: u16, extra: &[&str]) -> Result<Self> {
        let extra = extra.iter().map(|arg| (*arg).to_owned()).collect();
        let mut redis = Self { child: None, port, dir: temp_dir("redis"), extra };
        redis.launch()?;
        Ok(redis)
    }

    /// The URL wtchat's `redis_url` takes.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) -> Result<()> {
        if !std::path::Path::new(REDIS_SERVER).exists() {
            bail!("{REDIS_SERVER} is missing; `cargo xtask test` installs Debian's redis-server");
        }
        std::fs::create_dir_all(&self.dir)?;
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            if Instant::now() > deadline {
                bail!("redis-server did not answer on port {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether Redis answers a PING.
    fn answers(&self) -> bool {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// Whether the process runs (it may be paused).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// One command's answer.
    pub fn query<T: redis::FromRedisValue>(&self, command: &[&str]) -> Result<T> {
        let mut connection = redis::Client::open(self.url())?.get_connection()?;
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        Ok(cmd.query(&mut connection)?)
    }

    /// Kills Redis at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops Redis without closing anything (SIGSTOP): its connections stay
    /// open and go silent, as a stalled or overloaded Redis would.
    pub fn pause(&self) -> Result<()> {
        self.signal("-STOP")
    }

    /// Lets a paused Redis go on (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.child.as_ref().context("redis is not running")?.id();
        let status = Command::new("kill").args([signal, &pid.to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill {signal} {pid} failed");
        Ok(())
    }

    /// Closes every client connection but the one asking (`CLIENT KILL`),
    /// as a failover or a proxy restart would; returns how many.
    pub fn kill_clients(&self) -> Result<u64> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_connection()?;
        let mut killed = 0;
        for kind in ["normal", "pubsub"] {
            let count: u64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg(kind)
                .arg("SKIPME")
                .arg("yes")
                .query(&mut connection)?;
            killed += count;
        }
        Ok(killed)
    }

    /// Starts Redis again on the same port, empty.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
