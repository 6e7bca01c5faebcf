//! The client's one-thread channel: items in order, the end once every
//! sender is gone, and a sender told when nobody receives. These run
//! natively and in headless browsers.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures::Stream;
use wtchat_client::channel::{TryRecvError, unbounded};

fn poll<S: Stream + Unpin>(stream: &mut S) -> Poll<Option<S::Item>> {
    Pin::new(stream).poll_next(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn items_arrive_in_order_and_the_stream_ends_with_its_last_sender() {
    let (sender, mut receiver) = unbounded();
    let other = sender.clone();
    assert_eq!(poll(&mut receiver), Poll::Pending);
    sender.unbounded_send(1).unwrap();
    other.unbounded_send(2).unwrap();
    assert_eq!(receiver.try_recv(), Ok(1));
    drop(sender);
    assert_eq!(poll(&mut receiver), Poll::Ready(Some(2)));
    assert_eq!(receiver.try_recv(), Err(TryRecvError::Empty), "one sender is left");
    drop(other);
    assert_eq!(receiver.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(poll(&mut receiver), Poll::Ready(None));
}

#[test]
fn a_sender_gets_its_item_back_once_nobody_receives() {
    let (sender, receiver) = unbounded();
    drop(receiver);
    assert_eq!(sender.unbounded_send("late"), Err("late"));
}
