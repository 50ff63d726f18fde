//! TLS to PostgreSQL: rustls with the ring provider only, the Mozilla roots, and an optional CA
//! file for private CAs (managed databases usually have their own).
//!
//! The DSN's `sslmode` decides: `disable` never negotiates TLS, `prefer` (tokio-postgres'
//! default) uses it when the server offers it, `require` insists. Whenever TLS is used the
//! certificate chain and the host name are verified (rustls has no unverified mode), which is
//! what libpq calls `verify-full`.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why the CA file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot load CA certificates")]
pub struct Error(#[source] rustls::pki_types::pem::Error);

/// The certificates in a PEM file; how many were found.
///
/// # Errors
/// When the file cannot be read or holds a malformed PEM section.
pub fn load_ca_file(path: &Path) -> Result<usize, Error> {
    Ok(certificates(path)?.len())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    CertificateDer::pem_file_iter(path)
        .map_err(Error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error)
}

/// The connector for one server: the Mozilla roots plus `ca_file`'s certificates.
///
/// # Errors
/// When the CA file cannot be loaded.
pub fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, Error> {
    let mut roots = mozilla_roots();
    if let Some(path) = ca_file {
        roots.add_parsable_certificates(certificates(path)?);
    }
    Ok(with_roots(roots))
}

/// A connector trusting the Mozilla roots only.
pub fn public_roots() -> MakeRustlsConnect {
    with_roots(mozilla_roots())
}

fn mozilla_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn with_roots(roots: RootCertStore) -> MakeRustlsConnect {
    // ring is the only crypto provider compiled in, so rustls' builder picks it.
    MakeRustlsConnect::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
