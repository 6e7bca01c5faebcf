//! What both yardsticks say: the welcome, the join answer and the message,
//! encoded with wtchat's own protocol crate so that the generator reads them
//! as it reads wtchat's.

use wtchat_protocol::{
    ChatMessage, ClientFrame, ClientMessage, HistoryReplay, Joined, Limits, Member, Pong, ServerMessage,
    Welcome, decode, encode,
};

/// The heartbeat the yardsticks announce: an hour, so that the generator's
/// sessions stay silent during a run (they do not police it anyway).
const HEARTBEAT_MS: u32 = 3_600_000;

/// What a client asked, as far as a yardstick cares.
pub(crate) enum Request {
    Hello { request_id: u32 },
    Join { request_id: u32, room: String, name: String },
    Publish { room: String, body: String },
    Ping { request_id: u32, nonce: u64 },
    Other,
}

/// Reads a client frame; a frame that does not decode is ignored.
pub(crate) fn request(frame: &[u8]) -> Request {
    let Ok(ClientFrame { request_id, message }) = decode::<ClientFrame>(frame, usize::MAX) else {
        return Request::Other;
    };
    match message {
        ClientMessage::Hello { .. } => Request::Hello { request_id },
        ClientMessage::Join { room, display_name, .. } => {
            Request::Join { request_id, room, name: display_name }
        }
        ClientMessage::Publish { room, body, .. } => Request::Publish { room, body },
        ClientMessage::Ping { nonce } => Request::Ping { request_id, nonce },
        _ => Request::Other,
    }
}

/// The welcome of session `session_id`.
pub(crate) fn welcome(request_id: u32, session_id: u64, server: &str) -> Vec<u8> {
    let unlimited = u32::MAX;
    encode(&ServerMessage::Welcome(Welcome {
        request_id,
        session_id,
        protocol_version: u16::from(wtchat_protocol::PROTOCOL_VERSION),
        server: server.to_owned(),
        heartbeat_interval_ms: HEARTBEAT_MS,
        heartbeat_timeout_ms: HEARTBEAT_MS.saturating_mul(2),
        limits: Limits {
            max_frame_bytes: unlimited,
            max_message_bytes: unlimited,
            max_rooms_per_session: unlimited,
            publish_rate_per_sec: unlimited,
            publish_burst: unlimited,
            max_room_name_bytes: unlimited,
            max_display_name_bytes: unlimited,
            outbound_queue_bytes: unlimited,
        },
    }))
}

/// The answer to a join: no history, no member list.
pub(crate) fn joined(request_id: u32, room: String, next_seq: u64, member_count: usize) -> Vec<u8> {
    encode(&ServerMessage::Joined(Joined {
        request_id,
        room,
        epoch: 1,
        next_seq,
        member_count: u32::try_from(member_count).unwrap_or(u32::MAX),
        members: Vec::new(),
        history: HistoryReplay { count: 0, gap: false },
    }))
}

/// A message of the room, numbered `seq`.
pub(crate) fn message(room: String, seq: u64, sender: Member, body: String) -> Vec<u8> {
    encode(&ServerMessage::Message(ChatMessage { room, seq, sender, sent_at_ms: now_ms(), body }))
}

/// The answer to a ping.
pub(crate) fn pong(request_id: u32, nonce: u64) -> Vec<u8> {
    encode(&ServerMessage::Pong(Pong { request_id, nonce, server_time_ms: now_ms() }))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
