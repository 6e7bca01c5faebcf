//! The server's configuration: defaults, a TOML file, environment variables
//! and command-line flags, in rising order of precedence.
//!
//! [`Settings`] is the one list of options. Each field is optional; it derives
//! both `clap::Args` (for flags and `WTCHAT_*` variables) and `Deserialize`
//! (for the file), so the three sources cannot drift apart. [`Config`] is the
//! resolved, validated result the server runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wtchat_protocol::Limits;

use crate::admission::AdmissionLimits;
use crate::authenticator::{AuthKey, Authenticator};
use crate::certificate_store::CertificateSource;

/// The resolved configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The TCP address for HTTP and WebSocket. On a loopback address the
    /// server also listens on the other family's loopback (`[::1]` beside
    /// `127.0.0.1`), because browsers resolve `localhost` to either.
    pub listen: SocketAddr,
    /// Whether to accept WebTransport over HTTP/3 (QUIC on UDP).
    pub webtransport: bool,
    /// The UDP address for QUIC; `None` means the TCP listener's address and
    /// port.
    pub quic_listen: Option<SocketAddr>,
    /// The path WebTransport sessions are accepted at.
    pub webtransport_path: String,
    /// A PEM certificate chain from a CA; with `key_file`, it is served on
    /// QUIC and makes the TCP listener serve HTTPS and `wss://`.
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Where generated development certificates are kept.
    pub cert_dir: PathBuf,
    /// Names added to generated certificates besides localhost, 127.0.0.1
    /// and ::1.
    pub cert_names: Vec<String>,
    /// The folder of static files served at `/`.
    pub web_root: PathBuf,
    /// Origins allowed to open a session; `*` allows every origin.
    pub allowed_origins: Vec<String>,
    /// Whether a page from the host a client connects to (by its `Host`
    /// header) may open a session without being listed.
    pub own_origin: bool,
    /// Limits each session is held to.
    pub session: SessionLimits,
    /// The most rooms the server holds at once.
    pub max_rooms: usize,
    /// The most rooms one party (a token's user, or an anonymous address)
    /// may hold open: rooms its joins created that still exist, so that no
    /// one party fills `max_rooms`; 0 is no limit.
    pub max_rooms_per_user: usize,
    /// How many recent messages each room keeps for joiners.
    pub history_len: usize,
    /// How often clients must send something.
    #[serde(with = "millis")]
    pub heartbeat_interval: Duration,
    /// How long the server waits for a silent client before closing it.
    #[serde(with = "millis")]
    pub heartbeat_timeout: Duration,
    /// How long a graceful shutdown waits for sessions to close.
    #[serde(with = "millis")]
    pub shutdown_timeout: Duration,
    /// The smallest retry hint sent at shutdown; each session gets this plus
    /// a random share of `shutdown_retry_spread`, so clients do not all come
    /// back at the same instant.
    #[serde(with = "millis")]
    pub shutdown_retry_after: Duration,
    /// The width of the random spread added to the shutdown retry hint.
    #[serde(with = "millis")]
    pub shutdown_retry_spread: Duration,
    /// Limits on sessions in total, per address, and per second.
    pub admission: AdmissionLimits,
    /// The smallest retry hint given to a client turned away by admission.
    #[serde(with = "millis")]
    pub refusal_retry_after: Duration,
    /// The width of the random spread added to that hint.
    #[serde(with = "millis")]
    pub refusal_retry_spread: Duration,
    /// The shared secret for HS256 tokens; setting it turns authentication on.
    #[serde(serialize_with = "redacted")]
    pub auth_hs256_secret: Option<String>,
    /// A PEM public key (P-256 for ES256, RSA for RS256) for tokens; setting
    /// it turns authentication on.
    pub auth_public_key_file: Option<PathBuf>,
    /// The `iss` every token must carry, if set.
    pub auth_issuer: Option<String>,
    /// The `aud` every token must carry, if set.
    pub auth_audience: Option<String>,
    /// The bearer token for the admin endpoints (`POST /admin/drain`); they
    /// are off without one.
    #[serde(serialize_with = "redacted")]
    pub admin_token: Option<String>,
    /// The Redis server that orders rooms across several wtchat servers
    /// (`redis://host:port/db`); without one, rooms live in this process.
    #[serde(serialize_with = "redacted")]
    pub redis_url: Option<String>,
    /// How long a server may stay silent in Redis before the others
    /// consider it dead and remove its members from every room.
    #[serde(with = "millis")]
    pub redis_node_timeout: Duration,
}

