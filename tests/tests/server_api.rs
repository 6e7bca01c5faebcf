//! The server API for the application's backend, over real HTTP against a
//! real server: keys, posts that members receive over both transports with
//! the number the API answered, idempotent retries, reads of members,
//! history and rooms, disconnects with the code clients see, stable error
//! codes for bad input, and a post through one server of a Redis cluster
//! that reaches a member on another.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use wtchat_protocol::{ChatMessage, ReasonCode, ServerMessage};
use wtchat_tests::binary::Binary;
use wtchat_tests::redis::RedisServer;
use wtchat_tests::server::eventually_async;
use wtchat_tests::webtransport::published_hashes;
use wtchat_tests::{TestServer, WsClient, WtClient, http_get, http_send};

const KEY: &str = "the backend's API key that is long enough";
const SECRET: &str = "the shared secret of the test issuer, 44 bytes";

async fn api_server(adjust: impl FnOnce(&mut wtchat_server::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.api_keys = vec![KEY.into()];
        adjust(c);
    })
    .await
}

/// A call with the key; returns the status and the JSON answer.
async fn call(server: std::net::SocketAddr, method: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
    let bearer = format!("Bearer {KEY}");
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let (status, answer) = http_send(server, method, path, &headers, &body).await?;
    let answer =
        serde_json::from_str(&answer).with_context(|| format!("{method} {path}: not JSON: {answer}"))?;
    Ok((status, answer))
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_api_is_off_without_keys_and_asks_every_call_for_one() -> Result<()> {
    let plain = TestServer::start().await;
    let (status, body) = http_get(plain.address, "/api/info", &[]).await?;
    assert_eq!(status, 404, "no key, no API: {body}");
    assert!(body.contains("api_off"), "{body}");
    plain.stop().await?;

    let server = api_server(|_| {}).await;
    for headers in
        [vec![], vec![("Authorization", "Bearer not the key at all")], vec![("Authorization", KEY)]]
    {
        let (status, body) = http_get(server.address, "/api/info", &headers).await?;
        assert_eq!(status, 401, "{headers:?}: {body}");
        assert_eq!(code(&serde_json::from_str(&body)?), "unauthorized");
    }
    let (status, info) = call(server.address, "GET", "/api/info", &Value::Null).await?;
    assert_eq!(status, 200);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["broker"]["kind"], "memory");
    let (status, document) = call(server.address, "GET", "/api/openapi.json", &Value::Null).await?;
    assert_eq!(status, 200);
    assert!(
        document["paths"]["/api/rooms/{room}/messages"]["post"].is_object(),
        "the server serves its OpenAPI"
    );
    server.stop().await
}

#[tokio::test]
async fn a_post_reaches_members_over_both_transports_with_the_number_the_api_answered() -> Result<()> {
    let server = api_server(|_| {}).await;
    let mut ws = WsClient::connect(&server).await?;
    let (joined, _) = ws.join("lobby", "ann").await?;
    let hashes = published_hashes(&server).await?;
    let mut wt = WtClient::open(&server.wt_url(), &hashes, None).await?;
    wt.hello().await?;
    wt.join("lobby", "bob").await?;

    let post = json!({ "sender": "Notifier", "body": "the build is green" });
    let (status, answer) = call(server.address, "POST", "/api/rooms/lobby/messages", &post).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["epoch"], joined.epoch, "the room's epoch, as members know it");
    let seq = answer["seq"].as_u64().context("a seq")?;
    for (transport, got) in [("ws", ws.chat(1).await?), ("wt", wt.chat(1).await?)] {
        let ChatMessage { seq: got_seq, sender, body, .. } = &got[0];
        assert_eq!((*got_seq, sender.name.as_str(), body.as_str()), (seq, "Notifier", "the build is green"));
        assert_eq!(sender.session_id, 0, "{transport}: a system sender is session 0, which no member has");
    }

    // A retried call with the same key answers the first number and posts
    // nothing: the next message members see is the member's own, one later.
    let keyed = json!({ "body": "deploy started", "idempotency_key": "deploy-41" });
    let (_, first) = call(server.address, "POST", "/api/rooms/lobby/messages", &keyed).await?;
    let (status, again) = call(server.address, "POST", "/api/rooms/lobby/messages", &keyed).await?;
    assert_eq!(status, 200);
    assert_eq!(first, again, "the retry answers the first call's result");
    assert_eq!(first["seq"].as_u64(), Some(seq + 1));
    ws.publish("lobby", "after the deploy").await?;
    let seen = ws.chat(2).await?;
    let numbered: Vec<(u64, &str)> = seen.iter().map(|m| (m.seq, m.body.as_str())).collect();
    assert_eq!(numbered, [(seq + 1, "deploy started"), (seq + 2, "after the deploy")]);
    assert_eq!(seen[0].sender.name, "system", "a post that names no sender");
    let over_wt: Vec<u64> = wt.chat(2).await?.iter().map(|m| m.seq).collect();
    assert_eq!(over_wt, [seq + 1, seq + 2]);
    server.stop().await
}

