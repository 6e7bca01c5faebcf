//! Presence: who comes to a room and who goes, gathered over an interval
//! and told to every member as one shared frame.
//!
//! Telling each member of each arrival costs a room of n members n frames
//! per join, n²/2 to fill it. Instead a room notes each change here, and
//! once per `interval` the hub has every room with changes send one
//! `PresenceDiff`, encoded once and shared by all its members like any
//! message: a join costs the room a few bytes of one frame, whatever its
//! size. A join and the same session's departure inside one interval cancel
//! out. Above `names_max` members a room sends only the counts, to one
//! slice of its members per interval in turn (`Rotation`); a client that
//! wants names asks for a page of members.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use wtchat_protocol::{Member, MemberChange, PresenceChange, PresenceDiff};

/// How presence is gathered and told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresencePolicy {
    /// How often each room with changes tells them.
    pub interval: Duration,
    /// The largest room whose changes name the members; above it, counts
    /// only.
    pub names_max: usize,
}

/// The most members one page (and the join answer) carries.
pub const PAGE_MAX: usize = 100;

/// One change waiting to be told.
#[derive(Debug, Clone)]
struct Change {
    change: PresenceChange,
    session_id: u64,
    name: Arc<str>,
}

/// A room's changes since it last told them (and, in the Redis adapter,
/// this server's changes of a room since it last announced them).
#[derive(Debug, Default)]
pub struct PendingPresence {
    /// In the order they happened; a cancelled join leaves `None`. A
    /// departure looks for the same session's join among them: they are
    /// one interval's changes of one room, a bounded few.
    changes: Vec<Option<Change>>,
    /// Arrivals and departures not cancelled.
    joins: u32,
    leaves: u32,
}

impl PendingPresence {
    /// Notes an arrival.
    pub fn joined(&mut self, session_id: u64, name: Arc<str>) {
        self.changes.push(Some(Change { change: PresenceChange::Joined, session_id, name }));
        self.joins += 1;
    }

    /// Notes a departure; it cancels the same session's arrival in this
    /// interval, which nobody has been told of.
    pub fn left(&mut self, change: PresenceChange, session_id: u64, name: Arc<str>) {
        let pending_join = self.changes.iter_mut().rev().find(|c| {
            c.as_ref().is_some_and(|c| c.session_id == session_id && c.change == PresenceChange::Joined)
        });
        if let Some(join) = pending_join {
            *join = None;
            self.joins -= 1;
            return;
        }
        self.changes.push(Some(Change { change, session_id, name }));
        self.leaves += 1;
    }

    /// Notes a change of either kind.
    pub fn note(&mut self, change: PresenceChange, session_id: u64, name: Arc<str>) {
        match change {
            PresenceChange::Joined => self.joined(session_id, name),
            PresenceChange::Left | PresenceChange::Disconnected => self.left(change, session_id, name),
        }
    }

    /// Whether there is nothing to tell.
    pub fn is_empty(&self) -> bool {
        self.joins == 0 && self.leaves == 0
    }

    /// The changes not cancelled, in the order they happened.
    pub fn changes(&self) -> impl Iterator<Item = (PresenceChange, u64, &Arc<str>)> {
        self.changes.iter().flatten().map(|c| (c.change, c.session_id, &c.name))
    }

    /// The frame's content for a room of `member_count` members, small
    /// enough to be told who came and went (a larger one is told counts by
    /// its `Rotation`).
    pub(crate) fn into_diff(self, room: &str, member_count: usize) -> PresenceDiff {
        let changes = self
            .changes
            .into_iter()
            .flatten()
            .map(|c| MemberChange {
                change: c.change,
                member: Member { session_id: c.session_id, name: c.name.to_string() },
            })
            .collect();
        diff(room, member_count, (self.joins, self.leaves), changes)
    }
}

/// A presence frame's content.
fn diff(
    room: &str,
    member_count: usize,
    (joins, leaves): (u32, u32),
    changes: Vec<MemberChange>,
) -> PresenceDiff {
    PresenceDiff {
        room: room.to_owned(),
        member_count: u32::try_from(member_count).unwrap_or(u32::MAX),
        joins,
        leaves,
        changes,
    }
}

/// How a room above the names limit tells its counts: each interval to one
/// slice of about `names_max` of its members, in turn, so that every member
/// hears once every `⌈members / names_max⌉` intervals. The bytes per second
/// stay constant as the room grows, and no interval's work grows with it:
/// telling all 10,000 members of a room at once holds the server up for
/// as long as a fan-out to 10,000 sessions takes (a few hundred ms over
/// WebTransport on a small machine), and every join waits behind it.
#[derive(Debug, Default)]
pub(crate) struct Rotation {
    /// The arrivals and departures of the last intervals, newest last: as
    /// many intervals as a turn of the rotation takes, so that each member,
    /// told once per turn, hears each change once while the room's size
    /// holds (when it shrinks, the oldest fall out untold).
    window: VecDeque<(u32, u32)>,
    /// Where the next slice starts in the room's fan-out list.
    next: usize,
}

