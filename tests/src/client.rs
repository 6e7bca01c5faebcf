//! A protocol client over any transport: what a test does with a session,
//! written once for WebSocket and WebTransport alike.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Result, bail};
use wtchat_protocol::{
    ChatMessage, ClientFrame, ClientMessage, Closing, Joined, MemberChange, PROTOCOL_VERSION, PresenceChange,
    Published, Resume, ServerMessage, Welcome, encode,
};

/// What a client can receive.
#[derive(Debug)]
pub enum Received {
    /// A protocol message on the reliable channel.
    Message(ServerMessage),
    /// A protocol message that came as a datagram (WebTransport only).
    Datagram(ServerMessage),
    /// The transport closed, with the close code if there was one.
    Closed(Option<u16>),
}

/// How a transport moves frame bodies.
#[allow(async_fn_in_trait)]
pub trait Wire {
    /// Sends one frame body on the reliable channel.
    async fn send_body(&mut self, body: Vec<u8>) -> Result<()>;
    /// Receives the next thing that arrives.
    async fn receive(&mut self) -> Result<Received>;
}

/// A protocol client.
pub struct Client<W> {
    /// The transport, for transport-specific moves.
    pub wire: W,
    next_request: u32,
    /// The welcome, once hello was answered.
    pub welcome: Option<Welcome>,
    /// Named presence changes of a diff already received and not yet
    /// taken by [`Client::until_presence`].
    presence: VecDeque<MemberChange>,
}

impl<W: Wire> Client<W> {
    /// A client that has said nothing yet.
    pub fn new(wire: W) -> Self {
        Self { wire, next_request: 1, welcome: None, presence: VecDeque::new() }
    }

    /// Says hello and waits for the welcome.
    pub async fn hello(&mut self) -> Result<Welcome> {
        self.hello_reporting(None).await
    }

    /// Says hello, reporting a WebTransport fallback reason, and waits for
    /// the welcome.
    pub async fn hello_reporting(&mut self, fallback: Option<&str>) -> Result<Welcome> {
        self.send(ClientMessage::Hello {
            protocol_version: u16::from(PROTOCOL_VERSION),
            client_name: "wtchat-tests".into(),
            fallback: fallback.map(str::to_owned),
        })
        .await?;
        match self.next_message().await? {
            ServerMessage::Welcome(welcome) => {
                self.welcome = Some(welcome.clone());
                Ok(welcome)
            }
            other => bail!("expected a welcome, got {other:?}"),
        }
    }

    /// Encodes a request; returns it with its id.
    pub fn encode(&mut self, message: ClientMessage) -> (u32, Vec<u8>) {
        let request_id = self.next_request;
        self.next_request += 1;
        (request_id, encode(&ClientFrame { request_id, message }))
    }

    /// Sends a request; returns its id.
    pub async fn send(&mut self, message: ClientMessage) -> Result<u32> {
        let (request_id, body) = self.encode(message);
        self.wire.send_body(body).await?;
        Ok(request_id)
    }

    /// Receives the next thing that arrives.
    pub async fn receive(&mut self) -> Result<Received> {
        self.wire.receive().await
    }

    /// Receives the next protocol message, by either channel; a close is an
    /// error.
    pub async fn next_message(&mut self) -> Result<ServerMessage> {
        match self.receive().await? {
            Received::Message(message) | Received::Datagram(message) => Ok(message),
            Received::Closed(code) => bail!("the server closed the connection ({code:?})"),
        }
    }

    /// Receives until the server closes; returns the closing notice and the
    /// close code, skipping anything before them.
    pub async fn until_closed(&mut self) -> Result<(Option<Closing>, Option<u16>)> {
        let mut notice = None;
        loop {
            match self.receive().await? {
                Received::Message(ServerMessage::Closing(closing)) => notice = Some(closing),
                Received::Message(_) | Received::Datagram(_) => {}
                Received::Closed(code) => return Ok((notice, code)),
            }
        }
    }

