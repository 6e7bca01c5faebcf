//! Scale-out: several `wtchat` processes share rooms through a real Redis.
//! Members on different servers see one order and one numbering, presence
//! spans servers and forgets a dead one, a member whose server dies resumes
//! on another with nothing missing and nothing twice, and a Redis restart
//! closes sessions with a reason code and heals by itself; a server's
//! presence changes travel in one feed event per interval. The benchmark
//! tool spreads one room over two servers.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures_util::StreamExt;
use wtchat_core::room_event::RoomEvent;
use wtchat_protocol::{
    ChatMessage, ClientMessage, Member, PresenceChange, ReasonCode, Resume, ServerMessage,
};
use wtchat_redis::feed;
use wtchat_redis::keys::Keys;
use wtchat_tests::bench::short_bench;
use wtchat_tests::binary::Binary;
use wtchat_tests::redis::RedisServer;
use wtchat_tests::webtransport::published_hashes_at;
use wtchat_tests::{Client, Wire, WsClient, WtClient, metric, scrape_metrics};
use wtchat_tools::bench::{BenchArgs, run};
use wtchat_tools::dial::Transport;

/// Several servers sharing one Redis.
struct Cluster {
    redis: RedisServer,
    servers: Vec<Binary>,
}

impl Cluster {
    /// Starts Redis and `n` servers linked to it, with `extra` flags, and
    /// waits until every server reports its broker available.
    async fn start(n: usize, extra: &[&str]) -> Result<Self> {
        let redis = RedisServer::start()?;
        let mut flags = vec!["--redis-node-timeout-ms", "3000", "--redis-grace-ms", "1500"];
        flags.extend_from_slice(extra);
        let servers = Binary::start_sharing(n, &redis.url(), &flags).await?;
        let cluster = Self { redis, servers };
        Ok(cluster)
    }

    /// Waits until server `index` answers `/healthz` with `code`.
    async fn wait_health(&self, index: usize, code: u16) -> Result<()> {
        self.servers[index].wait_health(code).await
    }

    async fn ws(&self, index: usize) -> Result<WsClient> {
        let mut client = WsClient::connect_at(self.servers[index].address, None, None).await?;
        client.hello().await?;
        Ok(client)
    }

    async fn wt(&self, index: usize) -> Result<WtClient> {
        let server = &self.servers[index];
        let hashes = published_hashes_at(server.address).await?;
        let url = server.webtransport_url.clone().context("the server announced no WebTransport URL")?;
        let mut client = WtClient::open(&url, &hashes, None).await?;
        client.hello().await?;
        Ok(client)
    }
}

/// What a member saw of a room: `(seq, sender name, body)` in arrival order.
fn seen(messages: &[ChatMessage]) -> Vec<(u64, String, String)> {
    messages.iter().map(|m| (m.seq, m.sender.name.clone(), m.body.clone())).collect()
}

/// Receives until a presence change of `name` arrives, skipping the rest.
async fn presence<W: Wire>(client: &mut Client<W>, name: &str, change: PresenceChange) -> Result<u64> {
    presence_of(client, |member| member.name == name, change).await
}

