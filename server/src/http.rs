//! The TCP listener's HTTP side: routes, and nothing else.
//!
//! `GET /ws` hands over to the WebSocket adapter, `GET /healthz` answers
//! whether the server takes sessions, `GET /metrics` and `GET /status` are
//! for operators, `POST /admin/drain` starts a graceful shutdown (with the
//! admin token), `GET /console` is the operator's console (`console.rs`),
//! `/api/` is the server API (`api.rs`), and every other GET is a static
//! file.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wtchat_core::arrival::TransportKind;
use wtchat_core::backend::Backend;
use wtchat_core::hub::Hub;
use wtchat_core::metrics::family;

use crate::api::Api;
use crate::bearer::{constant_time_eq, presented_bearer};
use crate::console;
use crate::options::Config;
use crate::origin::OriginPolicy;
use crate::response::text;
use crate::static_files::StaticFiles;
use crate::tls::certificate_store::CertificateStore;
use crate::websocket;

/// A client must send its request headers within this time; this keeps idle
/// half-open connections (slowloris) from holding sockets.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What every HTTP connection shares.
#[derive(Debug)]
pub struct HttpState {
    /// The core.
    hub: Arc<Hub>,
    /// The certificates, for `/cert-hashes`.
    certificates: Arc<CertificateStore>,
    /// The demo page's files.
    static_files: StaticFiles,
    /// Who may open a WebSocket.
    origins: OriginPolicy,
    /// The QUIC port and path of WebTransport, if it is on.
    webtransport: Option<(u16, String)>,
    /// Whether the TCP listener speaks TLS.
    tls: bool,
    /// How WebSocket sessions are configured.
    websocket: WebSocketConfig,
    /// The configured TCP address, for `/transports` when a request names
    /// no host.
    listen: SocketAddr,
    /// The bearer token of the admin endpoints, if they are on.
    admin_token: Option<String>,
    /// The server API for the application's backend.
    api: Api,
}

impl HttpState {
    /// The state for a hub, with the options the routes use.
    pub fn new(
        hub: Arc<Hub>,
        config: &Config,
        certificates: Arc<CertificateStore>,
        webtransport_port: Option<u16>,
        tls: bool,
    ) -> Self {
        Self {
            webtransport: webtransport_port.map(|port| (port, config.webtransport_path.clone())),
            tls,
            certificates,
            static_files: StaticFiles::new(config.web_root.clone()),
            origins: OriginPolicy::new(&config.allowed_origins, !config.no_own_origin),
            websocket: websocket::config(&config.session_limits()),
            listen: config.listen,
            admin_token: config.admin_token.clone(),
            api: Api::new(
                config.api_keys.iter().chain(&config.admin_token).cloned().collect(),
                Backend::new(hub.clone(), config.api_publish_rate_per_sec),
            ),
            hub,
        }
    }
}

/// Serves HTTP/1.1 on one accepted connection until it closes or upgrades.
pub async fn serve_connection<S>(stream: S, peer: SocketAddr, state: Arc<HttpState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(request, peer, &state).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%peer, %error, "HTTP connection ended with an error");
    }
}

