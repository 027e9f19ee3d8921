//! `sipd --registrar` on both drivers (this crate's and `sip-driver-mio`'s), run as a user
//! runs it (RFC 3261 section 10.3): it registers a contact, lists it to a query, counts it
//! in the summary, and refuses incomplete registrar flags as usage errors. Each run is
//! bounded: read timeouts, and a deadline after which the child is killed. Loopback only,
//! ephemeral ports.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

const DRIVERS: [&str; 2] = ["sip-driver-tokio", "sip-driver-mio"];

/// Builds `sipd` of `package` once per test process and returns a private hard link to it
/// (both drivers' examples share one output path; see `tests/examples.rs`).
fn sipd(package: &str) -> PathBuf {
    common::example(package, "sipd", &format!("registrar-{package}"))
}

/// A running sipd, its UDP address, and its stderr lines.
struct Running {
    child: Child,
    server: SocketAddr,
    first_line: String,
    stderr: mpsc::Receiver<String>,
}

fn start(program: &PathBuf, args: &[&str]) -> Running {
    let mut child = Command::new(program)
        .args(["--listen", "udp:127.0.0.1:0"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipd");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let Ok(line) = rx.recv_timeout(DEADLINE) else {
        let _ = child.kill();
        panic!("sipd did not say where it listens");
    };
    let Some(rest) = line.strip_prefix("sipd: listening on udp:127.0.0.1:") else {
        let _ = child.kill();
        panic!("unexpected first line: {line}");
    };
    let port: u16 = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Running {
        child,
        server: ([127, 0, 0, 1], port).into(),
        first_line: line,
        stderr: rx,
    }
}

/// Stops sipd with SIGTERM and returns its stdout (the summary).
fn stop(mut r: Running) -> String {
    let stopped = Command::new("kill")
        .args(["-TERM", &r.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = r.child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = r.child.kill();
            panic!("sipd did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    r.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let errors: Vec<String> = r.stderr.try_iter().collect();
    assert!(status.success(), "{errors:?}");
    out
}

fn register(server: SocketAddr, me: SocketAddr, cseq: u32, contact: Option<&str>) -> String {
    let contact = contact.map_or(String::new(), |c| format!("Contact: {c}\r\n"));
    format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKr{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:alice@example.com>\r\n\
         Call-ID: sipd-registrar@{server}\r\nCSeq: {cseq} REGISTER\r\n{contact}Content-Length: 0\r\n\r\n"
    )
}

/// Sends `request` and returns the first final response.
fn exchange(peer: &UdpSocket, server: SocketAddr, request: &str) -> String {
    peer.send_to(request.as_bytes(), server).unwrap();
    let mut buf = [0u8; 65536];
    loop {
        let n = peer.recv(&mut buf).expect("sipd answers");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

#[test]
fn sipd_registrar_registers_lists_and_counts_a_binding() {
    // RFC 3261 10.3: both drivers' sipd as a registrar without users
    for package in DRIVERS {
        let program = sipd(package);
        let running = start(&program, &["--registrar", "--realm", "example.com"]);
        assert!(
            running.first_line.contains("registrar for example.com"),
            "{package}: {}",
            running.first_line
        );
        let server = running.server;
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = peer.local_addr().unwrap();
        let contact = format!("<sip:alice@{me}>;expires=300");
        let ok = exchange(&peer, server, &register(server, me, 1, Some(&contact)));
        assert!(ok.starts_with("SIP/2.0 200"), "{package}: {ok}");
        assert!(
            ok.contains(&format!("Contact: <sip:alice@{me}>;expires=300")),
            "{package}: {ok}"
        );
        // a query lists it
        let listed = exchange(&peer, server, &register(server, me, 2, None));
        assert!(listed.starts_with("SIP/2.0 200"), "{package}: {listed}");
        assert!(
            listed.contains(&format!("<sip:alice@{me}>;expires=")),
            "{package}: {listed}"
        );
        // an AOR of another domain is not ours
        let other = register(server, me, 3, Some(&contact))
            .replace("To: <sip:alice@example.com>", "To: <sip:alice@example.org>");
        let refused = exchange(&peer, server, &other);
        assert!(refused.starts_with("SIP/2.0 404"), "{package}: {refused}");
        let summary = stop(running);
        assert!(
            summary.contains("registrations 2, bindings 1"),
            "{package}: {summary}"
        );
    }
}

#[test]
fn sipd_registrar_flags_without_a_realm_are_usage_errors() {
    for package in DRIVERS {
        let program = sipd(package);
        for args in [
            &["--registrar"][..],
            &["--user", "alice:pw"],
            &["--registrar", "--realm", "example.com", "--auth-calls"],
            &[
                "--registrar",
                "--realm",
                "example.com",
                "--user",
                "nopassword",
            ],
            &[
                "--registrar",
                "--realm",
                "example.com",
                "--algorithms",
                "MD5",
            ],
            &[
                "--realm",
                "example.com",
                "--user",
                "a:pw",
                "--algorithms",
                "SHA-1",
            ],
        ] {
            let out = Command::new(&program)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("runs");
            assert_eq!(out.status.code(), Some(2), "{package} {args:?}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("usage: sipd"),
                "{package} {args:?}"
            );
        }
        // --help names the registrar flags
        let help = Command::new(&program).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        for flag in [
            "--registrar",
            "--realm REALM",
            "--user NAME:PASSWORD",
            "--auth-calls",
            "--algorithms LIST",
        ] {
            assert!(text.contains(flag), "{package}: {flag} in {text}");
        }
    }
}

/// `request` answered for `challenge` by alice/`password`, with a Via written back (the
/// digest client removes it for the endpoint to write a fresh one; here the test is the
/// endpoint).
fn answered(request: &str, challenge: &str, password: &str, me: SocketAddr) -> String {
    use sip_core::auth::DigestClient;
    use sip_core::{OwnedMessage, SeededRng};
    let req = OwnedMessage::parse(request.as_bytes()).unwrap();
    let resp = OwnedMessage::parse(challenge.as_bytes()).unwrap();
    let again = DigestClient::new("alice", password)
        .retry(&req, &resp, &mut SeededRng::new([9; 32]))
        .expect("the challenge is answered");
    let text = String::from_utf8(again.as_bytes().to_vec()).unwrap();
    let (line, rest) = text.split_once("\r\n").unwrap();
    format!("{line}\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKauth{password}\r\n{rest}")
}

#[test]
fn sipd_registrar_with_users_challenges_register_and_with_auth_calls_options() {
    // RFC 3261 10.3 step 3 and 22.2, on both drivers
    for package in DRIVERS {
        let program = sipd(package);
        let running = start(
            &program,
            &[
                "--registrar",
                "--realm",
                "example.com",
                "--user",
                "alice:secret",
                "--auth-calls",
            ],
        );
        assert!(
            running.first_line.contains("with digest"),
            "{package}: {}",
            running.first_line
        );
        let server = running.server;
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = peer.local_addr().unwrap();
        let contact = format!("<sip:alice@{me}>");
        let req = register(server, me, 1, Some(&contact));
        let challenge = exchange(&peer, server, &req);
        assert!(
            challenge.starts_with("SIP/2.0 401"),
            "{package}: {challenge}"
        );
        assert!(
            challenge.contains("WWW-Authenticate: Digest realm=\"example.com\""),
            "{package}: {challenge}"
        );
        let wrong = exchange(&peer, server, &answered(&req, &challenge, "nope", me));
        assert!(wrong.starts_with("SIP/2.0 401"), "{package}: {wrong}");
        let ok = exchange(&peer, server, &answered(&req, &challenge, "secret", me));
        assert!(ok.starts_with("SIP/2.0 200"), "{package}: {ok}");
        // --auth-calls: OPTIONS is challenged too
        let options = format!(
            "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=o\r\nTo: <sip:{server}>\r\n\
             Call-ID: sipd-options\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let r = exchange(&peer, server, &options);
        assert!(r.starts_with("SIP/2.0 401"), "{package}: {r}");
        let summary = stop(running);
        assert!(
            summary.contains("registrations 1, bindings 1"),
            "{package}: {summary}"
        );
    }
}
