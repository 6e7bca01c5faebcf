//! What the page is told: event payloads as plain JavaScript objects.

use wasm_bindgen::prelude::*;
use wtchat_protocol::{ChatMessage, Member};

use crate::js_object::{Obj, ToJs, array, number};

/// TypeScript types of the event payloads, for pages written in TypeScript.
#[wasm_bindgen(typescript_custom_section)]
const EVENT_TYPES: &str = r#"
export interface ChatMember { id: number; name: string }
export interface MessageEvent { room: string; seq: number; sender: ChatMember; sentAt: number; body: string }
export interface PresenceEvent { room: string; change: "joined" | "left" | "disconnected"; member: ChatMember }
export interface MembersEvent { room: string; members: ChatMember[]; count: number; more: boolean }
export interface JoinedEvent { room: string; members: ChatMember[]; count: number; more: boolean; rejoined: boolean; gap: boolean }
export interface TypingEvent { room: string; member: ChatMember }
export interface ErrorEvent { code: string; text: string; requestId?: number; closeCode?: number }
export interface TransportEvent { transport: "webtransport" | "websocket"; reason: string; fallbackReason?: string }
export interface StateEvent { state: "connecting" | "connected" | "reconnecting" | "closed"; retryInMs?: number; reason?: string; closeCode?: number }
export interface GapEvent { room: string }
export interface TokenEvent { event: "expiring" | "refreshed"; expiresInMs: number }
export interface HistoryEvent { room: string; epoch: number; messages: MessageEvent[]; more: boolean }
export interface SendEvent { id: string; room: string; body: string; state: "pending" | "sent" | "failed"; seq?: number; epoch?: number; repeated?: boolean; code?: string; reason?: string }
export type EventName = "message" | "presence" | "members" | "joined" | "left" | "typing" | "error" | "transport" | "state" | "gap" | "token" | "send" | "history";
"#;

/// A member as the page sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMember {
    /// The member's session id.
    pub id: u64,
    /// The member's display name.
    pub name: String,
}

impl From<&Member> for ChatMember {
    fn from(member: &Member) -> Self {
        Self { id: member.session_id, name: member.name.clone() }
    }
}

/// A chat message.
#[derive(Debug)]
pub struct MessageEvent {
    pub room: String,
    pub seq: u64,
    pub sender: ChatMember,
    pub sent_at: u64,
    pub body: String,
}

impl From<&ChatMessage> for MessageEvent {
    fn from(message: &ChatMessage) -> Self {
        Self {
            room: message.room.clone(),
            seq: message.seq,
            sender: ChatMember::from(&message.sender),
            sent_at: message.sent_at_ms,
            body: message.body.clone(),
        }
    }
}

/// Someone joined or left.
#[derive(Debug)]
pub struct PresenceEvent {
    pub room: String,
    pub change: &'static str,
    pub member: ChatMember,
}

/// A room's members, after any change: those known (everyone in a small
/// room, the pages fetched in a large one), how many there are, and
/// whether more can be fetched (`Client.moreMembers`).
#[derive(Debug)]
pub struct MembersEvent {
    pub room: String,
    pub members: Vec<ChatMember>,
    pub count: u32,
    pub more: bool,
}

impl MembersEvent {
    /// The event for a room's state.
    pub fn of(room: &str, state: &crate::ledger::RoomState) -> Self {
        Self {
            room: room.to_owned(),
            members: state.members.iter().map(ChatMember::from).collect(),
            count: state.member_count,
            more: state.next_after.is_some(),
        }
    }
}

/// A join (or rejoin after a reconnect) completed.
#[derive(Debug)]
pub struct JoinedEvent {
    pub room: String,
    pub members: Vec<ChatMember>,
    pub count: u32,
    pub more: bool,
    pub rejoined: bool,
    pub gap: bool,
}

/// A room name alone.
#[derive(Debug)]
pub struct RoomEvent {
    pub room: String,
}

/// Someone is typing.
#[derive(Debug)]
pub struct TypingEvent {
    pub room: String,
    pub member: ChatMember,
}

/// Something was refused or failed.
#[derive(Debug)]
pub struct ErrorEvent {
    pub code: String,
    pub text: String,
    pub request_id: Option<u32>,
    /// The code the transport's own close carried (WebSocket close frame,
    /// WebTransport session close), when the server ended the connection.
    pub close_code: Option<u32>,
}

/// The transport in use, and why.
#[derive(Debug)]
pub struct TransportEvent {
    pub transport: &'static str,
    pub reason: String,
    pub fallback_reason: Option<String>,
}

/// The connection state.
#[derive(Debug)]
pub struct StateEvent {
    pub state: &'static str,
    pub retry_in_ms: Option<f64>,
    pub reason: Option<String>,
    /// As for [`ErrorEvent::close_code`], when the server closed for good.
    pub close_code: Option<u32>,
}

/// The session's token is about to expire, or was refreshed.
#[derive(Debug)]
pub struct TokenEvent {
    /// "expiring" or "refreshed".
    pub event: &'static str,
    /// How long the token (the new one, once refreshed) has left.
    pub expires_in_ms: f64,
}

