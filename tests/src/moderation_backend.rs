//! An application's moderation for tests: a real HTTP server that checks
//! each request's signature, keeps what it was asked, and answers with
//! what the test's rule decides for the message.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::http_server::{Handler, respond, serve};
use crate::webhook_receiver::signed_now;

/// What the backend answers one message: a status, a body, and how long it
/// takes first.
#[derive(Debug, Clone)]
pub struct Ruling {
    /// The HTTP status.
    pub status: u16,
    /// The answer's body (empty, or the verdict's JSON).
    pub body: String,
    /// How long the backend thinks first.
    pub delay: Duration,
}

impl Ruling {
    /// 200 with this verdict, at once.
    pub fn verdict(json: Value) -> Self {
        Self { status: 200, body: json.to_string(), delay: Duration::ZERO }
    }
}

/// The backend; it stops when dropped.
#[derive(Debug)]
pub struct ModerationBackend {
    /// Where it listens.
    pub address: SocketAddr,
    asked: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ModerationBackend {
    /// Answers each correctly signed request with `rule(request)`, and
    /// 401 to any other.
    pub async fn start(
        secret: &str,
        rule: impl Fn(&Value) -> Ruling + Send + Sync + 'static,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (rule, record) = (Arc::new(rule), asked.clone());
        let secret: Arc<[u8]> = secret.as_bytes().into();
        let handler: Handler = Arc::new(move |request| {
            let signed = request
                .headers()
                .get(wtchat_webhooks::signature::HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = request.into_body();
            let parsed: Option<Value> = serde_json::from_slice(&body).ok();
            let ruling = match parsed {
                Some(message) if signed_now(&secret, &signed, &body) => {
                    let ruling = rule(&message);
                    record.lock().unwrap_or_else(PoisonError::into_inner).push(message);
                    ruling
                }
                _ => Ruling { status: 401, body: String::new(), delay: Duration::ZERO },
            };
            Box::pin(async move {
                tokio::time::sleep(ruling.delay).await;
                respond(ruling.status, ruling.body)
            })
        });
        let task = serve(listener, None, handler);
        Ok(Self { address, asked, task })
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/moderate", self.address)
    }

    /// What it was asked, in order.
    pub fn asked(&self) -> Vec<Value> {
        self.asked.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for ModerationBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