    /// Joins a room; returns the answer and the history that follows it.
    pub async fn join(&mut self, room: &str, name: &str) -> Result<(Joined, Vec<ChatMessage>)> {
        self.join_from(room, name, None).await
    }

    /// Joins a room resuming from a position.
    pub async fn join_from(
        &mut self,
        room: &str,
        name: &str,
        resume: Option<Resume>,
    ) -> Result<(Joined, Vec<ChatMessage>)> {
        self.send(ClientMessage::Join { room: room.into(), display_name: name.into(), resume }).await?;
        let joined = loop {
            match self.next_message().await? {
                ServerMessage::Joined(joined) => break joined,
                ServerMessage::Error(error) => bail!("join refused: {error:?}"),
                _ => continue,
            }
        };
        let mut history = Vec::new();
        for _ in 0..joined.history.count {
            match self.next_message().await? {
                ServerMessage::Message(chat) => history.push(chat),
                other => bail!("expected history, got {other:?}"),
            }
        }
        Ok((joined, history))
    }

    /// Publishes a message.
    pub async fn publish(&mut self, room: &str, body: &str) -> Result<u32> {
        self.send(ClientMessage::Publish { room: room.into(), body: body.into(), message_id: None }).await
    }

    /// Publishes a message with a message id, and waits for its answer
    /// (skipping everything else; an error frame is a failure).
    pub async fn publish_once(&mut self, room: &str, body: &str, id: &str) -> Result<Published> {
        let message =
            ClientMessage::Publish { room: room.into(), body: body.into(), message_id: Some(id.into()) };
        let request_id = self.send(message).await?;
        self.until(|message| match message {
            ServerMessage::Published(published) if published.request_id == request_id => {
                Some(Ok(published.clone()))
            }
            ServerMessage::Error(error) if error.request_id == Some(request_id) => {
                Some(Err(anyhow::anyhow!("the publish was refused: {error:?}")))
            }
            _ => None,
        })
        .await?
    }

    /// Receives `n` chat messages, skipping presence, typing and pongs; an
    /// error frame or a close is a failure.
    pub async fn chat(&mut self, n: usize) -> Result<Vec<ChatMessage>> {
        let mut messages = Vec::with_capacity(n);
        while messages.len() < n {
            match self.next_message().await? {
                ServerMessage::Message(chat) => messages.push(chat),
                ServerMessage::Error(error) => {
                    bail!("error frame after {} messages: {error:?}", messages.len())
                }
                _ => {}
            }
        }
        Ok(messages)
    }

    /// Pings every `every` (as a live client does) until the server reports
    /// that `name` changed presence as given; fails if the session closes.
    pub async fn ping_until_presence(
        &mut self,
        name: &str,
        change: PresenceChange,
        every: Duration,
    ) -> Result<()> {
        let mut nonce = 0;
        loop {
            nonce += 1;
            self.send(ClientMessage::Ping { nonce }).await?;
            if let ServerMessage::PresenceDiff(diff) = self.next_message().await? {
                if diff.changes.iter().any(|c| c.member.name == name && c.change == change) {
                    return Ok(());
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Receives until a named presence change matches, skipping others
    /// (one diff may name several; those after the match wait for the next
    /// call).
    pub async fn until_presence<T>(&mut self, mut pick: impl FnMut(&MemberChange) -> Option<T>) -> Result<T> {
        loop {
            while let Some(change) = self.presence.pop_front() {
                if let Some(found) = pick(&change) {
                    return Ok(found);
                }
            }
            if let ServerMessage::PresenceDiff(diff) = self.next_message().await? {
                // A diff names this session's own comings and goings too;
                // like the browser client, tests are told of the others'.
                let own = self.welcome.as_ref().map(|w| w.session_id);
                self.presence.extend(diff.changes.into_iter().filter(|c| Some(c.member.session_id) != own));
            }
        }
    }

    /// Receives until a message matches, skipping others.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&ServerMessage) -> Option<T>) -> Result<T> {
        loop {
            let message = self.next_message().await?;
            if let Some(found) = pick(&message) {
                return Ok(found);
            }
        }
    }
}
