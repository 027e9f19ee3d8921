//! `sipd --proxy` on both drivers (this crate's and `sip-driver-mio`'s), run as a user runs
//! it: a proxy-registrar (RFC 3261 sections 10.3 and 16) that routes a call between two
//! registered user agents with Record-Route, relays to `--route-to`, rejects what it cannot
//! route, answers OPTIONS itself, refuses with 503 when full without amplifying, and
//! carries SIPp's `uac_rr` calls to SIPp's `uas_rr`. The user agents are plain UDP sockets
//! written by hand. Each run is bounded: read timeouts, and a deadline after which children
//! are killed. Loopback only; ephemeral ports, and 5550-5599 for SIPp.

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
    common::example(package, "sipd", &format!("proxy-{package}"))
}

/// A running sipd, its UDP address, and its stderr lines.
struct Running {
    child: Child,
    server: SocketAddr,
    first_line: String,
    stderr: mpsc::Receiver<String>,
}

fn start_on(program: &PathBuf, listen: &str, args: &[&str]) -> Running {
    let mut child = Command::new(program)
        .args(["--listen", listen])
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

fn start(program: &PathBuf, args: &[&str]) -> Running {
    start_on(program, "udp:127.0.0.1:0", args)
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

/// A user agent written by hand on a UDP socket.
struct Ua {
    sock: UdpSocket,
    addr: SocketAddr,
}

impl Ua {
    fn new() -> Ua {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let addr = sock.local_addr().unwrap();
        Ua { sock, addr }
    }

    fn send(&self, to: SocketAddr, text: &str) {
        self.sock.send_to(text.as_bytes(), to).unwrap();
    }

    /// The next message for which `wanted` holds (others are skipped), and where it came
    /// from; panics after 5 s without one.
    fn recv_until(&self, wanted: impl Fn(&str) -> bool) -> (String, SocketAddr) {
        let start = Instant::now();
        let mut buf = [0u8; 65536];
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "nothing wanted came"
            );
            let (n, from) = self.sock.recv_from(&mut buf).expect("a message comes");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if wanted(&text) {
                return (text, from);
            }
        }
    }

    /// Every message that arrives within `wait` (for counting what must not come).
    fn drain(&self, wait: Duration) -> Vec<String> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 65536];
        let mut got = Vec::new();
        while let Ok(n) = self.sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        self.sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        got
    }

    /// REGISTERs `sip:NAME@example.test` at `server` with this socket as the contact.
    fn register(&self, server: SocketAddr, name: &str) {
        let me = self.addr;
        let req = format!(
            "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreg{name}{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{name}@example.test>;tag=r\r\n\
             To: <sip:{name}@example.test>\r\nCall-ID: reg-{name}@{me}\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:{name}@{me}>;expires=300\r\nContent-Length: 0\r\n\r\n",
            me.port()
        );
        self.send(server, &req);
        let (ok, _) = self.recv_until(|m| m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1"));
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    }
}

/// The values of the header `name` (full name, any case), in order.
fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

/// A request from `from` (a user of example.test) with the next branch `branch`.
fn request(method: &str, uri: &str, from: &Ua, call: &str, cseq: u32, extra: &str) -> String {
    let me = from.addr;
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call}{cseq}{method};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=a1\r\nTo: <{uri}>\r\n\
         Call-ID: {call}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@{me}>\r\n{extra}\
         Content-Length: 0\r\n\r\n"
    )
}

/// The response `code` to `req` as a UAS writes it (section 8.2.6): Via, Record-Route,
/// From, Call-ID and CSeq copied, a To tag added.
fn response(req: &str, code: u16, contact: &str) -> String {
    let mut out = format!("SIP/2.0 {code} Whatever\r\n");
    for v in header(req, "Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for v in header(req, "Record-Route") {
        out.push_str(&format!("Record-Route: {v}\r\n"));
    }
    let to = header(req, "To")[0];
    let to = if to.contains("tag=") {
        to.to_owned()
    } else {
        format!("{to};tag=b1")
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: {contact}\r\n\
         Content-Length: 0\r\n\r\n",
        header(req, "From")[0],
        header(req, "Call-ID")[0],
        header(req, "CSeq")[0],
    ));
    out
}

