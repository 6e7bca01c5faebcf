//! The WebTransport wire: a real wtransport client (a QUIC and HTTP/3 stack
//! independent of the server's), plus a plain HTTP/3 client for requests that
//! are not WebTransport sessions.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use wtchat_protocol::{LENGTH_PREFIX_BYTES, decode, split_stream_frame};
use wtransport::endpoint::ConnectOptions;
use wtransport::endpoint::endpoint_side::Client as ClientSide;
use wtransport::error::ConnectionError;
use wtransport::tls::Sha256Digest;
use wtransport::{ClientConfig, Connection, Endpoint, RecvStream, SendStream};

use crate::client::{Client, Received, Wire};
use crate::http::http_get;
use crate::server::{PATIENCE, TestServer};

/// A protocol client over WebTransport.
pub type WtClient = Client<WtWire>;

/// A WebTransport session with its frame stream.
pub struct WtWire {
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    /// Bytes read from the stream and not yet split into frames.
    buffer: Vec<u8>,
    /// Kept alive for as long as the session is.
    _endpoint: Endpoint<ClientSide>,
}

/// The hashes the server publishes at `/cert-hashes`, as a browser page would
/// fetch them.
pub async fn published_hashes(server: &TestServer) -> Result<Vec<[u8; 32]>> {
    published_hashes_at(server.address).await
}

/// The hashes published at `/cert-hashes` on a TCP address.
pub async fn published_hashes_at(address: SocketAddr) -> Result<Vec<[u8; 32]>> {
    let (status, body) = http_get(address, "/cert-hashes", &[]).await?;
    if status != 200 {
        bail!("/cert-hashes answered {status}");
    }
    let hashes: Vec<serde_json::Value> = serde_json::from_str(&body)?;
    hashes
        .iter()
        .map(|hash| {
            if hash["algorithm"] != "sha-256" {
                bail!("unexpected algorithm in {hash}");
            }
            let bytes: Vec<u8> = serde_json::from_value(hash["value"].clone())?;
            <[u8; 32]>::try_from(bytes).map_err(|_| anyhow::anyhow!("a hash is not 32 bytes"))
        })
        .collect()
}

impl WtClient {
    /// Connects with the hashes from `/cert-hashes`, opens the frame stream
    /// and says hello.
    pub async fn connect(server: &TestServer) -> Result<Self> {
        let hashes = published_hashes(server).await?;
        let mut client = Self::open(&server.wt_url(), &hashes, None).await?;
        client.hello().await?;
        Ok(client)
    }

    /// Opens a session at `url`, trusting certificates with these hashes,
    /// and opens the frame stream; says nothing.
    pub async fn open(url: &str, hashes: &[[u8; 32]], origin: Option<&str>) -> Result<Self> {
        let connection_and_endpoint = Self::session(url, hashes, origin).await?;
        let (connection, endpoint) = connection_and_endpoint;
        let (send, recv) = tokio::time::timeout(PATIENCE, async {
            let opening = connection.open_bi().await?;
            anyhow::Ok(opening.await?)
        })
        .await
        .context("opening the stream timed out")??;
        Ok(Client::new(WtWire { connection, send, recv, buffer: Vec::new(), _endpoint: endpoint }))
    }

    /// Establishes a session without opening a stream.
    pub async fn session(
        url: &str,
        hashes: &[[u8; 32]],
        origin: Option<&str>,
    ) -> Result<(Connection, Endpoint<ClientSide>)> {
        // Bind the loopback of the family the URL names.
        let local = if url.contains("://[") {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 0))
        };
        let config = ClientConfig::builder()
            .with_bind_address(local)
            .with_server_certificate_hashes(hashes.iter().map(|h| Sha256Digest::new(*h)))
            // A quiet client stays quiet: no QUIC keep-alives, so that a test
            // can play a client that vanished.
            .keep_alive_interval(None)
            .build();
        let endpoint = Endpoint::client(config)?;
        let mut options = ConnectOptions::builder(url);
        if let Some(origin) = origin {
            options = options.add_header("origin", origin);
        }
        let connection = tokio::time::timeout(PATIENCE, endpoint.connect(options.build()))
            .await
            .context("connect timed out")??;
        Ok((connection, endpoint))
    }

    /// Writes raw bytes on the frame stream, with no length prefix added.
    pub async fn send_stream_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.wire.send.write_all(bytes).await?;
        Ok(())
    }

    /// Sends one frame body as a datagram.
    pub fn send_datagram(&self, body: Vec<u8>) -> Result<()> {
        self.wire.connection.send_datagram(body)?;
        Ok(())
    }

    /// The SHA-256 of the certificate the server presented.
    pub fn peer_certificate_hash(&self) -> Option<[u8; 32]> {
        let chain = self.wire.connection.peer_identity()?;
        let leaf = chain.as_slice().first()?;
        Some(wtchat_server::tls::certificate::sha256(leaf.der()))
    }
}

impl Wire for WtWire {
    async fn send_body(&mut self, body: Vec<u8>) -> Result<()> {
        let length = u32::try_from(body.len())?.to_be_bytes();
        self.send.write_all(&length).await?;
        self.send.write_all(&body).await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<Received> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        // Once datagrams end (the session is closing), the stream is still
        // read to its end: the closing notice may wait there unread, and a
        // close reported before it would lose it.
        let mut datagrams_open = true;
        loop {
            if let Some(end) = split_stream_frame(&self.buffer, usize::MAX)? {
                let frame: Vec<u8> = self.buffer.drain(..end).collect();
                let message = decode(&frame[LENGTH_PREFIX_BYTES..], usize::MAX).context("a bad frame")?;
                return Ok(Received::Message(message));
            }
            let mut chunk = [0u8; 16 * 1024];
            tokio::select! {
                read = self.recv.read(&mut chunk) => match read {
                    Ok(Some(n)) => self.buffer.extend_from_slice(&chunk[..n]),
                    // The stream ended or broke: the connection's close code
                    // says why.
                    Ok(None) | Err(_) => return Ok(Received::Closed(close_code(&self.connection).await)),
                },
                datagram = self.connection.receive_datagram(), if datagrams_open => match datagram {
                    Ok(datagram) => {
                        let payload: Bytes = datagram.payload();
                        return Ok(Received::Datagram(decode(&payload, usize::MAX).context("a bad datagram")?));
                    }
                    Err(_) => datagrams_open = false,
                },
                () = tokio::time::sleep_until(deadline) => bail!("nothing arrived"),
            }
        }
    }
}

/// The code the server closed the session with. The server sends it in a
/// `WT_CLOSE_SESSION` capsule, which wtransport reports as the session's
/// error; a server that closed only the QUIC connection would be reported
/// the same way, with the connection's code.
async fn close_code(connection: &Connection) -> Option<u16> {
    match tokio::time::timeout(Duration::from_secs(5), connection.receive_datagram()).await {
        Ok(Err(ConnectionError::ApplicationClosed(close))) => u16::try_from(close.code().into_inner()).ok(),
        _ => None,
    }
}
