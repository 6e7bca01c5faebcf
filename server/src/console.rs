//! The operator's console at `/console`: one page, embedded in the binary
//! so that it needs no build step and no web root, which reads `/metrics`
//! and `/status` into live charts, and the server API (which the admin
//! token opens) for rooms, members, disconnects and the drain. Without an
//! admin token the console is off.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::response::text;

/// The page.
const PAGE: &str = include_str!("console/console.html");

/// Answers `GET /console`.
pub fn page(admin_token: Option<&str>) -> Response<Full<Bytes>> {
    if admin_token.is_none() {
        return text(StatusCode::NOT_FOUND, "the console is off; set admin_token to turn it on\n");
    }
    let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The page runs its own script and talks to this server only, and no
    // other site may frame it (a framed console could be clicked blind).
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
