//! A plain HTTP/3 client on quinn, speaking the wire format by hand with
//! wtransport-proto's QPACK and varints: an implementation independent of the
//! server's, so that what it reads of the server (SETTINGS, responses,
//! capsules) checks the server against the drafts rather than against
//! itself. It plays the browsers the tests cannot run, such as Safari.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use wtransport_proto::bytes::{BytesReader, BytesWriter};
use wtransport_proto::qpack::{Decoder, Encoder};
use wtransport_proto::varint::VarInt;

use crate::server::{PATIENCE, TestServer};

/// HTTP/3 frame types and stream types the client uses (RFC 9114).
pub mod codes {
    /// `DATA`.
    pub const DATA: u64 = 0x00;
    /// `HEADERS`.
    pub const HEADERS: u64 = 0x01;
    /// `SETTINGS`.
    pub const SETTINGS: u64 = 0x04;
    /// The control stream's type.
    pub const CONTROL_STREAM: u64 = 0x00;
    /// The signal that opens a bidirectional WebTransport stream.
    pub const WEBTRANSPORT_STREAM: u64 = 0x41;
}

/// Appends a variable-length integer.
pub fn put_varint(out: &mut Vec<u8>, value: u64) {
    out.put_varint(VarInt::try_from_u64(value).expect("a varint")).expect("a vector grows");
}

/// Reads a variable-length integer off the front of a slice.
pub fn get_varint(bytes: &mut &[u8]) -> Option<u64> {
    bytes.get_varint().map(VarInt::into_inner)
}

