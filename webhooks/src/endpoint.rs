//! A receiver's address and the one HTTP/1.1 connection the server keeps
//! to it, plain or TLS.
//!
//! One connection per receiver, one request at a time: that is what keeps
//! deliveries in order without the receiver's help. Batching (a delivery
//! carries many events) is what keeps it fast.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::signature;

/// Why a receiver's URL cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("webhook URL {url:?}: {why}")]
pub struct BadUrl {
    url: String,
    why: &'static str,
}

/// Where a receiver listens, from its `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Whether it speaks TLS.
    pub tls: bool,
    /// Its host name or address (an IPv6 address without brackets).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `Host` header: the authority as written.
    pub authority: String,
    /// Path and query.
    pub path: String,
}

impl Url {
    /// Parses a URL.
    pub fn parse(url: &str) -> Result<Self, BadUrl> {
        let bad = |why| BadUrl { url: url.to_owned(), why };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |at| (&rest[..at], &rest[at..]));
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("needs a host, and no user name"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                (host, port.parse().map_err(|_| bad("the port is not a number below 65536"))?)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("needs a host"));
        }
        Ok(Self { tls, host: host.to_owned(), port, authority: authority.to_owned(), path: path.to_owned() })
    }
}

/// What a delivery attempt came to.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No connection, or it broke.
    #[error("cannot reach the receiver: {0}")]
    Unreachable(String),
    /// No answer in time.
    #[error("the receiver did not answer in time")]
    TimedOut,
    /// An answer other than 2xx.
    #[error("the receiver answered {0}")]
    Refused(StatusCode),
}

/// The longest answer read from a receiver.
const ANSWER_MAX_BYTES: usize = 1 << 20;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A receiver, and the connection to it when one is open.
pub struct Endpoint {
    url: Url,
    tls: Option<TlsConnector>,
    connection: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url).field("open", &self.connection.is_some()).finish()
    }
}

impl Endpoint {
    /// A receiver at `url`; `tls` connects to an `https://` one.
    pub fn new(url: Url, tls: Option<TlsConnector>) -> Self {
        Self { url, tls, connection: None }
    }

    /// Posts one signed body, within `timeout` for connecting and answering
    /// together; answers the body of the receiver's 2xx answer. A failure
    /// closes the connection, so that the next attempt starts clean.
    pub async fn post(
        &mut self,
        body: Bytes,
        secret: &[u8],
        delivery: &str,
        timeout: Duration,
    ) -> Result<Bytes, Failure> {
        let result = tokio::time::timeout(timeout, self.try_post(body, secret, delivery))
            .await
            .unwrap_or(Err(Failure::TimedOut));
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn try_post(&mut self, body: Bytes, secret: &[u8], delivery: &str) -> Result<Bytes, Failure> {
        let unreachable = |error: &dyn std::fmt::Display| Failure::Unreachable(error.to_string());
        let mut connection = match self.connection.take() {
            Some(connection) if !connection.is_closed() => connection,
            _ => self.connect().await?,
        };
        connection.ready().await.map_err(|error| unreachable(&error))?;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let request = Request::post(&self.url.path)
            .header(header::HOST, &self.url.authority)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, concat!("wtchat/", env!("CARGO_PKG_VERSION")))
            .header(signature::HEADER, signature::sign(secret, now, &body))
            .header("wtchat-delivery", delivery)
            .body(Full::new(body))
            .map_err(|error| unreachable(&error))?;
        let response = connection.send_request(request).await.map_err(|error| unreachable(&error))?;
        let status = response.status();
        // Read the answer to its end (bounded), so that the connection can
        // carry the next request.
        let answer = http_body_util::Limited::new(response.into_body(), ANSWER_MAX_BYTES)
            .collect()
            .await
            .map_err(|error| Failure::Unreachable(format!("reading the answer: {error}")))?
            .to_bytes();
        self.connection = Some(connection);
        if status.is_success() { Ok(answer) } else { Err(Failure::Refused(status)) }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let unreachable = |error: &dyn std::fmt::Display| Failure::Unreachable(error.to_string());
        let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|error| unreachable(&error))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match (&self.tls, self.url.tls) {
            (Some(tls), true) => {
                let name = rustls::pki_types::ServerName::try_from(self.url.host.clone())
                    .map_err(|error| unreachable(&error))?;
                Box::new(tls.connect(name, tcp).await.map_err(|error| unreachable(&error))?)
            }
            (None, true) => return Err(Failure::Unreachable("no TLS configuration for https".into())),
            (_, false) => Box::new(tcp),
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| unreachable(&error))?;
        // The connection's own task ends when the sender is dropped or the
        // peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// The TLS settings for `https://` receivers: the system's roots, plus a
/// CA of the operator's own (PEM) when given.
pub fn tls_connector(extra_ca_pem: Option<&[u8]>) -> Result<TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        // A system root rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(certificate);
    }
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|error| format!("the webhook CA file: {error}"))?;
            roots.add(certificate).map_err(|error| format!("the webhook CA file: {error}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("the webhook CA file holds no certificate".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_a_client_would() {
        let url = Url::parse("https://hooks.example:8443/in/wtchat?k=1").unwrap();
        assert_eq!(
            url,
            Url {
                tls: true,
                host: "hooks.example".into(),
                port: 8443,
                authority: "hooks.example:8443".into(),
                path: "/in/wtchat?k=1".into()
            }
        );
        let url = Url::parse("http://[::1]/").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.tls), ("::1", 80, false));
        let url = Url::parse("http://127.0.0.1:9").unwrap();
        assert_eq!((url.port, url.path.as_str()), (9, "/"));
        for bad in ["ftp://x/", "http://", "http://user@x/", "http://x:99999/", "http://:80/"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
