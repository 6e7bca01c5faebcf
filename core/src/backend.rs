//! What the application's backend does through the server API: post into
//! rooms under a name of its own, read who is in a room and what was said,
//! list the rooms, and disconnect users.
//!
//! The backend goes through the same core as a client: the same name
//! checks and size limits, the same rooms and numbering, and with a broker
//! the same broker path, so that its messages reach every server in the
//! room's one order. It speaks in neutral types; the HTTP adapter
//! (`wtchat-server`'s `api.rs`) turns them into JSON.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use wtchat_protocol::{ChatMessage, Member};

use crate::announcer::Sent;
use crate::broker::{BrokerUnavailable, Disconnect, Publish, PublishReply, Sequenced};
use crate::hub::{Hub, unix_millis};
use crate::message_id;
use crate::name::{validate_display_name, validate_room_name};
use crate::presence::PAGE_MAX;
use crate::receipts::{Receipt, WINDOW};
use crate::room::{Keyed, RosterPage};
use crate::room_event::{EventMember, RoomEvent, Snapshot};
use crate::token_bucket::TokenBucket;

/// The session id messages from the backend carry as their sender's: no
/// session ever has it, so a client can tell a system message from a
/// member's.
pub const SYSTEM_SESSION_ID: u64 = 0;

/// How long the backend waits for the broker to number a message.
const BROKER_ANSWER: Duration = Duration::from_secs(5);

/// The longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_MAX: usize = 128;

/// Why a backend call was refused, with a stable code for programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// No room of that name has members here, nor, with a broker, a
    /// numbering or history there.
    UnknownRoom(String),
    /// A room or sender name is not allowed; the text says why.
    InvalidName(String),
    /// The body is empty.
    EmptyMessage,
    /// The idempotency key is empty or longer than [`IDEMPOTENCY_KEY_MAX`].
    InvalidIdempotencyKey,
    /// The body is larger than `max_message_bytes`.
    MessageTooLarge {
        /// The body's size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The backend's calls exceed their rate.
    RateLimited {
        /// The sustained rate allowed.
        per_sec: u32,
    },
    /// The broker cannot order messages now; nothing was sent.
    BrokerUnavailable,
}

impl BackendError {
    /// The stable code a program matches on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownRoom(_) => "unknown_room",
            Self::InvalidName(_) => "invalid_name",
            Self::EmptyMessage => "empty_message",
            Self::InvalidIdempotencyKey => "invalid_request",
            Self::MessageTooLarge { .. } => "message_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::BrokerUnavailable => "broker_unavailable",
        }
    }

    /// What a person reads.
    pub fn text(&self) -> String {
        match self {
            Self::UnknownRoom(room) => format!("no room {room:?} has members or history"),
            Self::InvalidName(why) => why.clone(),
            Self::EmptyMessage => "the message is empty".into(),
            Self::InvalidIdempotencyKey => {
                format!("an idempotency_key has 1 to {IDEMPOTENCY_KEY_MAX} bytes")
            }
            Self::MessageTooLarge { bytes, limit } => {
                format!("the message is {bytes} bytes; at most {limit} are allowed")
            }
            Self::RateLimited { per_sec } => {
                format!("at most {per_sec} publishes per second through the API; this one was not sent")
            }
            Self::BrokerUnavailable => {
                "the message was not sent: the server cannot reach its message broker; send it again".into()
            }
        }
    }
}

/// A message to post.
#[derive(Debug, Clone)]
pub struct Post {
    /// The name members see as the sender.
    pub sender: String,
    /// The text.
    pub body: String,
    /// When set, a call repeated with the same key within the receipts'
    /// window answers the first call's result instead of posting again:
    /// on this server alone, or on any server sharing its broker.
    pub idempotency_key: Option<String>,
}

/// A page of a room's recent messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentMessages {
    /// The room's epoch.
    pub epoch: u64,
    /// The number the room's next message will get.
    pub next_seq: u64,
    /// Oldest first.
    pub messages: Vec<ChatMessage>,
}

/// A room and its member count, as the room list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room's name.
    pub name: String,
    /// Its members on every server.
    pub member_count: usize,
}

/// A page of the room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomsPage {
    /// The rooms, by name.
    pub rooms: Vec<RoomSummary>,
    /// Where the next page starts, when there may be one.
    pub next_after: Option<String>,
}

