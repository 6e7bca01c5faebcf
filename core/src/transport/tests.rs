//! The seam's own behaviour, with an in-memory inbound stream and a sink that
//! records what a transport would have been asked to do.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream;
use tokio::sync::mpsc;
use wtchat_protocol::{
    ClientFrame, ClientMessage, PROTOCOL_VERSION, ReasonCode, ServerMessage, decode, encode,
};

use super::{FrameSink, serve};
use crate::arrival::{Arrival, TransportKind};
use crate::config::HubConfig;
use crate::frame::Frame;
use crate::hub::Hub;
use crate::session::{Inbound, Session};

/// What the recording sink saw.
#[derive(Debug, Default)]
struct Record {
    /// Frames per `send_batch` call.
    batches: Vec<Vec<ServerMessage>>,
    /// Codes passed to `close`.
    closes: Vec<ReasonCode>,
}

struct RecordingSink {
    record: Arc<Mutex<Record>>,
    /// After this many batches, writes never complete, like a socket whose
    /// peer stopped reading.
    stall_after: usize,
}

impl FrameSink for RecordingSink {
    async fn send_batch(&mut self, frames: &mut Vec<Frame>) -> std::io::Result<()> {
        if self.record.lock().unwrap().batches.len() >= self.stall_after {
            std::future::pending::<()>().await;
        }
        let decoded = frames.drain(..).map(|f| decode(&f.body(), usize::MAX).unwrap()).collect();
        self.record.lock().unwrap().batches.push(decoded);
        Ok(())
    }

    async fn close(&mut self, code: ReasonCode, _text: &str) -> std::io::Result<()> {
        self.record.lock().unwrap().closes.push(code);
        Ok(())
    }
}

struct Connection {
    inbound: mpsc::UnboundedSender<Inbound>,
    record: Arc<Mutex<Record>>,
    task: tokio::task::JoinHandle<()>,
}

fn connect(hub: &Arc<Hub>, stall_after: usize) -> Connection {
    let (inbound, mut receiver) = mpsc::unbounded_channel();
    let record = Arc::new(Mutex::new(Record::default()));
    let sink = RecordingSink { record: record.clone(), stall_after };
    let stream = stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let task = tokio::spawn(serve(
        hub.clone(),
        Box::new(Arrival::local(TransportKind::WebSocket)),
        Box::pin(stream),
        sink,
    ));
    Connection { inbound, record, task }
}

fn frame(request_id: u32, message: ClientMessage) -> Inbound {
    Inbound::Frame(encode(&ClientFrame { request_id, message }).into())
}

fn hello() -> Inbound {
    frame(
        1,
        ClientMessage::Hello {
            protocol_version: u16::from(PROTOCOL_VERSION),
            client_name: "t".into(),
            fallback: None,
        },
    )
}

