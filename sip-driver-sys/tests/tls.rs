//! `sip_driver_sys::tls`: the configurations from PEM files and the SIP domain identity
//! check (RFC 5922 section 7), with certificates made by rcgen at test time in a temp dir
//! and real handshakes between a rustls client and server in memory.

#[path = "support/certs.rs"]
mod certs;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use certs::{CertFiles, LeafSpec, TestCa};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use sip_driver_sys::tls::{client_config, server_config, server_name, TlsConfig, TlsError};

/// A directory of its own under the system's temp dir, removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sip-driver-sys-tls-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA named after the directory and a leaf with `spec`, written as ca.pem, cert.pem,
/// key.pem.
fn files(dir: &TempDir, spec: &LeafSpec) -> CertFiles {
    let name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let ca = TestCa::new(&format!("test CA {name}")).unwrap();
    let leaf = ca.issue(spec).unwrap();
    certs::write_files(dir.path(), &ca, &leaf).unwrap()
}

/// Moves all TLS bytes `from` has to write into `to`, then lets `to` process them.
fn pump(
    from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl rustls::SideData>>,
    to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl rustls::SideData>>,
) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// Which side refused a handshake (the errors are shown through Debug).
#[derive(Debug)]
#[allow(dead_code)]
enum Refused {
    Client(rustls::Error),
    Server(rustls::Error),
}

/// A full handshake between the two configurations through byte buffers (no sockets), then
/// one request and its answer over the secured connection.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    name: ServerName<'static>,
) -> Result<(), Refused> {
    let mut c = ClientConnection::new(client, name).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    for _ in 0..10 {
        pump(&mut c, &mut s).map_err(Refused::Server)?;
        pump(&mut s, &mut c).map_err(Refused::Client)?;
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
    }
    assert!(
        !c.is_handshaking() && !s.is_handshaking(),
        "handshake did not finish"
    );
    c.writer()
        .write_all(b"OPTIONS sip:example.test SIP/2.0\r\n\r\n")
        .unwrap();
    pump(&mut c, &mut s).map_err(Refused::Server)?;
    let mut got = vec![0u8; 64];
    let n = s.reader().read(&mut got).unwrap();
    assert_eq!(&got[..n], b"OPTIONS sip:example.test SIP/2.0\r\n\r\n");
    s.writer().write_all(b"SIP/2.0 200 OK\r\n\r\n").unwrap();
    pump(&mut s, &mut c).map_err(Refused::Client)?;
    let n = c.reader().read(&mut got).unwrap();
    assert_eq!(&got[..n], b"SIP/2.0 200 OK\r\n\r\n");
    Ok(())
}

/// A handshake with a leaf made from `spec`, the client checking `domain`.
fn connect_to(spec: &LeafSpec, domain: &str) -> Result<(), Refused> {
    let dir = TempDir::new("connect");
    let f = files(&dir, spec);
    let server = server_config(&f.cert, &f.key).unwrap();
    let client = client_config(Some(&f.ca)).unwrap();
    let remote: SocketAddr = "192.0.2.1:5061".parse().unwrap();
    handshake(client, server, server_name(Some(domain), remote))
}

fn client_error(result: Result<(), Refused>) -> rustls::Error {
    match result {
        Err(Refused::Client(e)) => e,
        other => panic!("expected the client to refuse, got {other:?}"),
    }
}

#[test]
fn dns_san_equal_to_the_domain_is_accepted() {
    // RFC 5922 7.1, 7.2: a DNS subjectAltName is a SIP domain identity.
    connect_to(&LeafSpec::dns("example.test"), "example.test").unwrap();
}

#[test]
fn domain_comparison_ignores_case() {
    // RFC 5922 7.2: case-insensitive comparison.
    connect_to(&LeafSpec::dns("Example.TEST"), "example.test").unwrap();
    connect_to(&LeafSpec::dns("example.test"), "EXAMPLE.test").unwrap();
}

