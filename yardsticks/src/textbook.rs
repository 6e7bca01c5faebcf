//! The textbook server, the baseline: what most people write first with
//! tokio and tokio-tungstenite. One `tokio::sync::broadcast` channel is the
//! room; each connection has one task that reads its client and forwards
//! every item the channel yields with `sink.send` (a write and a flush per
//! item). A publisher encodes its message once and sends the `Bytes` into
//! the channel, so the baseline shares one allocation per message as wtchat
//! does; what differs is everything after. A member that falls more than
//! the channel's capacity behind skips what it missed, as the textbook
//! does (the generator counts it as loss).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Result;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use wtchat_protocol::Member;

use crate::greeting::{self, Request};
use crate::http;

/// How many messages a member may fall behind before it skips some.
const CAPACITY: usize = 4096;

/// The one room.
struct Room {
    channel: broadcast::Sender<Bytes>,
    /// The next message's number; held while a message is numbered and
    /// sent into the channel, so that numbers follow the channel's order.
    next_seq: Mutex<u64>,
    members: AtomicUsize,
}

pub(crate) async fn serve(listener: TcpListener) -> Result<()> {
    let room = Arc::new(Room {
        channel: broadcast::channel(CAPACITY).0,
        next_seq: Mutex::new(1),
        members: AtomicUsize::new(0),
    });
    http::accept(listener, room, connection).await
}

async fn connection(stream: TcpStream, address: SocketAddr, room: Arc<Room>, session_id: u64) -> Result<()> {
    let Some(stream) = http::route(stream, address).await? else { return Ok(()) };
    let websocket = tokio_tungstenite::accept_async(stream).await?;
    let (mut sink, mut incoming) = websocket.split();
    let mut feed: Option<broadcast::Receiver<Bytes>> = None;
    let mut name = String::new();
    let outcome = async {
        loop {
            tokio::select! {
                frame = incoming.next() => {
                    let Some(Ok(frame)) = frame else { return Ok(()) };
                    let frame = match frame {
                        Message::Binary(frame) => frame,
                        Message::Close(_) => return Ok(()),
                        _ => continue,
                    };
                    match greeting::request(&frame) {
                        Request::Hello { request_id } => {
                            let welcome = greeting::welcome(request_id, session_id, "textbook");
                            sink.send(Message::Binary(welcome.into())).await?;
                        }
                        Request::Join { request_id, room: room_name, name: display_name } => {
                            name = display_name;
                            let next_seq = *room.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
                            if feed.is_none() {
                                feed = Some(room.channel.subscribe());
                                room.members.fetch_add(1, Ordering::Relaxed);
                            }
                            let count = room.members.load(Ordering::Relaxed);
                            let joined = greeting::joined(request_id, room_name, next_seq, count);
                            sink.send(Message::Binary(joined.into())).await?;
                        }
                        Request::Publish { room: room_name, body } => {
                            let sender = Member { session_id, name: name.clone() };
                            let mut next_seq = room.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
                            let frame = Bytes::from(greeting::message(room_name, *next_seq, sender, body));
                            *next_seq += 1;
                            let _ = room.channel.send(frame);
                        }
                        Request::Ping { request_id, nonce } => {
                            sink.send(Message::Binary(greeting::pong(request_id, nonce).into())).await?;
                        }
                        Request::Other => {}
                    }
                }
                item = next_item(&mut feed) => match item {
                    Ok(frame) => sink.send(Message::Binary(frame)).await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
    .await;
    if feed.is_some() {
        room.members.fetch_sub(1, Ordering::Relaxed);
    }
    outcome
}

/// The room's next item, once the session has joined.
async fn next_item(
    feed: &mut Option<broadcast::Receiver<Bytes>>,
) -> Result<Bytes, broadcast::error::RecvError> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}
