//! The core's behaviour, driven through sessions with no transport at all:
//! frames go in through `Session::receive` and come out of the outboxes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;
use wtchat_protocol::{
    ChatMessage, ClientFrame, ClientMessage, ErrorCode, PROTOCOL_VERSION, PresenceChange, ReasonCode, Resume,
    ServerMessage, decode, encode,
};

use super::{Flow, Inbound, Session};
use crate::arrival::{Arrival, TransportKind};
use crate::config::HubConfig;
use crate::frame::Frame;
use crate::hub::Hub;
use crate::outbox::Next;

fn hub_with(adjust: impl FnOnce(&mut HubConfig)) -> Arc<Hub> {
    let mut config = HubConfig::for_tests();
    config.session.publish_rate_per_sec = 1_000;
    config.session.publish_burst = 1_000;
    adjust(&mut config);
    Hub::new(config, None, None)
}

/// A session with a test's view of its outbox.
struct Client {
    session: Session,
    next_request: u32,
}

impl Client {
    fn connect(hub: &Arc<Hub>) -> Self {
        let mut client =
            Self { session: Session::open(hub, Arrival::local(TransportKind::WebSocket)), next_request: 1 };
        assert_eq!(client.send(hello()), Flow::Continue);
        assert!(matches!(client.messages()[..], [ServerMessage::Welcome(_)]));
        client
    }

    fn send(&mut self, message: ClientMessage) -> Flow {
        self.send_at(message, Instant::now())
    }

    fn send_at(&mut self, message: ClientMessage, now: Instant) -> Flow {
        let request_id = self.next_request;
        self.next_request += 1;
        let body = encode(&ClientFrame { request_id, message });
        self.session.receive(Inbound::Frame(body.into()), now)
    }

    fn join(&mut self, room: &str, name: &str) -> Vec<ServerMessage> {
        self.join_from(room, name, None)
    }

    fn join_from(&mut self, room: &str, name: &str, resume: Option<Resume>) -> Vec<ServerMessage> {
        let join = ClientMessage::Join { room: room.into(), display_name: name.into(), resume };
        assert_eq!(self.send(join), Flow::Continue);
        self.messages()
    }

    fn publish(&mut self, room: &str, body: &str) -> Flow {
        self.send(ClientMessage::Publish { room: room.into(), body: body.into(), message_id: None })
    }

    /// Everything queued, as the frames the transport would write.
    fn frames(&self) -> Vec<Frame> {
        let mut batch = Vec::new();
        match self.session.outbox().next(&mut batch).now_or_never() {
            Some(Next::Frames) => {
                let bytes = batch.iter().map(Frame::len).sum();
                self.session.outbox().written(batch.len(), bytes);
                batch
            }
            Some(Next::Close(notice)) => panic!("the session closed: {notice:?}"),
            None => Vec::new(),
        }
    }

    fn messages(&self) -> Vec<ServerMessage> {
        self.frames().iter().map(|frame| decode(&frame.body(), usize::MAX).unwrap()).collect()
    }

    fn chat(&self) -> Vec<ChatMessage> {
        self.messages()
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::Message(chat) => Some(chat),
                _ => None,
            })
            .collect()
    }
}

fn hello() -> ClientMessage {
    ClientMessage::Hello {
        protocol_version: u16::from(PROTOCOL_VERSION),
        client_name: "test".into(),
        fallback: None,
    }
}

fn error_code(messages: &[ServerMessage]) -> Option<ErrorCode> {
    messages.iter().find_map(|m| match m {
        ServerMessage::Error(e) => Some(e.code),
        _ => None,
    })
}