/// Limits each session is held to.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SessionLimits {
    /// The largest frame accepted; a larger one closes the session.
    pub max_frame_bytes: usize,
    /// The largest message body accepted; a larger one is refused.
    pub max_message_bytes: usize,
    /// How many rooms one session may be in.
    pub max_rooms_per_session: usize,
    /// Sustained publishes per second.
    pub publish_rate_per_sec: u32,
    /// Publishes allowed above the sustained rate in a burst.
    pub publish_burst: u32,
    /// Refused publishes tolerated (refilling at one per second) before the
    /// session is closed for flooding.
    pub flood_tolerance: u32,
    /// Other refused requests tolerated (refilling at one per second) before
    /// the session is closed for a protocol violation.
    pub error_tolerance: u32,
    /// The byte bound of the outbound queue; past it the session is evicted.
    pub outbound_queue_bytes: usize,
    /// The longest room name in bytes.
    pub max_room_name_bytes: usize,
    /// The longest display name in bytes.
    pub max_display_name_bytes: usize,
}

impl SessionLimits {
    /// The limits as announced to clients in the welcome.
    pub fn announced(&self) -> Limits {
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Limits {
            max_frame_bytes: narrow(self.max_frame_bytes),
            max_message_bytes: narrow(self.max_message_bytes),
            max_rooms_per_session: narrow(self.max_rooms_per_session),
            publish_rate_per_sec: self.publish_rate_per_sec,
            publish_burst: self.publish_burst,
            max_room_name_bytes: narrow(self.max_room_name_bytes),
            max_display_name_bytes: narrow(self.max_display_name_bytes),
            outbound_queue_bytes: narrow(self.outbound_queue_bytes),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            webtransport: true,
            quic_listen: None,
            webtransport_path: "/wt".into(),
            cert_file: None,
            key_file: None,
            cert_dir: checkout_folder("certs"),
            cert_names: Vec::new(),
            web_root: checkout_folder("web"),
            allowed_origins: Vec::new(),
            own_origin: true,
            session: SessionLimits {
                max_frame_bytes: 64 * 1024 + 1024,
                max_message_bytes: 64 * 1024,
                max_rooms_per_session: 32,
                publish_rate_per_sec: 10,
                publish_burst: 20,
                flood_tolerance: 20,
                error_tolerance: 20,
                outbound_queue_bytes: 1024 * 1024,
                max_room_name_bytes: 64,
                max_display_name_bytes: 64,
            },
            max_rooms: 100_000,
            max_rooms_per_user: 2_000,
            history_len: 100,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(25),
            shutdown_timeout: Duration::from_secs(10),
            shutdown_retry_after: Duration::from_secs(1),
            shutdown_retry_spread: Duration::from_secs(5),
            admission: AdmissionLimits {
                max_connections: 100_000,
                max_connections_per_ip: 1_000,
                max_new_connections_per_sec: 1_000,
            },
            refusal_retry_after: Duration::from_secs(1),
            refusal_retry_spread: Duration::from_secs(4),
            auth_hs256_secret: None,
            auth_public_key_file: None,
            auth_issuer: None,
            auth_audience: None,
            admin_token: None,
            redis_url: None,
            redis_node_timeout: Duration::from_secs(10),
        }
    }
}

