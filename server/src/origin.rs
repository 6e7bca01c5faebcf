//! Which web pages may open a session: the origin allow-list.
//!
//! Browsers attach the page's origin to WebSocket upgrades (and to WebTransport
//! CONNECT requests), but not the same-origin protection they give to other
//! requests, so a hostile page could otherwise open a session with a visitor's
//! cookies. The policy:
//! - a request without an `Origin` (a program, not a browser) passes;
//! - a malformed `Origin` (not ASCII, not `scheme://host[:port]`) is refused;
//! - a listed origin passes (scheme, host and port must all match), and `*`
//!   in the list lets every origin pass;
//! - the server's own origin passes unless `own_origin` is off: a page whose
//!   origin is `http://` or `https://` and the very host and port the
//!   request's `Host` (or `:authority`) names. That is how the demo page
//!   served by the server itself connects. It trusts `Host`, which a page on
//!   a DNS-rebinding domain controls, so a deployment on the internet turns
//!   it off and lists its origins.

/// The allow-list.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Allowed origins, normalised to lower case without a trailing slash.
    allowed: Vec<String>,
    /// Whether `*` was listed.
    any: bool,
    /// Whether the server's own origin passes without being listed.
    own_origin: bool,
}

impl OriginPolicy {
    /// A policy allowing `allowed`, and the server's own origin if
    /// `own_origin`.
    pub fn new(allowed: &[String], own_origin: bool) -> Self {
        let any = allowed.iter().any(|origin| origin.trim() == "*");
        let allowed = allowed.iter().map(|origin| normalise(origin)).filter(|origin| origin != "*").collect();
        Self { allowed, any, own_origin }
    }

    /// Whether a request with this `Origin` header (if any, as sent), to
    /// this `Host` header (if any), may open a session.
    pub fn allows(&self, origin: Option<&[u8]>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        let Some(origin) = well_formed(origin) else { return false };
        if self.any {
            return true;
        }
        let origin = normalise(origin);
        if self.allowed.contains(&origin) {
            return true;
        }
        if !self.own_origin {
            return false;
        }
        // Same origin: the page was loaded from the host it now connects to.
        let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        matches!((own, host), (Some(own), Some(host)) if own == host.to_ascii_lowercase())
    }
}

/// The origin as text, if it is one: visible ASCII, and either `null` or
/// `scheme://host[:port]` with no path, query or user.
fn well_formed(origin: &[u8]) -> Option<&str> {
    let origin = std::str::from_utf8(origin).ok()?.trim();
    if !origin.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    if origin == "null" {
        return Some(origin);
    }
    let (scheme, rest) = origin.split_once("://")?;
    let scheme_ok = scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let rest_ok = !rest.is_empty() && !rest.contains(['/', '?', '#', '@']);
    (scheme_ok && !scheme.is_empty() && rest_ok).then_some(origin)
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(policy: &OriginPolicy, origin: Option<&str>, host: &str) -> bool {
        policy.allows(origin.map(str::as_bytes), Some(host))
    }

    #[test]
    fn policy() {
        let policy = OriginPolicy::new(&["https://chat.example.com".into()], true);
        assert!(allows(&policy, None, "localhost:8080"), "programs send no origin");
        assert!(allows(&policy, Some("http://localhost:8080"), "localhost:8080"), "same origin");
        assert!(allows(&policy, Some("HTTPS://Chat.Example.com/"), "wtchat.internal"), "listed");
        assert!(!allows(&policy, Some("https://evil.example"), "localhost:8080"));
        assert!(!allows(&policy, Some("http://localhost:9999"), "localhost:8080"), "another port");
        assert!(!allows(&policy, Some("null"), "localhost:8080"));
        assert!(OriginPolicy::new(&["*".into()], true).allows(Some(b"https://evil.example"), None));
    }

    #[test]
    fn malformed_origins_are_refused_even_where_any_origin_is_allowed() {
        let any = OriginPolicy::new(&["*".into()], true);
        for bad in [
            &b"https://\xc3\xa9vil.example"[..],
            b"https://a b",
            b"https://x/path",
            b"://x",
            b"https://u@x",
            b"",
        ] {
            assert!(!any.allows(Some(bad), Some("x")), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_own_origin_needs_a_web_scheme_and_can_be_turned_off() {
        let own = OriginPolicy::new(&[], true);
        assert!(!allows(&own, Some("ws://localhost:8080"), "localhost:8080"), "not a page's scheme");
        // A DNS-rebinding page names its own host in both headers.
        assert!(allows(&own, Some("http://rebind.example:8080"), "rebind.example:8080"));
        let strict = OriginPolicy::new(&["https://chat.example".into()], false);
        assert!(!allows(&strict, Some("http://rebind.example:8080"), "rebind.example:8080"));
        assert!(allows(&strict, Some("https://chat.example"), "rebind.example:8080"));
    }
}