/// Appends a whole HTTP/3 frame.
pub fn put_frame(out: &mut Vec<u8>, kind: u64, payload: &[u8]) {
    put_varint(out, kind);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Splits a whole frame (type, payload) off the front of `buffer`, if it
/// holds one.
pub fn take_frame(buffer: &mut Vec<u8>) -> Option<(u64, Vec<u8>)> {
    let mut view = &buffer[..];
    let kind = get_varint(&mut view)?;
    let len = usize::try_from(get_varint(&mut view)?).ok()?;
    let payload = view.get_bytes(len)?.to_vec();
    let used = buffer.len() - view.len();
    buffer.drain(..used);
    Some((kind, payload))
}

/// A QUIC connection speaking HTTP/3 to the test server.
pub struct H3Client {
    /// The QUIC connection.
    pub connection: quinn::Connection,
    /// The client's control stream, open for the connection's life.
    _control: quinn::SendStream,
    _endpoint: quinn::Endpoint,
}

/// A request in flight: its answer's head, and the stream for what follows
/// (a session's capsules).
pub struct Exchange {
    /// The response status.
    pub status: u16,
    /// The response's fields, pseudo-headers included.
    pub headers: HashMap<String, String>,
    /// The request stream's sending half.
    pub send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// What was read past the response head.
    buffer: Vec<u8>,
}

impl H3Client {
    /// Connects to the server's QUIC address, trusting its current
    /// certificate, and sends these client SETTINGS.
    pub async fn connect(server: &TestServer, settings: &[(u64, u64)]) -> Result<Self> {
        let address = server.quic_address.context("no WebTransport listener")?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server.certificates.current().leaf().clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport.datagram_receive_buffer_size(Some(64 * 1024));
        client.transport_config(Arc::new(transport));
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        endpoint.set_default_client_config(client);
        let connection = tokio::time::timeout(PATIENCE, endpoint.connect(address, "localhost")?)
            .await
            .context("the QUIC handshake timed out")??;
        let mut control = connection.open_uni().await?;
        let mut preface = Vec::new();
        put_varint(&mut preface, codes::CONTROL_STREAM);
        let mut payload = Vec::new();
        for &(id, value) in settings {
            put_varint(&mut payload, id);
            put_varint(&mut payload, value);
        }
        put_frame(&mut preface, codes::SETTINGS, &payload);
        control.write_all(&preface).await?;
        Ok(Self { connection, _control: control, _endpoint: endpoint })
    }

    /// Reads the server's control stream up to its SETTINGS frame, which
    /// must come first: every setting, in the order sent.
    pub async fn server_settings(&self) -> Result<Vec<(u64, u64)>> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let mut recv = self.connection.accept_uni().await?;
                let mut buffer = Vec::new();
                let kind = loop {
                    if let Some(kind) = get_varint(&mut &buffer[..]) {
                        break kind;
                    }
                    read_more(&mut recv, &mut buffer).await?;
                };
                if kind != codes::CONTROL_STREAM {
                    continue;
                }
                let mut view = &buffer[..];
                get_varint(&mut view);
                let mut rest = view.to_vec();
                let (frame, payload) = loop {
                    if let Some(frame) = take_frame(&mut rest) {
                        break frame;
                    }
                    read_more(&mut recv, &mut rest).await?;
                };
                if frame != codes::SETTINGS {
                    bail!("the control stream starts with frame {frame:#x}, not SETTINGS");
                }
                let mut view = &payload[..];
                let mut settings = Vec::new();
                while !view.is_empty() {
                    let id = get_varint(&mut view).context("a setting's identifier")?;
                    let value = get_varint(&mut view).context("a setting's value")?;
                    settings.push((id, value));
                }
                return Ok(settings);
            }
        })
        .await
        .context("no SETTINGS from the server")?
    }

    /// Sends a request with these fields (in this order) and no body, and
    /// reads the response head.
    pub async fn request(&self, fields: &[(&str, &str)]) -> Result<Exchange> {
        let (mut send, mut recv) = self.connection.open_bi().await?;
        let mut bytes = Vec::new();
        put_frame(&mut bytes, codes::HEADERS, &Encoder::encode(fields.iter().copied()));
        send.write_all(&bytes).await?;
        let mut buffer = Vec::new();
        let headers = tokio::time::timeout(PATIENCE, async {
            loop {
                match take_frame(&mut buffer) {
                    Some((codes::HEADERS, payload)) => {
                        return Decoder::decode(payload).map_err(|e| anyhow::anyhow!("QPACK: {e:?}"));
                    }
                    Some((kind, _)) => bail!("frame {kind:#x} before the response head"),
                    None => read_more(&mut recv, &mut buffer).await?,
                }
            }
        })
        .await
        .context("no response")??;
        let status = headers.get(":status").context("no :status")?.parse()?;
        Ok(Exchange { status, headers, send, recv, buffer })
    }

    /// Sends an extended CONNECT for a WebTransport session as a browser
    /// does, with this `:protocol` token.
    pub async fn connect_session(&self, path: &str, protocol: &str) -> Result<Exchange> {
        self.request(&[
            (":method", "CONNECT"),
            (":protocol", protocol),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
            ("origin", "https://localhost"),
        ])
        .await
    }
}

