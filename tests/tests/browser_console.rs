//! The operator's console in headless Chromium against a live server: it
//! asks for the admin token, its charts move while traffic flows, it lists
//! rooms and their members with their transports, a click disconnects a
//! member (whose page is told with the code), and two clicks drain the
//! server.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use wtchat_protocol::ReasonCode;
use wtchat_tests::browser::{Chromedriver, Page, web_root};
use wtchat_tests::webtransport::published_hashes;
use wtchat_tests::{TestServer, WsClient, WtClient, http_get};

const ADMIN: &str = "the operators admin token";

/// Runs a statement in the page (a click, a form filled in).
async fn run(page: &Page, statement: &str) -> Result<()> {
    page.eval(&format!("(() => {{ {statement}; return true; }})()")).await?;
    Ok(())
}

/// The `points` of a chart's line, as drawn now.
async fn line(console: &Page, chart: &str, name: &str) -> Result<String> {
    let points = console
        .eval(&format!("document.querySelector('#chart-{chart} polyline[data-line=\"{name}\"]')?.getAttribute('points') ?? ''"))
        .await?;
    Ok(points.as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn the_console_shows_a_live_server_disconnects_a_member_and_drains() -> Result<()> {
    let root = web_root().to_path_buf();
    let server = TestServer::start_with(move |c| {
        c.web_root = root;
        c.admin_token = Some(ADMIN.into());
    })
    .await;
    let base = format!("http://{}", server.address);
    let driver = Chromedriver::start().await?;
    let pat = driver.open(&format!("{base}/?name=Pat&room=hall")).await?;
    pat.wait_for("window.wtchatDemo.ready").await?;
    let mut talker = WsClient::connect(&server).await?;
    talker.join("hall", "talker").await?;
    let hashes = published_hashes(&server).await?;
    let mut listener = WtClient::open(&server.wt_url(), &hashes, None).await?;
    listener.hello().await?;
    listener.join("hall", "listener").await?;

    // The console asks for the token, and says so when it is wrong.
    let console = driver.open(&format!("{base}/console")).await?;
    console.wait_for("!document.getElementById('login').hidden").await?;
    run(&console, "document.getElementById('token').value = 'not the admin token'; document.getElementById('login').requestSubmit()").await?;
    console.wait_for("document.getElementById('error').textContent.includes('not accepted')").await?;
    run(&console, &format!("document.getElementById('token').value = '{ADMIN}'; document.getElementById('login').requestSubmit()")).await?;
    console.wait_for("window.wtchatConsole.ready").await?;

    // Traffic moves the charts: messages per second rise above zero.
    let quiet = line(&console, "messages", "messages/s").await?;
    let traffic = tokio::spawn(async move {
        // Eight a second, under the default rate limit of ten.
        for n in 0..80 {
            talker.publish("hall", &format!("message {n}")).await?;
            tokio::time::sleep(Duration::from_millis(125)).await;
        }
        anyhow::Ok(talker)
    });
    console
        .wait_for_within(
            "window.wtchatConsole.samples.some(s => s.values.messages[0] > 5 && s.values.messages[1] > 10)",
            Duration::from_secs(15),
        )
        .await?;
    let busy = line(&console, "messages", "messages/s").await?;
    ensure!(!busy.is_empty() && busy != quiet, "the messages chart did not move: {quiet} / {busy}");
    let sessions = console.eval("window.wtchatConsole.samples.at(-1).values.sessions").await?;
    ensure!(
        sessions == serde_json::json!([2, 1]),
        "sessions by transport (WebTransport, WebSocket): {sessions}"
    );
    let _talker = traffic.await??;

    // The room, its three members and their transports.
    console
        .wait_for(
            "document.querySelector('tr.room[data-room=\"hall\"] td:nth-child(2)')?.textContent === '3'",
        )
        .await?;
    run(&console, "document.querySelector('tr.room[data-room=\"hall\"]').click()").await?;
    console.wait_for("document.querySelectorAll('#members tr').length === 3").await?;
    let rows: Value = console
        .eval("[...document.querySelectorAll('#members tr')].map(r => [...r.cells].slice(1, 3).map(c => c.textContent))")
        .await?;
    let mut rows: Vec<Vec<String>> = serde_json::from_value(rows)?;
    rows.sort();
    ensure!(
        rows == [["Pat", "webtransport"], ["listener", "webtransport"], ["talker", "websocket"]],
        "members and transports: {rows:?}"
    );
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots/console.png");
    console.screenshot(&screenshot).await?;

    // Disconnecting Pat closes Pat's page with the code, for good.
    run(&console, "[...document.querySelectorAll('#members tr')].find(r => r.cells[1].textContent === 'Pat').querySelector('button').click()").await?;
    pat.wait_for(&format!(
        "window.wtchatDemo.events.some(e => e.type === 'state' && e.state === 'closed' && e.closeCode === {})",
        ReasonCode::DISCONNECTED.0
    ))
    .await
    .context("Pat's page was not closed with DISCONNECTED")?;
    console.wait_for("document.querySelectorAll('#members tr').length === 2").await?;

    // Draining takes two clicks.
    run(&console, "document.getElementById('drain').click()").await?;
    let (_, status) = http_get(server.address, "/status", &[]).await?;
    ensure!(status.contains("\"draining\":false"), "one click does not drain: {status}");
    run(&console, "document.getElementById('drain').click()").await?;
    console.wait_for("!document.getElementById('draining').hidden").await?;
    console.close().await?;
    pat.close().await?;
    server.exited().await
}
