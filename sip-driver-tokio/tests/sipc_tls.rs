//! `sipc` and `sipd` (tokio) over TLS and to names, as a user runs them: OPTIONS and a call
//! over TLS with a CA made at test time, the refusals (a certificate for another name, an
//! untrusted CA) with their clear message and exit code, one handshake per peer, the flags
//! and their usage errors; and, through a real dnsmasq on 127.0.0.1:26353, names resolved
//! with NAPTR and SRV, failover to the next SRV target when the first refuses, and
//! `sips:` to a name over TLS with the certificate checked against the domain (RFC 5922).
//! Loopback only; fixed ports 26350-26389 (this helper's range), so the tests that use
//! them run one at a time; every run is bounded.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::certs::{self, Certs};

const DEADLINE: Duration = Duration::from_secs(30);

fn sipc() -> PathBuf {
    common::example("sip-driver-tokio", "sipc", "sipc-tls")
}

fn sipd() -> PathBuf {
    common::example("sip-driver-tokio", "sipd", "sipd-tls")
}

/// A child whose stdout and stderr lines arrive on channels; killed when dropped.
struct Run {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(program: &PathBuf, args: &[&str]) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program:?}: {e}"));
    let read = |r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        rx
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    Run {
        child,
        stdout,
        stderr,
    }
}

struct Exit {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: String,
}

impl Run {
    /// Waits for the exit (killed past the deadline).
    fn exit(mut self) -> Exit {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let out: Vec<String> = self.stdout.try_iter().collect();
                let err: Vec<String> = self.stderr.try_iter().collect();
                panic!("did not exit; printed {out:?} {err:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = Vec::new();
        while let Ok(l) = self.stdout.recv_timeout(Duration::from_secs(5)) {
            stdout.push(l);
        }
        let mut stderr = Vec::new();
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            stderr.push(l);
        }
        Exit {
            code: status.code(),
            stdout,
            stderr: stderr.join("\n"),
        }
    }

    /// Waits for a stderr line containing `part`; returns it.
    fn wait_stderr(&mut self, part: &str) -> String {
        let until = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            match self
                .stderr
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(l) if l.contains(part) => return l,
                Ok(l) => seen.push(l),
                Err(_) => panic!("no line {part:?}; printed {seen:?}"),
            }
        }
    }

    /// SIGTERM, then the exit.
    fn stop(self) -> Exit {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(ok.success());
        self.exit()
    }
}

/// Starts sipd with `args`; returns it once it listens, and the port of its first
/// `tls:` listener (when it has one).
fn start_sipd(args: &[&str]) -> (Run, Option<u16>) {
    let mut run = spawn(&sipd(), args);
    let line = run.wait_stderr("sipd: listening on ");
    let tls = line.split("tls:127.0.0.1:").nth(1).map(|rest| {
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap()
    });
    (run, tls)
}

fn sipd_tls(certs: &Certs, extra: &[&str]) -> (Run, u16) {
    let cert = certs.cert.to_str().unwrap();
    let key = certs.key.to_str().unwrap();
    let args = [
        &["--listen", "tls:127.0.0.1:0", "--cert", cert, "--key", key][..],
        extra,
    ]
    .concat();
    let (run, port) = start_sipd(&args);
    (run, port.expect("a tls listener"))
}

#[test]
fn sipc_options_over_tls_to_sipd_exits_0_and_sipd_counts_one_handshake() {
    // RFC 3261 section 26.2 (sips: over TLS) and 26.3.1: sipc checks sipd's certificate
    // against the CA it is given; sipd counts the handshake.
    let certs = certs::make("sipc-options", &["example.test", "127.0.0.1"]);
    let (sipd, port) = sipd_tls(&certs, &[]);
    let uri = format!("sips:127.0.0.1:{port}");
    let ca = certs.ca.to_str().unwrap();
    let out = spawn(&sipc(), &["--ca", ca, "options", &uri]).exit();
    assert_eq!(out.code, Some(0), "{:?} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.iter().any(|l| l == "-> OPTIONS"),
        "{:?}",
        out.stdout
    );
    assert!(
        out.stdout.iter().any(|l| l == "<- 200 OK"),
        "{:?}",
        out.stdout
    );
    let summary = sipd.stop();
    assert_eq!(summary.code, Some(0), "{}", summary.stderr);
    let summary = summary.stdout.join("\n");
    assert!(summary.contains("tls handshakes 1,"), "{summary}");
}

