//! The hub: the broadcast core's front door.
//!
//! A transport opens a [`Session`](crate::session::Session) per connection
//! through the hub's admission and feeds it what arrives; the hub owns the
//! rooms, the list of live sessions and the broker (if any), and knows no
//! transport. Everything a chat server decides (names, limits, order,
//! presence, eviction, shutdown) is decided in the core, once, for every
//! transport.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use wtchat_protocol::Closing;

use crate::admission::{Admission, Refusal, Ticket};
use crate::announcer::Announcer;
use crate::arrival::{Arrival, TransportKind};
use crate::authenticator::Authenticator;
use crate::broker::{Broker, BrokerHost, BrokerStatus, Disconnect, RoomHandle};
use crate::budgets::KeptBudgets;
pub use crate::clock::unix_millis;
use crate::closing;
use crate::config::HubConfig;
use crate::cool_down::CoolDowns;
use crate::history::HistoryPolicy;
use crate::log_limit::LogLimit;
use crate::metrics::{Metrics, family};
use crate::moderation::Moderator;
use crate::outbox::{Outbox, OutboxStats};
use crate::party::Party;
use crate::room::Applied;
use crate::room_event::{EventMember, RoomEvent, Snapshot};
use crate::room_registry::RoomRegistry;
use crate::user::User;

/// Refused sessions and refused tokens are logged within these budgets: a
/// client churning refused connections must not flood the log.
static REFUSAL_LOG: LogLimit = LogLimit::new();
static TOKEN_LOG: LogLimit = LogLimit::new();

/// What the application's backend takes part in: the events it is told,
/// and the review of members' messages. Neither by default.
#[derive(Debug, Default)]
pub struct BackendHooks {
    /// Where events are announced.
    pub announcer: Option<Announcer>,
    /// Who reviews messages.
    pub moderator: Option<Arc<dyn Moderator>>,
}

/// The broadcast core. A transport opens a
/// [`Session`](crate::session::Session) per connection through it.
#[derive(Debug)]
pub struct Hub {
    /// The configuration the hub was started with.
    config: HubConfig,
    /// Every room.
    rooms: RoomRegistry,
    /// Orders the rooms' messages across servers; `None` when this server is
    /// alone and its rooms number their own messages.
    broker: Option<Arc<dyn Broker>>,
    /// Where the application's backend hears what happens in the rooms, if
    /// it does.
    announcer: Option<Announcer>,
    /// Who reviews members' messages before they are published, if anyone.
    moderator: Option<Arc<dyn Moderator>>,
    /// The outbox of every live session, so that shutdown can reach them. A
    /// std mutex, taken once when a session opens and once when it ends,
    /// never on the message path.
    sessions: Mutex<HashMap<u64, (Arc<Outbox>, TransportKind)>>,
    /// Who each authenticated session's user is, so that the application's
    /// backend can disconnect a user; empty without authentication, so that
    /// anonymous sessions pay nothing for it.
    users: Mutex<HashMap<u64, Arc<str>>>,
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
    /// A hub with no sessions and no rooms; `authenticator` checks tokens
    /// when authentication is on, and `broker` orders the rooms when they
    /// span servers. Call [`Hub::start`] once it is wired.
    pub fn new(
        config: HubConfig,
        authenticator: Option<Authenticator>,
        broker: Option<Arc<dyn Broker>>,
    ) -> Arc<Self> {
        Self::with_backend(config, authenticator, broker, BackendHooks::default())
    }