fn join(room: &str) -> Inbound {
    frame(2, ClientMessage::Join { room: room.into(), display_name: "t".into(), resume: None })
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_burst_is_written_as_one_batch() {
    let mut config = HubConfig::for_tests();
    config.session.publish_burst = 1_000;
    let hub = Hub::new(config, None, None);
    let connection = connect(&hub, usize::MAX);
    connection.inbound.send(hello()).unwrap();
    connection.inbound.send(join("burst")).unwrap();
    settle().await;

    // A hundred messages arrive while the writer is not running.
    let mut publisher = Session::open(&hub, Arrival::local(TransportKind::WebSocket));
    let now = tokio::time::Instant::now();
    let say = |s: &mut crate::session::Session, inbound| s.receive(inbound, now);
    say(&mut publisher, hello());
    say(&mut publisher, join("burst"));
    for n in 0..100 {
        say(
            &mut publisher,
            frame(
                10 + n,
                ClientMessage::Publish { room: "burst".into(), body: format!("{n}"), message_id: None },
            ),
        );
    }
    settle().await;
    let record = connection.record.lock().unwrap();
    let last = record.batches.last().unwrap();
    let chat = last.iter().filter(|m| matches!(m, ServerMessage::Message(_))).count();
    assert_eq!(chat, 100, "the burst was split into {} batches", record.batches.len());
}

#[tokio::test(start_paused = true)]
async fn silence_past_the_heartbeat_timeout_closes_with_its_code() {
    let mut config = HubConfig::for_tests();
    config.heartbeat_interval = Duration::from_millis(500);
    config.heartbeat_timeout = Duration::from_secs(2);
    let hub = Hub::new(config, None, None);
    let connection = connect(&hub, usize::MAX);
    connection.inbound.send(hello()).unwrap();
    // Traffic keeps it alive...
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        connection.inbound.send(frame(3, ClientMessage::Ping { nonce: 1 })).unwrap();
    }
    settle().await;
    assert!(!connection.task.is_finished(), "closed while the client was talking");
    // ...and silence ends it, within the timeout.
    tokio::time::timeout(Duration::from_millis(2100), async {
        while connection.record.lock().unwrap().closes.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(hub.session_count(), 0);
    {
        let record = connection.record.lock().unwrap();
        assert_eq!(record.closes, [ReasonCode::HEARTBEAT_TIMEOUT]);
        let notice = record.batches.last().unwrap();
        assert!(
            matches!(&notice[..], [ServerMessage::Closing(c)] if c.code == ReasonCode::HEARTBEAT_TIMEOUT)
        );
    }
    // The connection itself goes after a short wait for the client's reply.
    tokio::time::timeout(Duration::from_secs(2), connection.task).await.expect("gone").unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_write_stuck_on_a_stalled_peer_ends_on_eviction() {
    let mut config = HubConfig::for_tests();
    config.session.outbound_queue_bytes = 4096;
    let hub = Hub::new(config, None, None);
    let connection = connect(&hub, 2);
    connection.inbound.send(hello()).unwrap();
    connection.inbound.send(join("stall")).unwrap();
    settle().await;
    let mut publisher = Session::open(&hub, Arrival::local(TransportKind::WebSocket));
    let now = tokio::time::Instant::now();
    publisher.receive(hello(), now);
    publisher.receive(join("stall"), now);
    for n in 0..20 {
        let body = "x".repeat(400);
        publisher.receive(
            frame(10 + n, ClientMessage::Publish { room: "stall".into(), body, message_id: None }),
            now,
        );
        settle().await;
    }
    // The stalled session is cut off after the close linger, though its
    // writer never returned from the stuck write.
    tokio::time::timeout(Duration::from_secs(5), connection.task)
        .await
        .expect("the stuck session ended")
        .unwrap();
    assert_eq!(hub.session_count(), 1);
    assert_eq!(hub.rooms().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn keepalives_do_not_keep_a_session_that_never_says_hello() {
    let hub = Hub::new(HubConfig::for_tests(), None, None);
    let connection = connect(&hub, usize::MAX);
    // Pings every second, well within the heartbeat, but no hello.
    for _ in 0..9 {
        connection.inbound.send(Inbound::Keepalive).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(!connection.task.is_finished(), "closed before the hello deadline");
    for _ in 0..3 {
        let _ = connection.inbound.send(Inbound::Keepalive);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), connection.task).await.expect("closed").unwrap();
    let record = connection.record.lock().unwrap();
    assert_eq!(record.closes, [ReasonCode::PROTOCOL_VIOLATION]);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_keepalives_spends_the_flood_budget_and_ends_the_session() {
    let hub = Hub::new(HubConfig::for_tests(), None, None);
    let connection = connect(&hub, usize::MAX);
    connection.inbound.send(hello()).unwrap();
    settle().await;
    // A ping every few milliseconds, far beyond any keepalive's need.
    for _ in 0..200 {
        if connection.inbound.send(Inbound::Keepalive).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), connection.task).await.expect("closed").unwrap();
    let record = connection.record.lock().unwrap();
    assert_eq!(record.closes, [ReasonCode::FLOODING]);
}
