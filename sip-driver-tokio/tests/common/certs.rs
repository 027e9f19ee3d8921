//! Test certificates made at test time with rcgen: a CA, and a leaf certificate it signs
//! for the names given (DNS names, or IP addresses as iPAddress subjectAltNames).

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// The PEM files of one CA and one server certificate, in a directory of their own.
pub struct Certs {
    pub dir: PathBuf,
    /// The CA certificate (what a client trusts: `--ca`).
    pub ca: PathBuf,
    /// The server's certificate chain (`--cert`).
    pub cert: PathBuf,
    /// The server's private key (`--key`).
    pub key: PathBuf,
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new CA and a certificate for `names` signed by it, written under a directory named
/// after `tag` and the process.
pub fn make(tag: &str, names: &[&str]) -> Certs {
    let dir = std::env::temp_dir().join(format!("sip-tokio-certs-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cert dir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("test CA {tag}"));
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = CertificateParams::new(names).expect("leaf params");
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, &issuer).expect("leaf cert");
    let certs = Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        dir,
    };
    std::fs::write(&certs.ca, ca_cert.pem()).expect("write ca");
    std::fs::write(&certs.cert, cert.pem()).expect("write cert");
    std::fs::write(&certs.key, key.serialize_pem()).expect("write key");
    certs
}
