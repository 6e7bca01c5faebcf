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
use wtchat_protocol::{ChatMessage, Member, ServerMessage};

use crate::broker::{BrokerUnavailable, Publish, PublishReply, Sequenced};
use crate::hub::{Hub, unix_millis};
use crate::name::{validate_display_name, validate_room_name};
use crate::receipts::Receipts;
use crate::room::{HistoryPage, RosterPage};
use crate::room_event::EventMember;
use crate::token_bucket::TokenBucket;

/// The session id messages from the backend carry as their sender's: no
/// session ever has it, so a client can tell a system message from a
/// member's.
pub const SYSTEM_SESSION_ID: u64 = 0;

/// How long the backend waits for the broker to number a message.
const BROKER_ANSWER: Duration = Duration::from_secs(5);

/// Why a backend call was refused, with a stable code for programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// No room of that name has members here (or, with a broker, the call
    /// needs a room open on this server).
    UnknownRoom(String),
    /// A room or sender name is not allowed; the text says why.
    InvalidName(String),
    /// The body is empty.
    EmptyMessage,
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
            Self::MessageTooLarge { .. } => "message_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::BrokerUnavailable => "broker_unavailable",
        }
    }

    /// What a person reads.
    pub fn text(&self) -> String {
        match self {
            Self::UnknownRoom(room) => format!("no room {room:?} has members on this server"),
            Self::InvalidName(why) => why.clone(),
            Self::EmptyMessage => "the message is empty".into(),
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
    /// window answers the first call's result instead of posting again.
    pub idempotency_key: Option<String>,
}

/// A room and its member count, as the room list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room's name.
    pub name: String,
    /// Its members on every server.
    pub member_count: usize,
}

/// The backend's door into the core.
#[derive(Debug)]
pub struct Backend {
    hub: Arc<Hub>,
    /// What keyed publishes got, for repeated calls.
    receipts: Mutex<Receipts>,
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
            receipts: Mutex::new(Receipts::default()),
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
        let room = validate_room_name(room, limits.max_room_name_bytes)
            .map_err(|why| BackendError::InvalidName(format!("room name: {why}")))?;
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
        let key = post.idempotency_key.as_ref().map(|key| (room.clone(), key.clone()));
        if let Some(key) = &key
            && let Some(sequenced) = self.receipts().get(key)
        {
            return Ok(sequenced);
        }
        if !self.budget.lock().unwrap_or_else(PoisonError::into_inner).try_take(Instant::now()) {
            return Err(BackendError::RateLimited { per_sec: self.rate_per_sec });
        }
        let sequenced = self.sequence(&room, sender, post.body.clone()).await?;
        if let Some(key) = key {
            self.receipts().insert(key, sequenced);
        }
        Ok(sequenced)
    }

    fn receipts(&self) -> std::sync::MutexGuard<'_, Receipts> {
        self.receipts.lock().unwrap_or_else(PoisonError::into_inner)
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
    ) -> Result<Sequenced, BackendError> {
        let sent_at_ms = unix_millis();
        let Some(broker) = self.hub.broker() else {
            let open =
                self.hub.rooms().get(room).ok_or_else(|| BackendError::UnknownRoom(room.to_string()))?;
            let started = std::time::Instant::now();
            let member = Member { session_id: SYSTEM_SESSION_ID, name: sender.to_string() };
            let (sequenced, recipients) = open.publish(member, body, sent_at_ms);
            self.hub.metrics().published(recipients, started.elapsed());
            return Ok(sequenced);
        };
        let (reply, answer) = oneshot::channel();
        let publish = Publish {
            sender: EventMember { session_id: SYSTEM_SESSION_ID, name: sender },
            sent_at_ms,
            body,
            reply: PublishReply::Backend(reply),
        };
        broker.publish(room, publish).map_err(|BrokerUnavailable| BackendError::BrokerUnavailable)?;
        match tokio::time::timeout(BROKER_ANSWER, answer).await {
            Ok(Ok(Ok(sequenced))) => Ok(sequenced),
            _ => Err(BackendError::BrokerUnavailable),
        }
    }

    /// A page of a room's members on every server.
    pub fn members(&self, room: &str, after: u64, limit: usize) -> Result<RosterPage, BackendError> {
        Ok(self.open_room(room)?.members_after(after, limit))
    }

    /// The newest `limit` messages kept with numbers below `before`, oldest
    /// first, decoded for the caller.
    pub fn history(
        &self,
        room: &str,
        before: u64,
        limit: usize,
    ) -> Result<(HistoryPage, Vec<ChatMessage>), BackendError> {
        let page = self.open_room(room)?.history_before(before, limit);
        let messages = page
            .messages
            .iter()
            .filter_map(|(_, frame)| match wtchat_protocol::decode(&frame.body(), usize::MAX) {
                Ok(ServerMessage::Message(message)) => Some(message),
                _ => None,
            })
            .collect();
        Ok((page, messages))
    }

    /// Every room open on this server, by name, with its member count.
    pub fn rooms(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<RoomSummary> = self
            .hub
            .rooms()
            .all()
            .iter()
            .map(|room| RoomSummary {
                name: room.name().to_string(),
                member_count: room.total_member_count(),
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    fn open_room(&self, room: &str) -> Result<Arc<crate::room::Room>, BackendError> {
        self.hub.rooms().get(room).ok_or_else(|| BackendError::UnknownRoom(room.to_owned()))
    }
}
