//! The server API: HTTP + JSON under `/api/` for the application's
//! backend, in front of the core's [`Backend`].
//!
//! It is on when at least one API key is configured; each call presents
//! one as `Authorization: Bearer <key>` (compared in constant time). With
//! no key set every `/api/` path answers 404, so that nobody can probe it.
//! Errors are JSON `{"error": {"code", "text"}}` with a stable code; the
//! calls and their answers are described in `api/openapi.json`, which the
//! server serves at `/api/openapi.json`.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};
use wtchat_core::arrival::TransportKind;
use wtchat_core::backend::{Backend, BackendError, Post};
use wtchat_core::broker::{Disconnect, Sequenced};
use wtchat_core::presence::PAGE_MAX;

use crate::bearer::{constant_time_eq, presented_bearer};

/// The OpenAPI document of every call below.
pub const OPENAPI: &str = include_str!("api/openapi.json");

/// The sender name of a post that names none.
const DEFAULT_SENDER: &str = "system";

/// The most rooms one call may post to.
const MAX_ROOMS_PER_CALL: usize = 100;

/// Every call: method and path pattern (`{name}` is one segment). The
/// OpenAPI document lists the same; a test holds the two together.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/openapi.json"),
    ("GET", "/api/info"),
    ("GET", "/api/rooms"),
    ("POST", "/api/rooms/{room}/messages"),
    ("GET", "/api/rooms/{room}/members"),
    ("GET", "/api/rooms/{room}/history"),
    ("POST", "/api/messages"),
    ("POST", "/api/users/{user}/disconnect"),
    ("POST", "/api/sessions/{session}/disconnect"),
];

/// The API's state: the keys and the core's door.
#[derive(Debug)]
pub struct Api {
    keys: Vec<String>,
    backend: Backend,
    /// How large a request body may be: a message at its limit, escaped.
    max_body_bytes: usize,
}

/// A failed call: status, stable code, text.
struct Failure(StatusCode, &'static str, String);

impl From<BackendError> for Failure {
    fn from(error: BackendError) -> Self {
        let status = match error {
            BackendError::UnknownRoom(_) => StatusCode::NOT_FOUND,
            BackendError::InvalidName(_)
            | BackendError::EmptyMessage
            | BackendError::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            BackendError::MessageTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BackendError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            BackendError::BrokerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self(status, error.code(), error.text())
    }
}

type Answer = Result<Value, Failure>;

/// A post as the caller sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostBody {
    body: String,
    #[serde(default)]
    sender: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Only in a post to many rooms.
    #[serde(default)]
    rooms: Option<Vec<String>>,
}

/// A disconnect as the caller sends it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    #[serde(default)]
    reason: Option<String>,
}

impl Api {
    /// The API with these keys (it is off when there are none), over the
    /// core's backend door. The server passes the admin token among them,
    /// for the operator's console.
    pub fn new(keys: Vec<String>, backend: Backend) -> Self {
        let max_message_bytes = backend.hub().config().session.max_message_bytes;
        // JSON escapes a character in at most six bytes.
        Self { keys, backend, max_body_bytes: max_message_bytes * 6 + 4096 }
    }

