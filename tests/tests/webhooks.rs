//! Webhooks against a real HTTP receiver that checks every signature: the
//! events of a room in order with the numbers members saw, users named
//! from their tokens, a receiver that fails for a while and then gets
//! everything in order, one that stays down past the queue and gets the
//! counted drop, and two servers sharing Redis that deliver each event
//! once for the cluster.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use wtchat_protocol::ClientMessage;
use wtchat_tests::binary::Binary;
use wtchat_tests::redis::RedisServer;
use wtchat_tests::server::{eventually_async, temp_dir};
use wtchat_tests::webhook_receiver::WebhookReceiver;
use wtchat_tests::{TestServer, WsClient, http_send, metric, scrape_metrics};

const SIGNING: &str = "the webhook signing secret, 16+";
const API_KEY: &str = "the backend's API key that is long enough";
const AUTH: &str = "the shared secret of the test issuer, 44 bytes";

/// Lets a test publish in bursts.
fn generous(c: &mut wtchat_server::Config) {
    c.publish_rate_per_sec = 1_000;
    c.publish_burst = 1_000;
}

async fn server_for(
    receiver: &WebhookReceiver,
    adjust: impl FnOnce(&mut wtchat_server::Config),
) -> TestServer {
    let url = receiver.url();
    TestServer::start_with(|c| {
        c.webhook_url = vec![url];
        c.webhook_secret = Some(SIGNING.into());
        c.api_keys = vec![API_KEY.into()];
        adjust(c);
    })
    .await
}

fn token(sub: &str) -> Result<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 600;
    Ok(encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": sub, "exp": exp }),
        &EncodingKey::from_secret(AUTH.as_bytes()),
    )?)
}

/// Posts through the server API as the backend.
async fn api_post(server: std::net::SocketAddr, room: &str, body: &str) -> Result<Value> {
    let bearer = format!("Bearer {API_KEY}");
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let post = json!({ "sender": "bot", "body": body }).to_string();
    let (status, answer) =
        http_send(server, "POST", &format!("/api/rooms/{room}/messages"), &headers, &post).await?;
    anyhow::ensure!(status == 200, "{status}: {answer}");
    Ok(serde_json::from_str(&answer)?)
}

/// Each event as `type`, plus who or which number, for comparing orders.
fn outline(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            let kind = event["type"].as_str().unwrap_or("?");
            match kind {
                "message" => format!("message {} {}", event["seq"], event["body"].as_str().unwrap_or("?")),
                "room_occupied" | "room_vacated" => kind.to_owned(),
                _ => format!("{kind} {}", event["member"]["name"].as_str().unwrap_or("?")),
            }
        })
        .collect()
}

fn messages(events: &[Value]) -> usize {
    events.iter().filter(|event| event["type"] == "message").count()
}

