//! The web layer as a process: exporter-toolkit web-config with TLS and basic auth scraped by a
//! real Prometheus, certificate reload, the connection cap under a descriptor limit, and the
//! header-read timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;

use crate::support::prometheus::Prometheus;
use crate::support::tls::{self, Pki, tls_launch, web_config};
use crate::support::{Launch, Warden, http, require_tool, wait_for};

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth_and_is_refused_without() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(pki_dir.path(), "warden-1");
    let config = web_config(pki_dir.path(), "prometheus", "s3cret-scrape");
    // The flag, as exporters take it; relative paths are relative to the web-config file.
    let warden = Warden::start_with(
        "",
        &tls_launch(
            &pki.ca(),
            vec![format!("--web.config.file={}", config.display())],
        ),
    );

    let (anonymous, _) = tls::get(warden.addr, &pki.ca(), "/metrics", &[]).unwrap();
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Basic realm=\"warden\"")
    );
    assert_eq!(anonymous.header("x-content-type-options"), Some("nosniff"));
    let (readyz, _) = tls::get(warden.addr, &pki.ca(), "/readyz", &[]).unwrap();
    assert_eq!(readyz.status, 401);

    let ca = pki.ca().display().to_string();
    let prometheus = Prometheus::start(&format!(
        "  - job_name: warden\n    scheme: https\n    tls_config: {{ca_file: '{ca}'}}\n    basic_auth: {{username: prometheus, password: s3cret-scrape}}\n    static_configs:\n      - targets: ['{addr}']\n  - job_name: anonymous\n    scheme: https\n    tls_config: {{ca_file: '{ca}'}}\n    static_configs:\n      - targets: ['{addr}']\n",
        addr = warden.addr
    ));
    prometheus.wait_for_data("up{job=\"warden\"} == 1", Duration::from_secs(30));
    prometheus.wait_for_data(
        "warden_collector_success{job=\"warden\", collector=\"cpu\"} == 1",
        Duration::from_secs(30),
    );
    let target = wait_for(
        Duration::from_secs(30),
        "the anonymous job's first scrape",
        || {
            prometheus
                .targets()
                .into_iter()
                .find(|t| t["labels"]["job"] == "anonymous" && t["health"] == "down")
        },
    );
    let error = target["lastError"].as_str().unwrap();
    assert!(error.contains("401"), "{target}");

    let stderr = warden.stderr();
    assert!(
        !stderr.contains("s3cret-scrape"),
        "the password reached the log"
    );
    assert!(!stderr.contains("$2"), "a hash reached the log");
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart_and_a_bad_one_is_not() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(pki_dir.path(), "first");
    let warden = Warden::start_with(
        &format!(
            "web:\n  tls: {{cert_file: {dir}/server.crt, key_file: {dir}/server.key}}\n",
            dir = pki_dir.path().display()
        ),
        &tls_launch(&pki.ca(), Vec::new()),
    );
    let leaf = |warden: &Warden| tls::get(warden.addr, &pki.ca(), "/healthz", &[]).unwrap().1;
    let first = leaf(&warden);
    assert!(!first.is_empty());

    // A broken certificate file: logged, and the previous certificate stays in use.
    let cert = pki_dir.path().join("server.crt");
    let good = std::fs::read(&cert).unwrap();
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ntruncated\n").unwrap();
    wait_for(
        Duration::from_secs(10),
        "the reload error in the log",
        || {
            let _ = tls::get(warden.addr, &pki.ca(), "/healthz", &[]);
            warden
                .stderr()
                .contains("Cannot reload the TLS certificate")
                .then_some(())
        },
    );
    assert_eq!(leaf(&warden), first);
    std::fs::write(&cert, good).unwrap();

    pki.renew("second");
    let renewed = std::fs::read(&cert).unwrap();
    let second = wait_for(Duration::from_secs(10), "the renewed certificate", || {
        Some(leaf(&warden)).filter(|l| *l != first)
    });
    let expected = rustls::pki_types::CertificateDer::pem_slice_iter(&renewed)
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(second, expected.to_vec());
}

/// Raises this process' soft descriptor limit to hold `needed` sockets, if the hard one allows.
fn ensure_descriptors(needed: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|soft| soft < needed) {
        let mut raised = limit;
        raised.current = Some(limit.maximum.map_or(needed, |hard| hard.min(needed)));
        setrlimit(Resource::Nofile, raised).unwrap();
    }
    let soft = getrlimit(Resource::Nofile).current;
    assert!(
        soft.is_none_or(|soft| soft >= needed),
        "this test opens {needed} sockets; raise the hard descriptor limit (ulimit -Hn)"
    );
}

