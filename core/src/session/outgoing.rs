//! A member's message that passed every check, on its way to its room:
//! numbered by the room when the server is alone, by the broker otherwise,
//! and announced to the application's backend once numbered.

use std::sync::Arc;

use crate::announcer::Sent;
use crate::broker::{BrokerUnavailable, Publish, PublishReply};
use crate::frame::Frame;
use crate::hub::Hub;
use crate::room::{Room, RoomMember};

/// The message, held while it waits (for moderation).
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The room, held directly so that publishing needs no registry look-up.
    pub(crate) room: Arc<Room>,
    /// The sender as the room knows it (its outbox is the session's).
    pub(crate) member: RoomMember,
    /// The publish request's id, for an error the sender must hear.
    pub(crate) request_id: u32,
    /// When the server accepted it.
    pub(crate) sent_at_ms: u64,
    /// The text.
    pub(crate) body: String,
}

impl Outgoing {
    /// Numbers and delivers the message.
    pub(crate) fn send(self, hub: &Hub) {
        let Self { room, member, request_id, sent_at_ms, body } = self;
        deliver(hub, &room, &member, request_id, sent_at_ms, body);
    }
}

/// Numbers and delivers a message `member` sent to `room`.
pub(crate) fn deliver(
    hub: &Hub,
    room: &Arc<Room>,
    member: &RoomMember,
    request_id: u32,
    sent_at_ms: u64,
    body: String,
) {
    let announcer = hub.announcer();
    let user = member.user.as_ref();
    let Some(broker) = hub.broker() else {
        let started = std::time::Instant::now();
        let witness = |sequenced, body: &str| {
            if let Some(announcer) = announcer {
                let sender = member.event_member();
                announcer.message(room.name(), sequenced, &Sent { sender: &sender, user, sent_at_ms, body });
            }
        };
        let (_, recipients) = room.publish(member.describe(), body, sent_at_ms, witness);
        hub.metrics().published(recipients, started.elapsed());
        return;
    };
    let sender = member.event_member();
    let announce = announcer.map(|announcer| {
        announcer.message_to_announce(room.name(), &Sent { sender: &sender, user, sent_at_ms, body: &body })
    });
    let publish = Publish {
        sender,
        sent_at_ms,
        body,
        receipt: None,
        reply: PublishReply::Session { request_id, outbox: member.outbox.clone() },
        announce,
    };
    // Not the client's fault, so not charged to its error budget.
    if let Err(BrokerUnavailable) = broker.publish(room.name(), publish) {
        member.outbox.push(&Frame::encode(&BrokerUnavailable::publish_error(request_id)));
    }
}
