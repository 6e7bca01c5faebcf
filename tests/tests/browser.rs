//! The demo page and the wasm client in real headless browsers (Chromium,
//! and Firefox where the tests say so), against the real server: what a
//! person sees.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use wtchat_protocol::ReasonCode;
use wtchat_tests::browser::{Browser, Chromedriver, Driver, Page, demo_server_again, web_root};
use wtchat_tests::{TestServer, WsClient, metric, scrape_metrics};

async fn demo_server() -> TestServer {
    let root = web_root().to_path_buf();
    TestServer::start_with(move |c| {
        c.web_root = root;
        c.shutdown_retry_after_ms = 200;
        c.shutdown_retry_spread_ms = 300;
    })
    .await
}

#[tokio::test]
async fn two_pages_chat_one_over_webtransport_and_one_over_websocket() -> Result<()> {
    let server = demo_server().await;
    let driver = Chromedriver::start().await?;
    let base = format!("http://{}", server.address);
    let ada = driver.open(&format!("{base}/?name=Ada&room=lobby")).await?;
    let bob = driver.open(&format!("{base}/?name=Bob&room=lobby&transport=websocket")).await?;

    // Each badge shows the transport the page should have.
    ada.wait_for("document.getElementById('badge').dataset.transport === 'webtransport'").await?;
    bob.wait_for("document.getElementById('badge').dataset.transport === 'websocket'").await?;
    assert_eq!(ada.eval("document.getElementById('badge').textContent").await?, "WebTransport");
    assert_eq!(bob.eval("document.getElementById('badge').textContent").await?, "WebSocket");
    let why = bob.eval("document.getElementById('fallback').textContent").await?;
    assert!(why.as_str().unwrap_or_default().contains("WebSocket was requested"), "{why}");
    // A page opened at localhost (which Chromium may reach over [::1], with
    // no fallback to IPv4 for QUIC) gets WebTransport too.
    let cy =
        driver.open(&format!("http://localhost:{}/?name=Cy&room=elsewhere", server.address.port())).await?;
    cy.wait_for("document.getElementById('badge').dataset.transport === 'webtransport'").await?;
    cy.close().await?;

    // Both see both in the member list.
    for page in [&ada, &bob] {
        wait_for_members(page, &["Ada", "Bob"]).await?;
    }

    // Messages both ways, in one order on both pages.
    ada.say("hello from WebTransport").await?;
    bob.wait_for("window.wtchatDemo.messages.some(m => m.body === 'hello from WebTransport')").await?;
    bob.say("hello from WebSocket").await?;
    ada.wait_for("window.wtchatDemo.messages.some(m => m.body === 'hello from WebSocket')").await?;
    let expected = vec!["hello from WebTransport".to_string(), "hello from WebSocket".to_string()];
    assert_eq!(ada.shown_messages().await?, expected);
    assert_eq!(bob.shown_messages().await?, expected);

    // Typing shows on the other page.
    bob.eval("(() => { const t = document.getElementById('text'); t.value = 'x'; t.dispatchEvent(new Event('input')); return true; })()")
        .await?;
    ada.wait_for("document.getElementById('typing').textContent.includes('Bob is typing')").await?;

    let screenshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots/demo-webtransport.png");
    ada.screenshot(&screenshot).await?;
    bob.screenshot(&screenshot.with_file_name("demo-websocket.png")).await?;
    assert!(std::fs::metadata(&screenshot)?.len() > 10_000, "the screenshot is empty");
    ada.close().await?;
    bob.close().await?;
    server.stop().await
}

