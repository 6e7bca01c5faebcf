//! What a room that numbers its own messages remembers of the keyed ones
//! (members' message ids, the backend's idempotency keys), so that the same
//! message sent again is answered with its number, not published twice
//! (see [`Room::publish`](super::Room::publish)).

use super::RoomState;
use crate::broker::Sequenced;
use crate::receipts::{ROOM_CAPACITY, Receipts};

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    /// It was numbered now and queued for this many members.
    Published(Sequenced, usize),
    /// An earlier publish with the same key got this number; nothing was
    /// published.
    Repeated(Sequenced),
}

impl RoomState {
    /// The room's receipts, made on its first keyed message: a room that
    /// never gets one holds none.
    pub(super) fn receipts(&mut self) -> &mut Receipts {
        self.receipts.get_or_insert_with(|| Box::new(Receipts::new(ROOM_CAPACITY)))
    }
}