#[tokio::test]
async fn a_rooms_events_arrive_signed_in_order_with_the_numbers_members_saw() -> Result<()> {
    let receiver = WebhookReceiver::start(SIGNING).await?;
    let server = server_for(&receiver, |c| c.auth_hs256_secret = Some(AUTH.into())).await;
    let mut ann = WsClient::connect_with_token(&server, &token("user-ann")?).await?;
    ann.hello().await?;
    let (joined, _) = ann.join("lobby", "ann").await?;
    let mut bob = WsClient::connect_with_token(&server, &token("user-bob")?).await?;
    bob.hello().await?;
    bob.join("lobby", "bob").await?;
    for body in ["one", "two"] {
        ann.publish("lobby", body).await?;
    }
    let seen = bob.chat(2).await?;
    let posted = api_post(server.address, "lobby", "from the backend").await?;
    bob.send(ClientMessage::Leave { room: "lobby".into() }).await?;
    ann.chat(3).await?;
    ann.vanish();

    let events = receiver.until(|events| events.iter().any(|event| event["type"] == "room_vacated")).await?;
    assert_eq!(
        outline(&events),
        [
            "room_occupied",
            "member_joined user-ann",
            "member_joined user-bob",
            "message 1 one",
            "message 2 two",
            "message 3 from the backend",
            "member_left user-bob",
            "member_disconnected user-ann",
            "room_vacated"
        ]
    );
    let first = &events[3];
    assert_eq!(first["room"], "lobby");
    assert_eq!(first["epoch"], joined.epoch, "the epoch members saw");
    assert_eq!((first["seq"].as_u64(), seen[0].seq), (Some(1), 1));
    assert_eq!(first["sender"]["user"], "user-ann", "the user as the token named them");
    assert_eq!(first["sender"]["name"], "user-ann", "a token's user is their name too");
    assert_eq!(events[5]["seq"], posted["seq"], "the number the API answered");
    assert_eq!(events[5]["sender"], json!({"session_id": 0, "name": "bot", "user": null}));
    assert_eq!(events[6]["member"]["user"], "user-bob");
    assert_eq!((events[6]["epoch"].as_u64(), events[6]["after_seq"].as_u64()), (Some(joined.epoch), Some(3)));
    let mut ids: Vec<&str> = events.iter().filter_map(|event| event["id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "every event has its own id");
    let scrape = scrape_metrics(server.address).await?;
    assert_eq!(metric(&scrape, "wtchat_webhook_events_delivered_total{receiver=\"0\"}"), Some(9.0));
    assert_eq!(metric(&scrape, "wtchat_webhook_events_dropped_total{receiver=\"0\"}"), Some(0.0));
    server.stop().await
}

#[tokio::test]
async fn a_receiver_that_fails_for_a_while_then_gets_every_event_in_order() -> Result<()> {
    let receiver = WebhookReceiver::start(SIGNING).await?;
    receiver.set_failing(true);
    let server = server_for(&receiver, generous).await;
    let mut ann = WsClient::connect(&server).await?;
    ann.join("lobby", "ann").await?;
    for n in 0..30 {
        ann.publish("lobby", &format!("m{n}")).await?;
    }
    ann.chat(30).await?;
    let address = server.address;
    eventually_async(Duration::from_secs(10), || async move {
        let scrape = scrape_metrics(address).await.unwrap_or_default();
        metric(&scrape, "wtchat_webhook_failed_attempts_total{receiver=\"0\"}").unwrap_or(0.0) >= 3.0
    })
    .await?;
    assert!(receiver.deliveries().is_empty());
    let refused_ids = receiver.refused();
    receiver.set_failing(false);
    let events = receiver.until(|events| messages(events) == 30).await?;
    let seqs: Vec<u64> = events.iter().filter_map(|event| event["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>(), "every message once, in order, after the failures");
    assert!(refused_ids >= 3);
    let deliveries = receiver.deliveries();
    assert!(deliveries.iter().all(|delivery| delivery.body["dropped"] == 0), "nothing was dropped");
    server.stop().await
}

#[tokio::test]
async fn a_receiver_down_longer_than_the_queue_holds_gets_the_counted_drop() -> Result<()> {
    let receiver = WebhookReceiver::start(SIGNING).await?;
    receiver.set_failing(true);
    let server = server_for(&receiver, |c| {
        generous(c);
        c.webhook_queue_bytes = 4_000;
    })
    .await;
    let mut ann = WsClient::connect(&server).await?;
    ann.join("lobby", "ann").await?;
    let sent = 60;
    for n in 0..sent {
        ann.publish("lobby", &format!("message number {n} with some padding to weigh it")).await?;
    }
    ann.chat(sent).await?;
    let scrape = scrape_metrics(server.address).await?;
    let dropped =
        metric(&scrape, "wtchat_webhook_events_dropped_total{receiver=\"0\"}").unwrap_or(0.0) as usize;
    let queued = metric(&scrape, "wtchat_webhook_queue_events{receiver=\"0\"}").unwrap_or(0.0) as usize;
    let announced = 2 + sent; // occupied, joined, the messages
    assert!(dropped > 0 && queued > 0, "a queue of 4,000 bytes holds some, not all: {dropped} dropped");
    assert_eq!(dropped + queued, announced, "each event is either queued or counted as dropped");
    assert!(metric(&scrape, "wtchat_webhook_queue_bytes{receiver=\"0\"}").unwrap_or(f64::MAX) <= 4_000.0);

    receiver.set_failing(false);
    let reported = |deliveries: &[wtchat_tests::webhook_receiver::Delivery]| -> usize {
        deliveries.iter().map(|delivery| delivery.body["dropped"].as_u64().unwrap_or(0) as usize).sum()
    };
    let events = receiver.until(|events| events.len() == queued).await?;
    eventually_async(Duration::from_secs(10), || {
        let deliveries = receiver.deliveries();
        async move { reported(&deliveries) == dropped }
    })
    .await?;
    // What was kept is what came first, in order, with no hole inside it.
    let seqs: Vec<u64> = events.iter().filter_map(|event| event["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(outline(&events)[..2], ["room_occupied", "member_joined ann"]);
    // A later event is delivered as usual.
    ann.publish("lobby", "after the outage").await?;
    let events = receiver.until(|events| events.len() == queued + 1).await?;
    assert_eq!(events[queued]["body"], "after the outage");
    assert_eq!(events[queued]["seq"].as_u64(), Some(sent as u64 + 1), "the room's numbers show the gap");
    server.stop().await
}

/// Redis and two servers posting to `receiver`, with `extra` flags.
async fn cluster(receiver: &WebhookReceiver, extra: &[&str]) -> Result<(RedisServer, Vec<Binary>)> {
    let redis = RedisServer::start()?;
    let hook_url = receiver.url();
    let mut flags = vec!["--api-keys", API_KEY, "--webhook-url", &hook_url, "--webhook-secret", SIGNING];
    flags.extend_from_slice(extra);
    let servers = Binary::start_sharing(2, &redis.url(), &flags).await?;
    Ok((redis, servers))
}

async fn connect_to(server: &Binary) -> Result<WsClient> {
    let mut client = WsClient::connect_to(server.address, "/ws", None, None).await?;
    client.hello().await?;
    Ok(client)
}

fn count(events: &[Value], wanted: &str) -> usize {
    outline(events).iter().filter(|line| *line == wanted).count()
}

#[tokio::test]
async fn with_redis_each_event_is_delivered_once_for_the_cluster() -> Result<()> {
    let receiver = WebhookReceiver::start(SIGNING).await?;
    let (redis, servers) = cluster(&receiver, &[]).await?;
    let mut ann = connect_to(&servers[0]).await?;
    ann.join("lobby", "ann").await?;
    receiver.until(|events| events.len() == 2).await?;
    let mut bob = connect_to(&servers[1]).await?;
    bob.join("lobby", "bob").await?;
    receiver.until(|events| events.len() == 3).await?;
    for n in 0..5 {
        ann.publish("lobby", &format!("ann {n}")).await?;
        bob.publish("lobby", &format!("bob {n}")).await?;
    }
    api_post(servers[1].address, "lobby", "from the backend").await?;
    ann.chat(11).await?;
    bob.chat(11).await?;
    bob.send(ClientMessage::Leave { room: "lobby".into() }).await?;
    receiver.until(|events| events.iter().any(|event| event["type"] == "member_left")).await?;
    ann.send(ClientMessage::Leave { room: "lobby".into() }).await?;
    let events = receiver.until(|events| events.iter().any(|event| event["type"] == "room_vacated")).await?;
    // Whatever else might still come would be a duplicate.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_later = receiver.events();
    assert_eq!(events_later.len(), events.len(), "nothing after the room was vacated: {events_later:#?}");

    let mut seqs: Vec<u64> = events.iter().filter_map(|event| event["seq"].as_u64()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=11).collect::<Vec<_>>(), "each message once, from the server that sequenced it");
    for once in [
        "room_occupied",
        "member_joined ann",
        "member_joined bob",
        "member_left bob",
        "member_left ann",
        "room_vacated",
    ] {
        assert_eq!(count(&events, once), 1, "{once} once: {:#?}", outline(&events));
    }
    let servers_sending: std::collections::HashSet<String> = receiver
        .deliveries()
        .iter()
        .filter_map(|delivery| delivery.body["server"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(servers_sending.len(), 2, "each server sends what it sequenced or saw happen");
    drop(redis);
    Ok(())
}

#[tokio::test]
async fn with_redis_the_members_of_a_dead_server_are_announced_by_a_survivor() -> Result<()> {
    let receiver = WebhookReceiver::start(SIGNING).await?;
    let (redis, mut servers) =
        cluster(&receiver, &["--redis-node-timeout-ms", "3000", "--redis-grace-ms", "1500"]).await?;
    let mut ann = connect_to(&servers[0]).await?;
    ann.join("lobby", "ann").await?;
    let mut bob = connect_to(&servers[1]).await?;
    bob.join("lobby", "bob").await?;
    receiver.until(|events| events.len() == 3).await?;
    // The second server dies without a word (SIGKILL): its member's
    // departure can only be announced by the server that removes it.
    drop(servers.pop());
    let events = receiver.until(|events| count(events, "member_disconnected bob") == 1).await?;
    let departure =
        events.iter().find(|event| event["type"] == "member_disconnected").cloned().unwrap_or_default();
    assert_eq!(departure["member"]["user"], Value::Null, "a dead server's members have no user on record");
    assert!(departure["epoch"].is_u64(), "the survivor has the room open and knows where it stands");
    ann.send(ClientMessage::Leave { room: "lobby".into() }).await?;
    let events = receiver.until(|events| count(events, "room_vacated") == 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_later = receiver.events();
    assert_eq!(events_later.len(), events.len(), "nothing twice: {:#?}", outline(&events_later));
    assert_eq!(
        outline(&events),
        [
            "room_occupied",
            "member_joined ann",
            "member_joined bob",
            "member_disconnected bob",
            "member_left ann",
            "room_vacated"
        ]
    );
    drop(redis);
    Ok(())
}

#[tokio::test]
async fn an_https_receiver_signed_by_the_operators_ca_gets_its_events() -> Result<()> {
    let (receiver, ca_pem) = WebhookReceiver::start_tls(SIGNING).await?;
    let ca_file = temp_dir("webhook-ca");
    std::fs::create_dir_all(&ca_file)?;
    let ca_file = ca_file.join("ca.pem");
    std::fs::write(&ca_file, ca_pem)?;
    let server = server_for(&receiver, |c| c.webhook_ca_file = Some(ca_file.clone())).await;
    let mut ann = WsClient::connect(&server).await?;
    ann.join("lobby", "ann").await?;
    ann.publish("lobby", "over TLS").await?;
    let events = receiver.until(|events| messages(events) == 1).await?;
    assert_eq!(outline(&events), ["room_occupied", "member_joined ann", "message 1 over TLS"]);
    server.stop().await?;

    // Without the CA, the receiver's certificate is not trusted: nothing is
    // delivered, and the failures are counted.
    let (stranger, _) = WebhookReceiver::start_tls(SIGNING).await?;
    let server = server_for(&stranger, |_| {}).await;
    let mut ann = WsClient::connect(&server).await?;
    ann.join("lobby", "ann").await?;
    let address = server.address;
    eventually_async(Duration::from_secs(10), || async move {
        let scrape = scrape_metrics(address).await.unwrap_or_default();
        metric(&scrape, "wtchat_webhook_failed_attempts_total{receiver=\"0\"}").unwrap_or(0.0) >= 1.0
    })
    .await?;
    assert!(stranger.deliveries().is_empty(), "an untrusted receiver gets nothing");
    server.stop().await
}
