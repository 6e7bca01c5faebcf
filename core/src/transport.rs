//! The seam between the core and a transport.
//!
//! A transport adapter provides two things: a stream of [`Inbound`] items (what
//! the client sent) and a [`FrameSink`] (how frames reach the client). [`serve`]
//! connects them to a new [`Session`](crate::session::Session) and runs the
//! connection to its end: it reads, enforces the heartbeat, drains the outbox
//! in batches, and closes with a reason code. Adapters contain no chat logic
//! and no timers; they only move bytes.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::time::Instant;
use wtchat_protocol::{Closing, ReasonCode, ServerMessage};

use crate::arrival::Arrival;
use crate::authenticator::remaining;
use crate::closing;
use crate::frame::Frame;
use crate::hub::Hub;
use crate::outbox::{Next, Outbox};
use crate::session::{Flow, Inbound, Session};

/// How long the server keeps trying to deliver what is queued to a session
/// it is closing. A peer that does not take it in this time is cut off.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How long each step of saying goodbye (the closing notice, then the
/// transport's close) may take. The close is attempted even when the notice
/// could not be sent, because on some transports (QUIC) the close and its
/// code travel outside the stalled stream.
const GOODBYE_STEP: Duration = Duration::from_secs(1);

/// How long a new session may take to say hello. Independent of the
/// heartbeat: transport keepalives (WebSocket pings) keep a session alive,
/// but only a greeted one.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);

/// Batches of frames older than this many frames are not kept around: a
/// session that once received a burst gives the buffer back.
const BATCH_CAPACITY_KEPT: usize = 1024;

/// How frames reach a client.
pub trait FrameSink: Send {
    /// Sends the frames in order, as few system calls as the transport
    /// allows, and flushes them. The sink takes the frames out of the vector
    /// (leaving its capacity for the next batch), so that each frame's
    /// shared buffer changes hands instead of being cloned again.
    fn send_batch(&mut self, frames: &mut Vec<Frame>) -> impl Future<Output = io::Result<()>> + Send;

    /// Closes the transport with a reason code and text.
    fn close(&mut self, code: ReasonCode, text: &str) -> impl Future<Output = io::Result<()>> + Send;
}

/// Why the reading half stopped.
#[derive(Debug)]
enum ReaderEnd {
    /// The session is to close with this notice.
    Close(Closing),
    /// The peer closed or the connection broke; nobody is there to tell.
    PeerGone,
}

/// Runs one connection from its first frame to its close.
///
/// The arrival comes boxed and the session is opened here rather than by
/// the caller: an async function keeps its arguments for its whole life, so
/// passing a `Session` (or an unboxed `Arrival`) down through the adapters'
/// async functions would store it once per level, on every idle connection.
pub async fn serve<I, K>(hub: Arc<Hub>, arrival: Box<Arrival>, mut inbound: I, mut sink: K)
where
    I: Stream<Item = Inbound> + Unpin + Send,
    K: FrameSink,
{
    let mut session = Session::open(&hub, *arrival);
    let session_id = session.id();
    let outbox = session.outbox().clone();
    let heartbeat_timeout = hub.config().heartbeat_timeout;
    let (cut_off, closing) = {
        let writer = pump(&outbox, &mut sink);
        tokio::pin!(writer);
        let end = {
            let reader = read(&mut session, &mut inbound, heartbeat_timeout);
            tokio::pin!(reader);
            tokio::select! {
                end = &mut reader => Some(end),
                () = &mut writer => None,
            }
        };
        let closing = matches!(end, Some(ReaderEnd::Close(_)));
        let cut_off = match end {
            None => None,
            Some(end) => {
                let code = match end {
                    ReaderEnd::Close(closing) => {
                        tracing::debug!(session = session_id, code = %closing.code, text = %closing.text, "closing");
                        let code = closing.code;
                        outbox.close(closing);
                        code
                    }
                    ReaderEnd::PeerGone => {
                        outbox.abandon();
                        ReasonCode::NORMAL
                    }
                };
                // The writer now sends what is queued, the notice and the
                // close; a peer that does not take them in time is cut off.
                // Meanwhile whatever the client still sends is read and
                // dropped (see `drain`).
                let draining = async {
                    drain(&mut inbound).await;
                    std::future::pending::<()>().await
                };
                let finished = tokio::time::timeout(CLOSE_LINGER, async {
                    tokio::select! {
                        () = &mut writer => {}
                        () = draining => {}
                    }
                })
                .await
                .is_ok();
                (!finished).then_some(code)
            }
        };
        (cut_off, closing)
    };
    if let Some(code) = cut_off {
        // The writer never reached the close: close now, with the code.
        let _ = tokio::time::timeout(GOODBYE_STEP, sink.close(code, "closed while output was pending")).await;
    }
    // The session is over: it leaves its rooms now.
    drop(session);
    if closing {
        // The client's answer to the close (a WebSocket close frame) and
        // anything it sent before seeing it are read, briefly, before the
        // connection is dropped.
        let _ = tokio::time::timeout(GOODBYE_STEP, drain(&mut inbound)).await;
    }
}

/// Reads and drops everything the client sends until its side ends. A
/// connection closed with unread data is reset rather than closed, and a
/// reset can destroy the closing notice and code on their way to the client.
async fn drain<I: Stream<Item = Inbound> + Unpin>(inbound: &mut I) {
    while inbound.next().await.is_some() {}
}

