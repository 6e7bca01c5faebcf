//! Paging back through a room's older messages: the page asks for those
//! below the oldest number it shows, and hears them in a `history` event,
//! apart from live messages, so that nothing it already showed is
//! delivered twice and nothing old is taken for new.

use wasm_bindgen::prelude::*;
use wtchat_protocol::{ClientMessage, HistoryPage};

use crate::client::{Client, Inner};
use crate::events::{HistoryEvent, MessageEvent};

/// The most messages one page asks for (the server caps it there too).
const PAGE: u32 = 50;

#[wasm_bindgen]
impl Client {
    /// Asks for the messages of a joined room numbered below `before` (the
    /// oldest the page holds), newest first up to a page; the answer is a
    /// `history` event. Returns false when the room was not joined or the
    /// client is not connected.
    pub fn history(&self, room: &str, before: f64) -> bool {
        if self.inner.state.borrow().ledger.room(room).is_none() {
            return false;
        }
        // Numbers reach JavaScript as doubles; below 2^53 they are exact.
        let before = if before.is_finite() && before > 0.0 { before as u64 } else { u64::MAX };
        self.inner.send(ClientMessage::History { room: room.to_owned(), before, limit: PAGE })
    }
}

impl Inner {
    /// Hands a page of older messages to the page, unless the room started
    /// a new epoch since the page asked: its numbers would not continue
    /// what the page shows.
    pub(crate) fn history_page(&self, page: &HistoryPage) {
        let epoch = self.state.borrow().ledger.room(&page.room).and_then(|room| room.epoch);
        if epoch != Some(page.epoch) {
            return;
        }
        let event = HistoryEvent {
            room: page.room.clone(),
            epoch: page.epoch,
            messages: page.messages.iter().map(MessageEvent::from).collect(),
            more: page.more,
        };
        self.emit("history", &event);
    }
}
