//! The client's outbox: order, pacing to the server's rate, sending again
//! under the same ids after a lost connection, and giving up what the
//! server no longer remembers. These run natively under `cargo test` and
//! in headless browsers under `cargo test --target wasm32-unknown-unknown`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use wtchat_client::outbox::{MAX_WAITING, Next, NotTaken, Outbox};
use wtchat_protocol::MESSAGE_ID_WINDOW_MS;

fn outbox(now: f64) -> Outbox {
    let mut outbox = Outbox::default();
    outbox.limits(10, 2, now);
    outbox
}

fn push(outbox: &mut Outbox, id: &str) {
    outbox.push(id.into(), "hall".into(), format!("text of {id}")).unwrap();
}

/// Sends whatever may go out now; the ids sent.
fn flush(outbox: &mut Outbox, now: f64, next_request: &mut u32) -> Vec<String> {
    let mut sent = Vec::new();
    while let Next::Send(waiting) = outbox.next(now) {
        outbox.sent(&waiting.id, *next_request, now);
        *next_request += 1;
        sent.push(waiting.id);
    }
    sent
}

#[test]
fn messages_go_out_in_order_at_the_servers_rate() {
    let mut outbox = outbox(1_000.0);
    for id in ["a", "b", "c"] {
        push(&mut outbox, id);
    }
    let mut request = 1;
    assert_eq!(flush(&mut outbox, 1_000.0, &mut request), ["a", "b"], "a burst of two");
    assert_eq!(outbox.next(1_000.0), Next::Wait(100.0), "then one per 100 ms");
    assert_eq!(flush(&mut outbox, 1_100.0, &mut request), ["c"]);
    assert_eq!(outbox.answered(2).map(|w| w.id), Some("b".into()));
    assert_eq!(outbox.waiting().map(|w| w.id.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(outbox.next(1_100.0), Next::Idle, "the rest are out, unanswered");
}

#[test]
fn a_lost_connection_sends_the_unanswered_again_in_order_under_the_same_ids() {
    let mut outbox = outbox(1_000.0);
    let mut request = 1;
    push(&mut outbox, "a");
    flush(&mut outbox, 1_000.0, &mut request);
    push(&mut outbox, "b");
    outbox.connection_lost();
    push(&mut outbox, "c");
    assert_eq!(flush(&mut outbox, 60_000.0, &mut request), ["a", "b"]);
    assert_eq!(flush(&mut outbox, 60_100.0, &mut request), ["c"]);
    // The server's own trouble: the message waits and goes out again.
    assert!(outbox.again(3));
    assert!(!outbox.again(99), "an unknown request is not one of these");
    assert_eq!(flush(&mut outbox, 61_000.0, &mut request), ["b"]);
}

#[test]
fn a_message_first_sent_longer_ago_than_the_servers_window_is_given_up() {
    let mut outbox = outbox(1_000.0);
    let mut request = 1;
    push(&mut outbox, "old");
    push(&mut outbox, "never sent");
    assert_eq!(flush(&mut outbox, 1_000.0, &mut request), ["old", "never sent"]);
    outbox.connection_lost();
    let late = 1_000.0 + MESSAGE_ID_WINDOW_MS as f64;
    assert!(matches!(outbox.next(late), Next::Unconfirmed(w) if w.id == "old"));
    assert!(matches!(outbox.next(late), Next::Unconfirmed(w) if w.id == "never sent"));
    // A message typed while offline has no window yet, however long ago.
    push(&mut outbox, "typed offline");
    assert_eq!(flush(&mut outbox, late * 10.0, &mut request), ["typed offline"]);
}

#[test]
fn the_outbox_is_bounded_and_a_left_room_takes_its_messages_along() {
    let mut outbox = outbox(1_000.0);
    for n in 0..MAX_WAITING {
        push(&mut outbox, &n.to_string());
    }
    assert_eq!(outbox.push("one more".into(), "hall".into(), "x".into()), Err(NotTaken::Full));
    outbox.push("elsewhere".into(), "other".into(), "x".into()).unwrap_err();
    assert_eq!(outbox.forget_room("hall").len(), MAX_WAITING);
    assert_eq!(outbox.waiting().count(), 0);
}

#[test]
fn an_id_already_waiting_is_the_same_message_and_is_not_taken_twice() {
    let mut outbox = outbox(1_000.0);
    push(&mut outbox, "a");
    assert_eq!(outbox.push("a".into(), "hall".into(), "again".into()), Err(NotTaken::AlreadyWaiting));
    let mut request = 1;
    assert_eq!(flush(&mut outbox, 1_000.0, &mut request), ["a"]);
    assert_eq!(outbox.next(1_000.0), Next::Idle, "one copy went out, and nothing waits");
}
