//! The client a page uses: one object with a small API and events.
//!
//! ```js
//! import init, { Client } from "./pkg/wtchat_client.js";
//! await init();
//! const chat = new Client({ server: location.origin });
//! chat.on("message", (m) => console.log(m.sender.name, m.body));
//! chat.on("transport", (t) => console.log("using", t.transport, t.reason));
//! chat.connect();
//! chat.join("lobby", "Ada");
//! chat.send("lobby", "hello");
//! ```
//!
//! One task (the driver) owns the connection's life: discover, choose a
//! transport, greet, rejoin every room with its resume point, keep the
//! heartbeat, and on loss wait (backoff with full jitter, never less than the
//! server's hint) and do it again. The page's calls only record intent and
//! send on the current link.

use std::cell::RefCell;
use std::rc::Rc;

use crate::channel::{Receiver, TryRecvError};
use futures::future::FutureExt;
use futures::{StreamExt, select_biased};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use wtchat_protocol::{
    ClientFrame, ClientMessage, Closing, FallbackReason, PROTOCOL_VERSION, ServerMessage, Welcome, decode,
    encode,
};

use crate::backoff::Backoff;
use crate::discovery::{self, Plan, WebTransportPlan};
use crate::events::{ChatMember, ErrorEvent, StateEvent, TransportEvent};
use crate::js_object::{ToJs, array};
use crate::ledger::{Ledger, RoomState};
use crate::link::{Link, LinkEnd, LinkEvent, TransportKind};
use crate::options::Options;
use crate::outbox::Outbox;
use crate::time::{now_ms, sleep};
use crate::transport_choice::{AttemptError, Choice, establish};

/// Where the winner of the transport race is remembered between visits.
const REMEMBERED_TRANSPORT_KEY: &str = "wtchat.transport";

/// The largest frame the client accepts from the server before the welcome
/// says otherwise: the server's default limit with room for names.
const DEFAULT_MAX_FRAME: usize = 128 * 1024;

/// A chat client.
#[wasm_bindgen]
pub struct Client {
    pub(crate) inner: Rc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) options: Options,
    pub(crate) state: RefCell<State>,
}

pub(crate) struct State {
    /// The token the session presents: the page's first, then the latest
    /// refresh, which a reconnect presents too.
    pub(crate) token: Option<String>,
    /// What the page gave to get a fresh token, if anything.
    pub(crate) token_provider: Option<js_sys::Function>,
    /// The current connection, while connected.
    pub(crate) link: Option<Link>,
    /// Rooms and resume points.
    pub(crate) ledger: Ledger,
    /// Event handlers, by event name.
    handlers: Vec<(String, js_sys::Function)>,
    /// The connection state as the page sees it.
    connection: &'static str,
    /// The transport in use.
    transport: Option<TransportKind>,
    /// The next request id.
    next_request: u32,
    /// Whether the driver runs.
    running: bool,
    /// Whether the page closed the client.
    closed_by_user: bool,
    /// When the client last sent anything, for the heartbeat.
    pub(crate) last_sent_ms: f64,
    /// The server's frame limit, from the welcome.
    max_frame: usize,
    /// This session's id, from the welcome: a presence diff names this
    /// session's own comings and goings too, which are no news to the page.
    pub(crate) session_id: u64,
    /// The page's messages the server has not answered yet.
    pub(crate) outbox: Outbox,
    /// Set while a timer waits to send what the rate held back.
    pub(crate) flush_scheduled: bool,
    /// Set when the page asked to drop the connection and make a new one.
    pub(crate) reconnect_asked: bool,
}

/// Why a connection ended.
enum End {
    /// The page closed the client.
    UserClosed,
    /// The server said goodbye: a closing notice, or a close whose code
    /// stands for one; with the code the transport's close carried.
    Notice(Closing, Option<u32>),
    /// The connection was lost.
    Lost(String),
}

