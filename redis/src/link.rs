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
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::mpsc;
use wtchat_core::broker::{BrokerHost, BrokerUnavailable, RoomHandle};
use wtchat_core::room_event::RoomEvent;

use crate::announcements::Announcements;
use crate::command::{Command, discard};
use crate::connection::{Commands, Target};
use crate::directory;
use crate::keys::Keys;
use crate::outage::{Outage, retry_delay};
use crate::pipeline::{Answer, Pipeline};
use crate::reaper;
use crate::round::{Round, rounds};
use crate::scripts::{
    HeartbeatScript, PeekScript, PresenceScript, PublishScript, Scripts, SnapshotReply, SnapshotScript,
    new_epoch,
};
use crate::shard::Shard;
use crate::{control, feed};

/// How long a connection attempt or a command may take before the link is
/// considered lost.
const LINK_TIMEOUT: Duration = Duration::from_secs(2);

/// Commands sent to Redis in one pipeline at most.
const MAX_BATCH: usize = 512;

/// A session id's high bits are its server's node id, so that ids are
/// unique across servers and a server knows its own members' events.
pub(crate) const NODE_SHIFT: u32 = 32;

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
    /// Where Redis is: one, or a cluster.
    pub(crate) target: Target,
    /// The commands, in order.
    pub(crate) queue: mpsc::UnboundedReceiver<Command>,
    /// For opening a room again; weak, so that it keeps nothing alive.
    pub(crate) requeue: mpsc::WeakUnboundedSender<Command>,
    /// What the broker handle reads.
    pub(crate) shared: Arc<Shared>,
    /// Which Redis of the configured ones this is.
    pub(crate) shard: Shard,
    /// What the home shard's link reports (this link's own, on the home
    /// shard): its node id is in this server's session ids.
    pub(crate) home: Arc<Shared>,
    /// How many messages rooms keep.
    pub(crate) history_len: usize,
    /// How long a silent server keeps its members.
    pub(crate) node_timeout: Duration,
    /// How often this server announces its members' changes.
    pub(crate) presence_interval: Duration,
    /// How long a lost link may stay lost before the sessions are closed.
    pub(crate) grace: Duration,
    /// The scripts.
    pub(crate) scripts: Scripts,
}

/// One live connection pair.
struct Connections {
    commands: Commands,
    subscriptions: PubSubSink,
    feed: PubSubStream,
}

impl Link {
    /// Connects, reconnects after every loss, and serves each link, until
    /// the host is gone.
    pub(crate) async fn run(mut self, host: Weak<dyn BrokerHost>) {
        let queued = self.shared.clone();
        let queued = &queued.queued_publishes;
        // `None` before the first link; see `outage.rs`.
        let mut outage: Option<Outage> = None;
        loop {
            if host.strong_count() == 0 {
                return;
            }
            // A server whose sessions stayed open keeps its members in Redis.
            let reap_self = outage.as_ref().is_none_or(Outage::sessions_closed);
            match self.connect(&host, reap_self).await {
                Ok(connections) => {
                    let node = self.shared.node_id.load(Ordering::Relaxed);
                    match &outage {
                        Some(lost) if !lost.sessions_closed() => {
                            tracing::info!(
                                node,
                                "linked to Redis again within the grace; resyncing every room"
                            );
                        }
                        _ => tracing::info!(node, "linked to Redis"),
                    }
                    self.shared.available.store(true, Ordering::Release);
                    let carried = outage.take().map(Outage::into_carried).unwrap_or_default();
                    let (why, unsent) = self.serve(connections, &host, carried).await;
                    self.shared.available.store(false, Ordering::Release);
                    let Some(host) = host.upgrade() else { return };
                    if self.queue.is_closed() {
                        return;
                    }
                    self.shared.link_losses.fetch_add(1, Ordering::Relaxed);
                    let mut lost = Outage::begun();
                    lost.carry(unsent, queued);
                    if self.grace.is_zero() {
                        tracing::warn!(%why, "lost the link to Redis; closing the sessions in its rooms");
                        host.link_lost(&|room| self.shard.holds(room));
                        lost.close_sessions(queued);
                    } else {
                        let grace_ms = self.grace.as_millis() as u64;
                        tracing::warn!(%why, grace_ms, "lost the link to Redis; sessions stay open for the grace");
                    }
                    outage = Some(lost);
                }
                Err(error) => tracing::warn!(%error, "cannot link to Redis; trying again"),
            }
            // What was asked while the link was down: see `Outage::carry`.
            let stale: Vec<Command> = std::iter::from_fn(|| self.queue.try_recv().ok()).collect();
            match &mut outage {
                Some(lost) => lost.carry(stale, queued),
                None => self.discard(stale),
            }
            if let Some(lost) = outage.as_mut().filter(|lost| lost.grace_over(self.grace)) {
                let Some(host) = host.upgrade() else { return };
                tracing::warn!(
                    "the link to Redis stayed lost past the grace; closing the sessions in its rooms"
                );
                host.link_lost(&|room| self.shard.holds(room));
                lost.close_sessions(queued);
            }
            tokio::time::sleep(retry_delay(outage.as_ref())).await;
        }
    }

