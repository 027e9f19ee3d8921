//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sip_core::{Endpoint, Event, ResponseBuilder, SeededRng, TransactionUser};

/// Every test step is bounded: a hang fails the test instead.
pub async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(10), f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Logs to the test output when RUST_LOG is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A transaction user answering every request 200, counting them.
#[derive(Debug)]
pub struct Answer200 {
    pub answered: usize,
    /// The endpoint's open flows when the last request arrived.
    pub flows_at_last_request: usize,
    rng: SeededRng,
}

impl Default for Answer200 {
    fn default() -> Self {
        Answer200 {
            answered: 0,
            flows_at_last_request: 0,
            rng: SeededRng::new([9; 32]),
        }
    }
}

impl TransactionUser for Answer200 {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        if let Event::Request { tx, request, .. } = event {
            let ok = ResponseBuilder::from_view(&request.view(), 200)
                .build(&mut self.rng)
                .unwrap();
            endpoint.send_response(now, tx, &ok).unwrap();
            self.answered += 1;
            self.flows_at_last_request = endpoint.flows();
        }
    }
}

/// An OPTIONS request as a plain peer would write it.
pub fn options(transport: &str, peer: SocketAddr, server: SocketAddr, call_id: &str) -> String {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/{transport} {peer};branch=z9hG4bK{call_id}\r\n\
         From: <sip:a@{peer}>;tag=1\r\nTo: <sip:{server}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Builds the example `name` of `package` (once per test process and `link`) and returns a
/// private hard link to it named `link` in the test's scratch folder: both drivers' `sipd`
/// examples have the same output path, so a test that runs them must not run that path.
pub fn example(package: &str, name: &str, link: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = built.iter().find(|(n, _)| n == link) {
        return path.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-q", "-p", package, "--example", name])
        .arg("--message-format=json")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build -p {package} --example {name}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let exe = stdout
        .lines()
        .filter(|l| {
            l.contains("\"kind\":[\"example\"]") && l.contains(&format!("\"name\":\"{name}\""))
        })
        .find_map(|l| {
            let at = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            Some(l[at..].split('"').next()?.to_owned())
        })
        .expect("cargo names the executable");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(link);
    let _ = std::fs::remove_file(&path);
    std::fs::hard_link(&exe, &path).expect("link the example");
    built.push((link.to_owned(), path.clone()));
    path
}

pub mod certs;
