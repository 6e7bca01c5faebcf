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
//! All work with one Redis happens on one task (`link.rs`), in the order
//! sessions asked for it, with consecutive writes sent as one pipeline;
//! sessions only queue commands and never wait. With several Redis (shards,
//! `shard.rs`) each room lives on one, and each has its own link. When a
//! link fails it gets a grace (`outage.rs`); past it, the host closes the
//! members of that link's rooms with `BROKER_UNAVAILABLE` and a retry hint,
//! and the task reconnects by itself; clients then resume from their last
//! sequence number on whichever server they reach.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use wtchat_core::announcer::PresenceToAnnounce;
use wtchat_core::broker::{
    Broker, BrokerHost, BrokerStatus, BrokerUnavailable, Disconnect, Publish, RoomCounts, RoomHandle,
    ShardStatus,
};
use wtchat_core::room_event::{EventMember, Snapshot};
use wtchat_protocol::PresenceChange;

use crate::command::Command;
use crate::connection::Target;
use crate::keys::Keys;
use crate::link::{Link, NODE_SHIFT, Shared};
use crate::scripts::Scripts;
use crate::shard::{Shard, shard_of};

/// Publishes waiting for Redis beyond which new ones are refused with
/// `BROKER_UNAVAILABLE` rather than queued without bound.
const MAX_QUEUED_PUBLISHES: usize = 100_000;

/// What the broker needs to know.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db` of each Redis; rooms are spread over them by
    /// a stable hash of their names (`shard.rs`). With `cluster`, the seed
    /// nodes of one Redis Cluster instead.
    pub urls: Vec<String>,
    /// Whether `urls` are the seed nodes of one Redis Cluster, which spreads
    /// the rooms over its masters by their slots (`cluster.rs`).
    pub cluster: bool,
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
    /// One link per Redis, the home shard first.
    shards: Vec<ShardLink>,
}

