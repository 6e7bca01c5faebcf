//! One session's messages under moderation, kept in the order they were
//! sent.
//!
//! Verdicts may come back in any order (several reviews run at once); each
//! message takes a ticket when it is sent, and what its verdict decides
//! (publish, or tell the sender it was refused) runs only once every
//! earlier ticket's has, so that a member's messages reach the room in the
//! order the member sent them.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// What a verdict decided, waiting for its turn.
type Decided = Box<dyn FnOnce() + Send>;

/// The line.
#[derive(Default)]
pub struct ReviewLine {
    state: Mutex<LineState>,
}

#[derive(Default)]
struct LineState {
    /// The next ticket to hand out.
    issued: u64,
    /// The ticket whose decision runs next.
    next: u64,
    /// Decisions that came before their turn.
    waiting: BTreeMap<u64, Decided>,
}

impl std::fmt::Debug for ReviewLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewLine").field("pending", &self.pending()).finish()
    }
}

impl ReviewLine {
    fn state(&self) -> MutexGuard<'_, LineState> {
        // A decision that panics leaves at worst its own ticket undone.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many messages are under review or waiting for their turn.
    pub fn pending(&self) -> usize {
        let state = self.state();
        usize::try_from(state.issued - state.next).unwrap_or(usize::MAX)
    }

    /// A ticket for the next message.
    pub fn ticket(&self) -> u64 {
        let mut state = self.state();
        state.issued += 1;
        state.issued - 1
    }

    /// Runs the decision of `ticket` in its turn, with every decision that
    /// was waiting for it. Decisions run under the line's lock, which is
    /// what keeps them in order; they take a room's lock at most, and no
    /// one holding a room's lock takes this one.
    pub fn decided(&self, ticket: u64, decision: Decided) {
        let mut state = self.state();
        state.waiting.insert(ticket, decision);
        loop {
            let next = state.next;
            let Some(decision) = state.waiting.remove(&next) else { break };
            state.next += 1;
            decision();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn decisions_run_in_ticket_order_whatever_order_they_come_in() {
        let line = ReviewLine::default();
        let ran = Arc::new(Mutex::new(Vec::new()));
        let tickets: Vec<u64> = (0..4).map(|_| line.ticket()).collect();
        assert_eq!(line.pending(), 4);
        let record = |n: u64| {
            let ran = ran.clone();
            Box::new(move || ran.lock().unwrap().push(n)) as Decided
        };
        line.decided(tickets[2], record(2));
        line.decided(tickets[1], record(1));
        assert!(ran.lock().unwrap().is_empty(), "the first is still under review");
        line.decided(tickets[0], record(0));
        assert_eq!(*ran.lock().unwrap(), [0, 1, 2]);
        assert_eq!(line.pending(), 1);
        line.decided(tickets[3], record(3));
        assert_eq!(*ran.lock().unwrap(), [0, 1, 2, 3]);
        assert_eq!(line.pending(), 0);
    }
}
