//! The `wtchat` binary as an operator runs it, in a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The path of the `wtchat` binary, built by cargo if it is missing or
/// stale. Asking cargo (rather than guessing a path under `target/`) means a
/// test never runs an old binary.
pub fn wtchat_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut command = Command::new(cargo);
        without_package_variables(&mut command);
        let output = command
            .current_dir(root)
            .args(["build", "--quiet", "--package", "wtchat", "--bin", "wtchat", "--message-format=json"])
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(output.status.success(), "building wtchat failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| message["target"]["name"] == "wtchat")
            .find_map(|message| message["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the wtchat executable")
    })
}

/// Removes the variables cargo set for this test's package from a cargo
/// command: passed on, they reach build scripts that watch them (ring
/// watches CARGO_MANIFEST_DIR) and force rebuilds.
pub fn without_package_variables(command: &mut Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_")
            || matches!(
                name.as_str(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
            )
        {
            command.env_remove(name);
        }
    }
}

/// Runs `cargo xtask <command> --out <out>` from the workspace (building
/// the client, packing its package), panicking with `what` if it fails.
pub fn xtask_into(command: &str, out: &Path, what: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    without_package_variables(&mut cargo);
    let status = cargo
        .current_dir(&root)
        .args(["run", "--quiet", "--package", "xtask", "--", command, "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "{what} failed");
}

/// A running `wtchat serve`.
pub struct Binary {
    /// The process.
    pub child: Child,
    /// The HTTP and WebSocket address it announced.
    pub address: SocketAddr,
    /// The WebTransport URL it announced, if any.
    pub webtransport_url: Option<String>,
    /// What it wrote to stderr (up to 100,000 lines).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    /// Starts `wtchat serve` with these arguments and reads the addresses
    /// it announces.
    pub fn start(args: &[&str]) -> Result<Self> {
        let mut child = Command::new(wtchat_binary())
            .arg("serve")
            .args(args)
            .env("WTCHAT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // The binary announces where it listens as one line of JSON on
        // standard output; the log on standard error is for people.
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut stdout = BufReader::new(stdout);
        let mut announcement = String::new();
        stdout.read_line(&mut announcement)?;
        // Whatever follows is read and dropped, so that the pipe stays open.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let announced: serde_json::Value = serde_json::from_str(&announcement)
            .with_context(|| format!("wtchat announced {announcement:?}, not a line of JSON"))?;
        let listening = &announced["listening"];
        let address = listening["tcp"][0].as_str().map(str::parse).transpose()?;
        let webtransport_url = listening["webtransport"].as_str().map(str::to_owned);
        // Keep draining stderr so the server never blocks on a full pipe.
        let lines = BufReader::new(child.stderr.take().context("stderr is piped")?).lines();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut kept = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if kept.len() < 100_000 {
                    kept.push(line);
                }
            }
        });
        let address = address.context("wtchat did not announce its address")?;
        Ok(Self { child, address, webtransport_url, log })
    }

    /// Starts `count` servers sharing the Redis at `redis_urls`
    /// (comma-separated), each on a free loopback port with a certificate
    /// folder of its own and `extra` flags, and waits until each serves.
    pub async fn start_sharing(count: usize, redis_urls: &str, extra: &[&str]) -> Result<Vec<Self>> {
        let mut servers = Vec::new();
        for _ in 0..count {
            let certs = crate::server::temp_dir("shared-redis-certs");
            let certs = certs.to_str().unwrap_or_default().to_owned();
            let mut args = vec!["--listen", "127.0.0.1:0", "--redis-url", redis_urls, "--cert-dir", &certs];
            args.extend_from_slice(extra);
            servers.push(Self::start(&args)?);
        }
        for server in &servers {
            server.wait_health(200).await?;
        }
        Ok(servers)
    }

    /// A greeted WebSocket session on this server.
    pub async fn ws(&self) -> Result<crate::WsClient> {
        let mut client = crate::WsClient::connect_at(self.address, None, None).await?;
        client.hello().await?;
        Ok(client)
    }

    /// A greeted WebTransport session on this server, trusting the
    /// certificate hashes it publishes.
    pub async fn wt(&self) -> Result<crate::WtClient> {
        let hashes = crate::webtransport::published_hashes_at(self.address).await?;
        let url = self.webtransport_url.clone().context("no WebTransport URL")?;
        let mut client = crate::WtClient::open(&url, &hashes, None).await?;
        client.hello().await?;
        Ok(client)
    }

    /// Waits (15 s at most) until the server answers `/healthz` with
    /// `status`: 200 once it serves, 503 while it cannot reach Redis.
    pub async fn wait_health(&self, status: u16) -> Result<()> {
        let address = self.address;
        crate::server::eventually_async(std::time::Duration::from_secs(15), || async move {
            crate::http_get(address, "/healthz", &[]).await.is_ok_and(|(got, _)| got == status)
        })
        .await
        .with_context(|| format!("{address} never answered /healthz with {status}"))
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it
    /// exited successfully.
    pub fn terminate(&mut self) -> Result<bool> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        if !status.success() {
            bail!("kill failed");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(exit) = self.child.try_wait()? {
                return Ok(exit.success());
            }
            if Instant::now() > deadline {
                bail!("wtchat did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
