//! The demo page and the wasm client in a real headless Chromium, against
//! the real server: what a person sees.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use wtchat_tests::browser::{Chromedriver, web_root};
use wtchat_tests::{TestServer, WsClient, metric, scrape_metrics};

async fn demo_server() -> TestServer {
    let root = web_root().to_path_buf();
    TestServer::start_with(move |c| {
        c.web_root = root;
        c.shutdown_retry_after = Duration::from_millis(200);
        c.shutdown_retry_spread = Duration::from_millis(300);
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
        page.wait_for(
            "(() => { const names = [...document.querySelectorAll('#members li')].map(li => li.textContent); \
             return names.includes('Ada') && names.includes('Bob'); })()",
        )
        .await?;
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
        c.admission.max_connections_per_ip = 1;
        c.refusal_retry_after = Duration::from_millis(1500);
        c.refusal_retry_spread = Duration::ZERO;
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
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| {
        c.listen = tcp;
        c.quic_listen = Some(quic);
        c.web_root = root;
    })
    .await;
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