/// Receives until a presence change of a member `who` picks arrives.
async fn presence_of<W: Wire>(
    client: &mut Client<W>,
    who: impl Fn(&Member) -> bool,
    change: PresenceChange,
) -> Result<u64> {
    let wait =
        client.until_presence(|c| (who(&c.member) && c.change == change).then_some(c.member.session_id));
    tokio::time::timeout(Duration::from_secs(15), wait).await.context("no presence notice")?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_different_servers_share_one_order_and_presence() -> Result<()> {
    let cluster = Cluster::start(2, &["--publish-rate-per-sec", "1000", "--publish-burst", "1000"]).await?;
    let mut ann = cluster.ws(0).await?;
    let mut bob = cluster.wt(1).await?;
    let mut cid = cluster.ws(1).await?;

    let (joined, _) = ann.join("plaza", "Ann").await?;
    ensure!(joined.next_seq == 1 && joined.members.len() == 1);
    let (joined, _) = bob.join("plaza", "Bob").await?;
    ensure!(joined.member_count == 2, "the count spans servers: {}", joined.member_count);
    let names: HashSet<String> = joined.members.iter().map(|m| m.name.clone()).collect();
    ensure!(names == HashSet::from(["Ann".into(), "Bob".into()]), "Bob sees {names:?}");
    presence(&mut ann, "Bob", PresenceChange::Joined).await?;
    let (joined, _) = cid.join("plaza", "Cid").await?;
    ensure!(joined.members.len() == 3 && joined.member_count == 3, "Cid sees {:?}", joined.members);
    presence(&mut ann, "Cid", PresenceChange::Joined).await?;
    presence(&mut bob, "Cid", PresenceChange::Joined).await?;
    let ids: HashSet<u64> = joined.members.iter().map(|m| m.session_id).collect();
    ensure!(ids.len() == 3, "session ids are unique across servers: {:?}", joined.members);

    // Everyone publishes at once, from both servers.
    const EACH: usize = 30;
    for i in 0..EACH {
        ann.publish("plaza", &format!("ann {i}")).await?;
        bob.publish("plaza", &format!("bob {i}")).await?;
        cid.publish("plaza", &format!("cid {i}")).await?;
    }
    let total = 3 * EACH;
    let (a, b, c) = tokio::try_join!(ann.chat(total), bob.chat(total), cid.chat(total))?;
    let (a, b, c) = (seen(&a), seen(&b), seen(&c));
    ensure!(a == b && b == c, "the three members saw different orders");
    let seqs: Vec<u64> = a.iter().map(|(seq, ..)| *seq).collect();
    ensure!(seqs == (1..=total as u64).collect::<Vec<_>>(), "sequence numbers are 1..={total}: {seqs:?}");
    for sender in ["ann", "bob", "cid"] {
        let own: Vec<&String> = a.iter().map(|(_, _, body)| body).filter(|b| b.starts_with(sender)).collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("{sender} {i}")).collect();
        ensure!(
            own.iter().map(|s| s.as_str()).eq(expected.iter().map(String::as_str)),
            "{sender}'s order kept"
        );
    }

    // A leave on one server reaches the other; a late joiner on either
    // server gets the same history from Redis.
    cid.send(ClientMessage::Leave { room: "plaza".into() }).await?;
    presence(&mut ann, "Cid", PresenceChange::Left).await?;
    let mut dee = cluster.ws(0).await?;
    let (joined, history) = dee.join("plaza", "Dee").await?;
    ensure!(joined.next_seq == total as u64 + 1);
    ensure!(seen(&history) == a[a.len() - history.len()..], "the history matches what members saw");
    let names: HashSet<String> = joined.members.iter().map(|m| m.name.clone()).collect();
    ensure!(names == HashSet::from(["Ann".into(), "Bob".into(), "Dee".into()]), "Dee sees {names:?}");
    Ok(())
}

/// A crowd arrives on one server and leaves all at once: a member on the
/// other server is told of each arrival and departure, a newcomer there
/// then gets the exact count, and the room's feed in Redis carries the server's changes in batches,
/// one per presence interval, not one event per change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_changes_reach_the_others_in_one_event_per_interval() -> Result<()> {
    const CROWD: usize = 300;
    const INTERVAL_MS: u128 = 200;
    let cluster = Cluster::start(
        2,
        &[
            "--max-new-connections-per-sec",
            "0",
            "--max-connections-per-ip",
            "0",
            "--presence-interval-ms",
            "200",
        ],
    )
    .await?;
    let redis = redis::Client::open(cluster.redis.url())?;
    let mut watch = redis.get_async_pubsub().await?;
    watch.subscribe(Keys::default().room_events("crowd")).await?;
    let mut feed = watch.into_on_message();
    let started = std::time::Instant::now();

    let mut observer = cluster.ws(1).await?;
    observer.join("crowd", "Observer").await?;
    let mut crowd = Vec::new();
    for i in 0..CROWD {
        let mut client = cluster.ws(0).await?;
        client.join("crowd", &format!("c{i}")).await?;
        crowd.push(client);
    }
    let told = |change: PresenceChange| {
        move |c: &wtchat_protocol::MemberChange| {
            (c.change == change && c.member.name.starts_with('c')).then_some(c.member.session_id)
        }
    };
    let mut arrived = HashSet::new();
    while arrived.len() < CROWD {
        let wait = observer.until_presence(told(PresenceChange::Joined));
        arrived.insert(tokio::time::timeout(Duration::from_secs(15), wait).await.context("arrivals")??);
    }
    // Once told, the other server counts everyone: so does its newcomer.
    let mut late = cluster.ws(1).await?;
    let (joined, _) = late.join("crowd", "Late").await?;
    ensure!(joined.member_count as usize == CROWD + 2, "a newcomer counts {}", joined.member_count);
    drop(crowd);
    let mut departed = HashSet::new();
    while departed.len() < CROWD {
        let wait = observer.until_presence(told(PresenceChange::Disconnected));
        departed.insert(tokio::time::timeout(Duration::from_secs(15), wait).await.context("departures")??);
    }
    ensure!(arrived == departed, "the observer was told of the same {CROWD} coming and going");

    // What the feed carried, until it falls quiet.
    let (mut messages, mut joins, mut leaves) = (0u128, 0, 0);
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(500), feed.next()).await {
        messages += 1;
        for event in feed::parse_feed(message.get_payload_bytes())? {
            if let RoomEvent::Presence { change, member } = event {
                if member.name.starts_with('c') {
                    match change {
                        PresenceChange::Joined => joins += 1,
                        _ => leaves += 1,
                    }
                }
            }
        }
    }
    ensure!((joins, leaves) == (CROWD, CROWD), "the feed announced {joins} arrivals and {leaves} departures");
    let intervals = started.elapsed().as_millis() / INTERVAL_MS;
    ensure!(
        messages <= intervals + 10,
        "{messages} feed events for {} changes in {intervals} intervals: not gathered",
        2 * CROWD
    );
    Ok(())
}

