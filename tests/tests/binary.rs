//! The `wtchat` binary as an operator runs it: flags, a config file, a
//! WebSocket client and a WebTransport client chatting through it, and a
//! graceful stop on SIGTERM.

use std::process::Command;

use anyhow::Result;
use wtchat_protocol::ReasonCode;
use wtchat_tests::binary::{Binary, wtchat_binary};
use wtchat_tests::server::temp_dir;
use wtchat_tests::webtransport::published_hashes_at;
use wtchat_tests::{WsClient, WtClient};

#[tokio::test]
async fn the_binary_chats_over_both_transports_and_stops_gracefully() -> Result<()> {
    let dir = temp_dir("binary");
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("wtchat.toml");
    std::fs::write(
        &config,
        "history_len = 3\nshutdown_retry_after_ms = 2000\nshutdown_retry_spread_ms = 0\n",
    )?;
    let certs = dir.join("certs");
    let mut binary = Binary::start(&[
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap_or_default(),
        "--history-len",
        "2",
        "--cert-dir",
        certs.to_str().unwrap_or_default(),
    ])?;
    let url = binary.webtransport_url.clone().expect("WebTransport is on by default");

    let mut alice = WsClient::connect_at(binary.address, None, None).await?;
    alice.hello().await?;
    alice.join("lobby", "alice").await?;
    for n in 1..=3 {
        alice.publish("lobby", &format!("hi {n}")).await?;
    }
    alice.chat(3).await?;

    // Bob comes over WebTransport, trusting the hashes the page would fetch.
    let hashes = published_hashes_at(binary.address).await?;
    let mut bob = WtClient::open(&url, &hashes, None).await?;
    bob.hello().await?;
    let (joined, history) = bob.join("lobby", "bob").await?;
    assert_eq!((joined.history.count, history.len()), (2, 2), "the flag (2) overrides the file (3)");
    bob.publish("lobby", "hello alice").await?;
    let message = alice.chat(1).await?.remove(0);
    assert_eq!((message.body.as_str(), message.sender.name.as_str()), ("hello alice", "bob"));
    alice.publish("lobby", "hello bob").await?;
    assert_eq!(bob.chat(1).await?.last().map(|m| m.body.clone()), Some("hello alice".into()));
    assert_eq!(bob.chat(1).await?[0].body, "hello bob");

    // SIGTERM: both sessions get the notice with the configured hint.
    // Both read while the server drains, as live clients do.
    let terminate = tokio::task::spawn_blocking(move || binary.terminate());
    let (alice_closed, bob_closed) = tokio::join!(alice.until_closed(), bob.until_closed());
    for closing in [alice_closed?.0, bob_closed?.0] {
        let closing = closing.expect("a closing notice");
        assert_eq!((closing.code, closing.retry_after_ms), (ReasonCode::SERVER_SHUTDOWN, Some(2000)));
    }
    assert!(terminate.await??, "wtchat exited with an error after SIGTERM");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[tokio::test]
async fn the_binary_can_serve_websocket_alone() -> Result<()> {
    let dir = temp_dir("binary-ws-only");
    let binary = Binary::start(&[
        "--listen",
        "127.0.0.1:0",
        "--no-webtransport",
        "--cert-dir",
        dir.to_str().unwrap_or_default(),
    ])?;
    assert_eq!(binary.webtransport_url, None);
    let mut client = WsClient::connect_at(binary.address, None, None).await?;
    let welcome = client.hello().await?;
    assert!(welcome.session_id > 0);
    drop(binary);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn certs_prints_the_hash_and_validity_and_keeps_the_certificate() {
    let dir = temp_dir("certs-command");
    let run = || {
        let output = Command::new(wtchat_binary())
            .args(["certs", "--cert-dir", dir.to_str().unwrap_or_default(), "--cert-names", "chat.test"])
            .output()
            .expect("wtchat runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let first = run();
    for expected in ["sha-256 (hex)", "valid until", "localhost", "127.0.0.1", "::1", "chat.test"] {
        assert!(first.contains(expected), "{expected} missing from:\n{first}");
    }
    assert_eq!(run(), first, "a second run reuses the kept certificate");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_bad_configuration_is_refused_with_a_reason() {
    let output = Command::new(wtchat_binary())
        .args(["--listen", "127.0.0.1:0", "--max-frame-bytes", "10"])
        .output()
        .expect("wtchat runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_frame_bytes"), "{stderr}");
}

#[test]
fn help_documents_every_option() {
    let output = Command::new(wtchat_binary()).args(["serve", "--help"]).output().expect("wtchat runs");
    let help = String::from_utf8_lossy(&output.stdout);
    let options = [
        "--listen",
        "--config",
        "--history-len",
        "--heartbeat-interval-ms",
        "--allowed-origins",
        "--no-own-origin",
        "--max-message-bytes",
        "--publish-rate-per-sec",
        "--outbound-queue-bytes",
        "--cert-file",
        "--key-file",
        "--cert-dir",
        "--cert-names",
        "--no-webtransport",
        "--quic-listen",
        "--webtransport-path",
        "WTCHAT_LISTEN",
    ];
    for option in options {
        assert!(help.contains(option), "--help does not mention {option}:\n{help}");
    }
}

#[test]
fn check_config_prints_the_effective_configuration_or_why_it_is_invalid() -> Result<()> {
    let dir = temp_dir("check-config");
    std::fs::create_dir_all(&dir)?;
    let check = |text: &str| -> Result<(bool, String, String)> {
        let file = dir.join("wtchat.toml");
        std::fs::write(&file, text)?;
        let output = Command::new(wtchat_binary())
            .args(["check-config", file.to_str().unwrap_or_default()])
            .env_remove("WTCHAT_HISTORY_LEN")
            .output()?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    };
    let (ok, stdout, _) =
        check("history_len = 7\nauth_hs256_secret = \"a secret that is long enough to be accepted\"\n")?;
    assert!(ok, "a valid file passes");
    assert!(stdout.contains("history_len = 7"), "the file's value:\n{stdout}");
    assert!(stdout.contains("max_connections_per_ip = 1000"), "defaults are shown too:\n{stdout}");
    assert!(stdout.contains("auth_hs256_secret = \"(set)\""), "secrets are not printed:\n{stdout}");
    assert!(!stdout.contains("long enough"), "the secret's value never appears");

    let (ok, _, stderr) = check("histroy_len = 7\n")?;
    assert!(!ok && stderr.contains("histroy_len"), "an unknown key is named: {stderr}");
    let (ok, _, stderr) = check("auth_hs256_secret = \"short\"\n")?;
    assert!(!ok && stderr.contains("32 bytes"), "a weak secret is refused: {stderr}");
    let (ok, _, stderr) = check("heartbeat_interval_ms = 5000\nheartbeat_timeout_ms = 1000\n")?;
    assert!(!ok && stderr.contains("heartbeat_timeout"), "contradictions are explained: {stderr}");
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
