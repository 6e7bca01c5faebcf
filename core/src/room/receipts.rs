//! Publishing a member's message that carries an id, in a room that
//! numbers its own: the room remembers what each id got, so that the same
//! message sent again (its sender's connection died before the answer)
//! is answered, not published twice. The check and the numbering happen
//! under the one lock, so two copies racing each other cannot both pass.

use wtchat_protocol::Member;

use super::{Room, RoomState};
use crate::broker::Sequenced;
use crate::receipts::{ROOM_CAPACITY, Receipt, Receipts};

/// What a publish with a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    /// It was numbered now and queued for this many members.
    Published(Sequenced, usize),
    /// An earlier publish with the same key got this number; nothing was
    /// published.
    Repeated(Sequenced),
}

impl Room {
    /// Publishes like [`Room::publish`], unless a message with the same
    /// receipt key was published within the receipt's window.
    pub fn publish_once(
        &self,
        receipt: &Receipt,
        sender: Member,
        body: String,
        sent_at_ms: u64,
        witness: impl FnOnce(Sequenced, &str),
    ) -> Keyed {
        let mut state = self.lock();
        if let Some(sequenced) = receipts(&mut state, receipt).get(&receipt.key) {
            return Keyed::Repeated(sequenced);
        }
        let (sequenced, recipients) = self.publish_locked(&mut state, sender, body, sent_at_ms, witness);
        receipts(&mut state, receipt).insert(receipt.key.clone(), sequenced);
        Keyed::Published(sequenced, recipients)
    }
}

fn receipts<'a>(state: &'a mut RoomState, receipt: &Receipt) -> &'a mut Receipts<String> {
    state.receipts.get_or_insert_with(|| Box::new(Receipts::new(receipt.window, ROOM_CAPACITY)))
}
