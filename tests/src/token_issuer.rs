//! A token endpoint for browser tests: a real HTTP server on a loopback
//! port that hands out a fresh token on every `GET`, with the CORS header
//! a page of another origin needs, as an app's backend would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper_util_client::rt::TokioIo;
use tokio::net::TcpListener;

/// The endpoint; it stops when dropped.
#[derive(Debug)]
pub struct TokenIssuer {
    /// Where it listens.
    pub address: SocketAddr,
    issued: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TokenIssuer {
    /// Serves `mint()` to every request.
    pub async fn start(mint: impl Fn() -> String + Send + Sync + 'static) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let issued = Arc::new(AtomicUsize::new(0));
        let (mint, counter) = (Arc::new(mint), issued.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (mint, counter) = (mint.clone(), counter.clone());
                let service = hyper::service::service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let response = Response::builder()
                        .header("access-control-allow-origin", "*")
                        .header("cache-control", "no-store")
                        .body(Full::new(Bytes::from(mint())));
                    async move { response }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { address, issued, task })
    }

    /// The URL a page fetches tokens from.
    pub fn url(&self) -> String {
        format!("http://{}/token", self.address)
    }

    /// How many tokens it handed out.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::Relaxed)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