#[tokio::test]
async fn members_history_and_rooms_answer_what_the_rooms_hold() -> Result<()> {
    let server = api_server(|c| c.history_len = 4).await;
    let mut clients = Vec::new();
    for name in ["ann", "bob", "cy"] {
        let mut client = WsClient::connect(&server).await?;
        client.join("lobby", name).await?;
        clients.push(client);
    }
    clients[0].join("kitchen", "ann").await?;

    let (status, page) =
        call(server.address, "GET", "/api/rooms/lobby/members?limit=2", &Value::Null).await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["member_count"], 3);
    assert_eq!(page["members"].as_array().map(Vec::len), Some(2));
    let after = page["next_after"].as_u64().context("a second page")?;
    let (_, rest) =
        call(server.address, "GET", &format!("/api/rooms/lobby/members?after={after}"), &Value::Null).await?;
    let mut names: Vec<String> = [&page, &rest]
        .iter()
        .flat_map(|p| p["members"].as_array().cloned().unwrap_or_default())
        .map(|m| m["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ann", "bob", "cy"]);
    assert!(rest["next_after"].is_null());

    for n in 1..=6 {
        let (status, _) =
            call(server.address, "POST", "/api/rooms/lobby/messages", &json!({ "body": format!("m{n}") }))
                .await?;
        assert_eq!(status, 200);
    }
    let (_, newest) = call(server.address, "GET", "/api/rooms/lobby/history?limit=2", &Value::Null).await?;
    let bodies = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["body"].as_str().unwrap_or("").into())
            .collect()
    };
    assert_eq!(bodies(&newest), ["m5", "m6"]);
    assert_eq!(newest["next_seq"], 7);
    let before = newest["next_before"].as_u64().context("an older page")?;
    let (_, older) =
        call(server.address, "GET", &format!("/api/rooms/lobby/history?before={before}"), &Value::Null)
            .await?;
    assert_eq!(bodies(&older), ["m3", "m4"], "the history keeps 4 messages");

    let (_, rooms) = call(server.address, "GET", "/api/rooms", &Value::Null).await?;
    assert_eq!(
        rooms["rooms"],
        json!([{ "room": "kitchen", "member_count": 1 }, { "room": "lobby", "member_count": 3 }])
    );
    // In pages, by name.
    let (_, first) = call(server.address, "GET", "/api/rooms?limit=1", &Value::Null).await?;
    assert_eq!(
        (first["rooms"][0]["room"].as_str(), first["next_after"].as_str()),
        (Some("kitchen"), Some("kitchen"))
    );
    let (_, second) = call(server.address, "GET", "/api/rooms?limit=1&after=kitchen", &Value::Null).await?;
    assert_eq!(second["rooms"], json!([{ "room": "lobby", "member_count": 3 }]));
    let (_, last) = call(server.address, "GET", "/api/rooms?limit=1&after=lobby", &Value::Null).await?;
    assert_eq!((last["rooms"].as_array().map(Vec::len), &last["next_after"]), (Some(0), &Value::Null));

    let many =
        json!({ "rooms": ["kitchen", "attic", "lobby"], "sender": "ops", "body": "maintenance at noon" });
    let (status, answer) = call(server.address, "POST", "/api/messages", &many).await?;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().context("results")?;
    assert_eq!(results[0]["seq"], 1);
    assert_eq!(code(&results[1]), "unknown_room");
    assert_eq!(results[2]["seq"], 7);
    let got = clients[0]
        .until(|m| matches!(m, ServerMessage::Message(m) if m.room == "kitchen").then_some(()))
        .await;
    got.context("the kitchen got the notice")?;
    server.stop().await
}