#[wasm_bindgen]
impl Client {
    /// Creates a client; `options` may be omitted.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<Client, JsValue> {
        let options =
            Options::from_js(&options).map_err(|why| JsValue::from_str(&format!("bad options: {why}")))?;
        let token = options.token.clone().filter(|t| !t.is_empty());
        Ok(Self {
            inner: Rc::new(Inner {
                options,
                state: RefCell::new(State {
                    token,
                    token_provider: None,
                    link: None,
                    ledger: Ledger::default(),
                    handlers: Vec::new(),
                    connection: "idle",
                    transport: None,
                    next_request: 1,
                    running: false,
                    closed_by_user: false,
                    last_sent_ms: 0.0,
                    max_frame: DEFAULT_MAX_FRAME,
                    session_id: 0,
                    outbox: Outbox::default(),
                    flush_scheduled: false,
                    reconnect_asked: false,
                }),
            }),
        })
    }

    /// Calls `handler(payload)` on every event named `event`: "message",
    /// "presence", "members", "joined", "left", "typing", "error",
    /// "transport", "state", "gap", "token".
    pub fn on(&self, event: &str, handler: js_sys::Function) {
        self.inner.state.borrow_mut().handlers.push((event.to_owned(), handler));
    }

    /// Starts connecting, and keeps reconnecting until [`Client::close`].
    pub fn connect(&self) {
        let mut state = self.inner.state.borrow_mut();
        if state.running {
            return;
        }
        state.running = true;
        state.closed_by_user = false;
        drop(state);
        spawn_local(drive(self.inner.clone()));
    }

    /// Joins a room now (or as soon as connected), and again after every
    /// reconnect, resuming where the client left off.
    pub fn join(&self, room: &str, display_name: &str) {
        let resume = {
            let mut state = self.inner.state.borrow_mut();
            state.ledger.want(room, display_name);
            state.ledger.room(room).and_then(RoomState::resume)
        };
        self.inner.send(ClientMessage::Join {
            room: room.to_owned(),
            display_name: display_name.to_owned(),
            resume,
        });
    }

    /// Leaves a room; its messages still waiting to go out fail.
    pub fn leave(&self, room: &str) {
        self.inner.state.borrow_mut().ledger.forget(room);
        self.inner.send(ClientMessage::Leave { room: room.to_owned() });
        self.inner.forget_sends(room);
    }

    /// Tells a room this user is typing (a datagram on WebTransport).
    pub fn typing(&self, room: &str) -> bool {
        if self.inner.state.borrow().ledger.room(room).is_none() {
            return false;
        }
        let body = self.inner.encode(ClientMessage::Typing { room: room.to_owned() });
        let state = self.inner.state.borrow();
        state.link.as_ref().is_some_and(|link| link.send_ephemeral(&body).is_ok())
    }

    /// Closes the connection and stops reconnecting.
    pub fn close(&self) {
        let link = {
            let mut state = self.inner.state.borrow_mut();
            state.closed_by_user = true;
            state.link.take()
        };
        if let Some(link) = link {
            link.close();
        }
        self.inner.set_state("closed", None, Some("closed by the page".into()));
    }

    /// The transport in use: "webtransport", "websocket", or undefined.
    #[wasm_bindgen(getter)]
    pub fn transport(&self) -> Option<String> {
        self.inner.state.borrow().transport.map(|t| t.name().to_owned())
    }

    /// The connection state: "idle", "connecting", "connected",
    /// "reconnecting" or "closed".
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        self.inner.state.borrow().connection.to_owned()
    }

    /// Asks for the next page of a large room's members; the answer comes
    /// as a `members` event. Returns false when every member is known
    /// already or the room was not joined.
    #[wasm_bindgen(js_name = moreMembers)]
    pub fn more_members(&self, room: &str) -> bool {
        let after = self.inner.state.borrow().ledger.room(room).and_then(|state| state.next_after);
        let Some(after) = after else { return false };
        let body = self.inner.encode(ClientMessage::Members { room: room.to_owned(), after, limit: 100 });
        let state = self.inner.state.borrow();
        state.link.as_ref().is_some_and(|link| link.send(&body).is_ok())
    }

    /// A room's members as last known.
    pub fn members(&self, room: &str) -> JsValue {
        let state = self.inner.state.borrow();
        let members: Vec<ChatMember> = state
            .ledger
            .room(room)
            .map(|r| r.members.iter().map(ChatMember::from).collect())
            .unwrap_or_default();
        array(&members)
    }
}

