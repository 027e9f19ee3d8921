//! Makes a test CA and a leaf certificate it signs, as PEM files, for scripts and tests that
//! need TLS (the drivers' `--cert`, `--key`, `--ca`). Keys are made fresh on each run (ECDSA
//! P-256); nothing here is fit for production.
//!
//! ```text
//! cargo run -p sip-driver-sys --example gen-certs -- --out DIR --name example.test \
//!     [--name sip.example.test] [--uri sip:example.test] [--ip 127.0.0.1]
//! ```
//!
//! writes `DIR/ca.pem` (the CA certificate), `DIR/cert.pem` (the leaf) and `DIR/key.pem` (its
//! PKCS#8 key). `--name` gives subjectAltName DNS names (the first is also the subject's CN),
//! `--uri` subjectAltName URIs (RFC 5922: `sip:DOMAIN`), `--ip` subjectAltName addresses;
//! each may be repeated.
//!
//! With `--ca-dir CADIR`, the CA is kept in `CADIR/ca.pem` and `CADIR/ca-key.pem` (made on
//! the first run, reused on the next ones), so that several leaves (a server's, a proxy's)
//! share one CA; `DIR/ca.pem` is still written.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "../tests/support/certs.rs"]
mod certs;

use certs::{LeafSpec, TestCa};

const USAGE: &str =
    "usage: gen-certs --out DIR [--ca-dir CADIR] [--name DNS]... [--uri URI]... [--ip IP]...";
/// The subject of the CA (the same on every run, so a kept CA signs again).
const CA_NAME: &str = "sip-driver-sys test CA";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-certs: {e}");
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut out: Option<PathBuf> = None;
    let mut ca_dir: Option<PathBuf> = None;
    let mut spec = LeafSpec::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--ca-dir" => ca_dir = Some(PathBuf::from(value()?)),
            "--name" => spec.dns.push(value()?),
            "--uri" => spec.uris.push(value()?),
            "--ip" => {
                let v = value()?;
                let ip: IpAddr = v.parse().map_err(|_| format!("not an IP address: {v}"))?;
                spec.ips.push(ip);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    if spec.dns.is_empty() && spec.uris.is_empty() && spec.ips.is_empty() {
        return Err("give at least one --name, --uri or --ip".into());
    }
    spec.common_name = spec.dns.first().cloned();
    let ca = match &ca_dir {
        Some(dir) => kept_ca(dir)?,
        None => TestCa::new(CA_NAME).map_err(|e| e.to_string())?,
    };
    let leaf = ca.issue(&spec).map_err(|e| e.to_string())?;
    let files = certs::write_files(&out, &ca, &leaf)
        .map_err(|e| format!("cannot write into {}: {e}", out.display()))?;
    println!(
        "wrote {} {} {}",
        files.ca.display(),
        files.cert.display(),
        files.key.display()
    );
    Ok(())
}

/// The CA kept in `dir`, made there first if missing.
fn kept_ca(dir: &Path) -> Result<TestCa, String> {
    let cert = dir.join("ca.pem");
    let key = dir.join("ca-key.pem");
    if cert.exists() && key.exists() {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        return TestCa::load(CA_NAME, &read(&cert)?, &read(&key)?).map_err(|e| e.to_string());
    }
    let ca = TestCa::new(CA_NAME).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&cert, &ca.cert_pem))
        .and_then(|()| std::fs::write(&key, &ca.key_pem))
        .map_err(|e| format!("cannot write into {}: {e}", dir.display()))?;
    Ok(ca)
}
