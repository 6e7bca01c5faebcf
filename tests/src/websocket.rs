//! The WebSocket wire: a real tokio-tungstenite client.

use std::net::SocketAddr;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use wtchat_protocol::decode;

use crate::client::{Client, Received, Wire};
use crate::server::{PATIENCE, TestServer};

/// A protocol client over WebSocket.
pub type WsClient = Client<WsWire>;

/// A WebSocket connection.
pub struct WsWire {
    stream: WebSocketStream<TcpStream>,
}

impl WsClient {
    /// Connects and says hello.
    pub async fn connect(server: &TestServer) -> Result<Self> {
        let mut client = Self::connect_quietly(server).await?;
        client.hello().await?;
        Ok(client)
    }

    /// Connects without saying anything.
    pub async fn connect_quietly(server: &TestServer) -> Result<Self> {
        Self::connect_with(server, None, None).await
    }

    /// Connects with an `Origin` header and, optionally, a small socket
    /// receive buffer (so that a client that stops reading backs up quickly).
    pub async fn connect_with(
        server: &TestServer,
        origin: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Result<Self> {
        Self::connect_at(server.address, origin, recv_buffer).await
    }

    /// Connects presenting a token in the query string, saying nothing.
    pub async fn connect_with_token(server: &TestServer, token: &str) -> Result<Self> {
        Self::connect_to(server.address, &format!("/ws?token={token}"), None, None).await
    }

    /// Connects to the server at a TCP address, saying nothing.
    pub async fn connect_at(
        address: SocketAddr,
        origin: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Result<Self> {
        Self::connect_to(address, "/ws", origin, recv_buffer).await
    }

    /// Connects to `path` (with any query) at a TCP address, saying nothing.
    pub async fn connect_to(
        address: SocketAddr,
        path: &str,
        origin: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Result<Self> {
        Self::connect_from(None, address, path, origin, recv_buffer).await
    }

    /// As [`WsClient::connect_to`], from a chosen local address (such as
    /// 127.0.0.2, to play a second client machine on loopback).
    pub async fn connect_from(
        local: Option<std::net::IpAddr>,
        address: SocketAddr,
        path: &str,
        origin: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Result<Self> {
        let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(local) = local {
            socket.bind(SocketAddr::new(local, 0))?;
        }
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let tcp = socket.connect(address).await?;
        let mut request = format!("ws://{address}{path}").into_client_request()?;
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse()?);
        }
        let (stream, _) = tokio_tungstenite::client_async(request, tcp).await?;
        Ok(Client::new(WsWire { stream }))
    }

    /// Sends any WebSocket message.
    pub async fn send_raw(&mut self, message: Message) -> Result<()> {
        self.wire.stream.send(message).await?;
        Ok(())
    }

    /// The next WebSocket message as it arrived (pings and pongs included),
    /// or `None` once the connection ended; a protocol error is an error.
    pub async fn receive_raw(&mut self) -> Result<Option<Message>> {
        let next =
            tokio::time::timeout(PATIENCE, self.wire.stream.next()).await.context("nothing arrived")?;
        Ok(next.transpose()?)
    }

    /// Sends bytes as one binary message.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.send_raw(Message::Binary(Bytes::from(bytes))).await
    }

    /// Drops the TCP connection without a WebSocket close, as a crashed
    /// client or a pulled cable would.
    pub fn vanish(self) {
        drop(self.wire.stream.into_inner());
    }
}

impl Wire for WsWire {
    async fn send_body(&mut self, body: Vec<u8>) -> Result<()> {
        self.stream.send(Message::Binary(body.into())).await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<Received> {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.stream.next()).await.context("nothing arrived")?;
            match next {
                Some(Ok(Message::Binary(body))) => {
                    return Ok(Received::Message(
                        decode(&body, usize::MAX).context("the server sent a bad frame")?,
                    ));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ok(Received::Closed(frame.map(|f| u16::from(f.code))));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => bail!("unexpected WebSocket message {other:?}"),
                Some(Err(error)) => return Err(anyhow!(error).context("the WebSocket failed")),
                None => return Ok(Received::Closed(None)),
            }
        }
    }
}