impl Inner {
    pub(crate) fn encode(&self, message: ClientMessage) -> Vec<u8> {
        self.encode_numbered(message).1
    }

    /// Encodes a request under the next request id; returns both.
    pub(crate) fn encode_numbered(&self, message: ClientMessage) -> (u32, Vec<u8>) {
        let mut state = self.state.borrow_mut();
        let request_id = state.next_request;
        state.next_request = state.next_request.wrapping_add(1);
        (request_id, encode(&ClientFrame { request_id, message }))
    }

    /// Sends on the current link; false while disconnected.
    pub(crate) fn send(&self, message: ClientMessage) -> bool {
        let body = self.encode(message);
        let mut state = self.state.borrow_mut();
        let sent = state.link.as_ref().is_some_and(|link| link.send(&body).is_ok());
        if sent {
            state.last_sent_ms = now_ms();
        }
        sent
    }

    /// Tells the page's handlers of `event`. The payload is a trait object,
    /// so that one body serves every event (a generic one was copied into
    /// the wasm once per event type), and it is written only when someone
    /// listens.
    pub(crate) fn emit(&self, event: &str, payload: &dyn ToJs) {
        // Handlers may call back into the client, so none may run while the
        // state is borrowed.
        let handlers: Vec<js_sys::Function> = self
            .state
            .borrow()
            .handlers
            .iter()
            .filter(|(name, _)| name == event)
            .map(|(_, h)| h.clone())
            .collect();
        if handlers.is_empty() {
            return;
        }
        let payload = payload.to_js();
        for handler in handlers {
            if let Err(error) = handler.call1(&JsValue::NULL, &payload) {
                web_sys::console::error_2(&JsValue::from_str("wtchat: an event handler threw"), &error);
            }
        }
    }

    fn set_state(&self, connection: &'static str, retry_in_ms: Option<f64>, reason: Option<String>) {
        self.state.borrow_mut().connection = connection;
        self.emit("state", &StateEvent { state: connection, retry_in_ms, reason, close_code: None });
    }

    pub(crate) fn error(&self, code: &str, text: String, request_id: Option<u32>) {
        self.emit("error", &ErrorEvent { code: code.to_owned(), text, request_id, close_code: None });
    }

    fn closed_by_user(&self) -> bool {
        self.state.borrow().closed_by_user
    }

    fn base_url(&self) -> String {
        self.options
            .server
            .clone()
            .unwrap_or_else(|| web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default())
    }

    async fn plan(&self) -> Plan {
        let base = self.base_url();
        let mut plan = match discovery::discover(&base).await {
            Ok(plan) => plan,
            Err(error) => {
                self.error("DISCOVERY_FAILED", error, None);
                discovery::fallback(&base)
            }
        };
        if let Some(url) = &self.options.webtransport_url {
            let hashes = plan.webtransport.take().map(|wt| wt.certificate_hashes).unwrap_or_default();
            plan.webtransport = Some(WebTransportPlan { url: url.clone(), certificate_hashes: hashes });
        }
        if let Some(token) = self.state.borrow().token.as_deref() {
            plan.present_token(token);
        }
        if let (Some(hashes), Some(wt)) = (&self.options.certificate_hashes, plan.webtransport.as_mut()) {
            match discovery::parse_hex_hashes(hashes) {
                Ok(hashes) => wt.certificate_hashes = hashes,
                Err(error) => self.error("BAD_OPTIONS", error, None),
            }
        }
        plan
    }

    fn remembered(&self) -> Option<TransportKind> {
        let storage = web_sys::window()?.local_storage().ok()??;
        match storage.get_item(REMEMBERED_TRANSPORT_KEY).ok()??.as_str() {
            "webtransport" => Some(TransportKind::WebTransport),
            "websocket" => Some(TransportKind::WebSocket),
            _ => None,
        }
    }

