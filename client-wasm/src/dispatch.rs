//! What the client does with each message the server sends on a live
//! connection: keep its ledger of rooms, answer the page's sends, and tell
//! the page.

use std::rc::Rc;

use wtchat_protocol::{PresenceChange, ServerMessage};

use crate::client::Inner;
use crate::events::{
    ChatMember, JoinedEvent, MembersEvent, MessageEvent, PresenceEvent, RoomEvent, TypingEvent,
};
use crate::ledger::Delivery;

impl Inner {
    /// Handles one server message on an adopted connection.
    pub(crate) fn dispatch(self: &Rc<Self>, message: ServerMessage) {
        match message {
            ServerMessage::TokenExpiring(notice) => self.token_expiring(&notice),
            ServerMessage::TokenRefreshed(fresh) => self.token_refreshed(&fresh),
            ServerMessage::Joined(joined) => {
                let outcome = self.state.borrow_mut().ledger.joined(&joined);
                let Some(outcome) = outcome else { return };
                let members = joined.members.iter().map(ChatMember::from).collect();
                self.emit(
                    "joined",
                    &JoinedEvent {
                        room: joined.room.clone(),
                        members,
                        count: joined.member_count,
                        more: (joined.members.len() as u32) < joined.member_count,
                        rejoined: outcome.rejoined,
                        gap: outcome.gap,
                    },
                );
                if outcome.gap {
                    self.emit("gap", &RoomEvent { room: joined.room });
                }
            }
            ServerMessage::Message(message) => {
                let delivery = self.state.borrow_mut().ledger.deliver(&message);
                if delivery == Delivery::New {
                    self.emit("message", &MessageEvent::from(&message));
                }
            }
            ServerMessage::PresenceDiff(diff) => {
                let members = self
                    .state
                    .borrow_mut()
                    .ledger
                    .presence(&diff)
                    .map(|state| MembersEvent::of(&diff.room, state));
                let Some(members) = members else { return };
                let own = self.state.borrow().session_id;
                for change in diff.changes.iter().filter(|c| c.member.session_id != own) {
                    let name = match change.change {
                        PresenceChange::Joined => "joined",
                        PresenceChange::Left => "left",
                        PresenceChange::Disconnected => "disconnected",
                    };
                    self.emit(
                        "presence",
                        &PresenceEvent {
                            room: diff.room.clone(),
                            change: name,
                            member: ChatMember::from(&change.member),
                        },
                    );
                }
                self.emit("members", &members);
            }
            ServerMessage::Members(page) => {
                let members = self
                    .state
                    .borrow_mut()
                    .ledger
                    .page(&page)
                    .map(|state| MembersEvent::of(&page.room, state));
                if let Some(members) = members {
                    self.emit("members", &members);
                }
            }
            ServerMessage::Typing(typing) => {
                self.emit(
                    "typing",
                    &TypingEvent { room: typing.room, member: ChatMember::from(&typing.member) },
                );
            }
            ServerMessage::Left(left) => self.emit("left", &RoomEvent { room: left.room }),
            ServerMessage::Published(published) => self.published(&published),
            ServerMessage::History(page) => self.history_page(&page),
            ServerMessage::Error(error) => {
                if self.send_refused(&error) {
                    return;
                }
                let code = error.code.name().map_or_else(|| error.code.0.to_string(), str::to_owned);
                self.error(&code, error.text, error.request_id);
            }
            ServerMessage::Welcome(_) | ServerMessage::Pong(_) | ServerMessage::Closing(_) => {}
        }
    }
}
