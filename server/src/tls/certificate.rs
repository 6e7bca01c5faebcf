//! One TLS identity: a certificate chain and its private key.
//!
//! An identity comes either from PEM files (production, signed by a CA) or is
//! generated here (development): a self-signed ECDSA P-256 certificate whose
//! whole validity is under 14 days, the kind browsers accept for WebTransport
//! through `serverCertificateHashes` without any CA. The SHA-256 of the leaf
//! certificate is what such a browser is given.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// How far back a generated certificate's validity starts, so that a client
/// whose clock is a little behind still accepts it.
pub const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// How long a generated certificate is valid after it is made. With the
/// backdating, the whole span is 13 days and 1 hour: browsers refuse a
/// certificate pinned by hash whose span exceeds 14 days.
pub const LIFETIME: Duration = Duration::from_secs(13 * 24 * 60 * 60);

/// Why an identity could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The PEM holds no certificate or no key, or not one rustls can use.
    #[error("{0}")]
    Invalid(String),
    /// Generating the certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate chain, its key, and what is known about the leaf.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The chain, leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key, ready for rustls.
    certified: Arc<CertifiedKey>,
    /// The private key in PKCS#8 DER, kept to write it back out.
    key_der: Vec<u8>,
    /// The SHA-256 of the leaf certificate's DER.
    sha256: [u8; 32],
    /// When the leaf becomes valid.
    not_before: SystemTime,
    /// When the leaf stops being valid.
    not_after: SystemTime,
    /// The leaf's subject alternative names, as text.
    names: Vec<String>,
}

impl Identity {
    /// Generates a self-signed ECDSA P-256 certificate for `names` (host
    /// names or IP addresses), valid from [`BACKDATE`] before `now` until
    /// [`LIFETIME`] after it.
    pub fn self_signed(names: &[String], now: SystemTime) -> Result<Self, CertificateError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, "wtchat development certificate");
        params.distinguished_name = subject;
        params.not_before = to_offset(now - BACKDATE);
        params.not_after = to_offset(now + LIFETIME);
        let certificate = params.self_signed(&key)?;
        Self::from_der(vec![certificate.der().clone()], key.serialize_der())
    }

    /// Reads a certificate chain and its key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, CertificateError> {
        let read = |path: &Path| {
            fs::read(path).map_err(|source| CertificateError::Io { path: path.display().to_string(), source })
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<Result<_, _>>()
            .map_err(|e| CertificateError::Invalid(format!("{}: {e}", cert.display())))?;
        let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
            .map_err(|e| CertificateError::Invalid(format!("{}: {e}", key.display())))?;
        let key_bytes = key_der.secret_der().to_vec();
        Self::from_parts(chain, key_der, key_bytes)
    }

    fn from_der(chain: Vec<CertificateDer<'static>>, pkcs8: Vec<u8>) -> Result<Self, CertificateError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.clone()));
        Self::from_parts(chain, key, pkcs8)
    }

    fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        key_der: Vec<u8>,
    ) -> Result<Self, CertificateError> {
        let leaf =
            chain.first().ok_or_else(|| CertificateError::Invalid("no certificate in the PEM".into()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| CertificateError::Invalid(format!("cannot parse the certificate: {e}")))?;
        let validity = parsed.validity();
        let not_before = from_unix(validity.not_before.timestamp());
        let not_after = from_unix(validity.not_after.timestamp());
        let names = subject_alternative_names(&parsed);
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| CertificateError::Invalid(format!("unusable private key: {e}")))?;
        let certified = Arc::new(CertifiedKey::new(chain.clone(), signing_key));
        let sha256 = sha256(leaf);
        Ok(Self { chain, certified, key_der, sha256, not_before, not_after, names })
    }

    /// Writes the chain and the key as PEM files. The key file is readable by
    /// its owner only.
    pub fn write_pem_files(&self, cert: &Path, key: &Path) -> Result<(), CertificateError> {
        let chain: String = self.chain.iter().map(|der| pem("CERTIFICATE", der)).collect();
        write_file(cert, chain.as_bytes(), false)?;
        write_file(key, pem("PRIVATE KEY", &self.key_der).as_bytes(), true)
    }

    /// The key and chain as rustls serves them.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified
    }

    /// The leaf certificate's DER.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The SHA-256 of the leaf certificate.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// When the leaf becomes valid.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// When the leaf stops being valid.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The leaf's subject alternative names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the leaf names every one of `names`.
    pub fn covers(&self, names: &[String]) -> bool {
        names.iter().all(|wanted| self.names.iter().any(|have| same_name(have, wanted)))
    }
}

/// Compares two names, reading both as IP addresses where they are, so that
/// `::1` and `0:0:0:0:0:0:0:1` match.
fn same_name(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

fn subject_alternative_names(certificate: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(extension)) = certificate.subject_alternative_name() else { return Vec::new() };
    extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lower-case hex, for people and logs.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), CertificateError> {
    let fail = |source| CertificateError::Io { path: path.display().to_string(), source };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(fail)?;
    }
    // Write beside the target and rename, so that a reader (or a crash)
    // never sees half a certificate.
    let temporary = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&temporary).map_err(fail)?;
    io::Write::write_all(&mut file, contents).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    fs::rename(&temporary, path).map_err(fail)
}

fn to_offset(time: SystemTime) -> time::OffsetDateTime {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn from_unix(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}
