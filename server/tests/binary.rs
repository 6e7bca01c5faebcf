//! The `wtchat` binary as an operator runs it: flags, a config file, a real
//! WebSocket client chatting through it, and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use wtchat_protocol::{
    ClientFrame, ClientMessage, PROTOCOL_VERSION, ReasonCode, ServerMessage, decode, encode,
};

/// Starts the binary and reads the address it announces on stderr.
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wtchat"))
        .args(args)
        .env("WTCHAT_LOG", "warn")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the wtchat binary starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("wtchat announces its address").expect("stderr is readable");
        if let Some(rest) = line.strip_prefix("wtchat is listening on http://") {
            break rest.split('/').next().unwrap_or_default().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(socket: &mut Socket, request_id: u32, message: ClientMessage) {
    let body = encode(&ClientFrame { request_id, message });
    socket.send(Message::Binary(body.into())).await.expect("send");
}

async fn receive(socket: &mut Socket) -> Option<ServerMessage> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a reply in time")? {
            Ok(Message::Binary(body)) => return Some(decode(&body, usize::MAX).expect("a valid frame")),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn connect(address: &str, room: &str, name: &str) -> Socket {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{address}/ws")).await.expect("connect");
    let hello = ClientMessage::Hello {
        protocol_version: u16::from(PROTOCOL_VERSION),
        client_name: "binary-test".into(),
    };
    send(&mut socket, 1, hello).await;
    assert!(matches!(receive(&mut socket).await, Some(ServerMessage::Welcome(_))));
    let join = ClientMessage::Join { room: room.into(), display_name: name.into(), resume: None };
    send(&mut socket, 2, join).await;
    assert!(matches!(receive(&mut socket).await, Some(ServerMessage::Joined(_))));
    socket
}

#[tokio::test]
async fn the_binary_chats_and_stops_gracefully_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("wtchat-binary-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("wtchat.toml");
    std::fs::write(
        &config,
        "history_len = 3\nshutdown_retry_after_ms = 2000\nshutdown_retry_spread_ms = 0\n",
    )
    .unwrap();
    let (mut child, address) = start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        "--history-len",
        "2",
    ]);

    let mut alice = connect(&address, "lobby", "alice").await;
    for n in 1..=3 {
        send(&mut alice, 10 + n, ClientMessage::Publish { room: "lobby".into(), body: format!("hi {n}") })
            .await;
        assert!(matches!(receive(&mut alice).await, Some(ServerMessage::Message(_))));
    }
    // The flag (2) overrides the file (3).
    let (mut bob, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws")).await.unwrap();
    let hello =
        ClientMessage::Hello { protocol_version: u16::from(PROTOCOL_VERSION), client_name: "bob".into() };
    send(&mut bob, 1, hello).await;
    receive(&mut bob).await;
    send(&mut bob, 2, ClientMessage::Join { room: "lobby".into(), display_name: "bob".into(), resume: None })
        .await;
    let Some(ServerMessage::Joined(joined)) = receive(&mut bob).await else { panic!("bob did not join") };
    assert_eq!(joined.history.count, 2);
    for _ in 0..2 {
        receive(&mut bob).await;
    }
    send(&mut bob, 3, ClientMessage::Publish { room: "lobby".into(), body: "hello alice".into() }).await;
    let Some(ServerMessage::Presence(_)) = receive(&mut alice).await else { panic!("no presence") };
    let Some(ServerMessage::Message(message)) = receive(&mut alice).await else { panic!("no message") };
    assert_eq!((message.body.as_str(), message.sender.name.as_str()), ("hello alice", "bob"));

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    for socket in [&mut alice, &mut bob] {
        let closing = loop {
            match receive(socket).await {
                Some(ServerMessage::Closing(closing)) => break closing,
                Some(_) => continue,
                None => panic!("closed without a notice"),
            }
        };
        assert_eq!((closing.code, closing.retry_after_ms), (ReasonCode::SERVER_SHUTDOWN, Some(2000)));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "wtchat did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn certs_prints_the_hash_and_validity_and_keeps_the_certificate() {
    let dir = std::env::temp_dir().join(format!("wtchat-certs-command-{}", std::process::id()));
    let run = || {
        let output = Command::new(env!("CARGO_BIN_EXE_wtchat"))
            .args(["certs", "--cert-dir", dir.to_str().unwrap(), "--cert-names", "chat.test"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
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
    let output = Command::new(env!("CARGO_BIN_EXE_wtchat"))
        .args(["--listen", "127.0.0.1:0", "--max-frame-bytes", "10"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_frame_bytes"), "{stderr}");
}

#[test]
fn help_documents_every_option() {
    let output = Command::new(env!("CARGO_BIN_EXE_wtchat")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--listen",
        "--config",
        "--history-len",
        "--heartbeat-interval-ms",
        "--allowed-origins",
        "--max-message-bytes",
        "--publish-rate-per-sec",
        "--outbound-queue-bytes",
        "WTCHAT_LISTEN",
    ] {
        assert!(help.contains(option), "--help does not mention {option}:\n{help}");
    }
}