/// A top-level folder (`web`, `certs`) under the working directory when it
/// has one, else the source checkout's when the server was built from one,
/// else the relative name.
fn checkout_folder(name: &str) -> PathBuf {
    let local = PathBuf::from(name);
    if local.is_dir() {
        return local;
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    if checkout.is_dir() { checkout } else { local }
}

/// Every option, each optional: an unset option keeps the value from the
/// source below it.
#[derive(Debug, Clone, Default, clap::Args, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// TCP address for HTTP and WebSocket (default 127.0.0.1:8080).
    #[arg(long, env = "WTCHAT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Serve WebSocket only, without WebTransport.
    #[arg(long, env = "WTCHAT_NO_WEBTRANSPORT", num_args = 0..=1, default_missing_value = "true")]
    pub no_webtransport: Option<bool>,
    /// UDP address for QUIC/WebTransport (default: the TCP address and port).
    #[arg(long, env = "WTCHAT_QUIC_LISTEN")]
    pub quic_listen: Option<SocketAddr>,
    /// Path of WebTransport sessions (default /wt).
    #[arg(long, env = "WTCHAT_WEBTRANSPORT_PATH")]
    pub webtransport_path: Option<String>,
    /// PEM certificate chain from a CA; with --key-file it is used for QUIC,
    /// HTTPS and wss:// (default: a generated development certificate).
    #[arg(long, env = "WTCHAT_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// PEM private key for --cert-file.
    #[arg(long, env = "WTCHAT_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Folder for generated development certificates (default: certs/).
    #[arg(long, env = "WTCHAT_CERT_DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Extra names for generated certificates, comma-separated, besides
    /// localhost, 127.0.0.1 and ::1.
    #[arg(long, env = "WTCHAT_CERT_NAMES", value_delimiter = ',')]
    pub cert_names: Option<Vec<String>>,
    /// Folder of static files served at `/` (default: the checkout's `web/`).
    #[arg(long, env = "WTCHAT_WEB_ROOT")]
    pub web_root: Option<PathBuf>,
    /// Origins allowed to open a session, comma-separated; `*` allows any
    /// (default: none).
    #[arg(long, env = "WTCHAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Refuse pages from the server's own host unless listed in
    /// allowed_origins: the own-origin check trusts the Host header, which a
    /// DNS-rebinding page controls (default: allowed).
    #[arg(long, env = "WTCHAT_NO_OWN_ORIGIN", num_args = 0..=1, default_missing_value = "true")]
    pub no_own_origin: Option<bool>,
    /// Largest frame a client may send, in bytes (default 66560).
    #[arg(long, env = "WTCHAT_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Largest message body, in bytes (default 65536).
    #[arg(long, env = "WTCHAT_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Rooms one session may be in at once (default 32).
    #[arg(long, env = "WTCHAT_MAX_ROOMS_PER_SESSION")]
    pub max_rooms_per_session: Option<usize>,
    /// Sustained publishes per second per session (default 10).
    #[arg(long, env = "WTCHAT_PUBLISH_RATE")]
    pub publish_rate_per_sec: Option<u32>,
    /// Publishes per session allowed above the rate in a burst (default 20).
    #[arg(long, env = "WTCHAT_PUBLISH_BURST")]
    pub publish_burst: Option<u32>,
    /// Rate-limited publishes tolerated before closing for flooding (default 20).
    #[arg(long, env = "WTCHAT_FLOOD_TOLERANCE")]
    pub flood_tolerance: Option<u32>,
    /// Other refused requests tolerated before closing for a protocol
    /// violation (default 20).
    #[arg(long, env = "WTCHAT_ERROR_TOLERANCE")]
    pub error_tolerance: Option<u32>,
    /// Bytes that may wait for a slow reader before it is evicted (default 1048576).
    #[arg(long, env = "WTCHAT_OUTBOUND_QUEUE_BYTES")]
    pub outbound_queue_bytes: Option<usize>,
    /// Longest room name in bytes (default 64).
    #[arg(long, env = "WTCHAT_MAX_ROOM_NAME_BYTES")]
    pub max_room_name_bytes: Option<usize>,
    /// Longest display name in bytes (default 64).
    #[arg(long, env = "WTCHAT_MAX_DISPLAY_NAME_BYTES")]
    pub max_display_name_bytes: Option<usize>,
    /// Most rooms the server holds at once (default 100000).
    #[arg(long, env = "WTCHAT_MAX_ROOMS")]
    pub max_rooms: Option<usize>,
    /// Most rooms one user (a token's subject), or one address without
    /// authentication, may hold open: rooms it created that still exist;
    /// joining existing rooms is not limited by it. 0 is no limit
    /// (default 2000).
    #[arg(long, env = "WTCHAT_MAX_ROOMS_PER_USER")]
    pub max_rooms_per_user: Option<usize>,
    /// Recent messages each room keeps for joiners (default 100).
    #[arg(long, env = "WTCHAT_HISTORY_LEN")]
    pub history_len: Option<usize>,
    /// How often clients must send something, in ms (default 10000).
    #[arg(long, env = "WTCHAT_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<u64>,
    /// Silence after which a client is closed, in ms (default 25000).
    #[arg(long, env = "WTCHAT_HEARTBEAT_TIMEOUT_MS")]
    pub heartbeat_timeout_ms: Option<u64>,
    /// Longest graceful shutdown, in ms (default 10000).
    #[arg(long, env = "WTCHAT_SHUTDOWN_TIMEOUT_MS")]
    pub shutdown_timeout_ms: Option<u64>,
    /// Smallest retry hint sent at shutdown, in ms (default 1000).
    #[arg(long, env = "WTCHAT_SHUTDOWN_RETRY_AFTER_MS")]
    pub shutdown_retry_after_ms: Option<u64>,
    /// Random spread added to the shutdown retry hint, in ms (default 5000).
    #[arg(long, env = "WTCHAT_SHUTDOWN_RETRY_SPREAD_MS")]
    pub shutdown_retry_spread_ms: Option<u64>,
    /// Most sessions open at once; 0 is no limit (default 100000).
    #[arg(long, env = "WTCHAT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most sessions open at once from one IP address; 0 is no limit
    /// (default 1000).
    #[arg(long, env = "WTCHAT_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// New sessions per second, with bursts of twice as many; 0 is no limit
    /// (default 1000).
    #[arg(long, env = "WTCHAT_MAX_NEW_CONNECTIONS_PER_SEC")]
    pub max_new_connections_per_sec: Option<u32>,
    /// Smallest retry hint for a client turned away by those limits, in ms
    /// (default 1000).
    #[arg(long, env = "WTCHAT_REFUSAL_RETRY_AFTER_MS")]
    pub refusal_retry_after_ms: Option<u64>,
    /// Random spread added to that retry hint, in ms (default 4000).
    #[arg(long, env = "WTCHAT_REFUSAL_RETRY_SPREAD_MS")]
    pub refusal_retry_spread_ms: Option<u64>,
    /// Shared secret (at least 32 bytes) for HS256 tokens; turns
    /// authentication on. Prefer the environment variable to the flag.
    #[arg(long, env = "WTCHAT_AUTH_HS256_SECRET", hide_env_values = true)]
    pub auth_hs256_secret: Option<String>,
    /// PEM public key for ES256 (P-256) or RS256 (RSA) tokens; turns
    /// authentication on.
    #[arg(long, env = "WTCHAT_AUTH_PUBLIC_KEY_FILE")]
    pub auth_public_key_file: Option<PathBuf>,
    /// Issuer (`iss`) every token must name.
    #[arg(long, env = "WTCHAT_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
    /// Audience (`aud`) every token must name.
    #[arg(long, env = "WTCHAT_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,
    /// Bearer token for the admin endpoints (POST /admin/drain); they are
    /// off without it.
    #[arg(long, env = "WTCHAT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Redis URL (`redis://127.0.0.1:6379/0`) that spreads rooms over
    /// several servers; without it rooms live in this process.
    #[arg(long, env = "WTCHAT_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// How long a server may be silent in Redis before the others remove
    /// its members, in ms (default 10000).
    #[arg(long, env = "WTCHAT_REDIS_NODE_TIMEOUT_MS")]
    pub redis_node_timeout_ms: Option<u64>,
}

