//! `sipc` as a user runs it, against the tokio `sipd`, against an in-test callee on the
//! driver's call API, and against plain sockets that read what it sends: its call on the
//! session layer (ACK, BYE, CANCEL on Ctrl-C, the callee's BYE answered, hold and resume,
//! the route set behind a record-routing `sipd --proxy`), `--bind`, `--proxy`, the Contact
//! over TCP, the call flags, the one-line-per-message output and the exit codes. Loopback
//! only, ephemeral ports; every run is bounded (read timeouts, children killed past a
//! deadline).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sip_core::message::{Contact, SipUri};
use sip_core::sdp::{Direction, LocalMedia, Sdp};
use sip_core::session::{EndReason, SessionConfig};
use sip_core::{HeaderName, Message, ResponseBuilder, SeededRng, Transport};
use sip_driver_tokio::{CallEvent, Client, Driver, IncomingCalls};

const DEADLINE: Duration = Duration::from_secs(20);

fn sipc() -> PathBuf {
    common::example("sip-driver-tokio", "sipc", "sipc-calls")
}

fn sipd() -> PathBuf {
    common::example("sip-driver-tokio", "sipd", "sipd-for-sipc")
}

/// A child whose stdout lines arrive on a channel as it prints them.
struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

fn spawn(program: &PathBuf, args: &[&str]) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let read = |r: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        rx
    };
    let lines = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    Run {
        child,
        lines,
        seen: Vec::new(),
        stderr,
    }
}

impl Run {
    /// Waits for a stdout line that satisfies `wanted` (blocking; at most the deadline).
    fn wait_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no such line; printed: {:?}", self.seen);
                }
            }
        }
    }

    /// Waits for the exit (polling, so that an async test can run beside it); returns the
    /// exit code and every stdout line.
    async fn exit(mut self) -> (Option<i32>, Vec<String>, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("did not exit; printed {:?}", self.seen);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The reader threads end with the pipes.
        let mut lines = self.seen;
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            lines.push(l);
        }
        let stderr: Vec<String> = self.stderr.try_iter().collect();
        (status.code(), lines, stderr.join("\n"))
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(ok.success());
    }
}

/// Starts the tokio sipd on a free UDP port with `args`; returns it and its address.
fn start_sipd(args: &[&str]) -> (Run, SocketAddr) {
    let run = spawn(
        &sipd(),
        &[&["--listen", "udp:127.0.0.1:0"][..], args].concat(),
    );
    let until = Instant::now() + DEADLINE;
    let port = loop {
        let line = run
            .stderr
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .expect("sipd says where it listens");
        if let Some(rest) = line.strip_prefix("sipd: listening on udp:127.0.0.1:") {
            break rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse::<u16>()
                .unwrap();
        }
    };
    (run, ([127, 0, 0, 1], port).into())
}

/// Stops sipd with SIGTERM and returns its summary (stdout).
async fn stop_sipd(run: Run) -> String {
    run.signal("-TERM");
    let (code, lines, stderr) = run.exit().await;
    assert_eq!(code, Some(0), "{stderr}");
    lines.join("\n")
}

/// The position of the first line equal to `line`, or a panic naming them all.
fn position(lines: &[String], line: &str) -> usize {
    lines
        .iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no line {line:?} in {lines:?}"))
}

