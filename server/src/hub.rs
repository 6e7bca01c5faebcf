//! The hub: the broadcast core's front door.
//!
//! A transport asks the hub for a [`Session`] per connection and feeds it what
//! arrives; the hub owns the rooms and the list of live sessions, and knows no
//! transport. Everything a chat server decides (names, limits, order,
//! presence, eviction, shutdown) is decided in the core, once, for every
//! transport.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wtchat_protocol::{Closing, ReasonCode};

use crate::admission::{Admission, Refusal, Ticket};
use crate::arrival::Arrival;
use crate::authenticator::Authenticator;
use crate::broker::Broker;
use crate::budgets::KeptBudgets;
use crate::config::{Config, ConfigError};
use crate::cool_down::CoolDowns;
use crate::in_memory_broker::InMemoryBroker;
use crate::log_limit::LogLimit;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, OutboxStats};
use crate::party::Party;
use crate::redis_broker::RedisBroker;
use crate::room_registry::RoomRegistry;
use crate::session::Session;
use crate::user::User;

/// Refused sessions and refused tokens are logged within these budgets: a
/// client churning refused connections must not flood the log.
static REFUSAL_LOG: LogLimit = LogLimit::new();
static TOKEN_LOG: LogLimit = LogLimit::new();

/// The broadcast core.
#[derive(Debug)]
pub struct Hub {
    /// The configuration the hub was started with.
    config: Config,
    /// Every room.
    rooms: RoomRegistry,
    /// Orders the rooms' messages: in this process, or across servers.
    broker: Arc<dyn Broker>,
    /// The outbox of every live session, so that shutdown can reach them. A
    /// std mutex, taken once when a session opens and once when it ends,
    /// never on the message path.
    sessions: Mutex<HashMap<u64, Arc<Outbox>>>,
    /// The next session id; ids are never reused within a process.
    next_session_id: AtomicU64,
    /// Set once shutdown begins; sessions opened after that are closed at once.
    draining: AtomicBool,
    /// Who may open a session, and how many may.
    admission: Arc<Admission>,
    /// Checks tokens when authentication is on.
    authenticator: Option<Authenticator>,
    /// Who was closed for flooding, and until when they are turned away.
    cool_downs: CoolDowns,
    /// What users' closed sessions left of their budgets, for their next.
    kept_budgets: KeptBudgets,
    /// The counters.
    metrics: Metrics,
    /// When the hub started, for `/status`.
    started: Instant,
    /// Signalled when an operator asks for a drain (`POST /admin/drain`);
    /// the server then shuts down as on a signal.
    drain_request: tokio::sync::Notify,
}