/// Reads more of a stream; an error at its end.
async fn read_more(recv: &mut quinn::RecvStream, buffer: &mut Vec<u8>) -> Result<()> {
    let mut chunk = [0u8; 4096];
    match recv.read(&mut chunk).await? {
        Some(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        None => bail!("the stream ended"),
    }
}

impl Exchange {
    /// The CONNECT stream's id, which is the session's id.
    pub fn session_id(&self) -> u64 {
        self.send.id().index() << 2
    }

    /// Sends a capsule, in a DATA frame as HTTP/3 carries them.
    pub async fn send_capsule(&mut self, kind: u64, payload: &[u8]) -> Result<()> {
        let mut capsule = Vec::new();
        put_varint(&mut capsule, kind);
        put_varint(&mut capsule, payload.len() as u64);
        capsule.extend_from_slice(payload);
        let mut bytes = Vec::new();
        put_frame(&mut bytes, codes::DATA, &capsule);
        self.send.write_all(&bytes).await?;
        Ok(())
    }

    /// The next capsule on the stream (type and payload), or `None` when the
    /// server ends the stream. Each DATA frame here carries whole capsules.
    pub async fn next_capsule(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        loop {
            if let Some((kind, payload)) = take_frame(&mut self.buffer) {
                if kind != codes::DATA {
                    continue;
                }
                let mut view = &payload[..];
                let capsule = get_varint(&mut view).context("a capsule type")?;
                let len = get_varint(&mut view).context("a capsule length")?;
                if view.len() as u64 != len {
                    bail!("a DATA frame holds {} bytes of a {len}-byte capsule", view.len());
                }
                return Ok(Some((capsule, view.to_vec())));
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(PATIENCE, self.recv.read(&mut chunk)).await.context("no capsule")?? {
                Some(n) => self.buffer.extend_from_slice(&chunk[..n]),
                None => return Ok(None),
            }
        }
    }
}

/// Sends one plain HTTP/3 request (not a WebTransport session) and returns
/// the response status. `protocol` sets the extended CONNECT `:protocol`.
pub async fn h3_request(
    server: &TestServer,
    method: &str,
    path: &str,
    protocol: Option<&str>,
) -> Result<u16> {
    let client = H3Client::connect(server, &[(0x33, 1)]).await?;
    let mut fields = vec![(":method", method)];
    if let Some(protocol) = protocol {
        fields.push((":protocol", protocol));
    }
    fields.extend([(":scheme", "https"), (":authority", "localhost"), (":path", path)]);
    Ok(client.request(&fields).await?.status)
}

/// The session's stream opened by hand (signal 0x41 and the session id),
/// carrying length-prefixed frames like any WebTransport client's.
pub struct RawWire {
    /// The stream's sending half.
    pub send: quinn::SendStream,
    recv: quinn::RecvStream,
    buffer: Vec<u8>,
    /// Frame bytes read so far (prefixes included): the stream payload
    /// the server sent, which session flow control counts.
    pub received_bytes: u64,
}

impl RawWire {
    /// Opens the session's stream on `client`'s connection.
    pub async fn open(client: &H3Client, session: &Exchange) -> Result<Self> {
        let (mut send, recv) = client.connection.open_bi().await?;
        let mut header = Vec::new();
        put_varint(&mut header, codes::WEBTRANSPORT_STREAM);
        put_varint(&mut header, session.session_id());
        send.write_all(&header).await?;
        Ok(Self { send, recv, buffer: Vec::new(), received_bytes: 0 })
    }

    /// Reads whatever arrives within `wait`; the number of bytes.
    pub async fn read_for(&mut self, wait: std::time::Duration) -> Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let mut total = 0;
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(read) = tokio::time::timeout_at(deadline, self.recv.read(&mut chunk)).await {
            match read? {
                Some(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    self.received_bytes += n as u64;
                    total += n;
                }
                None => break,
            }
        }
        Ok(total)
    }
}

impl crate::client::Wire for RawWire {
    async fn send_body(&mut self, body: Vec<u8>) -> Result<()> {
        let length = u32::try_from(body.len())?.to_be_bytes();
        self.send.write_all(&length).await?;
        self.send.write_all(&body).await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<crate::client::Received> {
        use wtchat_protocol::{LENGTH_PREFIX_BYTES, decode, split_stream_frame};
        loop {
            if let Some(end) = split_stream_frame(&self.buffer, usize::MAX)? {
                let frame: Vec<u8> = self.buffer.drain(..end).collect();
                let message = decode(&frame[LENGTH_PREFIX_BYTES..], usize::MAX).context("a bad frame")?;
                return Ok(crate::client::Received::Message(message));
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout(PATIENCE, self.recv.read(&mut chunk))
                .await
                .context("nothing arrived")?
            {
                Ok(Some(n)) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    self.received_bytes += n as u64;
                }
                Ok(None) | Err(_) => return Ok(crate::client::Received::Closed(None)),
            }
        }
    }
}