/// An in-test callee on the driver's call API.
async fn callee() -> (Client, IncomingCalls, SocketAddr) {
    common::init_tracing();
    let driver = Driver::bind(["udp:127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let mut config = SessionConfig::new("bob");
    config.timers = driver.config().timers;
    let (client, _incoming, calls) = driver.start_with_calls(config);
    let addr = client.local_addr(Transport::Udp).unwrap();
    (client, calls, addr)
}

fn loopback_media() -> LocalMedia {
    LocalMedia::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40100, 7)
}

#[tokio::test]
async fn sipc_call_to_sipd_prints_each_message_and_exits_0_after_its_bye_got_a_2xx() {
    // RFC 3261 13.2.2.4 (ACK), 15.1.1 (BYE, 2xx): the exit code says the call was made
    let (sipd, server) = start_sipd(&["--ring", "100ms"]);
    let uri = format!("sip:bob@{server}");
    let (code, lines, stderr) = spawn(&sipc(), &["call", &uri, "--hold", "100ms"])
        .exit()
        .await;
    assert_eq!(code, Some(0), "{lines:?} {stderr}");
    let order = [
        "-> INVITE",
        "<- 180 Ringing",
        "<- 200 OK",
        "-> ACK",
        "-> BYE",
    ]
    .map(|l| position(&lines, l));
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
    let summary = stop_sipd(sipd).await;
    assert!(summary.contains("dialogs open 0"), "{summary}");
}

#[tokio::test]
async fn sipd_prints_the_dialogs_still_open_at_exit() {
    // Issue 10 point 7: the tokio sipd names its open dialogs at exit (a call ACKed and
    // never ended is one)
    let (sipd, server) = start_sipd(&[]);
    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(DEADLINE)).unwrap();
    let me = ua.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:bob@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopen1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a1\r\nTo: <sip:bob@{server}>\r\n\
         Call-ID: dialogs-open-1\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    ua.send_to(invite.as_bytes(), server).unwrap();
    let mut buf = [0u8; 4096];
    let ok = loop {
        let n = ua.recv(&mut buf).expect("sipd answers");
        if buf[..n].starts_with(b"SIP/2.0 200") {
            break String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    };
    let to = ok
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .trim_start_matches("To:")
        .trim();
    let ack = format!(
        "ACK sip:bob@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopen2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a1\r\nTo: {to}\r\n\
         Call-ID: dialogs-open-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_to(ack.as_bytes(), server).unwrap();
    // an OPTIONS answered shows the ACK has been read
    let options = common::options("UDP", me, server, "dialogs-open-2");
    ua.send_to(options.as_bytes(), server).unwrap();
    loop {
        let n = ua.recv(&mut buf).expect("OPTIONS answered");
        if buf[..n].starts_with(b"SIP/2.0 200") && buf[..n].windows(8).any(|w| w == b"OPTIONS\r") {
            break;
        }
    }
    let summary = stop_sipd(sipd).await;
    assert!(summary.contains("dialogs open 1"), "{summary}");
}

#[tokio::test]
async fn sipc_answers_the_callees_bye_and_exits_0() {
    // RFC 3261 15.1.2: the BYE inside sipc's dialog is answered 200 (it was dropped before)
    let (bob, mut calls, addr) = callee().await;
    let uri = format!("sip:bob@{addr}");
    let run = spawn(&sipc(), &["call", &uri, "--hold", "10s"]);
    let incoming = common::bounded("INVITE", calls.next()).await.unwrap();
    let answer = loopback_media().answer(incoming.offer().unwrap()).unwrap();
    let mut call = incoming.accept(Some(answer)).await.unwrap();
    loop {
        match common::bounded("ACK", call.next_event()).await {
            Some(CallEvent::Answered { .. }) => break,
            other => assert!(!matches!(other, Some(CallEvent::Ended(_)) | None)),
        }
    }
    call.hangup().await.unwrap();
    loop {
        match common::bounded("BYE answered", call.next_event()).await {
            Some(CallEvent::Ended(reason)) => {
                assert_eq!(reason, EndReason::LocalBye);
                break;
            }
            Some(_) => {}
            None => panic!("no end"),
        }
    }
    let (code, lines, stderr) = run.exit().await;
    assert_eq!(code, Some(0), "{lines:?} {stderr}");
    assert!(position(&lines, "<- BYE") < position(&lines, "-> 200 OK"));
    assert!(
        lines.iter().any(|l| l == "   call ended: BYE received"),
        "{lines:?}"
    );
    bob.shutdown().await;
}

#[tokio::test]
async fn sipc_sends_ack_and_bye_along_the_record_route_of_a_proxy() {
    // RFC 3261 12.1.2 (route set from Record-Route), 12.2.1.1 (in-dialog requests to the
    // route set), 13.2.2.4: behind `sipd --proxy --record-route` the ACK and the BYE go
    // through the proxy, which counts them
    let (bob, mut calls, bob_addr) = callee().await;
    let route_to = format!("sip:{bob_addr}");
    let (proxy, proxy_addr) = start_sipd(&[
        "--proxy",
        "--domain",
        "example.test",
        "--record-route",
        "--route-to",
        &route_to,
    ]);
    let uri = format!("sip:bob@{proxy_addr}");
    let run = spawn(&sipc(), &["call", &uri, "--hold", "200ms"]);
    let incoming = common::bounded("INVITE", calls.next()).await.unwrap();
    let rr = incoming
        .request()
        .view()
        .header(HeaderName::RecordRoute)
        .unwrap_or("")
        .to_owned();
    assert!(rr.contains(&proxy_addr.to_string()), "Record-Route {rr:?}");
    let answer = loopback_media().answer(incoming.offer().unwrap()).unwrap();
    let mut call = incoming.accept(Some(answer)).await.unwrap();
    let mut answered = false;
    loop {
        match common::bounded("call", call.next_event()).await {
            Some(CallEvent::Answered { .. }) => answered = true,
            Some(CallEvent::Ended(reason)) => {
                assert_eq!(reason, EndReason::RemoteBye);
                break;
            }
            Some(_) => {}
            None => panic!("no end"),
        }
    }
    assert!(answered);
    let (code, lines, stderr) = run.exit().await;
    assert_eq!(code, Some(0), "{lines:?} {stderr}");
    let summary = stop_sipd(proxy).await;
    // INVITE and BYE forwarded, and the ACK: sipc sent them to the proxy (the route set),
    // not to the callee's Contact.
    assert!(summary.contains("requests forwarded 2"), "{summary}");
    assert!(summary.contains("ACKs forwarded 1"), "{summary}");
    bob.shutdown().await;
}

#[tokio::test]
async fn sipc_cancels_a_ringing_call_on_ctrl_c_and_exits_non_zero() {
    // RFC 3261 9.1: interrupted while ringing, sipc sends CANCEL; the call is not made, so
    // the exit code is not 0 (130, as after SIGINT)
    let (sipd, server) = start_sipd(&["--ring", "10s"]);
    let uri = format!("sip:bob@{server}");
    let mut run = spawn(&sipc(), &["call", &uri]);
    run.wait_line(|l| l == "<- 180 Ringing");
    run.signal("-INT");
    let (code, lines, stderr) = run.exit().await;
    assert_eq!(code, Some(130), "{lines:?} {stderr}");
    assert!(position(&lines, "-> CANCEL") < position(&lines, "<- 487 Request Terminated"));
    let summary = stop_sipd(sipd).await;
    assert!(summary.contains("cancelled 1"), "{summary}");
    assert!(summary.contains("dialogs open 0"), "{summary}");
}

#[tokio::test]
async fn sipc_puts_the_call_on_hold_and_back_with_reinvite_after() {
    // RFC 3264 8.4: a sendonly re-INVITE (hold), then sendrecv (resume), then BYE
    let (bob, mut calls, addr) = callee().await;
    let uri = format!("sip:bob@{addr}");
    let run = spawn(
        &sipc(),
        &["call", &uri, "--reinvite-after", "100ms", "--hold", "100ms"],
    );
    let incoming = common::bounded("INVITE", calls.next()).await.unwrap();
    let mut media = loopback_media();
    let answer = media.answer(incoming.offer().unwrap()).unwrap();
    let mut call = incoming.accept(Some(answer)).await.unwrap();
    let mut directions = Vec::new();
    loop {
        match common::bounded("call", call.next_event()).await {
            Some(CallEvent::Offer { sdp, .. }) => {
                directions.push(Sdp::parse(&sdp).unwrap().media()[0].direction());
                let answer = media.answer(&sdp).unwrap();
                call.answer_offer(Ok(answer)).await.unwrap();
            }
            Some(CallEvent::Ended(reason)) => {
                assert_eq!(reason, EndReason::RemoteBye);
                break;
            }
            Some(_) => {}
            None => panic!("no end"),
        }
    }
    assert_eq!(directions, [Direction::SendOnly, Direction::SendRecv]);
    let (code, lines, stderr) = run.exit().await;
    assert_eq!(code, Some(0), "{lines:?} {stderr}");
    assert_eq!(lines.iter().filter(|l| *l == "-> INVITE").count(), 3);
    bob.shutdown().await;
}

/// Reads one datagram that starts with `prefix`.
fn recv_starting(sock: &UdpSocket, prefix: &str) -> (String, SocketAddr) {
    let mut buf = [0u8; 65535];
    loop {
        let (n, from) = sock.recv_from(&mut buf).expect("a request");
        if buf[..n].starts_with(prefix.as_bytes()) {
            return (String::from_utf8_lossy(&buf[..n]).into_owned(), from);
        }
    }
}

fn answer(request: &str, code: u16) -> Vec<u8> {
    let m = Message::parse(request.as_bytes()).unwrap();
    let response = ResponseBuilder::new(&m, code)
        .build(&mut SeededRng::new([3; 32]))
        .unwrap();
    response.as_bytes().to_vec()
}

fn header_value(message: &str, name: &str) -> String {
    message
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default()
}

/// The Contact's host, port and transport parameter.
struct ContactUri {
    host: String,
    port: Option<u16>,
    transport: Option<String>,
}

fn contact_uri(message: &str) -> ContactUri {
    let m = Message::parse(message.as_bytes()).unwrap();
    let uri = match m.contacts().next() {
        Some(Contact::Addr(a)) => a.uri.to_string(),
        other => panic!("Contact {other:?}"),
    };
    let sip = SipUri::parse(&uri).unwrap();
    ContactUri {
        host: sip.host.to_string(),
        port: sip.port,
        transport: sip.transport().map(str::to_owned),
    }
}

/// Runs `sipc [PRE...] call URI [POST...]` against a plain UDP socket, returns the INVITE
/// and its source, answers it `code`, and returns sipc's exit code and lines.
async fn call_refused(
    pre: &[&str],
    post: &[&str],
    code: u16,
) -> (String, SocketAddr, Option<i32>, Vec<String>) {
    let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
    uas.set_read_timeout(Some(DEADLINE)).unwrap();
    let uri = format!("sip:bob@{}", uas.local_addr().unwrap());
    let args: Vec<&str> = pre
        .iter()
        .copied()
        .chain(["call", uri.as_str()])
        .chain(post.iter().copied())
        .collect();
    let run = spawn(&sipc(), &args);
    let (invite, from) = recv_starting(&uas, "INVITE ");
    uas.send_to(&answer(&invite, code), from).unwrap();
    let (exit, lines, stderr) = run.exit().await;
    assert!(stderr.is_empty() || exit != Some(0), "{stderr}");
    (invite, from, exit, lines)
}

#[tokio::test]
async fn sipc_binds_the_address_given_and_sends_the_sdp_file() {
    // --bind: the INVITE comes from 127.0.0.2 and its Via and Contact name it (sipc bound
    // only the loopback address before); --sdp FILE is the offer as written; a call
    // refused 486 exits 1
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let sdp_file = dir.join("sipc-offer.sdp");
    let offer = LocalMedia::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 40200, 9)
        .offer(Direction::SendRecv);
    std::fs::write(&sdp_file, &offer).unwrap();
    let (invite, from, code, lines) = call_refused(
        &["--bind", "127.0.0.2"],
        &["--sdp", sdp_file.to_str().unwrap()],
        486,
    )
    .await;
    assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    assert!(
        header_value(&invite, "Via").contains(&format!("127.0.0.2:{}", from.port())),
        "{invite}"
    );
    let contact = contact_uri(&invite);
    assert_eq!(contact.host, "127.0.0.2", "{invite}");
    assert_eq!(contact.port, Some(from.port()), "{invite}");
    assert!(
        invite.ends_with(&*String::from_utf8_lossy(&offer)),
        "{invite}"
    );
    assert_eq!(code, Some(1), "{lines:?}");
    assert!(lines.iter().any(|l| l == "<- 486 Busy Here"), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("-> INVITE")).count(),
        1
    );
}