#[test]
fn sip_uri_san_is_accepted_when_the_dns_san_names_another_host() {
    // RFC 5922 7.1: a subjectAltName URI of the sip scheme gives its host as the identity.
    let spec = LeafSpec {
        dns: vec!["sip1.example.test".into()],
        uris: vec!["sip:example.test".into()],
        ..LeafSpec::default()
    };
    connect_to(&spec, "example.test").unwrap();
    connect_to(&spec, "sip1.example.test").unwrap();
}

#[test]
fn sips_uri_san_is_accepted() {
    // RFC 5922 7.1 (sip:), extended to sips: as this stack's contract says.
    let spec = LeafSpec {
        uris: vec!["sips:Example.Test".into()],
        ..LeafSpec::default()
    };
    connect_to(&spec, "example.test").unwrap();
}

#[test]
fn uri_san_with_a_user_part_or_another_scheme_is_no_domain_identity() {
    // RFC 5922 7.1: a URI with a userpart, or not of the sip scheme, is not accepted.
    for uri in [
        "sip:alice@example.test",
        "http://example.test",
        "sip:example.test:5061",
    ] {
        let spec = LeafSpec {
            uris: vec![uri.into()],
            ..LeafSpec::default()
        };
        let e = client_error(connect_to(&spec, "example.test"));
        assert!(e.to_string().contains("not valid for name"), "{uri}: {e}");
    }
}

#[test]
fn wrong_name_is_refused_with_a_clear_error() {
    // RFC 5922 7.2: no identity equal to the domain: the connection is refused.
    let e = client_error(connect_to(&LeafSpec::dns("other.test"), "example.test"));
    let text = e.to_string();
    assert!(text.contains("not valid for name"), "{text}");
    assert!(text.contains("example.test"), "{text}");
    assert!(text.contains("other.test"), "{text}");
}

#[test]
fn failure_reason_names_the_domain_asked_and_not_the_peers_names() {
    // RFC 5922 7.2: the words a driver logs and sipc prints for a refused certificate say
    // which name it failed to prove; the names the certificate carries are the peer's
    // bytes and stay out of them.
    let e = client_error(connect_to(&LeafSpec::dns("other.test"), "example.test"));
    let why = sip_driver_sys::tls::failure_reason(&e, "example.test");
    assert_eq!(why, "certificate not valid for example.test");
}

#[test]
fn wildcard_dns_san_does_not_match_a_sip_domain() {
    // RFC 5922 7.2: implementations MUST NOT match any form of wildcard.
    let e = client_error(connect_to(
        &LeafSpec::dns("*.example.test"),
        "sip.example.test",
    ));
    assert!(e.to_string().contains("not valid for name"), "{e}");
}

#[test]
fn suffix_of_the_domain_does_not_match() {
    // RFC 5922 7.2: values are matched in their entirety, never as suffixes.
    let e = client_error(connect_to(
        &LeafSpec::dns("example.test"),
        "sip.example.test",
    ));
    assert!(e.to_string().contains("not valid for name"), "{e}");
}

#[test]
fn common_name_is_not_used() {
    // RFC 5922 7.1: the CN MAY be used only without subjectAltName; this stack never does.
    let spec = LeafSpec {
        dns: vec!["other.test".into()],
        common_name: Some("example.test".into()),
        ..LeafSpec::default()
    };
    client_error(connect_to(&spec, "example.test"));
    let spec = LeafSpec {
        ips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9))],
        common_name: Some("example.test".into()),
        ..LeafSpec::default()
    };
    client_error(connect_to(&spec, "example.test"));
}

