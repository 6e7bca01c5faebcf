//! Moderation over HTTP: the core's `Moderator`, which posts each message
//! to the application's backend before it is published and turns the
//! answer into a verdict.
//!
//! The request is signed like a webhook delivery (`signature.rs`) and reads
//! `{"room", "sender": {"session_id", "name", "user"}, "sent_at_ms",
//! "body"}`. A 2xx answer with an empty body accepts the message; otherwise
//! its JSON says `{"action": "accept"}`, `{"action": "replace", "body":
//! "…"}` or `{"action": "reject", "reason": "…"}`. No answer in time, an
//! answer other than 2xx or one that cannot be read count as the backend
//! being down, and then the configuration decides: refuse the message
//! (`MODERATION_UNAVAILABLE`, the default) or let it through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;
use wtchat_core::log_limit::LogLimit;
use wtchat_core::metrics::family;
use wtchat_core::moderation::{Moderator, Review, Verdict};

use crate::endpoint::{Endpoint, Url, tls_connector};

/// Reviews under way at once; more wait for a turn (within their timeout).
const CONCURRENT_REVIEWS: usize = 64;

/// Failures are logged a few a second at most.
static FAILURE_LOG: LogLimit = LogLimit::new();

/// What the operator configured.
#[derive(Debug, Clone)]
pub struct ModerationOptions {
    /// The backend's `http://` or `https://` URL.
    pub url: String,
    /// The secret requests are signed with.
    pub secret: String,
    /// How long a review may take, waiting for a turn included.
    pub timeout: Duration,
    /// Whether a message goes through when the backend gives no verdict.
    pub fail_open: bool,
    /// A PEM CA to trust for an `https://` backend besides the system's.
    pub ca_pem: Option<Vec<u8>>,
}

/// The moderator.
#[derive(Debug)]
pub struct Moderation {
    inner: Arc<Inner>,
}

struct Inner {
    url: Url,
    secret: Vec<u8>,
    timeout: Duration,
    fail_open: bool,
    tls: Option<TlsConnector>,
    /// Connections not in use, kept for the next reviews.
    idle: std::sync::Mutex<Vec<Endpoint>>,
    turns: Semaphore,
    next_review: AtomicU64,
    /// Verdicts by kind, in the order of [`VERDICTS`].
    counts: [AtomicU64; 5],
}

/// The names verdicts are counted under.
const VERDICTS: [&str; 5] = ["accepted", "replaced", "rejected", "unavailable", "let_through"];

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moderation").field("url", &self.url).field("fail_open", &self.fail_open).finish()
    }
}

/// A message as the backend reads it.
#[derive(Serialize)]
struct Request<'a> {
    room: &'a str,
    sender: Sender<'a>,
    sent_at_ms: u64,
    body: &'a str,
}

#[derive(Serialize)]
struct Sender<'a> {
    session_id: u64,
    name: &'a str,
    user: Option<&'a str>,
}

/// The backend's answer.
#[derive(Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Answer {
    Accept,
    Replace { body: String },
    Reject { reason: Option<String> },
}

impl Moderation {
    /// A moderator for `options`.
    pub fn new(options: &ModerationOptions) -> Result<Self, String> {
        let url = Url::parse(&options.url).map_err(|error| error.to_string())?;
        let tls = if url.tls { Some(tls_connector(options.ca_pem.as_deref())?) } else { None };
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                secret: options.secret.as_bytes().to_vec(),
                timeout: options.timeout,
                fail_open: options.fail_open,
                tls,
                idle: std::sync::Mutex::new(Vec::new()),
                turns: Semaphore::new(CONCURRENT_REVIEWS),
                next_review: AtomicU64::new(1),
                counts: Default::default(),
            }),
        })
    }
}

impl Inner {
    /// Asks the backend; a verdict whatever happens.
    async fn verdict(&self, review: &Review) -> Verdict {
        let request = Request {
            room: &review.room,
            sender: Sender {
                session_id: review.sender.session_id,
                name: &review.sender.name,
                user: review.user.as_deref(),
            },
            sent_at_ms: review.sent_at_ms,
            body: &review.body,
        };
        let body = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
        let id = format!("review-{}", self.next_review.fetch_add(1, Ordering::Relaxed));
        let answer = tokio::time::timeout(self.timeout, self.ask(body, &id)).await;
        let failure = match answer {
            Ok(Ok(answer)) if answer.is_empty() => return self.count(Verdict::Accept),
            Ok(Ok(answer)) => match serde_json::from_slice::<Answer>(&answer) {
                Ok(Answer::Accept) => return self.count(Verdict::Accept),
                Ok(Answer::Replace { body }) => return self.count(Verdict::Replace(body)),
                Ok(Answer::Reject { reason }) => {
                    let reason = reason.unwrap_or_else(|| "moderation refused the message".into());
                    return self.count(Verdict::Reject(reason));
                }
                Err(error) => format!("an answer that is not a verdict: {error}"),
            },
            Ok(Err(failure)) => failure.to_string(),
            Err(_) => "no verdict in time".into(),
        };
        if let Some(left_out) = FAILURE_LOG.allow() {
            tracing::warn!(%failure, fail_open = self.fail_open, left_out, "moderation gave no verdict");
        }
        if self.fail_open {
            self.counts[4].fetch_add(1, Ordering::Relaxed);
            return Verdict::Accept;
        }
        self.count(Verdict::Unavailable(
            "moderation is unavailable, so the message was not sent; try again".into(),
        ))
    }

    /// One request on a connection of the pool, in a turn.
    async fn ask(&self, body: Bytes, id: &str) -> Result<Bytes, crate::endpoint::Failure> {
        let _turn = self.turns.acquire().await;
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let mut endpoint = idle.unwrap_or_else(|| Endpoint::new(self.url.clone(), self.tls.clone()));
        // The outer timeout bounds the whole review; this one only keeps a
        // connection from outliving it.
        let answer = endpoint.post(body, &self.secret, id, self.timeout).await;
        if answer.is_ok() {
            self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(endpoint);
        }
        answer
    }

    fn count(&self, verdict: Verdict) -> Verdict {
        let index = match &verdict {
            Verdict::Accept => 0,
            Verdict::Replace(_) => 1,
            Verdict::Reject(_) => 2,
            Verdict::Unavailable(_) => 3,
        };
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        verdict
    }
}

impl Moderator for Moderation {
    fn review(&self, review: Review, done: Box<dyn FnOnce(Verdict) + Send>) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let verdict = inner.verdict(&review).await;
            done(verdict);
        });
    }

    fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let name = "wtchat_moderation_reviews_total";
        family(
            out,
            name,
            "counter",
            "Messages reviewed by the application's moderation, by verdict (let_through: no verdict, let through as configured).",
        );
        for (verdict, count) in VERDICTS.iter().zip(&self.inner.counts) {
            let _ = writeln!(out, "{name}{{verdict=\"{verdict}\"}} {}", count.load(Ordering::Relaxed));
        }
    }
}