/// One Redis and the task that links to it.
struct ShardLink {
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
        let shared: Vec<&Shared> = self.shards.iter().map(|shard| &*shard.shared).collect();
        f.debug_struct("RedisBroker").field("shards", &shared).finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// A broker for the Redis at the options' URLs; nothing connects until
    /// [`Broker::start`].
    pub fn new(options: &RedisOptions) -> Result<Self, String> {
        if options.urls.is_empty() {
            return Err("redis_url names no Redis".into());
        }
        let parsed = options
            .urls
            .iter()
            .map(|url| {
                redis::Client::open(url.as_str())
                    .map_err(|error| format!("redis_url {url:?} is not usable: {error}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        // A cluster is one shard as far as the rooms go: it spreads them
        // over its masters by itself.
        let targets = if options.cluster {
            vec![Target::Cluster(parsed.iter().map(|client| client.get_connection_info().clone()).collect())]
        } else {
            parsed.into_iter().map(Target::Alone).collect()
        };
        let count = targets.len();
        let home = Arc::new(Shared::default());
        let shards = targets
            .into_iter()
            .enumerate()
            .map(|(index, target)| {
                let (commands, queue) = mpsc::unbounded_channel();
                let shared = if index == 0 { home.clone() } else { Arc::new(Shared::default()) };
                let link = Link {
                    target,
                    queue,
                    requeue: commands.downgrade(),
                    shared: shared.clone(),
                    shard: Shard { index, count },
                    home: home.clone(),
                    history_len: options.history_len,
                    node_timeout: options.node_timeout,
                    presence_interval: options.presence_interval,
                    grace: options.grace,
                    scripts: Scripts::new(
                        Keys::new(&options.key_prefix),
                        options.history_retention.as_secs(),
                    ),
                };
                Ok(ShardLink { commands, link: Mutex::new(Some(link)), shared })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { shards })
    }

    /// The home shard: session ids and the backend's orders.
    fn home(&self) -> &ShardLink {
        &self.shards[0]
    }

    /// The shard that holds `room`.
    fn shard(&self, room: &str) -> &ShardLink {
        &self.shards[shard_of(room, self.shards.len())]
    }
}

impl ShardLink {
    fn send(&self, command: Command) {
        // The receiver lives as long as the link task, which ends only after
        // this sender is dropped; a send before the start is queued.
        let _ = self.commands.send(command);
    }

    fn is_available(&self) -> bool {
        self.shared.available.load(Ordering::Acquire)
    }
}

impl Broker for RedisBroker {
    fn start(&self, host: Weak<dyn BrokerHost>) {
        for shard in &self.shards {
            let Some(link) = shard.link.lock().unwrap_or_else(PoisonError::into_inner).take() else {
                continue;
            };
            tokio::spawn(link.run(host.clone()));
        }
    }

    /// Whether the home shard is linked: new sessions need its node id, and
    /// a room on a shard that is down refuses only its own joins.
    fn is_available(&self) -> bool {
        self.home().is_available()
    }

    fn room_available(&self, room: &str) -> bool {
        self.shard(room).is_available()
    }

    fn session_id_base(&self) -> u64 {
        // Node ids stay far below 2^21, so ids stay below 2^53.
        self.home().shared.node_id.load(Ordering::Relaxed) << NODE_SHIFT
    }

    fn room_opened(&self, room: RoomHandle) {
        self.shard(&room.name).send(Command::Open(room));
    }

    fn room_closed(&self, room: &Arc<str>) {
        self.shard(room).send(Command::Close(room.clone()));
    }

    fn presence(
        &self,
        room: &Arc<str>,
        member: EventMember,
        change: PresenceChange,
        announce: Option<PresenceToAnnounce>,
    ) {
        self.shard(room).send(Command::Presence(room.clone(), member, change, announce));
    }

    fn publish(&self, room: &Arc<str>, publish: Publish) -> Result<(), BrokerUnavailable> {
        let shard = self.shard(room);
        let queued = &shard.shared.queued_publishes;
        if !shard.is_available() || queued.load(Ordering::Relaxed) >= MAX_QUEUED_PUBLISHES {
            return Err(BrokerUnavailable);
        }
        queued.fetch_add(1, Ordering::Relaxed);
        shard.send(Command::Publish(room.clone(), publish));
        Ok(())
    }

    fn peek(&self, room: &Arc<str>, reply: oneshot::Sender<Result<Option<Snapshot>, BrokerUnavailable>>) {
        let shard = self.shard(room);
        if shard.is_available() {
            shard.send(Command::Peek(room.clone(), reply));
        } else {
            let _ = reply.send(Err(BrokerUnavailable));
        }
    }

    /// Each shard's page, merged by name: the first `limit` of them all.
    fn rooms(
        &self,
        after: &str,
        limit: usize,
        reply: oneshot::Sender<Result<RoomCounts, BrokerUnavailable>>,
    ) {
        if !self.shards.iter().all(ShardLink::is_available) {
            let _ = reply.send(Err(BrokerUnavailable));
            return;
        }
        let pages: Vec<_> = self
            .shards
            .iter()
            .map(|shard| {
                let (page, answer) = oneshot::channel();
                shard.send(Command::Rooms(after.to_owned(), limit, page));
                answer
            })
            .collect();
        tokio::spawn(async move {
            let mut rooms = RoomCounts::new();
            for page in pages {
                match page.await {
                    Ok(Ok(page)) => rooms.extend(page),
                    _ => {
                        let _ = reply.send(Err(BrokerUnavailable));
                        return;
                    }
                }
            }
            rooms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            rooms.truncate(limit);
            let _ = reply.send(Ok(rooms));
        });
    }

    fn disconnect(&self, target: &Disconnect, reason: Option<&str>) {
        let home = self.home();
        if home.is_available() {
            home.send(Command::Disconnect(target.clone(), reason.map(str::to_owned)));
        }
    }

    fn typing(&self, room: &Arc<str>, member: EventMember) {
        let shard = self.shard(room);
        if shard.is_available() {
            shard.send(Command::Typing(room.clone(), member));
        }
    }

    fn status(&self) -> BrokerStatus {
        let shards: Vec<ShardStatus> = self
            .shards
            .iter()
            .map(|shard| ShardStatus {
                available: shard.is_available(),
                node_id: shard.shared.node_id.load(Ordering::Relaxed),
                link_losses: shard.shared.link_losses.load(Ordering::Relaxed),
                queued_publishes: shard.shared.queued_publishes.load(Ordering::Relaxed) as u64,
            })
            .collect();
        BrokerStatus {
            kind: "redis",
            available: shards.iter().all(|shard| shard.available),
            node_id: shards[0].node_id,
            link_losses: shards.iter().map(|shard| shard.link_losses).sum(),
            queued_publishes: shards.iter().map(|shard| shard.queued_publishes).sum(),
            shards,
        }
    }
}
