//! The broker seam: what orders a room's messages across servers, and what
//! the core offers it in return.
//!
//! The seam points one way. The core owns both traits and speaks in neutral
//! types: room names ([`RoomHandle`] when the incarnation matters), members
//! ([`EventMember`]), feed events ([`RoomEvent`]) and outboxes. A broker
//! (the Redis adapter in `wtchat-redis`) implements [`Broker`]; the core's
//! [`Hub`](crate::hub::Hub) implements [`BrokerHost`], which the broker
//! holds weakly and drives: which rooms are open, a room's snapshot, an
//! event of a room's feed, the link lost. No broker sees a `Hub` or a
//! `Room`.
//!
//! A server with no broker has none: its rooms number their own messages
//! (see `room.rs`), with no do-nothing implementation in between.

use std::fmt;
use std::sync::{Arc, Weak};

use wtchat_protocol::{ErrorCode, ErrorNotice, PresenceChange, Published, ServerMessage};

use tokio::sync::oneshot;

use crate::announcer::{MessageToAnnounce, PresenceToAnnounce};
use crate::frame::Frame;
use crate::outbox::Outbox;
use crate::receipts::Receipt;
pub use crate::room_event::Sequenced;
use crate::room_event::{EventMember, RoomEvent, Snapshot};

/// The broker cannot take the request now; nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerUnavailable;

impl BrokerUnavailable {
    /// The error that tells a sender its message was not sent, whether the
    /// session finds out at once or the broker finds out later.
    pub fn publish_error(request_id: u32) -> ServerMessage {
        ServerMessage::Error(ErrorNotice {
            request_id: Some(request_id),
            code: ErrorCode::BROKER_UNAVAILABLE,
            text: "the message was not sent: the server cannot reach its message broker; send it again"
                .into(),
        })
    }
}

/// One incarnation of a room on this server. A room that empties and is
/// created again under the same name is a new incarnation, so that what
/// the broker fetched for the old one (a snapshot) cannot start the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHandle {
    /// The room's name.
    pub name: Arc<str>,
    /// Unique among the rooms this process ever opened.
    pub incarnation: u64,
}

/// A message for the broker to sequence and deliver to every server.
#[derive(Debug)]
pub struct Publish {
    /// Who sent it.
    pub sender: EventMember,
    /// When this server accepted it.
    pub sent_at_ms: u64,
    /// The text.
    pub body: String,
    /// An idempotency key (a backend's, or a member's message id): the
    /// broker answers a publish repeated with the same key (on any server)
    /// within the receipt's window with the first one's number, and
    /// publishes it once.
    pub receipt: Option<Receipt>,
    /// Who hears what became of it.
    pub reply: PublishReply,
    /// What the application's backend is told once it has its number
    /// (only when the server announces events): the broker hands it back
    /// from the server that sequenced the message, so that a message is
    /// announced once for every server.
    pub announce: Option<MessageToAnnounce>,
}

/// Who hears what became of a publish once the broker knows.
#[derive(Debug)]
pub enum PublishReply {
    /// A session, which sees its own message arrive like everyone else's
    /// and hears of a failure (an error under the request's id, in its
    /// outbox), and of the number when its publish carried a message id.
    Session {
        /// The publish request's id.
        request_id: u32,
        /// The sender's outbox.
        outbox: Arc<Outbox>,
        /// The room's name, when the session is told the number.
        acknowledge: Option<Arc<str>>,
    },
    /// The application's backend, waiting for the number the message got.
    Backend(oneshot::Sender<Result<Sequenced, BrokerUnavailable>>),
}

impl PublishReply {
    /// The message was numbered, now or (`repeated`) by an earlier
    /// publish with the same key.
    pub fn sequenced(self, sequenced: Sequenced, repeated: bool) {
        match self {
            Self::Session { request_id, outbox, acknowledge: Some(room) } => {
                outbox.push(&Frame::encode(&published(request_id, &room, sequenced, repeated)));
            }
            Self::Session { acknowledge: None, .. } => {}
            Self::Backend(waiting) => {
                // A caller that stopped waiting needs no answer.
                let _ = waiting.send(Ok(sequenced));
            }
        }
    }

    /// The message was not sent, and never will be.
    pub fn refused(self) {
        match self {
            Self::Session { request_id, outbox, .. } => {
                outbox.push(&Frame::encode(&BrokerUnavailable::publish_error(request_id)));
            }
            Self::Backend(waiting) => {
                let _ = waiting.send(Err(BrokerUnavailable));
            }
        }
    }
}

/// The answer a session's publish with a message id gets.
pub fn published(request_id: u32, room: &str, sequenced: Sequenced, repeated: bool) -> ServerMessage {
    ServerMessage::Published(Published {
        request_id,
        room: room.to_owned(),
        epoch: sequenced.epoch,
        seq: sequenced.seq,
        repeated,
    })
}

/// Rooms by name, each with its members on every server.
pub type RoomCounts = Vec<(Arc<str>, u64)>;

/// Whose sessions the application's backend disconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// Every session of a user (their token's `sub`).
    User(String),
    /// One session, by id.
    Session(u64),
}

