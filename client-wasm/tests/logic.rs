//! The client's own logic: backoff, resume bookkeeping and stream framing.
//! These run natively under `cargo test` and in headless Chromium under
//! `cargo test --target wasm32-unknown-unknown` (wasm-bindgen-test).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use wtchat_client::backoff::Backoff;
use wtchat_client::framing::{StreamBuffer, prefixed};
use wtchat_client::ledger::{Delivery, JoinOutcome, Ledger, RoomState};
use wtchat_protocol::{
    ChatMessage, ClientFrame, ClientMessage, DecodeError, HistoryReplay, Joined, Member, MemberChange,
    MembersPage, PresenceChange, PresenceDiff, Resume, decode, encode,
};

#[test]
fn backoff_grows_exponentially_up_to_its_cap() {
    let backoff = Backoff { base_ms: 500.0, max_ms: 30_000.0 };
    let caps: Vec<f64> = (0..8).map(|n| backoff.cap_ms(n)).collect();
    assert_eq!(caps, [500.0, 1_000.0, 2_000.0, 4_000.0, 8_000.0, 16_000.0, 30_000.0, 30_000.0]);
    assert_eq!(backoff.cap_ms(u32::MAX), 30_000.0);
}

#[test]
fn backoff_jitter_spans_the_whole_window() {
    let backoff = Backoff::default();
    // Full jitter: anywhere from zero to the cap, by the random draw.
    assert_eq!(backoff.delay_ms(3, 0.0, None), 0.0);
    assert_eq!(backoff.delay_ms(3, 0.5, None), backoff.cap_ms(3) / 2.0);
    assert!(backoff.delay_ms(3, 0.999, None) < backoff.cap_ms(3));
    // Out-of-range draws are clamped rather than trusted.
    assert_eq!(backoff.delay_ms(3, 7.0, None), backoff.cap_ms(3));
}

#[test]
fn backoff_never_undercuts_the_servers_hint() {
    let backoff = Backoff::default();
    assert_eq!(backoff.delay_ms(0, 0.1, Some(4_000)), 4_000.0);
    // A hint shorter than the jittered delay changes nothing.
    assert_eq!(backoff.delay_ms(5, 0.5, Some(10)), backoff.cap_ms(5) / 2.0);
}

fn joined(room: &str, epoch: u64, next_seq: u64, count: u32, gap: bool) -> Joined {
    Joined {
        request_id: 1,
        room: room.into(),
        epoch,
        next_seq,
        member_count: 1,
        members: vec![Member { session_id: 1, name: "me".into() }],
        history: HistoryReplay { count, gap },
    }
}

fn message(room: &str, seq: u64) -> ChatMessage {
    ChatMessage {
        room: room.into(),
        seq,
        sender: Member { session_id: 2, name: "them".into() },
        sent_at_ms: 0,
        body: format!("#{seq}"),
    }
}

#[test]
fn a_first_join_asks_for_everything_and_a_rejoin_resumes() {
    let mut ledger = Ledger::default();
    ledger.want("lobby", "me");
    assert_eq!(ledger.rejoins(), [("lobby".to_string(), "me".to_string(), None)]);
    assert_eq!(
        ledger.joined(&joined("lobby", 7, 1, 0, false)),
        Some(JoinOutcome { gap: false, rejoined: false })
    );
    for seq in 1..=5 {
        assert_eq!(ledger.deliver(&message("lobby", seq)), Delivery::New);
    }
    assert_eq!(
        ledger.rejoins(),
        [("lobby".to_string(), "me".to_string(), Some(Resume { epoch: 7, last_seq: 5 }))]
    );
}

#[test]
fn a_replay_that_overlaps_what_was_seen_delivers_each_message_once() {
    let mut ledger = Ledger::default();
    ledger.want("lobby", "me");
    ledger.joined(&joined("lobby", 7, 1, 0, false));
    for seq in 1..=5 {
        ledger.deliver(&message("lobby", seq));
    }
    // Reconnected (perhaps on the other transport): the server replays from
    // 4, overlapping two messages already shown.
    assert_eq!(
        ledger.joined(&joined("lobby", 7, 9, 5, false)),
        Some(JoinOutcome { gap: false, rejoined: true })
    );
    let delivered: Vec<u64> =
        (4..=8).filter(|seq| ledger.deliver(&message("lobby", *seq)) == Delivery::New).collect();
    assert_eq!(delivered, [6, 7, 8], "no duplicates, no gaps");
    assert_eq!(ledger.deliver(&message("lobby", 8)), Delivery::Duplicate);
    assert_eq!(ledger.deliver(&message("elsewhere", 1)), Delivery::Unknown);
}

