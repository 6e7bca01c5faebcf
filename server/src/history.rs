//! A room's recent messages, kept as the frames that were already sent.
//!
//! Keeping the encoded frames rather than the messages means that a joiner's
//! history costs no encoding: it receives the very allocations the live
//! members received.

use std::collections::VecDeque;

use crate::frame::Frame;

/// The last `capacity` messages of a room, in sequence order.
#[derive(Debug)]
pub struct History {
    /// `(seq, frame)`, oldest first, with consecutive sequence numbers.
    entries: VecDeque<(u64, Frame)>,
    /// The most entries kept.
    capacity: usize,
}

/// What a joiner receives from the history.
#[derive(Debug)]
pub struct Replay<'a> {
    /// The frames to send, oldest first.
    pub frames: Vec<&'a Frame>,
    /// Whether the joiner asked to resume from a point the history no longer
    /// reaches back to.
    pub gap: bool,
}

impl History {
    /// An empty history keeping at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self { entries: VecDeque::with_capacity(capacity.min(64)), capacity }
    }

    /// Appends the message with sequence number `seq`, dropping the oldest
    /// beyond the capacity.
    pub fn push(&mut self, seq: u64, frame: Frame) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        debug_assert!(self.entries.back().is_none_or(|(last, _)| *last + 1 == seq));
        self.entries.push_back((seq, frame));
    }

    /// Forgets every message, for a room that starts again from a snapshot.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Everything kept: for a joiner that has seen nothing.
    pub fn all(&self) -> Replay<'_> {
        Replay { frames: self.entries.iter().map(|(_, frame)| frame).collect(), gap: false }
    }

    /// What a joiner that has seen every message up to `last_seq` missed.
    /// `next_seq` is the number the room's next message will get.
    pub fn after(&self, last_seq: u64, next_seq: u64) -> Replay<'_> {
        if last_seq + 1 >= next_seq {
            // Nothing was published since; or the client claims a number the
            // room never reached, and there is nothing newer to give it.
            return Replay { frames: Vec::new(), gap: false };
        }
        let oldest = self.entries.front().map_or(next_seq, |(seq, _)| *seq);
        let frames = self.entries.iter().filter(|(seq, _)| *seq > last_seq).map(|(_, frame)| frame).collect();
        Replay { frames, gap: oldest > last_seq + 1 }
    }
}