/// A configuration that cannot run, or a file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// The values contradict each other or are out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Every option of a resolved configuration, in the file's terms, with
    /// secrets replaced by `(set)`: what `wtchat check-config` prints.
    pub fn effective(config: &Config) -> Self {
        let l = &config.session;
        let ms = |d: Duration| Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let secret = |s: &Option<String>| s.as_ref().map(|_| "(set)".to_owned());
        Self {
            listen: Some(config.listen),
            no_webtransport: Some(!config.webtransport),
            quic_listen: config.quic_listen,
            webtransport_path: Some(config.webtransport_path.clone()),
            cert_file: config.cert_file.clone(),
            key_file: config.key_file.clone(),
            cert_dir: Some(config.cert_dir.clone()),
            cert_names: Some(config.cert_names.clone()),
            web_root: Some(config.web_root.clone()),
            allowed_origins: Some(config.allowed_origins.clone()),
            no_own_origin: Some(!config.own_origin),
            max_frame_bytes: Some(l.max_frame_bytes),
            max_message_bytes: Some(l.max_message_bytes),
            max_rooms_per_session: Some(l.max_rooms_per_session),
            publish_rate_per_sec: Some(l.publish_rate_per_sec),
            publish_burst: Some(l.publish_burst),
            flood_tolerance: Some(l.flood_tolerance),
            error_tolerance: Some(l.error_tolerance),
            outbound_queue_bytes: Some(l.outbound_queue_bytes),
            max_room_name_bytes: Some(l.max_room_name_bytes),
            max_display_name_bytes: Some(l.max_display_name_bytes),
            max_rooms: Some(config.max_rooms),
            max_rooms_per_user: Some(config.max_rooms_per_user),
            history_len: Some(config.history_len),
            heartbeat_interval_ms: ms(config.heartbeat_interval),
            heartbeat_timeout_ms: ms(config.heartbeat_timeout),
            shutdown_timeout_ms: ms(config.shutdown_timeout),
            shutdown_retry_after_ms: ms(config.shutdown_retry_after),
            shutdown_retry_spread_ms: ms(config.shutdown_retry_spread),
            max_connections: Some(config.admission.max_connections),
            max_connections_per_ip: Some(config.admission.max_connections_per_ip),
            max_new_connections_per_sec: Some(config.admission.max_new_connections_per_sec),
            refusal_retry_after_ms: ms(config.refusal_retry_after),
            refusal_retry_spread_ms: ms(config.refusal_retry_spread),
            auth_hs256_secret: secret(&config.auth_hs256_secret),
            auth_public_key_file: config.auth_public_key_file.clone(),
            auth_issuer: config.auth_issuer.clone(),
            auth_audience: config.auth_audience.clone(),
            admin_token: secret(&config.admin_token),
            redis_url: secret(&config.redis_url),
            redis_node_timeout_ms: ms(config.redis_node_timeout),
        }
    }

    /// Reads settings from a TOML file whose keys are the long flag names
    /// with underscores (`max_message_bytes = 4096`).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text)
            .map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })
    }
}

