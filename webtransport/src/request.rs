//! An HTTP/3 request as the server routes it: the pseudo-header fields and
//! the few header fields a WebTransport session depends on.

use crate::qpack::Field;

/// The `:protocol` tokens that ask for a WebTransport session: the one every
/// browser sends today (drafts 02 to 14) and the one draft 15 introduced.
pub const PROTOCOLS: [&str; 2] = ["webtransport", "webtransport-h3"];

/// A decoded request head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `:method`.
    pub method: String,
    /// `:scheme`.
    pub scheme: String,
    /// `:authority`, or the `host` field.
    pub authority: String,
    /// `:path`, query included.
    pub path_and_query: String,
    /// `:protocol` of an extended CONNECT (RFC 9220), if any.
    pub protocol: Option<String>,
    /// The `origin` field, if any.
    pub origin: Option<String>,
    /// The `authorization` field, if any.
    pub authorization: Option<String>,
}

/// Why a request head is malformed (RFC 9114, section 4.3.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A required pseudo-header field is missing.
    #[error("the request has no {0}")]
    Missing(&'static str),
    /// A pseudo-header field appears twice, or is not a request
    /// pseudo-header at all.
    #[error("pseudo-header field {0} is repeated or unknown")]
    BadPseudoHeader(String),
    /// A field that is not UTF-8 where it must be.
    #[error("field {0} is not valid text")]
    NotText(String),
}

impl Request {
    /// Builds a request from its decoded fields.
    ///
    /// RFC 9114 (section 4.3) wants pseudo-header fields before regular
    /// ones; the server accepts them in any order, because a widely used
    /// client (wtransport 0.7) keeps its fields in a hash map and sends them
    /// in random order. Duplicates and unknown pseudo-header fields are
    /// still refused.
    pub fn from_fields(fields: &[Field]) -> Result<Self, RequestError> {
        let mut request = Self::default();
        let mut authority: Option<String> = None;
        let mut host: Option<String> = None;
        let mut seen: Vec<&[u8]> = Vec::new();
        for field in fields {
            let name = String::from_utf8_lossy(&field.name);
            let text = || {
                String::from_utf8(field.value.clone()).map_err(|_| RequestError::NotText(name.to_string()))
            };
            if field.name.starts_with(b":") {
                if seen.contains(&field.name.as_slice()) {
                    return Err(RequestError::BadPseudoHeader(name.into()));
                }
                seen.push(&field.name);
                match field.name.as_slice() {
                    b":method" => request.method = text()?,
                    b":scheme" => request.scheme = text()?,
                    b":authority" => authority = Some(text()?),
                    b":path" => request.path_and_query = text()?,
                    b":protocol" => request.protocol = Some(text()?),
                    _ => return Err(RequestError::BadPseudoHeader(name.into())),
                }
                continue;
            }
            match field.name.as_slice() {
                b"origin" => request.origin = Some(text()?),
                b"authorization" => request.authorization = Some(text()?),
                b"host" => host = Some(text()?),
                _ => {}
            }
        }
        if request.method.is_empty() {
            return Err(RequestError::Missing(":method"));
        }
        request.authority = authority.or(host).unwrap_or_default();
        // A CONNECT without :protocol names only an authority; every other
        // request (extended CONNECT included) needs a scheme and a path.
        if request.method != "CONNECT" || request.protocol.is_some() {
            if request.scheme.is_empty() {
                return Err(RequestError::Missing(":scheme"));
            }
            if request.path_and_query.is_empty() {
                return Err(RequestError::Missing(":path"));
            }
        }
        Ok(request)
    }

    /// The path without its query.
    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or_default()
    }

    /// The query, if any.
    pub fn query(&self) -> Option<&str> {
        self.path_and_query.split_once('?').map(|(_, query)| query)
    }

    /// Whether this is an extended CONNECT asking for a WebTransport
    /// session, in any dialect the server speaks.
    pub fn is_webtransport(&self) -> bool {
        self.method == "CONNECT"
            && self.protocol.as_deref().is_some_and(|protocol| PROTOCOLS.contains(&protocol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter().map(|&(n, v)| Field { name: n.into(), value: v.into() }).collect()
    }

    #[test]
    fn a_webtransport_connect_in_either_dialect() {
        for protocol in PROTOCOLS {
            let request = Request::from_fields(&fields(&[
                (":method", "CONNECT"),
                (":protocol", protocol),
                (":scheme", "https"),
                (":authority", "localhost:4433"),
                (":path", "/wt?token=abc"),
                ("origin", "https://localhost:8080"),
            ]))
            .unwrap();
            assert!(request.is_webtransport());
            assert_eq!((request.path(), request.query()), ("/wt", Some("token=abc")));
            assert_eq!(request.origin.as_deref(), Some("https://localhost:8080"));
        }
        let udp = Request::from_fields(&fields(&[
            (":method", "CONNECT"),
            (":protocol", "connect-udp"),
            (":scheme", "https"),
            (":path", "/wt"),
        ]))
        .unwrap();
        assert!(!udp.is_webtransport());
    }

    #[test]
    fn malformed_heads_are_refused_and_field_order_is_forgiven() {
        let late = fields(&[(":method", "GET"), ("origin", "x"), (":path", "/"), (":scheme", "https")]);
        assert_eq!(Request::from_fields(&late).unwrap().origin.as_deref(), Some("x"));
        let twice = fields(&[(":method", "GET"), (":method", "GET")]);
        assert!(matches!(Request::from_fields(&twice), Err(RequestError::BadPseudoHeader(_))));
        let unknown = fields(&[(":method", "GET"), (":status", "200")]);
        assert!(matches!(Request::from_fields(&unknown), Err(RequestError::BadPseudoHeader(_))));
        assert_eq!(Request::from_fields(&fields(&[(":path", "/")])), Err(RequestError::Missing(":method")));
        let no_path = fields(&[(":method", "GET"), (":scheme", "https")]);
        assert_eq!(Request::from_fields(&no_path), Err(RequestError::Missing(":path")));
    }
}
