//! Yardsticks: two small servers that speak enough of wtchat's protocol over
//! WebSocket for `wtchat bench` to drive them exactly as it drives wtchat,
//! so that the same run can say how wtchat's fan-out compares with them on
//! the same machine (absolute figures do not carry from one machine to
//! another; ratios measured in one run do).
//!
//! - [`textbook`]: the design most people write first: tokio,
//!   tokio-tungstenite, one `tokio::sync::broadcast` channel, one task per
//!   connection that forwards every item with `sink.send`.
//! - [`floor`]: the least a server can do for the workload: each message
//!   encoded once with its WebSocket header, then one plain `send` per
//!   member, from the publisher's own task, with no queue and no writer.
//!
//! Both keep one room (whatever its name), number its messages, answer
//! hello and join, and ignore the rest; neither enforces a limit. They are
//! measuring instruments, not chat servers.

pub mod floor;
mod greeting;
mod http;
pub mod textbook;
mod websocket_frame;

use std::net::SocketAddr;

use anyhow::Result;
use tokio::net::TcpListener;

/// Which yardstick to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Yardstick {
    /// One broadcast channel and a task per connection.
    Textbook,
    /// One `send` per delivery, from the publisher's task.
    Floor,
}

/// Listens on `listen`, prints `{"listening":{"http":"<address>"}}` on
/// stdout (as `wtchat serve` does), and serves until the process ends.
pub async fn serve(yardstick: Yardstick, listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    println!("{}", serde_json::json!({ "listening": { "http": address.to_string() } }));
    match yardstick {
        Yardstick::Textbook => textbook::serve(listener).await,
        Yardstick::Floor => floor::serve(listener).await,
    }
}