#[test]
fn sipc_sips_call_to_sipd_over_tls_is_established_and_ended_on_one_connection() {
    // RFC 3261 section 26.2 and 19.1: a sips: call runs over TLS with a sips: Contact;
    // INVITE, ACK and BYE share the connection (one handshake each side, section 26.3.1).
    let certs = certs::make("sipc-call", &["example.test", "127.0.0.1"]);
    let (sipd, port) = sipd_tls(&certs, &["--ring", "100ms"]);
    let uri = format!("sips:bob@127.0.0.1:{port}");
    let (ca, cert, key) = (
        certs.ca.to_str().unwrap(),
        certs.cert.to_str().unwrap(),
        certs.key.to_str().unwrap(),
    );
    let out = spawn(
        &sipc(),
        &[
            "--ca", ca, "--cert", cert, "--key", key, "call", &uri, "--hold", "100ms",
        ],
    )
    .exit();
    assert_eq!(out.code, Some(0), "{:?} {}", out.stdout, out.stderr);
    for line in ["-> INVITE", "<- 200 OK", "-> ACK", "-> BYE"] {
        assert!(
            out.stdout.iter().any(|l| l == line),
            "{line}: {:?}",
            out.stdout
        );
    }
    let summary = sipd.stop().stdout.join("\n");
    assert!(summary.contains("calls answered 1"), "{summary}");
    assert!(summary.contains("tls handshakes 1,"), "{summary}");
}

#[test]
fn sipc_refuses_a_tls_server_whose_certificate_names_another_host() {
    // RFC 5922 section 7.2: the certificate must name what was asked for (here the
    // address); sipc exits 1 and says why.
    let certs = certs::make("sipc-wrong-name", &["other.test"]);
    let (_sipd, port) = sipd_tls(&certs, &[]);
    let uri = format!("sips:127.0.0.1:{port}");
    let out = spawn(
        &sipc(),
        &["--ca", certs.ca.to_str().unwrap(), "options", &uri],
    )
    .exit();
    assert_eq!(out.code, Some(1), "{:?}", out.stdout);
    let want = format!("sipc: error: TLS to 127.0.0.1:{port}: certificate not valid for 127.0.0.1");
    assert!(out.stderr.lines().any(|l| l == want), "{}", out.stderr);
}

#[test]
fn sipc_refuses_a_tls_server_signed_by_an_untrusted_ca() {
    // RFC 3261 section 26.2.1: the server's chain must lead to a CA the client trusts.
    let served = certs::make("sipc-untrusted-server", &["127.0.0.1"]);
    let trusted = certs::make("sipc-untrusted-client", &["127.0.0.1"]);
    let (_sipd, port) = sipd_tls(&served, &[]);
    let uri = format!("sips:127.0.0.1:{port}");
    let out = spawn(
        &sipc(),
        &["--ca", trusted.ca.to_str().unwrap(), "options", &uri],
    )
    .exit();
    assert_eq!(out.code, Some(1), "{:?}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "sipc: error: TLS to 127.0.0.1:{port}: certificate not trusted"
        )),
        "{}",
        out.stderr
    );
}

fn usage_error(program: &PathBuf, name: &str, args: &[&str], says: &str) {
    let out = spawn(program, args).exit();
    assert_eq!(out.code, Some(2), "{name} {args:?}: {}", out.stderr);
    assert!(out.stderr.contains(says), "{name} {args:?}: {}", out.stderr);
    assert!(
        out.stderr.contains(&format!("usage: {name}")),
        "{}",
        out.stderr
    );
}

#[test]
fn tls_and_dns_flags_are_checked_and_listed_in_the_help() {
    // RFC 3261 section 26.2: a TLS listener needs a certificate and a key; a sips: URI goes
    // over TLS only (RFC 3263 section 4.1).
    let certs = certs::make("flags", &["127.0.0.1"]);
    let cert = certs.cert.to_str().unwrap();
    let (sipd, sipc) = (sipd(), sipc());
    usage_error(
        &sipd,
        "sipd",
        &["--listen", "tls:127.0.0.1:0"],
        "needs --cert",
    );
    usage_error(
        &sipd,
        "sipd",
        &["--cert", cert],
        "--cert and --key go together",
    );
    usage_error(&sipd, "sipd", &["--dns", "nowhere"], "--dns nowhere");
    usage_error(
        &sipd,
        "sipd",
        &["--cert", "/nonexistent.pem"],
        "no such file",
    );
    usage_error(
        &sipc,
        "sipc",
        &["--dns", "nowhere", "options", "sip:x.test"],
        "--dns nowhere",
    );
    usage_error(
        &sipc,
        "sipc",
        &["--cert", cert, "options", "sip:x.test"],
        "go together",
    );
    usage_error(
        &sipc,
        "sipc",
        &["--transport", "udp", "options", "sips:example.test"],
        "TLS only",
    );
    usage_error(
        &sipc,
        "sipc",
        &["call", "sips:bob@example.test"],
        "needs --cert",
    );
    usage_error(
        &sipc,
        "sipc",
        &["--transport", "sctp", "options", "sip:x.test"],
        "udp, tcp or tls",
    );
    for (program, flags) in [
        (&sipd, &["--cert", "--key", "--ca", "--dns", "tls:"][..]),
        (
            &sipc,
            &[
                "--dns",
                "--ca",
                "--cert",
                "--key",
                "tls",
                "sips:example.test",
            ][..],
        ),
    ] {
        let out = spawn(program, &["--help"]).exit();
        assert_eq!(out.code, Some(0));
        let help = out.stdout.join("\n");
        for flag in flags {
            assert!(help.contains(flag), "{flag}: {help}");
        }
    }
}
