//! A webhook receiver for tests: a real HTTP server on a loopback port that
//! checks every delivery's signature as an application's backend would,
//! keeps what it accepted, and can be told to fail (503) for a while.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, ensure};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use wtchat_webhooks::signature;

use crate::http_server::{Handler, respond, serve};

/// How far a delivery's timestamp may be from the receiver's clock.
const TOLERANCE_SECONDS: u64 = 300;

/// One accepted delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `wtchat-delivery` header.
    pub id: String,
    /// The body.
    pub body: Value,
}

#[derive(Debug, Default)]
struct State {
    tls: bool,
    accepted: Mutex<Vec<Delivery>>,
    failing: AtomicBool,
    refused: AtomicUsize,
    badly_signed: AtomicUsize,
}

/// The receiver; it stops when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    /// Where it listens.
    pub address: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts a receiver that accepts deliveries signed with `secret`.
    pub async fn start(secret: &str) -> Result<Self> {
        Self::serve(secret, None).await
    }

    /// Starts an `https://` receiver whose certificate (for `localhost` and
    /// 127.0.0.1) a CA of its own signed; returns it and that CA, in PEM.
    pub async fn start_tls(secret: &str) -> Result<(Self, String)> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "wtchat test webhook CA");
        let ca_key = KeyPair::generate()?;
        let ca_pem = ca.self_signed(&ca_key)?.pem();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate()?;
        let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
            .signed_by(&leaf_key, &issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(leaf.der().to_vec())], key)?;
        let receiver = Self::serve(secret, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await?;
        Ok((receiver, ca_pem))
    }

    async fn serve(secret: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(State { tls: tls.is_some(), ..State::default() });
        let secret: Arc<[u8]> = secret.as_bytes().into();
        let serving = state.clone();
        let handler: Handler = Arc::new(move |request| {
            let (state, secret) = (serving.clone(), secret.clone());
            Box::pin(async move { receive(&state, &secret, request) })
        });
        let task = serve(listener, tls, handler);
        Ok(Self { address, state, task })
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        let scheme = if self.state.tls { "https" } else { "http" };
        format!("{scheme}://localhost:{}/hooks/wtchat", self.address.port())
    }

    /// Answers 503 to every delivery while `failing`.
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::Relaxed);
    }

    /// Deliveries refused (with 503) so far.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::Relaxed)
    }

    /// Deliveries accepted so far, in the order they arrived.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.accepted.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every event accepted so far, in the order they arrived.
    pub fn events(&self) -> Vec<Value> {
        self.deliveries()
            .into_iter()
            .flat_map(|delivery| delivery.body["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits until `done` holds for the events accepted so far (20 s at
    /// most), and checks that no delivery was badly signed.
    pub async fn until(&self, mut done: impl FnMut(&[Value]) -> bool) -> Result<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events();
            ensure!(self.state.badly_signed.load(Ordering::Relaxed) == 0, "a delivery was badly signed");
            if done(&events) {
                return Ok(events);
            }
            ensure!(tokio::time::Instant::now() < deadline, "the events never came; got {events:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn receive(state: &State, secret: &[u8], request: Request<Bytes>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned()
    };
    let (signed, id) = (header(signature::HEADER), header("wtchat-delivery"));
    let json = header("content-type") == "application/json";
    let body = request.into_body();
    if state.failing.load(Ordering::Relaxed) {
        state.refused.fetch_add(1, Ordering::Relaxed);
        return respond(503, "");
    }
    if !signed_now(secret, &signed, &body) || !json {
        state.badly_signed.fetch_add(1, Ordering::Relaxed);
        return respond(401, "");
    }
    let Ok(body) = serde_json::from_slice(&body) else { return respond(400, "") };
    state.accepted.lock().unwrap_or_else(PoisonError::into_inner).push(Delivery { id, body });
    respond(204, "")
}

/// Whether `header` signs `body` with `secret`, at a time close to now, as
/// a backend checks it.
pub fn signed_now(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    signature::verify(secret, header, body, now, TOLERANCE_SECONDS)
}