#[test]
fn sipd_proxy_routes_a_call_between_registered_users_with_record_route() {
    // RFC 3261 16.5 (a registered AOR's contacts), 16.6 step 4 (Record-Route), 16.12
    // (in-dialog requests routed by Route), on both drivers
    for package in DRIVERS {
        let program = sipd(package);
        let running = start(
            &program,
            &["--proxy", "--domain", "example.test", "--record-route"],
        );
        assert!(
            running
                .first_line
                .contains("proxy-registrar for example.test"),
            "{package}: {}",
            running.first_line
        );
        let server = running.server;
        let (alice, bob) = (Ua::new(), Ua::new());
        bob.register(server, "bob");
        let call = format!("call-{package}");
        alice.send(
            server,
            &request("INVITE", "sip:bob@example.test", &alice, &call, 1, ""),
        );
        // Bob gets it at his contact, through sipd, record-routed.
        let (invite, proxy) = bob.recv_until(|m| m.starts_with("INVITE "));
        assert_eq!(proxy, server, "{package}");
        assert!(
            invite.starts_with(&format!("INVITE sip:bob@{} SIP/2.0", bob.addr)),
            "{package}: {invite}"
        );
        let rr = header(&invite, "Record-Route");
        assert!(
            rr.len() == 1 && rr[0].contains(&server.to_string()) && rr[0].contains(";lr"),
            "{package}: {invite}"
        );
        assert_eq!(header(&invite, "Via").len(), 2, "{package}: {invite}");
        assert_eq!(header(&invite, "Max-Forwards"), ["69"], "{package}");
        let bob_contact = format!("<sip:bob@{}>", bob.addr);
        bob.send(proxy, &response(&invite, 180, &bob_contact));
        bob.send(proxy, &response(&invite, 200, &bob_contact));
        let (ringing, _) = alice.recv_until(|m| m.starts_with("SIP/2.0 180"));
        assert_eq!(header(&ringing, "Via").len(), 1, "{package}: {ringing}");
        let (ok, _) = alice.recv_until(|m| m.starts_with("SIP/2.0 200"));
        assert_eq!(header(&ok, "Record-Route"), rr, "{package}: {ok}");
        // ACK and BYE follow the route set (section 12.2.1.1) through sipd.
        let route = format!("Route: {}\r\n", rr[0]);
        let to = header(&ok, "To")[0].to_owned();
        let in_dialog = |method: &str, cseq: u32| {
            request(
                method,
                &format!("sip:bob@{}", bob.addr),
                &alice,
                &call,
                cseq,
                &route,
            )
            .replace(&format!("To: <sip:bob@{}>", bob.addr), &format!("To: {to}"))
        };
        alice.send(server, &in_dialog("ACK", 1));
        let (ack, from) = bob.recv_until(|m| m.starts_with("ACK "));
        assert_eq!(from, server, "{package}");
        assert!(header(&ack, "Route").is_empty(), "{package}: {ack}");
        alice.send(server, &in_dialog("BYE", 2));
        let (bye, from) = bob.recv_until(|m| m.starts_with("BYE "));
        assert_eq!(from, server, "{package}");
        bob.send(from, &response(&bye, 200, &bob_contact));
        let (bye_ok, _) = alice.recv_until(|m| m.contains("CSeq: 2 BYE"));
        assert!(
            bye_ok.starts_with("SIP/2.0 200") && bye_ok.contains("CSeq: 2 BYE"),
            "{package}: {bye_ok}"
        );
        let summary = stop(running);
        assert!(
            summary.contains("registrations 1, bindings 1"),
            "{package}: {summary}"
        );
        assert!(
            summary.contains("to registered users 1,"),
            "{package}: {summary}"
        );
    }
}

