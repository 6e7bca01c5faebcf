//! The Redis broker: rooms that span several servers.
//!
//! Each server subscribes (Redis pub/sub) to the rooms it has members in.
//! A publish runs a Lua script that gives the message the room's next
//! sequence number, appends it to the room's history stream and publishes
//! it, in one atomic step; every subscribed server, this one included,
//! receives the messages of a room in that one order and turns each into
//! one shared frame for its own members.
//!
//! What lives in Redis (`{r}` is a room name, `{n}` a server's node id):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `wtchat:room:{r}:meta` | hash | `epoch` and the last `seq` |
//! | `wtchat:room:{r}:history` | stream | the last `history_len` messages, entry id `{seq}-1` |
//! | `wtchat:room:{r}:members` | hash | session id → `"{n} {name}"`, for every server |
//! | `wtchat:room:{r}:events` | channel | the room's feed (see [`RoomEvent`]) |
//! | `wtchat:node:{n}` | hash | `"{session} {room}"` → name: what to remove if `{n}` dies |
//! | `wtchat:nodes` | sorted set | node id → when it was last heard of (Redis's clock) |
//! | `wtchat:node-ids` | counter | hands out node ids |
//!
//! All Redis work happens on one task, in the order sessions asked for it,
//! with consecutive writes sent as one pipeline; sessions only queue
//! commands and never wait. When the link fails (a connection drops, a
//! heartbeat times out), every session is closed with `BROKER_UNAVAILABLE`
//! and a retry hint, new sessions are turned away the same way, and the task
//! reconnects by itself; clients then resume from their last sequence
//! number on whichever server they reach.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{AsyncConnectionConfig, Script, Value};
use tokio::sync::mpsc;
use wtchat_protocol::PresenceChange;

use crate::broker::{Broker, BrokerUnavailable, Published};
use crate::config::ConfigError;
use crate::frame::Frame;
use crate::hub::Hub;
use crate::outbox::Outbox;
use crate::room::{Applied, Room, RoomMember, Snapshot};
use crate::room_event::{EventMember, RoomEvent};

/// How long a connection attempt or a command may take before the link is
/// considered lost.
const LINK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a room's history and numbering outlive its last message.
const ROOM_TTL_SECS: u64 = 7 * 24 * 3600;

/// Publishes waiting for Redis beyond which new ones are refused with
/// `BROKER_UNAVAILABLE` rather than queued without bound.
const MAX_QUEUED_PUBLISHES: usize = 100_000;

/// Commands sent to Redis in one pipeline at most.
const MAX_BATCH: usize = 512;

/// What sessions ask of Redis, in order.
#[derive(Debug)]
enum Command {
    /// Subscribe to a room and start it from a snapshot.
    Open(Arc<Room>),
    /// Unsubscribe from a room this server no longer has members in.
    Close(Arc<str>),
    /// Publish a message.
    Publish {
        /// The room.
        room: Arc<str>,
        /// The sender.
        sender: EventMember,
        /// When the server accepted it.
        sent_at_ms: u64,
        /// The text.
        body: String,
        /// The publish request, for an error answer.
        request_id: u32,
        /// Where an error answer goes.
        outbox: Arc<Outbox>,
    },
    /// Record a member's arrival or departure and announce it.
    Presence {
        /// The room.
        room: Arc<str>,
        /// Who.
        member: EventMember,
        /// What happened.
        change: PresenceChange,
    },
    /// Announce that a member is typing.
    Typing {
        /// The room.
        room: Arc<str>,
        /// Who.
        member: EventMember,
    },
}

/// The Lua scripts, loaded into Redis on every new link.
#[derive(Debug)]
struct Scripts {
    publish: Script,
    snapshot: Script,
    presence: Script,
    heartbeat: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            publish: Script::new(include_str!("lua/publish.lua")),
            snapshot: Script::new(include_str!("lua/snapshot.lua")),
            presence: Script::new(include_str!("lua/presence.lua")),
            heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
        }
    }

    fn all(&self) -> [&Script; 4] {
        [&self.publish, &self.snapshot, &self.presence, &self.heartbeat]
    }
}

