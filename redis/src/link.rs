//! The link to Redis: one task that connects, reconnects after every loss,
//! and runs what sessions asked for, in the order they asked.
//!
//! The task owns the receiving end of the command queue and only a weak
//! sender (to open a room again whose feed broke). The broker handle, which
//! the hub owns, holds the one strong sender: when the hub is dropped the
//! queue closes and the task ends, and while the link is down the task
//! checks that its host still exists before each attempt.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use tokio::sync::mpsc;
use wtchat_core::broker::{BrokerHost, Publish, RoomHandle};
use wtchat_core::room_event::EventMember;
use wtchat_protocol::PresenceChange;

use crate::pipeline::{Pipeline, refuse_publish};
use crate::scripts::{
    HeartbeatScript, PresenceScript, PublishScript, Scripts, SnapshotReply, SnapshotScript, new_epoch,
};
use crate::{feed, keys};

/// How long a connection attempt or a command may take before the link is
/// considered lost.
const LINK_TIMEOUT: Duration = Duration::from_secs(2);

/// Commands sent to Redis in one pipeline at most.
const MAX_BATCH: usize = 512;

/// What sessions ask of Redis, in order.
#[derive(Debug)]
pub(crate) enum Command {
    /// Subscribe to a room and start it from a snapshot.
    Open(RoomHandle),
    /// Unsubscribe from a room this server no longer has members in.
    Close(Arc<str>),
    /// Publish a message.
    Publish(Arc<str>, Publish),
    /// Record a member's arrival or departure and announce it.
    Presence(Arc<str>, EventMember, PresenceChange),
    /// Announce that a member is typing.
    Typing(Arc<str>, EventMember),
}

/// What the link and the broker handle both see.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Whether the link is up.
    pub(crate) available: AtomicBool,
    /// This server's id among those sharing the Redis; 0 until the first
    /// link hands one out.
    pub(crate) node_id: AtomicU64,
    /// How many times the link was lost.
    pub(crate) link_losses: AtomicU64,
    /// How many publishes wait in the queue.
    pub(crate) queued_publishes: AtomicUsize,
}

/// The link task's state.
pub(crate) struct Link {
    /// Where Redis is.
    pub(crate) client: redis::Client,
    /// The commands, in order.
    pub(crate) queue: mpsc::UnboundedReceiver<Command>,
    /// For opening a room again; weak, so that it keeps nothing alive.
    pub(crate) requeue: mpsc::WeakUnboundedSender<Command>,
    /// What the broker handle reads.
    pub(crate) shared: Arc<Shared>,
    /// How many messages rooms keep.
    pub(crate) history_len: usize,
    /// How long a silent server keeps its members.
    pub(crate) node_timeout: Duration,
    /// The scripts.
    pub(crate) scripts: Scripts,
}

/// One live connection pair.
struct Connections {
    commands: MultiplexedConnection,
    subscriptions: PubSubSink,
    feed: PubSubStream,
}