    /// A hub that also tells the application's backend what happens in its
    /// rooms, or has it review messages, through `hooks`.
    pub fn with_backend(
        config: HubConfig,
        authenticator: Option<Authenticator>,
        broker: Option<Arc<dyn Broker>>,
        hooks: BackendHooks,
    ) -> Arc<Self> {
        let BackendHooks { announcer, moderator } = hooks;
        Arc::new(Self {
            rooms: RoomRegistry::new(
                config.max_rooms,
                config.max_rooms_per_user,
                HistoryPolicy { keep: config.history_len, replay: config.history_replay },
                broker.clone(),
                config.presence,
                announcer.clone(),
            ),
            broker,
            announcer,
            moderator,
            admission: Admission::new(config.admission),
            authenticator,
            cool_downs: CoolDowns::default(),
            kept_budgets: KeptBudgets::default(),
            metrics: Metrics::default(),
            started: Instant::now(),
            drain_request: tokio::sync::Notify::new(),
            config,
            sessions: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            next_session_id: AtomicU64::new(1),
            draining: AtomicBool::new(false),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The rooms.
    pub fn rooms(&self) -> &RoomRegistry {
        &self.rooms
    }

    /// The broker that orders the rooms' messages across servers, if any.
    pub fn broker(&self) -> Option<&Arc<dyn Broker>> {
        self.broker.as_ref()
    }

    /// Where the application's backend hears what happens, if it does.
    pub fn announcer(&self) -> Option<&Announcer> {
        self.announcer.as_ref()
    }

    /// Who reviews members' messages, if anyone.
    pub fn moderator(&self) -> Option<&Arc<dyn Moderator>> {
        self.moderator.as_ref()
    }

    /// Whether this room can order messages now: always without a broker.
    pub fn room_available(&self, room: &str) -> bool {
        self.broker.as_ref().is_none_or(|broker| broker.room_available(room))
    }

    /// Whether rooms can order messages now: always without a broker.
    pub fn broker_available(&self) -> bool {
        self.broker.as_ref().is_none_or(|broker| broker.is_available())
    }

    /// What the broker reports of itself, if there is one.
    pub fn broker_status(&self) -> Option<BrokerStatus> {
        self.broker.as_ref().map(|broker| broker.status())
    }

    /// Starts the broker's background work; the server calls it once. The
    /// broker holds the hub weakly, so dropping the hub ends that work.
    pub fn start(self: &Arc<Self>) {
        if let Some(broker) = &self.broker {
            let host: Arc<dyn BrokerHost> = self.clone();
            broker.start(Arc::downgrade(&host));
        }
        tokio::spawn(tell_presence(Arc::downgrade(self), self.config.presence.interval));
    }

    /// Has every room whose membership changed since the last interval tell
    /// its members; the server's timer calls it every presence interval.
    pub fn flush_presence(&self) {
        self.rooms.flush_presence();
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<u64, (Arc<Outbox>, TransportKind)>> {
        // Insert and remove leave the map consistent if they panic.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives a new session its id and its outbox, and lists it among the
    /// live sessions (see [`Session::open`](crate::session::Session::open)).
    pub(crate) fn enrol(&self, transport: TransportKind) -> (u64, Arc<Outbox>) {
        let base = self.broker.as_ref().map_or(0, |broker| broker.session_id_base());
        let id = base + self.next_session_id.fetch_add(1, Ordering::Relaxed);
        let outbox = Arc::new(Outbox::new(self.config.session.outbound_queue_bytes));
        self.sessions().insert(id, (outbox.clone(), transport));
        self.metrics.session_opened(transport);
        (id, outbox)
    }

    /// Who a new session is (`None` without authentication) and its place
    /// under admission control, or the notice that turns it away. Refusals
    /// are logged a few a second (`left_out` counts the others; the metrics
    /// count them all).
    pub(crate) fn admit(&self, arrival: &mut Arrival) -> Result<(Option<User>, Ticket), Closing> {
        let hints = &self.config.retry_hints;
        if self.is_draining() {
            return Err(closing::shutdown(hints));
        }
        if !self.broker_available() {
            return Err(closing::broker_unavailable(hints));
        }
        let now = tokio::time::Instant::now();
        let overloaded = |refusal: Refusal| {
            if let Some(left_out) = REFUSAL_LOG.allow() {
                tracing::info!(peer = %arrival.peer, reason = refusal.name(), left_out, "refused a session");
            }
            closing::overloaded(refusal.text(), hints)
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
                closing::unauthorized(why)
            })?),
        };
        let party = Party::of(user.as_ref().map(|user| user.id.as_str()), arrival.peer);
        if let Some(left) = self.cool_downs.remaining(&party, now) {
            return Err(closing::still_cooling_down(left));
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

    /// The Prometheus text exposition of every figure the core keeps: the
    /// counters, the rooms, the broker's state, admission's refusals and
    /// the uptime.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        self.metrics.render(out, &self.outbox_stats());
        let mut gauge = |name: &str, help: &str, value: u64| {
            family(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        };
        gauge("wtchat_rooms", "Rooms that exist now.", self.rooms.len() as u64);
        let status = self.broker_status();
        gauge(
            "wtchat_broker_available",
            "1 while the broker (in memory, or the links to every Redis) can order messages.",
            u64::from(status.as_ref().is_none_or(|status| status.available)),
        );
        gauge("wtchat_uptime_seconds", "Seconds since the server started.", self.uptime().as_secs());
        if let Some(status) = status {
            family(out, "wtchat_broker_link_losses_total", "counter", "Times the link to Redis was lost.");
            let _ = writeln!(out, "wtchat_broker_link_losses_total {}", status.link_losses);
            family(
                out,
                "wtchat_broker_shard_available",
                "gauge",
                "1 while the link to each Redis (shard) is up.",
            );
            for (index, shard) in status.shards.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "wtchat_broker_shard_available{{shard=\"{index}\"}} {}",
                    u8::from(shard.available)
                );
            }
        }
        if let Some(announcer) = &self.announcer {
            announcer.render_metrics(out);
        }
        if let Some(moderator) = &self.moderator {
            moderator.render_metrics(out);
        }
        family(
            out,
            "wtchat_admission_refusals_total",
            "counter",
            "Sessions turned away by admission control, by limit.",
        );
        for (limit, count) in self.admission.refusals() {
            let _ = writeln!(out, "wtchat_admission_refusals_total{{limit=\"{limit}\"}} {count}");
        }
    }

    /// Admission control's state.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// What checks tokens, when authentication is on.
    pub(crate) fn authenticator(&self) -> Option<&Authenticator> {
        self.authenticator.as_ref()
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
        let outboxes: Vec<Arc<Outbox>> = self.sessions().values().map(|(outbox, _)| outbox.clone()).collect();
        outboxes.iter().map(|outbox| outbox.stats()).collect()
    }

    /// Notes whose a session is, once its token is verified.
    pub(crate) fn identify(&self, session_id: u64, user: &str) {
        self.users.lock().unwrap_or_else(PoisonError::into_inner).insert(session_id, user.into());
    }

    /// Forgets a session that ended.
    pub(crate) fn unregister(&self, session_id: u64) {
        self.sessions().remove(&session_id);
        if self.authenticator.is_some() {
            self.users.lock().unwrap_or_else(PoisonError::into_inner).remove(&session_id);
        }
    }

    /// Closes sessions on this server with `DISCONNECTED` and the reason
    /// given: one by id, or every session of a user (the `sub` of their
    /// token). Returns how many were live here.
    pub fn disconnect(&self, target: &Disconnect, reason: Option<&str>) -> usize {
        let ids: Vec<u64> = match target {
            Disconnect::Session(id) => vec![*id],
            Disconnect::User(user) => {
                let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
                users.iter().filter(|(_, u)| &***u == user).map(|(id, _)| *id).collect()
            }
        };
        let outboxes: Vec<Arc<Outbox>> = {
            let sessions = self.sessions();
            ids.iter().filter_map(|id| sessions.get(id).map(|(outbox, _)| outbox.clone())).collect()
        };
        for outbox in &outboxes {
            outbox.close(closing::disconnected(reason));
        }
        outboxes.len()
    }

    /// The transport of a session live on this server, for operators.
    pub fn transport_of(&self, session_id: u64) -> Option<TransportKind> {
        self.sessions().get(&session_id).map(|(_, transport)| *transport)
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
        self.close_all(|| closing::shutdown(&self.config.retry_hints));
    }

    fn close_all(&self, notice: impl Fn() -> Closing) {
        let outboxes: Vec<Arc<Outbox>> = self.sessions().values().map(|(outbox, _)| outbox.clone()).collect();
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
}

/// What the hub does for its broker: rooms are found by name, and a
/// snapshot reaches only the incarnation of the room it was taken for.
impl BrokerHost for Hub {
    fn rooms_to_resync(&self, which: &dyn Fn(&str) -> bool) -> Vec<RoomHandle> {
        let rooms: Vec<_> = self.rooms.all().into_iter().filter(|room| which(room.name())).collect();
        for room in &rooms {
            room.resync();
        }
        rooms.iter().map(|room| room.handle()).collect()
    }

    fn is_open(&self, room: &str) -> bool {
        self.rooms.get(room).is_some()
    }

    fn snapshot(&self, room: &RoomHandle, snapshot: Snapshot) -> bool {
        match self.rooms.get(&room.name) {
            Some(current) if current.incarnation() == room.incarnation => {
                current.synced(snapshot);
                // The joins that waited for it are arrivals to tell.
                self.rooms.presence_changed(&current);
                true
            }
            _ => false,
        }
    }

    fn apply(&self, room: &str, event: RoomEvent) -> Option<RoomHandle> {
        let room = self.rooms.get(room)?;
        let started = std::time::Instant::now();
        match room.apply(event) {
            Applied::Delivered(recipients) => {
                self.metrics.published(recipients, started.elapsed());
                None
            }
            Applied::PresenceChanged => {
                self.rooms.presence_changed(&room);
                None
            }
            Applied::Typing(member) => {
                room.typing(&member, self.rooms.presence());
                None
            }
            Applied::Noted => None,
            Applied::Resync => Some(room.handle()),
        }
    }

    fn link_lost(&self, which: &dyn Fn(&str) -> bool) {
        let notice = closing::broker_unavailable(&self.config.retry_hints);
        for room in self.rooms.all().into_iter().filter(|room| which(room.name())) {
            room.close_members(&notice);
        }
    }

    fn disconnect(&self, target: &Disconnect, reason: Option<&str>) {
        let closed = Hub::disconnect(self, target, reason);
        tracing::debug!(?target, closed, "disconnected at another server's request");
    }

    fn reaped(&self, room: &str, member: EventMember, members_left: u64) {
        let Some(announcer) = &self.announcer else { return };
        let open = self.rooms.get(room);
        let name = open.as_ref().map_or_else(|| Arc::from(room), |open| open.name().clone());
        let after = open.and_then(|open| open.position());
        announcer.member(&name, wtchat_protocol::PresenceChange::Disconnected, member, None, after);
        if members_left == 0 {
            announcer.vacated(&name);
        }
    }
}

/// Every presence interval, has the rooms with changes tell them, until
/// the hub is gone.
async fn tell_presence(hub: std::sync::Weak<Hub>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        hub.flush_presence();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use wtchat_protocol::{ClientFrame, ClientMessage, PROTOCOL_VERSION, ServerMessage, encode};

    use super::*;
    use crate::arrival::TransportKind;
    use crate::broker::{BrokerUnavailable, Publish};
    use crate::outbox::Next;
    use crate::session::{Inbound, Session};

    /// A broker that only records which rooms it was asked to open: the
    /// seam's own view, with the link's timing in the test's hands.
    #[derive(Debug, Default)]
    struct RecordingBroker {
        opened: Mutex<Vec<RoomHandle>>,
    }

    impl Broker for RecordingBroker {
        fn start(&self, _host: std::sync::Weak<dyn BrokerHost>) {}
        fn is_available(&self) -> bool {
            true
        }
        fn room_available(&self, _room: &str) -> bool {
            true
        }
        fn session_id_base(&self) -> u64 {
            0
        }
        fn room_opened(&self, room: RoomHandle) {
            self.opened.lock().unwrap().push(room);
        }
        fn room_closed(&self, _room: &Arc<str>) {}
        fn presence(
            &self,
            _room: &Arc<str>,
            _member: EventMember,
            _change: wtchat_protocol::PresenceChange,
            _announce: Option<crate::announcer::PresenceToAnnounce>,
        ) {
        }
        fn publish(&self, _room: &Arc<str>, _publish: Publish) -> Result<(), BrokerUnavailable> {
            Ok(())
        }
        fn typing(&self, _room: &Arc<str>, _member: EventMember) {}
        fn peek(
            &self,
            _room: &Arc<str>,
            reply: tokio::sync::oneshot::Sender<
                Result<Option<crate::room_event::Snapshot>, BrokerUnavailable>,
            >,
        ) {
            let _ = reply.send(Ok(None));
        }
        fn rooms(
            &self,
            _after: &str,
            _limit: usize,
            reply: tokio::sync::oneshot::Sender<Result<crate::broker::RoomCounts, BrokerUnavailable>>,
        ) {
            let _ = reply.send(Ok(Vec::new()));
        }
        fn disconnect(&self, _target: &Disconnect, _reason: Option<&str>) {}
        fn status(&self) -> BrokerStatus {
            BrokerStatus::default()
        }
    }

    fn say(session: &mut Session, request_id: u32, message: ClientMessage) {
        let inbound = Inbound::Frame(encode(&ClientFrame { request_id, message }).into());
        session.receive(inbound, tokio::time::Instant::now());
    }

    fn joined_room(room: &str) -> ClientMessage {
        ClientMessage::Join { room: room.into(), display_name: "t".into(), resume: None }
    }

    fn greeted(hub: &Arc<Hub>) -> Session {
        let mut session = Session::open(hub, Arrival::local(TransportKind::WebSocket));
        let hello = ClientMessage::Hello {
            protocol_version: u16::from(PROTOCOL_VERSION),
            client_name: "t".into(),
            fallback: None,
        };
        say(&mut session, 1, hello);
        session
    }

    /// The epochs of the `Joined` answers queued for a session.
    async fn joined_epochs(session: &Session) -> Vec<u64> {
        let mut batch = Vec::new();
        if session.outbox().queued_bytes() > 0 {
            assert!(matches!(session.outbox().next(&mut batch).await, Next::Frames));
            // As a transport would: what was taken is written.
            session.outbox().written(batch.len(), batch.iter().map(crate::frame::Frame::len).sum());
        }
        batch
            .iter()
            .filter_map(|frame| match wtchat_protocol::decode(&frame.body(), usize::MAX).unwrap() {
                ServerMessage::Joined(joined) => Some(joined.epoch),
                _ => None,
            })
            .collect()
    }

    fn snapshot(epoch: u64) -> Snapshot {
        Snapshot { epoch, last_seq: 0, history: Vec::new(), members: Vec::new() }
    }

    #[tokio::test]
    async fn a_room_closed_and_recreated_does_not_take_its_predecessors_snapshot() {
        let broker = Arc::new(RecordingBroker::default());
        let hub = Hub::new(HubConfig::for_tests(), None, Some(broker.clone()));
        let mut first = greeted(&hub);
        say(&mut first, 2, joined_room("r"));
        drop(first);
        let mut second = greeted(&hub);
        joined_epochs(&second).await;
        say(&mut second, 2, joined_room("r"));
        let opened = broker.opened.lock().unwrap().clone();
        let [old, new] = &opened[..] else { panic!("{opened:?}") };
        assert_eq!(old.name, new.name);
        assert_ne!(old.incarnation, new.incarnation, "a recreated room is a new incarnation");

        // The link answers the first open late, after the room was
        // recreated: the snapshot was taken for a room that is gone.
        assert!(!hub.snapshot(old, snapshot(5)), "the old incarnation's snapshot is refused");
        assert!(
            joined_epochs(&second).await.is_empty(),
            "the joiner still waits for its own room's snapshot"
        );
        assert!(hub.snapshot(new, snapshot(7)));
        assert_eq!(
            joined_epochs(&second).await,
            vec![7],
            "the join is answered from its own room's snapshot"
        );
    }

    #[tokio::test]
    async fn a_broken_feed_asks_the_broker_to_open_that_room_again() {
        let broker = Arc::new(RecordingBroker::default());
        let hub = Hub::new(HubConfig::for_tests(), None, Some(broker.clone()));
        let mut member = greeted(&hub);
        say(&mut member, 2, joined_room("r"));
        let handle = broker.opened.lock().unwrap()[0].clone();
        assert!(hub.snapshot(&handle, snapshot(3)));
        let sender = EventMember { session_id: 99, name: "far".into() };
        let message = |seq| RoomEvent::Message {
            epoch: 3,
            seq,
            sender: sender.clone(),
            sent_at_ms: 0,
            body: "m".into(),
        };
        assert_eq!(hub.apply("r", message(1)), None);
        assert_eq!(hub.metrics().published_count(), 1, "a delivered feed message is counted once");
        assert_eq!(hub.apply("r", message(3)), Some(handle), "number 2 never came");
        assert_eq!(hub.apply("elsewhere", message(1)), None, "a room this server does not hold is ignored");
    }
}
