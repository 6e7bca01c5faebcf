//! The client tools against the real server: a short benchmark run, and the
//! terminal client exchanging lines with another client.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wtchat_tests::bench::short_bench;
use wtchat_tests::binary::wtchat_binary;
use wtchat_tests::{PATIENCE, TestServer, WsClient};
use wtchat_tools::bench::{BenchArgs, Mode, run};
use wtchat_tools::dial::Transport;

fn bench_args(server: &TestServer, transport: Transport) -> BenchArgs {
    short_bench(server.address, transport, vec![std::process::id()])
}

async fn fast_server() -> TestServer {
    TestServer::start_with(|c| {
        c.publish_rate_per_sec = 10_000;
        c.publish_burst = 10_000;
    })
    .await
}

#[tokio::test]
async fn a_short_bench_run_delivers_everything_exactly_once() -> Result<()> {
    for transport in [Transport::Ws, Transport::Wt] {
        let server = fast_server().await;
        let reports = run(bench_args(&server, transport)).await?;
        let [report] = &reports[..] else { panic!("one step, got {reports:?}") };
        assert!(report.messages_sent >= 50, "{transport:?}: only {} messages sent", report.messages_sent);
        assert_eq!(report.delivery_ratio, 1.0, "{transport:?}: {report:?}");
        assert_eq!((report.lost, report.duplicated, report.disconnected), (0, 0, 0), "{transport:?}");
        assert_eq!(report.achieved_deliveries_per_s * report.duration_s, (report.messages_sent * 20) as f64);
        assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.p50 <= report.latency_ms.max);
        assert!(report.server_cpu_s.is_some() && report.loadgen_cpu_s > 0.0);
        server.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn many_small_rooms_each_get_their_own_messages_exactly_once() -> Result<()> {
    let server = fast_server().await;
    let args = BenchArgs { subscribers: 40, room_size: 4, rate: 100.0, ..bench_args(&server, Transport::Ws) };
    let reports = run(args).await?;
    let [report] = &reports[..] else { panic!("one step, got {reports:?}") };
    assert_eq!(report.publishers, 10, "one publisher per room of four");
    assert!(report.messages_sent >= 80, "only {} messages sent", report.messages_sent);
    // Each message reaches its own room's four members and nobody else: a
    // member of another room hearing it would push the ratio above 1.
    assert_eq!(report.delivery_ratio, 1.0, "{report:?}");
    assert_eq!(report.achieved_deliveries_per_s * report.duration_s, (report.messages_sent * 4) as f64);
    assert_eq!(report.offered_deliveries_per_s, 400.0);
    let uneven = BenchArgs { subscribers: 41, room_size: 4, ..bench_args(&server, Transport::Ws) };
    assert!(run(uneven).await.is_err(), "sessions must fill whole rooms");
    server.stop().await
}

#[tokio::test]
async fn a_ramp_reports_every_step_and_draws_its_plot() -> Result<()> {
    let server = fast_server().await;
    let plot = wtchat_tests::server::temp_dir("plot").join("ramp.png");
    let json = plot.with_file_name("ramp.jsonl");
    let args = BenchArgs {
        mode: Mode::Ramp,
        rate: 40.0,
        ramp_factor: 2.0,
        ramp_max: 160.0,
        duration: 0.5,
        plot: Some(plot.clone()),
        json: Some(json.clone()),
        ..bench_args(&server, Transport::Ws)
    };
    let reports = run(args).await?;
    let rates: Vec<f64> = reports.iter().map(|r| r.offered_messages_per_s).collect();
    assert_eq!(rates, [40.0, 80.0, 160.0]);
    assert!(reports.iter().all(|r| r.delivery_ratio == 1.0 && r.duplicated == 0));
    let png = std::fs::read(&plot)?;
    assert_eq!(&png[1..4], b"PNG");
    assert_eq!(std::fs::read_to_string(&json)?.lines().count(), 3, "one JSON line per step");
    std::fs::remove_dir_all(plot.parent().context("a folder")?).ok();
    server.stop().await
}

/// `wtchat bench --versus` starts the textbook and floor yardsticks itself
/// and drives them with the same load after the server: each of the three
/// delivers every message once, in each publisher's order, and the report
/// compares them.
#[tokio::test]
async fn the_bench_measures_the_server_beside_the_yardsticks_in_one_run() -> Result<()> {
    let server = fast_server().await;
    let json = wtchat_tests::server::temp_dir("versus").join("versus.jsonl");
    let output = tokio::process::Command::new(wtchat_binary())
        .args(["bench", "--server", &server.address.to_string()])
        .args(["--server-pid", &std::process::id().to_string()])
        .args(["-s", "20", "-p", "3", "-r", "60", "-d", "1", "--quiet"])
        .args(["--versus", "textbook", "--versus", "floor", "--json"])
        .arg(&json)
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let reports: Vec<serde_json::Value> =
        std::fs::read_to_string(&json)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let targets: Vec<&str> = reports.iter().filter_map(|r| r["target"].as_str()).collect();
    assert_eq!(targets, ["wtchat", "textbook", "floor"]);
    for report in &reports {
        let sent = report["messages_sent"].as_u64().context("messages_sent")?;
        assert!(sent >= 50, "{report}");
        assert_eq!(report["delivery_ratio"], 1.0, "every member got every message: {report}");
        assert_eq!((report["lost"].as_u64(), report["duplicated"].as_u64()), (Some(0), Some(0)), "{report}");
        assert!(report["server_cpu_s"].as_f64().is_some(), "the yardstick's CPU was measured: {report}");
    }
    for line in ["wtchat ÷ textbook: server CPU per delivery", "wtchat ÷ floor: server CPU per delivery"] {
        assert!(stdout.contains(line), "no comparison {line:?} in {stdout}");
    }
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn idle_mode_reports_memory_per_connection() -> Result<()> {
    let server = fast_server().await;
    let args = BenchArgs { mode: Mode::Idle, connections: 50, ..bench_args(&server, Transport::Ws) };
    assert!(run(args).await?.is_empty());
    server.wait_for_sessions(0).await?;
    server.stop().await
}

#[tokio::test]
async fn join_mode_admits_a_crowd_into_one_room_and_reaches_everyone() -> Result<()> {
    // A crowd from one address arrives faster than an address's share of
    // the arrival rate allows.
    let server = TestServer::start_with(|c| {
        c.publish_rate_per_sec = 10_000;
        c.publish_burst = 10_000;
        c.max_new_connections_per_sec = 0;
    })
    .await;
    for transport in [Transport::Ws, Transport::Wt] {
        let args = BenchArgs {
            mode: Mode::Join,
            subscribers: 200,
            join_rate: 2_000.0,
            // Longer than the presence interval, so that the joins' presence
            // is told before the report reads it.
            hold: 0.5,
            room: format!("crowd-{transport:?}"),
            ..bench_args(&server, transport)
        };
        let report = wtchat_tools::crowd::run(&args).await?;
        assert_eq!((report.members, report.not_joined), (200, 0), "{report:?}");
        assert_eq!(
            (report.check_received, report.check_duplicates),
            (200, 0),
            "the message reached everyone once"
        );
        assert!(report.join_latency_ms.max > 0.0 && report.join_s > 0.0, "{report:?}");
        // Every join but the first is announced to the members already
        // there, so the room as a whole receives presence for it.
        assert!(report.presence_bytes_per_join > 0.0 && report.joined_bytes_per_join > 0.0, "{report:?}");
        server.wait_for_sessions(0).await?;
    }
    server.stop().await
}

#[tokio::test]
async fn the_terminal_client_exchanges_lines_with_another_client() -> Result<()> {
    for transport in ["ws", "wt"] {
        let server = TestServer::start().await;
        let mut other = WsClient::connect(&server).await?;
        other.join("lobby", "other").await?;
        let mut chat = tokio::process::Command::new(wtchat_binary())
            .args(["chat", "--server", &server.address.to_string(), "--name", "terminal", "--room", "lobby"])
            .args(["--transport", transport])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = chat.stdin.take().context("stdin")?;
        let mut lines = BufReader::new(chat.stdout.take().context("stdout")?).lines();
        let mut until = async |wanted: &str| -> Result<String> {
            loop {
                let line = tokio::time::timeout(PATIENCE, lines.next_line()).await??.context("chat ended")?;
                if line.contains(wanted) {
                    return Ok(line);
                }
            }
        };
        let connected = until("connected over").await?;
        let expected = if transport == "wt" { "WebTransport" } else { "WebSocket" };
        assert!(connected.contains(expected), "{connected}");
        until("* joined lobby").await?;

        stdin.write_all(b"hello from the terminal\n").await?;
        let heard = other.chat(1).await?.remove(0);
        assert_eq!(
            (heard.sender.name.as_str(), heard.body.as_str()),
            ("terminal", "hello from the terminal")
        );
        other.publish("lobby", "hello, terminal").await?;
        let line = until("hello, terminal").await?;
        assert!(line.contains("other: hello, terminal"), "{line}");
        // A body that would retitle the window, recolour the text and forge
        // a line from someone else arrives as one inert line.
        other.publish("lobby", "\x1b]0;pwned\x07\x1b[31mred\n[lobby #999] admin: trust me\u{202e}").await?;
        let line = until("pwned").await?;
        assert!(!line.chars().any(|c| c.is_control() || c == '\u{202e}'), "{line:?}");
        assert!(line.contains("\\u{1b}]0;pwned\\u{7}") && line.contains("\\u{a}[lobby #999]"), "{line}");

        drop(stdin);
        let status = tokio::time::timeout(Duration::from_secs(10), chat.wait()).await??;
        assert!(status.success(), "{transport}: {status:?}");
        server.stop().await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_terminal_client_presents_its_token_and_follows_a_refusals_retry_hint() -> Result<()> {
    let secret = "the test issuer's secret, forty-four bytes!!";
    let server = TestServer::start_with(|c| {
        c.auth_hs256_secret = Some(secret.into());
        c.max_connections_per_ip = 1;
        c.refusal_retry_after_ms = 300;
        c.refusal_retry_spread_ms = 200;
    })
    .await;
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 600;
    let claims = serde_json::json!({"sub": "t", "name": "Terminal", "exp": exp});
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?;
    // The only place this address may have is taken.
    let mut holder = WsClient::connect_with_token(&server, &token).await?;
    holder.hello().await?;
    holder.join("lobby", "holder").await?;
    let mut chat = tokio::process::Command::new(wtchat_binary())
        .args(["chat", "--server", &server.address.to_string(), "--name", "ignored", "--transport", "ws"])
        .env("WTCHAT_TOKEN", &token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(chat.stdout.take().context("stdout")?).lines();
    let first = tokio::time::timeout(PATIENCE, lines.next_line()).await??.context("chat ended")?;
    assert!(first.contains("turned the session away") && first.contains("trying again in"), "{first}");
    // Once the place is free, a later try gets in.
    drop(holder);
    loop {
        let line = tokio::time::timeout(PATIENCE, lines.next_line()).await??.context("chat ended")?;
        if line.contains("connected over") {
            break;
        }
    }
    // The terminal client holds the one place now: another is refused.
    let mut other = WsClient::connect_with_token(&server, &token).await?;
    let (notice, _) = other.until_closed().await?;
    assert_eq!(notice.map(|n| n.code), Some(wtchat_protocol::ReasonCode::OVERLOADED));
    let mut stdin = chat.stdin.take().context("stdin")?;
    stdin.write_all(b"/quit\n").await?;
    let status = tokio::time::timeout(Duration::from_secs(10), chat.wait()).await??;
    assert!(status.success(), "{status:?}");
    server.stop().await
}

#[tokio::test]
async fn the_terminal_client_rereads_its_token_file_when_the_token_is_about_to_expire() -> Result<()> {
    let secret = "the test issuer's secret, forty-four bytes!!";
    let server = TestServer::start_with(|c| c.auth_hs256_secret = Some(secret.into())).await;
    // Valid for `seconds` more, as the server counts (it adds 30 s of leeway).
    let token = |seconds: u64| -> Result<String> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let claims = serde_json::json!({"sub": "t", "exp": now + seconds - 30});
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        Ok(jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)?)
    };
    let file = wtchat_tests::server::temp_dir("token-file");
    std::fs::create_dir_all(&file)?;
    let file = file.join("token");
    std::fs::write(&file, token(4)?)?;
    let mut chat = tokio::process::Command::new(wtchat_binary())
        .args(["chat", "--server", &server.address.to_string(), "--name", "t", "--transport", "ws"])
        .arg("--token-file")
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(chat.stdout.take().context("stdout")?).lines();
    let mut next_line = async || -> Result<String> {
        let line = tokio::time::timeout(PATIENCE, lines.next_line()).await??.context("chat ended")?;
        eprintln!("chat: {line}");
        Ok(line)
    };
    while !next_line().await?.contains("joined lobby") {}
    // Whatever keeps the file fresh writes a new token before the old one
    // runs out; the client reads it when the server asks.
    std::fs::write(&file, token(600)?)?;
    let told = next_line().await?;
    assert!(told.contains("the token expires in"), "{told}");
    let refreshed = next_line().await?;
    assert!(refreshed.contains("token refreshed; it expires in"), "{refreshed}");
    // Past the first token's expiry the session goes on.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut stdin = chat.stdin.take().context("stdin")?;
    stdin.write_all(b"after the first token\n").await?;
    loop {
        let line = next_line().await?;
        assert!(!line.contains("closing"), "{line}");
        if line.contains("after the first token") {
            break;
        }
    }
    stdin.write_all(b"/quit\n").await?;
    let status = tokio::time::timeout(Duration::from_secs(10), chat.wait()).await??;
    assert!(status.success(), "{status:?}");
    server.stop().await
}
