//! The Redis broker against a real `redis-server`: every Lua script runs and
//! what it writes is read back with the Rust side's own parsers (so that the
//! format has one definition that both sides are checked against), and the
//! link's task ends when its hub is dropped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures_util::StreamExt;
use redis::AsyncCommands;
use wtchat_core::receipts::Receipt;
use wtchat_core::room_event::{EventMember, RoomEvent, Snapshot};
use wtchat_protocol::PresenceChange;
use wtchat_redis::feed;
use wtchat_redis::keys::Keys;
use wtchat_redis::scripts::{
    Headcount, HeartbeatScript, ListingScript, PeekScript, PresenceScript, PublishScript, ReapScript,
    Scripts, SnapshotReply, SnapshotScript,
};
use wtchat_server::{Config, Server};
use wtchat_tests::redis::RedisServer;
use wtchat_tests::server::{PATIENCE, temp_dir};

/// A name and a body with everything the format must survive: spaces,
/// newlines, non-ASCII text, and bytes that look like a header.
const NAME: &str = "Zoë de la\nMer";
const BODY: &str = "m 1 2 3 4 5\nsecond line — ünïcode ✓";

#[tokio::test]
async fn every_script_writes_what_the_rust_side_reads() -> Result<()> {
    let redis = RedisServer::start()?;
    let client = redis::Client::open(redis.url())?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    // Under a prefix of its own, as an operator sharing a Redis sets it:
    // every key the scripts touch, and every one Rust reads, carries it.
    // And with an hour of retention rather than a week.
    let scripts = Scripts::new(Keys::new("other-app:chat:"), 3_600);
    let keys = scripts.keys.clone();
    for script in scripts.all() {
        script.prepare_invoke().load_async(&mut connection).await?;
    }
    let room = "team: one";
    let mut feed_of_room = client.get_async_pubsub().await?;
    feed_of_room.subscribe(keys.room_events(room)).await?;
    let mut events = feed_of_room.into_on_message();
    // The events of the feed's next message: one, or a batch's changes.
    let mut next_events = async || -> Result<Vec<RoomEvent>> {
        let message = tokio::time::timeout(PATIENCE, events.next()).await?.context("the feed ended")?;
        ensure!(keys.room_of_events(message.get_channel_name()) == Some(room));
        Ok(feed::parse_feed(message.get_payload_bytes())?)
    };
    let member = EventMember { session_id: (7 << 32) + 1, name: Arc::from(NAME) };

    // A member arrives: the members hash and the room's record of the
    // node's members hold it at once; the link lists the room with the
    // answer, and announces the arrival later, in a batch, which reads back
    // as the changes it holds.
    let joined = PresenceScript { room, node_id: 7, member: &member, change: PresenceChange::Joined };
    let joined_at: Headcount = joined.command(&scripts).query_async(&mut connection).await?;
    assert_eq!(joined_at.0, 1, "the answer is the room's members on every server");
    let list = |headcount| ListingScript { room: Arc::from(room), headcount }.command(&scripts);
    let applied: u64 = list(joined_at).query_async(&mut connection).await?;
    assert_eq!(applied, 1);
    let listed: Vec<String> = connection.zrange(keys.rooms(), 0, -1).await?;
    assert_eq!(listed, [room], "a room with members is listed");
    // Changes of one room reach the list from several servers, in any
    // order: one older than what the list holds changes nothing.
    let stale: u64 = list((0, joined_at.1 - 1)).query_async(&mut connection).await?;
    assert_eq!(stale, 0);
    let listed: Vec<String> = connection.zrange(keys.rooms(), 0, -1).await?;
    assert_eq!(listed, [room], "a late, older departure does not unlist the room");
    let recorded: Vec<(Vec<u8>, Vec<u8>)> = connection.hgetall(keys.room_members(room)).await?;
    let recorded: Vec<EventMember> =
        recorded.iter().filter_map(|(id, record)| feed::parse_member(id, record)).collect();
    assert_eq!(recorded, vec![member.clone()], "the members hash holds the member as Rust reads it");
    let gone = EventMember { session_id: (7 << 32) + 2, name: Arc::from("Ünö") };
    let changes = [(PresenceChange::Joined, member.clone()), (PresenceChange::Left, gone.clone())];
    for batch in feed::presence_batches(&changes) {
        let () = connection.publish(keys.room_events(room), batch).await?;
    }
    assert_eq!(
        next_events().await?,
        changes
            .iter()
            .map(|(change, member)| RoomEvent::Presence { change: *change, member: member.clone() })
            .collect::<Vec<_>>()
    );

    // A message gets the room's first number in a new epoch.
    let publish = PublishScript {
        room,
        new_epoch: 4242,
        history_len: 10,
        sender: &member,
        sent_at_ms: 1_700_000_000_123,
        body: BODY,
        receipt: None,
    };
    let numbered: (u64, u64, u8) = publish.command(&scripts).query_async(&mut connection).await?;
    assert_eq!(numbered, (4242, 1, 0), "the answer is the epoch and the number, not repeated");
    for key in [keys.room_meta(room), keys.room_history(room)] {
        let ttl: i64 = connection.ttl(&key).await?;
        assert!((3_590..=3_600).contains(&ttl), "{key} is kept for the retention: {ttl} s");
    }
    let message = RoomEvent::Message {
        epoch: 4242,
        seq: 1,
        sender: member.clone(),
        sent_at_ms: 1_700_000_000_123,
        body: BODY.into(),
    };
    assert_eq!(
        next_events().await?,
        std::slice::from_ref(&message),
        "the feed carries the message as Rust reads it"
    );

    // A second publish keeps the epoch (the one offered is ignored).
    let again = PublishScript { new_epoch: 1, body: "two", ..publish };
    let numbered: (u64, u64, u8) = again.command(&scripts).query_async(&mut connection).await?;
    assert_eq!(numbered, (4242, 2, 0));
    assert!(matches!(&next_events().await?[..], [RoomEvent::Message { epoch: 4242, seq: 2, .. }]));

    // The snapshot holds the history and the member, as Rust reads them.
    let snapshot = SnapshotScript { room, new_epoch: 1, history_len: 10 };
    let reply: SnapshotReply = snapshot.command(&scripts).query_async(&mut connection).await?;
    let Snapshot { epoch, last_seq, history, members } = snapshot.decode(reply);
    assert_eq!((epoch, last_seq), (4242, 2));
    assert_eq!(history.len(), 2);
    assert_eq!(history[0], message, "the history keeps the message as the feed carried it");
    assert_eq!(members, vec![member.clone()]);
    // The server API's read of a room gives the same, and of a room Redis
    // does not know, nothing, without creating it.
    let peek = PeekScript { room, history_len: 10 };
    let read: Option<SnapshotReply> = peek.command(&scripts).query_async(&mut connection).await?;
    assert_eq!(peek.decode(read).map(|s| (s.epoch, s.last_seq, s.history.len())), Some((4242, 2, 2)));
    let unknown = PeekScript { room: "nobody here", history_len: 10 };
    let read: Option<SnapshotReply> = unknown.command(&scripts).query_async(&mut connection).await?;
    assert!(read.is_none());
    let created: bool = connection.exists(keys.room_meta("nobody here")).await?;
    assert!(!created, "a read creates nothing");

    // A post with an idempotency key, repeated: the first number again, and
    // one message on the feed (the next event read is the typing below).
    let receipt = Receipt { key: "a:retry-1".into(), window: Duration::from_secs(120) };
    let keyed = PublishScript { body: "keyed", receipt: Some(&receipt), ..again };
    let first: (u64, u64, u8) = keyed.command(&scripts).query_async(&mut connection).await?;
    let repeated: (u64, u64, u8) = keyed.command(&scripts).query_async(&mut connection).await?;
    assert_eq!((first, repeated), ((4242, 3, 0), (4242, 3, 1)), "the repeat is told it is one");
    let kept: i64 = connection.ttl(keys.room_receipt(room, "a:retry-1")).await?;
    assert!((110..=120).contains(&kept), "the receipt is kept for its window: {kept} s");
    assert!(matches!(&next_events().await?[..], [RoomEvent::Message { seq: 3, .. }]));

    // Typing is published from Rust alone.
    let () = connection.publish(keys.room_events(room), feed::typing_event(&member)).await?;
    assert_eq!(next_events().await?, [RoomEvent::Typing { member: member.clone() }]);

    // The server comes back after losing its link: it removes what it left
    // behind, room by room, and the room hears the member disconnected.
    let reap = ReapScript { room, node_id: 7 };
    let reply: Vec<redis::Value> = reap.command(&scripts).query_async(&mut connection).await?;
    let reaped = ReapScript::decode(&reply);
    assert_eq!((reaped.headcount.0, &reaped.members[..]), (0, std::slice::from_ref(&member)));
    assert!(reaped.headcount.1 > joined_at.1, "the departure is later than the arrival");
    let _: u64 = list(reaped.headcount).query_async(&mut connection).await?;
    let listed: Vec<String> = connection.zrange(keys.rooms(), 0, -1).await?;
    assert!(listed.is_empty(), "an emptied room leaves the list of rooms");
    let stale: u64 = list(joined_at).query_async(&mut connection).await?;
    assert_eq!(stale, 0, "the arrival, arriving late, does not bring the room back");
    assert_eq!(
        next_events().await?,
        [RoomEvent::Presence { change: PresenceChange::Disconnected, member: member.clone() }]
    );
    let left: Vec<Vec<u8>> = connection.hgetall(keys.room_members(room)).await?;
    assert!(left.is_empty(), "the member is gone from the room");
    let leftovers: Vec<Vec<u8>> = connection.hgetall(keys.room_node(room, 7)).await?;
    assert!(leftovers.is_empty(), "and from the room's record of the node's members");
    let again: Vec<redis::Value> = reap.command(&scripts).query_async(&mut connection).await?;
    assert!(ReapScript::decode(&again).members.is_empty(), "a second removal announces nothing");

    // A server that falls silent is handed to one live server, once; one
    // that took it on and died in turn leaves it to be handed out again.
    let alive = HeartbeatScript { node_id: 8, node_timeout_ms: 3_000 };
    let dead: Vec<u64> = alive.command(&scripts).query_async(&mut connection).await?;
    assert!(dead.is_empty());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let reaper = HeartbeatScript { node_id: 9, node_timeout_ms: 5 };
    let dead: Vec<u64> = reaper.command(&scripts).query_async(&mut connection).await?;
    assert_eq!(dead, [8], "the silent server is handed to the caller");
    let again: Vec<u64> = reaper.command(&scripts).query_async(&mut connection).await?;
    assert!(again.is_empty(), "and to no one else meanwhile");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let next = HeartbeatScript { node_id: 10, node_timeout_ms: 5 };
    let mut dead: Vec<u64> = next.command(&scripts).query_async(&mut connection).await?;
    dead.sort_unstable();
    assert_eq!(dead, [8, 9], "the abandoned removal and the silent reaper");
    Ok(())
}