/// A member that lost its server: what it saw, where it was, and its name.
struct Survivor {
    name: &'static str,
    received: Vec<ChatMessage>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_stream_costs_no_member_a_message() -> Result<()> {
    let mut cluster = Cluster::start(
        3,
        &["--publish-rate-per-sec", "1000", "--publish-burst", "1000", "--history-len", "1000"],
    )
    .await?;
    const TOTAL: u64 = 300;
    let mut publisher = cluster.ws(1).await?;
    publisher.join("stream", "Pub").await?;
    let mut stayer_b = cluster.wt(1).await?;
    stayer_b.join("stream", "StayB").await?;
    let mut stayer_c = cluster.ws(2).await?;
    stayer_c.join("stream", "StayC").await?;
    let mut victims = Vec::new();
    for name in ["LostOne", "LostTwo"] {
        let mut client = cluster.ws(0).await?;
        let (joined, _) = client.join("stream", name).await?;
        victims.push((name, client, joined.epoch));
    }
    let epoch = victims[0].2;
    let lost_ids: HashSet<u64> =
        victims.iter().filter_map(|(_, client, _)| client.welcome.as_ref().map(|w| w.session_id)).collect();

    // The publisher sends at a steady pace on server 1 while server 0 dies.
    let sending = tokio::spawn(async move {
        for i in 1..=TOTAL {
            publisher.publish("stream", &format!("m{i}")).await?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::Ok(publisher)
    });
    let mut lost = Vec::new();
    for (name, mut client, _) in victims {
        let received = client.chat(60).await?;
        lost.push((Survivor { name, received }, client));
    }
    let killed_at = std::time::Instant::now();
    cluster.servers[0].child.kill()?;
    cluster.servers[0].child.wait()?;

    // Each member of the dead server reads what reached it, then reconnects
    // to another server with backoff and jitter and resumes from its last
    // number.
    let mut resumed = Vec::new();
    for (index, (mut survivor, mut client)) in lost.into_iter().enumerate() {
        while let Ok(Ok(message)) =
            tokio::time::timeout(Duration::from_millis(200), client.next_message()).await
        {
            if let ServerMessage::Message(chat) = message {
                survivor.received.push(chat);
            }
        }
        let mut delay = Duration::from_millis(100);
        let target = 1 + index % 2;
        let mut client = loop {
            tokio::time::sleep(delay + Duration::from_millis(fastrand_jitter(index))).await;
            match cluster.ws(target).await {
                Ok(client) => break client,
                Err(_) => delay = (delay * 2).min(Duration::from_secs(2)),
            }
        };
        let last_seq = survivor.received.last().map_or(0, |m| m.seq);
        let (joined, history) =
            client.join_from("stream", survivor.name, Some(Resume { epoch, last_seq })).await?;
        ensure!(!joined.history.gap, "{} was told of a gap the history covers", survivor.name);
        survivor.received.extend(history);
        resumed.push((survivor, client));
    }

    let publisher = sending.await??;
    let (b, c) = tokio::try_join!(stayer_b.chat(TOTAL as usize), stayer_c.chat(TOTAL as usize))?;
    let every: Vec<u64> = (1..=TOTAL).collect();
    for (name, got) in [("StayB", &b), ("StayC", &c)] {
        let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
        ensure!(seqs == every, "{name} did not get every message exactly once");
    }
    for (survivor, client) in &mut resumed {
        let have = survivor.received.len() as u64;
        let rest = client.chat((TOTAL - have) as usize).await?;
        survivor.received.extend(rest);
        let seqs: Vec<u64> = survivor.received.iter().map(|m| m.seq).collect();
        ensure!(seqs == every, "{} has a gap or a duplicate: {seqs:?}", survivor.name);
        let bodies: Vec<String> = survivor.received.iter().map(|m| m.body.clone()).collect();
        ensure!(bodies == every.iter().map(|i| format!("m{i}")).collect::<Vec<_>>());
    }

    // The dead server's members vanish from the room for everyone once its
    // heartbeat lapses (3 s here), and a newcomer sees no ghost.
    disconnected(&mut stayer_b, &lost_ids).await?;
    disconnected(&mut stayer_c, &lost_ids).await?;
    ensure!(killed_at.elapsed() >= Duration::from_secs(2), "removed before the node timeout");
    let mut newcomer = cluster.ws(2).await?;
    let (joined, _) = newcomer.join("stream", "New").await?;
    let ids: HashSet<u64> = joined.members.iter().map(|m| m.session_id).collect();
    ensure!(ids.len() == 6 && ids.is_disjoint(&lost_ids), "members after the crash: {:?}", joined.members);
    drop((publisher, resumed));
    Ok(())
}

/// Receives until every session in `ids` is reported disconnected.
async fn disconnected<W: Wire>(client: &mut Client<W>, ids: &HashSet<u64>) -> Result<()> {
    let mut gone = HashSet::new();
    while gone.len() < ids.len() {
        gone.insert(
            presence_of(client, |m| ids.contains(&m.session_id), PresenceChange::Disconnected).await?,
        );
    }
    Ok(())
}

/// A little jitter per client, as a real client spreads its retries.
fn fastrand_jitter(index: usize) -> u64 {
    (index as u64 * 37 + u64::from(std::process::id())) % 50
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_past_the_history_on_another_server_is_told_a_gap() -> Result<()> {
    let cluster = Cluster::start(
        2,
        &["--publish-rate-per-sec", "1000", "--publish-burst", "1000", "--history-len", "5"],
    )
    .await?;
    let mut talker = cluster.ws(0).await?;
    let (joined, _) = talker.join("short", "Talker").await?;
    for i in 1..=3 {
        talker.publish("short", &format!("early {i}")).await?;
    }
    talker.chat(3).await?;
    for i in 4..=20 {
        talker.publish("short", &format!("late {i}")).await?;
    }
    talker.chat(17).await?;
    let mut returning = cluster.ws(1).await?;
    let (rejoined, history) =
        returning.join_from("short", "Back", Some(Resume { epoch: joined.epoch, last_seq: 3 })).await?;
    ensure!(rejoined.epoch == joined.epoch, "one epoch across servers");
    ensure!(rejoined.history.gap, "a resume the history cannot cover is told so");
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    ensure!(seqs == (16..=20).collect::<Vec<_>>(), "the last five follow: {seqs:?}");
    let (covered, history) = cluster
        .ws(1)
        .await?
        .join_from("short", "Near", Some(Resume { epoch: joined.epoch, last_seq: 17 }))
        .await?;
    ensure!(!covered.history.gap && history.len() == 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_closes_sessions_with_a_reason_and_heals() -> Result<()> {
    let mut cluster =
        Cluster::start(2, &["--refusal-retry-after-ms", "300", "--refusal-retry-spread-ms", "300"]).await?;
    let mut ann = cluster.ws(0).await?;
    let mut bob = cluster.wt(1).await?;
    let (joined, _) = ann.join("hall", "Ann").await?;
    bob.join("hall", "Bob").await?;
    ann.publish("hall", "before").await?;
    let before = bob.chat(1).await?;
    ensure!(before[0].seq == 1);

    cluster.redis.kill();
    // Both read at once: a QUIC client that reads only after its connection
    // closed (Bob, while the test waited on Ann) finds the notice dropped
    // with the connection's unread stream data.
    let (ann_closed, bob_closed) = tokio::join!(ann.until_closed(), bob.until_closed());
    for (name, closed) in [("Ann", ann_closed?), ("Bob", bob_closed?)] {
        let (notice, code) = closed;
        let notice = notice.with_context(|| format!("{name} got no closing notice (close code {code:?})"))?;
        ensure!(notice.code == ReasonCode::BROKER_UNAVAILABLE, "{name}: {notice:?}");
        ensure!(notice.retry_after_ms.is_some_and(|ms| (300..=600).contains(&ms)), "{name}: {notice:?}");
        ensure!(code == Some(ReasonCode::BROKER_UNAVAILABLE.0), "{name} close code {code:?}");
    }
    cluster.wait_health(0, 503).await?;
    let mut turned_away = WsClient::connect_at(cluster.servers[0].address, None, None).await?;
    turned_away.send(ClientMessage::Ping { nonce: 1 }).await?;
    let (notice, _) = turned_away.until_closed().await?;
    ensure!(notice.is_some_and(|n| n.code == ReasonCode::BROKER_UNAVAILABLE && n.retry_after_ms.is_some()));
    for server in &mut cluster.servers {
        ensure!(server.child.try_wait()?.is_none(), "a server exited without Redis");
    }

    // Redis comes back empty: the servers relink by themselves, and a
    // member resuming from before is told that its history is gone.
    cluster.redis.restart()?;
    cluster.wait_health(0, 200).await?;
    cluster.wait_health(1, 200).await?;
    let mut ann = cluster.ws(0).await?;
    let (rejoined, history) =
        ann.join_from("hall", "Ann", Some(Resume { epoch: joined.epoch, last_seq: 1 })).await?;
    ensure!(rejoined.epoch != joined.epoch && rejoined.history.gap && history.is_empty());
    let mut bob = cluster.wt(1).await?;
    bob.join("hall", "Bob").await?;
    presence(&mut ann, "Bob", PresenceChange::Joined).await?;
    bob.publish("hall", "after").await?;
    let (a, b) = tokio::try_join!(ann.chat(1), bob.chat(1))?;
    ensure!(seen(&a) == seen(&b) && a[0].seq == 1 && a[0].body == "after");
    let scrape = scrape_metrics(cluster.servers[0].address).await?;
    ensure!(metric(&scrape, "wtchat_broker_link_losses_total").is_some_and(|n| n >= 1.0));
    ensure!(metric(&scrape, "wtchat_broker_available") == Some(1.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_tool_measures_a_room_split_over_two_servers() -> Result<()> {
    let cluster = Cluster::start(2, &["--publish-rate-per-sec", "10000", "--publish-burst", "10000"]).await?;
    let pids = cluster.servers.iter().map(|s| s.child.id()).collect();
    let args = BenchArgs {
        publishers: 4,
        also_server: vec![cluster.servers[1].address],
        room: "split".into(),
        ..short_bench(cluster.servers[0].address, Transport::Ws, pids)
    };
    let reports = run(args).await?;
    let [report] = &reports[..] else { anyhow::bail!("one step, got {reports:?}") };
    ensure!(report.messages_sent >= 50, "only {} messages sent", report.messages_sent);
    ensure!((report.lost, report.duplicated, report.disconnected) == (0, 0, 0), "{report:?}");
    ensure!(report.delivery_ratio == 1.0 && report.server_cpu_s.is_some(), "{report:?}");
    // Both servers served half the room each.
    for server in &cluster.servers {
        let scrape = scrape_metrics(server.address).await?;
        let delivered = metric(&scrape, "wtchat_messages_delivered_total").unwrap_or(0.0);
        ensure!(
            delivered == (report.messages_sent * 10) as f64,
            "{delivered} delivered by {}",
            server.address
        );
    }
    // Many small rooms, each spanning both servers (sessions are dealt over
    // them in turn): every room gets its own messages, once.
    let pids = cluster.servers.iter().map(|s| s.child.id()).collect();
    let small = BenchArgs {
        room_size: 4,
        also_server: vec![cluster.servers[1].address],
        room: "small".into(),
        ..short_bench(cluster.servers[0].address, Transport::Ws, pids)
    };
    let reports = run(small).await?;
    let [report] = &reports[..] else { anyhow::bail!("one step, got {reports:?}") };
    ensure!(report.publishers == 5 && report.delivery_ratio == 1.0, "{report:?}");
    ensure!((report.lost, report.duplicated, report.disconnected) == (0, 0, 0), "{report:?}");
    Ok(())
}
