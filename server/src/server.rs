//! The server: listeners in, a running core out, until shutdown.
//!
//! The entry point takes its listener and a shutdown future as arguments, so a
//! test binds `127.0.0.1:0`, runs the real server in-process and stops it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, HttpState};
use crate::hub::Hub;

/// A server and its core.
#[derive(Debug, Clone)]
pub struct Server {
    /// The core, shared with every connection.
    hub: Arc<Hub>,
}

impl Server {
    /// A server for a validated configuration.
    pub fn new(config: Config) -> Self {
        Self { hub: Hub::new(config) }
    }

    /// The core, for counts and for tests.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Accepts connections until `shutdown` completes, then drains: stops
    /// accepting, sends every session its closing notice with a retry hint,
    /// and returns once they are gone or the shutdown timeout passes.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let state = Arc::new(HttpState::new(self.hub.clone()));
        tracing::info!(address = %listener.local_addr()?, "listening for HTTP and WebSocket");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Chat frames are small and latency matters more than
                        // packet count; batching happens in the outbox instead.
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(http::serve_connection(stream, peer, state.clone()));
                    }
                    Err(error) => {
                        // Out of file descriptors or a similar passing
                        // condition: back off briefly instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let sessions = self.hub.session_count();
        tracing::info!(sessions, "shutting down: telling sessions to reconnect later");
        self.hub.drain();
        if self.hub.wait_idle(self.hub.config().shutdown_timeout).await {
            tracing::info!("every session closed");
        } else {
            tracing::warn!(
                remaining = self.hub.session_count(),
                "shutdown timeout passed with sessions still open"
            );
        }
        Ok(())
    }
}