    fn remember(&self, kind: TransportKind) {
        if !self.options.remember_transport || self.options.force_websocket {
            return;
        }
        if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
            let _ = storage.set_item(REMEMBERED_TRANSPORT_KEY, kind.name());
        }
    }

    /// Takes a new connection into use: announce it, then rejoin every room.
    fn adopt(self: &Rc<Self>, link: Link, welcome: &Welcome, reason: String, other: Option<String>) {
        let kind = link.kind();
        {
            let mut state = self.state.borrow_mut();
            state.link = Some(link);
            state.transport = Some(kind);
            state.max_frame = welcome.limits.max_frame_bytes as usize;
            state.session_id = welcome.session_id;
            state.last_sent_ms = now_ms();
        }
        self.remember(kind);
        let fallback_reason = (kind == TransportKind::WebSocket).then_some(other).flatten();
        self.emit("transport", &TransportEvent { transport: kind.name(), reason, fallback_reason });
        self.set_state("connected", None, None);
        let rejoins = self.state.borrow().ledger.rejoins();
        for (room, display_name, resume) in rejoins {
            self.send(ClientMessage::Join { room, display_name, resume });
        }
        // After the joins, which the server takes first.
        let limits = welcome.limits;
        self.state.borrow_mut().outbox.limits(limits.publish_rate_per_sec, limits.publish_burst, now_ms());
        self.flush();
    }
}

impl Inner {
    /// Acts on a closing notice: reports it (with the code the transport's
    /// close carried, the same way for either transport), and returns the
    /// retry hint to wait for (`Some`), or `None` when the code says not to
    /// come back.
    fn follow(&self, closing: Closing, error_code: &str, close_code: Option<u32>) -> Option<Option<u32>> {
        let reason = format!("{} ({})", closing.text, closing.code);
        if !closing.code.should_reconnect() {
            self.state.borrow_mut().connection = "closed";
            self.emit(
                "state",
                &StateEvent { state: "closed", retry_in_ms: None, reason: Some(reason), close_code },
            );
            return None;
        }
        self.emit(
            "error",
            &ErrorEvent { code: error_code.to_owned(), text: reason, request_id: None, close_code },
        );
        Some(closing.retry_after_ms)
    }
}

/// The connection's life, until the page closes the client or the server
/// says not to come back.
async fn drive(inner: Rc<Inner>) {
    let backoff = Backoff::default();
    let mut attempt: u32 = 0;
    let mut retry_hint: Option<u32> = None;
    loop {
        if inner.closed_by_user() {
            break;
        }
        inner.set_state(if attempt == 0 { "connecting" } else { "reconnecting" }, None, None);
        let plan = inner.plan().await;
        let choice = Choice {
            force_websocket: inner.options.force_websocket,
            head_start_ms: inner.options.head_start_ms,
            webtransport_timeout_ms: inner.options.webtransport_timeout_ms,
            remembered: inner.remembered(),
            max_frame: DEFAULT_MAX_FRAME,
        };
        let hello = |fallback: Option<FallbackReason>| {
            inner.encode(ClientMessage::Hello {
                protocol_version: u16::from(PROTOCOL_VERSION),
                client_name: inner.options.client_name.clone(),
                fallback: fallback.map(|reason| reason.name().to_owned()),
            })
        };
        match establish(&plan, &choice, hello).await {
            Ok(established) => {
                if inner.closed_by_user() {
                    established.link.close();
                    break;
                }
                attempt = 0;
                inner.adopt(established.link, &established.welcome, established.reason, established.other);
                let end = run_connection(&inner, established.events, &established.welcome).await;
                let link = {
                    let mut state = inner.state.borrow_mut();
                    state.outbox.connection_lost();
                    state.link.take()
                };
                if let Some(link) = link {
                    link.close();
                }
                match end {
                    End::UserClosed => break,
                    End::Notice(closing, close_code) => {
                        match inner.follow(closing, "CLOSED_BY_SERVER", close_code) {
                            Some(hint) => retry_hint = hint,
                            None => break,
                        }
                    }
                    End::Lost(why) => inner.error("CONNECTION_LOST", why, None),
                }
            }
            // Turned away before the welcome (overloaded, no valid token):
            // the notice decides, exactly as for a session closed later.
            Err(AttemptError::Refused(closing)) => match inner.follow(closing, "REFUSED_BY_SERVER", None) {
                Some(hint) => retry_hint = hint,
                None => break,
            },
            Err(AttemptError::Failed(why)) => inner.error("CONNECT_FAILED", why, None),
        }
        if inner.closed_by_user() {
            break;
        }
        let delay = backoff.delay_ms(attempt, js_sys::Math::random(), retry_hint.take());
        attempt = attempt.saturating_add(1);
        inner.set_state("reconnecting", Some(delay), None);
        sleep_unless_closed(&inner, delay).await;
    }
    let mut state = inner.state.borrow_mut();
    state.running = false;
    state.transport = None;
}