#[test]
fn ip_address_target_needs_an_ip_address_san() {
    // RFC 5922 section 4 (a target given as an address): the iPAddress subjectAltName.
    let dir = TempDir::new("ip");
    let spec = LeafSpec {
        dns: vec!["example.test".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
        ..LeafSpec::default()
    };
    let f = files(&dir, &spec);
    let server = server_config(&f.cert, &f.key).unwrap();
    let client = client_config(Some(&f.ca)).unwrap();
    let name = server_name(None, "127.0.0.1:5061".parse().unwrap());
    assert!(matches!(name, ServerName::IpAddress(_)));
    handshake(client.clone(), server.clone(), name).unwrap();
    let other = server_name(None, "127.0.0.2:5061".parse().unwrap());
    let e = client_error(handshake(client, server, other));
    assert!(e.to_string().contains("not valid for name"), "{e}");
}

#[test]
fn untrusted_ca_is_refused() {
    // RFC 3261 26.2 / RFC 5922 section 4: the chain must lead to a trusted root.
    let dir = TempDir::new("untrusted");
    let f = files(&dir, &LeafSpec::dns("example.test"));
    let other = TempDir::new("other-ca");
    let g = files(&other, &LeafSpec::dns("example.test"));
    let server = server_config(&f.cert, &f.key).unwrap();
    let client = client_config(Some(&g.ca)).unwrap();
    let e = client_error(handshake(
        client,
        server,
        server_name(Some("example.test"), "192.0.2.1:5061".parse().unwrap()),
    ));
    assert!(
        matches!(
            e,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{e}"
    );
}

#[test]
fn server_name_prefers_the_domain_and_falls_back_to_the_address() {
    // RFC 5922 section 4: the domain that was resolved, else the address connected to.
    let remote: SocketAddr = "[::1]:5061".parse().unwrap();
    assert_eq!(
        server_name(Some("example.test"), remote),
        ServerName::try_from("example.test").unwrap()
    );
    assert_eq!(
        server_name(Some("example.test."), remote),
        ServerName::try_from("example.test").unwrap()
    );
    assert_eq!(
        server_name(None, remote),
        ServerName::IpAddress(remote.ip().into())
    );
    assert_eq!(
        server_name(Some("not a name"), remote),
        ServerName::IpAddress(remote.ip().into())
    );
}

#[test]
fn tls_config_holds_both_sides() {
    let dir = TempDir::new("both");
    let f = files(&dir, &LeafSpec::dns("example.test"));
    let config = TlsConfig {
        server: Some(server_config(&f.cert, &f.key).unwrap()),
        client: client_config(Some(&f.ca)).unwrap(),
    };
    let copy = config.clone();
    assert!(format!("{copy:?}").contains("server: true"));
    handshake(
        copy.client,
        copy.server.unwrap(),
        server_name(Some("example.test"), "192.0.2.1:5061".parse().unwrap()),
    )
    .unwrap();
}

#[test]
fn system_roots_refuse_a_private_ca() {
    // Without a CA file the client trusts the system's roots only.
    let dir = TempDir::new("system");
    let f = files(&dir, &LeafSpec::dns("example.test"));
    let client = match client_config(None) {
        Ok(c) => c,
        Err(TlsError::NoRoots { reason }) => {
            eprintln!("skipped: no system roots on this machine ({reason})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let server = server_config(&f.cert, &f.key).unwrap();
    client_error(handshake(
        client,
        server,
        server_name(Some("example.test"), "192.0.2.1:5061".parse().unwrap()),
    ));
}

#[test]
fn server_config_errors_name_the_file_and_the_problem() {
    let dir = TempDir::new("errors");
    let f = files(&dir, &LeafSpec::dns("example.test"));
    let missing = dir.path().join("missing.pem");

    let e = server_config(&missing, &f.key).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }), "{e}");
    assert!(e.to_string().contains("missing.pem"), "{e}");

    let e = server_config(&f.cert, &missing).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }), "{e}");
    assert!(e.to_string().contains("missing.pem"), "{e}");

    // The key file given as the certificate: no certificate in it.
    let e = server_config(&f.key, &f.key).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
    assert!(e.to_string().contains("key.pem"), "{e}");
    assert!(e.to_string().contains("no certificate"), "{e}");

    // The certificate given as the key: no key in it.
    let e = server_config(&f.cert, &f.cert).unwrap_err();
    assert!(matches!(e, TlsError::NoPrivateKey { .. }), "{e}");
    assert!(e.to_string().contains("cert.pem"), "{e}");
    assert!(e.to_string().contains("no private key"), "{e}");

    // A key of another certificate.
    let other = TempDir::new("errors-other");
    let g = files(&other, &LeafSpec::dns("example.test"));
    let e = server_config(&f.cert, &g.key).unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("does not match"), "{e}");
    assert!(e.to_string().contains("cert.pem"), "{e}");

    // Not PEM at all.
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = server_config(&junk, &f.key).unwrap_err();
    assert!(matches!(e, TlsError::Pem { .. }), "{e}");
    assert!(e.to_string().contains("junk.pem"), "{e}");
}