/// What a broker reports of itself for `/status` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BrokerStatus {
    /// Which broker (`redis`).
    pub kind: &'static str,
    /// Whether it can order messages now.
    pub available: bool,
    /// This server's id among those sharing the broker.
    pub node_id: u64,
    /// How many times the link was lost.
    pub link_losses: u64,
    /// Publishes waiting to be handed over.
    pub queued_publishes: u64,
    /// Each store the broker spreads rooms over (one for a single Redis),
    /// the home one first; the figures above sum or join them.
    pub shards: Vec<ShardStatus>,
}

/// What a broker reports of one of its stores.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShardStatus {
    /// Whether its rooms can order messages now.
    pub available: bool,
    /// This server's id in that store.
    pub node_id: u64,
    /// How many times its link was lost.
    pub link_losses: u64,
    /// Publishes waiting for it.
    pub queued_publishes: u64,
}

/// Orders room events across servers. Every method returns at once: a
/// broker queues work for its own task and never makes a session wait.
pub trait Broker: Send + Sync + fmt::Debug {
    /// Starts the broker's background work. The host is weak, so that a
    /// dropped hub ends it; the broker must hold nothing that keeps its own
    /// work alive after the hub is gone.
    fn start(&self, host: Weak<dyn BrokerHost>);

    /// Whether the broker can order messages now. A server whose broker is
    /// down turns new sessions away, because it could not serve them.
    fn is_available(&self) -> bool;

    /// Whether the broker can order this room's messages now: a broker that
    /// spreads rooms over several stores may have lost one of them only.
    fn room_available(&self, room: &str) -> bool;

    /// Added to this server's session ids, so that ids stay unique across
    /// the servers sharing a broker.
    fn session_id_base(&self) -> u64;

    /// A room's first member on this server is joining: subscribe to its
    /// feed and deliver its snapshot with [`BrokerHost::snapshot`].
    fn room_opened(&self, room: RoomHandle);

    /// A room's last member on this server left.
    fn room_closed(&self, room: &Arc<str>);

    /// A member joined, left or vanished from a room on this server. Once
    /// the change is recorded, `announce` (present when the server
    /// announces events) is told how many members the room has on every
    /// server, which makes it the first or the last.
    fn presence(
        &self,
        room: &Arc<str>,
        member: EventMember,
        change: PresenceChange,
        announce: Option<PresenceToAnnounce>,
    );

    /// Sequences a message and delivers it to every server with members in
    /// the room, this one included, through the feed.
    fn publish(&self, room: &Arc<str>, publish: Publish) -> Result<(), BrokerUnavailable>;

    /// Reads what the broker holds of a room without opening it (for the
    /// application's backend, on a server where the room is not open):
    /// `None` for a room it does not know.
    fn peek(&self, room: &Arc<str>, reply: oneshot::Sender<Result<Option<Snapshot>, BrokerUnavailable>>);

    /// Reads a page of the rooms with members on any server, by name:
    /// those after `after` (from the first when empty), at most `limit`,
    /// each with its members on every server.
    fn rooms(&self, after: &str, limit: usize, reply: oneshot::Sender<Result<RoomCounts, BrokerUnavailable>>);

    /// Tells every server that `member` is typing in `room`.
    fn typing(&self, room: &Arc<str>, member: EventMember);

    /// Tells every other server to close these sessions of theirs (this
    /// one has closed its own).
    fn disconnect(&self, target: &Disconnect, reason: Option<&str>);

    /// What the broker reports of itself.
    fn status(&self) -> BrokerStatus;
}

/// What the core does for a broker. Implemented by the hub.
pub trait BrokerHost: Send + Sync {
    /// Every room open on this server that `which` names, each now waiting
    /// for a fresh snapshot: called after a link came back, since those
    /// rooms missed their feed meanwhile.
    fn rooms_to_resync(&self, which: &dyn Fn(&str) -> bool) -> Vec<RoomHandle>;

    /// Whether a room of that name is open on this server (its feed is
    /// still wanted).
    fn is_open(&self, room: &str) -> bool;

    /// Starts a room from the broker's state. Returns `false` when that
    /// incarnation of the room is gone (closed, perhaps opened again as a
    /// new one, which gets its own snapshot).
    fn snapshot(&self, room: &RoomHandle, snapshot: Snapshot) -> bool;

    /// Applies one event of a room's feed. Returns the room when its feed
    /// broke (a skipped number, a new epoch) and it must be opened again.
    fn apply(&self, room: &str, event: RoomEvent) -> Option<RoomHandle>;

    /// A link was lost for good: the feed of the rooms `which` names may
    /// have gaps, so their members are closed to resume.
    fn link_lost(&self, which: &dyn Fn(&str) -> bool);

    /// Another server was asked to disconnect these sessions: close those
    /// on this server.
    fn disconnect(&self, target: &Disconnect, reason: Option<&str>);

    /// This server removed the member of a dead server (or one its own lost
    /// link left behind) from a room, which has `members_left` on every
    /// server now: announce it, since its own server cannot.
    fn reaped(&self, room: &str, member: EventMember, members_left: u64);
}