#[test]
fn every_recipient_gets_the_same_allocation() {
    let hub = hub_with(|_| {});
    let mut clients: Vec<Client> = (0..5).map(|_| Client::connect(&hub)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.join("lobby", &format!("user{i}"));
    }
    for client in &clients {
        client.frames(); // presence notices
    }
    assert_eq!(clients[0].publish("lobby", "hello, everyone"), Flow::Continue);
    let frames: Vec<Frame> = clients.iter().map(|c| c.frames().pop().unwrap()).collect();
    let first = frames[0].prefixed().as_ptr();
    for frame in &frames {
        assert_eq!(frame.prefixed().as_ptr(), first, "a recipient got a copy");
        // The WebSocket view is a slice of the same allocation.
        assert_eq!(frame.body().as_ptr(), first.wrapping_add(wtchat_protocol::LENGTH_PREFIX_BYTES));
    }
    let ServerMessage::Message(chat) = decode(&frames[3].body(), usize::MAX).unwrap() else { panic!() };
    assert_eq!((chat.seq, chat.body.as_str(), chat.sender.name.as_str()), (1, "hello, everyone", "user0"));
}

#[test]
fn every_member_sees_one_order() {
    let hub = hub_with(|_| {});
    let mut clients: Vec<Client> = (0..4).map(|_| Client::connect(&hub)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.join("order", &format!("user{i}"));
    }
    for client in &clients {
        client.frames();
    }
    for round in 0..50 {
        for (i, client) in clients.iter_mut().enumerate().take(3) {
            assert_eq!(client.publish("order", &format!("{i}:{round}")), Flow::Continue);
        }
    }
    let seen: Vec<Vec<(u64, String)>> =
        clients.iter().map(|c| c.chat().into_iter().map(|m| (m.seq, m.body)).collect()).collect();
    assert_eq!(seen[0].len(), 150);
    assert!(seen[0].iter().map(|(seq, _)| *seq).eq(1..=150), "sequence numbers are consecutive");
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
}

