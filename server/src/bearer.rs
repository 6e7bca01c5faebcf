//! The secrets HTTP callers present (the admin token, the server API's
//! keys): read from `Authorization: Bearer`, and compared in time that
//! does not reveal how much of a secret a guess got right.

use http::{Request, header};
use wtchat_core::arrival::bearer;

/// The bearer token a request presents, or an empty one.
pub(crate) fn presented_bearer<B>(request: &Request<B>) -> &str {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .unwrap_or_default()
}

/// Whether two secrets are equal, in time that depends only on their
/// lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
