//! A batch of commands as round trips to Redis: consecutive writes share
//! one pipeline, and a subscription change or a read, which must see the
//! writes before it, closes a round.

use crate::command::Command;

/// One round trip's worth of a batch: writes that go out as one pipeline,
/// then, if one follows them, a subscription change (`Open` or `Close`),
/// which must wait for the writes before it.
#[derive(Debug)]
pub(crate) struct Round {
    /// Publishes, presence and typing, in order.
    pub(crate) writes: Vec<Command>,
    /// The subscription change (or read) that ends the round.
    pub(crate) then: Option<Command>,
}

impl Round {
    pub(crate) fn into_commands(self) -> impl Iterator<Item = Command> {
        self.writes.into_iter().chain(self.then)
    }
}

/// Splits a batch into rounds, keeping its order: consecutive writes share
/// one pipeline, and each subscription change closes a round.
pub(crate) fn rounds(batch: impl IntoIterator<Item = Command>) -> Vec<Round> {
    let mut rounds = Vec::new();
    let mut writes = Vec::new();
    for command in batch {
        match command {
            Command::Open(_) | Command::Close(_) | Command::Peek(..) | Command::Rooms(..) => {
                rounds.push(Round { writes: std::mem::take(&mut writes), then: Some(command) });
            }
            write => writes.push(write),
        }
    }
    if !writes.is_empty() {
        rounds.push(Round { writes, then: None });
    }
    rounds
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wtchat_core::broker::RoomHandle;
    use wtchat_core::room_event::EventMember;
    use wtchat_protocol::PresenceChange;

    use std::sync::atomic::{AtomicUsize, Ordering};

    use wtchat_core::broker::{Publish, PublishReply};
    use wtchat_core::outbox::Outbox;
    use wtchat_protocol::{ErrorCode, ServerMessage};

    use super::rounds;
    use crate::command::{Command, discard};

    fn typing(room: &str) -> Command {
        Command::Typing(Arc::from(room), EventMember { session_id: 1, name: Arc::from("t") })
    }

    fn open(room: &str) -> Command {
        Command::Open(RoomHandle { name: Arc::from(room), incarnation: 1 })
    }

    /// A round as letters: `w` per write, then `O` or `C` for the change.
    fn shapes(batch: Vec<Command>) -> Vec<String> {
        rounds(batch)
            .into_iter()
            .map(|round| {
                let mut shape = "w".repeat(round.writes.len());
                shape.push_str(match round.then {
                    Some(Command::Open(_)) => "O",
                    Some(Command::Close(_)) => "C",
                    _ => "",
                });
                shape
            })
            .collect()
    }

    #[test]
    fn consecutive_writes_share_a_pipeline_and_subscriptions_wait_for_them() {
        let presence = Command::Presence(
            Arc::from("a"),
            EventMember { session_id: 2, name: Arc::from("p") },
            PresenceChange::Joined,
            None,
        );
        let batch =
            vec![typing("a"), presence, open("b"), typing("b"), Command::Close(Arc::from("a")), typing("c")];
        assert_eq!(shapes(batch), ["wwO", "wC", "w"]);
        assert_eq!(shapes(vec![open("a"), open("b")]), ["O", "O"], "each change is its own round");
        assert_eq!(
            shapes((0..512).map(|_| typing("a")).collect()),
            ["w".repeat(512)],
            "a full batch is one pipeline"
        );
        assert!(shapes(Vec::new()).is_empty());
    }

    #[test]
    fn rounds_keep_the_order_of_the_batch() {
        let batch: Vec<Command> = ["a", "b", "c", "d"].into_iter().map(typing).collect();
        let order: Vec<Arc<str>> = rounds(batch)
            .into_iter()
            .flat_map(|round| round.into_commands())
            .map(|command| match command {
                Command::Typing(room, _) => room,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"].map(Arc::from));
    }

    #[tokio::test]
    async fn abandoned_publishes_are_answered_and_uncounted() {
        let outbox = Arc::new(Outbox::new(1 << 16));
        let publish = |request_id| {
            Command::Publish(
                Arc::from("a"),
                Publish {
                    sender: EventMember { session_id: 1, name: Arc::from("t") },
                    sent_at_ms: 0,
                    body: "lost".into(),
                    receipt: None,
                    reply: PublishReply::Session { request_id, outbox: outbox.clone(), acknowledge: None },
                    announce: None,
                },
            )
        };
        let queued = AtomicUsize::new(5);
        // The link failed before these rounds ran.
        let unsent = rounds(vec![publish(1), open("b"), typing("b"), publish(2)]);
        discard(&queued, unsent.into_iter().flat_map(|round| round.into_commands()));
        assert_eq!(queued.load(Ordering::Relaxed), 3, "two publishes left the queue");
        let mut batch = Vec::new();
        outbox.next(&mut batch).await;
        let answers: Vec<_> = batch
            .iter()
            .map(|frame| match wtchat_protocol::decode(&frame.body(), usize::MAX).unwrap() {
                ServerMessage::Error(error) => (error.request_id, error.code),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(answers, [1, 2].map(|id| (Some(id), ErrorCode::BROKER_UNAVAILABLE)));
    }
}
