//! What makes the server safe to expose and easy to run: tokens, admission
//! limits, metrics, status, the admin drain and the console, over real
//! connections.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use wtchat_protocol::{ClientMessage, ErrorCode, ReasonCode, ServerMessage};
use wtchat_tests::http::http_get_raw;
use wtchat_tests::webtransport::published_hashes;
use wtchat_tests::{TestServer, WsClient, WtClient, http_get, http_post, metric, scrape_metrics};

const SECRET: &str = "the shared secret of the test issuer, 44 bytes";

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

fn token(claims: &Value, secret: &str) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("token")
}

async fn auth_server() -> TestServer {
    TestServer::start_with(|c| c.auth_hs256_secret = Some(SECRET.into())).await
}

async fn scrape(server: &TestServer) -> Result<String> {
    scrape_metrics(server.address).await
}

#[tokio::test]
async fn without_a_valid_token_a_session_is_closed_as_unauthorized() -> Result<()> {
    let server = auth_server().await;
    let expired = token(&json!({"sub": "u", "exp": unix_now() - 3600}), SECRET);
    let forged =
        token(&json!({"sub": "u", "exp": unix_now() + 600}), "somebody else's secret, long enough too");
    for (case, token) in
        [("none", None), ("expired", Some(expired)), ("forged", Some(forged)), ("junk", Some("x.y.z".into()))]
    {
        let mut client = match &token {
            None => WsClient::connect_quietly(&server).await?,
            Some(token) => WsClient::connect_with_token(&server, token).await?,
        };
        let (notice, code) = client.until_closed().await?;
        let notice = notice.with_context(|| format!("{case}: a notice before the close"))?;
        assert_eq!(notice.code, ReasonCode::UNAUTHORIZED, "{case}");
        assert_eq!(code, Some(ReasonCode::UNAUTHORIZED.0), "{case}");
        if case == "expired" {
            assert!(notice.text.contains("expired"), "the notice says why: {}", notice.text);
        }
    }
    // WebTransport asks for the same token, in the CONNECT request's query.
    let hashes = published_hashes(&server).await?;
    let mut refused = WtClient::open(&server.wt_url(), &hashes, None).await?;
    let (notice, _) = refused.until_closed().await?;
    assert_eq!(notice.map(|n| n.code), Some(ReasonCode::UNAUTHORIZED));
    let good = token(&json!({"sub": "wt-user", "exp": unix_now() + 600}), SECRET);
    let mut admitted = WtClient::open(&format!("{}?token={good}", server.wt_url()), &hashes, None).await?;
    admitted.hello().await?;
    let (joined, _) = admitted.join("lobby", "ignored").await?;
    assert_eq!(joined.members[0].name, "wt-user", "the name defaults to the token's subject");
    let scrape = scrape(&server).await?;
    assert_eq!(metric(&scrape, "wtchat_sessions_closed_total{reason=\"UNAUTHORIZED\"}"), Some(5.0));
    server.stop().await
}

#[tokio::test]
async fn a_token_names_the_user_and_limits_rooms_and_publishing() -> Result<()> {
    let server = auth_server().await;
    let ann = token(
        &json!({"sub": "u1", "name": "Ann", "exp": unix_now() + 600, "rooms": ["team-*"], "publish": ["team-a"]}),
        SECRET,
    );
    let mut client = WsClient::connect_with_token(&server, &ann).await?;
    client.hello().await?;
    let request = client
        .send(ClientMessage::Join { room: "lobby".into(), display_name: "Ann".into(), resume: None })
        .await?;
    let error =
        client.until(|m| if let ServerMessage::Error(e) = m { Some(e.clone()) } else { None }).await?;
    assert_eq!((error.code, error.request_id), (ErrorCode::FORBIDDEN, Some(request)));
    let (joined, _) = client.join("team-a", "Mallory").await?;
    assert_eq!(joined.members[0].name, "Ann", "the token's name wins over the one asked for");
    client.join("team-b", "Ann").await?;
    let refused = client.publish("team-b", "read-only here").await?;
    let error =
        client.until(|m| if let ServerMessage::Error(e) = m { Some(e.clone()) } else { None }).await?;
    assert_eq!((error.code, error.request_id), (ErrorCode::FORBIDDEN, Some(refused)));
    client.publish("team-a", "hello team").await?;
    let delivered = client.chat(1).await?;
    assert_eq!((delivered[0].body.as_str(), delivered[0].sender.name.as_str()), ("hello team", "Ann"));
    server.stop().await
}