impl Config {
    /// Applies every set option of `settings` over this configuration.
    pub fn apply(mut self, settings: &Settings) -> Self {
        let s = settings.clone();
        let ms = Duration::from_millis;
        let limits = &mut self.session;
        macro_rules! set {
            ($($target:expr => $value:expr),* $(,)?) => { $( if let Some(v) = $value { $target = v; } )* };
        }
        set! {
            self.listen => s.listen,
            self.webtransport => s.no_webtransport.map(|off| !off),
            self.quic_listen => s.quic_listen.map(Some),
            self.webtransport_path => s.webtransport_path,
            self.cert_file => s.cert_file.map(Some),
            self.key_file => s.key_file.map(Some),
            self.cert_dir => s.cert_dir,
            self.cert_names => s.cert_names,
            self.web_root => s.web_root,
            self.allowed_origins => s.allowed_origins,
            self.own_origin => s.no_own_origin.map(|off| !off),
            limits.max_frame_bytes => s.max_frame_bytes,
            limits.max_message_bytes => s.max_message_bytes,
            limits.max_rooms_per_session => s.max_rooms_per_session,
            limits.publish_rate_per_sec => s.publish_rate_per_sec,
            limits.publish_burst => s.publish_burst,
            limits.flood_tolerance => s.flood_tolerance,
            limits.error_tolerance => s.error_tolerance,
            limits.outbound_queue_bytes => s.outbound_queue_bytes,
            limits.max_room_name_bytes => s.max_room_name_bytes,
            limits.max_display_name_bytes => s.max_display_name_bytes,
            self.max_rooms => s.max_rooms,
            self.max_rooms_per_user => s.max_rooms_per_user,
            self.history_len => s.history_len,
            self.heartbeat_interval => s.heartbeat_interval_ms.map(ms),
            self.heartbeat_timeout => s.heartbeat_timeout_ms.map(ms),
            self.shutdown_timeout => s.shutdown_timeout_ms.map(ms),
            self.shutdown_retry_after => s.shutdown_retry_after_ms.map(ms),
            self.shutdown_retry_spread => s.shutdown_retry_spread_ms.map(ms),
            self.admission.max_connections => s.max_connections,
            self.admission.max_connections_per_ip => s.max_connections_per_ip,
            self.admission.max_new_connections_per_sec => s.max_new_connections_per_sec,
            self.refusal_retry_after => s.refusal_retry_after_ms.map(ms),
            self.refusal_retry_spread => s.refusal_retry_spread_ms.map(ms),
            self.auth_hs256_secret => s.auth_hs256_secret.map(Some),
            self.auth_public_key_file => s.auth_public_key_file.map(Some),
            self.auth_issuer => s.auth_issuer.map(Some),
            self.auth_audience => s.auth_audience.map(Some),
            self.admin_token => s.admin_token.map(Some),
            self.redis_url => s.redis_url.map(Some),
            self.redis_node_timeout => s.redis_node_timeout_ms.map(ms),
        }
        self
    }

    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = &self.session;
        let fail = |why: String| Err(ConfigError::Invalid(why));
        if self.heartbeat_interval.is_zero() || self.heartbeat_timeout <= self.heartbeat_interval {
            return fail(format!(
                "heartbeat_timeout ({:?}) must be longer than a non-zero heartbeat_interval ({:?})",
                self.heartbeat_timeout, self.heartbeat_interval
            ));
        }
        // A publish frame carries the body plus the room name and a few bytes
        // of framing; the frame limit must leave room for the largest of each.
        let publish_overhead = limits.max_room_name_bytes + 32;
        if limits.max_frame_bytes < limits.max_message_bytes + publish_overhead {
            return fail(format!(
                "max_frame_bytes ({}) must be at least max_message_bytes + max_room_name_bytes + 32 ({})",
                limits.max_frame_bytes,
                limits.max_message_bytes + publish_overhead
            ));
        }
        // The server's own frames (a message relayed with the sender's name)
        // must fit the outbound queue, or every session would be evicted by
        // the first large message.
        let relay =
            limits.max_message_bytes + limits.max_room_name_bytes + limits.max_display_name_bytes + 64;
        if limits.outbound_queue_bytes < 2 * relay {
            return fail(format!(
                "outbound_queue_bytes ({}) must hold at least two of the largest messages ({})",
                limits.outbound_queue_bytes,
                2 * relay
            ));
        }
        if limits.max_message_bytes == 0 || limits.max_rooms_per_session == 0 || self.max_rooms == 0 {
            return fail("max_message_bytes, max_rooms_per_session and max_rooms must be at least 1".into());
        }
        if limits.max_room_name_bytes == 0 || limits.max_display_name_bytes == 0 {
            return fail("name limits must be at least 1 byte".into());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return fail("cert_file and key_file go together: give both or neither".into());
        }
        if !self.webtransport_path.starts_with('/') {
            return fail(format!("webtransport_path ({:?}) must start with /", self.webtransport_path));
        }
        if self.auth_hs256_secret.is_some() && self.auth_public_key_file.is_some() {
            return fail("auth_hs256_secret and auth_public_key_file exclude each other: give one".into());
        }
        if self.redis_url.as_ref().is_some_and(|url| !url.starts_with("redis://")) {
            return fail("redis_url must be a redis:// URL".into());
        }
        if self.redis_node_timeout < Duration::from_secs(3) {
            return fail("redis_node_timeout_ms must be at least 3000".into());
        }
        if self.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return fail("admin_token must be at least 16 characters long".into());
        }
        self.authenticator()?;
        Ok(())
    }

    /// The token checker, when authentication is on.
    pub fn authenticator(&self) -> Result<Option<Authenticator>, ConfigError> {
        let key = match (&self.auth_hs256_secret, &self.auth_public_key_file) {
            (Some(secret), _) => AuthKey::Secret(secret),
            (None, Some(path)) => AuthKey::PublicKeyFile(path),
            (None, None) => return Ok(None),
        };
        Authenticator::new(key, self.auth_issuer.as_deref(), self.auth_audience.as_deref())
            .map(Some)
            .map_err(ConfigError::Invalid)
    }

    /// Where the server's certificates come from.
    pub fn certificate_source(&self) -> CertificateSource {
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => CertificateSource::Files { cert: cert.clone(), key: key.clone() },
            _ => {
                let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
                names.extend(self.cert_names.iter().cloned());
                CertificateSource::SelfSigned { dir: self.cert_dir.clone(), names }
            }
        }
    }
}

