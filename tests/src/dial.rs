//! How a scenario opens a session over a transport it does not name, so that
//! a scenario is written once and runs over each transport
//! (`tests/tests/every_transport.rs`).

use anyhow::Result;

use crate::client::{Client, Wire};
use crate::server::TestServer;
use crate::websocket::{WsClient, WsWire};
use crate::webtransport::{WtClient, WtWire, published_hashes};

/// A transport a scenario can open sessions over.
#[allow(async_fn_in_trait)]
pub trait Dial: Wire + Sized {
    /// Whether a client whose reads stalled still reads the close code
    /// afterwards: QUIC carries it outside the stalled stream; a TCP
    /// connection's close frame waits behind the bytes the client never
    /// read.
    const CLOSE_CODE_PASSES_A_STALL: bool;

    /// Opens a session and says hello.
    async fn connect(server: &TestServer) -> Result<Client<Self>> {
        let mut client = Self::connect_quietly(server).await?;
        client.hello().await?;
        Ok(client)
    }

    /// Opens a session and says nothing.
    async fn connect_quietly(server: &TestServer) -> Result<Client<Self>>;

    /// Opens a session, says hello, and is made to back up quickly once it
    /// stops reading.
    async fn connect_stalling(server: &TestServer) -> Result<Client<Self>>;

    /// Ends the connection without a goodbye of the protocol, as a crashed
    /// client does.
    fn disappear(client: Client<Self>);
}

impl Dial for WsWire {
    const CLOSE_CODE_PASSES_A_STALL: bool = false;

    async fn connect_quietly(server: &TestServer) -> Result<Client<Self>> {
        WsClient::connect_quietly(server).await
    }

    async fn connect_stalling(server: &TestServer) -> Result<Client<Self>> {
        // A tiny receive window, so that the socket backs up fast.
        let mut client = WsClient::connect_with(server, None, Some(4096)).await?;
        client.hello().await?;
        Ok(client)
    }

    fn disappear(client: Client<Self>) {
        // The TCP connection drops without a WebSocket close.
        client.vanish();
    }
}

impl Dial for WtWire {
    const CLOSE_CODE_PASSES_A_STALL: bool = true;

    async fn connect_quietly(server: &TestServer) -> Result<Client<Self>> {
        let hashes = published_hashes(server).await?;
        WtClient::open(&server.wt_url(), &hashes, None).await
    }

    async fn connect_stalling(server: &TestServer) -> Result<Client<Self>> {
        // QUIC flow control soon stops the server's writes to a client
        // that reads nothing.
        Self::connect(server).await
    }

    fn disappear(client: Client<Self>) {
        // The QUIC connection goes without the session being closed.
        drop(client);
    }
}