#[tokio::test]
async fn a_page_whose_webtransport_cannot_work_falls_back_within_the_head_start() -> Result<()> {
    let server = demo_server().await;
    let driver = Chromedriver::start().await?;
    let base = format!("http://{}", server.address);
    // A generous WebTransport timeout, so that only the head start (400 ms)
    // can explain a quick fallback.
    let unused_udp = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let cases = [
        ("a refused certificate", format!("certHash={}", "00".repeat(32))),
        ("a blocked UDP port", format!("wt=https://127.0.0.1:{unused_udp}/wt")),
    ];
    for (case, parameter) in cases {
        let page = driver.open(&format!("{base}/?name=Cy&room=lobby&wtTimeout=20000&{parameter}")).await?;
        page.wait_for("document.getElementById('badge').dataset.transport === 'websocket'").await?;
        // The page's own clock, from navigation to the transport choice
        // (loading the page and the wasm client included).
        let chosen_at = page.eval("window.wtchatDemo.events.find(e => e.type === 'transport').at").await?;
        let chosen_at = chosen_at.as_f64().unwrap_or(f64::MAX);
        assert!(
            chosen_at < 400.0 + 3_000.0,
            "{case}: on WebSocket only {chosen_at} ms after navigation; the head start is 400 ms"
        );
        let why = page.eval("document.getElementById('fallback').textContent").await?;
        assert!(why.as_str().unwrap_or_default().contains("WebTransport"), "{case}: {why}");
        // And it works.
        page.wait_for("window.wtchatDemo.ready").await?;
        page.say(&format!("fallback after {case}")).await?;
        page.wait_for(&format!("window.wtchatDemo.messages.some(m => m.body === 'fallback after {case}')"))
            .await?;
        page.close().await?;
    }
    // Each page told the server why it is not on WebTransport.
    let metrics = scrape_metrics(server.address).await?;
    let count = |reason: &str| {
        metric(&metrics, &format!("wtchat_webtransport_fallbacks_total{{reason=\"{reason}\"}}"))
            .unwrap_or(0.0)
    };
    assert!(count("failed") + count("slow") >= 2.0, "fallbacks reported at hello:\n{metrics}");
    server.stop().await
}

#[tokio::test]
async fn a_page_turned_away_by_admission_waits_for_the_retry_hint_then_connects() -> Result<()> {
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| {
        c.web_root = root;
        c.max_connections_per_ip = 1;
        c.refusal_retry_after_ms = 1500;
        c.refusal_retry_spread_ms = 0;
    })
    .await;
    // The only place this address may have is taken.
    let holder = WsClient::connect(&server).await?;
    let driver = Chromedriver::start().await?;
    let page = driver.open(&format!("http://{}/?name=Dee&room=lobby", server.address)).await?;
    page.wait_for(
        "window.wtchatDemo.events.some(e => e.type === 'state' && e.state === 'reconnecting' && e.retryInMs >= 1500)",
    )
    .await?;
    let ready_early = page.eval("window.wtchatDemo.ready").await?;
    assert_eq!(ready_early, serde_json::Value::Bool(false), "no session while the place is taken");
    drop(holder);
    page.wait_for("window.wtchatDemo.ready").await?;
    page.say("in at last").await?;
    page.wait_for("window.wtchatDemo.messages.some(m => m.body === 'in at last')").await?;
    page.close().await?;
    server.stop().await
}

#[tokio::test]
async fn a_page_reconnects_after_a_server_restart_with_no_gap_or_duplicate() -> Result<()> {
    let server = demo_server().await;
    let (tcp, quic) = (server.address, server.quic_address.expect("QUIC is on"));
    let driver = Chromedriver::start().await?;
    let page = driver.open(&format!("http://{tcp}/?name=Dee&room=lobby")).await?;
    page.wait_for("window.wtchatDemo.ready").await?;
    let mut writer = WsClient::connect(&server).await?;
    writer.join("lobby", "writer").await?;
    for n in 1..=3 {
        writer.publish("lobby", &format!("before {n}")).await?;
    }
    page.wait_for("window.wtchatDemo.messages.length === 3").await?;

    // The server restarts on the same ports.
    server.stop().await?;
    page.wait_for("document.getElementById('state').dataset.state === 'reconnecting'").await?;
    let server = demo_server_again(tcp, quic).await;
    page.wait_for("document.getElementById('state').dataset.state === 'connected'").await?;
    let mut writer = WsClient::connect(&server).await?;
    writer.join("lobby", "writer").await?;
    // The page rejoined by itself.
    page.wait_for(
        "window.wtchatDemo.events.filter(e => e.type === 'joined' && e.room === 'lobby' && e.rejoined).length >= 1",
    )
    .await?;
    for n in 1..=3 {
        writer.publish("lobby", &format!("after {n}")).await?;
    }
    page.wait_for("window.wtchatDemo.messages.length >= 6").await?;
    // Let anything duplicated have time to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shown = page.shown_messages().await?;
    assert_eq!(shown, ["before 1", "before 2", "before 3", "after 1", "after 2", "after 3"]);
    page.close().await?;
    server.stop().await
}