async fn route(request: Request<Incoming>, peer: SocketAddr, state: &HttpState) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    match (method, request.uri().path()) {
        (Method::GET, "/ws") => {
            websocket::upgrade(request, peer.ip(), &state.hub, &state.origins, state.websocket)
        }
        (Method::GET, "/metrics") => metrics(state),
        (Method::GET, "/status") => status(state),
        (Method::POST, "/admin/drain") => admin_drain(&request, state),
        (Method::GET, "/console") => console::page(state.admin_token.as_deref()),
        (_, path) if path.starts_with("/api/") => state.api.handle(request).await,
        (Method::GET, "/cert-hashes") => cert_hashes(&state.certificates),
        (Method::GET, "/transports") => transports(&request, state),
        (Method::GET | Method::HEAD, "/healthz") => {
            if state.hub.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else if !state.hub.broker_available() {
                // A load balancer sends nobody to a server that would turn
                // them away.
                text(StatusCode::SERVICE_UNAVAILABLE, "broker unavailable\n")
            } else {
                text(StatusCode::OK, "ok\n")
            }
        }
        (method @ (Method::GET | Method::HEAD), path) => {
            state.static_files.serve(&method, path, request.uri().query(), request.headers()).await
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

/// Where a client finds each transport, for the host name it used to reach
/// this listener: `{"webtransport": {"url", "certificateHashes"} or null,
/// "websocket": {"url"}}`. One request tells a client everything it needs to
/// race the two.
fn transports<B>(request: &Request<B>, state: &HttpState) -> Response<Full<Bytes>> {
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| state.listen.to_string());
    let websocket = format!("{}://{authority}/ws", if state.tls { "wss" } else { "ws" });
    let webtransport = state.webtransport.as_ref().map(|(port, path)| {
        let host = host_of(&authority);
        serde_json::json!({
            "url": format!("https://{host}:{port}{path}"),
            "certificateHashes": state.certificates.hashes().iter().map(|h| h.to_vec()).collect::<Vec<_>>(),
        })
    });
    let body =
        serde_json::json!({ "webtransport": webtransport, "websocket": { "url": websocket } }).to_string();
    json(body)
}

/// The Prometheus text exposition: the core's figures, and the one figure
/// only the server knows, the certificate's expiry.
fn metrics(state: &HttpState) -> Response<Full<Bytes>> {
    let mut out = String::with_capacity(8 * 1024);
    state.hub.render_metrics(&mut out);
    let expiry = unix_seconds(state.certificates.current().not_after());
    family(
        &mut out,
        "wtchat_certificate_expiry_timestamp_seconds",
        "gauge",
        "When the certificate served now expires, in seconds since the Unix epoch.",
    );
    let _ = writeln!(out, "wtchat_certificate_expiry_timestamp_seconds {expiry}");
    let mut response = Response::new(Full::new(Bytes::from(out)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// A small JSON summary for people and scripts: version, uptime, counts.
fn status(state: &HttpState) -> Response<Full<Bytes>> {
    let hub = &state.hub;
    let metrics = hub.metrics();
    let connections: serde_json::Map<String, serde_json::Value> =
        TransportKind::ALL.iter().map(|t| (t.name().to_owned(), metrics.open_sessions(*t).into())).collect();
    let tasks = tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_alive_tasks());
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": hub.uptime().as_secs(),
        "draining": hub.is_draining(),
        "auth": hub.requires_token(),
        "sessions": hub.session_count(),
        "admitted": hub.admission().open(),
        "addresses": hub.admission().addresses(),
        "connections": connections,
        "rooms": hub.rooms().len(),
        "broker": match hub.broker_status() {
            Some(status) => serde_json::to_value(status).unwrap_or_default(),
            // A server alone orders its rooms in memory.
            None => serde_json::json!({ "kind": "memory", "available": true }),
        },
        "messages_published": metrics.published_count(),
        "tasks": tasks,
        "certificate_expires": unix_seconds(state.certificates.current().not_after()),
    });
    let mut response = json(body.to_string());
    // Counts are for operators, not for pages on other origins.
    response.headers_mut().remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    response
}

/// Starts a graceful shutdown, for an operator holding the admin token.
fn admin_drain<B>(request: &Request<B>, state: &HttpState) -> Response<Full<Bytes>> {
    let Some(expected) = state.admin_token.as_deref() else {
        return text(StatusCode::NOT_FOUND, "admin endpoints are off; set admin_token to turn them on\n");
    };
    // Compared in constant time, so that timing does not reveal a prefix.
    if !constant_time_eq(presented_bearer(request).as_bytes(), expected.as_bytes()) {
        return text(StatusCode::UNAUTHORIZED, "a valid admin bearer token is required\n");
    }
    tracing::info!("drain requested through the admin endpoint");
    state.hub.request_drain();
    text(StatusCode::ACCEPTED, "draining: sessions are told to reconnect elsewhere\n")
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The host part of an authority: `[::1]:8080` gives `[::1]`, `example.com:80`
/// gives `example.com`.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.rsplit_once(':').map_or(authority, |(host, _)| host)
}

fn json(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Hashes change at rotation; a cached answer would pin a page to a
    // certificate that is no longer served.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // They are public (anyone can read the certificate), and pages served
    // from other allowed origins need them too.
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// The hashes a browser passes as `serverCertificateHashes`, current first:
/// `[{"algorithm": "sha-256", "value": [32 bytes]}]`. A page turns each value
/// into a `Uint8Array`. Empty when the certificate is CA-issued.
fn cert_hashes(certificates: &CertificateStore) -> Response<Full<Bytes>> {
    let hashes: Vec<serde_json::Value> = certificates
        .hashes()
        .iter()
        .map(|hash| serde_json::json!({ "algorithm": "sha-256", "value": hash.to_vec() }))
        .collect();
    json(serde_json::Value::Array(hashes).to_string())
}
