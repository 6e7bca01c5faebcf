//! Consecutive writes to Redis, sent as one pipeline, and the answers to the
//! publishes among them.
//!
//! The link gathers what sessions asked for into one pipeline per round
//! trip; only a subscription (which must follow the writes before it) cuts
//! a pipeline short. A publish that Redis refuses, or that a failed link
//! never sent, is answered with `BROKER_UNAVAILABLE` so that its sender
//! knows, and leaves the count of queued publishes either way. A member's
//! change, once recorded in its room, is followed by the room's change to
//! the list of rooms (`listing.lua`), which needs the room's answer and
//! another slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::Value;
use redis::aio::ConnectionLike;
use wtchat_core::announcer::{MessageToAnnounce, PresenceToAnnounce};
use wtchat_core::broker::{PublishReply, Sequenced};

use crate::scripts::{Headcount, ListingScript, Scripts};

/// Writes waiting to go out together.
#[derive(Default)]
pub(crate) struct Pipeline {
    commands: redis::Pipeline,
    count: usize,
    /// `(index in the pipeline, who hears of it)` of each write whose
    /// answer someone waits for.
    answers: Vec<(usize, Answer)>,
}

/// Who waits for a write's answer.
pub(crate) enum Answer {
    /// A publish's sender, and what the backend is told once it is
    /// numbered.
    Publish(PublishReply, Option<MessageToAnnounce>),
    /// A member's change in a room, to list and (when the backend hears of
    /// such changes) to announce once it is recorded.
    Presence(Arc<str>, Option<PresenceToAnnounce>),
}

impl Pipeline {
    /// Adds a write, and who waits for its answer.
    pub(crate) fn push(&mut self, command: redis::Cmd, answer: Option<Answer>) {
        if let Some(answer) = answer {
            self.answers.push((self.count, answer));
        }
        self.commands.add_command(command);
        self.count += 1;
    }

    fn publishes(&self) -> usize {
        self.answers.iter().filter(|(_, answer)| matches!(answer, Answer::Publish(..))).count()
    }

    /// How many writes wait.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.count
    }

    /// Sends the writes. A failed connection fails the link (and answers
    /// every publish); a command Redis refuses (out of memory, say) fails
    /// only itself.
    pub(crate) async fn flush(
        &mut self,
        connection: &mut impl ConnectionLike,
        queued_publishes: &AtomicUsize,
        scripts: &Scripts,
    ) -> redis::RedisResult<()> {
        if self.count == 0 {
            return Ok(());
        }
        let sent = std::mem::take(self);
        queued_publishes.fetch_sub(sent.publishes(), Ordering::Relaxed);
        match connection.req_packed_commands(&sent.commands, 0, sent.count).await {
            Ok(replies) => {
                let listings = sent.settle(&replies);
                list(listings, connection, scripts).await
            }
            Err(error) => {
                // A change never recorded is not announced: its session
                // closes with the link, and the next heartbeat removes what
                // it left.
                for (_, answer) in sent.answers {
                    if let Answer::Publish(reply, _) = answer {
                        reply.refused();
                    }
                }
                Err(error)
            }
        }
    }

    /// Answers each publish (its number and epoch, or `BROKER_UNAVAILABLE`
    /// when Redis refused it) and announces what was recorded, in the
    /// pipeline's order; returns the rooms' changes to the list of rooms.
    fn settle(self, replies: &[Value]) -> Vec<ListingScript> {
        let mut listings = Vec::new();
        for reply in replies {
            if let Value::ServerError(error) = reply {
                tracing::warn!(?error, "Redis refused a command");
            }
        }
        for (index, answer) in self.answers {
            let reply = replies.get(index);
            match answer {
                Answer::Publish(publish, announce) => {
                    match reply.map(redis::from_redis_value::<(u64, u64, u8)>) {
                        Some(Ok((epoch, seq, repeated))) => {
                            let sequenced = Sequenced { seq, epoch };
                            let repeated = repeated == 1;
                            publish.sequenced(sequenced, repeated);
                            // The first publish announced it.
                            if let Some(announce) = announce.filter(|_| !repeated) {
                                announce.sequenced(sequenced);
                            }
                        }
                        _ => publish.refused(),
                    }
                }
                Answer::Presence(room, announce) => {
                    if let Some(Ok(headcount)) = reply.map(redis::from_redis_value::<Headcount>) {
                        if let Some(announce) = announce {
                            announce.recorded(headcount.0);
                        }
                        listings.push(ListingScript { room, headcount });
                    }
                }
            }
        }
        listings
    }
}

