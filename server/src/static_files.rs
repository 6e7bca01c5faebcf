//! The static files of the demo page, served from the web root.
//!
//! Only plain paths under the root are served: no `..`, no hidden files, no
//! directory listings. Files are read per request; they are small, and reading
//! them fresh means a rebuilt client is picked up without a restart.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

use crate::response::text;

/// The web root.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// The folder served at `/`.
    root: PathBuf,
}

impl StaticFiles {
    /// Serves files under `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Answers a GET or HEAD for `path`.
    pub async fn serve(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let Some(file) = self.resolve(path) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let file = if file.is_dir() { file.join("index.html") } else { file };
        match tokio::fs::read(&file).await {
            Ok(contents) => {
                let length = contents.len();
                let body = if method == Method::HEAD { Bytes::new() } else { Bytes::from(contents) };
                let mut response = Response::new(Full::new(body));
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&file)));
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                // The page and the client change together with the server;
                // revalidating every time avoids a stale client against a
                // newer server.
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
                response
            }
            Err(_) => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let relative = Path::new(path.trim_start_matches('/'));
        let mut resolved = self.root.clone();
        for component in relative.components() {
            match component {
                Component::Normal(part) if !part.to_string_lossy().starts_with('.') => resolved.push(part),
                _ => return None,
            }
        }
        Some(resolved)
    }
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_resolve() {
        let files = StaticFiles::new(PathBuf::from("/srv/web"));
        assert_eq!(files.resolve("/"), Some(PathBuf::from("/srv/web")));
        assert_eq!(files.resolve("/pkg/client.js"), Some(PathBuf::from("/srv/web/pkg/client.js")));
        assert_eq!(files.resolve("/../etc/passwd"), None);
        assert_eq!(files.resolve("/pkg/../../etc/passwd"), None);
        assert_eq!(files.resolve("/.git/config"), None);
    }
}
