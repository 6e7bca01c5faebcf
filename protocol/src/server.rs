//! Messages the server sends to a client.

use alloc::{string::String, vec::Vec};
use serde::{Deserialize, Serialize};

use crate::{ErrorCode, ReasonCode};

/// Everything the server can send to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ServerMessage {
    /// The answer to hello: the session exists and these are its terms.
    Welcome(Welcome),
    /// The answer to join. It is followed by `history.count` [`ChatMessage`]s
    /// of the same room before any live message of that room.
    Joined(Joined),
    /// The answer to leave.
    Left(Left),
    /// A chat message in a room the session is in.
    Message(ChatMessage),
    /// Who joined and left a room the session is in during the server's
    /// presence interval, gathered into one frame that every member shares.
    PresenceDiff(PresenceDiff),
    /// A request was refused; the session goes on.
    Error(ErrorNotice),
    /// The answer to ping.
    Pong(Pong),
    /// The server is about to close the session, and why. The transport's
    /// close (a WebSocket close frame, a WebTransport session close) carries
    /// the same code.
    Closing(Closing),
    /// A member of a room is typing. Ephemeral: it travels as a datagram on
    /// WebTransport and as an ordinary frame on WebSocket, is never stored in
    /// history, and may be dropped under load.
    Typing(Typing),
    /// The answer to a members request: one page of a room's members.
    Members(MembersPage),
    /// The session's token expires soon; send a
    /// [`RefreshToken`](crate::ClientMessage::RefreshToken) before it does,
    /// or the session closes with `UNAUTHORIZED` then.
    TokenExpiring(TokenExpiring),
    /// A refreshed token was taken.
    TokenRefreshed(TokenRefreshed),
    /// The answer to a publish that carried a message id: the number the
    /// message got.
    Published(Published),
    /// The answer to a history request: a page of older messages.
    History(HistoryPage),
}

/// A page of a room's older messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct HistoryPage {
    /// Answers the history request's id.
    pub request_id: u32,
    /// The room.
    pub room: String,
    /// The room's epoch; a page of another epoch than the client holds
    /// does not continue what it holds.
    pub epoch: u64,
    /// The messages, oldest first, each as members received it.
    pub messages: Vec<ChatMessage>,
    /// Whether the server keeps older messages than these.
    pub more: bool,
}

/// The answer to a publish with a message id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Published {
    /// Answers the publish's request id.
    pub request_id: u32,
    /// The room it went to.
    pub room: String,
    /// The room's epoch when the message was numbered.
    pub epoch: u64,
    /// The message's number in the room; every member sees it under this
    /// number.
    pub seq: u64,
    /// True when this id was published before (within the window) and this
    /// answer repeats that publish's: nothing was published this time.
    pub repeated: bool,
}

/// The notice ahead of a token's expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TokenExpiring {
    /// How long the token has left, in ms.
    pub expires_in_ms: u64,
}

/// The answer to a token refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TokenRefreshed {
    /// Answers the refresh's request id.
    pub request_id: u32,
    /// How long the new token lasts, in ms.
    pub expires_in_ms: u64,
}

impl ServerMessage {
    /// Whether the message is ephemeral: worth sending now, worthless later,
    /// and never worth evicting a slow reader for.
    pub fn is_ephemeral(&self) -> bool {
        matches!(self, Self::Typing(_))
    }
}

/// Someone is typing in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Typing {
    /// The room.
    pub room: String,
    /// Who is typing.
    pub member: Member,
}

/// The server's terms for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Welcome {
    /// Answers the hello's request id.
    pub request_id: u32,
    /// Unique among the server's live sessions; it identifies this session as
    /// a sender and a member.
    pub session_id: u64,
    /// The protocol version the server speaks.
    pub protocol_version: u16,
    /// The server's name and version, for logs.
    pub server: String,
    /// The client must send a frame (a ping when it has nothing else to say)
    /// at least this often.
    pub heartbeat_interval_ms: u32,
    /// The server closes a session it has heard nothing from for this long.
    pub heartbeat_timeout_ms: u32,
    /// The limits the server enforces on this session.
    pub limits: Limits,
}