/// The broker of a server that shares its rooms through Redis.
#[derive(Debug)]
pub struct RedisBroker {
    /// Where Redis is.
    client: redis::Client,
    /// Commands for the link task.
    commands: mpsc::UnboundedSender<Command>,
    /// The other end, taken by the link task when it starts.
    queue: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
    /// How many publishes wait in `commands`.
    queued_publishes: Arc<AtomicUsize>,
    /// Whether the link is up.
    available: AtomicBool,
    /// This server's id among those sharing the Redis; 0 until the first
    /// link hands one out.
    node_id: AtomicU64,
    /// How many times the link was lost.
    link_losses: AtomicU64,
    /// How many messages rooms keep.
    history_len: usize,
    /// How long a silent server keeps its members.
    node_timeout: Duration,
    /// The scripts.
    scripts: Scripts,
}

impl RedisBroker {
    /// A broker for the Redis at `url`; nothing connects until [`Broker::start`].
    pub fn new(url: &str, history_len: usize, node_timeout: Duration) -> Result<Self, ConfigError> {
        let client = redis::Client::open(url)
            .map_err(|error| ConfigError::Invalid(format!("redis_url {url:?} is not usable: {error}")))?;
        let (commands, queue) = mpsc::unbounded_channel();
        Ok(Self {
            client,
            commands,
            queue: Mutex::new(Some(queue)),
            queued_publishes: Arc::new(AtomicUsize::new(0)),
            available: AtomicBool::new(false),
            node_id: AtomicU64::new(0),
            link_losses: AtomicU64::new(0),
            history_len,
            node_timeout,
            scripts: Scripts::new(),
        })
    }

    fn send(&self, command: Command) {
        // The receiver lives as long as the link task, which lives as long
        // as the hub; a send after that has nobody to tell.
        let _ = self.commands.send(command);
    }