#[tokio::test]
async fn bad_calls_get_stable_codes_and_change_nothing() -> Result<()> {
    let server = api_server(|c| {
        c.max_message_bytes = 100;
        c.api_publish_rate_per_sec = 3;
    })
    .await;
    let mut member = WsClient::connect(&server).await?;
    member.join("lobby", "ann").await?;
    let post = |body: &str| json!({ "body": body });
    let cases = [
        ("POST", "/api/rooms/attic/messages", post("hi"), 404, "unknown_room"),
        ("POST", "/api/rooms/bad%20name/messages", post("hi"), 400, "invalid_name"),
        ("POST", "/api/rooms/lobby/messages", json!({ "body": "hi", "sender": "" }), 400, "invalid_name"),
        ("POST", "/api/rooms/lobby/messages", post(""), 400, "empty_message"),
        ("POST", "/api/rooms/lobby/messages", post(&"x".repeat(101)), 413, "message_too_large"),
        ("POST", "/api/rooms/lobby/messages", post(&"x".repeat(8000)), 413, "body_too_large"),
        ("POST", "/api/rooms/lobby/messages", json!({ "text": "hi" }), 400, "invalid_request"),
        (
            "POST",
            "/api/rooms/lobby/messages",
            json!({ "body": "hi", "idempotency_key": "k".repeat(129) }),
            400,
            "invalid_request",
        ),
        ("POST", "/api/messages", json!({ "rooms": [], "body": "hi" }), 400, "invalid_request"),
        ("GET", "/api/rooms/lobby/members?limit=0", Value::Null, 400, "invalid_request"),
        ("GET", "/api/rooms/attic/history", Value::Null, 404, "unknown_room"),
        ("POST", "/api/sessions/abc/disconnect", Value::Null, 400, "invalid_request"),
        ("GET", "/api/nothing", Value::Null, 404, "not_found"),
        ("GET", "/api//api/info", Value::Null, 404, "not_found"),
        ("DELETE", "/api/rooms", Value::Null, 405, "method_not_allowed"),
    ];
    for (method, path, body, status, expected) in cases {
        let (got, answer) = call(server.address, method, path, &body).await?;
        assert_eq!((got, code(&answer)), (status, expected), "{method} {path}: {answer}");
    }
    // The rate: 3 a second, as many in a burst.
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses
            .push(call(server.address, "POST", "/api/rooms/lobby/messages", &post(&format!("r{n}"))).await?);
    }
    let limited = statuses.iter().filter(|(status, answer)| *status == 429 && code(answer) == "rate_limited");
    ensure!(limited.count() >= 1, "over the rate, a call is refused: {statuses:?}");
    // Nothing refused reached the room: the member sees only the accepted
    // posts, numbered from 1 with no gap.
    let accepted = statuses.iter().filter(|(status, _)| *status == 200).count();
    let seen: Vec<u64> = member.chat(accepted).await?.iter().map(|m| m.seq).collect();
    assert_eq!(seen, (1..=accepted as u64).collect::<Vec<_>>());
    server.stop().await
}

#[tokio::test]
async fn a_disconnect_closes_the_users_sessions_with_the_code_and_reason_they_see() -> Result<()> {
    let server = api_server(|c| c.auth_hs256_secret = Some(SECRET.into())).await;
    let mut troll = Vec::new();
    for _ in 0..2 {
        let mut client = WsClient::connect_with_token(&server, &token("troll@example.com")?).await?;
        client.hello().await?;
        troll.push(client);
    }
    let mut bystander = WsClient::connect_with_token(&server, &token("nice")?).await?;
    bystander.hello().await?;
    let (joined, _) = bystander.join("lobby", "nice").await?;

    let reason = json!({ "reason": "spamming the lobby" });
    let (status, answer) =
        call(server.address, "POST", "/api/users/troll%40example.com/disconnect", &reason).await?;
    assert_eq!((status, &answer), (200, &json!({ "disconnected": 2 })));
    for client in &mut troll {
        let (notice, code) = client.until_closed().await?;
        let notice = notice.context("a notice before the close")?;
        assert_eq!((notice.code, notice.text.as_str()), (ReasonCode::DISCONNECTED, "spamming the lobby"));
        assert!(notice.retry_after_ms.is_none(), "a disconnected client is not told to come back");
        assert_eq!(code, Some(ReasonCode::DISCONNECTED.0));
    }
    // One session by its id, which members see; the others stay.
    let id = joined.members.iter().find(|m| m.name == "nice").context("listed")?.session_id;
    let (_, answer) =
        call(server.address, "POST", &format!("/api/sessions/{id}/disconnect"), &Value::Null).await?;
    assert_eq!(answer, json!({ "disconnected": 1 }));
    let (notice, _) = bystander.until_closed().await?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::DISCONNECTED));
    let (_, answer) =
        call(server.address, "POST", &format!("/api/sessions/{id}/disconnect"), &Value::Null).await?;
    assert_eq!(answer, json!({ "disconnected": 0 }), "a session already gone");
    server.stop().await
}

