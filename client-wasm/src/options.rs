//! How the page configures the client: a plain object whose fields are
//! all optional, read by hand (`js_object.rs`), and refused whole, with the
//! field named, when one is unknown or of the wrong type.

use wasm_bindgen::JsValue;

use crate::js_object::{boolean, float, list, string, unknown_keys};

/// The fields a page may give, as it spells them.
const FIELDS: [&str; 9] = [
    "server",
    "forceWebSocket",
    "headStartMs",
    "webtransportTimeoutMs",
    "certificateHashes",
    "webtransportUrl",
    "clientName",
    "rememberTransport",
    "token",
];

/// How the page configures the client. Every field is optional.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL, such as `http://127.0.0.1:8080`; the page's
    /// origin by default.
    pub server: Option<String>,
    /// Use WebSocket only.
    pub force_websocket: bool,
    /// How long WebTransport runs alone before WebSocket starts too.
    pub head_start_ms: f64,
    /// How long WebTransport may take to answer before it counts as failed.
    pub webtransport_timeout_ms: f64,
    /// Certificate hashes (hex) to trust instead of the server's, for pages
    /// that pin them.
    pub certificate_hashes: Option<Vec<String>>,
    /// A WebTransport URL to use instead of the server's.
    pub webtransport_url: Option<String>,
    /// How the client names itself to the server.
    pub client_name: String,
    /// Whether to remember which transport won, for the next visit.
    pub remember_transport: bool,
    /// A token (JWT) for servers that require one. It names the user.
    /// Before it expires the server asks for a fresh one, which the page
    /// gives through `onTokenExpiring` (or `refreshToken`); without one the
    /// session is closed when the token expires.
    pub token: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            server: None,
            force_websocket: false,
            head_start_ms: 400.0,
            webtransport_timeout_ms: 5_000.0,
            certificate_hashes: None,
            webtransport_url: None,
            client_name: concat!("wtchat-web/", env!("CARGO_PKG_VERSION")).into(),
            remember_transport: true,
            token: None,
        }
    }
}

impl Options {
    /// The options a page gave; undefined or null is every default.
    pub fn from_js(given: &JsValue) -> Result<Self, String> {
        let mut options = Self::default();
        if given.is_undefined() || given.is_null() {
            return Ok(options);
        }
        if let Some(key) = unknown_keys(given, &FIELDS).first() {
            return Err(format!("unknown field {key}; see the fields of Options"));
        }
        options.server = string(given, "server")?;
        options.force_websocket = boolean(given, "forceWebSocket")?.unwrap_or(options.force_websocket);
        options.head_start_ms = float(given, "headStartMs")?.unwrap_or(options.head_start_ms);
        options.webtransport_timeout_ms =
            float(given, "webtransportTimeoutMs")?.unwrap_or(options.webtransport_timeout_ms);
        options.certificate_hashes =
            list(given, "certificateHashes", |hash| hash.as_string(), "an array of hex strings")?;
        options.webtransport_url = string(given, "webtransportUrl")?;
        options.client_name = string(given, "clientName")?.unwrap_or(options.client_name);
        options.remember_transport =
            boolean(given, "rememberTransport")?.unwrap_or(options.remember_transport);
        options.token = string(given, "token")?;
        Ok(options)
    }
}
