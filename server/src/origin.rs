//! Which web pages may open a session: the origin allow-list.
//!
//! Browsers attach the page's origin to WebSocket upgrades (and to WebTransport
//! CONNECT requests), but not the same-origin protection they give to other
//! requests, so a hostile page could otherwise open a session with a visitor's
//! cookies. The policy: requests without an `Origin` (programs, not browsers)
//! pass; a page served by this server itself passes; anything else must be
//! listed, or the list must contain `*`.

/// The allow-list.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Allowed origins, normalised to lower case without a trailing slash.
    allowed: Vec<String>,
    /// Whether `*` was listed.
    any: bool,
}

impl OriginPolicy {
    /// A policy allowing the server's own origin plus `allowed`.
    pub fn new(allowed: &[String]) -> Self {
        let any = allowed.iter().any(|origin| origin.trim() == "*");
        let allowed = allowed.iter().map(|origin| normalise(origin)).filter(|origin| origin != "*").collect();
        Self { allowed, any }
    }

    /// Whether a request with this `Origin` header (if any), addressed to
    /// this `Host` header (if any), may open a session.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.any {
            return true;
        }
        let origin = normalise(origin);
        if self.allowed.contains(&origin) {
            return true;
        }
        // Same origin: the page was loaded from the host it now connects to.
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        matches!((origin_host, host), (Some(origin_host), Some(host)) if origin_host == host.to_ascii_lowercase())
    }
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let policy = OriginPolicy::new(&["https://chat.example.com".into()]);
        assert!(policy.allows(None, Some("localhost:8080")), "programs send no origin");
        assert!(policy.allows(Some("http://localhost:8080"), Some("localhost:8080")), "same origin");
        assert!(policy.allows(Some("HTTPS://Chat.Example.com/"), Some("wtchat.internal")), "listed");
        assert!(!policy.allows(Some("https://evil.example"), Some("localhost:8080")));
        assert!(!policy.allows(Some("http://localhost:9999"), Some("localhost:8080")), "another port");
        assert!(!policy.allows(Some("null"), Some("localhost:8080")));
        assert!(OriginPolicy::new(&["*".into()]).allows(Some("https://evil.example"), None));
    }
}
