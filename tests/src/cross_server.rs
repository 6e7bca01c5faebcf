//! What the scale-out tests check members on different servers see: one
//! order per room, and after a blip of the broker (a paused Redis, killed
//! connections, a failover in a Redis Cluster), with a publisher that kept
//! sending through it, every accepted message exactly once, in one order.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use wtchat_protocol::{ChatMessage, ErrorCode, PresenceChange, Resume, ServerMessage};

use crate::binary::Binary;
use crate::{Client, Wire};

/// What a member received until the message `last`: the numbers and
/// bodies, failing on a closing notice.
pub async fn until_body<W: Wire>(client: &mut Client<W>, last: &str) -> Result<Vec<(u64, String)>> {
    let mut seen = Vec::new();
    loop {
        match client.next_message().await? {
            ServerMessage::Message(message) => {
                let done = message.body == last;
                seen.push((message.seq, message.body));
                if done {
                    return Ok(seen);
                }
            }
            ServerMessage::Closing(closing) => bail!("a session closed in the blip: {closing:?}"),
            _ => {}
        }
    }
}

/// Publishes a message every 100 ms for `count` messages while `blip`
/// runs beside them; once both servers are linked again, one last message
/// ("end"). Returns what the publisher was told was refused (by body), and
/// what it heard of the room.
pub async fn publish_through<W: Wire>(
    publisher: &mut Client<W>,
    servers: &[Binary],
    count: usize,
    blip: impl Future<Output = Result<()>>,
) -> Result<(HashSet<String>, Vec<(u64, String)>)> {
    let sending = async {
        let mut bodies = std::collections::HashMap::new();
        for n in 0..count {
            let body = format!("p{n}");
            bodies.insert(publisher.publish("hall", &body).await?, body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(bodies)
    };
    let (bodies, ()) = tokio::try_join!(sending, blip)?;
    for server in servers {
        server.wait_health(200).await?;
    }
    publisher.publish("hall", "end").await?;
    let mut refused = HashSet::new();
    let mut heard = Vec::new();
    loop {
        match publisher.next_message().await? {
            ServerMessage::Error(error) => {
                ensure!(error.code == ErrorCode::BROKER_UNAVAILABLE, "{error:?}");
                let body = error.request_id.and_then(|id| bodies.get(&id)).context("an unknown request")?;
                refused.insert(body.clone());
            }
            ServerMessage::Message(message) => {
                let done = message.body == "end";
                heard.push((message.seq, message.body));
                if done {
                    return Ok((refused, heard));
                }
            }
            ServerMessage::Closing(closing) => bail!("the publisher was closed: {closing:?}"),
            _ => {}
        }
    }
}

/// What every member must hold after a blip: the same messages in one
/// order, numbered without a gap or a repeat, every accepted one among
/// them. A publish refused when the link failed under it may still have
/// reached Redis (its answer was lost, not the command), so a refused one
/// may appear too, once.
pub fn check(members: &[Vec<(u64, String)>], sent: usize, refused: &HashSet<String>) -> Result<()> {
    let first = &members[0];
    for other in members {
        ensure!(other == first, "members disagree:\n{first:?}\n{other:?}");
    }
    let seqs: Vec<u64> = first.iter().map(|(seq, _)| *seq).collect();
    let start = seqs[0];
    ensure!(
        seqs == (start..start + seqs.len() as u64).collect::<Vec<_>>(),
        "numbers with a gap or a repeat: {seqs:?}"
    );
    let bodies: HashSet<&String> = first.iter().map(|(_, body)| body).collect();
    ensure!(bodies.len() == first.len(), "a message twice");
    for n in 0..sent {
        let body = format!("p{n}");
        ensure!(bodies.contains(&body) || refused.contains(&body), "{body} was accepted and lost");
    }
    Ok(())
}

/// Two members on different servers, each in every one of `rooms`, publish
/// `rounds` messages each to every room; both must see every room's
/// messages in one order, numbered from 1 without a gap.
pub async fn both_see_one_order<A: Wire, B: Wire>(
    ann: &mut Client<A>,
    bob: &mut Client<B>,
    rooms: &[String],
    rounds: usize,
) -> Result<()> {
    for round in 0..rounds {
        for room in rooms {
            ann.publish(room, &format!("ann {round}")).await?;
            bob.publish(room, &format!("bob {round}")).await?;
        }
    }
    let order = |messages: Vec<ChatMessage>| {
        let mut by_room: Vec<(String, u64, String)> =
            messages.into_iter().map(|m| (m.room, m.seq, m.body)).collect();
        by_room.sort();
        by_room
    };
    let each = 2 * rounds * rooms.len();
    let (seen_by_ann, seen_by_bob) = tokio::try_join!(ann.chat(each), bob.chat(each))?;
    let (seen_by_ann, seen_by_bob) = (order(seen_by_ann), order(seen_by_bob));
    ensure!(seen_by_ann == seen_by_bob, "one order per room on both servers");
    for room in rooms {
        let seqs: Vec<u64> = seen_by_ann.iter().filter(|m| &m.0 == room).map(|m| m.1).collect();
        ensure!(seqs == (1..=2 * rounds as u64).collect::<Vec<_>>(), "{room}: {seqs:?}");
    }
    Ok(())
}

/// `bob` sends three messages to `room` that a member gone after `resume`
/// missed; that member, back on `server` (any server) resuming from there,
/// gets exactly those three, numbered on from `resume`, with no gap told.
pub async fn resuming_gets_what_was_missed<B: Wire>(
    bob: &mut Client<B>,
    server: &Binary,
    room: &str,
    resume: Resume,
) -> Result<()> {
    for n in 0..3 {
        bob.publish(room, &format!("missed {n}")).await?;
    }
    bob.chat(3).await?;
    let mut back = server.ws().await?;
    let (rejoined, history) = back.join_from(room, "Ann", Some(resume)).await?;
    ensure!(!rejoined.history.gap && rejoined.epoch == resume.epoch, "{rejoined:?}");
    let missed: Vec<(u64, String)> = history.into_iter().map(|m| (m.seq, m.body)).collect();
    let expected: Vec<(u64, String)> =
        (0..3).map(|n| (resume.last_seq + 1 + n, format!("missed {n}"))).collect();
    ensure!(missed == expected, "{missed:?}");
    Ok(())
}

/// Ann and Bob, on different servers, join every one of `rooms`, Ann
/// seeing Bob arrive in each; returns each room's epoch.
pub async fn both_join<A: Wire, B: Wire>(
    ann: &mut Client<A>,
    bob: &mut Client<B>,
    rooms: &[String],
) -> Result<Vec<u64>> {
    let mut epochs = Vec::new();
    for room in rooms {
        epochs.push(ann.join(room, "Ann").await?.0.epoch);
        bob.join(room, "Bob").await?;
        ann.until_presence(|change| {
            (change.member.name == "Bob" && change.change == PresenceChange::Joined).then_some(())
        })
        .await?;
    }
    Ok(epochs)
}
