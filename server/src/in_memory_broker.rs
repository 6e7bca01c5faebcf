//! The in-memory broker: every room lives in this process, and the room
//! itself sequences its messages under its own lock. This is the default,
//! and what a single server runs.

use std::sync::{Arc, Weak};

use wtchat_protocol::PresenceChange;

use crate::broker::{Broker, BrokerUnavailable, Published};
use crate::hub::Hub;
use crate::room::{Room, RoomMember};

/// The broker of a server that is alone.
#[derive(Debug, Default)]
pub struct InMemoryBroker;

impl Broker for InMemoryBroker {
    fn start(self: Arc<Self>, _hub: Weak<Hub>) {}

    fn is_available(&self) -> bool {
        true
    }

    fn session_id_base(&self) -> u64 {
        0
    }

    fn rooms_follow(&self) -> bool {
        false
    }

    fn room_opened(&self, _room: &Arc<Room>) {}

    fn room_closed(&self, _room: &Arc<Room>) {}

    fn member_joined(&self, _room: &Room, _member: &RoomMember) {}

    fn member_left(&self, _room: &Room, _member: &RoomMember, _change: PresenceChange) {}

    fn publish(
        &self,
        room: &Room,
        sender: &RoomMember,
        _request_id: u32,
        body: String,
        sent_at_ms: u64,
    ) -> Result<Published, BrokerUnavailable> {
        Ok(Published::Delivered(room.publish(sender, body, sent_at_ms)))
    }

    fn typing(&self, room: &Room, sender: &RoomMember) {
        room.typing(sender);
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "memory", "available": true })
    }
}