    /// Answers a request under `/api/`.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if self.keys.is_empty() {
            return failure(&Failure(
                StatusCode::NOT_FOUND,
                "api_off",
                "the server API is off; set api_keys to turn it on".into(),
            ));
        }
        if !self.authorized(&request) {
            return failure(&Failure(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API key is required as Authorization: Bearer <key>".into(),
            ));
        }
        match self.call(request).await {
            Ok(value) => json(StatusCode::OK, &value),
            Err(error) => failure(&error),
        }
    }

    fn authorized<B>(&self, request: &Request<B>) -> bool {
        let presented = presented_bearer(request);
        // Every key is compared, so that timing tells nothing of which
        // matched or how much of one.
        self.keys
            .iter()
            .fold(false, |found, key| constant_time_eq(presented.as_bytes(), key.as_bytes()) | found)
    }

    async fn call(&self, request: Request<Incoming>) -> Answer {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let segments: Vec<&str> = path.strip_prefix("/api/").unwrap_or_default().split('/').collect();
        match (&method, segments.as_slice()) {
            (&Method::GET, ["openapi.json"]) => {
                serde_json::from_str(OPENAPI).map_err(|e| internal(&e.to_string()))
            }
            (&Method::GET, ["info"]) => Ok(self.info()),
            (&Method::GET, ["rooms"]) => self.rooms(&query).await,
            (&Method::POST, ["rooms", room, "messages"]) => {
                let post: PostBody = self.body(request).await?;
                if post.rooms.is_some() {
                    return Err(invalid("rooms belongs in POST /api/messages, not in a post to one room"));
                }
                let sequenced = self.backend.publish(room, &to_post(post)).await?;
                Ok(published(room, sequenced))
            }
            (&Method::POST, ["messages"]) => self.publish_many(self.body(request).await?).await,
            (&Method::GET, ["rooms", room, "members"]) => self.members(room, &query).await,
            (&Method::GET, ["rooms", room, "history"]) => self.history(room, &query).await,
            (&Method::POST, ["users", user, "disconnect"]) => {
                let user = percent_decode(user)
                    .ok_or_else(|| invalid("the user id is not valid percent-encoded UTF-8"))?;
                let reason = self.disconnect_body(request).await?;
                Ok(
                    json!({ "disconnected": self.backend.disconnect(&Disconnect::User(user), reason.as_deref()) }),
                )
            }
            (&Method::POST, ["sessions", session, "disconnect"]) => {
                let id: u64 = session.parse().map_err(|_| invalid("a session id is a number"))?;
                let reason = self.disconnect_body(request).await?;
                Ok(
                    json!({ "disconnected": self.backend.disconnect(&Disconnect::Session(id), reason.as_deref()) }),
                )
            }
            _ if ROUTES.iter().any(|(_, pattern)| matches(pattern, &path)) => Err(Failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on {path}"),
            )),
            _ => Err(Failure(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no call {path}; see /api/openapi.json"),
            )),
        }
    }

    fn info(&self) -> Value {
        let hub = self.backend.hub();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": hub.uptime().as_secs(),
            "sessions": hub.session_count(),
            "rooms": hub.rooms().len(),
            "draining": hub.is_draining(),
            "broker": match hub.broker_status() {
                Some(status) => serde_json::to_value(status).unwrap_or_default(),
                None => json!({ "kind": "memory", "available": true }),
            },
        })
    }

    async fn rooms(&self, query: &str) -> Answer {
        let after =
            match query.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| *key == "after") {
                Some((_, after)) => {
                    percent_decode(after).ok_or_else(|| invalid("after is a percent-encoded room name"))?
                }
                None => String::new(),
            };
        let page = self.backend.rooms(&after, page_limit(query)?).await?;
        let rooms: Vec<Value> = page
            .rooms
            .iter()
            .map(|room| json!({ "room": room.name, "member_count": room.member_count }))
            .collect();
        Ok(json!({ "rooms": rooms, "next_after": page.next_after }))
    }

    async fn publish_many(&self, post: PostBody) -> Answer {
        let Some(rooms) = post.rooms.clone() else {
            return Err(invalid("a post to many rooms lists them in rooms"));
        };
        if rooms.is_empty() || rooms.len() > MAX_ROOMS_PER_CALL {
            return Err(invalid(&format!("rooms lists 1 to {MAX_ROOMS_PER_CALL} rooms")));
        }
        let post = to_post(post);
        let mut results = Vec::with_capacity(rooms.len());
        for room in &rooms {
            results.push(match self.backend.publish(room, &post).await {
                Ok(sequenced) => published(room, sequenced),
                Err(error) => {
                    let Failure(_, code, text) = Failure::from(error);
                    json!({ "room": room, "error": { "code": code, "text": text } })
                }
            });
        }
        Ok(json!({ "results": results }))
    }

    async fn members(&self, room: &str, query: &str) -> Answer {
        let after = number(query, "after")?.unwrap_or(0);
        let limit = page_limit(query)?;
        let page = self.backend.members(room, after, limit).await?;
        let hub = self.backend.hub();
        let members: Vec<Value> = page
            .members
            .iter()
            .map(|m| {
                let transport = hub.transport_of(m.session_id).map(TransportKind::name);
                json!({ "session_id": m.session_id, "name": m.name, "transport": transport })
            })
            .collect();
        Ok(json!({
            "room": room,
            "member_count": page.member_count,
            "members": members,
            "next_after": page.next_after,
        }))
    }

    async fn history(&self, room: &str, query: &str) -> Answer {
        let before = number(query, "before")?.unwrap_or(u64::MAX);
        let limit = page_limit(query)?;
        let page = self.backend.history(room, before, limit).await?;
        let oldest = page.messages.first().map(|m| m.seq);
        let messages: Vec<Value> = page
            .messages
            .iter()
            .map(|m| {
                json!({
                    "seq": m.seq,
                    "sender": { "session_id": m.sender.session_id, "name": m.sender.name },
                    "sent_at_ms": m.sent_at_ms,
                    "body": m.body,
                })
            })
            .collect();
        Ok(json!({
            "room": room,
            "epoch": page.epoch,
            "next_seq": page.next_seq,
            "messages": messages,
            // Where an older page ends, while the history holds one.
            "next_before": oldest.filter(|seq| *seq > 1 && messages.len() == limit),
        }))
    }

    async fn body<T: serde::de::DeserializeOwned>(&self, request: Request<Incoming>) -> Result<T, Failure> {
        let bytes = self.read(request).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| invalid(&format!("the body is not the JSON this call takes: {e}")))
    }

    async fn disconnect_body(&self, request: Request<Incoming>) -> Result<Option<String>, Failure> {
        let bytes = self.read(request).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let body: DisconnectBody = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(&format!("the body is not the JSON this call takes: {e}")))?;
        Ok(body.reason)
    }

    async fn read(&self, request: Request<Incoming>) -> Result<Bytes, Failure> {
        match Limited::new(request.into_body(), self.max_body_bytes).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(error) if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than {} bytes", self.max_body_bytes),
            )),
            Err(error) => Err(invalid(&format!("the body could not be read: {error}"))),
        }
    }
}