    /// Drops commands that cannot be run, answering publishes.
    fn discard(&self, commands: impl IntoIterator<Item = Command>) {
        discard(&self.shared.queued_publishes, commands);
    }

    async fn connect(
        &mut self,
        host: &Weak<dyn BrokerHost>,
        reap_self: bool,
    ) -> redis::RedisResult<Connections> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(LINK_TIMEOUT)
            .set_response_timeout(LINK_TIMEOUT);
        let (mut commands, feed_node) = self.target.connect(&config).await?;
        let pubsub = tokio::time::timeout(LINK_TIMEOUT, feed_node.get_async_pubsub())
            .await
            .map_err(|_| timed_out())??;
        let (mut subscriptions, feed) = pubsub.split();
        // Orders for every server come on one channel, followed from the
        // start of each link.
        if self.shard.is_home() {
            tokio::time::timeout(LINK_TIMEOUT, subscriptions.subscribe(self.scripts.keys.control()))
                .await
                .map_err(|_| timed_out())??;
        }
        for script_host in commands.script_hosts() {
            for script in self.scripts.all() {
                script.prepare_invoke().load_async(script_host).await?;
            }
        }
        if self.shared.node_id.load(Ordering::Relaxed) == 0 {
            let id: u64 =
                redis::cmd("INCR").arg(self.scripts.keys.node_ids()).query_async(&mut commands).await?;
            self.shared.node_id.store(id, Ordering::Relaxed);
        }
        // A server coming back removes what its closed sessions left behind.
        self.heartbeat(&mut commands, reap_self, host).await?;
        Ok(Connections { commands, subscriptions, feed })
    }

    /// Serves one link until it fails or the hub is gone, running
    /// `carried` (from a lost link) first; returns why it ended and what it
    /// could not send.
    async fn serve(
        &mut self,
        connections: Connections,
        host: &Weak<dyn BrokerHost>,
        carried: Vec<Command>,
    ) -> (String, Vec<Command>) {
        let Connections { mut commands, mut subscriptions, feed } = connections;
        // Rooms that outlived a lost link have missed their feed; they start
        // again from a snapshot, before anything asked since, and after the
        // changes carried from the lost link, which the snapshot must hold.
        let mut batch = carried;
        match host.upgrade() {
            Some(host) => {
                let shard = self.shard;
                batch.extend(host.rooms_to_resync(&|room| shard.holds(room)).into_iter().map(Command::Open));
            }
            None => return ("the hub is gone".into(), batch),
        }
        let reader =
            read_feed(feed, host.clone(), self.requeue.clone(), self.home.clone(), self.scripts.keys.clone());
        let mut reader = AbortOnDrop(tokio::spawn(reader));
        let mut heartbeat = tokio::time::interval(self.node_timeout / 4);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Changes gathered on a link that is then lost are dropped with it:
        // the sessions they belong to are closed, and the heartbeat of the
        // next link removes and announces whatever they left recorded.
        let mut announcements = Announcements::default();
        let mut announce = tokio::time::interval(self.presence_interval);
        announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !batch.is_empty() {
                for command in &batch {
                    if let Command::Presence(room, member, change, _) = command {
                        announcements.note(room, member, *change);
                    }
                }
                if let Err(error) = self.execute(&mut batch, &mut commands, &mut subscriptions, host).await {
                    return (format!("a command failed: {error}"), batch);
                }
            }
            tokio::select! {
                _ = &mut reader.0 => return ("the subscription connection closed".into(), batch),
                _ = heartbeat.tick() => {
                    if let Err(error) = self.heartbeat(&mut commands, false, host).await {
                        return (format!("the heartbeat failed: {error}"), batch);
                    }
                }
                // After a quiet spell the tick is already due, so that a
                // lone change is announced at once and only what follows it
                // within the interval waits.
                _ = announce.tick(), if !announcements.is_empty() => {
                    if let Err(error) = self.announce(&mut announcements, &mut commands).await {
                        return (format!("an announcement failed: {error}"), batch);
                    }
                }
                received = self.queue.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        // The last departures of a server shutting down are
                        // still worth telling the others.
                        let _ = self.announce(&mut announcements, &mut commands).await;
                        return ("the hub is gone".into(), batch);
                    }
                }
            }
        }
    }

    /// Publishes the changes gathered since the last announcement, one
    /// event per room, after the records they announce (written when the
    /// changes were queued, on the same connection).
    async fn announce(
        &self,
        announcements: &mut Announcements,
        connection: &mut Commands,
    ) -> redis::RedisResult<()> {
        let mut pipeline = Pipeline::default();
        for command in announcements.take(&self.scripts.keys) {
            pipeline.push(command, None);
        }
        pipeline.flush(connection, &self.shared.queued_publishes, &self.scripts).await
    }

    /// Runs a batch of commands in order, round by round (see [`rounds`]).
    async fn execute(
        &self,
        batch: &mut Vec<Command>,
        connection: &mut Commands,
        subscriptions: &mut PubSubSink,
        host: &Weak<dyn BrokerHost>,
    ) -> redis::RedisResult<()> {
        let mut rounds = rounds(batch.drain(..)).into_iter();
        let result = self.run_rounds(&mut rounds, connection, subscriptions, host).await;
        if result.is_err() {
            // The link failed partway: what was not sent goes back into the
            // batch, for the outage to answer or carry (a failed pipeline
            // answers its own).
            batch.extend(rounds.flat_map(Round::into_commands));
        }
        result
    }

    async fn run_rounds(
        &self,
        rounds: &mut impl Iterator<Item = Round>,
        connection: &mut Commands,
        subscriptions: &mut PubSubSink,
        host: &Weak<dyn BrokerHost>,
    ) -> redis::RedisResult<()> {
        let queued = &self.shared.queued_publishes;
        for Round { writes, then } in rounds {
            let mut pipeline = Pipeline::default();
            for write in writes {
                self.push_write(write, &mut pipeline);
            }
            pipeline.flush(connection, queued, &self.scripts).await?;
            match then {
                Some(Command::Open(room)) => self.open(&room, connection, subscriptions, host).await?,
                Some(Command::Peek(room, reply)) => {
                    let script = PeekScript { room: &room, history_len: self.history_len };
                    let read = tokio::time::timeout(
                        LINK_TIMEOUT,
                        script.command(&self.scripts).query_async::<Option<SnapshotReply>>(connection),
                    )
                    .await
                    .map_err(|_| timed_out());
                    match read {
                        Ok(Ok(snapshot)) => {
                            let _ = reply.send(Ok(script.decode(snapshot)));
                        }
                        // An answer that does not parse fails the read,
                        // not the link.
                        Ok(Err(error)) if error.kind() == redis::ErrorKind::TypeError => {
                            tracing::warn!(%error, room = %room, "could not read a room");
                            let _ = reply.send(Err(BrokerUnavailable));
                        }
                        Ok(Err(error)) | Err(error) => {
                            let _ = reply.send(Err(BrokerUnavailable));
                            return Err(error);
                        }
                    }
                }
                Some(Command::Rooms(after, limit, reply)) => {
                    let read = tokio::time::timeout(
                        LINK_TIMEOUT,
                        directory::page(&self.scripts.keys, connection, &after, limit),
                    )
                    .await
                    .map_err(|_| timed_out())
                    .and_then(|read| read);
                    match read {
                        Ok(page) => {
                            let _ = reply.send(Ok(page));
                        }
                        // As for a peek: an answer that does not parse
                        // fails the read, not the link.
                        Err(error) => {
                            let _ = reply.send(Err(BrokerUnavailable));
                            if error.kind() != redis::ErrorKind::TypeError {
                                return Err(error);
                            }
                        }
                    }
                }
                Some(Command::Close(name)) => {
                    let reopened = host.upgrade().is_some_and(|host| host.is_open(&name));
                    if !reopened {
                        tokio::time::timeout(
                            LINK_TIMEOUT,
                            subscriptions.unsubscribe(self.scripts.keys.room_events(&name)),
                        )
                        .await
                        .map_err(|_| timed_out())??;
                        // Its members' departures went out before: nothing of
                        // this server's is left in the room to remove.
                        let node_rooms =
                            self.scripts.keys.node_rooms(self.shared.node_id.load(Ordering::Relaxed));
                        let () =
                            redis::cmd("SREM").arg(node_rooms).arg(&*name).query_async(connection).await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Adds a write to the pipeline (subscription changes are not writes).
    fn push_write(&self, command: Command, pipeline: &mut Pipeline) {
        let node_id = self.shared.node_id.load(Ordering::Relaxed);
        match command {
            Command::Publish(room, publish) => {
                let script = PublishScript {
                    room: &room,
                    new_epoch: new_epoch(),
                    history_len: self.history_len,
                    sender: &publish.sender,
                    sent_at_ms: publish.sent_at_ms,
                    body: &publish.body,
                    receipt: publish.receipt.as_ref(),
                };
                pipeline.push(
                    script.command(&self.scripts),
                    Some(Answer::Publish(publish.reply, publish.announce)),
                );
            }
            Command::Presence(room, member, change, announce) => {
                let script = PresenceScript { room: &room, node_id, member: &member, change };
                pipeline.push(script.command(&self.scripts), Some(Answer::Presence(room.clone(), announce)));
            }
            Command::Typing(room, member) => {
                let mut command = redis::cmd("PUBLISH");
                command.arg(self.scripts.keys.room_events(&room)).arg(feed::typing_event(&member));
                pipeline.push(command, None);
            }
            Command::Disconnect(target, reason) => {
                let mut command = redis::cmd("PUBLISH");
                command.arg(self.scripts.keys.control()).arg(control::order(
                    node_id,
                    &target,
                    reason.as_deref(),
                ));
                pipeline.push(command, None);
            }
            Command::Open(_) | Command::Close(_) | Command::Peek(..) | Command::Rooms(..) => {
                debug_assert!(false, "a subscription change or a read is not a write");
            }
        }
    }

    /// Subscribes to a room, then reads its state: anything published after
    /// the subscription took effect arrives on the feed, anything before is
    /// in the snapshot, and the room drops what is in both. A snapshot
    /// reaches only the incarnation of the room it was taken for.
    async fn open(
        &self,
        room: &RoomHandle,
        connection: &mut Commands,
        subscriptions: &mut PubSubSink,
        host: &Weak<dyn BrokerHost>,
    ) -> redis::RedisResult<()> {
        // Recorded before any member is, so that whoever removes this
        // server's members should it die finds this room.
        let node_rooms = self.scripts.keys.node_rooms(self.shared.node_id.load(Ordering::Relaxed));
        let () = redis::cmd("SADD").arg(node_rooms).arg(&*room.name).query_async(connection).await?;
        tokio::time::timeout(
            LINK_TIMEOUT,
            subscriptions.subscribe(self.scripts.keys.room_events(&room.name)),
        )
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

    /// Tells Redis this server is alive and removes the members of the
    /// dead servers handed to it; `reap_self` first removes this server's
    /// own leftovers. The members removed are told to the host, which
    /// announces them.
    async fn heartbeat(
        &self,
        connection: &mut Commands,
        reap_self: bool,
        host: &Weak<dyn BrokerHost>,
    ) -> redis::RedisResult<()> {
        let node_id = self.shared.node_id.load(Ordering::Relaxed);
        if reap_self {
            reaper::reap(node_id, &self.scripts, connection, host).await?;
        }
        let script = HeartbeatScript {
            node_id,
            node_timeout_ms: u64::try_from(self.node_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let dead: Vec<u64> = script.command(&self.scripts).query_async(connection).await?;
        for &node in &dead {
            let members = reaper::reap(node, &self.scripts, connection, host).await?;
            let () =
                redis::cmd("ZREM").arg(self.scripts.keys.reaping()).arg(node).query_async(connection).await?;
            tracing::info!(node, members, "removed the members of a silent server");
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
///
/// The announcements of this server's own members are skipped: their rooms
/// told them when they came and went, and an echo that arrives an interval
/// later must not bring back a member who has left since.
async fn read_feed(
    mut feed: PubSubStream,
    host: Weak<dyn BrokerHost>,
    requeue: mpsc::WeakUnboundedSender<Command>,
    home: Arc<Shared>,
    keys: Keys,
) {
    let control = keys.control();
    while let Some(message) = feed.next().await {
        let Some(host) = host.upgrade() else { return };
        let channel = message.get_channel_name();
        if channel == control {
            match control::parse(message.get_payload_bytes()) {
                // The server that sent it closed its own already.
                Some((from, target, reason)) if from != home.node_id.load(Ordering::Relaxed) => {
                    host.disconnect(&target, reason.as_deref())
                }
                Some(_) => {}
                None => tracing::warn!("skipped an order that does not parse"),
            }
            continue;
        }
        let Some(room) = keys.room_of_events(channel) else { continue };
        let events = match feed::parse_feed(message.get_payload_bytes()) {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(room, %error, "skipped an event");
                continue;
            }
        };
        for event in events {
            if let RoomEvent::Presence { member, .. } = &event {
                // Session ids carry the home shard's node id, whichever
                // shard the room is on; read at each event, since the home
                // shard may link after this one.
                if member.session_id >> NODE_SHIFT == home.node_id.load(Ordering::Relaxed) {
                    continue;
                }
            }
            if let Some(broken) = host.apply(room, event) {
                if let Some(requeue) = requeue.upgrade() {
                    let _ = requeue.send(Command::Open(broken));
                }
                // The room starts again from a snapshot, which holds the
                // rest of this event.
                break;
            }
        }
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}