/// Sleeps, waking early if the page closes the client.
async fn sleep_unless_closed(inner: &Inner, delay_ms: f64) {
    let until = now_ms() + delay_ms;
    while !inner.closed_by_user() && now_ms() < until {
        sleep((until - now_ms()).min(250.0)).await;
    }
}

/// Runs an adopted connection: dispatches what arrives, pings when the
/// client has been quiet for a heartbeat interval, and gives up when the
/// server has been silent past the heartbeat timeout.
async fn run_connection(inner: &Rc<Inner>, mut events: Receiver<LinkEvent>, welcome: &Welcome) -> End {
    let interval = f64::from(welcome.heartbeat_interval_ms.max(100));
    let timeout = f64::from(welcome.heartbeat_timeout_ms.max(200));
    let tick = interval / 4.0;
    let mut heard = Heard { last_heard: now_ms(), notice: None };
    let mut last_tick = now_ms();
    let mut nonce = 0u64;
    loop {
        if inner.closed_by_user() {
            return End::UserClosed;
        }
        select_biased! {
            event = events.next() => {
                if let Some(end) = heard.handle(inner, event) {
                    return end;
                }
            }
            () = sleep(tick).fuse() => {
                // A page that was frozen (a background tab, a long script)
                // wakes with events waiting, some not yet delivered to it:
                // those already here come first, and the verdict on the
                // server's silence waits for a tick that was not overslept.
                let now = now_ms();
                let overslept = now - last_tick > 3.0 * tick;
                last_tick = now;
                loop {
                    let event = match events.try_recv() {
                        Ok(event) => Some(event),
                        Err(TryRecvError::Closed) => None,
                        Err(TryRecvError::Empty) => break,
                    };
                    if let Some(end) = heard.handle(inner, event) {
                        return end;
                    }
                }
                if !overslept && now - heard.last_heard > timeout {
                    return End::Lost(format!("the server was silent for {} ms", timeout as u64));
                }
                let quiet = now - inner.state.borrow().last_sent_ms;
                if quiet >= interval * 0.8 {
                    nonce += 1;
                    inner.send(ClientMessage::Ping { nonce });
                }
            }
        }
    }
}

/// What a live connection has heard from the server.
struct Heard {
    /// When the last frame arrived.
    last_heard: f64,
    /// The closing notice, once it came.
    notice: Option<Closing>,
}

impl Heard {
    /// Acts on one link event; the end of the connection, if it ended.
    fn handle(&mut self, inner: &Rc<Inner>, event: Option<LinkEvent>) -> Option<End> {
        match event {
            Some(LinkEvent::Frame(body)) => {
                self.last_heard = now_ms();
                let max_frame = inner.state.borrow().max_frame;
                match decode::<ServerMessage>(&body, max_frame) {
                    Ok(ServerMessage::Closing(closing)) => self.notice = Some(closing),
                    Ok(message) => inner.dispatch(message),
                    Err(error) => inner.error("BAD_FRAME", format!("a frame from the server: {error}"), None),
                }
                None
            }
            Some(LinkEvent::Opened) => None,
            Some(LinkEvent::Closed(end)) => Some(ended(inner, self.notice.take(), end)),
            None => Some(ended(inner, self.notice.take(), LinkEnd::broken("the connection ended"))),
        }
    }
}

fn ended(inner: &Inner, notice: Option<Closing>, end: LinkEnd) -> End {
    if inner.closed_by_user() {
        return End::UserClosed;
    }
    if std::mem::take(&mut inner.state.borrow_mut().reconnect_asked) {
        return End::Lost("the page asked for a new connection".into());
    }
    // The notice frame says most (it has the retry hint); a close whose
    // code is the server's stands for it when the frame did not arrive.
    match notice.or_else(|| end.as_closing()) {
        Some(closing) => End::Notice(closing, end.code),
        None => End::Lost(end.why),
    }
}
