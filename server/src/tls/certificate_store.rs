//! The certificate the server presents, and the one that will replace it.
//!
//! In production the store serves PEM files from a CA and reloads them when
//! they change on disk (as a renewal job rewrites them). In development it
//! serves a short-lived self-signed certificate that it generates, keeps
//! under the certificate folder across restarts, and rotates on its own:
//!
//! - when the current certificate has less than [`ANNOUNCE_BEFORE`] left, the
//!   next one is generated and announced beside it (`/cert-hashes` lists both,
//!   so pages that fetch the hashes now accept either);
//! - when it has less than [`ROTATE_BEFORE`] left, the next one is served.
//!
//! The store is the rustls certificate resolver, so a rotation takes effect
//! on the next handshake without a restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certificate::{CertificateError, Identity};

/// A generated certificate is replaced when it has less than this left.
pub const ROTATE_BEFORE: Duration = Duration::from_secs(2 * 24 * 60 * 60);

/// The replacement is generated and announced when the current certificate
/// has less than this left: three days before it is served.
pub const ANNOUNCE_BEFORE: Duration = Duration::from_secs(5 * 24 * 60 * 60);

/// Where certificates come from.
#[derive(Debug, Clone)]
pub enum CertificateSource {
    /// A chain and key in PEM files, issued by a CA.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// Self-signed certificates generated and kept in a folder.
    SelfSigned {
        /// Where they are kept.
        dir: PathBuf,
        /// The names they must cover.
        names: Vec<String>,
    },
}

/// The served certificate and its successor.
pub struct CertificateStore {
    /// Where certificates come from.
    source: CertificateSource,
    /// A std lock: read on every TLS handshake, written on rotation, never
    /// held across an `.await`.
    state: RwLock<State>,
}

#[derive(Debug)]
struct State {
    /// The certificate served now.
    current: Identity,
    /// The announced successor of a generated certificate.
    next: Option<Identity>,
    /// When the certificate file was last modified, for reloading.
    modified: Option<SystemTime>,
}

impl fmt::Debug for CertificateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateStore").field("source", &self.source).finish_non_exhaustive()
    }
}

impl CertificateStore {
    /// Opens the store: reads the files, or reuses the generated certificates
    /// kept from an earlier run while they are still good, or generates them.
    pub fn open(source: CertificateSource, now: SystemTime) -> Result<Self, CertificateError> {
        let state = match &source {
            CertificateSource::Files { cert, key } => {
                State { current: Identity::from_pem_files(cert, key)?, next: None, modified: modified(cert) }
            }
            CertificateSource::SelfSigned { dir, names } => {
                let usable = |identity: &Identity| {
                    identity.covers(names)
                        && identity.not_before() <= now
                        && now + ROTATE_BEFORE < identity.not_after()
                };
                let kept = |slot: &str| {
                    let (cert, key) = slot_paths(dir, slot);
                    Identity::from_pem_files(&cert, &key).ok().filter(usable)
                };
                let (current, next) = match (kept("current"), kept("next")) {
                    (Some(current), next) => (current, next),
                    (None, Some(next)) => (next, None),
                    (None, None) => (Identity::self_signed(names, now)?, None),
                };
                State { current, next, modified: None }
            }
        };
        let store = Self { source, state: RwLock::new(state) };
        store.refresh(now)?;
        store.persist()?;
        Ok(store)
    }

    /// Rotates generated certificates that are due, or reloads certificate
    /// files that changed. Returns whether the served certificate changed.
    pub fn refresh(&self, now: SystemTime) -> Result<bool, CertificateError> {
        match &self.source {
            CertificateSource::Files { cert, key } => {
                let on_disk = modified(cert);
                if on_disk.is_none() || on_disk == self.read().modified {
                    return Ok(false);
                }
                let identity = Identity::from_pem_files(cert, key)?;
                let mut state = self.write();
                state.current = identity;
                state.modified = on_disk;
                Ok(true)
            }
            CertificateSource::SelfSigned { names, .. } => {
                let mut rotated = false;
                let mut announced = false;
                {
                    let mut state = self.write();
                    let left =
                        |identity: &Identity| identity.not_after().duration_since(now).unwrap_or_default();
                    if left(&state.current) < ROTATE_BEFORE {
                        let next = state.next.take().filter(|next| left(next) >= ROTATE_BEFORE);
                        state.current = match next {
                            Some(next) => next,
                            None => Identity::self_signed(names, now)?,
                        };
                        rotated = true;
                    }
                    if state.next.is_none() && left(&state.current) < ANNOUNCE_BEFORE {
                        state.next = Some(Identity::self_signed(names, now)?);
                        announced = true;
                    }
                }
                if rotated || announced {
                    self.persist()?;
                    tracing::info!(rotated, announced, "development certificates refreshed");
                }
                Ok(rotated)
            }
        }
    }