/// Waits until the page's member list shows every one of `names`.
async fn wait_for_members(page: &Page, names: &[&str]) -> Result<()> {
    let names = serde_json::to_string(names)?;
    page.wait_for(&format!(
        "(() => {{ const shown = [...document.querySelectorAll('#members li')].map(li => li.textContent); \
         return {names}.every(name => shown.includes(name)); }})()"
    ))
    .await?;
    Ok(())
}

/// Opens a page in `driver`'s browser and waits until it is on `transport`.
async fn page_on(driver: &Driver, url: &str, transport: &str) -> Result<Page> {
    page_on_once_launched(driver, || url.to_owned(), transport).await
}

/// As [`page_on`], with the URL made once the browser runs: a URL holding
/// a short-lived token must not spend its life on the browser's start,
/// which takes seconds for a fresh Firefox on a loaded machine.
async fn page_on_once_launched(
    driver: &Driver,
    url: impl FnOnce() -> String,
    transport: &str,
) -> Result<Page> {
    let page = driver.open("about:blank").await?;
    page.client.goto(&url()).await?;
    page.wait_for(&format!("document.getElementById('badge').dataset.transport === '{transport}'"))
        .await
        .with_context(|| format!("{} did not get onto {transport}", driver.browser().name()))?;
    page.wait_for("window.wtchatDemo.ready").await?;
    Ok(page)
}

/// A Chromium page and a Firefox page in one room, both on `transport`,
/// chat both ways and see one order.
async fn chromium_and_firefox_chat(query: &str, transport: &str) -> Result<()> {
    let server = demo_server().await;
    let chromium = Driver::start(Browser::Chromium).await?;
    let firefox = Driver::start(Browser::Firefox).await?;
    let base = format!("http://{}", server.address);
    let ada = page_on(&chromium, &format!("{base}/?name=Ada&room=browsers{query}"), transport).await?;
    let bob = page_on(&firefox, &format!("{base}/?name=Bob&room=browsers{query}"), transport).await?;
    for page in [&ada, &bob] {
        wait_for_members(page, &["Ada", "Bob"]).await?;
    }
    ada.say("from Chromium").await?;
    bob.wait_for("window.wtchatDemo.messages.some(m => m.body === 'from Chromium')").await?;
    bob.say("from Firefox").await?;
    ada.wait_for("window.wtchatDemo.messages.some(m => m.body === 'from Firefox')").await?;
    let expected = vec!["from Chromium".to_string(), "from Firefox".to_string()];
    assert_eq!(ada.shown_messages().await?, expected);
    assert_eq!(bob.shown_messages().await?, expected);
    let screenshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/screenshots/firefox-{transport}.png"));
    bob.screenshot(&screenshot).await?;
    ada.close().await?;
    bob.close().await?;
    server.stop().await
}

#[tokio::test]
async fn a_firefox_page_and_a_chromium_page_chat_over_webtransport() -> Result<()> {
    chromium_and_firefox_chat("", "webtransport").await
}

#[tokio::test]
async fn a_firefox_page_and_a_chromium_page_chat_when_both_are_forced_to_websocket() -> Result<()> {
    chromium_and_firefox_chat("&transport=websocket", "websocket").await
}

/// Waits until the page reports that the server closed its connection with
/// `code`, read from the transport's own close: the WebSocket close frame, or
/// the WebTransport session's close (`WebTransport.closed`).
async fn wait_for_close_code(page: &Page, code: u16, what: &str) -> Result<()> {
    page.wait_for(&format!(
        "window.wtchatDemo.events.some(e => e.type === 'error' && e.code === 'CLOSED_BY_SERVER' && e.closeCode === {code})"
    ))
    .await
    .with_context(|| format!("{what}: the page was not told {code}"))?;
    Ok(())
}