/// Reads until the session closes, the peer goes, or the peer is silent for
/// longer than the heartbeat timeout.
async fn read<I>(session: &mut Session, inbound: &mut I, heartbeat_timeout: Duration) -> ReaderEnd
where
    I: Stream<Item = Inbound> + Unpin,
{
    // The timer is re-armed only when it fires, from the time of the last
    // frame, rather than reset on every frame: a busy session costs one
    // timestamp per frame instead of one timer update. The same timer also
    // ends the session when its token expires; one timer instead of two
    // keeps an idle connection small.
    let opened = Instant::now();
    let mut last_heard = opened;
    let notice = session.token_refresh_notice();
    let mut expiry = Expiry::of(session, opened, notice);
    let next_due = |last_heard: Instant, greeted: bool, expiry: &Expiry| {
        let mut due = last_heard + heartbeat_timeout;
        for at in [expiry.closes_at, expiry.warn_at].into_iter().flatten() {
            due = due.min(at);
        }
        if !greeted {
            due = due.min(opened + HELLO_DEADLINE);
        }
        due
    };
    let deadline = tokio::time::sleep_until(next_due(last_heard, false, &expiry));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            item = inbound.next() => {
                let Some(item) = item else { return ReaderEnd::PeerGone };
                last_heard = Instant::now();
                if let Flow::Close(closing) = session.receive(item, last_heard) {
                    return ReaderEnd::Close(closing);
                }
                // A refreshed token moves the expiry, perhaps before the
                // timer's next firing: a rare event, worth a timer update.
                if session.expires_at() != expiry.of {
                    expiry = Expiry::of(session, last_heard, notice);
                    deadline.as_mut().reset(next_due(last_heard, session.is_greeted(), &expiry));
                }
            }
            () = &mut deadline => {
                let now = Instant::now();
                if expiry.closes_at.is_some_and(|at| now >= at) {
                    return ReaderEnd::Close(closing::token_expired());
                }
                if let Some(closes_at) = expiry.warn_at.filter(|at| now >= *at).and(expiry.closes_at) {
                    session.tell_token_expiring(closes_at - now);
                    expiry.warn_at = None;
                }
                if !session.is_greeted() && now >= opened + HELLO_DEADLINE {
                    return ReaderEnd::Close(closing::protocol_violation(format!(
                        "no hello within {} s of connecting",
                        HELLO_DEADLINE.as_secs()
                    )));
                }
                if now < last_heard + heartbeat_timeout {
                    deadline.as_mut().reset(next_due(last_heard, session.is_greeted(), &expiry));
                    continue;
                }
                return ReaderEnd::Close(closing::heartbeat_timeout(heartbeat_timeout));
            }
        }
    }
}

/// When a session's token closes it, and when the session is told so
/// ahead of time.
struct Expiry {
    /// The token's expiry these instants were taken from.
    of: Option<std::time::SystemTime>,
    /// When the session closes with `UNAUTHORIZED`.
    closes_at: Option<Instant>,
    /// When it is told to refresh its token; `None` once told.
    warn_at: Option<Instant>,
}

impl Expiry {
    /// The instants of the session's token as of `now`: the notice comes
    /// `notice` before the expiry, or halfway when less is left.
    fn of(session: &Session, now: Instant, notice: Duration) -> Self {
        let of = session.expires_at();
        let left = of.map(remaining);
        Self {
            of,
            closes_at: left.map(|left| now + left),
            warn_at: left.map(|left| now + left - notice.min(left / 2)),
        }
    }
}

/// Drains the outbox into the sink until the outbox is closed or the
/// transport fails.
async fn pump<K: FrameSink>(outbox: &Outbox, sink: &mut K) {
    let mut batch = Vec::new();
    // Whether the last write carried more than one frame: the sign that
    // frames arrive faster than they are written.
    let mut busy = false;
    loop {
        // Under load many writers are runnable at once; yielding before
        // draining lets the others (and the publishers) run first, so more
        // frames gather and one write carries them all. At everyday load a
        // write carries one frame, and a yield would only cost each
        // delivery a second trip through the scheduler, so the writer
        // yields only while it is busy.
        if busy {
            tokio::task::yield_now().await;
        }
        match outbox.next(&mut batch).await {
            Next::Frames => {
                let frames = batch.len();
                busy = frames > 1;
                let bytes = batch.iter().map(Frame::len).sum();
                // A write to a peer that stopped reading can block for ever;
                // eviction must still end it.
                let sent = tokio::select! {
                    biased;
                    () = outbox.evicted() => None,
                    result = sink.send_batch(&mut batch) => Some(result),
                };
                batch.clear();
                if batch.capacity() > BATCH_CAPACITY_KEPT {
                    batch = Vec::new();
                }
                match sent {
                    Some(Ok(())) => outbox.written(frames, bytes),
                    Some(Err(error)) => {
                        tracing::debug!(%error, "transport write failed");
                        outbox.abandon();
                        return;
                    }
                    // Evicted: the next call hands over the notice.
                    None => {}
                }
            }
            Next::Close(notice) => {
                say_goodbye(sink, notice).await;
                return;
            }
        }
    }
}

/// Sends the closing notice (if any), then closes the transport with its
/// code. Each step is bounded, and the close happens even if the notice
/// could not be sent.
async fn say_goodbye<K: FrameSink>(sink: &mut K, notice: Option<Closing>) {
    let (code, text) = match notice {
        Some(closing) => {
            let code = closing.code;
            let text = closing.text.clone();
            let frame = Frame::encode(&ServerMessage::Closing(closing));
            let _ = tokio::time::timeout(GOODBYE_STEP, sink.send_batch(&mut vec![frame])).await;
            (code, text)
        }
        None => (ReasonCode::NORMAL, String::new()),
    };
    let _ = tokio::time::timeout(GOODBYE_STEP, sink.close(code, &text)).await;
}

#[cfg(test)]
mod tests;