#[tokio::test]
async fn sipc_100rel_and_session_expires_go_in_the_invite() {
    // --100rel: Require: 100rel (RFC 3262 section 4); --session-expires: Session-Expires
    // (RFC 4028 section 7.1); the default offer is PCMU and PCMA
    let (invite, _, code, _) =
        call_refused(&[], &["--100rel", "--session-expires", "300"], 480).await;
    assert!(
        header_value(&invite, "Require").contains("100rel"),
        "{invite}"
    );
    assert!(
        header_value(&invite, "Session-Expires").starts_with("300"),
        "{invite}"
    );
    assert!(invite.contains("m=audio 49170 RTP/AVP 0 8\r\n"), "{invite}");
    assert_eq!(code, Some(1));
}

#[tokio::test]
async fn sipc_contact_over_tcp_has_transport_tcp_and_the_port_that_receives() {
    // RFC 3261 8.1.1.8 / 18: the Contact of a call over TCP names the TCP listener with
    // ;transport=tcp (it named the TCP port without it, and a UDP port that differed)
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("sip:bob@{};transport=tcp", listener.local_addr().unwrap());
    let run = spawn(&sipc(), &["call", &uri]);
    listener.set_nonblocking(false).unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = Vec::new();
    let invite = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("the INVITE");
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(m) = Message::parse(&buf) {
            let len = m.view().as_bytes().len();
            if buf.len() >= len {
                break String::from_utf8_lossy(&buf).into_owned();
            }
        }
    };
    let contact = contact_uri(&invite);
    assert_eq!(contact.transport.as_deref(), Some("tcp"), "{invite}");
    let port = contact.port.expect("a port");
    // the port the Contact names receives: a TCP connection to it is taken
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("Contact's port listens");
    stream.write_all(&answer(&invite, 603)).unwrap();
    let (code, lines, stderr) = run.exit().await;
    assert_eq!(code, Some(1), "{lines:?} {stderr}");
    assert!(lines.iter().any(|l| l == "<- 603 Decline"), "{lines:?}");
}

