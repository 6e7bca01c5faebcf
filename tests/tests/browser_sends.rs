//! The page's sends in real browsers, against the real server, as a person
//! sees them: a message typed while the server is down waits as "sending…"
//! and arrives once when it is back; a message whose answer was lost with
//! its connection is sent again on the next one and still appears once; a
//! message the server refuses for what it is shows as not sent, with the
//! server's reason.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, ensure};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use wtchat_tests::browser::{Browser, Chromedriver, Driver, Page, demo_server_again, web_root};
use wtchat_tests::cross_server::until_body;
use wtchat_tests::{TestServer, WsClient, metric, scrape_metrics};

/// How many times the page shows `body` in its conversation.
async fn shown_times(page: &Page, body: &str) -> Result<usize> {
    Ok(page.shown_messages().await?.iter().filter(|shown| *shown == body).count())
}

/// The page's one send of `body`, once the client reported it in `state`.
async fn send_of(page: &Page, body: &str, state: &str) -> Result<serde_json::Value> {
    let body = serde_json::to_string(body)?;
    let find = format!(
        "Object.values(window.wtchatDemo.sends).find(s => s.body === {body} && s.state === '{state}')"
    );
    page.wait_for(&format!("!!({find})")).await?;
    page.eval(&find).await
}

/// What a member who joins `room` now finds in its history: each body once?
async fn history_of(server: &TestServer, room: &str) -> Result<Vec<String>> {
    let mut reader = WsClient::connect(server).await?;
    let (_, history) = reader.join(room, "reader").await?;
    Ok(history.into_iter().map(|m| m.body).collect())
}

#[tokio::test]
async fn a_message_typed_while_the_server_is_down_is_delivered_once_when_it_is_back() -> Result<()> {
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| c.web_root = root).await;
    let (tcp, quic) = (server.address, server.quic_address.expect("QUIC is on"));
    let driver = Chromedriver::start().await?;
    let page = driver.open(&format!("http://{tcp}/?name=Dee&room=lobby")).await?;
    page.wait_for("window.wtchatDemo.ready").await?;

    server.stop().await?;
    page.wait_for("document.getElementById('state').dataset.state === 'reconnecting'").await?;
    page.say("typed in the dark").await?;
    let waiting = send_of(&page, "typed in the dark", "pending").await?;
    let id = waiting["id"].as_str().unwrap_or_default().to_owned();
    let status =
        page.eval(&format!("document.querySelector('#outgoing li[data-id=\"{id}\"]').className")).await?;
    ensure!(status == "pending", "the page shows the message waiting: {status}");
    ensure!(page.eval("document.getElementById('text').value").await? == "", "the composer is free again");

    let server = demo_server_again(tcp, quic).await;
    let sent = send_of(&page, "typed in the dark", "sent").await?;
    ensure!(sent["id"] == waiting["id"] && sent["seq"].as_u64().is_some(), "{sent}");
    page.wait_for(&format!("!!document.querySelector('#messages li.mine[data-id=\"{id}\"]')")).await?;
    ensure!(
        page.eval("document.querySelectorAll('#outgoing li').length").await? == 0,
        "nothing waits any more"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(shown_times(&page, "typed in the dark").await? == 1);
    ensure!(history_of(&server, "lobby").await? == ["typed in the dark"], "the room has it once");
    page.close().await?;
    server.stop().await
}