#[test]
fn history_on_join_and_resume() {
    let hub = hub_with(|config| config.history_len = 5);
    let mut alice = Client::connect(&hub);
    alice.join("news", "alice");
    for n in 1..=8 {
        alice.publish("news", &format!("item {n}"));
    }
    alice.frames();

    // A newcomer gets the last five, oldest first, after the joined answer.
    let mut bob = Client::connect(&hub);
    let messages = bob.join("news", "bob");
    let ServerMessage::Joined(joined) = &messages[0] else { panic!("{messages:?}") };
    assert_eq!((joined.history.count, joined.history.gap, joined.next_seq), (5, false, 9));
    let seqs: Vec<u64> = messages[1..]
        .iter()
        .map(|m| match m {
            ServerMessage::Message(chat) => chat.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [4, 5, 6, 7, 8]);
    let epoch = joined.epoch;

    // Resuming from 6 gives exactly 7 and 8.
    let mut carol = Client::connect(&hub);
    let messages = carol.join_from("news", "carol", Some(Resume { epoch, last_seq: 6 }));
    let ServerMessage::Joined(joined) = &messages[0] else { panic!() };
    assert_eq!((joined.history.count, joined.history.gap), (2, false));
    assert!(matches!(&messages[1], ServerMessage::Message(m) if m.seq == 7));
    assert!(matches!(&messages[2], ServerMessage::Message(m) if m.seq == 8));

    // Resuming from 1 when only 4..8 are kept: what is kept, and a gap.
    let mut dave = Client::connect(&hub);
    let messages = dave.join_from("news", "dave", Some(Resume { epoch, last_seq: 1 }));
    let ServerMessage::Joined(joined) = &messages[0] else { panic!() };
    assert_eq!((joined.history.count, joined.history.gap), (5, true));

    // Up to date: nothing to replay, no gap.
    let mut erin = Client::connect(&hub);
    let messages = erin.join_from("news", "erin", Some(Resume { epoch, last_seq: 8 }));
    let ServerMessage::Joined(joined) = &messages[0] else { panic!() };
    assert_eq!((joined.history.count, joined.history.gap, messages.len()), (0, false, 1));

    // Another epoch's numbers mean nothing here: everything, and a gap.
    let mut frank = Client::connect(&hub);
    let messages = frank.join_from("news", "frank", Some(Resume { epoch: epoch ^ 1, last_seq: 8 }));
    let ServerMessage::Joined(joined) = &messages[0] else { panic!() };
    assert_eq!((joined.history.count, joined.history.gap), (5, true));
}

#[test]
fn a_room_recreated_after_emptying_has_a_new_epoch() {
    let hub = hub_with(|_| {});
    let mut alice = Client::connect(&hub);
    let ServerMessage::Joined(first) = &alice.join("fleeting", "alice")[0] else { panic!() };
    let first_epoch = first.epoch;
    alice.publish("fleeting", "soon gone");
    assert_eq!(hub.rooms().len(), 1);
    assert_eq!(alice.send(ClientMessage::Leave { room: "fleeting".into() }), Flow::Continue);
    assert_eq!(hub.rooms().len(), 0, "an empty room is dropped");
    alice.frames();
    let messages = alice.join("fleeting", "alice");
    let ServerMessage::Joined(second) = &messages[0] else { panic!() };
    assert_ne!(second.epoch, first_epoch);
    assert_eq!((second.next_seq, second.history.count), (1, 0));
}

#[test]
fn presence_follows_joins_leaves_and_disconnects() {
    let hub = hub_with(|_| {});
    let mut alice = Client::connect(&hub);
    alice.join("den", "alice");
    let mut bob = Client::connect(&hub);
    let messages = bob.join("den", "bob");
    let ServerMessage::Joined(joined) = &messages[0] else { panic!() };
    let names: Vec<&str> = joined.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);

    assert_eq!(joined.member_count, 2);

    // Everything of one interval arrives in one frame, the same for every
    // member: alice hears of her own join and bob's.
    let presence = |client: &Client| -> Vec<(u32, Vec<(PresenceChange, String)>)> {
        client
            .messages()
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::PresenceDiff(d) => {
                    Some((d.member_count, d.changes.into_iter().map(|c| (c.change, c.member.name)).collect()))
                }
                _ => None,
            })
            .collect()
    };
    assert!(presence(&alice).is_empty(), "nothing before the interval ends");
    hub.flush_presence();
    let both =
        vec![(PresenceChange::Joined, "alice".to_string()), (PresenceChange::Joined, "bob".to_string())];
    assert_eq!(presence(&alice), [(2, both)]);
    bob.messages();

    // Carol comes and goes within one interval: nobody hears of her.
    let mut carol = Client::connect(&hub);
    carol.join("den", "carol");
    bob.send(ClientMessage::Leave { room: "den".into() });
    assert!(matches!(bob.messages()[..], [ServerMessage::Left(_)]));
    drop(carol);
    hub.flush_presence();
    assert_eq!(presence(&alice), [(1, vec![(PresenceChange::Left, "bob".to_string())])]);
    hub.flush_presence();
    assert!(presence(&alice).is_empty(), "an interval without changes sends nothing");
    assert_eq!(hub.session_count(), 2);
}

#[test]
fn a_large_room_is_told_counts_and_pages_its_members() {
    let hub = hub_with(|config| config.presence.names_max = 3);
    let mut clients: Vec<Client> = (0..5).map(|_| Client::connect(&hub)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.join("hall", &format!("m{i}"));
    }
    hub.flush_presence();
    let ServerMessage::PresenceDiff(diff) = clients[0].messages().pop().expect("a diff") else { panic!() };
    assert_eq!((diff.member_count, diff.joins, diff.leaves), (5, 5, 0));
    assert!(diff.changes.is_empty(), "above the limit, counts only");

    // Pages of two, by session id, through every member once.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        clients[0].send(ClientMessage::Members { room: "hall".into(), after, limit: 2 });
        let Some(ServerMessage::Members(page)) = clients[0].messages().pop() else { panic!("no page") };
        assert_eq!(page.member_count, 5);
        assert!(page.members.len() <= 2);
        seen.extend(page.members.iter().map(|m| m.session_id));
        match page.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!((seen.len(), sorted), (5, seen.clone()), "each member once, in order");
}