#[test]
fn a_gap_is_reported_when_history_cannot_cover_it() {
    let mut ledger = Ledger::default();
    ledger.want("lobby", "me");
    ledger.joined(&joined("lobby", 7, 1, 0, false));
    ledger.deliver(&message("lobby", 1));
    // The server trimmed its history past what the client missed.
    assert_eq!(ledger.joined(&joined("lobby", 7, 500, 100, true)).map(|o| o.gap), Some(true));
    // The room was recreated while the client was away: a new epoch, and
    // numbering starts again.
    assert_eq!(ledger.joined(&joined("lobby", 8, 3, 2, true)).map(|o| o.gap), Some(true));
    assert_eq!(ledger.deliver(&message("lobby", 1)), Delivery::New, "the new epoch's 1 is new");
    assert_eq!(ledger.rejoins()[0].2, Some(Resume { epoch: 8, last_seq: 1 }));
}

fn diff(room: &str, count: u32, changes: &[(PresenceChange, u64, &str)]) -> PresenceDiff {
    PresenceDiff {
        room: room.into(),
        member_count: count,
        joins: 0,
        leaves: 0,
        changes: changes
            .iter()
            .map(|(change, id, name)| MemberChange {
                change: *change,
                member: Member { session_id: *id, name: (*name).into() },
            })
            .collect(),
    }
}

#[test]
fn presence_keeps_the_member_list() {
    let mut ledger = Ledger::default();
    ledger.want("lobby", "me");
    ledger.joined(&joined("lobby", 7, 1, 0, false));
    let names = |state: &RoomState| state.members.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    let arrivals = diff("lobby", 3, &[(PresenceChange::Joined, 9, "Ada"), (PresenceChange::Joined, 4, "Bo")]);
    assert_eq!(ledger.presence(&arrivals).map(names), Some(vec!["me".into(), "Bo".into(), "Ada".into()]));
    let departure = diff("lobby", 2, &[(PresenceChange::Disconnected, 9, "Ada")]);
    assert_eq!(ledger.presence(&departure).map(names), Some(vec!["me".into(), "Bo".into()]));
    assert_eq!(ledger.room("lobby").map(|r| r.member_count), Some(2));
    ledger.forget("lobby");
    assert!(ledger.rejoins().is_empty());
}

#[test]
fn a_large_room_counts_and_pages_its_members() {
    let mut ledger = Ledger::default();
    ledger.want("hall", "me");
    let mut answer = joined("hall", 7, 1, 0, false);
    answer.member_count = 250;
    ledger.joined(&answer);
    assert_eq!(ledger.room("hall").and_then(|r| r.next_after), Some(1), "more to fetch after the first page");
    // A counts-only diff changes the count, not the known names.
    ledger.presence(&diff("hall", 260, &[]));
    assert_eq!(ledger.room("hall").map(|r| (r.member_count, r.members.len())), Some((260, 1)));
    let page = MembersPage {
        request_id: 2,
        room: "hall".into(),
        member_count: 260,
        members: (2..=101).map(|id| Member { session_id: id, name: format!("m{id}") }).collect(),
        next_after: Some(101),
    };
    let state = ledger.page(&page).expect("joined");
    assert_eq!((state.members.len(), state.next_after), (101, Some(101)));
    let last = MembersPage { members: Vec::new(), next_after: None, ..page };
    assert_eq!(ledger.page(&last).map(|r| r.next_after), Some(None), "every page fetched");
}

#[test]
fn stream_frames_are_reassembled_across_chunks() {
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|n| encode(&ClientFrame { request_id: n, message: ClientMessage::Ping { nonce: u64::from(n) } }))
        .collect();
    let stream: Vec<u8> = frames.iter().flat_map(|f| prefixed(f)).collect();
    // Every split of the stream into two chunks yields the same frames.
    for cut in 0..=stream.len() {
        let mut buffer = StreamBuffer::default();
        let mut got = buffer.push(&stream[..cut], 1024).unwrap();
        got.extend(buffer.push(&stream[cut..], 1024).unwrap());
        assert_eq!(got, frames, "split at {cut}");
    }
    let first: ClientFrame = decode(&frames[1], 1024).unwrap();
    assert_eq!(first.request_id, 1);
}

#[test]
fn an_oversized_stream_frame_is_an_error() {
    let mut buffer = StreamBuffer::default();
    assert_eq!(buffer.push(&[0, 1, 0, 0], 1024), Err(DecodeError::TooLarge { len: 65536, max: 1024 }));
}
