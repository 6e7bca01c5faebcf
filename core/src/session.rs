//! A session: one client's conversation with the core.
//!
//! The session turns each inbound frame into an action on the rooms and an
//! answer in its own outbox. It is synchronous on purpose: handling a frame
//! never waits, so the transport that feeds it decides nothing but how bytes
//! move. Every limit a client meets (hello first, names, rooms per session,
//! message size, publish rate, error budgets) is enforced here, once for all
//! transports.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use wtchat_protocol::{
    ClientFrame, ClientMessage, Closing, DecodeError, ErrorCode, ErrorNotice, FallbackReason, Left,
    PROTOCOL_VERSION, Pong, PresenceChange, ReasonCode, Resume, ServerMessage, Welcome, decode,
};

use crate::admission::Ticket;
use crate::arrival::{Arrival, TransportKind};
use crate::budgets::{Budgets, MEMBERSHIP_RATE_PER_SEC};
use crate::closing;
use crate::frame::Frame;
use crate::hub::{Hub, unix_millis};
use crate::message_id;
use crate::name::{validate_display_name, validate_room_name};
use crate::outbox::Outbox;
use crate::party::Party;
use crate::receipts::{MESSAGE_ID_WINDOW, Receipt};
use crate::review_line::ReviewLine;
use crate::room::{Room, RoomMember};
use crate::room_registry::RoomLimitReached;
use crate::user::User;
use outgoing::{Outgoing, Submission};

/// What arrives from a transport.
#[derive(Debug)]
pub enum Inbound {
    /// A frame body: version byte and postcard bytes.
    Frame(Bytes),
    /// A transport message the protocol does not use, such as WebSocket text.
    Unsupported,
    /// A frame longer than the limit, refused by the transport before it was
    /// buffered.
    TooLarge(usize),
    /// Transport-level liveness (a WebSocket ping or pong): the peer is there.
    Keepalive,
    /// The transport's own framing was broken (a WebSocket frame against
    /// RFC 6455: unmasked, a bad opcode, invalid UTF-8 in a text frame), and
    /// why. Nothing more can be read; the session closes with
    /// `PROTOCOL_VIOLATION`.
    Broken(String),
}

/// Whether the session goes on.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Send what is queued, then this notice, then close.
    Close(Closing),
}

/// One room this session is in.
#[derive(Debug)]
struct Membership {
    /// The room, held directly so that publishing needs no registry look-up.
    room: Arc<Room>,
    /// How the room knows this session.
    member: RoomMember,
}

/// One client's state in the core.
#[derive(Debug)]
pub struct Session {
    /// Unique among live sessions.
    id: u64,
    /// The core this session belongs to.
    hub: Arc<Hub>,
    /// Frames for this session's client.
    outbox: Arc<Outbox>,
    /// Whether the client has said hello.
    greeted: bool,
    /// The rooms this session is in; a handful, so a vector beats a map.
    memberships: Vec<Membership>,
    /// Rate limits and tolerances, begun from what the user's earlier
    /// sessions left (full for an anonymous session).
    budgets: Budgets,
    /// The transport, for the metrics.
    transport: TransportKind,
    /// Who the session is and where it may go; `None` for an anonymous
    /// session (authentication off), which costs a pointer instead of a
    /// whole `User` on every idle connection.
    user: Option<Box<User>>,
    /// The session's place under admission control, given back on drop;
    /// `None` for a session that was turned away at opening.
    ticket: Option<Ticket>,
    /// Its messages under moderation, in order; made at the first one, so
    /// that a server without moderation pays a pointer for it.
    reviews: Option<Arc<ReviewLine>>,
}

impl Session {
    /// Opens a session for a new connection. A connection the server
    /// turns away (draining, over a limit, no valid token) still gets a
    /// session, already closed with the notice that says why, so that every
    /// refusal reaches the client through the same path as any other close.
    pub fn open(hub: &Arc<Hub>, mut arrival: Arrival) -> Self {
        let (id, outbox) = hub.enrol(arrival.transport);
        let (user, ticket) = match hub.admit(&mut arrival) {
            Ok((user, ticket)) => {
                if let Some(user) = &user {
                    hub.identify(id, &user.id);
                }
                (user, Some(ticket))
            }
            Err(closing) => {
                outbox.close(closing);
                (None, None)
            }
        };
        Self::new(hub.clone(), id, outbox, arrival.transport, user, ticket)
    }