#[test]
fn a_slow_consumer_is_evicted_and_pins_bounded_memory() {
    let queue = 8 * 1024;
    let hub = hub_with(|config| config.session.outbound_queue_bytes = queue);
    let mut fast = Client::connect(&hub);
    fast.join("busy", "fast");
    let slow = Client::connect(&hub);
    let mut slow = slow;
    slow.join("busy", "slow");
    // The room is told of the slow member before the flood, so that its
    // departure is news (a join and a departure in one interval cancel).
    hub.flush_presence();
    fast.frames();
    let body = "x".repeat(500);
    let mut evicted_at = None;
    for n in 0..100 {
        assert_eq!(fast.publish("busy", &body), Flow::Continue);
        // The fast reader keeps up; the slow one never reads.
        assert_eq!(fast.chat().len(), 1, "message {n} reached the fast reader");
        let queued = slow.session.outbox().queued_bytes();
        assert!(queued <= queue, "the slow reader pins {queued} bytes, over the bound of {queue}");
        if evicted_at.is_none() && !slow.session.outbox().is_open() {
            evicted_at = Some(n);
        }
    }
    let evicted_at = evicted_at.expect("the slow reader was never evicted");
    assert!(evicted_at < 20, "evicted only after {evicted_at} messages");
    assert_eq!(slow.session.outbox().queued_bytes(), 0, "an evicted session's frames are freed");
    let mut batch = Vec::new();
    match slow.session.outbox().next(&mut batch).now_or_never() {
        Some(Next::Close(Some(closing))) => assert_eq!(closing.code, ReasonCode::SLOW_CONSUMER),
        other => panic!("{other:?}"),
    }
    // The transport ends the session; the room hears of it at the next
    // presence interval.
    drop(slow);
    hub.flush_presence();
    let left = fast.messages();
    assert!(
        left.iter().any(|m| matches!(m, ServerMessage::PresenceDiff(d)
            if d.changes.iter().any(|c| c.change == PresenceChange::Disconnected))),
        "{left:?}"
    );
}

#[test]
fn publishing_over_the_rate_is_refused_then_closed() {
    let hub = hub_with(|config| {
        config.session.publish_rate_per_sec = 2;
        config.session.publish_burst = 3;
        config.session.flood_tolerance = 5;
    });
    let mut client = Client::connect(&hub);
    client.join("rated", "speedy");
    client.frames();
    let start = Instant::now();
    let publish = |client: &mut Client, at: Instant| {
        client
            .send_at(ClientMessage::Publish { room: "rated".into(), body: "hi".into(), message_id: None }, at)
    };
    for _ in 0..3 {
        assert_eq!(publish(&mut client, start), Flow::Continue);
    }
    assert_eq!(client.chat().len(), 3);
    assert_eq!(publish(&mut client, start), Flow::Continue);
    assert_eq!(error_code(&client.messages()), Some(ErrorCode::RATE_LIMITED));
    // Half a second later one more token has arrived.
    assert_eq!(publish(&mut client, start + Duration::from_millis(500)), Flow::Continue);
    assert_eq!(client.chat().len(), 1);
    // Keeping on past the tolerance closes the session.
    let mut closing = None;
    for _ in 0..10 {
        if let Flow::Close(c) = publish(&mut client, start + Duration::from_millis(500)) {
            closing = Some(c);
            break;
        }
    }
    assert_eq!(closing.map(|c| c.code), Some(ReasonCode::FLOODING));
}

