//! The static files of the demo page and the client, served from the web
//! root.
//!
//! Only plain paths under the root are served: no `..`, no hidden files, no
//! directory listings. Each file is read when first asked for, and again
//! only when it changes on disk, so that a rebuilt client is picked up
//! without a restart; it is then compressed (brotli and gzip,
//! `encoding.rs`) once, in the background, so that no request waits for
//! compression: until a coding is ready the file goes out in the next best
//! one, or as it is. Every answer carries a strong `ETag` (a
//! hash of the contents, per coding) so that a browser revalidates with
//! `If-None-Match` and gets `304 Not Modified`; a request that names the
//! contents' hash (`?v=<hash>`, content-addressed) may be cached for a year.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;

use crate::encoding::{self, Coding};
use crate::response::text;

/// The web root, and what was read of it.
#[derive(Debug)]
pub struct StaticFiles {
    /// The folder served at `/`.
    root: PathBuf,
    /// Each file served so far, as read and compressed.
    cache: Mutex<HashMap<PathBuf, Arc<Prepared>>>,
}

/// A file as it is served: its contents in each coding that shrinks it.
#[derive(Debug)]
struct Prepared {
    /// When the file was last modified and its length, to notice a change.
    stamp: (SystemTime, u64),
    /// The first 16 bytes of the contents' SHA-256, in hex.
    hash: String,
    content_type: &'static str,
    identity: Bytes,
    /// Set once compression is done; `None` inside when the coding does
    /// not shrink the file.
    gzip: OnceLock<Option<Bytes>>,
    brotli: OnceLock<Option<Bytes>>,
}

impl Prepared {
    /// Reads a file, and starts compressing it on a blocking thread
    /// (brotli takes a while over the wasm).
    async fn read(file: PathBuf, stamp: (SystemTime, u64)) -> Option<Arc<Self>> {
        let contents = tokio::fs::read(&file).await.ok()?;
        let content_type = content_type(&file);
        let digest = ring::digest::digest(&ring::digest::SHA256, &contents);
        let hash = digest.as_ref()[..16].iter().map(|byte| format!("{byte:02x}")).collect();
        let prepared = Arc::new(Self {
            stamp,
            hash,
            content_type,
            identity: Bytes::from(contents),
            gzip: OnceLock::new(),
            brotli: OnceLock::new(),
        });
        if encoding::compressible(content_type) {
            let compressing = prepared.clone();
            tokio::task::spawn_blocking(move || {
                let contents = &compressing.identity;
                let _ = compressing.gzip.set(encoding::compress(contents, Coding::Gzip));
                let _ = compressing.brotli.set(encoding::compress(contents, Coding::Brotli));
            });
        }
        Some(prepared)
    }

    /// The file in `coding`, if it has it.
    fn body(&self, coding: Coding) -> Option<&Bytes> {
        match coding {
            Coding::Brotli => self.brotli.get().and_then(Option::as_ref),
            Coding::Gzip => self.gzip.get().and_then(Option::as_ref),
            Coding::Identity => Some(&self.identity),
        }
    }

    /// The entity tag of the file in `coding`: each coding is its own
    /// representation, so each has its own tag.
    fn etag(&self, coding: Coding) -> String {
        match coding.token() {
            Some(token) => format!("\"{}-{token}\"", self.hash),
            None => format!("\"{}\"", self.hash),
        }
    }
}

impl StaticFiles {
    /// Serves files under `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root, cache: Mutex::new(HashMap::new()) }
    }

    /// Answers a GET or HEAD for `path` (with its `query`, if any).
    pub async fn serve(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Response<Full<Bytes>> {
        let Some(file) = self.resolve(path) else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let file = if file.is_dir() { file.join("index.html") } else { file };
        let Some(prepared) = self.prepared(file).await else {
            return text(StatusCode::NOT_FOUND, "not found\n");
        };
        let coding = encoding::accepted(headers)
            .into_iter()
            .find(|coding| prepared.body(*coding).is_some())
            .unwrap_or(Coding::Identity);
        let etag = prepared.etag(coding);
        // A request naming the contents' hash can never see other contents
        // under that name; any other must revalidate, since the page and
        // the client change together with the server.
        let addressed = query.is_some_and(|query| {
            query.split('&').any(|pair| pair.strip_prefix("v=").is_some_and(|v| v == prepared.hash))
        });
        let cache_control = if addressed { "public, max-age=31536000, immutable" } else { "no-cache" };
        let unchanged = headers.get_all(header::IF_NONE_MATCH).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .map(|tag| tag.trim().trim_start_matches("W/"))
                    .any(|tag| tag == "*" || tag == etag)
            })
        });
        let body = prepared.body(coding).cloned().unwrap_or_default();
        let length = body.len();
        let mut response = if unchanged {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
        } else {
            let body = if method == Method::HEAD { Bytes::new() } else { body };
            let mut response = Response::new(Full::new(body));
            response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            response
        };
        let out = response.headers_mut();
        out.insert(header::CONTENT_TYPE, HeaderValue::from_static(prepared.content_type));
        if let Some(token) = coding.token() {
            out.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
        }
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            out.insert(header::ETAG, etag);
        }
        out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
        out.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
        response
    }

    /// The file as served, read again when it changed on disk.
    async fn prepared(&self, file: PathBuf) -> Option<Arc<Prepared>> {
        let metadata = tokio::fs::metadata(&file).await.ok().filter(std::fs::Metadata::is_file)?;
        let stamp = (metadata.modified().ok()?, metadata.len());
        let cached = self.cache.lock().unwrap_or_else(PoisonError::into_inner).get(&file).cloned();
        if let Some(prepared) = cached.filter(|prepared| prepared.stamp == stamp) {
            return Some(prepared);
        }
        let prepared = Prepared::read(file.clone(), stamp).await?;
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).insert(file, prepared.clone());
        Some(prepared)
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
