//! A token endpoint for browser tests: a real HTTP server on a loopback
//! port that hands out a fresh token on every `GET`, with the CORS header
//! a page of another origin needs, as an app's backend would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use tokio::net::TcpListener;

use crate::http_server::{Handler, respond, serve};

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
        let handler: Handler = Arc::new(move |_request| {
            counter.fetch_add(1, Ordering::Relaxed);
            let mut response = respond(200, mint());
            let headers = response.headers_mut();
            headers.insert("access-control-allow-origin", http::HeaderValue::from_static("*"));
            headers.insert("cache-control", http::HeaderValue::from_static("no-store"));
            Box::pin(async move { response })
        });
        let task = serve(listener, None, handler);
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
