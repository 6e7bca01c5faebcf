//! The server: listeners in, a running core out, until shutdown.
//!
//! The entry point takes its listeners and a shutdown future as arguments, so
//! a test binds port 0, runs the real server in-process and stops it.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use wtchat_core::announcer::Announcer;
use wtchat_core::broker::Broker;
use wtchat_core::hub::BackendHooks;
use wtchat_core::hub::Hub;
use wtchat_core::moderation::Moderator;
use wtchat_redis::RedisBroker;
use wtchat_webhooks::{Moderation, Webhooks};

use crate::handshakes::{HANDSHAKE_TIMEOUT, Handshakes};
use crate::http::{self, HttpState};
use crate::options::{Config, ConfigError};
use crate::origin::OriginPolicy;
use crate::tls;
use crate::tls::certificate::CertificateError;
use crate::tls::certificate_store::CertificateStore;
use crate::webtransport::{self, WebTransportSettings, WebTransportState};

/// How often the certificate store looks for a due rotation or a changed file.
const CERTIFICATE_CHECK: Duration = Duration::from_secs(60);

/// The sockets a server listens on.
#[derive(Debug)]
pub struct Listeners {
    /// HTTP (or HTTPS) and WebSocket.
    pub tcp: Vec<TcpListener>,
    /// QUIC for WebTransport.
    pub quic: Vec<quinn::Endpoint>,
}

impl Listeners {
    /// The TCP addresses, first the configured one.
    pub fn tcp_addresses(&self) -> Vec<SocketAddr> {
        self.tcp.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// The QUIC addresses, first the configured one.
    pub fn quic_addresses(&self) -> Vec<SocketAddr> {
        self.quic.iter().filter_map(|e| e.local_addr().ok()).collect()
    }
}

/// Why a server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificate could not be loaded or generated.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The configuration cannot run (an unreadable authentication key).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A server and its core.
#[derive(Debug, Clone)]
pub struct Server {
    /// The options it runs with.
    config: Arc<Config>,
    /// The core, shared with every connection.
    hub: Arc<Hub>,
    /// The certificates for QUIC (and for TCP when they come from a CA).
    certificates: Arc<CertificateStore>,
    /// Where the rooms' events are posted, when receivers are configured.
    webhooks: Option<Arc<Webhooks>>,
}

impl Server {
    /// A server for a validated configuration: the one place where the
    /// pieces are wired. Opens the certificate store (generating a
    /// development certificate if none is configured or kept), loads the
    /// authentication key, and gives the core a Redis broker when one is
    /// configured.
    pub fn new(config: Config) -> Result<Self, ServerError> {
        tls::install_crypto_provider();
        let certificates = Arc::new(CertificateStore::open(config.certificate_source(), SystemTime::now())?);
        let broker: Option<Arc<dyn Broker>> = match config.redis() {
            Some(options) => Some(Arc::new(RedisBroker::new(&options).map_err(ConfigError::Invalid)?)),
            None => None,
        };
        let webhooks = match config.webhooks()? {
            Some(options) => Some(Arc::new(Webhooks::new(&options).map_err(ConfigError::Invalid)?)),
            None => None,
        };
        let announcer = webhooks.clone().map(|webhooks| Announcer::new(webhooks));
        let moderator: Option<Arc<dyn Moderator>> = match config.moderation()? {
            Some(options) => Some(Arc::new(Moderation::new(&options).map_err(ConfigError::Invalid)?)),
            None => None,
        };
        let hooks = BackendHooks { announcer, moderator };
        let hub = Hub::with_backend(config.hub_config(), config.authenticator()?, broker, hooks);
        Ok(Self { config: Arc::new(config), hub, certificates, webhooks })
    }

    /// The options it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The core, for counts and for tests.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The certificate store.
    pub fn certificates(&self) -> &Arc<CertificateStore> {
        &self.certificates
    }

    /// Binds the configured addresses: TCP first (its port, if chosen by the
    /// system, is then used for QUIC too), plus the other loopback family
    /// when the address is a loopback one.
    pub async fn bind(&self) -> io::Result<Listeners> {
        let config = &self.config;
        let settings = WebTransportSettings::of(config);
        let primary = TcpListener::bind(config.listen).await?;
        let port = primary.local_addr()?.port();
        let mut tcp = vec![primary];
        if let Some(twin) = loopback_twin(config.listen, port) {
            match TcpListener::bind(twin).await {
                Ok(listener) => tcp.push(listener),
                Err(error) => tracing::warn!(%twin, %error, "cannot listen on the second loopback address"),
            }
        }
        let mut quic = Vec::new();
        if config.webtransport() {
            let address = config.quic_listen.unwrap_or(SocketAddr::new(config.listen.ip(), port));
            let endpoint = match webtransport::bind(address, self.certificates.clone(), &settings) {
                Ok(endpoint) => endpoint,
                // With a system-chosen TCP port (tests), the same UDP port
                // may be taken; any free one will do there.
                Err(_) if config.listen.port() == 0 && config.quic_listen.is_none() => webtransport::bind(
                    SocketAddr::new(address.ip(), 0),
                    self.certificates.clone(),
                    &settings,
                )?,
                Err(error) => return Err(error),
            };
            let quic_port = endpoint.local_addr()?.port();
            quic.push(endpoint);
            if let Some(twin) = loopback_twin(address, quic_port) {
                match webtransport::bind(twin, self.certificates.clone(), &settings) {
                    Ok(endpoint) => quic.push(endpoint),
                    Err(error) => {
                        tracing::warn!(%twin, %error, "cannot listen for QUIC on the second loopback address")
                    }
                }
            }
        }
        Ok(Listeners { tcp, quic })
    }

