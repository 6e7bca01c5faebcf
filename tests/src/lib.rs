//! Helpers for end-to-end tests: the real server on loopback ports, and real
//! clients that speak the protocol over real sockets: a WebSocket client
//! (tokio-tungstenite), a WebTransport client (wtransport, an implementation
//! independent of the server's HTTP/3 layer), and a plain HTTP/3 client that
//! speaks the wire format by hand, for conformance checks.

pub mod bench;
pub mod binary;
pub mod browser;
pub mod client;
pub mod cross_server;
pub mod dial;
pub mod h3;
pub mod http;
pub mod http_server;
pub mod moderation_backend;
pub mod redis;
pub mod redis_cluster;
pub mod server;
pub mod token_issuer;
pub mod webhook_receiver;
pub mod websocket;
pub mod webtransport;

pub use client::{Client, Received, Wire};
pub use dial::Dial;
pub use http::{http_get, http_get_raw, http_post, http_send, metric, scrape_metrics};
pub use server::{PATIENCE, TestServer, eventually};
pub use websocket::{WsClient, WsWire};
pub use webtransport::{WtClient, WtWire};