#[tokio::test]
async fn a_session_ends_when_its_token_expires() -> Result<()> {
    let server = auth_server().await;
    // The server tolerates 30 s of clock difference, so a token that
    // expired 28 s ago is still accepted and runs out about 2 s from now.
    let short = token(&json!({"sub": "u", "exp": unix_now() - 28}), SECRET);
    let mut client = WsClient::connect_with_token(&server, &short).await?;
    client.hello().await?;
    client.join("lobby", "u").await?;
    let (notice, code) = client.until_closed().await?;
    let notice = notice.context("a notice before the close")?;
    assert_eq!(notice.code, ReasonCode::UNAUTHORIZED);
    assert!(notice.text.contains("expired"), "{}", notice.text);
    assert_eq!(code, Some(ReasonCode::UNAUTHORIZED.0));
    server.stop().await
}

#[tokio::test]
async fn admission_turns_away_the_excess_with_a_spread_retry_hint() -> Result<()> {
    let server = TestServer::start_with(|c| {
        c.max_connections_per_ip = 2;
        c.refusal_retry_after_ms = 1000;
        c.refusal_retry_spread_ms = 3000;
    })
    .await;
    let mut first = WsClient::connect(&server).await?;
    first.join("room", "first").await?;
    let mut second = WsClient::connect(&server).await?;
    second.join("room", "second").await?;
    let mut hints = Vec::new();
    for _ in 0..3 {
        let mut extra = WsClient::connect_quietly(&server).await?;
        let (notice, code) = extra.until_closed().await?;
        let notice = notice.context("a notice before the close")?;
        assert_eq!((notice.code, code), (ReasonCode::OVERLOADED, Some(ReasonCode::OVERLOADED.0)));
        hints.push(notice.retry_after_ms.context("a retry hint")?);
    }
    assert!(hints.iter().all(|h| (1000..=4000).contains(h)), "hints {hints:?} outside the configured window");
    // The admitted sessions did not notice.
    first.publish("room", "still here").await?;
    assert_eq!(second.chat(1).await?[0].body, "still here");
    // A place given back is taken again.
    drop(first);
    server.wait_for_sessions(1).await?;
    let mut again = WsClient::connect(&server).await?;
    again.join("room", "again").await?;
    let scrape = scrape(&server).await?;
    assert_eq!(metric(&scrape, "wtchat_admission_refusals_total{limit=\"per_ip\"}"), Some(3.0));
    assert_eq!(metric(&scrape, "wtchat_sessions_closed_total{reason=\"OVERLOADED\"}"), Some(3.0));
    server.stop().await
}

#[tokio::test]
async fn a_burst_of_new_connections_past_the_rate_is_turned_away() -> Result<()> {
    // One per second, so a burst of two: the third in a row is refused.
    let server = TestServer::start_with(|c| c.max_new_connections_per_sec = 1).await;
    let _one = WsClient::connect(&server).await?;
    let _two = WsClient::connect(&server).await?;
    let mut three = WsClient::connect_quietly(&server).await?;
    let (notice, _) = three.until_closed().await?;
    let notice = notice.context("a notice")?;
    assert_eq!(notice.code, ReasonCode::OVERLOADED);
    assert!(notice.text.contains("too many new sessions"), "{}", notice.text);
    server.stop().await
}