#[tokio::test]
async fn sipc_proxy_sends_every_request_to_the_proxy_with_a_preloaded_route() {
    // RFC 3261 8.1.2: an outbound proxy is the first hop, named in a preloaded Route with lr
    let proxy = UdpSocket::bind("127.0.0.1:0").unwrap();
    proxy.set_read_timeout(Some(DEADLINE)).unwrap();
    let proxy_uri = format!("sip:{}", proxy.local_addr().unwrap());
    let run = spawn(
        &sipc(),
        &["--proxy", &proxy_uri, "options", "sip:bob@127.0.0.1:9"],
    );
    let (options, from) = recv_starting(&proxy, "OPTIONS ");
    assert!(
        options.starts_with("OPTIONS sip:bob@127.0.0.1:9 "),
        "{options}"
    );
    assert_eq!(header_value(&options, "Route"), format!("<{proxy_uri};lr>"));
    proxy.send_to(&answer(&options, 200), from).unwrap();
    let (code, lines, stderr) = run.exit().await;
    assert_eq!(code, Some(0), "{lines:?} {stderr}");
    assert_eq!(lines, ["-> OPTIONS", "<- 200 OK"]);
}

#[test]
fn sipc_refuses_bad_call_flags_with_exit_2() {
    // usage errors: exit 2, the usage on stderr
    for args in [
        &["--bind", "0.0.0.0", "options", "sip:127.0.0.1"][..],
        &["--bind", "nowhere", "options", "sip:127.0.0.1"],
        // (a name is a proxy now, RFC 3263; a URI that is not sip: or sips: is the error)
        &["--proxy", "tel:+15550100", "options", "sip:127.0.0.1"],
        &["call", "sip:127.0.0.1", "--session-expires", "soon"],
        &["call", "sip:127.0.0.1", "--reinvite-after", "later"],
        &["call", "sip:127.0.0.1", "--sdp", "/nonexistent/offer.sdp"],
        &["options", "sip:127.0.0.1", "--100rel"],
    ] {
        let out = Command::new(sipc())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("sipc runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage: sipc"),
            "{args:?}"
        );
    }
}