    /// Connects, reconnects after every loss, and serves each link.
    async fn run(self: Arc<Self>, hub: Weak<Hub>, mut queue: mpsc::UnboundedReceiver<Command>) {
        loop {
            match self.connect().await {
                Ok(link) => {
                    tracing::info!(node = self.node_id.load(Ordering::Relaxed), "linked to Redis");
                    if let Some(hub) = hub.upgrade() {
                        // Rooms that outlived a lost link have missed their
                        // feed; they start again from a snapshot.
                        for room in hub.rooms().all() {
                            room.resync();
                            self.send(Command::Open(room));
                        }
                    }
                    self.available.store(true, Ordering::Release);
                    let why = self.serve(link, &hub, &mut queue).await;
                    self.available.store(false, Ordering::Release);
                    self.link_losses.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%why, "lost the link to Redis; closing every session until it is back");
                    let Some(hub) = hub.upgrade() else { return };
                    hub.broker_lost();
                }
                Err(error) => tracing::warn!(%error, "cannot link to Redis; trying again"),
            }
            if hub.strong_count() == 0 {
                return;
            }
            // What was asked while the link was down cannot be run.
            self.discard(std::iter::from_fn(|| queue.try_recv().ok()));
            tokio::time::sleep(Duration::from_millis(500 + fastrand::u64(0..500))).await;
        }
    }

    /// Drops commands that cannot be run, answering publishes.
    fn discard(&self, commands: impl Iterator<Item = Command>) {
        for command in commands {
            if let Command::Publish { request_id, outbox, .. } = command {
                self.queued_publishes.fetch_sub(1, Ordering::Relaxed);
                refuse_publish(&outbox, request_id);
            }
        }
    }

    async fn connect(&self) -> redis::RedisResult<Link> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(LINK_TIMEOUT)
            .set_response_timeout(LINK_TIMEOUT);
        let mut connection = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        let pubsub = tokio::time::timeout(LINK_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        let (subscriptions, feed) = pubsub.split();
        for script in self.scripts.all() {
            script.prepare_invoke().load_async(&mut connection).await?;
        }
        if self.node_id.load(Ordering::Relaxed) == 0 {
            let id: u64 = redis::cmd("INCR").arg("wtchat:node-ids").query_async(&mut connection).await?;
            self.node_id.store(id, Ordering::Relaxed);
        }
        // A server coming back removes what its closed sessions left behind.
        self.heartbeat(&mut connection, true).await?;
        Ok(Link { connection, subscriptions, feed })
    }

    /// Serves one link until it fails; returns why it failed.
    async fn serve(
        &self,
        link: Link,
        hub: &Weak<Hub>,
        queue: &mut mpsc::UnboundedReceiver<Command>,
    ) -> String {
        let Link { mut connection, mut subscriptions, feed } = link;
        let mut reader = AbortOnDrop(tokio::spawn(read_feed(feed, hub.clone(), self.commands.clone())));
        let mut heartbeat = tokio::time::interval(self.node_timeout / 4);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                _ = &mut reader.0 => return "the subscription connection closed".into(),
                _ = heartbeat.tick() => {
                    if let Err(error) = self.heartbeat(&mut connection, false).await {
                        return format!("the heartbeat failed: {error}");
                    }
                }
                received = queue.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        return "the hub is gone".into();
                    }
                    if let Err(error) = self.execute(&mut batch, &mut connection, &mut subscriptions, hub).await {
                        return format!("a command failed: {error}");
                    }
                }
            }
        }
    }

    /// Runs a batch of commands in order: writes go out together as one
    /// pipeline, and subscriptions wait for what was written before them.
    async fn execute(
        &self,
        batch: &mut Vec<Command>,
        connection: &mut MultiplexedConnection,
        subscriptions: &mut PubSubSink,
        hub: &Weak<Hub>,
    ) -> redis::RedisResult<()> {
        let mut writes = Writes::default();
        let mut commands = batch.drain(..);
        let result = self.run_commands(&mut commands, &mut writes, connection, subscriptions, hub).await;
        if result.is_err() {
            // The link failed partway: whatever was not sent is answered
            // and uncounted here, so that no publish waits for an answer
            // that will not come and the queue bound stays true.
            writes.abandon(&self.queued_publishes);
            self.discard(commands);
        }
        result
    }

    async fn run_commands(
        &self,
        commands: &mut impl Iterator<Item = Command>,
        writes: &mut Writes,
        connection: &mut MultiplexedConnection,
        subscriptions: &mut PubSubSink,
        hub: &Weak<Hub>,
    ) -> redis::RedisResult<()> {
        for command in commands {
            match command {
                Command::Open(room) => {
                    writes.flush(connection, &self.queued_publishes).await?;
                    self.open(&room, connection, subscriptions).await?;
                }
                Command::Close(name) => {
                    writes.flush(connection, &self.queued_publishes).await?;
                    let reopened = hub.upgrade().is_some_and(|hub| hub.rooms().get(&name).is_some());
                    if !reopened {
                        tokio::time::timeout(LINK_TIMEOUT, subscriptions.unsubscribe(events_channel(&name)))
                            .await
                            .map_err(|_| timed_out())??;
                    }
                }
                Command::Publish { room, sender, sent_at_ms, body, request_id, outbox } => {
                    let mut command = redis::cmd("EVALSHA");
                    command
                        .arg(self.scripts.publish.get_hash())
                        .arg(2)
                        .arg(room_key(&room, "meta"))
                        .arg(room_key(&room, "history"))
                        .arg(events_channel(&room))
                        .arg(new_epoch())
                        .arg(self.history_len)
                        .arg(ROOM_TTL_SECS)
                        .arg(sender.session_id)
                        .arg(sent_at_ms)
                        .arg(&*sender.name)
                        .arg(body);
                    writes.push(command, Some((request_id, outbox)));
                }
                Command::Presence { room, member, change } => {
                    let node = self.node_id.load(Ordering::Relaxed);
                    let mut command = redis::cmd("EVALSHA");
                    command
                        .arg(self.scripts.presence.get_hash())
                        .arg(2)
                        .arg(room_key(&room, "members"))
                        .arg(format!("wtchat:node:{node}"))
                        .arg(events_channel(&room))
                        .arg(member.session_id)
                        .arg(node)
                        .arg(&*member.name)
                        .arg(&*room)
                        .arg(RoomEvent::presence_kind(change));
                    writes.push(command, None);
                }
                Command::Typing { room, member } => {
                    let mut command = redis::cmd("PUBLISH");
                    command.arg(events_channel(&room)).arg(RoomEvent::member_event(
                        "t",
                        member.session_id,
                        &member.name,
                    ));
                    writes.push(command, None);
                }
            }
        }
        writes.flush(connection, &self.queued_publishes).await
    }
}

