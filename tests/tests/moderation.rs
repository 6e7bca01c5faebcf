//! The application's moderation against a real HTTP backend: it sees each
//! member's message (signed) before anyone else does and accepts, replaces
//! or rejects it; a sender's messages keep their order whatever order the
//! verdicts come in; a backend that is down or late gets the configured
//! answer, refusing or letting through.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use wtchat_protocol::{ErrorCode, ServerMessage};
use wtchat_tests::moderation_backend::{ModerationBackend, Ruling};
use wtchat_tests::webtransport::published_hashes;
use wtchat_tests::{Client, TestServer, Wire, WsClient, WtClient, metric, scrape_metrics};

const SIGNING: &str = "the webhook signing secret, 16+";

/// A backend that rejects "spam", rewrites "darn", thinks long about
/// "slow", fails on "crash" and accepts the rest.
async fn backend() -> Result<ModerationBackend> {
    ModerationBackend::start(SIGNING, |message| {
        let body = message["body"].as_str().unwrap_or_default();
        if body.contains("spam") {
            Ruling::verdict(json!({"action": "reject", "reason": "no advertising here"}))
        } else if body.contains("darn") {
            Ruling::verdict(json!({"action": "replace", "body": body.replace("darn", "d**n")}))
        } else if body.contains("crash") {
            Ruling { status: 500, body: String::new(), delay: Duration::ZERO }
        } else if body.contains("slow") {
            Ruling { status: 204, body: String::new(), delay: Duration::from_millis(400) }
        } else {
            Ruling::verdict(json!({"action": "accept"}))
        }
    })
    .await
}

async fn moderated(
    backend: &ModerationBackend,
    adjust: impl FnOnce(&mut wtchat_server::Config),
) -> TestServer {
    let url = backend.url();
    TestServer::start_with(|c| {
        c.moderation_url = Some(url);
        c.webhook_secret = Some(SIGNING.into());
        c.publish_rate_per_sec = 100;
        c.publish_burst = 100;
        adjust(c);
    })
    .await
}

/// The next error frame: its request and code.
async fn refusal<W: Wire>(client: &mut Client<W>) -> Result<(Option<u32>, ErrorCode, String)> {
    client
        .until(|message| match message {
            ServerMessage::Error(error) => Some((error.request_id, error.code, error.text.clone())),
            _ => None,
        })
        .await
}

#[tokio::test]
async fn moderation_accepts_rewrites_and_rejects_before_anyone_sees_a_message() -> Result<()> {
    let backend = backend().await?;
    let server = moderated(&backend, |_| {}).await;
    let mut ann = WsClient::connect(&server).await?;
    ann.join("lobby", "ann").await?;
    let hashes = published_hashes(&server).await?;
    let mut bob = WtClient::open(&server.wt_url(), &hashes, None).await?;
    bob.hello().await?;
    bob.join("lobby", "bob").await?;
    ann.publish("lobby", "hello").await?;
    let spam = ann.publish("lobby", "buy spam now").await?;
    ann.publish("lobby", "darn it").await?;
    ann.publish("lobby", "bye").await?;
    let seen: Vec<(u64, String)> = bob.chat(3).await?.into_iter().map(|m| (m.seq, m.body)).collect();
    assert_eq!(seen, [(1, "hello".into()), (2, "d**n it".into()), (3, "bye".into())]);
    let (request, code, text) = refusal(&mut ann).await?;
    assert_eq!((request, code, text.as_str()), (Some(spam), ErrorCode::REJECTED, "no advertising here"));
    let asked = backend.asked();
    assert_eq!(asked.len(), 4);
    assert_eq!(asked[0]["room"], "lobby");
    assert_eq!(asked[0]["sender"]["name"], "ann");
    assert!(asked[0]["sender"]["session_id"].is_u64() && asked[0]["sent_at_ms"].is_u64());
    let scrape = scrape_metrics(server.address).await?;
    let count =
        |verdict: &str| metric(&scrape, &format!("wtchat_moderation_reviews_total{{verdict=\"{verdict}\"}}"));
    assert_eq!((count("accepted"), count("replaced"), count("rejected")), (Some(2.0), Some(1.0), Some(1.0)));
    server.stop().await
}

#[tokio::test]
async fn a_senders_messages_keep_their_order_when_an_earlier_verdict_comes_later() -> Result<()> {
    let backend = backend().await?;
    let server = moderated(&backend, |_| {}).await;
    let mut ann = WsClient::connect(&server).await?;
    ann.join("lobby", "ann").await?;
    // The first takes 400 ms to judge, the others none.
    for body in ["slow first", "second", "third"] {
        ann.publish("lobby", body).await?;
    }
    let bodies: Vec<String> = ann.chat(3).await?.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["slow first", "second", "third"]);
    server.stop().await
}

#[tokio::test]
async fn without_a_verdict_a_message_is_refused_or_let_through_as_configured() -> Result<()> {
    let backend = backend().await?;
    let closed = moderated(&backend, |c| c.moderation_timeout_ms = 200).await;
    let mut ann = WsClient::connect(&closed).await?;
    ann.join("lobby", "ann").await?;
    for body in ["crash the backend", "too slow for 200 ms"] {
        let id = ann.publish("lobby", body).await?;
        let (request, code, _) = refusal(&mut ann).await?;
        assert_eq!((request, code), (Some(id), ErrorCode::MODERATION_UNAVAILABLE), "{body}");
    }
    ann.publish("lobby", "fine").await?;
    let first: Vec<(u64, String)> = ann.chat(1).await?.into_iter().map(|m| (m.seq, m.body)).collect();
    assert_eq!(first, [(1, "fine".into())], "nothing refused was published");
    let scrape = scrape_metrics(closed.address).await?;
    assert_eq!(metric(&scrape, "wtchat_moderation_reviews_total{verdict=\"unavailable\"}"), Some(2.0));
    closed.stop().await?;

    let open = moderated(&backend, |c| {
        c.moderation_timeout_ms = 200;
        c.moderation_fail_open = true;
    })
    .await;
    let mut ann = WsClient::connect(&open).await?;
    ann.join("lobby", "ann").await?;
    ann.publish("lobby", "crash the backend").await?;
    ann.publish("lobby", "spam is still refused").await?;
    assert_eq!(ann.chat(1).await?[0].body, "crash the backend", "let through when the backend is down");
    assert_eq!(refusal(&mut ann).await?.1, ErrorCode::REJECTED);
    let scrape = scrape_metrics(open.address).await?;
    assert_eq!(metric(&scrape, "wtchat_moderation_reviews_total{verdict=\"let_through\"}"), Some(1.0));
    open.stop().await
}
