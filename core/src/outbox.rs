//! A session's outbound queue: bounded in bytes, drained in batches.
//!
//! Rooms push shared [`Frame`]s into the outboxes of their members; the
//! session's writer takes everything queued at once and hands it to its
//! transport in one batch. The writer is woken only when the queue goes from
//! empty to non-empty, so a burst of a thousand messages costs one wake-up,
//! not a thousand.
//!
//! The queue is bounded in bytes, not in frames, because bytes are what a slow
//! reader costs the server. A push that would exceed the bound evicts the
//! session: its queued frames are dropped at once, and the writer sends a
//! `SLOW_CONSUMER` notice if the connection still takes it. Nobody else waits
//! for a slow reader, and the memory it can pin is the bound.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use wtchat_protocol::{Closing, ReasonCode};

use crate::closing;
use crate::frame::Frame;

/// Ephemeral frames are queued only while less than this fraction (one
/// over it) of the queue is in use.
const EPHEMERAL_SHARE: usize = 4;

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The frame is queued.
    Queued,
    /// The frame did not fit, and the session is now evicted.
    Overflowed,
    /// The session is closing; the frame was dropped.
    Closed,
    /// The frame was ephemeral and the reader is behind; it was dropped and
    /// the session goes on.
    Skipped,
}

/// What the writer is to do next.
#[derive(Debug)]
pub enum Next {
    /// Send the frames now in the batch, then report them written.
    Frames,
    /// Send this closing notice (if any: there is none when the peer is
    /// already gone), close the transport and stop.
    Close(Option<Closing>),
}

/// A session's outbound queue.
#[derive(Debug)]
pub struct Outbox {
    /// A std mutex, because it is held for a few instructions and never across
    /// an `.await`.
    state: Mutex<State>,
    /// Wakes the writer. `Notify` keeps one permit when nobody waits, so a
    /// push that happens between the writer's check and its wait is not lost.
    wake: Notify,
    /// The byte bound for queued and in-flight frames.
    capacity_bytes: usize,
}

#[derive(Debug)]
struct State {
    /// Frames waiting for the writer.
    queue: Vec<Frame>,
    /// Bytes in `queue` plus bytes the writer took and has not yet reported
    /// written, so that a writer stuck on a full socket still counts against
    /// the bound.
    queued_bytes: usize,
    /// Where the outbox is in its life.
    phase: Phase,
    /// The code of the notice that closed or evicted the session, kept for
    /// the metrics after the writer has taken the notice.
    close_code: Option<ReasonCode>,
    /// Frames and bytes written so far, for the metrics; counted under the
    /// lock the writer takes anyway, so they cost no shared atomic.
    sent_frames: u64,
    sent_bytes: u64,
}

/// What an outbox has sent, and how it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Frames written to the transport.
    pub sent_frames: u64,
    /// Bytes written to the transport.
    pub sent_bytes: u64,
    /// Bytes queued or in flight now.
    pub queued_bytes: usize,
    /// The code of the closing notice, if the server closed the session.
    pub close_code: Option<ReasonCode>,
}

#[derive(Debug)]
enum Phase {
    /// Frames are accepted.
    Open,
    /// No more frames are accepted; the queue drains, then the notice is sent.
    Closing(Closing),
    /// The queue was dropped; the notice, if any, is sent at once.
    Evicted(Option<Closing>),
    /// The writer has taken the notice.
    Done,
}