/// The backend's door into the core.
#[derive(Debug)]
pub struct Backend {
    hub: Arc<Hub>,
    /// The publish rate of every backend caller together.
    budget: Mutex<TokenBucket>,
    /// That rate, for the error that says so.
    rate_per_sec: u32,
}

impl Backend {
    /// A backend door allowing `rate_per_sec` publishes per second (and as
    /// many in a burst).
    pub fn new(hub: Arc<Hub>, rate_per_sec: u32) -> Self {
        let rate = rate_per_sec.max(1);
        Self {
            hub,
            budget: Mutex::new(TokenBucket::new(rate, f64::from(rate), Instant::now())),
            rate_per_sec: rate,
        }
    }

    /// The hub behind the door.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Posts one message to a room; answers the number and epoch it got.
    pub async fn publish(&self, room: &str, post: &Post) -> Result<Sequenced, BackendError> {
        let limits = self.hub.config().session;
        let room = self.room_name(room)?;
        let sender = validate_display_name(&post.sender, limits.max_display_name_bytes)
            .map_err(|why| BackendError::InvalidName(format!("sender: {why}")))?;
        if post.body.is_empty() {
            return Err(BackendError::EmptyMessage);
        }
        if post.body.len() > limits.max_message_bytes {
            return Err(BackendError::MessageTooLarge {
                bytes: post.body.len(),
                limit: limits.max_message_bytes,
            });
        }
        let key = post.idempotency_key.as_deref();
        if key.is_some_and(|key| key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX) {
            return Err(BackendError::InvalidIdempotencyKey);
        }
        if !self.budget.lock().unwrap_or_else(PoisonError::into_inner).try_take(Instant::now()) {
            return Err(BackendError::RateLimited { per_sec: self.rate_per_sec });
        }
        // Kept where the message is numbered, beside members' message ids:
        // in the room on a server alone, in the broker otherwise.
        let receipt = key.map(|key| Receipt { key: message_id::backend_receipt_key(key), window: WINDOW });
        self.sequence(&room, sender, post.body.clone(), receipt).await
    }

    /// A room name checked as a client's would be.
    fn room_name(&self, room: &str) -> Result<Arc<str>, BackendError> {
        validate_room_name(room, self.hub.config().session.max_room_name_bytes)
            .map_err(|why| BackendError::InvalidName(format!("room name: {why}")))
    }

    /// Numbers and delivers a checked message: in the room when this
    /// server is alone, through the broker otherwise (which reaches the
    /// room's members on every server, and its history, even when none is
    /// here).
    async fn sequence(
        &self,
        room: &Arc<str>,
        sender: Arc<str>,
        body: String,
        receipt: Option<Receipt>,
    ) -> Result<Sequenced, BackendError> {
        let sent_at_ms = unix_millis();
        let announcer = self.hub.announcer();
        let system = EventMember { session_id: SYSTEM_SESSION_ID, name: sender };
        let Some(broker) = self.hub.broker() else {
            let open =
                self.hub.rooms().get(room).ok_or_else(|| BackendError::UnknownRoom(room.to_string()))?;
            let started = std::time::Instant::now();
            let witness = |sequenced, body: &str| {
                if let Some(announcer) = announcer {
                    announcer.message(
                        room,
                        sequenced,
                        &Sent { sender: &system, user: None, sent_at_ms, body },
                    );
                }
            };
            return Ok(match open.publish(receipt.as_ref(), system.describe(), body, sent_at_ms, witness) {
                Keyed::Published(sequenced, recipients) => {
                    self.hub.metrics().published(recipients, started.elapsed());
                    sequenced
                }
                Keyed::Repeated(sequenced) => sequenced,
            });
        };
        let (reply, answer) = oneshot::channel();
        let announce = announcer.map(|announcer| {
            announcer
                .message_to_announce(room, &Sent { sender: &system, user: None, sent_at_ms, body: &body })
        });
        let publish = Publish {
            sender: system,
            sent_at_ms,
            body,
            receipt,
            reply: PublishReply::Backend(reply),
            announce,
        };
        broker.publish(room, publish).map_err(|BrokerUnavailable| BackendError::BrokerUnavailable)?;
        match tokio::time::timeout(BROKER_ANSWER, answer).await {
            Ok(Ok(Ok(sequenced))) => Ok(sequenced),
            _ => Err(BackendError::BrokerUnavailable),
        }
    }

