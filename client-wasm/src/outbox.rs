//! The page's messages on their way out: kept in order while the client
//! is disconnected, sent as soon as a transport is up (whichever won),
//! paced to the server's publish rate, and sent again on the next
//! connection when the one they went out on died before the answer came.
//!
//! Each message carries an id the server remembers for
//! [`MESSAGE_ID_WINDOW_MS`], so sending it again is safe: the server
//! answers with the number the first send got and publishes nothing. After
//! that window a repeat could publish it twice, so a message first sent
//! longer ago than that is given up as unconfirmed instead.
//!
//! Pure bookkeeping, with no browser in it, so that it is tested natively.

use std::collections::VecDeque;

use wtchat_protocol::MESSAGE_ID_WINDOW_MS;

/// The most messages waiting at once; a page that sends more while the
/// client cannot is told at once that they failed.
pub const MAX_WAITING: usize = 100;

/// How long before the server forgets an id the client stops sending it
/// again: time for the last attempt to arrive.
const WINDOW_MARGIN_MS: f64 = 10_000.0;

/// A message the server has not yet answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Waiting {
    /// Its id, the same on every attempt.
    pub id: String,
    /// Its room.
    pub room: String,
    /// Its text.
    pub body: String,
    /// The request id it went out under on the current connection; `None`
    /// while it waits to go out.
    pub request_id: Option<u32>,
    /// When it first went out, in ms: the server's window runs from there.
    pub first_sent_ms: Option<f64>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Send this message (the first waiting one) now, then call
    /// [`Outbox::sent`].
    Send(Waiting),
    /// Nothing may go out before this many ms have passed (the rate).
    Wait(f64),
    /// This message was first sent too long ago to send again safely; it
    /// is no longer kept.
    Unconfirmed(Waiting),
    /// Nothing waits to go out.
    Idle,
}

/// The page's unanswered messages, in the order it sent them.
#[derive(Debug, Clone)]
pub struct Outbox {
    waiting: VecDeque<Waiting>,
    /// Publishes the client may send now, refilled at `rate_per_ms` up to
    /// `burst`: the server's limits, from its welcome.
    tokens: f64,
    burst: f64,
    rate_per_ms: f64,
    refilled_ms: f64,
}

impl Default for Outbox {
    fn default() -> Self {
        Self { waiting: VecDeque::new(), tokens: 1.0, burst: 1.0, rate_per_ms: 0.001, refilled_ms: 0.0 }
    }
}

/// Why a message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotTaken {
    /// The outbox holds [`MAX_WAITING`] messages already.
    Full,
    /// A message with this id waits already: it is the same message, on
    /// its way.
    AlreadyWaiting,
}

impl Outbox {
    /// Takes the server's publish limits. The first welcome fills the
    /// allowance; later ones keep what is left of it, as the server keeps a
    /// user's budget across sessions.
    pub fn limits(&mut self, rate_per_sec: u32, burst: u32, now_ms: f64) {
        let first = self.refilled_ms == 0.0;
        self.refill(now_ms);
        self.burst = f64::from(burst.max(1));
        self.rate_per_ms = f64::from(rate_per_sec.max(1)) / 1_000.0;
        self.tokens = if first { self.burst } else { self.tokens.min(self.burst) };
        self.refilled_ms = now_ms;
    }

    /// Keeps a new message, last in line.
    pub fn push(&mut self, id: String, room: String, body: String) -> Result<(), NotTaken> {
        if self.waiting.iter().any(|w| w.id == id) {
            return Err(NotTaken::AlreadyWaiting);
        }
        if self.waiting.len() >= MAX_WAITING {
            return Err(NotTaken::Full);
        }
        self.waiting.push_back(Waiting { id, room, body, request_id: None, first_sent_ms: None });
        Ok(())
    }

    /// What to do next on a live connection.
    pub fn next(&mut self, now_ms: f64) -> Next {
        let Some(index) = self.waiting.iter().position(|w| w.request_id.is_none()) else {
            return Next::Idle;
        };
        let expired = self.waiting[index]
            .first_sent_ms
            .is_some_and(|first| now_ms - first > MESSAGE_ID_WINDOW_MS as f64 - WINDOW_MARGIN_MS);
        if expired {
            return self.waiting.remove(index).map_or(Next::Idle, Next::Unconfirmed);
        }
        self.refill(now_ms);
        if self.tokens < 1.0 {
            return Next::Wait((1.0 - self.tokens) / self.rate_per_ms);
        }
        Next::Send(self.waiting[index].clone())
    }

    /// The message went out under `request_id`.
    pub fn sent(&mut self, id: &str, request_id: u32, now_ms: f64) {
        self.tokens -= 1.0;
        if let Some(waiting) = self.waiting.iter_mut().find(|w| w.id == id) {
            waiting.request_id = Some(request_id);
            waiting.first_sent_ms.get_or_insert(now_ms);
        }
    }

    /// The server answered the publish sent under `request_id`: the
    /// message is no longer kept.
    pub fn answered(&mut self, request_id: u32) -> Option<Waiting> {
        let index = self.waiting.iter().position(|w| w.request_id == Some(request_id))?;
        self.waiting.remove(index)
    }

    /// The server refused the publish sent under `request_id` for a
    /// condition of its own (its broker or moderation unreachable), so it
    /// waits to go out again; `true` when it was one of these.
    pub fn again(&mut self, request_id: u32) -> bool {
        let found = self.waiting.iter_mut().find(|w| w.request_id == Some(request_id));
        found.map(|waiting| waiting.request_id = None).is_some()
    }

    /// The connection ended: what went out on it and was not answered
    /// waits to go out again, in its place.
    pub fn connection_lost(&mut self) {
        for waiting in &mut self.waiting {
            waiting.request_id = None;
        }
    }

    /// The page left `room`: its messages are no longer kept.
    pub fn forget_room(&mut self, room: &str) -> Vec<Waiting> {
        let (gone, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|w| w.room == room);
        self.waiting = kept.into();
        gone
    }

    /// Every unanswered message, in order.
    pub fn waiting(&self) -> impl Iterator<Item = &Waiting> {
        self.waiting.iter()
    }

    fn refill(&mut self, now_ms: f64) {
        let elapsed = (now_ms - self.refilled_ms).max(0.0);
        self.tokens = (self.tokens + elapsed * self.rate_per_ms).min(self.burst);
        self.refilled_ms = now_ms;
    }
}