    /// Serves until `shutdown` completes, then drains: stops accepting, sends
    /// every session its closing notice with a retry hint, and returns once
    /// they are gone or the shutdown timeout passes.
    pub async fn run(self, listeners: Listeners, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let config = self.config.clone();
        self.hub.start();
        if let Some(webhooks) = &self.webhooks {
            webhooks.start();
        }
        let tls = if self.certificates.is_self_signed() {
            None
        } else {
            let config = tls::tcp_config(self.certificates.clone()).map_err(io::Error::other)?;
            Some(TlsAcceptor::from(Arc::new(config)))
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let quic_port = listeners.quic_addresses().first().map(SocketAddr::port);
        let http_state = Arc::new(HttpState::new(
            self.hub.clone(),
            &config,
            self.certificates.clone(),
            quic_port,
            tls.is_some(),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for listener in listeners.tcp {
            tracing::info!(address = %listener.local_addr()?, scheme, "listening for HTTP and WebSocket");
            tasks.spawn(accept_tcp(listener, http_state.clone(), tls.clone()));
        }
        let wt_state = Arc::new(WebTransportState {
            hub: self.hub.clone(),
            settings: WebTransportSettings::of(&config),
            origins: OriginPolicy::new(&config.allowed_origins, !config.no_own_origin),
            path: config.webtransport_path.clone(),
            handshakes: Handshakes::new(),
        });
        let endpoints = listeners.quic;
        for endpoint in &endpoints {
            tracing::info!(address = %endpoint.local_addr()?, path = %config.webtransport_path, "listening for WebTransport");
            tasks.spawn(webtransport::serve(endpoint.clone(), wt_state.clone()));
        }
        tasks.spawn(refresh_certificates(self.certificates.clone()));

        tokio::select! {
            () = shutdown => {}
            () = self.hub.drain_requested() => tracing::info!("an operator asked for a drain"),
        }
        let sessions = self.hub.session_count();
        tracing::info!(sessions, "shutting down: telling sessions to reconnect later");
        // Accepting stops first (and the listening sockets are released,
        // so that a restarted server can bind them); sessions already open
        // get their notices.
        tasks.shutdown().await;
        for endpoint in &endpoints {
            endpoint.set_server_config(None);
        }
        self.hub.drain();
        if self.hub.wait_idle(Duration::from_millis(config.shutdown_timeout_ms)).await {
            tracing::info!("every session closed");
        } else {
            tracing::warn!(
                remaining = self.hub.session_count(),
                "shutdown timeout passed with sessions still open"
            );
        }
        for endpoint in &endpoints {
            endpoint.close(wtchat_protocol::ReasonCode::SERVER_SHUTDOWN.0.into(), b"server shutting down");
        }
        // The sessions' departures are events too: receivers get what is
        // queued, within the same bound as the sessions.
        if let Some(webhooks) = &self.webhooks
            && !webhooks.drained(Duration::from_millis(config.shutdown_timeout_ms)).await
        {
            tracing::warn!("shutdown timeout passed with webhook events undelivered");
        }
        for endpoint in &endpoints {
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        }
        Ok(())
    }
}

/// `[::1]` beside `127.0.0.1` and the reverse, on the given port.
fn loopback_twin(address: SocketAddr, port: u16) -> Option<SocketAddr> {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)),
        IpAddr::V6(ip) if ip.is_loopback() => Some(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => None,
    }
}

async fn accept_tcp(listener: TcpListener, state: Arc<HttpState>, tls: Option<TlsAcceptor>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Chat frames are small and latency matters more than packet
                // count; batching happens in the outbox instead.
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                match &tls {
                    None => {
                        tokio::spawn(http::serve_connection(stream, peer, state));
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(stream)) => http::serve_connection(stream, peer, state).await,
                                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
            Err(error) => {
                // Out of file descriptors or a similar passing condition:
                // back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn refresh_certificates(store: Arc<CertificateStore>) {
    let mut interval = tokio::time::interval(CERTIFICATE_CHECK);
    loop {
        interval.tick().await;
        if let Err(error) = store.refresh(SystemTime::now()) {
            tracing::error!(%error, "certificate refresh failed; serving the old certificate");
        }
    }
}
