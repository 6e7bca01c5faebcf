//! Tokens that refresh inside a session, over both transports: the server
//! tells a session ahead of its token's expiry, a fresh token for the same
//! user keeps the session going past it with its new grants, and a token
//! of another user (or none that verifies) is refused and changes nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use wtchat_protocol::{ClientMessage, ErrorCode, ReasonCode, ServerMessage};
use wtchat_tests::client::Client;
use wtchat_tests::webtransport::published_hashes;
use wtchat_tests::{TestServer, Wire, WsClient, WsWire, WtClient, WtWire};

const SECRET: &str = "the shared secret of the test issuer, 44 bytes";
/// What the server adds to a token's `exp` for clock differences.
const LEEWAY_SECONDS: u64 = 30;

/// A token for `sub` that the server counts as valid for `seconds` more,
/// allowed into `rooms` (every room when `None`).
fn token(sub: &str, seconds: u64, rooms: Option<&[&str]>) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    // Within the leeway, an `exp` in the past still verifies.
    let mut claims = json!({ "sub": sub, "exp": now + seconds - LEEWAY_SECONDS });
    if let Some(rooms) = rooms {
        claims["rooms"] = json!(rooms);
    }
    Ok(encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes()))?)
}

async fn auth_server() -> TestServer {
    TestServer::start_with(|c| c.auth_hs256_secret = Some(SECRET.into())).await
}

async fn ws(server: &TestServer, token: &str) -> Result<Client<WsWire>> {
    WsClient::connect_with_token(server, token).await
}

async fn wt(server: &TestServer, token: &str) -> Result<Client<WtWire>> {
    let hashes = published_hashes(server).await?;
    WtClient::open(&format!("{}?token={token}", server.wt_url()), &hashes, None).await
}

/// How long the token has left, from the server's notice.
async fn expiring<W: Wire>(client: &mut Client<W>) -> Result<u64> {
    client
        .until(|message| match message {
            ServerMessage::TokenExpiring(notice) => Some(notice.expires_in_ms),
            _ => None,
        })
        .await
}

async fn outlives_its_first_token<W: Wire>(mut client: Client<W>) -> Result<()> {
    client.hello().await?;
    client.join("lobby", "ann").await?;
    let left = expiring(&mut client).await?;
    let told = tokio::time::Instant::now();
    assert!((1..=3_000).contains(&left), "told halfway through a 6 s token: {left} ms left");
    let id = client.send(ClientMessage::RefreshToken { token: token("ann", 600, None)? }).await?;
    let refreshed = client
        .until(|message| match message {
            ServerMessage::TokenRefreshed(refreshed) => Some(refreshed.clone()),
            _ => None,
        })
        .await?;
    assert_eq!(refreshed.request_id, id);
    assert!(refreshed.expires_in_ms > 500_000, "the new expiry: {} ms", refreshed.expires_in_ms);
    // Past the first token's expiry, the session goes on.
    tokio::time::sleep_until(told + Duration::from_millis(left + 1_500)).await;
    client.publish("lobby", "still here").await?;
    assert_eq!(client.chat(1).await?[0].body, "still here");
    Ok(())
}

#[tokio::test]
async fn a_fresh_token_keeps_a_session_going_past_the_old_ones_expiry_on_both_transports() -> Result<()> {
    let server = auth_server().await;
    let (over_ws, over_wt) = tokio::join!(
        async { outlives_its_first_token(ws(&server, &token("ann", 6, None)?).await?).await },
        async { outlives_its_first_token(wt(&server, &token("ann", 6, None)?).await?).await },
    );
    over_ws?;
    over_wt?;
    server.stop().await
}

#[tokio::test]
async fn another_users_token_is_refused_and_the_session_still_ends_at_its_expiry() -> Result<()> {
    let server = auth_server().await;
    let mut client = ws(&server, &token("ann", 4, None)?).await?;
    client.hello().await?;
    expiring(&mut client).await?;
    let refused = |message: &ServerMessage| match message {
        ServerMessage::Error(error) => Some((error.request_id, error.code, error.text.clone())),
        _ => None,
    };
    let id = client.send(ClientMessage::RefreshToken { token: token("mallory", 600, None)? }).await?;
    let (request, code, text) = client.until(refused).await?;
    assert_eq!((request, code), (Some(id), ErrorCode::INVALID_TOKEN));
    assert!(text.contains("another user"), "{text}");
    let id = client.send(ClientMessage::RefreshToken { token: "not.a.token".into() }).await?;
    assert_eq!(client.until(refused).await?.1, ErrorCode::INVALID_TOKEN, "request {id}");
    let (notice, code) = client.until_closed().await?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::UNAUTHORIZED), "the first token still ends it");
    assert_eq!(code, Some(ReasonCode::UNAUTHORIZED.0));

    // A server without authentication has no token to refresh.
    let open = TestServer::start().await;
    let mut anonymous = WsClient::connect(&open).await?;
    anonymous.send(ClientMessage::RefreshToken { token: token("ann", 600, None)? }).await?;
    assert_eq!(anonymous.until(refused).await?.1, ErrorCode::INVALID_TOKEN);
    open.stop().await?;
    server.stop().await
}

#[tokio::test]
async fn a_refreshed_tokens_grants_apply_at_once() -> Result<()> {
    let server = auth_server().await;
    let mut client = ws(&server, &token("ann", 600, Some(&["lobby", "team-*"]))?).await?;
    client.hello().await?;
    client.join("lobby", "ann").await?;
    client.join("team-a", "ann").await?;
    let narrower = token("ann", 600, Some(&["lobby"]))?;
    let id = client.send(ClientMessage::RefreshToken { token: narrower }).await?;
    let left = client
        .until(|message| match message {
            ServerMessage::Left(left) => Some(left.clone()),
            _ => None,
        })
        .await?;
    assert_eq!((left.request_id, left.room.as_str()), (id, "team-a"), "a room no longer allowed is left");
    client.until(|message| matches!(message, ServerMessage::TokenRefreshed(_)).then_some(())).await?;
    client
        .send(ClientMessage::Join { room: "team-b".into(), display_name: "ann".into(), resume: None })
        .await?;
    let code = client
        .until(|message| match message {
            ServerMessage::Error(error) => Some(error.code),
            _ => None,
        })
        .await?;
    assert_eq!(code, ErrorCode::FORBIDDEN);
    client.publish("lobby", "the lobby is still mine").await?;
    assert_eq!(client.chat(1).await?[0].body, "the lobby is still mine");
    server.stop().await
}
