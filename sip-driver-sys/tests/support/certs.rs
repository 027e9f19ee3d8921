//! Test certificates made at run time with rcgen: a CA, and leaf certificates it signs with
//! the subjectAltNames a test asks for. Shared by the tests of this crate and the
//! `gen-certs` example (which other crates' scripts and tests run); no key is committed.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// What a leaf certificate says about its holder.
#[derive(Debug, Clone, Default)]
pub struct LeafSpec {
    /// subjectAltName DNS names (`*.example.test` allowed).
    pub dns: Vec<String>,
    /// subjectAltName URIs (`sip:example.test`).
    pub uris: Vec<String>,
    /// subjectAltName IP addresses.
    pub ips: Vec<IpAddr>,
    /// The subject's common name, if any.
    pub common_name: Option<String>,
}

impl LeafSpec {
    /// A leaf with one DNS name.
    pub fn dns(name: &str) -> LeafSpec {
        LeafSpec {
            dns: vec![name.to_string()],
            ..LeafSpec::default()
        }
    }
}

/// A certificate and its private key, as PEM text.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate (`CERTIFICATE`).
    pub cert: String,
    /// The private key (`PRIVATE KEY`, PKCS#8).
    pub key: String,
}

/// A certificate authority for tests.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's own certificate, as PEM.
    pub cert_pem: String,
    /// The CA's private key, as PEM (PKCS#8), to sign more leaves later ([`TestCa::load`]).
    pub key_pem: String,
}

/// The parameters of a test CA named `name` (the same each time, so that a saved CA can
/// sign again: the issuer name and key identifier come from them and the key).
fn ca_params(name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name.push(DnType::CommonName, name);
    Ok(params)
}

impl TestCa {
    /// A new self-signed CA (ECDSA P-256) named `name`.
    pub fn new(name: &str) -> Result<TestCa, rcgen::Error> {
        let key = KeyPair::generate()?;
        let params = ca_params(name)?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA made earlier by [`TestCa::new`] with the same `name`, from its saved
    /// certificate and key.
    pub fn load(name: &str, cert_pem: &str, key_pem: &str) -> Result<TestCa, rcgen::Error> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(TestCa {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer: Issuer::new(ca_params(name)?, key),
        })
    }

    /// A leaf certificate (ECDSA P-256, for TLS servers and clients) signed by this CA.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Pem, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for dns in &spec.dns {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns.as_str().try_into()?));
        }
        for uri in &spec.uris {
            params
                .subject_alt_names
                .push(SanType::URI(uri.as_str().try_into()?));
        }
        for ip in &spec.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = &spec.common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, cn.as_str());
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// The three files a TLS setup needs: `ca.pem`, `cert.pem`, `key.pem`.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The CA certificate (for `client_config(Some(..))`, `--ca`).
    pub ca: PathBuf,
    /// The leaf certificate (for `server_config`, `--cert`).
    pub cert: PathBuf,
    /// The leaf's private key (for `server_config`, `--key`).
    pub key: PathBuf,
}

/// Writes the CA certificate and a leaf's certificate and key into `dir` (made if missing).
pub fn write_files(dir: &Path, ca: &TestCa, leaf: &Pem) -> io::Result<CertFiles> {
    fs::create_dir_all(dir)?;
    let files = CertFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    fs::write(&files.ca, &ca.cert_pem)?;
    fs::write(&files.cert, &leaf.cert)?;
    fs::write(&files.key, &leaf.key)?;
    Ok(files)
}