#[test]
fn idle_connections_beyond_the_cap_do_not_starve_a_scrape() {
    const IDLE: usize = 1100;
    let prlimit = require_tool("prlimit", "util-linux");
    ensure_descriptors(IDLE as u64 + 200);
    // warden may hold 1024 descriptors, fewer than the idle sockets: without the cap (default
    // 512) it would run out and fail accepts with EMFILE.
    let warden = Warden::start_with(
        "web: {header_read_timeout: 1s}\n",
        &Launch {
            wrapper: vec![
                prlimit.display().to_string(),
                "--nofile=1024:1024".to_owned(),
                "--".to_owned(),
            ],
            ..Launch::default()
        },
    );
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        // Beyond the listen backlog a connect may time out; those are simply not held.
        if let Ok(stream) = TcpStream::connect_timeout(&warden.addr, Duration::from_millis(200)) {
            idle.push(stream);
        }
    }
    assert!(idle.len() > 1024, "only {} connections opened", idle.len());
    let started = Instant::now();
    let response = wait_for(Duration::from_secs(30), "a scrape to answer", || {
        http::get(warden.addr, "/metrics", &[])
            .ok()
            .filter(|r| r.status == 200)
    });
    let elapsed = started.elapsed();
    assert!(response.body.contains("warden_build_info"));
    eprintln!(
        "scrape answered {elapsed:?} after {} idle connections (cap 512, header_read_timeout 1s)",
        idle.len()
    );
    // A liveness bound: the idle connections drain in batches of the cap, one per second.
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    drop(idle);
    assert!(
        !warden.stderr().contains("Cannot accept connections"),
        "{}",
        warden.stderr()
    );
}

#[test]
fn a_silent_connection_is_closed_by_the_header_read_timeout() {
    let warden = Warden::start("web: {header_read_timeout: 1s}\n");
    for prefix in ["", "GET /metrics HTTP/1.1\r\nHost: x\r\n"] {
        let started = Instant::now();
        let mut stream = connect(warden.addr);
        stream.write_all(prefix.as_bytes()).unwrap();
        let mut buf = [0u8; 1024];
        // EOF or a reset: either way the server gave up on the connection.
        let mut received = Vec::new();
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
            "closed after {elapsed:?} with prefix {prefix:?}"
        );
        let text = String::from_utf8_lossy(&received);
        assert!(!text.contains("200 OK"), "{text}");
    }
    // The server still answers afterwards.
    assert_eq!(warden.get("/healthz", &[]).status, 200);
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn client_certificates_are_required_and_verified_when_configured() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(pki_dir.path(), "server");
    let (client_cert, client_key) = pki.issue_client("prometheus");
    // A client certificate from another CA must be refused as well.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::generate(other_dir.path(), "other");
    let (stranger_cert, stranger_key) = other.issue_client("stranger");
    let dir = pki_dir.path().display();
    let ca = pki.ca();
    let (cert, key) = (client_cert.clone(), client_key.clone());
    let warden = Warden::start_with(
        &format!(
            "web:\n  tls: {{cert_file: {dir}/server.crt, key_file: {dir}/server.key, client_auth_type: RequireAndVerifyClientCert, client_ca_file: {dir}/ca.crt}}\n"
        ),
        &Launch {
            ready: Some(Box::new(move |addr| {
                tls::get_as(addr, &ca, Some((&cert, &key)), "/healthz", &[])
                    .is_ok_and(|(r, _)| r.status == 200)
            })),
            ..Launch::default()
        },
    );
    let (response, _) = tls::get_as(
        warden.addr,
        &pki.ca(),
        Some((&client_cert, &client_key)),
        "/metrics",
        &[],
    )
    .unwrap();
    assert_eq!(response.status, 200);
    assert!(tls::get(warden.addr, &pki.ca(), "/healthz", &[]).is_err());
    assert!(
        tls::get_as(
            warden.addr,
            &pki.ca(),
            Some((&stranger_cert, &stranger_key)),
            "/healthz",
            &[]
        )
        .is_err()
    );
}

#[test]
fn check_config_names_a_bad_certificate_by_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server.crt"), "not a certificate\n").unwrap();
    std::fs::write(dir.path().join("server.key"), "not a key\n").unwrap();
    let config = dir.path().join("warden.yml");
    std::fs::write(
        &config,
        "web:\n  tls: {cert_file: server.crt, key_file: server.key, cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]}\n",
    )
    .unwrap();
    let output = std::process::Command::new(crate::support::warden_bin())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("web.tls.cert_file: ") && stderr.contains("holds no PEM certificate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("web.tls.cipher_suites[0]: `TLS_RSA_WITH_RC4_128_SHA`"),
        "{stderr}"
    );
}
