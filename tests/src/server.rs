//! The real server, in-process, on loopback ports chosen by the system.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wtchat_server::tls::certificate_store::CertificateStore;
use wtchat_server::{Config, Hub, Server};

/// How long a test waits for something it expects before failing. Generous,
/// because CI machines are slow; no test asserts how fast anything is.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The real server.
pub struct TestServer {
    /// Where it listens for HTTP and WebSocket.
    pub address: SocketAddr,
    /// Where it listens for WebTransport, if it does.
    pub quic_address: Option<SocketAddr>,
    /// Every TCP address, the configured one first.
    pub tcp_addresses: Vec<SocketAddr>,
    /// Every QUIC address, the configured one first.
    pub quic_addresses: Vec<SocketAddr>,
    /// Its core, for counts.
    pub hub: Arc<Hub>,
    /// Its certificates.
    pub certificates: Arc<CertificateStore>,
    /// Its certificate folder, removed when the server is dropped.
    cert_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// A fresh folder under the system's temporary folder.
pub fn temp_dir(purpose: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "wtchat-test-{purpose}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

impl TestServer {
    /// Starts a server with the default configuration, adjusted.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let cert_dir = temp_dir("certs");
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            shutdown_timeout_ms: 5_000,
            cert_dir: cert_dir.clone(),
            ..Config::default()
        };
        adjust(&mut config);
        config.validate().expect("the test configuration is valid");
        let server = Server::new(config).expect("certificates");
        // A server restarted on the ports of one that just stopped may find
        // them held for a moment longer by the old one's last tasks.
        let mut tries = 0;
        let listeners = loop {
            match server.bind().await {
                Ok(listeners) => break listeners,
                Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && tries < 40 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("bind loopback ports: {error}"),
            }
        };
        let tcp_addresses = listeners.tcp_addresses();
        let quic_addresses = listeners.quic_addresses();
        let address = tcp_addresses[0];
        let quic_address = quic_addresses.first().copied();
        let hub = server.hub().clone();
        let certificates = server.certificates().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listeners, async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            quic_address,
            tcp_addresses,
            quic_addresses,
            hub,
            certificates,
            cert_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts a server with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }

    /// The WebTransport URL.
    pub fn wt_url(&self) -> String {
        let address = self.quic_address.expect("the server runs WebTransport");
        format!("https://{address}/wt")
    }

    /// Begins a graceful shutdown and waits for the server to return.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().context("stopped twice")?;
        tokio::time::timeout(PATIENCE, task).await.context("the server did not stop in time")???;
        Ok(())
    }

    /// Waits for the server to return on its own (after a drain it was
    /// asked for), without telling it to stop.
    pub async fn exited(mut self) -> Result<()> {
        let task = self.task.take().context("stopped twice")?;
        tokio::time::timeout(PATIENCE, task).await.context("the server did not exit in time")???;
        Ok(())
    }

    /// Waits until the server has `n` live sessions.
    pub async fn wait_for_sessions(&self, n: usize) -> Result<()> {
        let hub = self.hub.clone();
        eventually(|| hub.session_count() == n)
            .await
            .with_context(|| format!("expected {n} sessions, the server has {}", self.hub.session_count()))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.cert_dir);
    }
}

/// Polls an asynchronous condition (a request, say) every 100 ms until it
/// holds, or fails after `patience`.
pub async fn eventually_async<F, Fut>(patience: Duration, condition: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + patience;
    while !condition().await {
        if tokio::time::Instant::now() > deadline {
            bail!("the condition did not hold within {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Polls a condition until it holds or patience runs out.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            bail!("the condition never held");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