    /// Writes generated certificates to their folder, so that a restart
    /// serves the same ones and pages keep working with the hashes they have.
    fn persist(&self) -> Result<(), CertificateError> {
        let CertificateSource::SelfSigned { dir, .. } = &self.source else { return Ok(()) };
        let state = self.read();
        let (cert, key) = slot_paths(dir, "current");
        state.current.write_pem_files(&cert, &key)?;
        let (cert, key) = slot_paths(dir, "next");
        match &state.next {
            Some(next) => next.write_pem_files(&cert, &key)?,
            None => {
                let _ = std::fs::remove_file(cert);
                let _ = std::fs::remove_file(key);
            }
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // Every write replaces whole values, so a poisoned lock still holds
        // a consistent state.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The certificate served now.
    pub fn current(&self) -> Identity {
        self.read().current.clone()
    }

    /// The announced successor, if any.
    pub fn next(&self) -> Option<Identity> {
        self.read().next.clone()
    }

    /// Whether the certificates are self-signed (and browsers need hashes).
    pub fn is_self_signed(&self) -> bool {
        matches!(self.source, CertificateSource::SelfSigned { .. })
    }

    /// The SHA-256 hashes a browser must be given for WebTransport: the
    /// current certificate's and the next one's. Empty for CA-issued
    /// certificates, which browsers verify on their own.
    pub fn hashes(&self) -> Vec<[u8; 32]> {
        if !self.is_self_signed() {
            return Vec::new();
        }
        let state = self.read();
        std::iter::once(&state.current).chain(state.next.as_ref()).map(Identity::sha256).collect()
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.read().current.certified_key().clone())
    }
}

fn slot_paths(dir: &Path, slot: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{slot}.pem")), dir.join(format!("{slot}.key")))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certificate::{BACKDATE, LIFETIME};

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into(), "chat.test".into()]
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wtchat-certs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn generates_a_short_lived_ecdsa_p256_certificate_for_every_name() {
        use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256};
        let dir = temp_dir("generate");
        let now = SystemTime::now();
        let store =
            CertificateStore::open(CertificateSource::SelfSigned { dir: dir.clone(), names: names() }, now)
                .unwrap();
        let current = store.current();
        let (_, parsed) = x509_parser::parse_x509_certificate(current.leaf()).unwrap();
        assert_eq!(parsed.signature_algorithm.algorithm, OID_SIG_ECDSA_WITH_SHA256);
        let key = parsed.public_key();
        assert_eq!(key.algorithm.algorithm, OID_KEY_TYPE_EC_PUBLIC_KEY);
        let curve = key.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        assert_eq!(curve, Some(OID_EC_P256));
        assert!(current.covers(&names()), "{:?}", current.names());
        let span = current.not_after().duration_since(current.not_before()).unwrap();
        assert!(span < 14 * DAY, "valid for {span:?}, browsers allow at most 14 days");
        assert!(current.not_before() <= now && now < current.not_after());
        assert_eq!(store.hashes(), vec![crate::tls::certificate::sha256(current.leaf())]);
        assert!(dir.join("current.pem").exists() && dir.join("current.key").exists());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn reuses_kept_certificates_and_replaces_unsuitable_ones() {
        let dir = temp_dir("reuse");
        let now = SystemTime::now();
        let source = CertificateSource::SelfSigned { dir: dir.clone(), names: names() };
        let first = CertificateStore::open(source.clone(), now).unwrap().current().sha256();
        let again = CertificateStore::open(source, now + DAY).unwrap().current().sha256();
        assert_eq!(first, again, "a restart a day later serves the same certificate");
        let more_names = CertificateSource::SelfSigned {
            dir: dir.clone(),
            names: [names(), vec!["other.test".into()]].concat(),
        };
        let renamed = CertificateStore::open(more_names, now + DAY).unwrap().current();
        assert_ne!(renamed.sha256(), first, "a certificate that lacks a configured name is replaced");
        let late = CertificateStore::open(
            CertificateSource::SelfSigned { dir: dir.clone(), names: names() },
            now + LIFETIME - BACKDATE,
        )
        .unwrap();
        assert_ne!(late.current().sha256(), renamed.sha256(), "a nearly expired certificate is replaced");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn announces_the_next_certificate_then_rotates_to_it() {
        let dir = temp_dir("rotate");
        let start = SystemTime::now();
        let store =
            CertificateStore::open(CertificateSource::SelfSigned { dir: dir.clone(), names: names() }, start)
                .unwrap();
        let first = store.current();
        assert_eq!(store.hashes().len(), 1);

        // Eight days in: less than five left, so the next one is announced.
        let announce = start + 8 * DAY + BACKDATE;
        assert!(!store.refresh(announce).unwrap(), "announcing does not change the served certificate");
        let next = store.next().expect("the next certificate is announced");
        assert_eq!(store.hashes(), vec![first.sha256(), next.sha256()]);
        assert!(dir.join("next.pem").exists());

        // Eleven and a half days in: less than two left, so the next is served.
        let rotate = start + 11 * DAY + DAY / 2;
        assert!(store.refresh(rotate).unwrap());
        assert_eq!(store.current().sha256(), next.sha256());
        assert_eq!(store.hashes()[0], next.sha256());
        // The resolver hands rustls the new certificate.
        let served = store.read().current.certified_key().cert[0].clone();
        assert_eq!(crate::tls::certificate::sha256(&served), next.sha256());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn production_files_are_served_and_reloaded_when_they_change() {
        let dir = temp_dir("files");
        let (cert, key) = (dir.join("chain.pem"), dir.join("key.pem"));
        let first = Identity::self_signed(&names(), SystemTime::now()).unwrap();
        first.write_pem_files(&cert, &key).unwrap();
        let store = CertificateStore::open(
            CertificateSource::Files { cert: cert.clone(), key: key.clone() },
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(store.current().sha256(), first.sha256());
        assert!(store.hashes().is_empty(), "CA certificates need no hashes");
        assert!(!store.refresh(SystemTime::now()).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        let second = Identity::self_signed(&names(), SystemTime::now()).unwrap();
        second.write_pem_files(&cert, &key).unwrap();
        assert!(store.refresh(SystemTime::now()).unwrap());
        assert_eq!(store.current().sha256(), second.sha256());
        std::fs::remove_dir_all(dir).ok();
    }
}
