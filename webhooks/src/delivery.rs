//! The loop that delivers one receiver's queue: a batch from the head,
//! signed and posted; on success the next, on failure the same batch again
//! after a backoff that doubles up to a bound (with jitter, so that servers
//! that failed together do not retry together).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use wtchat_core::log_limit::LogLimit;

use crate::endpoint::Endpoint;
use crate::payload;
use crate::webhooks::{Receiver, Settings};

/// Most events in one delivery.
pub const BATCH_EVENTS: usize = 500;
/// About the most bytes of events in one delivery.
pub const BATCH_BYTES: usize = 1 << 20;
/// The first wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Failures are logged a few a second at most: a receiver down for an
/// hour must not fill the log.
static FAILURE_LOG: LogLimit = LogLimit::new();

/// Delivers `receiver`'s queue until the task is aborted.
pub(crate) async fn deliver(receiver: Arc<Receiver>, settings: Arc<Settings>) {
    let mut endpoint = Endpoint::new(receiver.url.clone(), settings.tls.clone());
    let mut deliveries = 0u64;
    loop {
        let batch = receiver.queue.head(BATCH_EVENTS, BATCH_BYTES).await;
        deliveries += 1;
        // The same id on every attempt, so that a receiver that took a
        // delivery whose answer was lost can tell the retry.
        let delivery = format!("{}-{}-{deliveries}", settings.server, receiver.index);
        let events = batch.events.iter().map(|event| &event[..]);
        let body = Bytes::from(payload::body(&settings.server, batch.dropped, events));
        let mut backoff = FIRST_BACKOFF;
        loop {
            match endpoint.post(body.clone(), &settings.secret, &delivery, settings.timeout).await {
                Ok(_) => {
                    receiver.delivered.fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                    receiver.queue.delivered(&batch);
                    break;
                }
                Err(failure) => {
                    receiver.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    if let Some(left_out) = FAILURE_LOG.allow() {
                        let depth = receiver.queue.depth();
                        tracing::warn!(
                            receiver = receiver.index,
                            %failure,
                            retry_in_ms = backoff.as_millis() as u64,
                            queued_events = depth.events,
                            left_out,
                            "a webhook delivery failed; it will be retried"
                        );
                    }
                    tokio::time::sleep(backoff.mul_f64(fastrand::f64().mul_add(0.4, 0.8))).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