    fn new(
        hub: Arc<Hub>,
        id: u64,
        outbox: Arc<Outbox>,
        transport: TransportKind,
        user: Option<User>,
        ticket: Option<Ticket>,
    ) -> Self {
        let limits = hub.config().session;
        let now = Instant::now();
        // A user's session starts from what their earlier ones left; see
        // `budgets.rs` for why anonymous ones start full.
        let budgets = match &user {
            Some(user) if ticket.is_some() => hub.kept_budgets().resume(&user.id, &limits, now),
            _ => Budgets::full(&limits, now),
        };
        Self {
            id,
            outbox,
            greeted: false,
            memberships: Vec::new(),
            budgets,
            transport,
            user: user.map(Box::new),
            ticket,
            reviews: None,
            hub,
        }
    }

    /// Whether the client has said hello.
    pub fn is_greeted(&self) -> bool {
        self.greeted
    }

    /// The session's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// When the session's credentials expire, if they do.
    pub fn expires_at(&self) -> Option<std::time::SystemTime> {
        self.user.as_ref().and_then(|user| user.expires_at)
    }

    /// The session's outbound queue, which its transport drains.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Handles one thing that arrived from the client.
    pub fn receive(&mut self, inbound: Inbound, now: Instant) -> Flow {
        // A session turned away at opening acts on nothing its client sent
        // before reading the refusal: an unauthenticated client would
        // otherwise join and publish in the moment before its close.
        if self.ticket.is_none() {
            return Flow::Continue;
        }
        let flow = self.act_on(inbound, now);
        if let Flow::Close(closing) = &flow {
            if closing.code == ReasonCode::FLOODING {
                self.cool_down(closing, now);
            }
        }
        flow
    }

    /// Who the session's limits across sessions apply to; `None` for a
    /// session turned away at opening, which has no address to go by.
    fn party(&self) -> Option<Party> {
        let address = self.ticket.as_ref()?.address();
        Some(Party::of(self.user.as_ref().map(|user| user.id.as_str()), address))
    }

    /// Remembers a client closed for flooding until its retry hint passes,
    /// so that it cannot come straight back.
    fn cool_down(&self, closing: &Closing, now: Instant) {
        let Some(party) = self.party() else { return };
        let wait = Duration::from_millis(u64::from(closing.retry_after_ms.unwrap_or(0)));
        self.hub.cool_downs().impose(party, now + wait, now);
    }

    fn act_on(&mut self, inbound: Inbound, now: Instant) -> Flow {
        let max_frame = self.hub.config().session.max_frame_bytes;
        match inbound {
            Inbound::Frame(body) => match decode::<ClientFrame>(&body, max_frame) {
                Ok(frame) => self.handle(frame, now),
                Err(DecodeError::TooLarge { len, max }) => Self::frame_too_large(len, max),
                Err(DecodeError::UnknownVersion(version)) => {
                    Flow::Close(closing::unsupported_version("frame version", version))
                }
                Err(error) => {
                    self.refuse(None, error.error_code(), format!("cannot decode the frame: {error}"), now)
                }
            },
            Inbound::Unsupported => self.refuse(
                None,
                ErrorCode::UNSUPPORTED_FRAME,
                "text messages are not part of the protocol; send binary frames".into(),
                now,
            ),
            Inbound::TooLarge(len) => Self::frame_too_large(len, max_frame),
            Inbound::Keepalive => {
                if self.budgets.keepalive.try_take(now) || self.budgets.flood.try_take(now) {
                    Flow::Continue
                } else {
                    Flow::Close(closing::flooding(
                        "kept sending transport keepalives (pings) far faster than needed",
                        &self.hub.config().retry_hints,
                    ))
                }
            }
            Inbound::Broken(why) => {
                Flow::Close(closing::protocol_violation(format!("the connection's framing is broken: {why}")))
            }
        }
    }

    fn frame_too_large(len: usize, max: usize) -> Flow {
        Flow::Close(closing::frame_too_large(len, max))
    }

