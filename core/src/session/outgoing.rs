//! A member's message that passed every check, on its way to its room:
//! numbered by the room when the server is alone, by the broker otherwise,
//! and announced to the application's backend once numbered. A message
//! with an id is numbered once however often it is sent (within the
//! receipt's window), and its sender is told the number.

use std::sync::Arc;

use crate::announcer::Sent;
use crate::broker::{BrokerUnavailable, Publish, PublishReply, published};
use crate::frame::Frame;
use crate::hub::Hub;
use crate::receipts::Receipt;
use crate::room::{Keyed, Room, RoomMember};

/// The message, held while it waits (for moderation).
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The room, held directly so that publishing needs no registry look-up.
    pub(crate) room: Arc<Room>,
    /// The sender as the room knows it (its outbox is the session's).
    pub(crate) member: RoomMember,
    /// What it says.
    pub(crate) submission: Submission,
}

/// What a member sent, checked.
#[derive(Debug)]
pub(crate) struct Submission {
    /// The publish request's id, for the answer or an error the sender
    /// must hear.
    pub(crate) request_id: u32,
    /// When the server accepted it.
    pub(crate) sent_at_ms: u64,
    /// The text.
    pub(crate) body: String,
    /// What it is remembered under, when it carries a message id.
    pub(crate) receipt: Option<Receipt>,
}

impl Outgoing {
    /// Numbers and delivers the message.
    pub(crate) fn send(self, hub: &Hub) {
        deliver(hub, &self.room, &self.member, self.submission);
    }
}

/// Numbers and delivers a message `member` sent to `room`.
pub(crate) fn deliver(hub: &Hub, room: &Arc<Room>, member: &RoomMember, submission: Submission) {
    let Submission { request_id, sent_at_ms, body, receipt } = submission;
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
        let (sequenced, repeated) =
            match room.publish(receipt.as_ref(), member.describe(), body, sent_at_ms, witness) {
                Keyed::Published(sequenced, recipients) => {
                    hub.metrics().published(recipients, started.elapsed());
                    (sequenced, false)
                }
                Keyed::Repeated(sequenced) => (sequenced, true),
            };
        // Only a message with an id is answered; the others see their own
        // message arrive like everyone else's.
        if receipt.is_some() {
            member.outbox.push(&Frame::encode(&published(request_id, room.name(), sequenced, repeated)));
        }
        return;
    };
    let sender = member.event_member();
    let announce = announcer.map(|announcer| {
        announcer.message_to_announce(room.name(), &Sent { sender: &sender, user, sent_at_ms, body: &body })
    });
    let acknowledge = receipt.is_some().then(|| room.name().clone());
    let publish = Publish {
        sender,
        sent_at_ms,
        body,
        receipt,
        reply: PublishReply::Session { request_id, outbox: member.outbox.clone(), acknowledge },
        announce,
    };
    // Not the client's fault, so not charged to its error budget.
    if let Err(BrokerUnavailable) = broker.publish(room.name(), publish) {
        member.outbox.push(&Frame::encode(&BrokerUnavailable::publish_error(request_id)));
    }
}
