//! TLS for SIP (RFC 3261 section 26.2, RFC 5922) with rustls, for both drivers.
//!
//! rustls runs with the `ring` provider only (no aws-lc, no OpenSSL). This module builds the
//! two configurations a driver needs and nothing more: the driver owns the sockets and drives
//! `rustls::ServerConnection` / `rustls::ClientConnection` (or tokio-rustls) itself.
//!
//! - [`server_config`]: the certificate chain and private key of a `tls:` listener, from PEM
//!   files (the key in PKCS#8, PKCS#1 or SEC1 form).
//! - [`client_config`]: how a client checks the servers it connects to: the usual WebPKI
//!   chain validation against a CA file or the system's roots, then the SIP domain identity
//!   of RFC 5922 section 7 instead of the HTTPS rules (see [`client_config`] for the rule).
//! - [`server_name`]: the name the check is made against: the domain the endpoint resolved
//!   (`Endpoint::tls_server_name`), else the peer's IP address.
//!
//! A test CA and a leaf certificate can be made with the `gen-certs` example of this crate:
//! `cargo run -p sip-driver-sys --example gen-certs -- --out DIR --name example.test`.

use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why a TLS configuration could not be built. Each variant names the file it is about.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read (missing, no permission).
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The file is not valid PEM, or a PEM section in it is damaged.
    #[error("{path}: not valid PEM: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The file holds no `CERTIFICATE` section.
    #[error("{path}: no certificate found (expected a PEM \"CERTIFICATE\" section)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key section.
    #[error(
        "{path}: no private key found (expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" section)"
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key does not belong to the first certificate of the chain.
    #[error("{key}: private key does not match the certificate in {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The private key was read but cannot be used (damaged, or of a kind ring does not
    /// sign with).
    #[error("{path}: unusable private key: {reason}")]
    UnusableKey {
        /// The key file.
        path: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// A CA file's certificate is not a usable trust anchor.
    #[error("{path}: not a usable CA certificate: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// No root certificate at all (the system has none, or none could be loaded).
    #[error("no trusted root certificates: {reason}")]
    NoRoots {
        /// Where the roots were looked for and why none is usable.
        reason: String,
    },
    /// rustls refused the configuration (protocol versions, provider).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Both sides of TLS, as the drivers take them.
#[derive(Clone)]
pub struct TlsConfig {
    /// The configuration of `tls:` listeners; None when the endpoint accepts no TLS
    /// connection (a listener then is an error).
    pub server: Option<Arc<rustls::ServerConfig>>,
    /// The configuration of connections the endpoint opens.
    pub client: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

/// The one crypto provider of this crate: ring (the project's choice: no aws-lc, no
/// OpenSSL). rustls 0.23.48 deprecates it because ring has no post-quantum key exchange;
/// the key exchange stays X25519, P-256 or P-384.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The certificates of a PEM file, in order; an error when there is none.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(&pem) {
        let cert = item.map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A server config from a PEM certificate chain (the leaf first, then its intermediates) and
/// a PEM private key (PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3, no client certificates.
///
/// Errors name the file and the problem: a missing file, no certificate, no key, a key that
/// does not belong to the certificate.
pub fn server_config(
    cert_pem: &Path,
    key_pem: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = read_certs(cert_pem)?;
    let key_bytes = read_file(key_pem)?;
    let key = match PrivateKeyDer::from_pem_slice(&key_bytes) {
        Ok(key) => key,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoPrivateKey {
                path: key_pem.to_path_buf(),
            })
        }
        Err(e) => {
            return Err(TlsError::Pem {
                path: key_pem.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch {
                    cert: cert_pem.to_path_buf(),
                    key: key_pem.to_path_buf(),
                }
            }
            other => TlsError::UnusableKey {
                path: key_pem.to_path_buf(),
                reason: other.to_string(),
            },
        })?;
    Ok(Arc::new(config))
}

/// The trust anchors: every certificate of `ca_pem`, or the system's roots.
fn root_store(ca_pem: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(path) => {
            for cert in read_certs(path)? {
                roots.add(cert).map_err(|e| TlsError::BadCa {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            // Unparsable system certificates are skipped: one bad file in /etc/ssl must not
            // stop every TLS connection.
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let reason = if found.errors.is_empty() {
                    "the system has no root certificates".to_string()
                } else {
                    found
                        .errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(TlsError::NoRoots { reason });
            }
        }
    }
    Ok(roots)
}

/// A client config verifying servers against `ca_pem` (one or more PEM certificates) or,
/// when None, the system's roots (rustls-native-certs).
///
/// The chain is checked as WebPKI does (signatures, validity dates, key usage for a TLS
/// server). The name is then checked as RFC 5922 section 7 asks of a SIP domain, when the
/// server name is a domain:
///
/// - a subjectAltName URI `sip:DOMAIN` or `sips:DOMAIN` (no user part, no port, no
///   parameters) whose host equals the domain, compared case-insensitively (7.1, 7.2);
/// - else a subjectAltName DNS name equal to the domain, case-insensitively (7.1, 7.2);
/// - wildcards never match: a DNS name `*.example.test` does not prove `sip.example.test`
///   (RFC 5922 7.2: "implementations MUST NOT match any form of wildcard");
/// - the subject's CN is never used (7.1 only allows it without subjectAltName; this
///   implementation does not take that allowance).
///
/// For a server name that is an IP address (a target given as an address), an iPAddress
/// subjectAltName equal to it is required (rustls/webpki's check).
///
/// A name mismatch fails the handshake with
/// `rustls::CertificateError::NotValidForNameContext`, whose text reads
/// `certificate not valid for name "example.test"; certificate is only valid for ...`.
pub fn client_config(ca_pem: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = Arc::new(root_store(ca_pem)?);
    let provider = provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = SipServerVerifier {
        roots,
        webpki,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls ServerName to verify for a connection: the domain from
/// `Endpoint::tls_server_name` when there is one, else the peer's IP address.
///
/// A domain rustls does not accept as a DNS name (it should not happen: the endpoint
/// resolved it) falls back to the IP address, which then must be in the certificate.
pub fn server_name(domain: Option<&str>, remote: SocketAddr) -> ServerName<'static> {
    if let Some(domain) = domain {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if let Ok(name) = ServerName::try_from(domain.to_string()) {
            return name;
        }
    }
    ServerName::IpAddress(remote.ip().into())
}

/// Why a TLS handshake failed, in words for a log line or an error message:
/// `certificate not valid for NAME` when the server's certificate does not prove the name
/// asked (`expected`: the domain, or the address; RFC 5922 section 7.2),
/// `certificate not trusted (...)` when its chain does not lead to a trusted root, else
/// rustls' own text. The names the certificate does carry are left out: they are the
/// peer's bytes.
pub fn failure_reason(error: &rustls::Error, expected: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("certificate not valid for {expected}"),
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!("certificate not trusted ({error})"),
        other => other.to_string(),
    }
}

/// WebPKI chain validation plus the SIP domain identity of RFC 5922 section 7.
#[derive(Debug)]
struct SipServerVerifier {
    roots: Arc<RootCertStore>,
    /// For IP-address names (the whole WebPKI check) and the handshake signatures.
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SipServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let domain = match server_name {
            ServerName::DnsName(dns) => dns.as_ref(),
            // An address: the iPAddress SAN check of webpki, with the chain.
            _ => {
                return self.webpki.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                )
            }
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let names = sip_identities(end_entity)?;
        if names.matches(domain) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForNameContext {
                    expected: server_name.to_owned(),
                    presented: names.presented(),
                },
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The subjectAltName entries RFC 5922 7.1 looks at.
#[derive(Debug, Default)]
struct SipIdentities {
    /// The hosts of `sip:` / `sips:` URIs without user part.
    uri_domains: Vec<String>,
    /// DNS names, as written (wildcards included, they never match).
    dns_names: Vec<String>,
    /// Every URI, for the error text.
    uris: Vec<String>,
}

impl SipIdentities {
    /// RFC 5922 7.2: whole, case-insensitive matches only; never a wildcard.
    fn matches(&self, domain: &str) -> bool {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let equal = |name: &String| {
            let name = name.strip_suffix('.').unwrap_or(name);
            !name.contains('*') && name.eq_ignore_ascii_case(domain)
        };
        self.uri_domains.iter().any(equal) || self.dns_names.iter().any(equal)
    }

    /// What the certificate is valid for, for the error text.
    fn presented(&self) -> Vec<String> {
        self.uris
            .iter()
            .map(|u| format!("URI:{u}"))
            .chain(self.dns_names.iter().map(|d| format!("DNS:{d}")))
            .collect()
    }
}

/// The host of a `sip:` or `sips:` URI that may serve as a SIP domain identity (RFC 5922
/// 7.1: no user part; a port or parameters do not belong in a domain identity either).
fn sip_uri_domain(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return None;
    }
    if rest.is_empty() || rest.contains(['@', ':', ';', '?', '/', '[']) {
        return None;
    }
    Some(rest)
}

/// The subjectAltName URIs and DNS names of a certificate.
fn sip_identities(cert: &CertificateDer<'_>) -> Result<SipIdentities, rustls::Error> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;

    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let (_, parsed) =
        x509_parser::certificate::X509Certificate::from_der(cert.as_ref()).map_err(|_| bad())?;
    let mut ids = SipIdentities::default();
    let san = parsed.subject_alternative_name().map_err(|_| bad())?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => {
                    if let Some(domain) = sip_uri_domain(uri) {
                        ids.uri_domains.push(domain.to_string());
                    }
                    ids.uris.push(uri.to_string());
                }
                GeneralName::DNSName(dns) => ids.dns_names.push(dns.to_string()),
                _ => {}
            }
        }
    }
    Ok(ids)
}
