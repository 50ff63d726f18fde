//! A throwaway CA and server certificates made with `openssl`, and an HTTPS client over rustls.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::{Launch, http, require_tool};

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
pub struct Pki {
    openssl: PathBuf,
    dir: PathBuf,
}

impl Pki {
    /// Makes the CA (`ca.crt`) and a first server certificate (`server.crt`, `server.key`)
    /// with common name `cn`.
    pub fn generate(dir: &Path, cn: &str) -> Pki {
        let pki = Pki {
            openssl: require_tool("openssl", "openssl"),
            dir: dir.to_owned(),
        };
        pki.run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=warden test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        pki.issue(cn, "server.crt", "server.key");
        pki
    }

    /// The CA certificate's path.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Issues a new server certificate with common name `cn` into `cert` and `key` (in `dir`).
    pub fn issue(&self, cn: &str, cert: &str, key: &str) {
        self.issue_for("serverAuth", cn, cert, key);
    }

    /// Issues a client certificate with common name `cn`; returns the certificate and key paths.
    pub fn issue_client(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.issue_for("clientAuth", cn, "client.crt", "client.key");
        (self.dir.join("client.crt"), self.dir.join("client.key"))
    }

    fn issue_for(&self, usage: &str, cn: &str, cert: &str, key: &str) {
        std::fs::write(
            self.dir.join("server.ext"),
            format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        self.run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key,
            "-out",
            "server.csr",
            "-subj",
            &format!("/CN={cn}"),
        ]);
        self.run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &format!("{}", rand_serial()),
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            cert,
        ]);
    }

    /// Replaces `server.crt` and `server.key` with a new pair, each by an atomic rename.
    pub fn renew(&self, cn: &str) {
        self.issue(cn, "next.crt", "next.key");
        std::fs::rename(self.dir.join("next.key"), self.dir.join("server.key")).unwrap();
        std::fs::rename(self.dir.join("next.crt"), self.dir.join("server.crt")).unwrap();
    }

    fn run(&self, args: &[&str]) {
        let output = Command::new(&self.openssl)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A serial number unlikely to repeat between two certificates of one test.
fn rand_serial() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// `GET path` over TLS trusting only `ca`; returns the response and the server's leaf
/// certificate (DER).
pub fn get(
    addr: SocketAddr,
    ca: &Path,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(http::Response, Vec<u8>)> {
    get_as(addr, ca, None, path, headers)
}

/// [`get`] presenting a client certificate and key (PEM files) when given.
pub fn get_as(
    addr: SocketAddr,
    ca: &Path,
    client: Option<(&Path, &Path)>,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(http::Response, Vec<u8>)> {
    let pem = std::fs::read(ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(std::io::Error::other)?).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        None => config.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(&std::fs::read(cert)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(std::io::Error::other)?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&std::fs::read(key)?)
                .map_err(std::io::Error::other)?;
            config
                .with_client_auth_cert(chain, key)
                .map_err(std::io::Error::other)?
        }
    };
    let name = ServerName::IpAddress(addr.ip().into());
    let connection =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    socket.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A peer closing without close_notify after a complete response is fine here.
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(err) => return Err(err),
    }
    let leaf = stream
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.to_vec())
        .unwrap_or_default();
    Ok((http::parse(&raw)?, leaf))
}

/// bcrypt's cost for the test users: the lowest it allows, so that the debug build's unoptimised
/// bcrypt stays well inside Prometheus' one-second scrape timeout.
pub const TEST_COST: u32 = 4;

/// A launch that waits for `/healthz` over TLS trusting `ca`.
pub fn tls_launch(ca: &Path, args: Vec<String>) -> Launch {
    let ca = ca.to_owned();
    Launch {
        args,
        ready: Some(Box::new(move |addr| {
            get(addr, &ca, "/healthz", &[]).is_ok_and(|(r, _)| r.status == 200)
        })),
        ..Launch::default()
    }
}

/// Writes an exporter-toolkit web-config file with TLS and one basic-auth user.
pub fn web_config(dir: &Path, user: &str, password: &str) -> std::path::PathBuf {
    let hash = bcrypt::hash(password, TEST_COST).unwrap();
    let path = dir.join("web-config.yml");
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\nbasic_auth_users:\n  {user}: {hash}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        ),
    )
    .unwrap();
    path
}