#[test]
fn sipd_session_expires_flag_is_checked_and_listed_in_the_help() {
    // RFC 4028 section 4: Min-SE is 90 s at least, so a shorter interval is a usage error
    for args in [
        &["--session-expires", "soon"][..],
        &["--session-expires", "30"],
        &["--session-expires"],
    ] {
        let out = Command::new(sipd())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("sipd runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage: sipd"),
            "{args:?}"
        );
    }
    let help = Command::new(sipd()).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--session-expires SECS"));
}

#[tokio::test]
async fn sipc_hangs_up_an_established_call_on_ctrl_c_and_exits_non_zero() {
    // RFC 3261 15.1.1: interrupted during the call, sipc sends BYE at once (the hold is cut
    // short, so the exit code is not 0)
    let (sipd, server) = start_sipd(&[]);
    let uri = format!("sip:bob@{server}");
    let mut run = spawn(&sipc(), &["call", &uri, "--hold", "30s"]);
    run.wait_line(|l| l == "   call established");
    run.signal("-INT");
    let (code, lines, stderr) = run.exit().await;
    assert_eq!(code, Some(130), "{lines:?} {stderr}");
    assert!(position(&lines, "-> BYE") < position(&lines, "   call ended: BYE sent"));
    let summary = stop_sipd(sipd).await;
    assert!(summary.contains("dialogs open 0"), "{summary}");
}