impl RedisBroker {
    /// Subscribes to a room, then reads its state: anything published after
    /// the subscription took effect arrives on the feed, anything before is
    /// in the snapshot, and the room drops what is in both.
    async fn open(
        &self,
        room: &Arc<Room>,
        connection: &mut MultiplexedConnection,
        subscriptions: &mut PubSubSink,
    ) -> redis::RedisResult<()> {
        let name = room.name();
        tokio::time::timeout(LINK_TIMEOUT, subscriptions.subscribe(events_channel(name)))
            .await
            .map_err(|_| timed_out())??;
        let (epoch, last_seq, history, members): (u64, u64, Vec<Vec<u8>>, Vec<Vec<u8>>) = self
            .scripts
            .snapshot
            .key(room_key(name, "meta"))
            .key(room_key(name, "history"))
            .key(room_key(name, "members"))
            .arg(new_epoch())
            .arg(self.history_len)
            .arg(ROOM_TTL_SECS)
            .invoke_async(connection)
            .await?;
        let history = history
            .iter()
            .filter_map(|entry| match RoomEvent::parse(entry) {
                Ok(event) => Some(event),
                Err(error) => {
                    tracing::warn!(room = %name, %error, "skipped a history entry");
                    None
                }
            })
            .collect();
        let members = members
            .chunks_exact(2)
            .filter_map(|pair| {
                let session_id = std::str::from_utf8(&pair[0]).ok()?.parse().ok()?;
                let (_node, name) = std::str::from_utf8(&pair[1]).ok()?.split_once(' ')?;
                Some(EventMember { session_id, name: Arc::from(name) })
            })
            .collect();
        room.synced(Snapshot { epoch, last_seq, history, members });
        Ok(())
    }

    /// Tells Redis this server is alive and removes the members of servers
    /// that are not; `reap_self` first removes this server's own leftovers.
    async fn heartbeat(
        &self,
        connection: &mut MultiplexedConnection,
        reap_self: bool,
    ) -> redis::RedisResult<()> {
        let reaped: u64 = self
            .scripts
            .heartbeat
            .key("wtchat:nodes")
            .arg(self.node_id.load(Ordering::Relaxed))
            .arg(u64::try_from(self.node_timeout.as_millis()).unwrap_or(u64::MAX))
            .arg(if reap_self { "1" } else { "0" })
            .invoke_async(connection)
            .await?;
        if reaped > 0 {
            tracing::info!(servers = reaped, "removed the members of silent servers");
        }
        Ok(())
    }
}

/// One live link: a command connection and a subscription connection.
struct Link {
    connection: MultiplexedConnection,
    subscriptions: PubSubSink,
    feed: PubSubStream,
}

/// Consecutive writes waiting to go out as one pipeline, with the publishes
/// among them, which are answered with an error if Redis refuses them.
#[derive(Default)]
struct Writes {
    pipeline: redis::Pipeline,
    count: usize,
    /// `(index in the pipeline, request id, outbox)` of each publish.
    publishes: Vec<(usize, u32, Arc<Outbox>)>,
}

impl Writes {
    fn push(&mut self, command: redis::Cmd, publish: Option<(u32, Arc<Outbox>)>) {
        if let Some((request_id, outbox)) = publish {
            self.publishes.push((self.count, request_id, outbox));
        }
        self.pipeline.add_command(command);
        self.count += 1;
    }

    /// Answers and uncounts the publishes that will not be sent.
    fn abandon(&mut self, queued_publishes: &AtomicUsize) {
        let publishes = std::mem::take(&mut self.publishes);
        queued_publishes.fetch_sub(publishes.len(), Ordering::Relaxed);
        for (_, request_id, outbox) in &publishes {
            refuse_publish(outbox, *request_id);
        }
        *self = Self::default();
    }

    /// Sends the pipeline. A failed connection fails the link; a command
    /// Redis refuses (out of memory, say) fails only itself, and a refused
    /// publish is answered so that its sender knows it was not sent.
    async fn flush(
        &mut self,
        connection: &mut MultiplexedConnection,
        queued_publishes: &AtomicUsize,
    ) -> redis::RedisResult<()> {
        if self.count == 0 {
            return Ok(());
        }
        let count = std::mem::take(&mut self.count);
        let pipeline = std::mem::take(&mut self.pipeline);
        let publishes = std::mem::take(&mut self.publishes);
        queued_publishes.fetch_sub(publishes.len(), Ordering::Relaxed);
        let replies = match connection.req_packed_commands(&pipeline, 0, count).await {
            Ok(replies) => replies,
            Err(error) => {
                for (_, request_id, outbox) in &publishes {
                    refuse_publish(outbox, *request_id);
                }
                return Err(error);
            }
        };
        for (index, reply) in replies.iter().enumerate() {
            if let Value::ServerError(error) = reply {
                tracing::warn!(?error, "Redis refused a command");
                if let Some((_, request_id, outbox)) = publishes.iter().find(|(i, ..)| *i == index) {
                    refuse_publish(outbox, *request_id);
                }
            }
        }
        Ok(())
    }
}