    fn handle(&mut self, frame: ClientFrame, now: Instant) -> Flow {
        let request_id = frame.request_id;
        match frame.message {
            ClientMessage::Hello { protocol_version, client_name, fallback } => {
                self.hello(request_id, protocol_version, &client_name, fallback.as_deref(), now)
            }
            _ if !self.greeted => self.refuse(
                Some(request_id),
                ErrorCode::HELLO_REQUIRED,
                "say hello before anything else".into(),
                now,
            ),
            ClientMessage::Join { room, display_name, resume } => {
                self.join(request_id, &room, &display_name, resume, now)
            }
            ClientMessage::Leave { room } => self.leave(request_id, &room, now),
            ClientMessage::Publish { room, body, message_id } => {
                self.publish(request_id, &room, body, message_id.as_deref(), now)
            }
            ClientMessage::Typing { room } => self.typing(request_id, &room, now),
            ClientMessage::Members { room, after, limit } => {
                self.members(request_id, &room, after, limit, now)
            }
            ClientMessage::History { room, before, limit } => {
                self.history(request_id, &room, before, limit, now)
            }
            ClientMessage::RefreshToken { token } => self.refresh_token(request_id, &token, now),
            ClientMessage::Ping { nonce } => {
                self.send(&ServerMessage::Pong(Pong { request_id, nonce, server_time_ms: unix_millis() }));
                Flow::Continue
            }
        }
    }

    fn hello(
        &mut self,
        request_id: u32,
        protocol_version: u16,
        client_name: &str,
        fallback: Option<&str>,
        now: Instant,
    ) -> Flow {
        if self.greeted {
            return self.refuse(
                Some(request_id),
                ErrorCode::ALREADY_GREETED,
                "hello was already said".into(),
                now,
            );
        }
        if protocol_version != u16::from(PROTOCOL_VERSION) {
            return Flow::Close(closing::unsupported_version("protocol version", protocol_version));
        }
        self.greeted = true;
        tracing::debug!(session = self.id, client = %client_name.escape_debug(), "hello");
        if let Some(reason) = fallback {
            self.hub.metrics().fallback(FallbackReason::from_name(reason));
        }
        let config = self.hub.config();
        let millis = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        self.send(&ServerMessage::Welcome(Welcome {
            request_id,
            session_id: self.id,
            protocol_version: u16::from(PROTOCOL_VERSION),
            server: concat!("wtchat/", env!("CARGO_PKG_VERSION")).into(),
            heartbeat_interval_ms: millis(config.heartbeat_interval),
            heartbeat_timeout_ms: millis(config.heartbeat_timeout),
            limits: config.session.announced(),
        }));
        Flow::Continue
    }

    fn join(
        &mut self,
        request_id: u32,
        room: &str,
        display_name: &str,
        resume: Option<Resume>,
        now: Instant,
    ) -> Flow {
        let limits = self.hub.config().session;
        let room_name = match validate_room_name(room, limits.max_room_name_bytes) {
            Ok(name) => name,
            Err(why) => {
                return self.refuse(Some(request_id), ErrorCode::INVALID_ROOM_NAME, why.to_string(), now);
            }
        };
        if !self.user.as_ref().is_none_or(|user| user.join.covers(&room_name)) {
            let text = format!("your token does not allow joining {room_name:?}");
            return self.refuse(Some(request_id), ErrorCode::FORBIDDEN, text, now);
        }
        // With a token, the name comes from it: a user cannot pose as another.
        let display_name =
            self.user.as_ref().and_then(|user| user.display_name.as_deref()).unwrap_or(display_name);
        let display_name = match validate_display_name(display_name, limits.max_display_name_bytes) {
            Ok(name) => name,
            Err(why) => {
                return self.refuse(Some(request_id), ErrorCode::INVALID_DISPLAY_NAME, why.to_string(), now);
            }
        };
        if self.membership(&room_name).is_some() {
            return self.refuse(
                Some(request_id),
                ErrorCode::ALREADY_IN_ROOM,
                format!("already in {room_name}"),
                now,
            );
        }
        if self.memberships.len() >= limits.max_rooms_per_session {
            return self.refuse(
                Some(request_id),
                ErrorCode::TOO_MANY_ROOMS,
                format!("a session may be in at most {} rooms", limits.max_rooms_per_session),
                now,
            );
        }
        if !self.hub.room_available(&room_name) {
            let text = "cannot join now: the server cannot reach its message broker; try again".into();
            self.send_error(Some(request_id), ErrorCode::BROKER_UNAVAILABLE, text);
            return Flow::Continue;
        }
        if let Some(flow) = self.membership_rate_limited(request_id, now) {
            return flow;
        }
        // The user is kept only for what the backend hears of (events,
        // messages to review).
        let backend_listens = self.hub.announcer().is_some() || self.hub.moderator().is_some();
        let user = self.user.as_ref().filter(|_| backend_listens).map(|user| Arc::from(user.id.as_str()));
        let member =
            RoomMember { session_id: self.id, name: display_name, outbox: self.outbox.clone(), user };
        let party = self.party();
        match self.hub.rooms().join(&room_name, member.clone(), request_id, resume, party.as_ref()) {
            Ok(room) => {
                self.memberships.push(Membership { room, member });
                Flow::Continue
            }
            // The server is full, which is not the client's fault: no
            // charge to its error budget, which would otherwise close a
            // client that retries with a code that says never to return.
            Err(RoomLimitReached::Server) => {
                let text = "the server holds as many rooms as it may; try an existing room".into();
                self.send_error(Some(request_id), ErrorCode::ROOM_LIMIT_REACHED, text);
                Flow::Continue
            }
            // The quota is kept in the same words: the client may still join
            // rooms that exist, and the join limit already charges retries.
            Err(RoomLimitReached::Party) => {
                let text = format!(
                    "this {} has opened {} rooms, the most it may hold open; try an existing room",
                    if self.user.is_some() { "user" } else { "address" },
                    self.hub.rooms().quota().limit()
                );
                self.send_error(Some(request_id), ErrorCode::ROOM_LIMIT_REACHED, text);
                Flow::Continue
            }
        }
    }

