//! The table of options: each option once, with its type, variable,
//! default, help and check (see `mod.rs` for what is made of it), and the
//! rules between options.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wtchat_core::admission::AdmissionLimits;
use wtchat_core::authenticator::{AuthKey, Authenticator};
use wtchat_core::closing::{RetryHint, RetryHints};
use wtchat_core::presence::PresencePolicy;
use wtchat_core::{HubConfig, SessionLimits};
use wtchat_redis::RedisOptions;
use wtchat_webhooks::{ModerationOptions, WebhookOptions};

use crate::tls::certificate_store::CertificateSource;

/// An option that must be at least 1.
fn at_least_one(value: &usize) -> Result<(), String> {
    if *value == 0 { Err("must be at least 1".into()) } else { Ok(()) }
}

super::options! {
    /// TCP address for HTTP and WebSocket; a loopback address also binds
    /// the other family's loopback (browsers resolve `localhost` to either).
    listen: SocketAddr, env "WTCHAT_LISTEN", default (SocketAddr::from(([127, 0, 0, 1], 8080)));
    /// Serve WebSocket only, without WebTransport.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    no_webtransport: bool, env "WTCHAT_NO_WEBTRANSPORT", default (false);
    /// UDP address for QUIC (WebTransport); a loopback address also binds
    /// the other family's loopback.
    quic_listen: SocketAddr, env "WTCHAT_QUIC_LISTEN", default (none), shown "the TCP address and port";
    /// Path of WebTransport sessions.
    webtransport_path: String, env "WTCHAT_WEBTRANSPORT_PATH", default ("/wt".into()),
        check (|path: &String| if path.starts_with('/') { Ok(()) } else { Err(format!("{path:?} must start with /")) });
    /// PEM certificate chain from a CA; with `key_file` it is served on QUIC,
    /// and the TCP listener then serves HTTPS and `wss://`; reloaded when the
    /// files change. Without it, a development certificate is generated.
    cert_file: PathBuf, env "WTCHAT_CERT_FILE", default (none);
    /// PEM private key of `cert_file`.
    key_file: PathBuf, env "WTCHAT_KEY_FILE", default (none);
    /// Where generated development certificates are kept.
    cert_dir: PathBuf, env "WTCHAT_CERT_DIR", default (checkout_folder("certs")), shown "the checkout's `certs/`";
    /// Names added to generated certificates besides `localhost`,
    /// `127.0.0.1` and `::1`, comma-separated.
    #[arg(value_delimiter = ',')]
    cert_names: Vec<String>, env "WTCHAT_CERT_NAMES", default (Vec::new());
    /// Static files served at `/`: compressed (brotli or gzip, as the
    /// browser accepts) once per file, revalidated by `ETag`, and cached
    /// for a year when asked for as `?v=<hash>` of their contents.
    web_root: PathBuf, env "WTCHAT_WEB_ROOT", default (checkout_folder("web")), shown "the checkout's `web/`";
    /// Origins (`scheme://host[:port]`) allowed to open a session,
    /// comma-separated; `*` allows any; a malformed `Origin` is always
    /// refused.
    #[arg(value_delimiter = ',')]
    allowed_origins: Vec<String>, env "WTCHAT_ALLOWED_ORIGINS", default (Vec::new());
    /// Refuse pages from the server's own host unless listed: the
    /// own-origin check trusts the `Host` header, which a DNS-rebinding page
    /// controls; set it, and list your origins, on the internet.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    no_own_origin: bool, env "WTCHAT_NO_OWN_ORIGIN", default (false);
    /// Largest frame a client may send, in bytes; larger closes with
    /// `FRAME_TOO_LARGE`.
    max_frame_bytes: usize, env "WTCHAT_MAX_FRAME_BYTES", default (66_560);
    /// Largest message body, in bytes; larger gets a `MESSAGE_TOO_LARGE`
    /// error.
    max_message_bytes: usize, env "WTCHAT_MAX_MESSAGE_BYTES", default (65_536), check (at_least_one);
    /// Rooms one session may be in at once.
    max_rooms_per_session: usize, env "WTCHAT_MAX_ROOMS_PER_SESSION", default (32), check (at_least_one);
    /// Sustained publishes per second per session (a token bucket).
    publish_rate_per_sec: u32, env "WTCHAT_PUBLISH_RATE", default (10);
    /// Publishes per session allowed above the rate in a burst.
    publish_burst: u32, env "WTCHAT_PUBLISH_BURST", default (20);
    /// Rate-limited publishes tolerated (refilling 1/s) before closing with
    /// `FLOODING`.
    flood_tolerance: u32, env "WTCHAT_FLOOD_TOLERANCE", default (20);
    /// Other refused requests tolerated (refilling 1/s) before closing with
    /// `PROTOCOL_VIOLATION`; refusals that are the server's condition
    /// (`ROOM_LIMIT_REACHED`, `BROKER_UNAVAILABLE`) are not counted.
    error_tolerance: u32, env "WTCHAT_ERROR_TOLERANCE", default (20);
    /// Bytes that may wait for a slow reader before it is evicted with
    /// `SLOW_CONSUMER`.
    outbound_queue_bytes: usize, env "WTCHAT_OUTBOUND_QUEUE_BYTES", default (1_048_576);
    /// Longest room name, in bytes.
    max_room_name_bytes: usize, env "WTCHAT_MAX_ROOM_NAME_BYTES", default (64), check (at_least_one);
    /// Longest display name, in bytes.
    max_display_name_bytes: usize, env "WTCHAT_MAX_DISPLAY_NAME_BYTES", default (64), check (at_least_one);
    /// Rooms the server holds at once.
    max_rooms: usize, env "WTCHAT_MAX_ROOMS", default (100_000), check (at_least_one);
    /// Rooms one user (a token's `sub`), or one address without
    /// authentication, may hold open: rooms its joins created that still
    /// exist, so that no one party fills `max_rooms`; joining rooms that
    /// exist is not limited by it; over it a join gets
    /// `ROOM_LIMIT_REACHED`; 0 is no limit.
    max_rooms_per_user: usize, env "WTCHAT_MAX_ROOMS_PER_USER", default (2_000);
    /// Recent messages each room keeps, for joiners and for members paging
    /// back (`History`).
    history_len: usize, env "WTCHAT_HISTORY_LEN", default (100);
    /// How many of the kept messages a fresh join replays; older ones are
    /// paged on request, and a resume gets everything it missed.
    history_replay: usize, env "WTCHAT_HISTORY_REPLAY", default (50);
    /// How often a room tells its members who joined and left, in one
    /// shared `PresenceDiff` frame, in ms.
    presence_interval_ms: u64, env "WTCHAT_PRESENCE_INTERVAL_MS", default (200),
        check (|ms: &u64| if (10..=10_000).contains(ms) { Ok(()) } else { Err("must be between 10 and 10000".into()) });
    /// The largest room whose presence diffs name who joined and left;
    /// larger rooms are told counts, and a client asks for pages of
    /// members; typing there is relayed once per presence interval.
    presence_names_max: usize, env "WTCHAT_PRESENCE_NAMES_MAX", default (1_000);
    /// How often clients must send something, in ms.
    heartbeat_interval_ms: u64, env "WTCHAT_HEARTBEAT_INTERVAL_MS", default (10_000);
    /// Silence after which a client is closed with `HEARTBEAT_TIMEOUT`, in
    /// ms; longer than the interval.
    heartbeat_timeout_ms: u64, env "WTCHAT_HEARTBEAT_TIMEOUT_MS", default (25_000);
    /// Longest graceful shutdown, in ms.
    shutdown_timeout_ms: u64, env "WTCHAT_SHUTDOWN_TIMEOUT_MS", default (10_000);
    /// Smallest retry hint sent at shutdown, in ms; each session gets it
    /// plus a random share of the spread, so that clients do not all come
    /// back at once.
    shutdown_retry_after_ms: u64, env "WTCHAT_SHUTDOWN_RETRY_AFTER_MS", default (1_000);
    /// Width of the random spread added to the shutdown retry hint, in ms.
    shutdown_retry_spread_ms: u64, env "WTCHAT_SHUTDOWN_RETRY_SPREAD_MS", default (5_000);
    /// Sessions open at once; 0 is no limit.
    max_connections: usize, env "WTCHAT_MAX_CONNECTIONS", default (100_000);
    /// Sessions open at once from one IP address; 0 is no limit.
    max_connections_per_ip: usize, env "WTCHAT_MAX_CONNECTIONS_PER_IP", default (1_000);
    /// New sessions per second, with bursts of twice as many; one IP
    /// address may use a quarter of it; 0 is no limit.
    max_new_connections_per_sec: u32, env "WTCHAT_MAX_NEW_CONNECTIONS_PER_SEC", default (1_000);
    /// Smallest retry hint for a client turned away by those limits
    /// (`OVERLOADED`) or by an unreachable broker (`BROKER_UNAVAILABLE`), in
    /// ms.
    refusal_retry_after_ms: u64, env "WTCHAT_REFUSAL_RETRY_AFTER_MS", default (1_000);
    /// Width of the random spread added to that retry hint, in ms.
    refusal_retry_spread_ms: u64, env "WTCHAT_REFUSAL_RETRY_SPREAD_MS", default (4_000);
    /// How long a client closed with `FLOODING` is told to wait, and is
    /// turned away if it comes back sooner, in ms.
    flooding_retry_after_ms: u64, env "WTCHAT_FLOODING_RETRY_AFTER_MS", default (10_000);
    /// Shared secret (at least 32 bytes) for HS256 tokens; turns
    /// authentication on. Prefer the environment variable to the flag.
    auth_hs256_secret: String, env "WTCHAT_AUTH_HS256_SECRET", default (none), secret (true);
    /// PEM public key for ES256 (P-256) or RS256 (RSA) tokens; turns
    /// authentication on.
    auth_public_key_file: PathBuf, env "WTCHAT_AUTH_PUBLIC_KEY_FILE", default (none);
    /// The `iss` every token must carry.
    auth_issuer: String, env "WTCHAT_AUTH_ISSUER", default (none);
    /// The `aud` every token must carry.
    auth_audience: String, env "WTCHAT_AUTH_AUDIENCE", default (none);
    /// How long before a session's token expires the server tells it to
    /// send a fresh one (`TokenExpiring`), in ms; at most half the token's
    /// remaining life, so that a short-lived token is told in time too.
    token_refresh_notice_ms: u64, env "WTCHAT_TOKEN_REFRESH_NOTICE_MS", default (60_000);
    /// Bearer token (at least 16 characters) for `POST /admin/drain` and
    /// the operator's console at `/console` (which also opens the server
    /// API for it); both are off without it.
    admin_token: String, env "WTCHAT_ADMIN_TOKEN", default (none), secret (true),
        check (|token: &Option<String>| match token {
            Some(token) if token.len() < 16 => Err("must be at least 16 characters long".into()),
            _ => Ok(()),
        });
    /// Keys of the server API (`/api/`) for the application's backend,
    /// comma-separated; each call presents one as `Authorization: Bearer`.
    /// Without any, the API is off and answers 404.
    #[arg(value_delimiter = ',')]
    api_keys: Vec<String>, env "WTCHAT_API_KEYS", default (Vec::new()), secret (true),
        check (|keys: &Vec<String>| match keys.iter().find(|key| key.len() < 16) {
            Some(_) => Err("each key must be at least 16 characters long".into()),
            None => Ok(()),
        });
    /// Messages per second the server API may post, all callers together
    /// (and as many in a burst); more get `rate_limited`.
    api_publish_rate_per_sec: u32, env "WTCHAT_API_PUBLISH_RATE", default (1000);
    /// URLs (`http://` or `https://`) that receive the rooms' events as
    /// signed JSON (messages, members joining and leaving, rooms occupied
    /// and vacated), comma-separated; needs `webhook_secret`.
    #[arg(value_delimiter = ',')]
    webhook_url: Vec<String>, env "WTCHAT_WEBHOOK_URL", default (Vec::new()),
        check (|urls: &Vec<String>| urls.iter().try_for_each(|url| {
            wtchat_webhooks::endpoint::Url::parse(url).map(drop).map_err(|error| error.to_string())
        }));
    /// The secret webhook deliveries and moderation requests are signed
    /// with (HMAC-SHA256, in the `wtchat-signature` header); at least 16
    /// characters.
    webhook_secret: String, env "WTCHAT_WEBHOOK_SECRET", default (none), secret (true),
        check (|secret: &Option<String>| match secret {
            Some(secret) if secret.len() < 16 => Err("must be at least 16 characters long".into()),
            _ => Ok(()),
        });
    /// The most bytes of events waiting for each webhook receiver; beyond
    /// it events are dropped, counted and reported in the next delivery.
    webhook_queue_bytes: usize, env "WTCHAT_WEBHOOK_QUEUE_BYTES", default (64 << 20), check (at_least_one);
    /// How long one webhook delivery may take, connecting included, in ms,
    /// before it is retried.
    webhook_timeout_ms: u64, env "WTCHAT_WEBHOOK_TIMEOUT_MS", default (5_000),
        check (|ms: &u64| if *ms == 0 { Err("must be at least 1".into()) } else { Ok(()) });
    /// A PEM CA certificate that `https://` webhook receivers and the
    /// moderation URL may be signed by, besides the system's roots.
    webhook_ca_file: PathBuf, env "WTCHAT_WEBHOOK_CA_FILE", default (none);
    /// URL (`http://` or `https://`) that reviews each message a member
    /// publishes before it is accepted: it may accept, replace or reject
    /// it; needs `webhook_secret`, which signs each request.
    moderation_url: String, env "WTCHAT_MODERATION_URL", default (none),
        check (|url: &Option<String>| match url {
            Some(url) => wtchat_webhooks::endpoint::Url::parse(url).map(drop).map_err(|error| error.to_string()),
            None => Ok(()),
        });
    /// How long a review may take, in ms; past it, or when the moderation
    /// URL fails, `moderation_fail_open` decides.
    moderation_timeout_ms: u64, env "WTCHAT_MODERATION_TIMEOUT_MS", default (1_000),
        check (|ms: &u64| if *ms == 0 { Err("must be at least 1".into()) } else { Ok(()) });
    /// Publish a message that got no verdict (moderation down or late)
    /// instead of refusing it with `MODERATION_UNAVAILABLE`.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    moderation_fail_open: bool, env "WTCHAT_MODERATION_FAIL_OPEN", default (false);
    /// `redis://host:port/db` of the Redis that spreads rooms over several
    /// servers; several, comma-separated, spread the rooms over them too
    /// (each room on one, by a stable hash of its name: give every server
    /// the same list, in the same order). Without one rooms live in this
    /// process.
    #[arg(value_delimiter = ',')]
    redis_url: Vec<String>, env "WTCHAT_REDIS_URL", default (Vec::new()), secret (true),
        check (|urls: &Vec<String>| match urls.iter().find(|url| !url.starts_with("redis://")) {
            Some(_) => Err("each must be a redis:// URL".into()),
            None => Ok(()),
        });
    /// Treat `redis_url` as the seed nodes of one Redis Cluster (any of
    /// its nodes; several, so that a server can start while one is down):
    /// the cluster spreads the rooms over its masters by their slots, and a
    /// failover or slot migration is a blip within `redis_grace_ms`.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    redis_cluster: bool, env "WTCHAT_REDIS_CLUSTER", default (false);
    /// How long a server may be silent in Redis before the others remove
    /// its members from every room, in ms (at least 3000).
    redis_node_timeout_ms: u64, env "WTCHAT_REDIS_NODE_TIMEOUT_MS", default (10_000),
        check (|ms: &u64| if *ms < 3_000 { Err("must be at least 3000".into()) } else { Ok(()) });
    /// How long the link to a Redis may be lost before the sessions in its
    /// rooms are closed, in ms: a link back sooner resyncs each room and delivers
    /// what its members missed, so that a blip closes nothing; 0 closes at
    /// once. At most half of `redis_node_timeout_ms`, so that the other
    /// servers never remove the members of a server that kept them.
    redis_grace_ms: u64, env "WTCHAT_REDIS_GRACE_MS", default (5_000);
    /// What the name of every key and channel wtchat uses in Redis starts
    /// with, so that deployments (or other applications) can share a Redis.
    redis_key_prefix: String, env "WTCHAT_REDIS_KEY_PREFIX", default (wtchat_redis::keys::DEFAULT_PREFIX.into()),
        check (|prefix: &String| {
            if prefix.len() > 64 || prefix.chars().any(|c| c.is_whitespace() || c.is_control() || c == '{' || c == '}') {
                Err("at most 64 bytes, without spaces, control characters or braces".into())
            } else {
                Ok(())
            }
        });
    /// How long Redis keeps a room's history and numbering after its last
    /// message, in seconds (a week by default); a member resuming later is
    /// told of the gap.
    redis_history_retention_secs: u64, env "WTCHAT_REDIS_HISTORY_RETENTION_SECS",
        default (wtchat_redis::scripts::ROOM_TTL_SECS),
        check (|secs: &u64| if *secs == 0 { Err("must be at least 1".into()) } else { Ok(()) });
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
    /// Checks each option, then that the values make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |why: String| Err(ConfigError::Invalid(why));
        self.check_each().map_err(ConfigError::Invalid)?;
        if self.heartbeat_interval_ms == 0 || self.heartbeat_timeout_ms <= self.heartbeat_interval_ms {
            return fail(format!(
                "heartbeat_timeout_ms ({}) must be longer than a non-zero heartbeat_interval_ms ({})",
                self.heartbeat_timeout_ms, self.heartbeat_interval_ms
            ));
        }
        // A publish frame carries the body plus the room name and a few bytes
        // of framing; the frame limit must leave room for the largest of each.
        let publish_overhead = self.max_room_name_bytes + 32;
        if self.max_frame_bytes < self.max_message_bytes + publish_overhead {
            return fail(format!(
                "max_frame_bytes ({}) must be at least max_message_bytes + max_room_name_bytes + 32 ({})",
                self.max_frame_bytes,
                self.max_message_bytes + publish_overhead
            ));
        }
        // The server's own frames (a message relayed with the sender's name)
        // must fit the outbound queue, or every session would be evicted by
        // the first large message.
        let relay = self.max_message_bytes + self.max_room_name_bytes + self.max_display_name_bytes + 64;
        if self.outbound_queue_bytes < 2 * relay {
            return fail(format!(
                "outbound_queue_bytes ({}) must hold at least two of the largest messages ({})",
                self.outbound_queue_bytes,
                2 * relay
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return fail("cert_file and key_file go together: give both or neither".into());
        }
        if self.auth_hs256_secret.is_some() && self.auth_public_key_file.is_some() {
            return fail("auth_hs256_secret and auth_public_key_file exclude each other: give one".into());
        }
        if !self.webhook_url.is_empty() && self.webhook_secret.is_none() {
            return fail("webhook_url needs webhook_secret, which signs every delivery".into());
        }
        if self.redis_grace_ms > self.redis_node_timeout_ms / 2 {
            return fail(format!(
                "redis_grace_ms ({}) must be at most half of redis_node_timeout_ms ({})",
                self.redis_grace_ms, self.redis_node_timeout_ms
            ));
        }
        if self.redis_cluster && self.redis_url.is_empty() {
            return fail("redis_cluster needs redis_url, the cluster's seed nodes".into());
        }
        if self.moderation_url.is_some() && self.webhook_secret.is_none() {
            return fail("moderation_url needs webhook_secret, which signs every request".into());
        }
        self.authenticator()?;
        Ok(())
    }

    /// The webhooks' options, when receivers are configured.
    pub fn webhooks(&self) -> Result<Option<WebhookOptions>, ConfigError> {
        let Some(secret) = self.webhook_secret.clone().filter(|_| !self.webhook_url.is_empty()) else {
            return Ok(None);
        };
        let ca_pem = self.webhook_ca()?;
        Ok(Some(WebhookOptions {
            urls: self.webhook_url.clone(),
            secret,
            queue_bytes: self.webhook_queue_bytes,
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            ca_pem,
        }))
    }

    /// The webhook CA file's PEM, when one is configured.
    fn webhook_ca(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        self.webhook_ca_file
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|source| ConfigError::Read { path: path.clone(), source })
            })
            .transpose()
    }

    /// The moderation's options, when a moderation URL is configured.
    pub fn moderation(&self) -> Result<Option<ModerationOptions>, ConfigError> {
        let (Some(url), Some(secret)) = (&self.moderation_url, &self.webhook_secret) else { return Ok(None) };
        Ok(Some(ModerationOptions {
            url: url.clone(),
            secret: secret.clone(),
            timeout: Duration::from_millis(self.moderation_timeout_ms),
            fail_open: self.moderation_fail_open,
            ca_pem: self.webhook_ca()?,
        }))
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

    /// The Redis broker's options, when a Redis is configured.
    pub fn redis(&self) -> Option<RedisOptions> {
        Some(RedisOptions {
            urls: Some(self.redis_url.clone()).filter(|urls| !urls.is_empty())?,
            cluster: self.redis_cluster,
            history_len: self.history_len,
            node_timeout: Duration::from_millis(self.redis_node_timeout_ms),
            presence_interval: Duration::from_millis(self.presence_interval_ms),
            grace: Duration::from_millis(self.redis_grace_ms),
            key_prefix: self.redis_key_prefix.clone(),
            history_retention: Duration::from_secs(self.redis_history_retention_secs),
        })
    }

    /// The limits each session is held to.
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_frame_bytes: self.max_frame_bytes,
            max_message_bytes: self.max_message_bytes,
            max_rooms_per_session: self.max_rooms_per_session,
            publish_rate_per_sec: self.publish_rate_per_sec,
            publish_burst: self.publish_burst,
            flood_tolerance: self.flood_tolerance,
            error_tolerance: self.error_tolerance,
            outbound_queue_bytes: self.outbound_queue_bytes,
            max_room_name_bytes: self.max_room_name_bytes,
            max_display_name_bytes: self.max_display_name_bytes,
        }
    }

    /// What the core is configured with.
    pub fn hub_config(&self) -> HubConfig {
        let ms = Duration::from_millis;
        HubConfig {
            session: self.session_limits(),
            admission: AdmissionLimits {
                max_connections: self.max_connections,
                max_connections_per_ip: self.max_connections_per_ip,
                max_new_connections_per_sec: self.max_new_connections_per_sec,
            },
            max_rooms: self.max_rooms,
            max_rooms_per_user: self.max_rooms_per_user,
            history_len: self.history_len,
            history_replay: self.history_replay,
            heartbeat_interval: ms(self.heartbeat_interval_ms),
            heartbeat_timeout: ms(self.heartbeat_timeout_ms),
            retry_hints: RetryHints {
                shutdown: RetryHint {
                    base: ms(self.shutdown_retry_after_ms),
                    spread: ms(self.shutdown_retry_spread_ms),
                },
                refusal: RetryHint {
                    base: ms(self.refusal_retry_after_ms),
                    spread: ms(self.refusal_retry_spread_ms),
                },
                flooding: ms(self.flooding_retry_after_ms),
            },
            presence: PresencePolicy {
                interval: ms(self.presence_interval_ms),
                names_max: self.presence_names_max,
            },
            token_refresh_notice: ms(self.token_refresh_notice_ms),
        }
    }

    /// How often clients must send something.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// How long a silent client is waited for.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms)
    }

    /// Whether WebTransport is served.
    pub fn webtransport(&self) -> bool {
        !self.no_webtransport
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
        assert_eq!(config.max_message_bytes, 1000);
        assert_eq!(config.max_frame_bytes, Config::default().max_frame_bytes);
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

    #[test]
    fn each_option_is_checked_and_named_when_it_fails() {
        for (toml, named) in [
            ("max_rooms = 0", "max_rooms"),
            ("webtransport_path = \"wt\"", "webtransport_path"),
            ("admin_token = \"short\"", "admin_token"),
            ("api_keys = [\"short\"]", "api_keys"),
            ("redis_url = [\"http://127.0.0.1\"]", "redis_url"),
            ("webhook_url = [\"ftp://x/\"]", "webhook_url"),
            ("webhook_secret = \"short\"", "webhook_secret"),
            ("webhook_url = [\"http://127.0.0.1:9/\"]", "webhook_secret"),
            ("moderation_url = \"http://127.0.0.1:9/\"", "webhook_secret"),
            ("moderation_url = \"gopher://x/\"", "moderation_url"),
            ("redis_node_timeout_ms = 1000", "redis_node_timeout_ms"),
            ("redis_grace_ms = 6000", "redis_grace_ms"),
            ("redis_key_prefix = \"a b\"", "redis_key_prefix"),
            ("redis_history_retention_secs = 0", "redis_history_retention_secs"),
        ] {
            let settings: Settings = toml::from_str(toml).unwrap();
            let error = Config::default().apply(&settings).validate().unwrap_err().to_string();
            assert!(error.contains(named), "{toml}: {error}");
        }
        Config::default().validate().unwrap();
    }
}