impl Link {
    /// Connects, reconnects after every loss, and serves each link, until
    /// the host is gone.
    pub(crate) async fn run(mut self, host: Weak<dyn BrokerHost>) {
        loop {
            if host.strong_count() == 0 {
                return;
            }
            match self.connect().await {
                Ok(connections) => {
                    tracing::info!(node = self.shared.node_id.load(Ordering::Relaxed), "linked to Redis");
                    self.shared.available.store(true, Ordering::Release);
                    let why = self.serve(connections, &host).await;
                    self.shared.available.store(false, Ordering::Release);
                    let Some(host) = host.upgrade() else { return };
                    if self.queue.is_closed() {
                        return;
                    }
                    self.shared.link_losses.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%why, "lost the link to Redis; closing every session until it is back");
                    host.link_lost();
                }
                Err(error) => tracing::warn!(%error, "cannot link to Redis; trying again"),
            }
            // What was asked while the link was down cannot be run.
            let stale: Vec<Command> = std::iter::from_fn(|| self.queue.try_recv().ok()).collect();
            self.discard(stale);
            tokio::time::sleep(Duration::from_millis(500 + fastrand::u64(0..500))).await;
        }
    }

    /// Drops commands that cannot be run, answering publishes.
    fn discard(&self, commands: impl IntoIterator<Item = Command>) {
        for command in commands {
            if let Command::Publish(_, publish) = command {
                self.shared.queued_publishes.fetch_sub(1, Ordering::Relaxed);
                refuse_publish(&publish.outbox, publish.request_id);
            }
        }
    }

    async fn connect(&mut self) -> redis::RedisResult<Connections> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(LINK_TIMEOUT)
            .set_response_timeout(LINK_TIMEOUT);
        let mut commands = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        let pubsub = tokio::time::timeout(LINK_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| timed_out())??;
        let (subscriptions, feed) = pubsub.split();
        for script in self.scripts.all() {
            script.prepare_invoke().load_async(&mut commands).await?;
        }
        if self.shared.node_id.load(Ordering::Relaxed) == 0 {
            let id: u64 = redis::cmd("INCR").arg(keys::node_ids()).query_async(&mut commands).await?;
            self.shared.node_id.store(id, Ordering::Relaxed);
        }
        // A server coming back removes what its closed sessions left behind.
        self.heartbeat(&mut commands, true).await?;
        Ok(Connections { commands, subscriptions, feed })
    }

    /// Serves one link until it fails or the hub is gone; returns why.
    async fn serve(&mut self, connections: Connections, host: &Weak<dyn BrokerHost>) -> String {
        let Connections { mut commands, mut subscriptions, feed } = connections;
        // Rooms that outlived a lost link have missed their feed; they start
        // again from a snapshot, before anything asked since.
        let mut batch: Vec<Command> = match host.upgrade() {
            Some(host) => host.rooms_to_resync().into_iter().map(Command::Open).collect(),
            None => return "the hub is gone".into(),
        };
        let mut reader = AbortOnDrop(tokio::spawn(read_feed(feed, host.clone(), self.requeue.clone())));
        let mut heartbeat = tokio::time::interval(self.node_timeout / 4);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !batch.is_empty() {
                if let Err(error) = self.execute(&mut batch, &mut commands, &mut subscriptions, host).await {
                    return format!("a command failed: {error}");
                }
            }
            tokio::select! {
                _ = &mut reader.0 => return "the subscription connection closed".into(),
                _ = heartbeat.tick() => {
                    if let Err(error) = self.heartbeat(&mut commands, false).await {
                        return format!("the heartbeat failed: {error}");
                    }
                }
                received = self.queue.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        return "the hub is gone".into();
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
        host: &Weak<dyn BrokerHost>,
    ) -> redis::RedisResult<()> {
        let mut pipeline = Pipeline::default();
        let mut commands = batch.drain(..);
        let result = self.run_commands(&mut commands, &mut pipeline, connection, subscriptions, host).await;
        if result.is_err() {
            // The link failed partway: whatever was not sent is answered
            // and uncounted here, so that no publish waits for an answer
            // that will not come and the queue bound stays true.
            pipeline.abandon(&self.shared.queued_publishes);
            self.discard(commands);
        }
        result
    }

    async fn run_commands(
        &self,
        commands: &mut impl Iterator<Item = Command>,
        pipeline: &mut Pipeline,
        connection: &mut MultiplexedConnection,
        subscriptions: &mut PubSubSink,
        host: &Weak<dyn BrokerHost>,
    ) -> redis::RedisResult<()> {
        let queued = &self.shared.queued_publishes;
        let node_id = self.shared.node_id.load(Ordering::Relaxed);
        for command in commands {
            match command {
                Command::Open(room) => {
                    pipeline.flush(connection, queued).await?;
                    self.open(&room, connection, subscriptions, host).await?;
                }
                Command::Close(name) => {
                    pipeline.flush(connection, queued).await?;
                    let reopened = host.upgrade().is_some_and(|host| host.is_open(&name));
                    if !reopened {
                        tokio::time::timeout(
                            LINK_TIMEOUT,
                            subscriptions.unsubscribe(keys::room_events(&name)),
                        )
                        .await
                        .map_err(|_| timed_out())??;
                    }
                }
                Command::Publish(room, publish) => {
                    let script = PublishScript {
                        room: &room,
                        new_epoch: new_epoch(),
                        history_len: self.history_len,
                        sender: &publish.sender,
                        sent_at_ms: publish.sent_at_ms,
                        body: &publish.body,
                    };
                    pipeline.push(script.command(&self.scripts), Some((publish.request_id, publish.outbox)));
                }
                Command::Presence(room, member, change) => {
                    let script = PresenceScript { room: &room, node_id, member: &member, change };
                    pipeline.push(script.command(&self.scripts), None);
                }
                Command::Typing(room, member) => {
                    let mut command = redis::cmd("PUBLISH");
                    command.arg(keys::room_events(&room)).arg(feed::typing_event(&member));
                    pipeline.push(command, None);
                }
            }
        }
        pipeline.flush(connection, queued).await
    }

    /// Subscribes to a room, then reads its state: anything published after
    /// the subscription took effect arrives on the feed, anything before is
    /// in the snapshot, and the room drops what is in both. A snapshot
    /// reaches only the incarnation of the room it was taken for.
    async fn open(
        &self,
        room: &RoomHandle,
        connection: &mut MultiplexedConnection,
        subscriptions: &mut PubSubSink,
        host: &Weak<dyn BrokerHost>,
    ) -> redis::RedisResult<()> {
        tokio::time::timeout(LINK_TIMEOUT, subscriptions.subscribe(keys::room_events(&room.name)))
            .await
            .map_err(|_| timed_out())??;
        let script =
            SnapshotScript { room: &room.name, new_epoch: new_epoch(), history_len: self.history_len };
        let reply: SnapshotReply = script.command(&self.scripts).query_async(connection).await?;
        if let Some(host) = host.upgrade() {
            host.snapshot(room, script.decode(reply));
        }
        Ok(())
    }

    /// Tells Redis this server is alive and removes the members of servers
    /// that are not; `reap_self` first removes this server's own leftovers.
    async fn heartbeat(
        &self,
        connection: &mut MultiplexedConnection,
        reap_self: bool,
    ) -> redis::RedisResult<()> {
        let script = HeartbeatScript {
            node_id: self.shared.node_id.load(Ordering::Relaxed),
            node_timeout_ms: u64::try_from(self.node_timeout.as_millis()).unwrap_or(u64::MAX),
            reap_self,
        };
        let reaped: u64 = script.command(&self.scripts).query_async(connection).await?;
        if reaped > 0 {
            tracing::info!(servers = reaped, "removed the members of silent servers");
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
/// this server. Returns when the connection closes or the hub is gone.
async fn read_feed(
    mut feed: PubSubStream,
    host: Weak<dyn BrokerHost>,
    requeue: mpsc::WeakUnboundedSender<Command>,
) {
    while let Some(message) = feed.next().await {
        let Some(host) = host.upgrade() else { return };
        let channel = message.get_channel_name();
        let Some(room) = keys::room_of_events(channel) else { continue };
        let event = match feed::parse(message.get_payload_bytes()) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(room, %error, "skipped an event");
                continue;
            }
        };
        if let Some(broken) = host.apply(room, event) {
            if let Some(requeue) = requeue.upgrade() {
                let _ = requeue.send(Command::Open(broken));
            }
        }
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}