/// Sends rooms' changes to the list of rooms, as one pipeline.
pub(crate) async fn list(
    listings: Vec<ListingScript>,
    connection: &mut impl ConnectionLike,
    scripts: &Scripts,
) -> redis::RedisResult<()> {
    if listings.is_empty() {
        return Ok(());
    }
    let mut pipeline = redis::pipe();
    for listing in &listings {
        pipeline.add_command(listing.command(scripts));
    }
    let replies = connection.req_packed_commands(&pipeline, 0, listings.len()).await?;
    for reply in replies {
        if let Value::ServerError(error) = reply {
            tracing::warn!(?error, "Redis refused a change to the list of rooms");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wtchat_core::outbox::Outbox;
    use wtchat_protocol::{ErrorCode, ServerMessage};

    use super::*;

    fn outbox() -> Arc<Outbox> {
        Arc::new(Outbox::new(1 << 16))
    }

    /// What was queued for a sender.
    fn answers(outbox: &Outbox) -> Vec<ServerMessage> {
        let mut batch = Vec::new();
        if outbox.queued_bytes() > 0 {
            let _ = futures_util::FutureExt::now_or_never(outbox.next(&mut batch));
        }
        batch.iter().map(|frame| wtchat_protocol::decode(&frame.body(), usize::MAX).unwrap()).collect()
    }

    /// The error codes queued for a sender, by request.
    fn refusals(outbox: &Outbox) -> Vec<(Option<u32>, ErrorCode)> {
        answers(outbox)
            .into_iter()
            .map(|message| match message {
                ServerMessage::Error(error) => (error.request_id, error.code),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_refused_publish_answers_its_own_sender_only() {
        let (ann, bob) = (outbox(), outbox());
        let mut pipeline = Pipeline::default();
        pipeline.push(redis::cmd("PING"), None);
        let session = |request_id, outbox: &Arc<Outbox>| PublishReply::Session {
            request_id,
            outbox: outbox.clone(),
            acknowledge: None,
        };
        pipeline.push(redis::cmd("EVALSHA"), Some(Answer::Publish(session(7, &ann), None)));
        pipeline.push(redis::cmd("EVALSHA"), Some(Answer::Publish(session(8, &bob), None)));
        assert_eq!(pipeline.len(), 3);
        // What Redis answers a command it refuses, as it arrives on the wire.
        let refused =
            redis::parse_redis_value(b"-OOM command not allowed when used memory > 'maxmemory'\r\n").unwrap();
        assert!(matches!(refused, Value::ServerError(_)));
        let numbered = Value::Array(vec![Value::BulkString(b"4242".to_vec()), Value::Int(1), Value::Int(0)]);
        assert!(pipeline.settle(&[Value::Okay, numbered, refused]).is_empty());
        assert!(refusals(&ann).is_empty(), "a publish Redis took is not answered with an error");
        assert_eq!(refusals(&bob), vec![(Some(8), ErrorCode::BROKER_UNAVAILABLE)]);
    }

    #[test]
    fn a_publish_with_a_message_id_is_answered_with_its_number_and_whether_it_repeated_one() {
        let ann = outbox();
        let mut pipeline = Pipeline::default();
        for request_id in [3, 4] {
            let reply =
                PublishReply::Session { request_id, outbox: ann.clone(), acknowledge: Some("hall".into()) };
            pipeline.push(redis::cmd("EVALSHA"), Some(Answer::Publish(reply, None)));
        }
        let number = |repeated| Value::Array(vec![Value::Int(9), Value::Int(5), Value::Int(repeated)]);
        assert!(pipeline.settle(&[number(0), number(1)]).is_empty());
        let published = |request_id, repeated| {
            ServerMessage::Published(wtchat_protocol::Published {
                request_id,
                room: "hall".into(),
                epoch: 9,
                seq: 5,
                repeated,
            })
        };
        assert_eq!(answers(&ann), vec![published(3, false), published(4, true)]);
    }
}
