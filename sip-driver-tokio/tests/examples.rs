//! The demo programs as a user runs them, held to one set of conventions (issue 9, point 12):
//! `sipd` on both drivers (this crate's and `sip-driver-mio`'s) and `sipc` print `--help` on
//! stdout with exit 0, usage errors on stderr with exit 2, no per-message log lines at the
//! default level `warn`, and no colour codes when stderr is not a terminal. Each run is
//! bounded: read timeouts, and a deadline after which the child is killed.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sip_core::{Message, ResponseBuilder, SeededRng};

const DEADLINE: Duration = Duration::from_secs(20);

/// The drivers whose `sipd` these tests run: package and the name its help gives.
const DRIVERS: [(&str, &str); 2] = [
    ("sip-driver-tokio", "tokio driver"),
    ("sip-driver-mio", "mio driver"),
];

/// Builds example `name` of package `package` (once per test process) and returns a private
/// link to it: both drivers' `sipd` have the same output path (`target/debug/examples/sipd`),
/// so the shared name is linked away at once (one build at a time), and the help names the
/// driver so that a mix-up would show. A hard link, not a copy: a file being written cannot
/// be run.
fn example(package: &str, name: &str) -> PathBuf {
    common::example(package, name, &format!("{package}-{name}"))
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `program` with `args` to its end (killed past the deadline).
fn run(program: &PathBuf, args: &[&str]) -> Output {
    let child = Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    finish(child, None)
}

/// Waits for `child` (killed past the deadline), then reads its output; `stderr_lines`
/// are the stderr lines a reader thread took already.
fn finish(mut child: Child, stderr_lines: Option<mpsc::Receiver<String>>) -> Output {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the program did not end within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let stderr = match stderr_lines {
        Some(lines) => lines.iter().map(|l| l + "\n").collect(),
        None => {
            let mut s = String::new();
            child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
            s
        }
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

fn assert_help(program: &PathBuf, name: &str, driver: &str) {
    for flag in ["--help", "-h"] {
        let out = run(program, &[flag]);
        assert_eq!(out.status.code(), Some(0), "{name} {flag}");
        assert!(
            out.stdout.contains(&format!("usage: {name}")),
            "{name} {flag}: {}",
            out.stdout
        );
        assert!(out.stdout.contains(driver), "{}", out.stdout);
        assert_eq!(out.stderr, "", "{name} {flag}");
    }
}

fn assert_usage_error(program: &PathBuf, name: &str, args: &[&str]) {
    let out = run(program, args);
    assert_eq!(out.status.code(), Some(2), "{name} {args:?}");
    assert_eq!(out.stdout, "", "{name} {args:?}");
    assert!(
        out.stderr.contains(&format!("usage: {name}")),
        "{name} {args:?}: {}",
        out.stderr
    );
}

fn options(server: SocketAddr, client: SocketAddr) -> String {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {client};branch=z9hG4bKex1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@{client}>;tag=1\r\nTo: <sip:{server}>\r\n\
         Call-ID: examples-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Starts sipd on a free UDP port with `args`, has it answer one OPTIONS, stops it with
/// SIGTERM, and returns what it printed.
fn sipd_answering_one_options(sipd: &PathBuf, args: &[&str]) -> Output {
    let mut child = Command::new(sipd)
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
    let mut lines = Vec::new();
    let port = loop {
        let Ok(line) = rx.recv_timeout(DEADLINE) else {
            let _ = child.kill();
            panic!("sipd did not say where it listens: {lines:?}");
        };
        lines.push(line.clone());
        if let Some(rest) = line.strip_prefix("sipd: listening on udp:127.0.0.1:") {
            break rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap();
        }
    };
    let server: SocketAddr = ([127, 0, 0, 1], port).into();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    peer.send_to(
        options(server, peer.local_addr().unwrap()).as_bytes(),
        server,
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = peer.recv(&mut buf).expect("sipd answers");
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK"));
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    let (tx2, rx2) = mpsc::channel();
    for l in lines {
        tx2.send(l).unwrap();
    }
    std::thread::spawn(move || {
        for l in rx.iter() {
            let _ = tx2.send(l);
        }
    });
    finish(child, Some(rx2))
}

#[test]
fn sipd_help_is_on_stdout_and_usage_errors_on_stderr() {
    for (package, driver) in DRIVERS {
        let sipd = example(package, "sipd");
        assert_help(&sipd, "sipd", driver);
        assert_usage_error(&sipd, "sipd", &["--bogus"]);
        assert_usage_error(&sipd, "sipd", &["--ring", "soon"]);
        assert_usage_error(&sipd, "sipd", &["--log", "no=such=filter"]);
    }
}

#[test]
fn sipd_logs_no_message_at_the_default_level_and_no_colour_into_a_pipe() {
    for (package, _) in DRIVERS {
        let sipd = example(package, "sipd");
        let quiet = sipd_answering_one_options(&sipd, &[]);
        assert!(quiet.status.success(), "{package}: {}", quiet.stderr);
        let lines: Vec<&str> = quiet.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{package}: only the listening line: {lines:?}"
        );
        assert!(quiet.stdout.starts_with("sipd: ran"), "{}", quiet.stdout);
        // `--log info` writes a line per message, without colour codes into the pipe
        let chatty = sipd_answering_one_options(&sipd, &["--log", "info"]);
        assert!(chatty.status.success());
        assert!(
            chatty.stderr.contains("OPTIONS"),
            "{package}: {}",
            chatty.stderr
        );
        assert!(
            !chatty.stderr.contains('\x1b'),
            "{package}: {}",
            chatty.stderr
        );
    }
}

#[test]
fn sipc_help_is_on_stdout_and_usage_errors_on_stderr() {
    let sipc = example("sip-driver-tokio", "sipc");
    assert_help(&sipc, "sipc", "tokio driver");
    assert_usage_error(&sipc, "sipc", &[]);
    assert_usage_error(&sipc, "sipc", &["ping", "sip:127.0.0.1"]);
    // (a name is a target now, RFC 3263: a URI that is not sip: or sips: is the error)
    assert_usage_error(&sipc, "sipc", &["options", "mailto:bob@example.test"]);
}

/// Runs `sipc options` with `args` against a UDP socket that answers 200.
fn sipc_options(sipc: &PathBuf, args: &[&str]) -> Output {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server.set_read_timeout(Some(DEADLINE)).unwrap();
    let uri = format!("sip:{}", server.local_addr().unwrap());
    let child = Command::new(sipc)
        .args(args)
        .args(["options", &uri])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipc");
    let mut buf = [0u8; 4096];
    let (n, from) = server.recv_from(&mut buf).expect("sipc sends OPTIONS");
    let request = Message::parse(&buf[..n]).unwrap();
    let ok = ResponseBuilder::new(&request, 200)
        .build(&mut SeededRng::new([8; 32]))
        .unwrap();
    server.send_to(ok.as_bytes(), from).unwrap();
    finish(child, None)
}

#[test]
fn sipc_logs_no_message_at_the_default_level_and_no_colour_into_a_pipe() {
    let sipc = example("sip-driver-tokio", "sipc");
    let quiet = sipc_options(&sipc, &[]);
    assert!(quiet.status.success(), "{}", quiet.stderr);
    assert!(quiet.stdout.contains("<- 200 OK"), "{}", quiet.stdout);
    assert_eq!(quiet.stderr, "");
    let chatty = sipc_options(&sipc, &["--log", "info"]);
    assert!(chatty.status.success());
    assert!(chatty.stderr.contains("OPTIONS"), "{}", chatty.stderr);
    assert!(!chatty.stderr.contains('\x1b'), "{}", chatty.stderr);
}