/// Aborts the feed reader when the link ends, whichever way.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the subscription connection and hands each event to its room on
/// this server. Returns when the connection closes.
async fn read_feed(mut feed: PubSubStream, hub: Weak<Hub>, commands: mpsc::UnboundedSender<Command>) {
    while let Some(message) = feed.next().await {
        let Some(hub) = hub.upgrade() else { return };
        let Some(name) =
            message.get_channel_name().strip_prefix("wtchat:room:").and_then(|n| n.strip_suffix(":events"))
        else {
            continue;
        };
        let Some(room) = hub.rooms().get(name) else { continue };
        let event = match RoomEvent::parse(message.get_payload_bytes()) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(room = name, %error, "skipped an event");
                continue;
            }
        };
        let started = std::time::Instant::now();
        match room.apply(event) {
            Applied::Delivered(recipients) => hub.metrics().published(recipients, started.elapsed()),
            Applied::Noted => {}
            Applied::Resync => {
                let _ = commands.send(Command::Open(room));
            }
        }
    }
}

/// Tells a sender its message was not sent.
fn refuse_publish(outbox: &Outbox, request_id: u32) {
    outbox.push(&Frame::encode(&BrokerUnavailable::publish_error(request_id)));
}

fn room_key(room: &str, part: &str) -> String {
    format!("wtchat:room:{room}:{part}")
}

fn events_channel(room: &str) -> String {
    room_key(room, "events")
}

/// An epoch for a room that has none, below 2^53 so that JavaScript holds it
/// exactly.
fn new_epoch() -> u64 {
    fastrand::u64(1..1 << 53)
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

impl Broker for RedisBroker {
    fn start(self: Arc<Self>, hub: Weak<Hub>) {
        let Some(queue) = self.queue.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        tokio::spawn(self.run(hub, queue));
    }

    fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    fn session_id_base(&self) -> u64 {
        // Node ids stay far below 2^21, so ids stay below 2^53.
        self.node_id.load(Ordering::Relaxed) << 32
    }

    fn rooms_follow(&self) -> bool {
        true
    }

    fn room_opened(&self, room: &Arc<Room>) {
        self.send(Command::Open(room.clone()));
    }

    fn room_closed(&self, room: &Arc<Room>) {
        self.send(Command::Close(room.name().clone()));
    }

    fn member_joined(&self, room: &Room, member: &RoomMember) {
        self.send(Command::Presence {
            room: room.name().clone(),
            member: member.event_member(),
            change: PresenceChange::Joined,
        });
    }

    fn member_left(&self, room: &Room, member: &RoomMember, change: PresenceChange) {
        self.send(Command::Presence { room: room.name().clone(), member: member.event_member(), change });
    }

    fn publish(
        &self,
        room: &Room,
        sender: &RoomMember,
        request_id: u32,
        body: String,
        sent_at_ms: u64,
    ) -> Result<Published, BrokerUnavailable> {
        if !self.is_available() || self.queued_publishes.load(Ordering::Relaxed) >= MAX_QUEUED_PUBLISHES {
            return Err(BrokerUnavailable);
        }
        self.queued_publishes.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Publish {
            room: room.name().clone(),
            sender: sender.event_member(),
            sent_at_ms,
            body,
            request_id,
            outbox: sender.outbox.clone(),
        });
        Ok(Published::Forwarded)
    }

    fn typing(&self, room: &Room, sender: &RoomMember) {
        if self.is_available() {
            self.send(Command::Typing { room: room.name().clone(), member: sender.event_member() });
        }
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "redis",
            "available": self.is_available(),
            "node_id": self.node_id.load(Ordering::Relaxed),
            "link_losses": self.link_losses.load(Ordering::Relaxed),
            "queued_publishes": self.queued_publishes.load(Ordering::Relaxed),
        })
    }
}