#[test]
fn client_config_errors_name_the_ca_file() {
    let dir = TempDir::new("ca-errors");
    let f = files(&dir, &LeafSpec::dns("example.test"));
    let e = client_config(Some(&dir.path().join("nope.pem"))).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }), "{e}");
    assert!(e.to_string().contains("nope.pem"), "{e}");
    let e = client_config(Some(&f.key)).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
}

#[test]
fn sec1_ec_private_key_is_read() {
    // A key in the "EC PRIVATE KEY" (SEC1, RFC 5915) form, as openssl ecparam writes it.
    let dir = TempDir::new("sec1");
    let f = files(&dir, &LeafSpec::dns("example.test"));
    let pem = std::fs::read_to_string(&f.key).unwrap();
    let sec1 = pkcs8_to_sec1(&pem);
    let key = dir.path().join("sec1.pem");
    std::fs::write(&key, sec1).unwrap();
    let server = server_config(&f.cert, &key).unwrap();
    let client = client_config(Some(&f.ca)).unwrap();
    handshake(
        client,
        server,
        server_name(Some("example.test"), "192.0.2.1:5061".parse().unwrap()),
    )
    .unwrap();
}

#[test]
fn pkcs1_rsa_private_key_section_is_read_as_a_key() {
    // An "RSA PRIVATE KEY" (PKCS#1) section is taken as the key: not "no private key".
    // (ring cannot make RSA keys, so the section holds an EC key and does not load.)
    let dir = TempDir::new("pkcs1");
    let f = files(&dir, &LeafSpec::dns("example.test"));
    let pem = std::fs::read_to_string(&f.key).unwrap();
    let body = pem_body(&pem);
    let key = dir.path().join("rsa.pem");
    std::fs::write(
        &key,
        format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"),
    )
    .unwrap();
    let e = server_config(&f.cert, &key).unwrap_err();
    assert!(matches!(e, TlsError::UnusableKey { .. }), "{e}");
    assert!(e.to_string().contains("rsa.pem"), "{e}");
}

/// The base64 lines of a one-section PEM text.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The SEC1 ECPrivateKey inside a PKCS#8 PrivateKeyInfo (RFC 5208: SEQUENCE { version,
/// algorithm, privateKey OCTET STRING }), as an "EC PRIVATE KEY" PEM section.
fn pkcs8_to_sec1(pem: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let der = der.secret_pkcs8_der();
    // (tag, header length, content length) of the DER element at `at`.
    let element = |at: usize| -> (u8, usize, usize) {
        let tag = der[at];
        let first = der[at + 1] as usize;
        if first < 0x80 {
            (tag, 2, first)
        } else {
            let n = first & 0x7f;
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | *b as usize);
            (tag, 2 + n, len)
        }
    };
    let (tag, outer_header, _) = element(0);
    assert_eq!(tag, 0x30);
    let mut at = outer_header;
    for _ in 0..2 {
        let (_, h, l) = element(at);
        at += h + l;
    }
    let (tag, h, l) = element(at);
    assert_eq!(tag, 0x04);
    let sec1 = &der[at + h..at + h + l];
    let b64 = base64_encode(sec1);
    format!("-----BEGIN EC PRIVATE KEY-----\n{b64}\n-----END EC PRIVATE KEY-----\n")
}

fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