#[test]
fn refused_requests_get_error_frames_with_their_request_ids() {
    let hub = hub_with(|config| {
        config.session.max_rooms_per_session = 2;
        config.session.max_message_bytes = 10;
    });
    let mut fresh = Session::open(&hub, Arrival::local(TransportKind::WebSocket));
    let body = encode(&ClientFrame { request_id: 41, message: ClientMessage::Leave { room: "x".into() } });
    assert_eq!(fresh.receive(Inbound::Frame(body.into()), Instant::now()), Flow::Continue);
    let mut client = Client { session: fresh, next_request: 100 };
    let messages = client.messages();
    let [ServerMessage::Error(error)] = &messages[..] else { panic!("{messages:?}") };
    assert_eq!((error.code, error.request_id), (ErrorCode::HELLO_REQUIRED, Some(41)));

    client.send(hello());
    client.messages();
    let cases: Vec<(ClientMessage, ErrorCode)> = vec![
        (
            ClientMessage::Join { room: "bad room".into(), display_name: "a".into(), resume: None },
            ErrorCode::INVALID_ROOM_NAME,
        ),
        (
            ClientMessage::Join { room: "ok".into(), display_name: "".into(), resume: None },
            ErrorCode::INVALID_DISPLAY_NAME,
        ),
        (
            ClientMessage::Join { room: "ok".into(), display_name: "a\u{7}".into(), resume: None },
            ErrorCode::INVALID_DISPLAY_NAME,
        ),
        (
            ClientMessage::Publish { room: "nowhere".into(), body: "hi".into(), message_id: None },
            ErrorCode::NOT_IN_ROOM,
        ),
        (ClientMessage::Leave { room: "nowhere".into() }, ErrorCode::NOT_IN_ROOM),
        (hello(), ErrorCode::ALREADY_GREETED),
    ];
    for (message, code) in cases {
        let request_id = client.next_request;
        assert_eq!(client.send(message.clone()), Flow::Continue);
        let messages = client.messages();
        let [ServerMessage::Error(error)] = &messages[..] else { panic!("{message:?}: {messages:?}") };
        assert_eq!((error.code, error.request_id), (code, Some(request_id)), "{message:?}");
    }
    client.join("one", "me");
    client.join("two", "me");
    assert_eq!(error_code(&client.join("one", "me")), Some(ErrorCode::ALREADY_IN_ROOM));
    assert_eq!(error_code(&client.join("three", "me")), Some(ErrorCode::TOO_MANY_ROOMS));
    client.publish("one", "0123456789A");
    assert_eq!(error_code(&client.messages()), Some(ErrorCode::MESSAGE_TOO_LARGE));
    client.publish("one", "");
    assert_eq!(error_code(&client.messages()), Some(ErrorCode::EMPTY_MESSAGE));
}

#[test]
fn bad_frames_are_answered_then_closed() {
    let hub = hub_with(|config| {
        config.session.error_tolerance = 3;
        config.session.max_frame_bytes = 200;
    });
    let mut client = Client::connect(&hub);
    let now = Instant::now();
    assert_eq!(client.session.receive(Inbound::Frame(vec![PROTOCOL_VERSION, 1].into()), now), Flow::Continue);
    let messages = client.messages();
    let [ServerMessage::Error(error)] = &messages[..] else { panic!("{messages:?}") };
    assert_eq!((error.code, error.request_id), (ErrorCode::MALFORMED_FRAME, None));
    assert_eq!(client.session.receive(Inbound::Unsupported, now), Flow::Continue);
    assert_eq!(error_code(&client.messages()), Some(ErrorCode::UNSUPPORTED_FRAME));
    assert_eq!(client.session.receive(Inbound::Frame(vec![].into()), now), Flow::Continue);
    let Flow::Close(closing) = client.session.receive(Inbound::Frame(vec![0xff].into()), now) else {
        panic!()
    };
    assert_eq!(closing.code, ReasonCode::UNSUPPORTED_VERSION);
    let Flow::Close(closing) =
        client.session.receive(Inbound::Frame(vec![PROTOCOL_VERSION; 300].into()), now)
    else {
        panic!()
    };
    assert_eq!(closing.code, ReasonCode::FRAME_TOO_LARGE);
    let Flow::Close(closing) = client.session.receive(Inbound::Frame(vec![PROTOCOL_VERSION, 9].into()), now)
    else {
        panic!("the error budget of 3 was not enforced")
    };
    assert_eq!(closing.code, ReasonCode::PROTOCOL_VIOLATION);
}

#[test]
fn the_room_count_is_bounded() {
    let hub = hub_with(|config| config.max_rooms = 2);
    let mut client = Client::connect(&hub);
    client.join("a", "me");
    client.join("b", "me");
    assert_eq!(error_code(&client.join("c", "me")), Some(ErrorCode::ROOM_LIMIT_REACHED));
    client.send(ClientMessage::Leave { room: "a".into() });
    client.messages();
    assert!(matches!(client.join("c", "me")[0], ServerMessage::Joined(_)));
}