#[test]
fn sipd_proxy_forks_to_every_contact_and_cancels_the_others_on_a_2xx() {
    // RFC 3261 16.5 (every binding of the AOR is a target), 16.6 (parallel forking),
    // 16.7 step 10 (CANCEL to the pending branches once a 2xx is forwarded), 16.7 step 5
    // (the 487 is absorbed: one final response upstream)
    for package in DRIVERS {
        let program = sipd(package);
        let running = start(&program, &["--proxy", "--domain", "example.test"]);
        let server = running.server;
        let (alice, desk, mobile) = (Ua::new(), Ua::new(), Ua::new());
        desk.register(server, "bob");
        mobile.register(server, "bob");
        let call = format!("fork-{package}");
        alice.send(
            server,
            &request("INVITE", "sip:bob@example.test", &alice, &call, 1, ""),
        );
        let (to_desk, proxy) = desk.recv_until(|m| m.starts_with("INVITE "));
        let (to_mobile, _) = mobile.recv_until(|m| m.starts_with("INVITE "));
        assert!(
            to_mobile.starts_with(&format!("INVITE sip:bob@{} ", mobile.addr)),
            "{package}: {to_mobile}"
        );
        mobile.send(proxy, &response(&to_mobile, 180, "<sip:bob@127.0.0.1>"));
        let desk_contact = format!("<sip:bob@{}>", desk.addr);
        desk.send(proxy, &response(&to_desk, 200, &desk_contact));
        let (ok, _) = alice.recv_until(|m| m.starts_with("SIP/2.0 200"));
        assert_eq!(header(&ok, "Contact"), [desk_contact.as_str()], "{package}");
        // The ringing branch is cancelled; its 487 is acknowledged by sipd.
        let (cancel, _) = mobile.recv_until(|m| m.starts_with("CANCEL "));
        assert_eq!(
            header(&cancel, "Via")[0],
            header(&to_mobile, "Via")[0],
            "{package}: {cancel}"
        );
        mobile.send(proxy, &response(&cancel, 200, "<sip:bob@127.0.0.1>"));
        mobile.send(proxy, &response(&to_mobile, 487, "<sip:bob@127.0.0.1>"));
        mobile.recv_until(|m| m.starts_with("ACK "));
        let later = alice.drain(Duration::from_millis(300));
        assert!(
            later.iter().all(|m| !m.starts_with("SIP/2.0 487")),
            "{package}: {later:?}"
        );
        let summary = stop(running);
        assert!(
            summary.contains("registrations 2, bindings 2"),
            "{package}: {summary}"
        );
        assert!(
            summary.contains("requests forwarded 2,") && summary.contains("CANCELs sent 1,"),
            "{package}: {summary}"
        );
    }
}

#[test]
fn sipd_proxy_with_registrar_users_challenges_register_then_routes_to_the_binding() {
    // RFC 3261 10.3 step 3 and 22 (REGISTER challenged), 16.5 (the authenticated binding
    // is the target): `--proxy` combined with `--registrar --realm --user`
    use sip_core::auth::DigestClient;
    use sip_core::{OwnedMessage, SeededRng};
    for package in DRIVERS {
        let program = sipd(package);
        let running = start(
            &program,
            &[
                "--proxy",
                "--domain",
                "example.test",
                "--registrar",
                "--realm",
                "example.test",
                "--user",
                "bob:secret",
            ],
        );
        let server = running.server;
        let (alice, bob) = (Ua::new(), Ua::new());
        let me = bob.addr;
        let register = format!(
            "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKauth1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=r\r\n\
             To: <sip:bob@example.test>\r\nCall-ID: reg-auth@{me}\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:bob@{me}>\r\nContent-Length: 0\r\n\r\n"
        );
        bob.send(server, &register);
        let (challenge, _) = bob.recv_until(|m| m.starts_with("SIP/2.0 4"));
        assert!(
            challenge.starts_with("SIP/2.0 401"),
            "{package}: {challenge}"
        );
        let again = DigestClient::new("bob", "secret")
            .retry(
                &OwnedMessage::parse(register.as_bytes()).unwrap(),
                &OwnedMessage::parse(challenge.as_bytes()).unwrap(),
                &mut SeededRng::new([9; 32]),
            )
            .expect("the challenge is answered");
        let text = String::from_utf8(again.as_bytes().to_vec()).unwrap();
        let (line, rest) = text.split_once("\r\n").unwrap();
        bob.send(
            server,
            &format!("{line}\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKauth2\r\n{rest}"),
        );
        let (ok, _) = bob.recv_until(|m| m.starts_with("SIP/2.0 2"));
        assert!(ok.contains("CSeq: 2 REGISTER"), "{package}: {ok}");
        alice.send(
            server,
            &request("MESSAGE", "sip:bob@example.test", &alice, "auth-msg", 1, ""),
        );
        let (message, from) = bob.recv_until(|m| m.starts_with("MESSAGE "));
        assert!(
            message.starts_with(&format!("MESSAGE sip:bob@{me} ")),
            "{package}: {message}"
        );
        bob.send(from, &response(&message, 200, "<sip:bob@127.0.0.1>"));
        let (delivered, _) = alice.recv_until(|m| m.contains("Call-ID: auth-msg"));
        assert!(
            delivered.starts_with("SIP/2.0 200"),
            "{package}: {delivered}"
        );
        let summary = stop(running);
        assert!(
            summary.contains("to registered users 1,"),
            "{package}: {summary}"
        );
    }
}

