//! The floor: the least a server can do for a room on this machine. Each
//! message is encoded once, WebSocket header included, and the publisher's
//! own task writes it to every member's socket with one `send` each: no
//! queue, no writer task, no wake-up, no copy per member. What remains is
//! the kernel's and loopback's share of a delivery, which no design can
//! avoid; wtchat's distance from it is what wtchat itself costs.
//!
//! A socket that cannot take a whole frame at once (its buffer is full) is
//! waited for, in order, while the room stays locked: the floor keeps every
//! message and its order, and pays for a slow reader by stalling the room,
//! which is not a price a real server may pay; at the loads where the floor
//! is measured, it does not come up.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use wtchat_protocol::Member;

use crate::greeting::{self, Request};
use crate::http;
use crate::websocket_frame::{self, BINARY, CLOSE};

/// The one room: its numbering and its members' sockets.
struct Room {
    next_seq: u64,
    members: Vec<Arc<TcpStream>>,
}

pub(crate) async fn serve(listener: TcpListener) -> Result<()> {
    let room = Arc::new(Mutex::new(Room { next_seq: 1, members: Vec::new() }));
    http::accept(listener, room, connection).await
}

async fn connection(
    stream: TcpStream,
    address: SocketAddr,
    room: Arc<Mutex<Room>>,
    session_id: u64,
) -> Result<()> {
    let Some(mut stream) = http::route(stream, address).await? else { return Ok(()) };
    let mut buffer = websocket_frame::upgrade(&mut stream).await?;
    let stream = Arc::new(stream);
    let mut name = String::new();
    let mut member = false;
    let outcome = async {
        loop {
            while let Some((opcode, payload)) = websocket_frame::take_client_frame(&mut buffer)? {
                match opcode {
                    BINARY => {}
                    CLOSE => return Ok(()),
                    _ => continue,
                }
                match greeting::request(&payload) {
                    Request::Hello { request_id } => {
                        let welcome = greeting::welcome(request_id, session_id, "floor");
                        send(&stream, &websocket_frame::server_frame(&welcome)).await?;
                    }
                    Request::Join { request_id, room: room_name, name: display_name } => {
                        name = display_name;
                        // Answered under the lock, so that no message of
                        // the room reaches the member before its answer.
                        let mut room = room.lock().await;
                        if !member {
                            room.members.push(stream.clone());
                            member = true;
                        }
                        let joined =
                            greeting::joined(request_id, room_name, room.next_seq, room.members.len());
                        send(&stream, &websocket_frame::server_frame(&joined)).await?;
                    }
                    Request::Publish { room: room_name, body } => {
                        let mut room = room.lock().await;
                        let sender = Member { session_id, name: name.clone() };
                        let message = greeting::message(room_name, room.next_seq, sender, body);
                        let frame = websocket_frame::server_frame(&message);
                        room.next_seq += 1;
                        for member in &room.members {
                            // A member that went away is dropped by its own
                            // task; a failed send here only skips it.
                            let _ = send(member, &frame).await;
                        }
                    }
                    Request::Ping { request_id, nonce } => {
                        // Under the lock too: a message being written to this
                        // socket must not be cut by the pong.
                        let _room = room.lock().await;
                        send(&stream, &websocket_frame::server_frame(&greeting::pong(request_id, nonce)))
                            .await?;
                    }
                    Request::Other => {}
                }
            }
            stream.readable().await?;
            match stream.try_read_buf(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
    .await;
    if member {
        room.lock().await.members.retain(|m| !Arc::ptr_eq(m, &stream));
    }
    outcome
}

/// Writes a whole frame: one `send` when the socket takes it, as it does
/// unless its buffer is full.
async fn send(stream: &TcpStream, mut frame: &[u8]) -> std::io::Result<()> {
    loop {
        match stream.try_write(frame) {
            Ok(written) if written == frame.len() => return Ok(()),
            Ok(written) => frame = &frame[written..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
        stream.writable().await?;
    }
}