/// Sends an INVITE that supports session timers to `server` and returns its 2xx (after
/// ACKing it; the call is left to sipd's lifetime, not this test's business).
fn invite_with_timer_support(server: SocketAddr, call_id: &str) -> String {
    let ua = UdpSocket::bind("127.0.0.1:0").unwrap();
    ua.set_read_timeout(Some(DEADLINE)).unwrap();
    let me = ua.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:bob@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a1\r\nTo: <sip:bob@{server}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\n\
         Supported: timer\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_to(invite.as_bytes(), server).unwrap();
    let (ok, _) = recv_starting(&ua, "SIP/2.0 200");
    let to = header_value(&ok, "To");
    let ack = format!(
        "ACK sip:bob@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}a\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a1\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_to(ack.as_bytes(), server).unwrap();
    ok
}

#[tokio::test]
async fn sipd_session_expires_sets_the_interval_of_its_calls_and_0_turns_timers_off() {
    // RFC 4028 section 9: the UAS's 2xx carries the session interval (sipd's
    // --session-expires, default 1800) when the caller supports timers; 0: no timer
    for (args, expected) in [
        (&[][..], Some("1800")),
        (&["--session-expires", "300"][..], Some("300")),
        (&["--session-expires", "0"][..], None),
    ] {
        let (sipd, server) = start_sipd(args);
        let ok = invite_with_timer_support(server, &format!("se-{}", args.len()));
        let se = header_value(&ok, "Session-Expires");
        match expected {
            Some(secs) => assert!(
                se.split(';').next().map(str::trim) == Some(secs),
                "{args:?}: {ok}"
            ),
            None => assert!(se.is_empty(), "{args:?}: {ok}"),
        }
        stop_sipd(sipd).await;
    }
}

#[tokio::test]
async fn sipc_answers_the_callees_hold_reinvite_with_recvonly() {
    // RFC 3264 8.4, 6.1: the callee's re-INVITE with a sendonly offer is answered recvonly
    // by sipc (LocalMedia::answer), and the call goes on to its BYE
    let (bob, mut calls, addr) = callee().await;
    let uri = format!("sip:bob@{addr}");
    let run = spawn(&sipc(), &["call", &uri, "--hold", "10s"]);
    let incoming = common::bounded("INVITE", calls.next()).await.unwrap();
    let mut media = loopback_media();
    let answer = media.answer(incoming.offer().unwrap()).unwrap();
    let mut call = incoming.accept(Some(answer)).await.unwrap();
    loop {
        match common::bounded("ACK", call.next_event()).await {
            Some(CallEvent::Answered { .. }) => break,
            other => assert!(!matches!(other, Some(CallEvent::Ended(_)) | None)),
        }
    }
    call.hold(&mut media).await.unwrap();
    loop {
        match common::bounded("the answer", call.next_event()).await {
            Some(CallEvent::Answer { sdp }) => {
                let direction = Sdp::parse(&sdp).unwrap().media()[0].direction();
                assert_eq!(direction, Direction::RecvOnly);
                media.accept_answer(&sdp).unwrap();
                break;
            }
            other => assert!(
                !matches!(other, Some(CallEvent::Ended(_)) | None),
                "{other:?}"
            ),
        }
    }
    call.hangup().await.unwrap();
    let (code, lines, stderr) = run.exit().await;
    assert_eq!(code, Some(0), "{lines:?} {stderr}");
    assert!(
        position(&lines, "<- INVITE") < position(&lines, "<- BYE"),
        "{lines:?}"
    );
    bob.shutdown().await;
}
