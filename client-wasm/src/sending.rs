//! The page's sends, as it sees them: each message is "pending" until the
//! server answers, then "sent" with its number, or "failed" with the
//! server's reason. The bookkeeping is `outbox.rs`; this is where it meets
//! the connection and the page.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use wtchat_protocol::{ClientMessage, ErrorCode, ErrorNotice, Published};

use crate::client::{Client, Inner};
use crate::events::SendEvent;
use crate::js_object::array;
use crate::outbox::{MAX_WAITING, Next, NotTaken, Waiting};
use crate::time::{now_ms, sleep};

/// How long a message the server could not take for a reason of its own
/// (its broker or moderation out of reach) waits before going out again.
const RETRY_MS: f64 = 1_000.0;

#[wasm_bindgen]
impl Client {
    /// Sends a message to a room the page joined, and returns its id (the
    /// one given, or a fresh one), or undefined when the room was not
    /// joined. The message is kept, in order, while the client is not
    /// connected and until the server answers; a "send" event tells each
    /// change of its state. Sent again after a lost connection, under the
    /// same id, it still appears once.
    pub fn send(&self, room: &str, text: &str, id: Option<String>) -> Option<String> {
        self.inner.state.borrow().ledger.room(room)?;
        let id = id.filter(|id| !id.is_empty()).unwrap_or_else(fresh_id);
        let pushed = self.inner.state.borrow_mut().outbox.push(id.clone(), room.to_owned(), text.to_owned());
        let waiting =
            Waiting { id: id.clone(), room: room.to_owned(), body: text.to_owned(), ..Waiting::default() };
        match pushed {
            Ok(()) => {
                self.inner.emit("send", &SendEvent::of(&waiting, "pending"));
                self.inner.flush();
            }
            // Already on its way: its events come as they would have.
            Err(NotTaken::AlreadyWaiting) => {}
            Err(NotTaken::Full) => {
                let reason = format!("{MAX_WAITING} messages are waiting to be sent already");
                self.inner.emit("send", &SendEvent::failed(&waiting, "OUTBOX_FULL", reason));
            }
        }
        Some(id)
    }

    /// The page's messages the server has not answered yet, in order.
    pub fn pending(&self) -> JsValue {
        let state = self.inner.state.borrow();
        let waiting: Vec<SendEvent> = state.outbox.waiting().map(|w| SendEvent::of(w, "pending")).collect();
        array(&waiting)
    }

    /// Drops the current connection and makes a new one at once, as after
    /// a network change; what was not answered is sent again on it.
    pub fn reconnect(&self) {
        let mut state = self.inner.state.borrow_mut();
        if let Some(link) = state.link.take() {
            state.reconnect_asked = true;
            drop(state);
            link.close();
        }
    }
}

impl Inner {
    /// Sends what may go out now, in order; when the server's rate holds
    /// the rest back, comes back for it.
    pub(crate) fn flush(self: &Rc<Self>) {
        loop {
            let next = {
                let mut state = self.state.borrow_mut();
                if state.link.is_none() {
                    return;
                }
                state.outbox.next(now_ms())
            };
            match next {
                Next::Idle => return,
                Next::Wait(ms) => return self.flush_in(ms),
                Next::Unconfirmed(waiting) => {
                    let reason = "it went out on a connection that was lost before the server answered, too \
                                  long ago to send again safely: it may or may not be in the room"
                        .into();
                    self.emit("send", &SendEvent::failed(&waiting, "UNCONFIRMED", reason));
                }
                Next::Send(waiting) => {
                    let publish = ClientMessage::Publish {
                        room: waiting.room,
                        body: waiting.body,
                        message_id: Some(waiting.id.clone()),
                    };
                    let (request_id, body) = self.encode_numbered(publish);
                    let mut state = self.state.borrow_mut();
                    let sent = state.link.as_ref().is_some_and(|link| link.send(&body).is_ok());
                    if !sent {
                        return;
                    }
                    let now = now_ms();
                    state.outbox.sent(&waiting.id, request_id, now);
                    state.last_sent_ms = now;
                }
            }
        }
    }

    /// Flushes again in `ms`, unless that is arranged already.
    fn flush_in(self: &Rc<Self>, ms: f64) {
        if std::mem::replace(&mut self.state.borrow_mut().flush_scheduled, true) {
            return;
        }
        let inner = self.clone();
        spawn_local(async move {
            sleep(ms.max(1.0)).await;
            inner.state.borrow_mut().flush_scheduled = false;
            inner.flush();
        });
    }

    /// The server numbered one of the page's messages.
    pub(crate) fn published(&self, published: &Published) {
        let Some(waiting) = self.state.borrow_mut().outbox.answered(published.request_id) else { return };
        let event = SendEvent {
            seq: Some(published.seq),
            epoch: Some(published.epoch),
            repeated: Some(published.repeated),
            ..SendEvent::of(&waiting, "sent")
        };
        self.emit("send", &event);
    }

    /// The server refused a request; when it was one of the page's
    /// messages, it fails with the server's reason, or waits to go out
    /// again when the reason is the server's own. Returns whether it was.
    pub(crate) fn send_refused(self: &Rc<Self>, error: &ErrorNotice) -> bool {
        let Some(request_id) = error.request_id else { return false };
        if matches!(error.code, ErrorCode::BROKER_UNAVAILABLE | ErrorCode::MODERATION_UNAVAILABLE) {
            let again = self.state.borrow_mut().outbox.again(request_id);
            if again {
                self.flush_in(RETRY_MS);
            }
            return again;
        }
        let Some(waiting) = self.state.borrow_mut().outbox.answered(request_id) else { return false };
        let code = error.code.name().map_or_else(|| error.code.0.to_string(), str::to_owned);
        self.emit("send", &SendEvent::failed(&waiting, &code, error.text.clone()));
        true
    }

    /// The page left a room: its messages still waiting fail.
    pub(crate) fn forget_sends(&self, room: &str) {
        let gone = self.state.borrow_mut().outbox.forget_room(room);
        for waiting in gone {
            let reason = format!("the page left \"{room}\" before it went out");
            self.emit("send", &SendEvent::failed(&waiting, "LEFT", reason));
        }
    }
}

/// A fresh message id: 128 random bits in hex.
fn fresh_id() -> String {
    (0..4).map(|_| format!("{:08x}", (js_sys::Math::random() * 4_294_967_296.0) as u32)).collect()
}
