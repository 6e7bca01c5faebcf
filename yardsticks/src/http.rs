//! The little HTTP both yardsticks need: `/healthz`, `/transports` (where
//! the generator learns the WebSocket URL, as from wtchat), and telling a
//! WebSocket upgrade from the rest without consuming it.

use std::net::SocketAddr;

use anyhow::{Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The path of the WebSocket endpoint, as wtchat's.
pub(crate) const WEBSOCKET_PATH: &str = "/ws";

/// Accepts connections for ever, numbering them from 1, and runs
/// `connection` for each on a task of its own, with `shared` (the room).
pub(crate) async fn accept<S, F, Fut>(listener: TcpListener, shared: S, connection: F) -> Result<()>
where
    S: Clone,
    F: Fn(TcpStream, SocketAddr, S, u64) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let address = listener.local_addr()?;
    let mut sessions = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        // As wtchat does: without it, Nagle's algorithm and delayed
        // acknowledgements add tens of ms that say nothing of the design.
        stream.set_nodelay(true)?;
        sessions += 1;
        let connection = connection(stream, address, shared.clone(), sessions);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// Waits for a request's head and answers it unless it asks for the
/// WebSocket endpoint; returns the stream, unread, when it does.
pub(crate) async fn route(mut stream: TcpStream, address: SocketAddr) -> Result<Option<TcpStream>> {
    let mut head = [0u8; 4096];
    let seen = loop {
        stream.readable().await?;
        let seen = stream.peek(&mut head).await?;
        if seen == 0 {
            bail!("closed before a request");
        }
        if head[..seen].windows(4).any(|w| w == b"\r\n\r\n") || seen == head.len() {
            break seen;
        }
        tokio::task::yield_now().await;
    };
    let line = head[..seen].split(|b| *b == b'\r').next().unwrap_or_default();
    let path = std::str::from_utf8(line).unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_owned();
    if path == WEBSOCKET_PATH {
        return Ok(Some(stream));
    }
    // Consumed, since closing a socket with unread bytes resets it and the
    // client could lose the answer.
    stream.read_exact(&mut head[..seen]).await?;
    let body = match path.as_str() {
        "/healthz" => "ok".to_owned(),
        "/transports" => serde_json::json!({
            "websocket": { "url": format!("ws://{address}{WEBSOCKET_PATH}") },
            "webtransport": null,
        })
        .to_string(),
        _ => {
            stream
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await?;
            return Ok(None);
        }
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(None)
}