/// What became of one of the page's messages: waiting to go out (or for
/// its answer), sent with its number in the room, or failed with the
/// server's code and reason.
#[derive(Debug)]
pub struct SendEvent {
    pub id: String,
    pub room: String,
    pub body: String,
    /// "pending", "sent" or "failed".
    pub state: &'static str,
    pub seq: Option<u64>,
    pub epoch: Option<u64>,
    /// Set when the answer repeated an earlier send's: the message was
    /// already in the room.
    pub repeated: Option<bool>,
    pub code: Option<String>,
    pub reason: Option<String>,
}

impl SendEvent {
    /// A message in a state with nothing more to say.
    pub fn of(waiting: &crate::outbox::Waiting, state: &'static str) -> Self {
        Self {
            id: waiting.id.clone(),
            room: waiting.room.clone(),
            body: waiting.body.clone(),
            state,
            seq: None,
            epoch: None,
            repeated: None,
            code: None,
            reason: None,
        }
    }

    /// A message that failed.
    pub fn failed(waiting: &crate::outbox::Waiting, code: &str, reason: String) -> Self {
        Self { code: Some(code.to_owned()), reason: Some(reason), ..Self::of(waiting, "failed") }
    }
}

/// A page of a room's older messages, oldest first, and whether the server
/// keeps older ones still.
#[derive(Debug)]
pub struct HistoryEvent {
    pub room: String,
    pub epoch: u64,
    pub messages: Vec<MessageEvent>,
    pub more: bool,
}

impl ToJs for ChatMember {
    fn to_js(&self) -> JsValue {
        Obj::new().set("id", number(self.id)).set("name", self.name.as_str()).done()
    }
}

impl ToJs for MessageEvent {
    fn to_js(&self) -> JsValue {
        Obj::new()
            .set("room", self.room.as_str())
            .set("seq", number(self.seq))
            .set("sender", self.sender.to_js())
            .set("sentAt", number(self.sent_at))
            .set("body", self.body.as_str())
            .done()
    }
}

impl ToJs for PresenceEvent {
    fn to_js(&self) -> JsValue {
        Obj::new()
            .set("room", self.room.as_str())
            .set("change", self.change)
            .set("member", self.member.to_js())
            .done()
    }
}

impl ToJs for MembersEvent {
    fn to_js(&self) -> JsValue {
        Obj::new()
            .set("room", self.room.as_str())
            .set("members", array(&self.members))
            .set("count", self.count)
            .set("more", self.more)
            .done()
    }
}

impl ToJs for JoinedEvent {
    fn to_js(&self) -> JsValue {
        Obj::new()
            .set("room", self.room.as_str())
            .set("members", array(&self.members))
            .set("count", self.count)
            .set("more", self.more)
            .set("rejoined", self.rejoined)
            .set("gap", self.gap)
            .done()
    }
}

impl ToJs for RoomEvent {
    fn to_js(&self) -> JsValue {
        Obj::new().set("room", self.room.as_str()).done()
    }
}

impl ToJs for TypingEvent {
    fn to_js(&self) -> JsValue {
        Obj::new().set("room", self.room.as_str()).set("member", self.member.to_js()).done()
    }
}

impl ToJs for ErrorEvent {
    fn to_js(&self) -> JsValue {
        Obj::new()
            .set("code", self.code.as_str())
            .set("text", self.text.as_str())
            .maybe("requestId", self.request_id)
            .maybe("closeCode", self.close_code)
            .done()
    }
}

impl ToJs for TransportEvent {
    fn to_js(&self) -> JsValue {
        Obj::new()
            .set("transport", self.transport)
            .set("reason", self.reason.as_str())
            .maybe("fallbackReason", self.fallback_reason.as_deref())
            .done()
    }
}

impl ToJs for StateEvent {
    fn to_js(&self) -> JsValue {
        Obj::new()
            .set("state", self.state)
            .maybe("retryInMs", self.retry_in_ms)
            .maybe("reason", self.reason.as_deref())
            .maybe("closeCode", self.close_code)
            .done()
    }
}

impl ToJs for TokenEvent {
    fn to_js(&self) -> JsValue {
        Obj::new().set("event", self.event).set("expiresInMs", self.expires_in_ms).done()
    }
}

impl ToJs for SendEvent {
    fn to_js(&self) -> JsValue {
        Obj::new()
            .set("id", self.id.as_str())
            .set("room", self.room.as_str())
            .set("body", self.body.as_str())
            .set("state", self.state)
            .maybe("seq", self.seq.map(number))
            .maybe("epoch", self.epoch.map(number))
            .maybe("repeated", self.repeated)
            .maybe("code", self.code.as_deref())
            .maybe("reason", self.reason.as_deref())
            .done()
    }
}

impl ToJs for HistoryEvent {
    fn to_js(&self) -> JsValue {
        Obj::new()
            .set("room", self.room.as_str())
            .set("epoch", number(self.epoch))
            .set("messages", array(&self.messages))
            .set("more", self.more)
            .done()
    }
}