impl Outbox {
    /// An empty, open outbox holding at most `capacity_bytes`.
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                queue: Vec::new(),
                queued_bytes: 0,
                phase: Phase::Open,
                close_code: None,
                sent_frames: 0,
                sent_bytes: 0,
            }),
            wake: Notify::new(),
            capacity_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the queue consistent (every
        // operation on it is a single push, swap or clear), so a poisoned lock
        // is still safe to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame, or evicts the session if the frame does not fit.
    pub fn push(&self, frame: &Frame) -> Push {
        let mut state = self.lock();
        if !matches!(state.phase, Phase::Open) {
            return Push::Closed;
        }
        // An ephemeral frame (a typing notice) is only worth sending to a
        // reader that keeps up; it never costs a session its place.
        if frame.is_ephemeral() && state.queued_bytes + frame.len() > self.capacity_bytes / EPHEMERAL_SHARE {
            return Push::Skipped;
        }
        if state.queued_bytes + frame.len() > self.capacity_bytes {
            let queued = state.queued_bytes;
            Self::drop_queue(&mut state);
            state.close_code = Some(ReasonCode::SLOW_CONSUMER);
            state.phase = Phase::Evicted(Some(closing::slow_consumer(queued, self.capacity_bytes)));
            drop(state);
            self.wake.notify_one();
            return Push::Overflowed;
        }
        let was_empty = state.queue.is_empty();
        state.queued_bytes += frame.len();
        state.queue.push(frame.clone());
        drop(state);
        if was_empty {
            self.wake.notify_one();
        }
        Push::Queued
    }

    /// Stops accepting frames; the writer sends what is queued, then the
    /// notice, then closes.
    pub fn close(&self, closing: Closing) {
        let mut state = self.lock();
        if matches!(state.phase, Phase::Open) {
            state.close_code = Some(closing.code);
            state.phase = Phase::Closing(closing);
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Drops what is queued; the writer sends the notice at once and closes.
    pub fn evict(&self, closing: Closing) {
        self.drop_and_stop(Some(closing));
    }

    /// Drops what is queued; the writer closes the transport without a
    /// notice, because the peer is gone and nobody would read it.
    pub fn abandon(&self) {
        self.drop_and_stop(None);
    }

    fn drop_and_stop(&self, closing: Option<Closing>) {
        let mut state = self.lock();
        if matches!(state.phase, Phase::Open | Phase::Closing(_)) {
            Self::drop_queue(&mut state);
            state.close_code = closing.as_ref().map(|c| c.code);
            state.phase = Phase::Evicted(closing);
            drop(state);
            self.wake.notify_one();
        }
    }

    fn drop_queue(state: &mut State) {
        let dropped: usize = state.queue.iter().map(Frame::len).sum();
        state.queued_bytes -= dropped;
        state.queue = Vec::new();
    }

    /// Waits for work and moves every queued frame into `batch`, which must
    /// be empty. Swapping the two buffers keeps both allocations in use
    /// instead of allocating a new queue per batch.
    pub async fn next(&self, batch: &mut Vec<Frame>) -> Next {
        debug_assert!(batch.is_empty());
        loop {
            {
                let mut state = self.lock();
                if let Phase::Evicted(_) = state.phase {
                    return Self::finish(&mut state);
                }
                if !state.queue.is_empty() {
                    std::mem::swap(batch, &mut state.queue);
                    return Next::Frames;
                }
                if let Phase::Closing(_) = state.phase {
                    return Self::finish(&mut state);
                }
                if let Phase::Done = state.phase {
                    // The writer already took the notice; there is nothing
                    // left to do but stop again.
                    return Next::Close(None);
                }
            }
            self.wake.notified().await;
        }
    }

    fn finish(state: &mut State) -> Next {
        match std::mem::replace(&mut state.phase, Phase::Done) {
            Phase::Closing(closing) => Next::Close(Some(closing)),
            Phase::Evicted(closing) => Next::Close(closing),
            Phase::Open | Phase::Done => Next::Close(None),
        }
    }

    /// Reports that the writer finished sending a batch of `frames` frames
    /// and `bytes` bytes.
    pub fn written(&self, frames: usize, bytes: usize) {
        let mut state = self.lock();
        state.queued_bytes = state.queued_bytes.saturating_sub(bytes);
        state.sent_frames += frames as u64;
        state.sent_bytes += bytes as u64;
    }

    /// What the outbox has sent and holds, and how it ended.
    pub fn stats(&self) -> OutboxStats {
        let state = self.lock();
        OutboxStats {
            sent_frames: state.sent_frames,
            sent_bytes: state.sent_bytes,
            queued_bytes: state.queued_bytes,
            close_code: state.close_code,
        }
    }

    /// Completes when the session is evicted, so that a writer blocked on a
    /// stalled connection can give up. Other wake-ups are ignored here; the
    /// writer looks at the queue again after its write anyway.
    pub async fn evicted(&self) {
        loop {
            if matches!(self.lock().phase, Phase::Evicted(_)) {
                return;
            }
            self.wake.notified().await;
        }
    }

    /// Whether the outbox still accepts frames.
    pub fn is_open(&self) -> bool {
        matches!(self.lock().phase, Phase::Open)
    }

    /// The byte bound.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Bytes queued or in flight.
    pub fn queued_bytes(&self) -> usize {
        self.lock().queued_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wtchat_protocol::{Pong, ServerMessage};

    fn frame(nonce: u64) -> Frame {
        Frame::encode(&ServerMessage::Pong(Pong { request_id: 0, nonce, server_time_ms: 0 }))
    }

    #[tokio::test]
    async fn drains_everything_queued_in_one_batch() {
        let outbox = Outbox::new(1 << 20);
        for nonce in 0..100 {
            assert_eq!(outbox.push(&frame(nonce)), Push::Queued);
        }
        let mut batch = Vec::new();
        assert!(matches!(outbox.next(&mut batch).await, Next::Frames));
        assert_eq!(batch.len(), 100);
        let bytes: usize = batch.iter().map(Frame::len).sum();
        assert_eq!(outbox.queued_bytes(), bytes, "in-flight bytes still count until written");
        outbox.written(batch.len(), bytes);
        assert_eq!(outbox.queued_bytes(), 0);
        let stats = outbox.stats();
        assert_eq!((stats.sent_frames, stats.sent_bytes), (100, bytes as u64));
    }

    #[tokio::test]
    async fn overflow_evicts_and_frees_the_queue() {
        let one = frame(1).len();
        let outbox = Outbox::new(one * 3);
        for nonce in 0..3 {
            assert_eq!(outbox.push(&frame(nonce)), Push::Queued);
        }
        assert_eq!(outbox.push(&frame(3)), Push::Overflowed);
        assert_eq!(outbox.queued_bytes(), 0, "an evicted session pins no frames");
        assert_eq!(outbox.push(&frame(4)), Push::Closed);
        let mut batch = Vec::new();
        match outbox.next(&mut batch).await {
            Next::Close(closing) => assert_eq!(closing.map(|c| c.code), Some(ReasonCode::SLOW_CONSUMER)),
            Next::Frames => panic!("an evicted outbox handed out frames"),
        }
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn ephemeral_frames_are_skipped_for_a_reader_that_is_behind() {
        use wtchat_protocol::{Member, Typing};
        let typing = Frame::encode(&ServerMessage::Typing(Typing {
            room: "r".into(),
            member: Member { session_id: 1, name: "n".into() },
        }));
        let one = frame(1).len();
        let outbox = Outbox::new(one * 8);
        assert_eq!(outbox.push(&typing), Push::Queued);
        for nonce in 0..4 {
            assert_eq!(outbox.push(&frame(nonce)), Push::Queued);
        }
        assert_eq!(outbox.push(&typing), Push::Skipped);
        assert!(outbox.is_open(), "skipping an ephemeral frame does not evict");
    }

    #[tokio::test]
    async fn close_delivers_queued_frames_before_the_notice() {
        let outbox = Outbox::new(1 << 20);
        outbox.push(&frame(1));
        outbox.close(Closing {
            code: ReasonCode::SERVER_SHUTDOWN,
            text: "bye".into(),
            retry_after_ms: Some(5),
        });
        assert_eq!(outbox.push(&frame(2)), Push::Closed);
        let mut batch = Vec::new();
        assert!(matches!(outbox.next(&mut batch).await, Next::Frames));
        assert_eq!(batch.len(), 1);
        batch.clear();
        match outbox.next(&mut batch).await {
            Next::Close(closing) => assert_eq!(closing.map(|c| c.code), Some(ReasonCode::SERVER_SHUTDOWN)),
            Next::Frames => panic!("frames after the close"),
        }
    }

    #[tokio::test]
    async fn a_push_wakes_a_waiting_writer() {
        let outbox = std::sync::Arc::new(Outbox::new(1 << 20));
        let writer = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut batch = Vec::new();
                let next = outbox.next(&mut batch).await;
                (matches!(next, Next::Frames), batch.len())
            })
        };
        tokio::task::yield_now().await;
        outbox.push(&frame(1));
        assert_eq!(writer.await.unwrap(), (true, 1));
    }
}
