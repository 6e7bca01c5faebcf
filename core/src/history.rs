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
    /// How many of the newest a fresh joiner is sent; it asks for older
    /// ones by page.
    replay: usize,
}

/// How much a room keeps, and how much of it a fresh joiner gets at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// The most messages kept.
    pub keep: usize,
    /// The most of them a join replays (a resume gets all it missed).
    pub replay: usize,
}

impl HistoryPolicy {
    /// Keeps `keep` messages and replays them all.
    pub fn keeping(keep: usize) -> Self {
        Self { keep, replay: keep }
    }
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
    /// An empty history keeping at most `capacity` messages. Nothing is
    /// reserved up front: a room that holds no messages costs no slots, and
    /// a server may hold many such rooms.
    pub fn new(policy: HistoryPolicy) -> Self {
        Self { entries: VecDeque::new(), capacity: policy.keep, replay: policy.replay }
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

    /// The newest messages, up to the replay: for a joiner that has seen
    /// nothing.
    pub fn latest(&self) -> Replay<'_> {
        let skip = self.entries.len().saturating_sub(self.replay);
        Replay { frames: self.entries.iter().skip(skip).map(|(_, frame)| frame).collect(), gap: false }
    }

    /// Whether anything kept is numbered below `seq`.
    pub fn has_before(&self, seq: u64) -> bool {
        self.entries.front().is_some_and(|(oldest, _)| *oldest < seq)
    }

    /// The newest `limit` messages numbered below `before`, oldest first,
    /// each with its number.
    pub fn before(&self, before: u64, limit: usize) -> Vec<(u64, Frame)> {
        let mut page: Vec<(u64, Frame)> =
            self.entries.iter().rev().filter(|(seq, _)| *seq < before).take(limit).cloned().collect();
        page.reverse();
        page
    }

    /// What a joiner that has seen every message up to `last_seq` missed.
    /// `next_seq` is the number the room's next message will get.
    /// `last_seq` comes from the client, so any number must be safe here.
    pub fn after(&self, last_seq: u64, next_seq: u64) -> Replay<'_> {
        // The first number the joiner has not seen; none past the largest.
        let Some(first_missed) = last_seq.checked_add(1) else {
            return Replay { frames: Vec::new(), gap: false };
        };
        if first_missed >= next_seq {
            // Nothing was published since; or the client claims a number the
            // room never reached, and there is nothing newer to give it.
            return Replay { frames: Vec::new(), gap: false };
        }
        let oldest = self.entries.front().map_or(next_seq, |(seq, _)| *seq);
        let frames = self.entries.iter().filter(|(seq, _)| *seq > last_seq).map(|(_, frame)| frame).collect();
        Replay { frames, gap: oldest > first_missed }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use wtchat_protocol::{Pong, ServerMessage};

    use super::*;

    /// A history of `capacity` that was given messages 1 to `published`.
    fn history(capacity: usize, published: u64) -> History {
        let mut history = History::new(HistoryPolicy::keeping(capacity));
        for seq in 1..=published {
            history.push(
                seq,
                Frame::encode(&ServerMessage::Pong(Pong { request_id: 0, nonce: seq, server_time_ms: 0 })),
            );
        }
        history
    }

    #[test]
    fn the_largest_numbers_a_client_can_send_are_answered_like_any_number_past_the_room() {
        let history = history(5, 20);
        for last_seq in [u64::MAX, u64::MAX - 1, 20, 1_000] {
            let replay = history.after(last_seq, 21);
            assert!(replay.frames.is_empty() && !replay.gap, "last_seq {last_seq}");
        }
    }

    #[test]
    fn a_fresh_joiner_gets_the_newest_up_to_the_replay_and_pages_the_rest() {
        let mut history = history(10, 20);
        history.replay = 4;
        let replay = history.latest();
        assert_eq!(replay.frames.len(), 4);
        assert!(std::ptr::eq(replay.frames[0], &history.entries[6].1), "the newest four: 17 to 20");
        assert!(history.has_before(17) && !history.has_before(11), "11 to 16 are left to page");
    }

    #[test]
    fn a_page_before_a_number_is_the_newest_below_it_oldest_first() {
        let history = history(5, 20);
        let numbers = |page: Vec<(u64, Frame)>| page.into_iter().map(|(seq, _)| seq).collect::<Vec<_>>();
        assert_eq!(numbers(history.before(u64::MAX, 3)), [18, 19, 20]);
        assert_eq!(numbers(history.before(19, 10)), [16, 17, 18]);
        assert!(history.before(16, 10).is_empty(), "nothing kept below the oldest");
    }

    #[test]
    fn an_empty_room_reserves_nothing() {
        assert_eq!(History::new(HistoryPolicy::keeping(100)).entries.capacity(), 0);
    }

    proptest! {
        /// Whatever number a client resumes from, it gets exactly the kept
        /// messages after it, and a gap exactly when some it missed are no
        /// longer kept.
        #[test]
        fn a_resume_gets_what_it_missed_and_is_told_of_a_gap(
            capacity in 0usize..8,
            published in 0u64..20,
            last_seq in prop_oneof![0u64..30, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()],
        ) {
            let history = history(capacity, published);
            let next_seq = published + 1;
            let replay = history.after(last_seq, next_seq);
            let kept_from = (published + 1).saturating_sub(capacity as u64).max(1);
            let expected: Vec<u64> = (kept_from..=published).filter(|seq| *seq > last_seq).collect();
            let got: Vec<u64> = replay
                .frames
                .iter()
                .map(|frame| match wtchat_protocol::decode::<ServerMessage>(&frame.body(), usize::MAX) {
                    Ok(ServerMessage::Pong(pong)) => pong.nonce,
                    other => panic!("{other:?}"),
                })
                .collect();
            prop_assert_eq!(got, expected);
            let missed_something = last_seq < published;
            prop_assert_eq!(replay.gap, missed_something && kept_from > last_seq + 1);
        }
    }
}