#[tokio::test]
async fn a_drain_reaches_pages_with_its_close_code_in_both_browsers_on_both_transports() -> Result<()> {
    let server = demo_server().await;
    let base = format!("http://{}", server.address);
    let mut pages = Vec::new();
    let mut drivers = Vec::new();
    for browser in Browser::ALL {
        let driver = Driver::start(browser).await?;
        for (query, transport) in [("", "webtransport"), ("&transport=websocket", "websocket")] {
            let page = page_on(&driver, &format!("{base}/?name=Eve&room=drain{query}"), transport).await?;
            pages.push((format!("{} on {transport}", browser.name()), page));
        }
        drivers.push(driver);
    }
    server.stop().await?;
    for (what, page) in &pages {
        wait_for_close_code(page, ReasonCode::SERVER_SHUTDOWN.0, what).await?;
    }
    for (_, page) in pages {
        page.close().await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_page_frozen_past_the_heartbeat_is_closed_and_told_why_in_both_browsers() -> Result<()> {
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| {
        c.web_root = root;
        c.heartbeat_interval_ms = 300;
        c.heartbeat_timeout_ms = 1200;
    })
    .await;
    let base = format!("http://{}", server.address);
    for browser in Browser::ALL {
        let driver = Driver::start(browser).await?;
        for (query, transport) in [("", "webtransport"), ("&transport=websocket", "websocket")] {
            let what = format!("{} on {transport}", browser.name());
            let page = page_on(&driver, &format!("{base}/?name=Fay&room=frozen{query}"), transport).await?;
            // A long script freezes the page: no pings leave it, and the
            // server closes the session for silence.
            page.eval(
                "(() => { const until = Date.now() + 2500; while (Date.now() < until) {} return true; })()",
            )
            .await?;
            wait_for_close_code(&page, ReasonCode::HEARTBEAT_TIMEOUT.0, &what).await?;
            // The code says to come back, and the page does.
            page.wait_for("document.getElementById('state').dataset.state === 'connected'").await?;
            page.close().await?;
        }
    }
    server.stop().await
}

#[tokio::test]
async fn a_large_room_shows_its_count_and_pages_its_members_in_both_browsers() -> Result<()> {
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| {
        c.web_root = root;
        c.presence_names_max = 50;
        c.max_new_connections_per_sec = 0;
    })
    .await;
    // A crowd of 150 that stays: more than the first page of 100.
    let mut crowd = Vec::new();
    for i in 0..150 {
        let mut member = WsClient::connect(&server).await?;
        member.join("hall", &format!("guest{i:03}")).await?;
        crowd.push(member);
    }
    let base = format!("http://{}", server.address);
    for browser in Browser::ALL {
        let driver = Driver::start(browser).await?;
        let page = driver.open(&format!("{base}/?name=Ada&room=hall&transport=websocket")).await?;
        // The count covers everyone; the list holds the first page and a
        // button for the rest.
        page.wait_for("window.wtchatDemo.memberCount === 151").await?;
        let shown = "document.querySelectorAll('#members li').length";
        page.wait_for(&format!("{shown} === 101 && !!document.getElementById('more-members')")).await?;
        let count = page.eval("document.getElementById('member-count').textContent").await?;
        assert_eq!(count.as_str(), Some("151 members"), "{}", browser.name());
        page.eval("(() => { document.getElementById('more-members').click(); return true; })()").await?;
        page.wait_for(&format!("{shown} === 151 && !document.getElementById('more-members')")).await?;
        let screenshot = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../target/screenshots/large-room-{}.png", browser.name()));
        page.screenshot(&screenshot).await?;
        page.close().await?;
    }
    drop(crowd);
    server.stop().await
}

/// A token for `sub` that the server counts as valid for `seconds` more (it
/// adds 30 s of leeway to `exp`).
fn short_token(secret: &str, sub: &str, seconds: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({ "sub": sub, "exp": now + seconds - 30 });
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap_or_default()
}