    fn leave(&mut self, request_id: u32, room: &str, now: Instant) -> Flow {
        let index = match self.member_of(request_id, room, now) {
            Ok(index) => index,
            Err(flow) => return flow,
        };
        if let Some(flow) = self.membership_rate_limited(request_id, now) {
            return flow;
        }
        self.leave_at(index, request_id);
        Flow::Continue
    }

    /// Leaves the room of a membership and answers with `Left` under
    /// `request_id`.
    fn leave_at(&mut self, index: usize, request_id: u32) {
        let membership = self.memberships.swap_remove(index);
        self.hub.rooms().leave(&membership.room, self.id, PresenceChange::Left);
        let room = membership.room.name().to_string();
        self.send(&ServerMessage::Left(Left { request_id, room }));
    }

    fn publish(
        &mut self,
        request_id: u32,
        room: &str,
        body: String,
        message_id: Option<&str>,
        now: Instant,
    ) -> Flow {
        let limits = self.hub.config().session;
        let index = match self.member_of(request_id, room, now) {
            Ok(index) => index,
            Err(flow) => return flow,
        };
        if !self.user.as_ref().is_none_or(|user| user.publish.covers(room)) {
            let text = format!("your token does not allow publishing to {room:?}");
            return self.refuse(Some(request_id), ErrorCode::FORBIDDEN, text, now);
        }
        if body.is_empty() {
            return self.refuse(
                Some(request_id),
                ErrorCode::EMPTY_MESSAGE,
                "the message is empty".into(),
                now,
            );
        }
        if body.len() > limits.max_message_bytes {
            return self.refuse(
                Some(request_id),
                ErrorCode::MESSAGE_TOO_LARGE,
                format!(
                    "the message is {} bytes; at most {} are allowed",
                    body.len(),
                    limits.max_message_bytes
                ),
                now,
            );
        }
        if let Some(why) = message_id.and_then(message_id::invalid) {
            return self.refuse(Some(request_id), ErrorCode::INVALID_MESSAGE_ID, why, now);
        }
        if !self.budgets.publish.try_take(now) {
            self.hub.metrics().rate_limited();
            self.send_error(
                Some(request_id),
                ErrorCode::RATE_LIMITED,
                format!("at most {} messages per second; this one was dropped", limits.publish_rate_per_sec),
            );
            if !self.budgets.flood.try_take(now) {
                return Flow::Close(closing::flooding(
                    "kept publishing over the rate limit",
                    &self.hub.config().retry_hints,
                ));
            }
            return Flow::Continue;
        }
        let Membership { room, member } = &self.memberships[index];
        let receipt = message_id.map(|id| Receipt {
            key: message_id::receipt_key(self.user.as_ref().map(|user| user.id.as_str()), id),
            window: MESSAGE_ID_WINDOW,
        });
        let submission = Submission { request_id, sent_at_ms: unix_millis(), body, receipt };
        let Some(moderator) = self.hub.moderator() else {
            outgoing::deliver(&self.hub, room, member, submission);
            return Flow::Continue;
        };
        // Only a message under review needs its own copy of where it goes.
        let outgoing = Outgoing { room: room.clone(), member: member.clone(), submission };
        self.review(moderator.clone(), outgoing, now)
    }

