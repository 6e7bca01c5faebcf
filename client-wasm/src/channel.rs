//! A channel for the page's one thread: a transport's callbacks push its
//! events, the driver awaits them in order. futures' channel does the same
//! for any number of threads, with atomics and a lock-free queue, at a few
//! kilobytes of wasm every visitor downloads.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures::Stream;
use futures::stream::FusedStream;

struct Shared<T> {
    queue: VecDeque<T>,
    /// The receiver waiting for the next item, if it waits.
    waker: Option<Waker>,
    /// Live senders: none left, and the queue drained, is the end.
    senders: usize,
    /// Whether anyone still receives.
    receiving: bool,
}

/// The sending end; clones send into the same channel.
pub struct Sender<T>(Rc<RefCell<Shared<T>>>);

/// The receiving end: a stream that ends once every sender is gone and
/// everything sent was taken.
pub struct Receiver<T> {
    shared: Rc<RefCell<Shared<T>>>,
    /// Set once the stream said it ended.
    ended: bool,
}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing waits now.
    Empty,
    /// Nothing waits and nothing more will come.
    Closed,
}

/// A channel with no bound: a transport's events are few, and each is
/// taken as soon as the driver runs.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let shared =
        Rc::new(RefCell::new(Shared { queue: VecDeque::new(), waker: None, senders: 1, receiving: true }));
    (Sender(shared.clone()), Receiver { shared, ended: false })
}

impl<T> Sender<T> {
    /// Sends `value`, or hands it back when nobody receives any more.
    pub fn unbounded_send(&self, value: T) -> Result<(), T> {
        let waker = {
            let mut shared = self.0.borrow_mut();
            if !shared.receiving {
                return Err(value);
            }
            shared.queue.push_back(value);
            shared.waker.take()
        };
        // Woken with the channel released, in case the waker runs the
        // receiver at once.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.borrow_mut().senders += 1;
        Self(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut shared = self.0.borrow_mut();
            shared.senders -= 1;
            if shared.senders == 0 { shared.waker.take() } else { None }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item if one waits.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut shared = self.shared.borrow_mut();
        match shared.queue.pop_front() {
            Some(value) => Ok(value),
            None if shared.senders == 0 => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<T>> {
        let mut shared = self.shared.borrow_mut();
        match shared.queue.pop_front() {
            Some(value) => Poll::Ready(Some(value)),
            None if shared.senders == 0 => {
                drop(shared);
                self.ended = true;
                Poll::Ready(None)
            }
            None => {
                shared.waker = Some(context.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// `select_biased!` skips a stream that said it ended.
impl<T> FusedStream for Receiver<T> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        shared.receiving = false;
        shared.queue.clear();
    }
}
