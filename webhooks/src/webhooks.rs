//! The webhooks: the [`BackendEvents`] the server gives its core when
//! receivers are configured. Each event is encoded to JSON once, when it
//! is announced, and the same bytes go into every receiver's queue;
//! each receiver has one delivery task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::AbortHandle;
use tokio_rustls::TlsConnector;
use wtchat_core::backend_event::{BackendEvent, BackendEvents};
use wtchat_core::metrics::family;

use crate::endpoint::{Url, tls_connector};
use crate::queue::Queue;
use crate::{delivery, payload};

/// What the operator configured.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// The receivers' `http://` or `https://` URLs.
    pub urls: Vec<String>,
    /// The secret every delivery is signed with.
    pub secret: String,
    /// The most bytes of events each receiver's queue holds.
    pub queue_bytes: usize,
    /// How long one attempt may take, connecting and answering together.
    pub timeout: Duration,
    /// A PEM CA to trust for `https://` receivers besides the system's.
    pub ca_pem: Option<Vec<u8>>,
}

/// What every receiver's delivery shares.
pub(crate) struct Settings {
    /// This process's id in event and delivery ids.
    pub(crate) server: String,
    pub(crate) secret: Vec<u8>,
    pub(crate) timeout: Duration,
    pub(crate) tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("Settings").field("server", &self.server).field("timeout", &self.timeout).finish()
    }
}

/// One receiver: its address, its queue and its counters.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub(crate) index: usize,
    pub(crate) url: Url,
    pub(crate) queue: Queue,
    pub(crate) delivered: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
}

/// The webhooks of a server.
#[derive(Debug)]
pub struct Webhooks {
    settings: Arc<Settings>,
    receivers: Vec<Arc<Receiver>>,
    next_event: AtomicU64,
    tasks: std::sync::Mutex<Vec<AbortHandle>>,
}

impl Webhooks {
    /// Webhooks for `options`, not yet delivering (see [`Webhooks::start`]).
    pub fn new(options: &WebhookOptions) -> Result<Self, String> {
        let urls: Vec<Url> = options
            .urls
            .iter()
            .map(|url| Url::parse(url))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let tls = match urls.iter().any(|url| url.tls) {
            true => Some(tls_connector(options.ca_pem.as_deref())?),
            false => None,
        };
        let receivers = urls
            .into_iter()
            .enumerate()
            .map(|(index, url)| {
                Arc::new(Receiver {
                    index,
                    url,
                    queue: Queue::new(options.queue_bytes),
                    delivered: AtomicU64::new(0),
                    failed_attempts: AtomicU64::new(0),
                })
            })
            .collect();
        // Unique enough among a cluster's servers and their restarts for a
        // receiver to deduplicate by.
        let server = format!("{:016x}", fastrand::u64(..));
        let settings =
            Settings { server, secret: options.secret.as_bytes().to_vec(), timeout: options.timeout, tls };
        Ok(Self {
            settings: Arc::new(settings),
            receivers,
            next_event: AtomicU64::new(1),
            tasks: Default::default(),
        })
    }

    /// Starts delivering, one task per receiver, until the webhooks are
    /// dropped.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for receiver in &self.receivers {
            let task = tokio::spawn(delivery::deliver(receiver.clone(), self.settings.clone()));
            tasks.push(task.abort_handle());
        }
    }

    /// Waits until every receiver has every event queued so far, or
    /// `timeout` passed; returns whether they all have. A server shutting
    /// down gives its receivers this long.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let all = async {
            for receiver in &self.receivers {
                receiver.queue.emptied().await;
            }
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }
}

impl BackendEvents for Webhooks {
    fn emit(&self, event: BackendEvent) {
        let id = format!("{}-{}", self.settings.server, self.next_event.fetch_add(1, Ordering::Relaxed));
        let encoded = Bytes::from(payload::encode(&id, &event));
        for receiver in &self.receivers {
            receiver.queue.push(encoded.clone());
        }
    }

    fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let mut series = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Receiver) -> u64| {
            family(out, name, kind, help);
            for receiver in &self.receivers {
                let _ = writeln!(out, "{name}{{receiver=\"{}\"}} {}", receiver.index, value(receiver));
            }
        };
        series(
            "wtchat_webhook_queue_events",
            "gauge",
            "Events waiting for a webhook receiver, the delivery in flight included.",
            &|receiver| receiver.queue.depth().events as u64,
        );
        series("wtchat_webhook_queue_bytes", "gauge", "Bytes of those events.", &|receiver| {
            receiver.queue.depth().bytes as u64
        });
        series(
            "wtchat_webhook_events_delivered_total",
            "counter",
            "Events a webhook receiver acknowledged.",
            &|receiver| receiver.delivered.load(Ordering::Relaxed),
        );
        series(
            "wtchat_webhook_events_dropped_total",
            "counter",
            "Events dropped because a receiver's queue was full (reported to it in the next delivery).",
            &|receiver| receiver.queue.depth().dropped,
        );
        series(
            "wtchat_webhook_failed_attempts_total",
            "counter",
            "Delivery attempts that failed (no connection, timeout, or an answer other than 2xx).",
            &|receiver| receiver.failed_attempts.load(Ordering::Relaxed),
        );
    }
}