impl Rotation {
    /// Takes one interval's changes; returns the counts to tell this
    /// interval (arrivals and departures over the window), or None when the
    /// window holds none and the rotation may rest.
    pub(crate) fn turn(
        &mut self,
        pending: PendingPresence,
        room: &str,
        member_count: usize,
        rounds: usize,
    ) -> Option<PresenceDiff> {
        self.window.push_back((pending.joins, pending.leaves));
        while self.window.len() > rounds.max(1) {
            self.window.pop_front();
        }
        let (joins, leaves) = self.window.iter().fold((0u32, 0u32), |(j, l), (joins, leaves)| {
            (j.saturating_add(*joins), l.saturating_add(*leaves))
        });
        if joins == 0 && leaves == 0 {
            self.window.clear();
            return None;
        }
        Some(diff(room, member_count, (joins, leaves), Vec::new()))
    }

    /// The positions in a fan-out list of `len` members to tell this
    /// interval: the next `⌈len / rounds⌉` after the last slice, wrapping
    /// around, as two ranges.
    pub(crate) fn slice(&mut self, len: usize, rounds: usize) -> (Range<usize>, Range<usize>) {
        if len == 0 {
            return (0..0, 0..0);
        }
        let start = self.next % len;
        let take = len.div_ceil(rounds.max(1));
        self.next = (start + take) % len;
        let end = start + take;
        (start..end.min(len), 0..end.saturating_sub(len))
    }

    /// Forgets the window: the room is small enough again to name its
    /// changes to everyone.
    pub(crate) fn reset(&mut self) {
        self.window.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(diff: &PresenceDiff) -> Vec<(PresenceChange, &str)> {
        diff.changes.iter().map(|c| (c.change, c.member.name.as_str())).collect()
    }

    #[test]
    fn a_join_and_a_leave_inside_one_interval_cancel_out() {
        let mut pending = PendingPresence::default();
        pending.joined(1, "ann".into());
        pending.joined(2, "bob".into());
        pending.left(PresenceChange::Disconnected, 1, "ann".into());
        pending.left(PresenceChange::Left, 3, "cid".into());
        let diff = pending.into_diff("r", 5);
        assert_eq!((diff.joins, diff.leaves, diff.member_count), (1, 1, 5));
        assert_eq!(names(&diff), [(PresenceChange::Joined, "bob"), (PresenceChange::Left, "cid")]);

        let mut pending = PendingPresence::default();
        pending.joined(1, "ann".into());
        pending.left(PresenceChange::Left, 1, "ann".into());
        assert!(pending.is_empty(), "nothing to tell");
    }

    #[test]
    fn a_departure_then_a_return_are_both_told() {
        let mut pending = PendingPresence::default();
        pending.left(PresenceChange::Left, 7, "eve".into());
        pending.joined(7, "eve".into());
        let diff = pending.into_diff("r", 3);
        assert_eq!(names(&diff), [(PresenceChange::Left, "eve"), (PresenceChange::Joined, "eve")]);
        assert_eq!((diff.joins, diff.leaves), (1, 1));
    }

    #[test]
    fn a_large_room_is_told_counts_without_names() {
        let mut pending = PendingPresence::default();
        for id in 0..50 {
            pending.joined(id, format!("m{id}").into());
        }
        pending.left(PresenceChange::Disconnected, 1_000, "gone".into());
        let diff = Rotation::default().turn(pending, "big", 10_001, 11).expect("changes to tell");
        assert_eq!((diff.joins, diff.leaves, diff.member_count), (50, 1, 10_001));
        assert!(diff.changes.is_empty());
    }

    #[test]
    fn a_rotation_tells_each_member_each_change_once_per_turn() {
        // Ten members, three rounds: slices of four, four (wrapping) ...
        let mut rotation = Rotation::default();
        let mut told = [0; 10];
        let mut joins_heard = [0; 10];
        let mut pending = PendingPresence::default();
        pending.joined(1, "a".into());
        pending.joined(2, "b".into());
        for interval in 0..3 {
            let diff =
                rotation.turn(std::mem::take(&mut pending), "r", 10, 3).expect("changes in the window");
            let (a, b) = rotation.slice(10, 3);
            for i in a.chain(b) {
                told[i] += 1;
                joins_heard[i] += diff.joins;
            }
            if interval == 0 {
                pending.left(PresenceChange::Left, 9, "z".into());
            }
        }
        // Each slice of four from where the last ended: 12 tells over 10
        // members, so two of them are told twice in a turn, and every
        // member heard both joins.
        assert_eq!(told.iter().sum::<i32>(), 12);
        assert!(told.iter().all(|t| *t >= 1), "every member was told: {told:?}");
        assert!(joins_heard.iter().all(|j| *j >= 2), "every member heard both joins: {joins_heard:?}");
        // The departure, told from the second interval on, stays in the
        // window for three intervals; then the rotation rests.
        assert_eq!(
            rotation.turn(PendingPresence::default(), "r", 10, 3).map(|d| (d.joins, d.leaves)),
            Some((0, 1))
        );
        assert!(rotation.turn(PendingPresence::default(), "r", 10, 3).is_none());
    }
}
