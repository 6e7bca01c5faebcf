//! A room's roster: its members by session id, found in O(log n) once the
//! room is large, and listed in pages across servers.

use std::collections::BTreeMap;
use std::sync::Arc;

use wtchat_protocol::Member;

use super::{RoomMember, RoomState, Sequencing};
use crate::presence::PAGE_MAX;

/// Up to this many members a room finds them by scanning, without an index.
pub(super) const SMALL_ROOM: usize = 16;

impl RoomState {
    /// Whether the room keeps an index of its members.
    pub(super) fn indexed(&self) -> bool {
        !self.positions.is_empty()
    }

    /// Where a member is in `members`.
    pub(super) fn find(&self, session_id: u64) -> Option<usize> {
        if self.indexed() {
            self.positions.get(&session_id).copied()
        } else {
            self.members.iter().position(|m| m.session_id == session_id)
        }
    }

    /// Adds a member to the fan-out list, and to the index once the room is
    /// large enough to need one.
    pub(super) fn insert(&mut self, member: RoomMember) {
        let session_id = member.session_id;
        self.members.push(member);
        if self.indexed() {
            self.positions.insert(session_id, self.members.len() - 1);
        } else if self.members.len() > SMALL_ROOM {
            self.positions = self.members.iter().enumerate().map(|(i, m)| (m.session_id, i)).collect();
        }
    }

    /// Takes a member out of the fan-out list and the index, in O(log n);
    /// a room that shrinks back to a few members drops its index.
    pub(super) fn remove(&mut self, session_id: u64) -> Option<RoomMember> {
        let index = self.find(session_id)?;
        let gone = self.members.swap_remove(index);
        if self.indexed() {
            self.positions.remove(&session_id);
            if let Some(moved) = self.members.get(index) {
                self.positions.insert(moved.session_id, index);
            }
            if self.members.len() <= SMALL_ROOM / 2 {
                self.positions = BTreeMap::new();
            }
        }
        Some(gone)
    }

    /// This server's members with session ids above `after`, in order.
    fn local_after(&self, after: u64) -> Vec<(u64, Arc<str>)> {
        let range = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
        if self.indexed() {
            // The caller takes at most a page; the iterator is lazy above,
            // but a page of a large room is collected here, bounded by
            // `PAGE_MAX` + 1 below.
            return self
                .positions
                .range(range)
                .take(PAGE_MAX + 1)
                .map(|(id, index)| (*id, self.members[*index].name.clone()))
                .collect();
        }
        let mut small: Vec<(u64, Arc<str>)> = self
            .members
            .iter()
            .filter(|m| m.session_id > after)
            .map(|m| (m.session_id, m.name.clone()))
            .collect();
        small.sort_unstable_by_key(|(id, _)| *id);
        small
    }

    /// Up to `limit` members with session ids above `after`, on every
    /// server, in order; and where the next page starts.
    pub(super) fn page(&self, after: u64, limit: usize) -> (Vec<Member>, Option<u64>) {
        let start = std::ops::Bound::Excluded(after);
        let range = (start, std::ops::Bound::Unbounded);
        let mut local = self.local_after(after).into_iter().peekable();
        let mut remote = match &self.sequencing {
            Sequencing::Follows(feed) => Some(feed.remote.range(range).map(|(id, name)| (*id, name.clone()))),
            Sequencing::Own => None,
        }
        .into_iter()
        .flatten()
        .peekable();
        let mut page = Vec::with_capacity(limit.min(PAGE_MAX));
        loop {
            let next = match (local.peek(), remote.peek()) {
                (Some((a, _)), Some((b, _))) if a <= b => local.next(),
                (Some(_), Some(_)) => remote.next(),
                (Some(_), None) => local.next(),
                (None, Some(_)) => remote.next(),
                (None, None) => break,
            };
            let Some((session_id, name)) = next else { break };
            if page.len() == limit {
                let next = after_of(&page);
                return (page, Some(next));
            }
            page.push(Member { session_id, name: name.to_string() });
        }
        (page, None)
    }
}

/// The session id a page ends with.
fn after_of(page: &[Member]) -> u64 {
    page.last().map_or(0, |m| m.session_id)
}
