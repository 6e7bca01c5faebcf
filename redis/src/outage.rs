//! A lost link to Redis, and the grace it is given before the sessions
//! are closed.
//!
//! A blip (a Redis paused for a few seconds, a failover, a connection
//! killed) must not send every user of the server back through the door at
//! once. While the link is lost the server orders nothing: publishes are
//! refused with `BROKER_UNAVAILABLE`, and joins and new sessions too. What
//! sessions did meanwhile that Redis must know of (members leaving, the
//! backend's disconnects) is carried over to the next link. A link back
//! within the grace resyncs every room from Redis (`Room::synced` delivers
//! what the members missed, or closes them with the resume path when the
//! history no longer covers it); only an outage past the grace closes every
//! session, as a server without a grace would at once.

use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use crate::command::{Command, discard};

/// The state of a lost link.
#[derive(Debug)]
pub(crate) struct Outage {
    /// When the link was lost.
    since: Instant,
    /// Whether the grace ran out and the sessions were closed.
    sessions_closed: bool,
    /// What to run first on the next link.
    carried: Vec<Command>,
}

impl Outage {
    /// A link lost now, its sessions open.
    pub(crate) fn begun() -> Self {
        Self { since: Instant::now(), sessions_closed: false, carried: Vec::new() }
    }

    /// Whether the sessions were closed, so that the next link must remove
    /// what they left in Redis.
    pub(crate) fn sessions_closed(&self) -> bool {
        self.sessions_closed
    }

    /// Whether the grace has run out with the sessions still open.
    pub(crate) fn grace_over(&self, grace: Duration) -> bool {
        !self.sessions_closed && self.since.elapsed() >= grace
    }

    /// The sessions were closed: nothing of theirs is carried any more (the
    /// next link's heartbeat removes what they left).
    pub(crate) fn close_sessions(&mut self, queued_publishes: &AtomicUsize) {
        self.sessions_closed = true;
        discard(queued_publishes, self.carried.drain(..));
    }

    /// Takes commands that could not run: publishes and reads are answered
    /// with `BROKER_UNAVAILABLE` (nothing is accepted that cannot be
    /// numbered), typing is dropped, subscription changes are dropped (the
    /// next link subscribes to every open room afresh), and presence
    /// changes and disconnects are kept for the next link while the
    /// sessions are open.
    pub(crate) fn carry(
        &mut self,
        commands: impl IntoIterator<Item = Command>,
        queued_publishes: &AtomicUsize,
    ) {
        for command in commands {
            match command {
                Command::Presence(..) | Command::Disconnect(..) if !self.sessions_closed => {
                    self.carried.push(command);
                }
                other => discard(queued_publishes, [other]),
            }
        }
    }

    /// What the next link runs first.
    pub(crate) fn into_carried(self) -> Vec<Command> {
        self.carried
    }
}

/// How long to wait before trying to link again: briefly within the grace,
/// so that the link is back soon after Redis is, and longer once the
/// sessions are closed anyway.
pub(crate) fn retry_delay(outage: Option<&Outage>) -> Duration {
    let base = if outage.is_some_and(|outage| !outage.sessions_closed) { 100 } else { 500 };
    Duration::from_millis(base + fastrand::u64(0..base))
}
