//! What sessions ask of Redis, queued for the link in order, and what
//! becomes of those that cannot be run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::oneshot;
use wtchat_core::announcer::PresenceToAnnounce;
use wtchat_core::broker::{BrokerUnavailable, Disconnect, Publish, RoomCounts, RoomHandle};
use wtchat_core::room_event::{EventMember, Snapshot};
use wtchat_protocol::PresenceChange;

/// What sessions ask of Redis, in order.
#[derive(Debug)]
pub(crate) enum Command {
    /// Subscribe to a room and start it from a snapshot.
    Open(RoomHandle),
    /// Unsubscribe from a room this server no longer has members in.
    Close(Arc<str>),
    /// Publish a message.
    Publish(Arc<str>, Publish),
    /// Record a member's arrival or departure, and announce it with the
    /// interval's other changes.
    Presence(Arc<str>, EventMember, PresenceChange, Option<PresenceToAnnounce>),
    /// Announce that a member is typing.
    Typing(Arc<str>, EventMember),
    /// Tell every other server to close these sessions.
    Disconnect(Disconnect, Option<String>),
    /// Read a room without opening it, after the writes before it.
    Peek(Arc<str>, oneshot::Sender<Result<Option<Snapshot>, BrokerUnavailable>>),
    /// Read a page of the rooms with members on any server: after this
    /// name, at most this many.
    Rooms(String, usize, oneshot::Sender<Result<RoomCounts, BrokerUnavailable>>),
}

/// Drops commands that cannot be run: each publish among them is answered
/// with `BROKER_UNAVAILABLE` and leaves the count of queued publishes.
pub(crate) fn discard(queued_publishes: &AtomicUsize, commands: impl IntoIterator<Item = Command>) {
    for command in commands {
        match command {
            Command::Publish(_, publish) => {
                queued_publishes.fetch_sub(1, Ordering::Relaxed);
                publish.reply.refused();
            }
            Command::Peek(_, reply) => {
                let _ = reply.send(Err(BrokerUnavailable));
            }
            Command::Rooms(_, _, reply) => {
                let _ = reply.send(Err(BrokerUnavailable));
            }
            _ => {}
        }
    }
}