    /// A page of a room's members on every server: from the room where it
    /// is open here, otherwise from the broker.
    pub async fn members(&self, room: &str, after: u64, limit: usize) -> Result<RosterPage, BackendError> {
        if let Some(open) = self.hub.rooms().get(room) {
            return Ok(open.members_after(after, limit));
        }
        let snapshot = self.peek(room).await?;
        let mut members: Vec<Member> = snapshot.members.iter().map(EventMember::describe).collect();
        members.sort_by_key(|member| member.session_id);
        let member_count = members.len();
        let limit = limit.clamp(1, PAGE_MAX);
        let mut page: Vec<Member> = members.into_iter().filter(|member| member.session_id > after).collect();
        let next_after = (page.len() > limit).then(|| page[limit - 1].session_id);
        page.truncate(limit);
        Ok(RosterPage { member_count, members: page, next_after })
    }

    /// The newest `limit` messages kept with numbers below `before`, oldest
    /// first: from the room where it is open here, otherwise from the
    /// broker's history.
    pub async fn history(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<RecentMessages, BackendError> {
        if let Some(open) = self.hub.rooms().get(room) {
            let page = open.history_before(before, limit);
            let messages = page.chat_messages();
            return Ok(RecentMessages { epoch: page.epoch, next_seq: page.next_seq, messages });
        }
        let snapshot = self.peek(room).await?;
        let mut messages: Vec<ChatMessage> = snapshot
            .history
            .into_iter()
            .filter_map(|event| match event {
                RoomEvent::Message { seq, sender, sent_at_ms, body, .. } if seq < before => {
                    Some(ChatMessage {
                        room: room.to_owned(),
                        seq,
                        sender: sender.describe(),
                        sent_at_ms,
                        body,
                    })
                }
                _ => None,
            })
            .collect();
        messages.drain(..messages.len().saturating_sub(limit));
        Ok(RecentMessages { epoch: snapshot.epoch, next_seq: snapshot.last_seq + 1, messages })
    }

    /// What the broker holds of a room not open here.
    async fn peek(&self, room: &str) -> Result<Snapshot, BackendError> {
        let room = self.room_name(room)?;
        let unknown = || BackendError::UnknownRoom(room.to_string());
        let Some(broker) = self.hub.broker() else { return Err(unknown()) };
        let (reply, answer) = oneshot::channel();
        broker.peek(&room, reply);
        match tokio::time::timeout(BROKER_ANSWER, answer).await {
            Ok(Ok(Ok(Some(snapshot)))) => Ok(snapshot),
            Ok(Ok(Ok(None))) => Err(unknown()),
            _ => Err(BackendError::BrokerUnavailable),
        }
    }

    /// Closes sessions with `DISCONNECTED`: those on this server at once
    /// (their count is the answer), and, with a broker, those on the
    /// others as the order reaches them.
    pub fn disconnect(&self, target: &Disconnect, reason: Option<&str>) -> usize {
        let closed = self.hub.disconnect(target, reason);
        if let Some(broker) = self.hub.broker() {
            broker.disconnect(target, reason);
        }
        closed
    }

    /// A page of the rooms with members, by name: those after `after`
    /// (from the first when empty), at most `limit`, each with its members
    /// on every server. With a broker the list spans every server; without
    /// one it is this server's.
    pub async fn rooms(&self, after: &str, limit: usize) -> Result<RoomsPage, BackendError> {
        let rooms: Vec<RoomSummary> = match self.hub.broker() {
            None => {
                let mut rooms: Vec<RoomSummary> = self
                    .hub
                    .rooms()
                    .all()
                    .iter()
                    .filter(|room| &**room.name() > after)
                    .map(|room| RoomSummary {
                        name: room.name().to_string(),
                        member_count: room.total_member_count(),
                    })
                    .collect();
                rooms.sort_unstable_by(|a, b| a.name.cmp(&b.name));
                rooms.truncate(limit);
                rooms
            }
            Some(broker) => {
                let (reply, answer) = oneshot::channel();
                broker.rooms(after, limit, reply);
                match tokio::time::timeout(BROKER_ANSWER, answer).await {
                    Ok(Ok(Ok(page))) => page
                        .into_iter()
                        .map(|(name, members)| RoomSummary {
                            name: name.to_string(),
                            member_count: usize::try_from(members).unwrap_or(usize::MAX),
                        })
                        .collect(),
                    _ => return Err(BackendError::BrokerUnavailable),
                }
            }
        };
        let next_after = rooms.last().filter(|_| rooms.len() == limit).map(|room| room.name.clone());
        Ok(RoomsPage { rooms, next_after })
    }
}