/// Redis and two servers with the API on, and `extra` flags.
async fn cluster(extra: &[&str]) -> Result<(RedisServer, Vec<Binary>)> {
    let redis = RedisServer::start()?;
    let mut flags = vec!["--api-keys", KEY];
    flags.extend_from_slice(extra);
    let servers = Binary::start_sharing(2, &redis.url(), &flags).await?;
    Ok((redis, servers))
}

/// A token of the test issuer for `sub`, valid for ten minutes.
fn token(sub: &str) -> Result<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 600;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    Ok(encode(&Header::new(Algorithm::HS256), &json!({ "sub": sub, "exp": exp }), &key)?)
}

#[tokio::test]
async fn with_redis_a_disconnect_reaches_the_sessions_on_every_server() -> Result<()> {
    let (redis, servers) = cluster(&["--auth-hs256-secret", SECRET]).await?;
    let connect = async |server: usize, sub: &str| -> Result<WsClient> {
        let path = format!("/ws?token={}", token(sub)?);
        let mut client = WsClient::connect_to(servers[server].address, &path, None, None).await?;
        client.hello().await?;
        Ok(client)
    };
    let mut trolls = vec![connect(0, "troll").await?, connect(1, "troll").await?];
    let mut nice = connect(1, "nice").await?;
    let (joined, _) = nice.join("lobby", "nice").await?;
    let reason = json!({ "reason": "banned" });
    let (_, answer) = call(servers[0].address, "POST", "/api/users/troll/disconnect", &reason).await?;
    assert_eq!(answer, json!({ "disconnected": 1 }), "the count is the asked server's own");
    for troll in &mut trolls {
        let (notice, code) = troll.until_closed().await?;
        assert_eq!(notice.map(|n| (n.code, n.text)), Some((ReasonCode::DISCONNECTED, "banned".to_owned())));
        assert_eq!(code, Some(ReasonCode::DISCONNECTED.0));
    }
    // A session on the other server, by the id members see.
    let id = joined.members[0].session_id;
    let (_, answer) =
        call(servers[0].address, "POST", &format!("/api/sessions/{id}/disconnect"), &Value::Null).await?;
    assert_eq!(answer, json!({ "disconnected": 0 }));
    let (notice, _) = nice.until_closed().await?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::DISCONNECTED));
    drop(redis);
    Ok(())
}