/// How many clients other than `own` Redis has.
async fn other_clients(connection: &mut redis::aio::MultiplexedConnection, own: u64) -> Result<usize> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(connection).await?;
    Ok(list.lines().filter(|line| !line.starts_with(&format!("id={own} "))).count())
}

#[tokio::test]
async fn a_dropped_hub_ends_its_redis_link() -> Result<()> {
    let redis = RedisServer::start()?;
    let client = redis::Client::open(redis.url())?;
    let mut watcher = client.get_multiplexed_async_connection().await?;
    let own: u64 = redis::cmd("CLIENT").arg("ID").query_async(&mut watcher).await?;
    let cert_dir = temp_dir("certs");
    let config = Config { redis_url: vec![redis.url()], cert_dir: cert_dir.clone(), ..Config::default() };
    let server = Server::new(config)?;
    server.hub().start();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !server.hub().broker_available() {
        ensure!(tokio::time::Instant::now() < deadline, "the broker never linked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let linked = other_clients(&mut watcher, own).await?;
    ensure!(linked >= 2, "the link holds a command and a subscription connection, found {linked}");

    drop(server);
    // The link's task must notice and close both connections; before the
    // broker held only a weak sender, it heart-beat into Redis for ever.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let left = other_clients(&mut watcher, own).await?;
        if left == 0 {
            break;
        }
        ensure!(tokio::time::Instant::now() < deadline, "{left} connections outlived their hub");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(cert_dir);
    Ok(())
}