impl Hub {
    /// A hub with no sessions and no rooms, for a configuration whose
    /// authentication key can be loaded.
    pub fn new(config: Config) -> Result<Arc<Self>, ConfigError> {
        let authenticator = config.authenticator()?;
        let broker: Arc<dyn Broker> = match &config.redis_url {
            Some(url) => Arc::new(RedisBroker::new(url, config.history_len, config.redis_node_timeout)?),
            None => Arc::new(InMemoryBroker),
        };
        Ok(Arc::new(Self {
            rooms: RoomRegistry::new(
                config.max_rooms,
                config.max_rooms_per_user,
                config.history_len,
                broker.clone(),
            ),
            broker,
            admission: Admission::new(config.admission),
            authenticator,
            cool_downs: CoolDowns::default(),
            kept_budgets: KeptBudgets::default(),
            metrics: Metrics::default(),
            started: Instant::now(),
            drain_request: tokio::sync::Notify::new(),
            config,
            sessions: Mutex::new(HashMap::new()),
            next_session_id: AtomicU64::new(1),
            draining: AtomicBool::new(false),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The rooms.
    pub fn rooms(&self) -> &RoomRegistry {
        &self.rooms
    }

    /// The broker that orders the rooms' messages.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Starts the broker's background work; the server calls it once.
    pub fn start(self: &Arc<Self>) {
        self.broker.clone().start(Arc::downgrade(self));
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<u64, Arc<Outbox>>> {
        // Insert and remove leave the map consistent if they panic.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session for a new connection. A connection the server
    /// turns away (draining, over a limit, no valid token) still gets a
    /// session, already closed with the notice that says why, so that every
    /// refusal reaches the client through the same path as any other close.
    pub fn open_session(self: &Arc<Self>, mut arrival: Arrival) -> Session {
        let id = self.broker.session_id_base() + self.next_session_id.fetch_add(1, Ordering::Relaxed);
        let outbox = Arc::new(Outbox::new(self.config.session.outbound_queue_bytes));
        self.sessions().insert(id, outbox.clone());
        self.metrics.session_opened(arrival.transport);
        let (user, ticket) = match self.admit(&mut arrival) {
            Ok((user, ticket)) => (user, Some(ticket)),
            Err(closing) => {
                outbox.close(closing);
                (None, None)
            }
        };
        Session::new(self.clone(), id, outbox, arrival.transport, user, ticket)
    }

    /// Who a new session is (`None` without authentication) and its place
    /// under admission control, or the notice that turns it away. Refusals
    /// are logged a few a second (`left_out` counts the others; the metrics
    /// count them all).
    fn admit(&self, arrival: &mut Arrival) -> Result<(Option<User>, Ticket), Closing> {
        if self.is_draining() {
            return Err(self.shutdown_notice());
        }
        if !self.broker.is_available() {
            return Err(self.broker_notice());
        }
        let now = tokio::time::Instant::now();
        let overloaded = |refusal: Refusal| {
            if let Some(left_out) = REFUSAL_LOG.allow() {
                tracing::info!(peer = %arrival.peer, reason = refusal.name(), left_out, "refused a session");
            }
            Closing {
                code: ReasonCode::OVERLOADED,
                text: refusal.text().into(),
                retry_after_ms: Some(retry_hint(
                    self.config.refusal_retry_after,
                    self.config.refusal_retry_spread,
                )),
            }
        };
        // The address pays first, then the token is checked, and only a
        // session with a valid token spends the budget every address shares.
        self.admission.arrive(arrival.peer, now).map_err(overloaded)?;
        let user = match &self.authenticator {
            None => None,
            Some(authenticator) => Some(authenticator.verify(arrival.token.as_deref()).map_err(|why| {
                if let Some(left_out) = TOKEN_LOG.allow() {
                    tracing::info!(peer = %arrival.peer, %why, left_out, "refused a token");
                }
                Closing { code: ReasonCode::UNAUTHORIZED, text: why, retry_after_ms: None }
            })?),
        };
        let party = Party::of(user.as_ref().map(|user| user.id.as_str()), arrival.peer);
        if let Some(left) = self.cool_downs.remaining(&party, now) {
            return Err(Closing {
                code: ReasonCode::FLOODING,
                text: "still waiting out the flooding that closed an earlier session".into(),
                retry_after_ms: Some(u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1)),
            });
        }
        let ticket = match arrival.place.take() {
            // The transport holds the connection's place already; the
            // session still pays its share of the arrival rate.
            Some(place) => self.admission.charge_rate(now).map(|()| place),
            None => self.admission.admit(arrival.peer, now),
        }
        .map_err(overloaded)?;
        Ok((user, ticket))
    }

    /// Who is turned away for flooding.
    pub fn cool_downs(&self) -> &CoolDowns {
        &self.cool_downs
    }

    /// What closed sessions left of their budgets.
    pub fn kept_budgets(&self) -> &KeptBudgets {
        &self.kept_budgets
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Admission control's state.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// Whether sessions must present a token.
    pub fn requires_token(&self) -> bool {
        self.authenticator.is_some()
    }

    /// How long the hub has run.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every live session's outbox figures, for the metrics.
    pub fn outbox_stats(&self) -> Vec<OutboxStats> {
        let outboxes: Vec<Arc<Outbox>> = self.sessions().values().cloned().collect();
        outboxes.iter().map(|outbox| outbox.stats()).collect()
    }

    /// Forgets a session that ended.
    pub(crate) fn unregister(&self, session_id: u64) {
        self.sessions().remove(&session_id);
    }

    /// How many sessions are live.
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// Begins a graceful shutdown: every session gets what is already queued
    /// for it, then a `SERVER_SHUTDOWN` notice with its own retry hint, then
    /// its transport is closed.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.close_all(|| self.shutdown_notice());
    }

    /// Closes every session after the broker's link was lost: a member can
    /// no longer be sure to see every message of its rooms, so each client
    /// reconnects after its hint and resumes from its last sequence number,
    /// which tells it exactly what it missed. New sessions are turned away
    /// with the same notice until the link is back.
    pub fn broker_lost(&self) {
        self.close_all(|| self.broker_notice());
    }

    fn close_all(&self, notice: impl Fn() -> Closing) {
        let outboxes: Vec<Arc<Outbox>> = self.sessions().values().cloned().collect();
        for outbox in outboxes {
            outbox.close(notice());
        }
    }

    /// Asks the server to drain and exit, as a signal would.
    pub fn request_drain(&self) {
        self.drain_request.notify_one();
    }

    /// Completes once a drain has been requested.
    pub async fn drain_requested(&self) {
        self.drain_request.notified().await;
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Waits until every session has ended or `timeout` passes; returns
    /// whether they all ended.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.session_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The notice of a server that cannot reach its broker.
    fn broker_notice(&self) -> Closing {
        Closing {
            code: ReasonCode::BROKER_UNAVAILABLE,
            text: "the server lost its link to the message broker; reconnect after the retry hint and resume"
                .into(),
            retry_after_ms: Some(retry_hint(
                self.config.refusal_retry_after,
                self.config.refusal_retry_spread,
            )),
        }
    }

    /// A shutdown notice with a retry hint spread at random over the
    /// configured window, so that a restart is not met by every client at
    /// the same instant.
    fn shutdown_notice(&self) -> Closing {
        Closing {
            code: ReasonCode::SERVER_SHUTDOWN,
            text: "the server is shutting down; reconnect after the retry hint".into(),
            retry_after_ms: Some(retry_hint(
                self.config.shutdown_retry_after,
                self.config.shutdown_retry_spread,
            )),
        }
    }
}

/// A retry hint in milliseconds: `base` plus a random share of `spread`, so
/// that clients told to come back together do not all come back at once.
pub fn retry_hint(base: Duration, spread: Duration) -> u32 {
    let spread = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    let base = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    u32::try_from(base.saturating_add(fastrand::u64(0..=spread))).unwrap_or(u32::MAX)
}

/// The wall clock in milliseconds since the Unix epoch, for message
/// timestamps.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hints_are_spread() {
        let hints: std::collections::HashSet<u32> =
            (0..50).map(|_| retry_hint(Duration::from_secs(1), Duration::from_secs(4))).collect();
        assert!(hints.iter().all(|h| (1000..=5000).contains(h)));
        assert!(hints.len() > 10, "the hints are not all the same");
    }
}
