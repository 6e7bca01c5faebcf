//! Plain HTTP/1.1 requests, written by hand so that tests see exactly what
//! goes over the socket.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::PATIENCE;

/// A GET with `Connection: close`; returns the status code and the body.
pub async fn http_get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    http_request(address, "GET", path, headers).await
}

/// A POST without a body, with `Connection: close`; returns the status code
/// and the body.
pub async fn http_post(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    http_request(address, "POST", path, &[headers, &[("Content-Length", "0")]].concat()).await
}

/// A request with a body (and its `Content-Length`), with `Connection:
/// close`; returns the status code and the body.
pub async fn http_send(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String)> {
    let length = body.len().to_string();
    let headers = [headers, &[("Content-Length", length.as_str())]].concat();
    http_exchange(address, method, path, &headers, body).await
}

async fn http_request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String)> {
    http_exchange(address, method, path, headers, "").await
}

async fn http_exchange(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String)> {
    let response = http_exchange_raw(address, method, path, headers, body).await?;
    Ok((response.status, String::from_utf8_lossy(&response.body).into_owned()))
}

/// An answer as it came: status, headers (names in lower case) and the
/// body's bytes.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Each header, its name in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, as sent (still compressed, if it was).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A GET with `Connection: close`, answered as it came.
pub async fn http_get_raw(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<RawResponse> {
    http_exchange_raw(address, "GET", path, headers, "").await
}

async fn http_exchange_raw(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<RawResponse> {
    let mut stream = TcpStream::connect(address).await?;
    let has_host = headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host"));
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !has_host {
        request.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response)).await??;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {head:?}"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let body = response.get(split + 4..).unwrap_or_default().to_vec();
    Ok(RawResponse { status, headers, body })
}

/// The `/metrics` scrape of the server at `address`.
pub async fn scrape_metrics(address: SocketAddr) -> Result<String> {
    let (status, body) = http_get(address, "/metrics", &[]).await?;
    anyhow::ensure!(status == 200, "/metrics answered {status}");
    Ok(body)
}

/// The value of one series (`name{labels}`) in a Prometheus scrape.
pub fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