/// Secrets are shown as set or not, never as their value.
fn redacted<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("(set)"),
        None => s.serialize_none(),
    }
}

/// Durations as whole milliseconds, matching the `*_ms` option names.
mod millis {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_sources_override_earlier_ones() {
        let file: Settings = toml::from_str("history_len = 7\nmax_message_bytes = 1000\n").unwrap();
        let flags = Settings { history_len: Some(9), ..Settings::default() };
        let config = Config::default().apply(&file).apply(&flags);
        assert_eq!(config.history_len, 9);
        assert_eq!(config.session.max_message_bytes, 1000);
        assert_eq!(config.session.max_frame_bytes, Config::default().session.max_frame_bytes);
        config.validate().unwrap();
    }

    #[test]
    fn the_effective_settings_read_back_as_the_same_configuration() {
        let file: Settings = toml::from_str("history_len = 7\nmax_connections_per_ip = 3\n").unwrap();
        let config = Config::default().apply(&file);
        let printed = toml::to_string(&Settings::effective(&config)).unwrap();
        let reread: Settings = toml::from_str(&printed).unwrap();
        let again = Config::default().apply(&reread);
        assert_eq!(toml::to_string(&Settings::effective(&again)).unwrap(), printed);
        assert!(printed.contains("history_len = 7") && printed.contains("max_connections_per_ip = 3"));
    }

    #[test]
    fn unknown_keys_and_contradictions_are_refused() {
        assert!(toml::from_str::<Settings>("histroy_len = 7").is_err());
        let small_frames = Settings { max_frame_bytes: Some(100), ..Settings::default() };
        assert!(Config::default().apply(&small_frames).validate().is_err());
        let inverted = Settings { heartbeat_timeout_ms: Some(1000), ..Settings::default() };
        assert!(Config::default().apply(&inverted).validate().is_err());
    }
}
