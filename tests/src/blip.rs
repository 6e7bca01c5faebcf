//! What a blip of the broker must leave behind, for the tests that cause
//! one (a paused Redis, killed connections, a failover in a Redis Cluster):
//! a publisher that keeps sending through it, and the check that every
//! member ends with every accepted message exactly once, in one order.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use wtchat_protocol::{ErrorCode, ServerMessage};

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
