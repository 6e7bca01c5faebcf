//! The Redis broker: rooms that span several servers.
//!
//! Each server subscribes (Redis pub/sub) to the rooms it has members in.
//! A publish runs a Lua script that gives the message the room's next
//! sequence number, appends it to the room's history stream and publishes
//! it, in one atomic step; every subscribed server, this one included,
//! receives the messages of a room in that one order and turns each into
//! one shared frame for its own members. What lives in Redis is listed in
//! `keys.rs`; how it is written, in `feed.rs`; the scripts' arguments, in
//! `scripts.rs`.
//!
//! All Redis work happens on one task (`link.rs`), in the order sessions
//! asked for it, with consecutive writes sent as one pipeline; sessions only
//! queue commands and never wait. When the link fails (a connection drops, a
//! heartbeat times out), the host closes every session with
//! `BROKER_UNAVAILABLE` and a retry hint, new sessions are turned away the
//! same way, and the task reconnects by itself; clients then resume from
//! their last sequence number on whichever server they reach.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use wtchat_core::announcer::PresenceToAnnounce;
use wtchat_core::broker::{
    Broker, BrokerHost, BrokerStatus, BrokerUnavailable, Disconnect, Publish, RoomCounts, RoomHandle,
};
use wtchat_core::room_event::{EventMember, Snapshot};
use wtchat_protocol::PresenceChange;

use crate::command::Command;
use crate::keys::Keys;
use crate::link::{Link, NODE_SHIFT, Shared};
use crate::scripts::Scripts;

/// Publishes waiting for Redis beyond which new ones are refused with
/// `BROKER_UNAVAILABLE` rather than queued without bound.
const MAX_QUEUED_PUBLISHES: usize = 100_000;

/// What the broker needs to know.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db`.
    pub url: String,
    /// How many messages rooms keep.
    pub history_len: usize,
    /// How long a server may stay silent before the others remove its
    /// members.
    pub node_timeout: Duration,
    /// How often this server announces its members' arrivals and
    /// departures on each room's feed.
    pub presence_interval: Duration,
    /// How long a lost link may stay lost before the sessions are closed;
    /// a link back within it resyncs the rooms instead.
    pub grace: Duration,
    /// What every key and channel's name starts with.
    pub key_prefix: String,
    /// How long a room's history and numbering outlive its last message.
    pub history_retention: Duration,
}

/// The broker of a server that shares its rooms through Redis.
pub struct RedisBroker {
    /// Commands for the link task: the one strong sender, so that the task
    /// ends when this broker (and with it the hub) is dropped.
    commands: mpsc::UnboundedSender<Command>,
    /// The task's state, taken when it starts.
    link: Mutex<Option<Link>>,
    /// What the task reports.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker").field("shared", &self.shared).finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// A broker for the Redis at the options' URL; nothing connects until
    /// [`Broker::start`].
    pub fn new(options: &RedisOptions) -> Result<Self, String> {
        let client = redis::Client::open(options.url.as_str())
            .map_err(|error| format!("redis_url {:?} is not usable: {error}", options.url))?;
        let (commands, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let link = Link {
            client,
            queue,
            requeue: commands.downgrade(),
            shared: shared.clone(),
            history_len: options.history_len,
            node_timeout: options.node_timeout,
            presence_interval: options.presence_interval,
            grace: options.grace,
            scripts: Scripts::new(Keys::new(&options.key_prefix), options.history_retention.as_secs()),
        };
        Ok(Self { commands, link: Mutex::new(Some(link)), shared })
    }

    fn send(&self, command: Command) {
        // The receiver lives as long as the link task, which ends only after
        // this sender is dropped; a send before the start is queued.
        let _ = self.commands.send(command);
    }
}

impl Broker for RedisBroker {
    fn start(&self, host: Weak<dyn BrokerHost>) {
        let Some(link) = self.link.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        tokio::spawn(link.run(host));
    }

    fn is_available(&self) -> bool {
        self.shared.available.load(Ordering::Acquire)
    }

    fn session_id_base(&self) -> u64 {
        // Node ids stay far below 2^21, so ids stay below 2^53.
        self.shared.node_id.load(Ordering::Relaxed) << NODE_SHIFT
    }

    fn room_opened(&self, room: RoomHandle) {
        self.send(Command::Open(room));
    }

    fn room_closed(&self, room: &Arc<str>) {
        self.send(Command::Close(room.clone()));
    }

    fn presence(
        &self,
        room: &Arc<str>,
        member: EventMember,
        change: PresenceChange,
        announce: Option<PresenceToAnnounce>,
    ) {
        self.send(Command::Presence(room.clone(), member, change, announce));
    }

    fn publish(&self, room: &Arc<str>, publish: Publish) -> Result<(), BrokerUnavailable> {
        let queued = &self.shared.queued_publishes;
        if !self.is_available() || queued.load(Ordering::Relaxed) >= MAX_QUEUED_PUBLISHES {
            return Err(BrokerUnavailable);
        }
        queued.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Publish(room.clone(), publish));
        Ok(())
    }

    fn peek(&self, room: &Arc<str>, reply: oneshot::Sender<Result<Option<Snapshot>, BrokerUnavailable>>) {
        if self.is_available() {
            self.send(Command::Peek(room.clone(), reply));
        } else {
            let _ = reply.send(Err(BrokerUnavailable));
        }
    }

    fn rooms(
        &self,
        after: &str,
        limit: usize,
        reply: oneshot::Sender<Result<RoomCounts, BrokerUnavailable>>,
    ) {
        if self.is_available() {
            self.send(Command::Rooms(after.to_owned(), limit, reply));
        } else {
            let _ = reply.send(Err(BrokerUnavailable));
        }
    }

    fn disconnect(&self, target: &Disconnect, reason: Option<&str>) {
        if self.is_available() {
            self.send(Command::Disconnect(target.clone(), reason.map(str::to_owned)));
        }
    }

    fn typing(&self, room: &Arc<str>, member: EventMember) {
        if self.is_available() {
            self.send(Command::Typing(room.clone(), member));
        }
    }

    fn status(&self) -> BrokerStatus {
        BrokerStatus {
            kind: "redis",
            available: self.is_available(),
            node_id: self.shared.node_id.load(Ordering::Relaxed),
            link_losses: self.shared.link_losses.load(Ordering::Relaxed),
            queued_publishes: self.shared.queued_publishes.load(Ordering::Relaxed) as u64,
        }
    }
}
