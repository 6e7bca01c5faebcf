//! Finding the server's transports: `GET /transports` says where WebSocket
//! and WebTransport are and which certificate hashes to trust.

use wasm_bindgen::{JsCast, JsValue};
use web_sys::Response;

use crate::js_object::{field, list, string};
use crate::link::describe;

/// Where each transport is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// WebTransport, if the server offers it.
    pub webtransport: Option<WebTransportPlan>,
    /// WebSocket.
    pub websocket: WebSocketPlan,
}

impl Plan {
    /// Adds the token to both URLs' queries; browsers cannot send headers
    /// with either transport, so the query is where the server looks.
    pub fn present_token(&mut self, token: &str) {
        let token = String::from(js_sys::encode_uri_component(token));
        let add = |url: &mut String| {
            let separator = if url.contains('?') { '&' } else { '?' };
            url.push(separator);
            url.push_str("token=");
            url.push_str(&token);
        };
        add(&mut self.websocket.url);
        if let Some(wt) = self.webtransport.as_mut() {
            add(&mut wt.url);
        }
    }
}

/// Where WebTransport is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebTransportPlan {
    /// The session URL.
    pub url: String,
    /// SHA-256 hashes of self-signed certificates to trust; empty when the
    /// certificate is CA-issued.
    pub certificate_hashes: Vec<Vec<u8>>,
}

/// Where WebSocket is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebSocketPlan {
    /// The socket URL.
    pub url: String,
}

/// Asks the server at `base` (an `http(s)://host:port` URL) for its plan.
pub async fn discover(base: &str) -> Result<Plan, String> {
    let url = format!("{}/transports", base.trim_end_matches('/'));
    let global: web_sys::Window = js_sys::global().unchecked_into();
    let response =
        global.fetch_with_str(&url).await.map_err(|e| format!("cannot reach {url}: {}", describe(&e)))?;
    let response: Response = response.unchecked_into();
    if !response.ok() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let json = response.json().map_err(|e| describe(&e))?;
    let json = wasm_bindgen_futures::JsFuture::from(json).await.map_err(|e| describe(&e))?;
    read_plan(&json).map_err(|why| format!("{url}: {why}"))
}

/// The plan from the server's answer: `{websocket: {url}, webtransport?:
/// {url, certificateHashes?: [[byte, ...], ...]}}`.
fn read_plan(json: &JsValue) -> Result<Plan, String> {
    let websocket = field(json, "websocket").ok_or("no websocket")?;
    let url = |object: &JsValue| string(object, "url")?.ok_or_else(|| "no url".to_owned());
    let webtransport = match field(json, "webtransport") {
        None => None,
        Some(wt) => {
            let hash = |value: JsValue| {
                let bytes = value.dyn_into::<js_sys::Array>().ok()?;
                bytes.iter().map(|byte| byte.as_f64().map(|b| b as u8)).collect()
            };
            let hashes = list(&wt, "certificateHashes", hash, "an array of byte arrays")?;
            Some(WebTransportPlan { url: url(&wt)?, certificate_hashes: hashes.unwrap_or_default() })
        }
    };
    Ok(Plan { webtransport, websocket: WebSocketPlan { url: url(&websocket)? } })
}

/// The plan when discovery is impossible: WebSocket at `/ws` of the same
/// server, no WebTransport.
pub fn fallback(base: &str) -> Plan {
    let base = base.trim_end_matches('/');
    let websocket = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}/ws")
    } else {
        format!("ws://{}/ws", base.strip_prefix("http://").unwrap_or(base))
    };
    Plan { webtransport: None, websocket: WebSocketPlan { url: websocket } }
}

/// Reads hex-encoded hashes (as a page may pin them). Byte by byte rather
/// than by slicing the text, whose failure path alone (a message quoting
/// the text) costs the wasm more than this function.
pub fn parse_hex_hashes(hashes: &[String]) -> Result<Vec<Vec<u8>>, String> {
    fn digit(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            b'A'..=b'F' => Some(byte - b'A' + 10),
            _ => None,
        }
    }
    hashes
        .iter()
        .map(|hash| {
            let hash = hash.trim();
            let pairs = hash.as_bytes().chunks(2);
            let bytes: Option<Vec<u8>> = pairs
                .map(|pair| match pair {
                    [high, low] => Some(digit(*high)? << 4 | digit(*low)?),
                    _ => None,
                })
                .collect();
            bytes.ok_or_else(|| format!("\"{hash}\" is not hex"))
        })
        .collect()
}