    fn typing(&mut self, request_id: u32, room: &str, now: Instant) -> Flow {
        let index = match self.member_of(request_id, room, now) {
            Ok(index) => index,
            Err(flow) => return flow,
        };
        if self.budgets.typing.try_take(now) {
            let Membership { room, member } = &self.memberships[index];
            match self.hub.broker() {
                None => room.typing(&member.event_member(), self.hub.rooms().presence()),
                Some(broker) => broker.typing(room.name(), member.event_member()),
            }
        }
        Flow::Continue
    }

    /// Answers a members request with a page of the room's members.
    fn members(&mut self, request_id: u32, room: &str, after: u64, limit: u32, now: Instant) -> Flow {
        let index = match self.member_of(request_id, room, now) {
            Ok(index) => index,
            Err(flow) => return flow,
        };
        if let Some(flow) = self.page_rate_limited(request_id, "members", now) {
            return flow;
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.outbox.push(&self.memberships[index].room.members_page(request_id, after, limit));
        Flow::Continue
    }

    /// The answer to a page (of members, of history) over the pages rate,
    /// if it is: refused, and charged to the flood budget, which closes a
    /// session that keeps at it.
    fn page_rate_limited(&mut self, request_id: u32, what: &str, now: Instant) -> Option<Flow> {
        if self.budgets.pages.try_take(now) {
            return None;
        }
        let text = format!("{what} pages are asked for too fast; this one was refused");
        self.send_error(Some(request_id), ErrorCode::RATE_LIMITED, text);
        if self.budgets.flood.try_take(now) {
            return Some(Flow::Continue);
        }
        let why = format!("kept asking for {what} pages over the rate limit");
        Some(Flow::Close(closing::flooding(&why, &self.hub.config().retry_hints)))
    }

    /// The answer to a join or leave over the membership rate, if it is:
    /// refused, and charged to the flood budget, which closes a session that
    /// keeps at it.
    fn membership_rate_limited(&mut self, request_id: u32, now: Instant) -> Option<Flow> {
        if self.budgets.membership.try_take(now) {
            return None;
        }
        let text =
            format!("at most {MEMBERSHIP_RATE_PER_SEC} joins and leaves per second; this one was refused");
        self.send_error(Some(request_id), ErrorCode::RATE_LIMITED, text);
        if self.budgets.flood.try_take(now) {
            return Some(Flow::Continue);
        }
        Some(Flow::Close(closing::flooding(
            "kept joining and leaving rooms over the rate limit",
            &self.hub.config().retry_hints,
        )))
    }

    /// The index of the session's membership in `room`, or the refusal of a
    /// request that names a room the session is not in.
    fn member_of(&mut self, request_id: u32, room: &str, now: Instant) -> Result<usize, Flow> {
        self.membership(room).ok_or_else(|| {
            let text = format!("not in room {room:?}; join it first");
            self.refuse(Some(request_id), ErrorCode::NOT_IN_ROOM, text, now)
        })
    }

    fn membership(&self, room: &str) -> Option<usize> {
        self.memberships.iter().position(|m| &**m.room.name() == room)
    }

    /// Answers a refused request with an error frame and charges the error
    /// budget; a client that exhausts it is closed.
    fn refuse(&mut self, request_id: Option<u32>, code: ErrorCode, text: String, now: Instant) -> Flow {
        self.send_error(request_id, code, text);
        if self.budgets.error.try_take(now) {
            Flow::Continue
        } else {
            Flow::Close(closing::protocol_violation("too many refused requests".into()))
        }
    }

    fn send_error(&self, request_id: Option<u32>, code: ErrorCode, text: String) {
        self.send(&ServerMessage::Error(ErrorNotice { request_id, code, text }));
    }

    fn send(&self, message: &ServerMessage) {
        self.outbox.push(&Frame::encode(message));
    }
}

impl Drop for Session {
    /// Leaving every room on drop means no path out of a session (a clean
    /// close, an error, a timeout, an eviction, a panic in a transport) can
    /// leave a ghost member behind.
    fn drop(&mut self) {
        for membership in self.memberships.drain(..) {
            self.hub.rooms().leave(&membership.room, self.id, PresenceChange::Disconnected);
        }
        // What a user's session spent is kept for their next session.
        if let (Some(user), Some(_)) = (&self.user, &self.ticket) {
            self.hub.kept_budgets().keep(&user.id, self.budgets.clone(), Instant::now());
        }
        self.hub.unregister(self.id);
        self.hub.metrics().session_closed(self.transport, self.outbox.stats());
    }
}

mod history;
mod outgoing;
mod review;
mod token;

#[cfg(test)]
mod tests;