#[tokio::test]
async fn pages_keep_their_sessions_across_token_expiry_through_the_page_callback() -> Result<()> {
    const SECRET: &str = "the shared secret of the test issuer, 44 bytes";
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| {
        c.web_root = root;
        c.auth_hs256_secret = Some(SECRET.into());
    })
    .await;
    // The app's backend hands out tokens good for ten minutes.
    let issuer =
        wtchat_tests::token_issuer::TokenIssuer::start(|| short_token(SECRET, "reader", 600)).await?;
    let chromium = Driver::start(Browser::Chromium).await?;
    let firefox = Driver::start(Browser::Firefox).await?;
    let base = format!("http://{}", server.address);
    let page = |sub: &str, transport: &str| {
        format!(
            "{base}/?name=x&room=tokens&token={}&tokenUrl={}{transport}",
            short_token(SECRET, sub, 6),
            issuer.url()
        )
    };
    let ada = page_on_once_launched(&chromium, || page("reader", ""), "webtransport").await?;
    let bob = page_on_once_launched(&firefox, || page("reader", "&transport=websocket"), "websocket").await?;
    let refreshed = "window.wtchatDemo.events.some(e => e.type === 'token' && e.event === 'refreshed' && e.expiresInMs > 500000)";
    for page in [&ada, &bob] {
        page.wait_for_within(refreshed, Duration::from_secs(15)).await?;
    }
    assert!(issuer.issued() >= 2, "each page asked the app's backend");
    // Past the first tokens' expiry (6 s after they were made), both pages
    // are still on their first connection.
    tokio::time::sleep(Duration::from_secs(5)).await;
    ada.say("after the first token").await?;
    bob.wait_for("window.wtchatDemo.messages.some(m => m.body === 'after the first token')").await?;
    for page in [&ada, &bob] {
        let connections =
            page.eval("window.wtchatDemo.events.filter(e => e.type === 'transport').length").await?;
        assert_eq!(connections, 1, "no reconnect");
        let closed = page
            .eval("window.wtchatDemo.events.some(e => e.type === 'error' && e.code === 'CLOSED_BY_SERVER')")
            .await?;
        assert_eq!(closed, false);
    }
    ada.close().await?;
    bob.close().await?;
    server.stop().await
}

#[tokio::test]
async fn a_page_loads_older_messages_when_scrolled_to_the_top() -> Result<()> {
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| {
        c.web_root = root;
        c.history_len = 100;
        c.history_replay = 10;
        c.publish_rate_per_sec = 1_000;
        c.publish_burst = 1_000;
    })
    .await;
    let mut writer = WsClient::connect(&server).await?;
    writer.join("annals", "writer").await?;
    let sent: Vec<String> = (1..=70).map(|n| format!("entry {n}")).collect();
    for body in &sent {
        writer.publish("annals", body).await?;
    }
    let driver = Chromedriver::start().await?;
    let page = driver.open(&format!("http://{}/?name=Hal&room=annals", server.address)).await?;
    page.wait_for("window.wtchatDemo.messages.length === 10").await?;
    assert_eq!(page.shown_messages().await?, sent[60..], "a join shows the newest ten");
    page.wait_for("!document.getElementById('older').hidden").await?;

    // Scrolled to the top, the page fetches a page of fifty, then the rest.
    let scroll_up = "(() => { const list = document.getElementById('messages'); list.scrollTop = 0; \
                     list.dispatchEvent(new Event('scroll')); return true; })()";
    page.eval(scroll_up).await?;
    page.wait_for("document.querySelectorAll('#messages li[data-seq]').length === 60").await?;
    page.eval(scroll_up).await?;
    page.wait_for("document.querySelectorAll('#messages li[data-seq]').length === 70").await?;
    assert_eq!(page.shown_messages().await?, sent, "every message once, in order");
    page.wait_for("document.getElementById('older').hidden").await?;
    let pages = page
        .eval("window.wtchatDemo.events.filter(e => e.type === 'history').map(e => [e.count, e.more])")
        .await?;
    assert_eq!(pages, serde_json::json!([[50, true], [10, false]]));
    page.close().await?;
    server.stop().await
}
