//! TLS: the server's certificates ([`certificate`], [`certificate_store`])
//! and the rustls configurations of the two listeners, both fed by one
//! certificate store so that a rotation reaches them together.

pub mod certificate;
pub mod certificate_store;

use std::sync::Arc;

use rustls::ServerConfig;

use self::certificate_store::CertificateStore;

/// Makes ring the process's rustls crypto provider. rustls refuses to pick
/// one on its own when more than one is compiled in; doing it explicitly (and
/// tolerating a second call) keeps start-up deterministic.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS configuration for QUIC: TLS 1.3 only, ALPN `h3`, no 0-RTT (a
/// replayed first flight must not replay a chat request).
pub fn quic_config(store: Arc<CertificateStore>) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h3".to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// The TLS configuration for HTTPS and `wss://` on the TCP listener.
pub fn tcp_config(store: Arc<CertificateStore>) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