#[test]
fn a_long_history_is_trimmed_to_fit_the_joiners_queue() {
    let hub = hub_with(|config| {
        config.session.outbound_queue_bytes = 8 * 1024;
        config.history_len = 100;
    });
    let mut writer = Client::connect(&hub);
    writer.join("big", "writer");
    let body = "y".repeat(400);
    for _ in 0..50 {
        writer.publish("big", &body);
        writer.frames();
    }
    let mut reader = Client::connect(&hub);
    let messages = reader.join("big", "reader");
    let ServerMessage::Joined(joined) = &messages[0] else { panic!() };
    assert!(joined.history.gap, "a trimmed replay is reported as a gap");
    assert!(joined.history.count > 0 && joined.history.count < 50, "{}", joined.history.count);
    assert!(
        matches!(messages.last(), Some(ServerMessage::Message(m)) if m.seq == 50),
        "the newest come last"
    );
    assert!(reader.session.outbox().is_open(), "the joiner was not evicted by its own history");
}

#[test]
fn typing_reaches_the_others_and_is_never_stored() {
    let hub = hub_with(|_| {});
    let mut alice = Client::connect(&hub);
    alice.join("desk", "alice");
    let mut bob = Client::connect(&hub);
    bob.join("desk", "bob");
    alice.frames();
    assert_eq!(alice.send(ClientMessage::Typing { room: "desk".into() }), Flow::Continue);
    let frames = bob.frames();
    assert_eq!(frames.len(), 1);
    assert!(frames[0].is_ephemeral());
    let ServerMessage::Typing(typing) = decode(&frames[0].body(), usize::MAX).unwrap() else { panic!() };
    assert_eq!((typing.room.as_str(), typing.member.name.as_str()), ("desk", "alice"));
    assert!(alice.frames().is_empty(), "the typist is not told about itself");
    // A newcomer's history holds no typing notice.
    let mut carol = Client::connect(&hub);
    let messages = carol.join("desk", "carol");
    assert!(matches!(&messages[..], [ServerMessage::Joined(j)] if j.history.count == 0 && j.next_seq == 1));
    // Typing in a room one is not in is refused like any other request.
    assert_eq!(carol.send(ClientMessage::Typing { room: "elsewhere".into() }), Flow::Continue);
    assert_eq!(error_code(&carol.messages()), Some(ErrorCode::NOT_IN_ROOM));
    // A burst past the typing rate is dropped silently.
    alice.frames();
    bob.frames();
    for _ in 0..20 {
        alice.send(ClientMessage::Typing { room: "desk".into() });
    }
    let notices = bob.frames().len();
    assert!((1..20).contains(&notices), "{notices} of 20 typing notices went through");
    assert!(alice.frames().is_empty(), "dropped typing notices get no error");
}

#[test]
fn a_refused_session_acts_on_nothing_its_client_sent_before_reading_the_refusal() {
    let secret = crate::authenticator::AuthKey::Secret("a secret of at least thirty-two bytes!!");
    let authenticator = crate::authenticator::Authenticator::new(secret, None, None).unwrap();
    let hub = Hub::new(HubConfig::for_tests(), Some(authenticator), None);
    // No token: the session opens already closed with UNAUTHORIZED.
    let mut intruder =
        Client { session: Session::open(&hub, Arrival::local(TransportKind::WebSocket)), next_request: 1 };
    assert!(!intruder.session.outbox().is_open());
    for message in [
        hello(),
        ClientMessage::Join { room: "lobby".into(), display_name: "intruder".into(), resume: None },
        ClientMessage::Publish { room: "lobby".into(), body: "sneaked in".into(), message_id: None },
    ] {
        assert_eq!(intruder.send(message), Flow::Continue);
    }
    assert!(hub.rooms().is_empty(), "the refused client created no room");
    assert_eq!(hub.metrics().published_count(), 0, "and published nothing");
}