/// A page sends and drops its connection at once, so that the answer is
/// lost; the client sends the message again on its next connection, and
/// it appears once, on the page and for another member.
async fn a_lost_answer_costs_no_duplicate(driver: &Driver, query: &str, transport: &str) -> Result<()> {
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| c.web_root = root).await;
    let page = driver.open(&format!("http://{}/?name=Eve&room=hall{query}", server.address)).await?;
    page.wait_for(&format!("document.getElementById('badge').dataset.transport === '{transport}'")).await?;
    page.wait_for("window.wtchatDemo.ready").await?;
    let mut other = WsClient::connect(&server).await?;
    other.join("hall", "other").await?;

    page.eval("(() => { const c = window.wtchatDemo.client; c.send('hall', 'said once'); c.reconnect(); return true; })()")
        .await?;
    let sent = send_of(&page, "said once", "sent").await?;
    page.wait_for("window.wtchatDemo.events.filter(e => e.type === 'joined' && e.rejoined).length >= 1")
        .await?;
    other.publish("hall", "the end").await?;
    let seen = until_body(&mut other, "the end").await?;
    ensure!(
        seen.iter().filter(|(_, body)| body == "said once").count() == 1,
        "{transport}: the other member saw {seen:?}"
    );
    page.wait_for("window.wtchatDemo.messages.some(m => m.body === 'the end')").await?;
    ensure!(shown_times(&page, "said once").await? == 1, "{transport}: the page shows it once");
    if transport == "websocket" {
        // A WebSocket delivers what was sent before its close, and a
        // closing one hands the page nothing more: the first send arrived
        // and its answer was lost, so the second was answered as a repeat.
        ensure!(sent["repeated"] == true, "{sent}");
    }
    page.close().await?;
    server.stop().await
}

#[tokio::test]
async fn a_message_whose_answer_was_lost_appears_once_on_both_transports_in_both_browsers() -> Result<()> {
    let chromium = Driver::start(Browser::Chromium).await?;
    a_lost_answer_costs_no_duplicate(&chromium, "", "webtransport").await?;
    a_lost_answer_costs_no_duplicate(&chromium, "&transport=websocket", "websocket").await?;
    let firefox = Driver::start(Browser::Firefox).await?;
    a_lost_answer_costs_no_duplicate(&firefox, "&transport=websocket", "websocket").await
}

const SECRET: &str = "the shared secret of the test issuer, 44 bytes";

#[tokio::test]
async fn a_message_refused_for_what_it_is_shows_as_not_sent_with_the_reason() -> Result<()> {
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| {
        c.web_root = root;
        c.auth_hs256_secret = Some(SECRET.into());
        c.max_message_bytes = 100;
        c.publish_rate_per_sec = 1;
        c.publish_burst = 10;
    })
    .await;
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 600;
    let claims = json!({ "sub": "fay", "exp": exp });
    let token =
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes()))?;
    let url = format!("http://{}/?name=Fay&room=hall&token={token}", server.address);
    let driver = Chromedriver::start().await?;
    let page = driver.open(&url).await?;
    page.wait_for("window.wtchatDemo.ready").await?;

    // Too large.
    page.say(&"x".repeat(101)).await?;
    let failed = send_of(&page, &"x".repeat(101), "failed").await?;
    ensure!(failed["code"] == "MESSAGE_TOO_LARGE", "{failed}");
    let shown = page.eval("document.querySelector('#outgoing li.failed .status').textContent").await?;
    ensure!(shown.as_str().unwrap_or_default().contains("not sent: the message is 101 bytes"), "{shown}");

    // Over the rate: the page spends the user's burst, and the user comes
    // back on a fresh page. The server keeps what the user's last session
    // left of its budget, refilled at one message a second; the fresh page
    // does not know it, and what the server refuses shows as not sent.
    for n in 1..=10 {
        page.say(&format!("burst {n}")).await?;
    }
    send_of(&page, "burst 10", "sent").await?;
    page.client.goto("about:blank").await?;
    wtchat_tests::server::eventually_async(Duration::from_secs(10), || async {
        let scrape = scrape_metrics(server.address).await.unwrap_or_default();
        let open = ["webtransport", "websocket"]
            .map(|t| metric(&scrape, &format!("wtchat_connections{{transport=\"{t}\"}}")).unwrap_or(1.0));
        open == [0.0, 0.0]
    })
    .await?;
    page.client.goto(&url).await?;
    page.wait_for("window.wtchatDemo.ready").await?;
    for n in 1..=10 {
        page.say(&format!("again {n}")).await?;
    }
    page.wait_for("Object.values(window.wtchatDemo.sends).some(s => s.code === 'RATE_LIMITED')").await?;
    let shown = page.eval("document.querySelector('#outgoing li.failed .status').textContent").await?;
    ensure!(shown.as_str().unwrap_or_default().contains("messages per second"), "{shown}");
    page.close().await?;
    server.stop().await
}
