//! A follower room whose members stayed through a lost link, brought up
//! to the broker's snapshot when the link is back.
//!
//! During a blip the room heard nothing of its feed, so its members may
//! have missed messages and other servers' comings and goings. The
//! snapshot holds the room's last number and its recent history: when
//! that history reaches back to the first number the room did not
//! deliver, the missed messages go to the members in order, each once,
//! exactly as the feed would have brought them; otherwise (a new epoch, a
//! Redis that came back empty, a history too short) the members are closed
//! to resume, which tells each of them of the gap explicitly.

use std::collections::BTreeMap;
use std::sync::Arc;

use wtchat_protocol::Closing;

use super::{Room, RoomState, Sequencing};
use crate::room_event::RoomEvent;

impl Room {
    /// Closes this server's members with `closing`: the broker lost the
    /// room's link for good (past its grace), and with it the certainty
    /// that they see every message. Each resumes from its last number.
    pub fn close_members(&self, closing: &Closing) {
        for member in &self.lock().members {
            member.outbox.close(closing.clone());
        }
    }

    /// Delivers what the members missed and notes the other servers'
    /// changes; returns `false` when the snapshot cannot cover the gap,
    /// after closing the members (the caller then starts the room afresh
    /// from the snapshot).
    pub(super) fn catch_up(
        &self,
        state: &mut RoomState,
        remote: &BTreeMap<u64, Arc<str>>,
        history: &[RoomEvent],
        epoch: u64,
        last_seq: u64,
    ) -> bool {
        let first_missed = state.next_seq;
        let missed: Vec<&RoomEvent> = history
            .iter()
            .filter(|event| matches!(event, RoomEvent::Message { seq, .. } if *seq >= first_missed && *seq <= last_seq))
            .collect();
        let covered = epoch == state.epoch
            && last_seq + 1 >= first_missed
            && missed.len() as u64 == last_seq + 1 - first_missed
            && missed.iter().zip(first_missed..).all(|(event, expected)| {
                matches!(event, RoomEvent::Message { epoch: e, seq, .. } if *e == epoch && *seq == expected)
            });
        if !covered {
            tracing::warn!(
                room = %self.name, epoch, last_seq, our_epoch = state.epoch, first_missed,
                "the broker no longer holds what this room's members missed; closing them so that they resume"
            );
            self.close_to_resume(state);
            return false;
        }
        for event in missed {
            if let RoomEvent::Message { seq, sender, sent_at_ms, body, .. } = event {
                let frame = self.message_frame(*seq, sender.describe(), *sent_at_ms, body.clone());
                Self::deliver(state, *seq, frame);
            }
        }
        self.note_remote_changes(state, remote);
        true
    }

    /// Notes, for the next presence diff, who came to or went from the
    /// other servers while the room heard nothing.
    fn note_remote_changes(&self, state: &mut RoomState, remote: &BTreeMap<u64, Arc<str>>) {
        let Sequencing::Follows(feed) = &state.sequencing else { return };
        let gone: Vec<(u64, Arc<str>)> = feed
            .remote
            .iter()
            .filter(|(id, _)| !remote.contains_key(id))
            .map(|(id, name)| (*id, name.clone()))
            .collect();
        let came: Vec<(u64, Arc<str>)> = remote
            .iter()
            .filter(|(id, _)| !feed.remote.contains_key(id))
            .map(|(id, name)| (*id, name.clone()))
            .collect();
        for (id, name) in gone {
            state.pending.note(wtchat_protocol::PresenceChange::Disconnected, id, name);
        }
        for (id, name) in came {
            state.pending.joined(id, name);
        }
    }
}