#[tokio::test]
async fn with_redis_a_post_through_one_server_reaches_members_on_another_in_order() -> Result<()> {
    let (redis, servers) = cluster(&[]).await?;
    // The member is on the second server; the room is not open on the first.
    let mut member = WsClient::connect_at(servers[1].address, None, None).await?;
    member.hello().await?;
    let (joined, _) = member.join("lobby", "ann").await?;
    member.publish("lobby", "from a member").await?;
    let first: Vec<(u64, String)> = member.chat(1).await?.into_iter().map(|m| (m.seq, m.body)).collect();
    assert_eq!(first, [(1, "from a member".to_owned())]);
    let mut answers = Vec::new();
    for n in 0..3 {
        let (status, answer) = call(
            servers[0].address,
            "POST",
            "/api/rooms/lobby/messages",
            &json!({ "body": format!("api {n}") }),
        )
        .await?;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["epoch"], joined.epoch, "Redis's epoch of the room");
        answers.push(answer["seq"].as_u64().context("a seq")?);
    }
    let seen: Vec<(u64, String)> = member.chat(3).await?.into_iter().map(|m| (m.seq, m.body)).collect();
    let api: Vec<(u64, String)> =
        answers.iter().enumerate().map(|(n, seq)| (*seq, format!("api {n}"))).collect();
    assert_eq!(seen, api, "each with the number the API answered, in order");
    // A keyed post retried through the other server answers the first
    // number and reaches the member once.
    let keyed = json!({ "body": "once", "idempotency_key": "notice-7" });
    let (_, first) = call(servers[0].address, "POST", "/api/rooms/lobby/messages", &keyed).await?;
    let (status, retried) = call(servers[1].address, "POST", "/api/rooms/lobby/messages", &keyed).await?;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(first, retried, "the receipt is kept in Redis, for every server");
    member.publish("lobby", "after the retry").await?;
    let once: Vec<(u64, String)> = member.chat(2).await?.into_iter().map(|m| (m.seq, m.body)).collect();
    let seq = first["seq"].as_u64().context("a seq")?;
    assert_eq!(once, [(seq, "once".into()), (seq + 1, "after the retry".into())]);
    // Members and history read the same on either server: from the room
    // where it is open, from Redis where it is not.
    for server in &servers {
        let (_, page) = call(server.address, "GET", "/api/rooms/lobby/members", &Value::Null).await?;
        assert_eq!(
            (page["member_count"].as_u64(), page["members"][0]["name"].as_str()),
            (Some(1), Some("ann"))
        );
        let (_, history) =
            call(server.address, "GET", "/api/rooms/lobby/history?limit=2", &Value::Null).await?;
        assert_eq!(history["epoch"], joined.epoch);
        let bodies: Vec<&str> =
            history["messages"].as_array().into_iter().flatten().filter_map(|m| m["body"].as_str()).collect();
        assert_eq!(bodies, ["once", "after the retry"], "{history}");
        assert_eq!(history["next_before"], seq);
    }
    let (status, answer) = call(servers[0].address, "GET", "/api/rooms/attic/members", &Value::Null).await?;
    assert_eq!((status, code(&answer)), (404, "unknown_room"), "a room Redis does not know");
    drop(redis);
    Ok(())
}

#[tokio::test]
async fn with_redis_the_room_list_spans_every_server() -> Result<()> {
    let (redis, servers) = cluster(&[]).await?;
    let connect = async |server: usize| -> Result<WsClient> {
        let mut client = WsClient::connect_to(servers[server].address, "/ws", None, None).await?;
        client.hello().await?;
        Ok(client)
    };
    // "attic" lives on the first server only, "cellar" on the second only,
    // "lobby" on both.
    let mut ann = connect(0).await?;
    ann.join("attic", "ann").await?;
    ann.join("lobby", "ann").await?;
    let mut bob = connect(1).await?;
    bob.join("cellar", "bob").await?;
    bob.join("lobby", "bob").await?;
    let expected = json!([
        { "room": "attic", "member_count": 1 },
        { "room": "cellar", "member_count": 1 },
        { "room": "lobby", "member_count": 2 },
    ]);
    for server in &servers {
        let (_, rooms) = call(server.address, "GET", "/api/rooms", &Value::Null).await?;
        assert_eq!(rooms["rooms"], expected, "every server lists every room");
        let (_, page) = call(server.address, "GET", "/api/rooms?limit=2", &Value::Null).await?;
        assert_eq!(page["next_after"], "cellar");
        let (_, rest) = call(server.address, "GET", "/api/rooms?limit=2&after=cellar", &Value::Null).await?;
        assert_eq!(rest["rooms"], json!([{ "room": "lobby", "member_count": 2 }]));
    }
    // A room whose last member leaves is off the list.
    bob.send(wtchat_protocol::ClientMessage::Leave { room: "cellar".into() }).await?;
    bob.until(|message| matches!(message, ServerMessage::Left(_)).then_some(())).await?;
    let address = servers[0].address;
    eventually_async(std::time::Duration::from_secs(5), || async move {
        let listed =
            call(address, "GET", "/api/rooms", &Value::Null).await.map(|(_, rooms)| rooms["rooms"].clone());
        listed.is_ok_and(|rooms| rooms.as_array().is_some_and(|rooms| rooms.len() == 2))
    })
    .await?;
    drop(redis);
    Ok(())
}
