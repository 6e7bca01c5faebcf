//! Sends that survive a flaky network: a publish with a message id is
//! answered with its number, and the same id sent again (the connection
//! died before the answer, and the client retries on a new one) is
//! answered with the first number and published nothing, on one server and
//! across servers through Redis; ids are per user.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, ensure};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use wtchat_protocol::Resume;
use wtchat_tests::binary::Binary;
use wtchat_tests::cross_server::until_body;
use wtchat_tests::redis::RedisServer;
use wtchat_tests::{TestServer, WsClient};

const SECRET: &str = "the shared secret of the test issuer, 44 bytes";

fn token(sub: &str) -> Result<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 600;
    let claims = json!({ "sub": sub, "exp": exp });
    Ok(encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes()))?)
}

/// A greeted WebSocket session of `user` on the server at `address`.
async fn session(address: std::net::SocketAddr, user: &str) -> Result<WsClient> {
    let mut client =
        WsClient::connect_to(address, &format!("/ws?token={}", token(user)?), None, None).await?;
    client.hello().await?;
    Ok(client)
}

#[tokio::test]
async fn a_message_retried_on_a_new_connection_appears_once() -> Result<()> {
    let server = TestServer::start_with(|c| c.auth_hs256_secret = Some(SECRET.into())).await;
    let mut watcher = session(server.address, "watcher").await?;
    watcher.join("hall", "watcher").await?;
    let mut ann = session(server.address, "ann").await?;
    let (joined, _) = ann.join("hall", "ann").await?;
    let first = ann.publish_once("hall", "hello once", "ann-1").await?;
    ensure!(!first.repeated && first.epoch == joined.epoch, "{first:?}");
    // The connection dies, then the client comes back, resumes where it
    // was, and sends what it never heard answered.
    drop(ann);
    let mut ann = session(server.address, "ann").await?;
    let resume = Resume { epoch: joined.epoch, last_seq: first.seq - 1 };
    let (_, missed) = ann.join_from("hall", "ann", Some(resume)).await?;
    ensure!(missed.iter().map(|m| m.body.as_str()).collect::<Vec<_>>() == ["hello once"]);
    let again = ann.publish_once("hall", "hello once", "ann-1").await?;
    ensure!(again.repeated && (again.seq, again.epoch) == (first.seq, first.epoch), "{again:?}");
    // Another user's id is theirs: the same id is another message.
    let mut bob = session(server.address, "bob").await?;
    bob.join("hall", "bob").await?;
    let bobs = bob.publish_once("hall", "bob's own", "ann-1").await?;
    ensure!(!bobs.repeated && bobs.seq == first.seq + 1, "{bobs:?}");
    let seen = until_body(&mut watcher, "bob's own").await?;
    ensure!(
        seen == [(first.seq, "hello once".to_owned()), (bobs.seq, "bob's own".to_owned())],
        "the watcher saw each message once: {seen:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_message_retried_on_another_server_appears_once() -> Result<()> {
    let redis = RedisServer::start()?;
    let flags = ["--auth-hs256-secret", SECRET, "--redis-grace-ms", "1500"];
    let servers = Binary::start_sharing(2, &redis.url(), &flags).await?;
    let mut watcher = session(servers[0].address, "watcher").await?;
    watcher.join("hall", "watcher").await?;
    let mut ann = session(servers[0].address, "ann").await?;
    ann.join("hall", "ann").await?;
    let first = ann.publish_once("hall", "across", "m-7").await?;
    drop(ann);
    // Its server is gone, say; the client reconnects to the other one.
    let mut ann = session(servers[1].address, "ann").await?;
    ann.join("hall", "ann").await?;
    let again = ann.publish_once("hall", "across", "m-7").await?;
    ensure!(again.repeated && (again.seq, again.epoch) == (first.seq, first.epoch), "{first:?} {again:?}");
    let next = ann.publish_once("hall", "and on", "m-8").await?;
    ensure!(!next.repeated && next.seq == first.seq + 1, "{next:?}");
    let seen = until_body(&mut watcher, "and on").await?;
    ensure!(
        seen == [(first.seq, "across".to_owned()), (next.seq, "and on".to_owned())],
        "the watcher on the first server saw each message once: {seen:?}"
    );
    // The receipt lives in Redis for the protocol's window.
    let keys = wtchat_redis::keys::Keys::default();
    let receipt = keys.room_receipt("hall", &wtchat_core::message_id::receipt_key(Some("ann"), "m-7"));
    let kept: i64 = redis.query(&["TTL", &receipt])?;
    let window = Duration::from_millis(wtchat_protocol::MESSAGE_ID_WINDOW_MS).as_secs() as i64;
    ensure!((window - 10..=window).contains(&kept), "{receipt} is kept {kept} s");
    Ok(())
}
