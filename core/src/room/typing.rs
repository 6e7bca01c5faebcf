//! Typing notices: ephemeral, encoded once, never sequenced or kept, and
//! rationed in a room too large for every typist to reach every member.

use std::time::Instant;

use wtchat_protocol::{Member, ServerMessage, Typing};

use super::{Room, RoomMember};
use crate::frame::Frame;
use crate::presence::PresencePolicy;
use crate::room_event::EventMember;

impl Room {
    /// Tells the other members that `sender` is typing. The notice is
    /// encoded once and is ephemeral: not sequenced, not kept. A room above
    /// the names limit relays one notice per presence interval at most:
    /// thousands of typists would otherwise each cost every member a frame.
    pub fn typing(&self, sender: &EventMember, policy: &PresencePolicy) {
        let mut state = self.lock();
        if state.member_count() > policy.names_max {
            let now = Instant::now();
            if state.typing_open_at.is_some_and(|open| now < open) {
                return;
            }
            state.typing_open_at = Some(now + policy.interval);
        }
        self.tell_typing(&state.members, sender.describe());
    }

    /// Tells `members` (but the typist) that `member` is typing. The notice
    /// is encoded once and is ephemeral: not sequenced, not kept.
    fn tell_typing(&self, members: &[RoomMember], member: Member) {
        let except = member.session_id;
        Self::tell_others(
            members,
            &ServerMessage::Typing(Typing { room: self.name.to_string(), member }),
            except,
        );
    }

    fn tell_others(members: &[RoomMember], message: &ServerMessage, except: u64) {
        let frame = Frame::encode(message);
        for member in members.iter().filter(|m| m.session_id != except) {
            member.outbox.push(&frame);
        }
    }
}
