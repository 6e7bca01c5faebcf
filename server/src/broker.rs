//! The broker: what orders a room's messages and carries them to every
//! server that has members in it.
//!
//! Sessions and the room registry talk to the broker through this trait and
//! nothing else, so the core does not know whether a room lives in this
//! process ([`InMemoryBroker`](crate::in_memory_broker::InMemoryBroker), the
//! default) or spans servers through Redis
//! ([`RedisBroker`](crate::redis_broker::RedisBroker)). Either way each
//! server turns a message into one shared frame for all its members.

use std::fmt;
use std::sync::{Arc, Weak};

use wtchat_protocol::{ErrorCode, ErrorNotice, PresenceChange, ServerMessage};

use crate::hub::Hub;
use crate::room::{Room, RoomMember};

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

/// Where a publish went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Delivered already, to this many members of this server.
    Delivered(usize),
    /// Handed to the broker, which delivers it to every server, this one
    /// included, once it is sequenced.
    Forwarded,
}

/// Orders and carries room events.
pub trait Broker: Send + Sync + fmt::Debug {
    /// Starts whatever runs in the background (the link to Redis). The hub
    /// is weak so that a dropped hub stops it.
    fn start(self: Arc<Self>, hub: Weak<Hub>);

    /// Whether the broker can order messages now. A server whose broker is
    /// down turns new sessions away, because it could not serve them.
    fn is_available(&self) -> bool;

    /// Added to this server's session ids, so that ids stay unique across
    /// the servers sharing a broker.
    fn session_id_base(&self) -> u64;

    /// Whether new rooms must wait for the broker's state before answering
    /// joins (they follow a shared feed) or start empty (they are the feed).
    fn rooms_follow(&self) -> bool;

    /// A room's first member on this server is joining.
    fn room_opened(&self, room: &Arc<Room>);

    /// A room's last member on this server left.
    fn room_closed(&self, room: &Arc<Room>);

    /// A member joined a room on this server.
    fn member_joined(&self, room: &Room, member: &RoomMember);

    /// A member left a room on this server.
    fn member_left(&self, room: &Room, member: &RoomMember, change: PresenceChange);

    /// Publishes a message; `request_id` is the publish request's, for an
    /// error the broker may only find out about later.
    fn publish(
        &self,
        room: &Room,
        sender: &RoomMember,
        request_id: u32,
        body: String,
        sent_at_ms: u64,
    ) -> Result<Published, BrokerUnavailable>;

    /// Tells the room that `sender` is typing.
    fn typing(&self, room: &Room, sender: &RoomMember);

    /// A short description for `/status`: its kind, whether it is
    /// available, and what it knows of its peers.
    fn describe(&self) -> serde_json::Value;
}