/// Per-session limits, announced so that a client can respect them up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Limits {
    /// The largest frame the server accepts; a larger one closes the session
    /// with `FRAME_TOO_LARGE`.
    pub max_frame_bytes: u32,
    /// The largest message body; a larger one gets a `MESSAGE_TOO_LARGE` error.
    pub max_message_bytes: u32,
    /// How many rooms one session may be in at once.
    pub max_rooms_per_session: u32,
    /// The sustained number of publishes per second.
    pub publish_rate_per_sec: u32,
    /// How many publishes may exceed the sustained rate in a burst.
    pub publish_burst: u32,
    /// The longest room name, in bytes.
    pub max_room_name_bytes: u32,
    /// The longest display name, in bytes.
    pub max_display_name_bytes: u32,
    /// How many bytes may wait to be sent to this session before it is closed
    /// as a slow consumer.
    pub outbound_queue_bytes: u32,
}

/// The answer to a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Joined {
    /// Answers the join's request id.
    pub request_id: u32,
    /// The room joined.
    pub room: String,
    /// Identifies this incarnation of the room's sequence. It changes when the
    /// room's history is lost (for example when the room was dropped because
    /// it became empty), and a client must then not compare sequence numbers
    /// across the change.
    pub epoch: u64,
    /// The sequence number the room's next message will carry.
    pub next_seq: u64,
    /// How many members the room has, this session included.
    pub member_count: u32,
    /// The first page of the members, by session id (this session may be
    /// on a later page); a client asks for the next with a members request
    /// from the last session id here.
    pub members: Vec<Member>,
    /// The history that follows this frame.
    pub history: HistoryReplay,
}

/// Which past messages follow a joined answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct HistoryReplay {
    /// How many [`ChatMessage`] frames of the room follow, in sequence order.
    pub count: u32,
    /// True when the client asked to resume but the server no longer holds
    /// every message it missed (the history was trimmed, or the epoch
    /// changed). The client has a gap and should say so to its user.
    pub gap: bool,
}

/// The answer to a leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Left {
    /// Answers the leave's request id.
    pub request_id: u32,
    /// The room left.
    pub room: String,
}

/// A member of a room as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Member {
    /// The member's session.
    pub session_id: u64,
    /// The display name it joined the room with.
    pub name: String,
}

/// A chat message as delivered to every member of its room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ChatMessage {
    /// The room it was published to.
    pub room: String,
    /// Its place in the room's order: consecutive, starting at 1 in each epoch.
    pub seq: u64,
    /// Who published it.
    pub sender: Member,
    /// When the server accepted it, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// The text.
    pub body: String,
}

/// The changes in a room's membership over one presence interval.
///
/// Changes that cancel out within the interval (a join and the same
/// session's departure) are not sent. In a room larger than the server's
/// `presence_names_max`, `changes` is empty and only the counts come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PresenceDiff {
    /// The room whose membership changed.
    pub room: String,
    /// How many members the room has with these changes applied.
    pub member_count: u32,
    /// How many joined in the interval; in a room told counts only, over
    /// the last `interval × ⌈members / names_max⌉`, the time in which the
    /// room tells each member once.
    pub joins: u32,
    /// How many left or were disconnected, over the same time as `joins`.
    pub leaves: u32,
    /// Who joined and who left, in the order it happened; empty in a
    /// large room.
    pub changes: Vec<MemberChange>,
}

/// One member's arrival or departure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MemberChange {
    /// What happened.
    pub change: PresenceChange,
    /// Who it happened to.
    pub member: Member,
}

/// One page of a room's members, by session id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MembersPage {
    /// Answers the members request's id.
    pub request_id: u32,
    /// The room.
    pub room: String,
    /// How many members the room has.
    pub member_count: u32,
    /// Members with session ids above the request's `after`, in order.
    pub members: Vec<Member>,
    /// Where the next page starts (`after` of the next request), or `None`
    /// after the last page.
    pub next_after: Option<u64>,
}

/// How a room's membership changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PresenceChange {
    /// The member joined the room.
    Joined,
    /// The member left the room by asking to.
    Left,
    /// The member's session ended (closed, timed out or evicted).
    Disconnected,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ErrorNotice {
    /// The request refused, or `None` when the frame could not be decoded far
    /// enough to know it.
    pub request_id: Option<u32>,
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub text: String,
}

/// The answer to a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Pong {
    /// Answers the ping's request id.
    pub request_id: u32,
    /// The ping's nonce.
    pub nonce: u64,
    /// The server's clock, in milliseconds since the Unix epoch.
    pub server_time_ms: u64,
}

/// The server's last word on a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Closing {
    /// Why the session ends.
    pub code: ReasonCode,
    /// Why the session ends, for people.
    pub text: String,
    /// When the client may reconnect, in milliseconds from now; `None` means
    /// it should not reconnect without a change on its side.
    pub retry_after_ms: Option<u32>,
}
