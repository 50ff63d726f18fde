//! TLS for the listener: rustls with the ring provider, certificates re-read when they change.
//!
//! The certificate and key files are checked at most once per [`RELOAD_CHECK_INTERVAL`], during
//! a handshake: when either file's modification time, size or inode has changed, both are read
//! again. A pair that does not load (a half-written file, a key of another certificate) keeps
//! the previous certificate in use and is logged once; the next change is tried again. So a
//! renewal by certbot, cert-manager or a `mv` takes effect for new connections without a
//! restart, and a bad renewal never takes the server down.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use tokio_rustls::TlsAcceptor;

use crate::collect::ErrorChain;
use crate::config::{ClientAuth, TlsConfig, TlsFileError, load_certified_key, load_client_roots};

/// How often a handshake may look at the certificate files' metadata.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be used (it changed since validation).
    #[error(transparent)]
    File(#[from] TlsFileError),
    /// rustls refused the versions or cipher suites.
    #[error("invalid TLS settings")]
    Settings(#[source] rustls::Error),
    /// rustls refused the client CAs.
    #[error("cannot verify client certificates with web.tls.client_ca_file")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
}

/// The acceptor for the validated TLS settings.
///
/// # Errors
/// When a file no longer loads or rustls refuses the settings.
pub fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::clone(&tls.provider);
    let resolver = ReloadingCert::try_new(tls)?;
    let verifier: Arc<dyn ClientCertVerifier> = match tls.client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: tls.client_auth == ClientAuth::RequireAnyClientCert,
                provider: Arc::clone(&provider),
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            // Validation makes the CA file required for these.
            let roots = match &tls.client_ca_file {
                Some(path) => load_client_roots(path)?,
                None => rustls::RootCertStore::empty(),
            };
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let builder = if tls.client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(TlsError::ClientVerifier)?
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&tls.versions)
        .map_err(TlsError::Settings)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = tls.prefer_server_cipher_suites;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What identifies a version of a file: modification time, size, inode.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// Serves the certificate in use, re-reading the files when they change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<CertState>,
}

#[derive(Debug)]
struct CertState {
    key: Arc<CertifiedKey>,
    /// The files' stamps when `key` was loaded, or when loading last failed.
    stamps: (Stamp, Stamp),
    checked: Instant,
}

impl ReloadingCert {
    /// Loads the pair now.
    ///
    /// # Errors
    /// When the files do not load.
    pub fn try_new(tls: &TlsConfig) -> Result<Self, TlsFileError> {
        let stamps = (stamp(&tls.cert_file), stamp(&tls.key_file));
        let key = load_certified_key(&tls.cert_file, &tls.key_file, &tls.provider)?;
        Ok(ReloadingCert {
            cert_file: tls.cert_file.clone(),
            key_file: tls.key_file.clone(),
            provider: Arc::clone(&tls.provider),
            state: Mutex::new(CertState {
                key: Arc::new(key),
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The certificate to present, reloaded first when the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            state.checked = Instant::now();
            let stamps = (stamp(&self.cert_file), stamp(&self.key_file));
            if stamps != state.stamps {
                // Recorded either way: a bad pair is logged once, not on every handshake.
                state.stamps = stamps;
                match load_certified_key(&self.cert_file, &self.key_file, &self.provider) {
                    Ok(key) => {
                        state.key = Arc::new(key);
                        tracing::info!(cert_file = %self.cert_file.display(), "Reloaded the TLS certificate.");
                    }
                    Err(err) => tracing::error!(
                        error = %ErrorChain(&err),
                        "Cannot reload the TLS certificate; keeping the previous one."
                    ),
                }
            }
        }
        Arc::clone(&state.key)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for (and
/// required by the latter) but not verified against any CA, as in Go. The handshake still
/// checks the client's signature, so the client holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