fn to_post(post: PostBody) -> Post {
    Post {
        sender: post.sender.unwrap_or_else(|| DEFAULT_SENDER.into()),
        body: post.body,
        idempotency_key: post.idempotency_key,
    }
}

fn published(room: &str, sequenced: Sequenced) -> Value {
    json!({ "room": room, "seq": sequenced.seq, "epoch": sequenced.epoch })
}

fn invalid(text: &str) -> Failure {
    Failure(StatusCode::BAD_REQUEST, "invalid_request", text.to_owned())
}

fn internal(text: &str) -> Failure {
    Failure(StatusCode::INTERNAL_SERVER_ERROR, "internal", text.to_owned())
}

/// A number from the query string, if given.
fn number(query: &str, name: &str) -> Result<Option<u64>, Failure> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.parse().map_err(|_| invalid(&format!("{name} is a number"))))
        .transpose()
}

fn page_limit(query: &str) -> Result<usize, Failure> {
    let limit = number(query, "limit")?.unwrap_or(PAGE_MAX as u64);
    if limit == 0 || limit > PAGE_MAX as u64 {
        return Err(invalid(&format!("limit is 1 to {PAGE_MAX}")));
    }
    Ok(usize::try_from(limit).unwrap_or(PAGE_MAX))
}

/// Whether a path fits a route pattern.
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, path): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    pattern.len() == path.len()
        && pattern.iter().zip(&path).all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
}

/// A path segment with `%XX` escapes decoded, if it is UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(segment.len());
    let mut rest = segment.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

fn json(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn failure(Failure(status, code, text): &Failure) -> Response<Full<Bytes>> {
    json(*status, &json!({ "error": { "code": code, "text": text } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_every_route_and_no_other() {
        let document: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented: Vec<(String, String)> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let mut routes: Vec<(String, String)> =
            ROUTES.iter().map(|(method, path)| ((*method).to_owned(), (*path).to_owned())).collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
    }

    #[test]
    fn paths_fit_patterns_segment_by_segment() {
        assert!(matches("/api/rooms/{room}/messages", "/api/rooms/lobby/messages"));
        assert!(!matches("/api/rooms/{room}/messages", "/api/rooms//messages"));
        assert!(!matches("/api/rooms/{room}/messages", "/api/rooms/lobby/messages/x"));
        assert_eq!(percent_decode("ann%40example.com").as_deref(), Some("ann@example.com"));
        assert_eq!(percent_decode("bad%4"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }
}