#[test]
fn a_message_sent_again_with_its_id_is_answered_with_its_number_and_published_once() {
    let hub = hub_with(|_| {});
    let (mut ann, mut bob) = (Client::connect(&hub), Client::connect(&hub));
    ann.join("hall", "ann");
    bob.join("hall", "bob");
    let (_, _) = (ann.messages(), bob.messages());
    let publish = |id: &str, body: &str| ClientMessage::Publish {
        room: "hall".into(),
        body: body.into(),
        message_id: Some(id.into()),
    };
    assert_eq!(ann.send(publish("m-1", "once")), Flow::Continue);
    let answers = ann.messages();
    let [ServerMessage::Message(chat), ServerMessage::Published(first)] = &answers[..] else {
        panic!("the message, then its answer: {answers:?}")
    };
    assert_eq!((chat.seq, first.seq, first.room.as_str(), first.repeated), (1, 1, "hall", false));
    // Its connection died before the answer came, say: the same id again,
    // with a new request id, is answered with the same number, and nobody
    // receives the message twice.
    assert_eq!(ann.send(publish("m-1", "once")), Flow::Continue);
    let answers = ann.messages();
    let [ServerMessage::Published(again)] = &answers[..] else { panic!("only the answer: {answers:?}") };
    assert_eq!((again.seq, again.epoch, again.repeated), (first.seq, first.epoch, true));
    assert_ne!(again.request_id, first.request_id);
    assert_eq!(bob.chat().iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["once"]);
    // Another id is another message; a message without an id gets no answer.
    assert_eq!(ann.send(publish("m-2", "twice")), Flow::Continue);
    assert!(
        matches!(&ann.messages()[..], [ServerMessage::Message(_), ServerMessage::Published(p)] if p.seq == 2)
    );
    assert_eq!(ann.publish("hall", "plain"), Flow::Continue);
    assert!(matches!(&ann.messages()[..], [ServerMessage::Message(m)] if m.seq == 3));
    // An id is 1 to 64 bytes.
    for id in [String::new(), "x".repeat(65)] {
        assert_eq!(ann.send(publish(&id, "bad id")), Flow::Continue);
        assert_eq!(error_code(&ann.messages()), Some(ErrorCode::INVALID_MESSAGE_ID));
    }
    assert_eq!(bob.chat().iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
}

#[test]
fn a_join_replays_the_newest_and_a_member_pages_back_through_the_rest() {
    let hub = hub_with(|config| {
        config.history_len = 10;
        config.history_replay = 4;
    });
    let mut writer = Client::connect(&hub);
    writer.join("hall", "writer");
    for n in 1..=12 {
        assert_eq!(writer.publish("hall", &format!("m{n}")), Flow::Continue);
    }
    let mut reader = Client::connect(&hub);
    let replayed: Vec<u64> = reader
        .join("hall", "reader")
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Message(chat) => Some(chat.seq),
            _ => None,
        })
        .collect();
    assert_eq!(replayed, [9, 10, 11, 12], "a fresh join gets the newest four");
    let mut page = |before: u64, limit: u32| {
        assert_eq!(
            reader.send(ClientMessage::History { room: "hall".into(), before, limit }),
            Flow::Continue
        );
        match &reader.messages()[..] {
            [ServerMessage::History(page)] => {
                (page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), page.more, page.epoch)
            }
            other => panic!("{other:?}"),
        }
    };
    let (older, more, _) = page(9, 3);
    assert_eq!((older, more), (vec![6, 7, 8], true));
    let (oldest, more, _) = page(6, 100);
    assert_eq!((oldest, more), (vec![3, 4, 5], false), "the room keeps ten: 3 to 12");
    let (nothing, more, _) = page(3, 100);
    assert!(nothing.is_empty() && !more);
    // Only a member reads a room's history.
    let mut stranger = Client::connect(&hub);
    assert_eq!(
        stranger.send(ClientMessage::History { room: "hall".into(), before: 99, limit: 5 }),
        Flow::Continue
    );
    assert_eq!(error_code(&stranger.messages()), Some(ErrorCode::NOT_IN_ROOM));
}