/// The next message (without body) on a stream, after `buf`'s leftovers.
fn read_message(stream: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> String {
    let start = Instant::now();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let msg: Vec<u8> = buf.drain(..end + 4).collect();
            return String::from_utf8_lossy(&msg).into_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no message on the stream"
        );
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("the stream stays open");
        assert!(n > 0, "the stream was closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn sipd_proxy_reaches_a_contact_registered_over_tcp_on_its_connection() {
    // RFC 5626 5.3 and RFC 5923 (the flow the REGISTER came on), RFC 3261 16.6 step 7:
    // the contact's own address has no listener, the request goes back on the connection
    use std::io::Write;
    for package in DRIVERS {
        let program = sipd(package);
        let running = start(
            &program,
            &[
                "--listen",
                "tcp:127.0.0.1:0",
                "--proxy",
                "--domain",
                "example.test",
            ],
        );
        let tcp_port: u16 = running
            .first_line
            .split("tcp:127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .expect("a TCP listener");
        let mut bob = std::net::TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
        bob.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = bob.local_addr().unwrap();
        let register = format!(
            "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKtcpreg\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=r\r\n\
             To: <sip:bob@example.test>\r\nCall-ID: reg-tcp@{me}\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:bob@127.0.0.1:1;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
        );
        bob.write_all(register.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let ok = read_message(&mut bob, &mut buf);
        assert!(ok.starts_with("SIP/2.0 200"), "{package}: {ok}");
        let alice = Ua::new();
        alice.send(
            running.server,
            &request("INVITE", "sip:bob@example.test", &alice, "tcp-call", 1, ""),
        );
        let invite = loop {
            let m = read_message(&mut bob, &mut buf);
            if m.starts_with("INVITE ") {
                break m;
            }
        };
        assert!(
            invite.starts_with("INVITE sip:bob@127.0.0.1:1;transport=tcp SIP/2.0"),
            "{package}: {invite}"
        );
        assert!(
            header(&invite, "Via")[0].starts_with("SIP/2.0/TCP"),
            "{package}: {invite}"
        );
        bob.write_all(response(&invite, 486, "<sip:bob@127.0.0.1>").as_bytes())
            .unwrap();
        let (busy, _) = alice.recv_until(|m| m.starts_with("SIP/2.0 4"));
        assert!(busy.starts_with("SIP/2.0 486"), "{package}: {busy}");
        let summary = stop(running);
        assert!(
            summary.contains("to registered users 1,"),
            "{package}: {summary}"
        );
    }
}

#[test]
fn sipd_proxy_relays_to_route_to_and_its_answer_comes_back() {
    // RFC 3261 16.5 and 16.6 step 7: a request for no registered user goes to the
    // configured next hop, here a second sipd that answers calls
    for package in DRIVERS {
        let program = sipd(package);
        let uas = start(&program, &[]);
        let to = format!("sip:{}", uas.server);
        let proxy = start(
            &program,
            &["--proxy", "--domain", "example.test", "--route-to", &to],
        );
        assert!(
            proxy.first_line.contains(&format!("others to {to}")),
            "{package}: {}",
            proxy.first_line
        );
        let alice = Ua::new();
        let call = format!("relay-{package}");
        alice.send(
            proxy.server,
            &request("INVITE", "sip:carol@example.test", &alice, &call, 1, ""),
        );
        let (ok, from) = alice.recv_until(|m| m.starts_with("SIP/2.0 2"));
        assert_eq!(from, proxy.server, "{package}");
        let contact = format!("<sip:sipd@{}>", uas.server);
        assert_eq!(
            header(&ok, "Contact"),
            [contact.as_str()],
            "{package}: {ok}"
        );
        // No Record-Route: the dialog goes straight to the UAS.
        assert!(header(&ok, "Record-Route").is_empty(), "{package}: {ok}");
        let to_tag = header(&ok, "To")[0].to_owned();
        let in_dialog = |method: &str, cseq: u32| {
            request(
                method,
                &format!("sip:sipd@{}", uas.server),
                &alice,
                &call,
                cseq,
                "",
            )
            .replace(
                &format!("To: <sip:sipd@{}>", uas.server),
                &format!("To: {to_tag}"),
            )
        };
        alice.send(uas.server, &in_dialog("ACK", 1));
        alice.send(uas.server, &in_dialog("BYE", 2));
        let (bye_ok, _) = alice.recv_until(|m| m.contains("CSeq: 2 BYE"));
        assert!(bye_ok.starts_with("SIP/2.0 200"), "{package}: {bye_ok}");
        let summary = stop(proxy);
        assert!(summary.contains("passed on 1,"), "{package}: {summary}");
        let summary = stop(uas);
        assert!(
            summary.contains("calls answered 1, ended 1"),
            "{package}: {summary}"
        );
    }
}

#[test]
fn sipd_proxy_rejects_what_it_cannot_route_and_answers_options_itself() {
    // RFC 3261 16.5: 480 for a user of the domain without binding, 404 for a resource of
    // this server that does not exist; section 11: OPTIONS to the server is answered
    for package in DRIVERS {
        let program = sipd(package);
        let running = start(&program, &["--proxy", "--domain", "example.test"]);
        let server = running.server;
        let alice = Ua::new();
        let finals = |method: &str, uri: &str, call: &str| {
            alice.send(server, &request(method, uri, &alice, call, 1, ""));
            let final_of_call = |m: &str| {
                m.starts_with("SIP/2.0 ")
                    && !m.starts_with("SIP/2.0 1")
                    && header(m, "Call-ID") == [call]
            };
            alice.recv_until(final_of_call).0
        };
        let r = finals("INVITE", "sip:nobody@example.test", "nobody");
        assert!(r.starts_with("SIP/2.0 480"), "{package}: {r}");
        let r = finals("INVITE", &format!("sip:{server}"), "itself");
        assert!(r.starts_with("SIP/2.0 404"), "{package}: {r}");
        let r = finals("OPTIONS", &format!("sip:{server}"), "options");
        assert!(r.starts_with("SIP/2.0 200"), "{package}: {r}");
        assert!(!header(&r, "Allow").is_empty(), "{package}: {r}");
        let r = finals("OPTIONS", "sip:example.test", "options-domain");
        assert!(r.starts_with("SIP/2.0 200"), "{package}: {r}");
        let summary = stop(running);
        assert!(
            summary.contains("refused by the routing 2,") && summary.contains("OPTIONS 2"),
            "{package}: {summary}"
        );
    }
}

#[test]
fn sipd_proxy_full_answers_503_with_retry_after_and_never_amplifies() {
    // RFC 3261 21.5.4 (503 with Retry-After when overloaded), 17.2.1 (a retransmitted
    // INVITE is absorbed by its server transaction): one request per branch
    for package in DRIVERS {
        let program = sipd(package);
        let running = start(
            &program,
            &["--proxy", "--domain", "example.test", "--max-contexts", "1"],
        );
        let server = running.server;
        let (alice, bob) = (Ua::new(), Ua::new());
        bob.register(server, "bob");
        let first = request("INVITE", "sip:bob@example.test", &alice, "busy-1", 1, "");
        alice.send(server, &first);
        let (invite, from) = bob.recv_until(|m| m.starts_with("INVITE "));
        bob.send(from, &response(&invite, 180, "<sip:bob@127.0.0.1>"));
        alice.recv_until(|m| m.starts_with("SIP/2.0 180"));
        // Alice retransmits; sipd answers with the last provisional, bob sees nothing new.
        alice.send(server, &first);
        alice.send(server, &first);
        alice.recv_until(|m| m.starts_with("SIP/2.0 180"));
        // The context table is full: the next call is refused, not forwarded.
        alice.send(
            server,
            &request("INVITE", "sip:bob@example.test", &alice, "busy-2", 1, ""),
        );
        let (refused, _) =
            alice.recv_until(|m| m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1"));
        assert!(refused.starts_with("SIP/2.0 503"), "{package}: {refused}");
        assert!(
            !header(&refused, "Retry-After").is_empty(),
            "{package}: {refused}"
        );
        let more = bob.drain(Duration::from_millis(300));
        assert!(
            more.iter().all(|m| !m.starts_with("INVITE ")),
            "{package}: {more:?}"
        );
        let summary = stop(running);
        assert!(
            summary.contains("overloaded (503) 1,") && summary.contains("requests forwarded 1,"),
            "{package}: {summary}"
        );
    }
}

#[test]
fn sipd_proxy_flags_are_checked_and_listed_in_the_help() {
    for package in DRIVERS {
        let program = sipd(package);
        for args in [
            &["--proxy"][..],
            &["--domain", "example.test"],
            &["--proxy", "--domain", "bad domain!"],
            &[
                "--proxy",
                "--domain",
                "example.test",
                "--route-to",
                "sip:bob@127.0.0.1",
            ],
            &[
                "--proxy",
                "--domain",
                "example.test",
                "--route-to",
                "tel:+123",
            ],
            &["--record-route"],
            &["--route-to", "sip:127.0.0.1:5070"],
            &["--proxy", "--domain", "example.test", "--max-contexts", "0"],
            &[
                "--proxy",
                "--domain",
                "example.test",
                "--realm",
                "example.test",
                "--user",
                "a:b",
                "--auth-calls",
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
        let help = Command::new(&program).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        for flag in [
            "--proxy",
            "--domain DOMAIN",
            "--record-route",
            "--route-to URI",
            "--max-contexts N",
        ] {
            assert!(text.contains(flag), "{package}: {flag} in {text}");
        }
    }
}

/// SIPp's scenarios for a record-routing proxy (copies of `../shared/peers/scen/`).
const UAC_RR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/uac_rr.xml");
const UAS_RR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/uas_rr.xml");

/// Is SIPp installed? When it is not, the test is skipped with a loud message, unless
/// SIP_REQUIRE_INTEROP is set (where SIPp must run; scripts/test.sh installs it).
fn sipp_available(test: &str) -> bool {
    let found = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var_os("SIP_REQUIRE_INTEROP").is_some() {
            panic!("{test}: sipp not found and SIP_REQUIRE_INTEROP is set");
        }
        eprintln!("\n*** {test}: SKIPPED: sipp not found (apt-get install -y sip-tester) ***\n");
    }
    found
}

/// Waits for `child` at most `limit` (then kills it); its success and its output.
fn wait_bounded(mut child: Child, limit: Duration) -> (bool, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    (status.is_some_and(|s| s.success()), out)
}

fn sipp(scenario: &str, port: u16, extra: &[&str]) -> Child {
    Command::new("sipp")
        .args(["-sf", scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", "200", "-timeout", "30s", "-nostdin"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sipp")
}

#[test]
fn sipd_proxy_carries_sipp_uac_rr_calls_to_sipp_uas_rr() {
    // RFC 3261 16 and 18.1.1: the `baselines.sh proxyext` setup, 200 calls at 100/s, UDP
    // in; out over UDP, then over TCP (16.6 step 7: the transport of the next hop's URI)
    if !sipp_available("sipd_proxy_carries_sipp_uac_rr_calls_to_sipp_uas_rr") {
        return;
    }
    let mut i = 0u16;
    for package in DRIVERS {
        for tcp_out in [false, true] {
            let program = sipd(package);
            let (uac_port, proxy_port, uas_port) = (5550 + i, 5560 + i, 5570 + i);
            i += 1;
            let uas = sipp(UAS_RR, uas_port, &["-t", if tcp_out { "t1" } else { "u1" }]);
            std::thread::sleep(Duration::from_millis(300));
            let route_to = match tcp_out {
                true => format!("sip:127.0.0.1:{uas_port};transport=tcp"),
                false => format!("sip:127.0.0.1:{uas_port}"),
            };
            let tcp_listener = format!("tcp:127.0.0.1:{proxy_port}");
            let proxy = start_on(
                &program,
                &format!("udp:127.0.0.1:{proxy_port}"),
                &[
                    "--listen",
                    &tcp_listener,
                    "--proxy",
                    "--domain",
                    "example.test",
                    "--route-to",
                    &route_to,
                ],
            );
            let uac = sipp(
                UAC_RR,
                uac_port,
                &["-r", "100", &format!("127.0.0.1:{proxy_port}")],
            );
            let (uac_ok, uac_out) = wait_bounded(uac, Duration::from_secs(40));
            let (uas_ok, uas_out) = wait_bounded(uas, Duration::from_secs(10));
            let summary = stop(proxy);
            let run = format!("{package} tcp_out={tcp_out}");
            assert!(uac_ok, "{run}: uac:\n{uac_out}\nsipd: {summary}");
            assert!(uas_ok, "{run}: uas:\n{uas_out}\nsipd: {summary}");
            assert!(summary.contains("passed on 400,"), "{run}: {summary}");
        }
    }
}
