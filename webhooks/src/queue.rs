//! One receiver's queue of encoded events, bounded in bytes.
//!
//! Events wait here from the moment the core announces them until their
//! receiver acknowledged them: the batch being delivered stays at the head
//! (and in the depth) until then, so a retry sends it again and nothing
//! behind it overtakes it. When the queue is full a new event is dropped,
//! counted, and the count goes out in the next delivery (`dropped`), so a
//! receiver always knows that it missed something.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;

/// The queue.
#[derive(Debug)]
pub struct Queue {
    capacity_bytes: usize,
    state: Mutex<State>,
    /// Signalled when an event arrives in an empty queue, and when the
    /// queue empties.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    events: VecDeque<Bytes>,
    bytes: usize,
    /// Dropped and not yet reported to the receiver.
    unreported: u64,
    /// Dropped since the server started.
    dropped: u64,
}

/// The head of the queue, to deliver.
#[derive(Debug)]
pub struct Batch {
    /// The events, oldest first.
    pub events: Vec<Bytes>,
    /// How many were dropped before them and not yet reported.
    pub dropped: u64,
}

/// What the queue holds, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    /// Events waiting, the batch in delivery included.
    pub events: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Events dropped since the server started because the queue was full.
    pub dropped: u64,
}

impl Queue {
    /// An empty queue holding at most `capacity_bytes` of events.
    pub fn new(capacity_bytes: usize) -> Self {
        Self { capacity_bytes, state: Mutex::default(), changed: Notify::new() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change below leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an event; returns `false` when it was dropped for want of
    /// room.
    pub fn push(&self, event: Bytes) -> bool {
        let mut state = self.state();
        let was_idle = state.events.is_empty() && state.unreported == 0;
        let fits = state.bytes + event.len() <= self.capacity_bytes;
        if fits {
            state.bytes += event.len();
            state.events.push_back(event);
        } else {
            state.unreported += 1;
            state.dropped += 1;
        }
        drop(state);
        // Only the delivery of an idle queue waits for an event; waking it
        // on every event would cost every publish a lock more.
        if was_idle {
            self.changed.notify_waiters();
        }
        fits
    }

    /// The oldest events, at most `max_events` and about `max_bytes` (at
    /// least one), left in the queue until [`Queue::delivered`]; waits
    /// while there are none and nothing dropped to report.
    pub async fn head(&self, max_events: usize, max_bytes: usize) -> Batch {
        loop {
            let changed = self.changed.notified();
            {
                let state = self.state();
                if !state.events.is_empty() || state.unreported > 0 {
                    let mut bytes = 0;
                    let events = state
                        .events
                        .iter()
                        .take(max_events)
                        .take_while(|event| {
                            bytes += event.len();
                            bytes - event.len() == 0 || bytes <= max_bytes
                        })
                        .cloned()
                        .collect();
                    return Batch { events, dropped: state.unreported };
                }
            }
            changed.await;
        }
    }

    /// The receiver acknowledged `batch`: it leaves the queue.
    pub fn delivered(&self, batch: &Batch) {
        let mut state = self.state();
        for _ in &batch.events {
            if let Some(event) = state.events.pop_front() {
                state.bytes -= event.len();
            }
        }
        state.unreported -= batch.dropped.min(state.unreported);
        let empty = state.events.is_empty() && state.unreported == 0;
        drop(state);
        if empty {
            self.changed.notify_waiters();
        }
    }

    /// Waits until nothing is waiting (events or a drop to report).
    pub async fn emptied(&self) {
        loop {
            let changed = self.changed.notified();
            {
                let state = self.state();
                if state.events.is_empty() && state.unreported == 0 {
                    return;
                }
            }
            changed.await;
        }
    }

    /// What the queue holds now.
    pub fn depth(&self) -> Depth {
        let state = self.state();
        Depth { events: state.events.len(), bytes: state.bytes, dropped: state.dropped }
    }
}

#[cfg(test)]
mod tests {
    use futures_util_free::now;

    use super::*;

    /// Polls a future once, as the tests need no runtime.
    mod futures_util_free {
        pub fn now<F: std::future::Future>(future: F) -> Option<F::Output> {
            let mut future = std::pin::pin!(future);
            let waker = std::task::Waker::noop();
            match future.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            }
        }
    }

    fn event(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    #[test]
    fn a_full_queue_drops_new_events_and_reports_them_once_with_the_next_batch() {
        let queue = Queue::new(10);
        assert!(queue.push(event("aaaa")));
        assert!(queue.push(event("bbbb")));
        assert!(!queue.push(event("cccc")), "12 bytes would not fit in 10");
        assert!(queue.push(event("dd")));
        assert_eq!(queue.depth(), Depth { events: 3, bytes: 10, dropped: 1 });

        let batch = now(queue.head(2, 1 << 20)).unwrap();
        assert_eq!(batch.events, vec![event("aaaa"), event("bbbb")]);
        assert_eq!(batch.dropped, 1);
        let again = now(queue.head(2, 1 << 20)).unwrap();
        assert_eq!(again.events, batch.events, "a batch stays at the head until delivered");
        queue.delivered(&batch);
        let rest = now(queue.head(10, 1 << 20)).unwrap();
        assert_eq!((rest.events, rest.dropped), (vec![event("dd")], 0), "a drop is reported once");
        assert_eq!(queue.depth(), Depth { events: 1, bytes: 2, dropped: 1 });
    }

    #[test]
    fn a_batch_keeps_to_its_bytes_but_always_takes_one_event() {
        let queue = Queue::new(1 << 20);
        for text in ["aaaa", "bbbb", "cccc"] {
            queue.push(event(text));
        }
        assert_eq!(now(queue.head(10, 8)).unwrap().events.len(), 2);
        assert_eq!(now(queue.head(10, 2)).unwrap().events.len(), 1, "one event larger than the bound");
    }

    #[test]
    fn an_empty_queue_waits_but_a_drop_alone_is_reported() {
        let queue = Queue::new(2);
        assert!(now(queue.head(10, 10)).is_none());
        assert!(now(queue.emptied()).is_some());
        queue.push(event("too long"));
        let batch = now(queue.head(10, 10)).unwrap();
        assert_eq!((batch.events.len(), batch.dropped), (0, 1));
        assert!(now(queue.emptied()).is_none());
        queue.delivered(&batch);
        assert!(now(queue.emptied()).is_some());
    }
}