#[tokio::test]
async fn metrics_and_status_count_what_happens() -> Result<()> {
    let server = TestServer::start().await;
    let mut ws = WsClient::connect_quietly(&server).await?;
    ws.hello_reporting(Some("timeout")).await?;
    ws.join("metrics", "ws").await?;
    let mut wt = WtClient::connect(&server).await?;
    wt.join("metrics", "wt").await?;
    for i in 0..3 {
        ws.publish("metrics", &format!("m{i}")).await?;
    }
    ws.chat(3).await?;
    wt.chat(3).await?;
    let scrape = scrape(&server).await?;
    let expect = |series: &str, value: f64| {
        assert_eq!(metric(&scrape, series), Some(value), "{series} in\n{scrape}");
    };
    expect("wtchat_connections{transport=\"websocket\"}", 1.0);
    expect("wtchat_connections{transport=\"webtransport\"}", 1.0);
    expect("wtchat_rooms", 1.0);
    expect("wtchat_messages_published_total", 3.0);
    expect("wtchat_messages_delivered_total", 6.0);
    expect("wtchat_webtransport_fallbacks_total{reason=\"timeout\"}", 1.0);
    expect("wtchat_webtransport_fallbacks_total{reason=\"failed\"}", 0.0);
    expect("wtchat_fanout_seconds_count", 3.0);
    expect("wtchat_session_queued_bytes_count", 2.0);
    assert!(metric(&scrape, "wtchat_bytes_sent_total").is_some_and(|b| b > 0.0));
    let expiry = metric(&scrape, "wtchat_certificate_expiry_timestamp_seconds").context("expiry")?;
    assert!(expiry > unix_now() as f64 + 86_400.0, "the development certificate has days left");
    let (status, body) = http_get(server.address, "/status", &[]).await?;
    assert_eq!(status, 200);
    let status: Value = serde_json::from_str(&body)?;
    assert_eq!(status["sessions"], 2);
    assert_eq!(status["rooms"], 1);
    assert_eq!(status["connections"]["webtransport"], 1);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["tasks"].as_u64().is_some_and(|t| t > 0));
    server.stop().await
}

#[tokio::test]
async fn the_admin_endpoint_drains_the_server_for_its_token_only() -> Result<()> {
    let plain = TestServer::start().await;
    let (status, _) = http_post(plain.address, "/admin/drain", &[]).await?;
    assert_eq!(status, 404, "without an admin token the endpoint does not exist");
    plain.stop().await?;

    let admin = "an admin token of some length";
    let server = TestServer::start_with(|c| c.admin_token = Some(admin.into())).await;
    let mut client = WsClient::connect(&server).await?;
    client.join("lobby", "stays").await?;
    let (status, _) = http_post(server.address, "/admin/drain", &[("Authorization", "Bearer wrong")]).await?;
    assert_eq!(status, 401);
    let (status, _) =
        http_post(server.address, "/admin/drain", &[("Authorization", &format!("Bearer {admin}"))]).await?;
    assert_eq!(status, 202);
    let (notice, code) = client.until_closed().await?;
    let notice = notice.context("a notice")?;
    assert_eq!(notice.code, ReasonCode::SERVER_SHUTDOWN);
    assert!(notice.retry_after_ms.is_some());
    assert_eq!(code, Some(ReasonCode::SERVER_SHUTDOWN.0));
    server.exited().await
}

#[tokio::test]
async fn the_console_is_served_only_with_an_admin_token_which_also_opens_the_api() -> Result<()> {
    let plain = TestServer::start().await;
    let (status, _) = http_get(plain.address, "/console", &[]).await?;
    assert_eq!(status, 404, "without an admin token there is no console");
    plain.stop().await?;

    let admin = "an admin token of some length";
    let server = TestServer::start_with(|c| c.admin_token = Some(admin.into())).await;
    let page = http_get_raw(server.address, "/console", &[]).await?;
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("wtchat console"));
    let policy = page.header("content-security-policy").unwrap_or_default();
    assert!(policy.contains("frame-ancestors 'none'") && policy.contains("connect-src 'self'"), "{policy}");

    // The console reads rooms and members through the server API, which the
    // admin token opens although no API key is set; each member here says
    // which transport it is on.
    let mut ws = WsClient::connect(&server).await?;
    ws.join("hall", "on websocket").await?;
    let hashes = published_hashes(&server).await?;
    let mut wt = WtClient::open(&server.wt_url(), &hashes, None).await?;
    wt.hello().await?;
    wt.join("hall", "on webtransport").await?;
    let bearer = format!("Bearer {admin}");
    let (status, _) = http_get(server.address, "/api/rooms", &[("Authorization", "Bearer wrong")]).await?;
    assert_eq!(status, 401);
    let (status, body) =
        http_get(server.address, "/api/rooms/hall/members", &[("Authorization", &bearer)]).await?;
    assert_eq!(status, 200, "{body}");
    let members: serde_json::Value = serde_json::from_str(&body)?;
    let transports: Vec<(String, String)> = members["members"]
        .as_array()
        .context("members")?
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().into(),
                m["transport"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_eq!(
        transports,
        [("on websocket".into(), "websocket".into()), ("on webtransport".into(), "webtransport".into())]
    );
    server.stop().await
}
