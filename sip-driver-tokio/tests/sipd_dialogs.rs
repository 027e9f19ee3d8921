//! Defects interop runs found in both drivers' `sipd` (issue 10), checked on the programs
//! as users run them: the Contact of a call over TCP names TCP, and Record-Route is copied
//! into the 1xx and 2xx (RFC 3261 section 12.1.1). Bounded: read timeouts, and the child
//! is killed at the end of each test.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sip_core::{HeaderName, Limits, MessageView, StreamFrame};

const DEADLINE: Duration = Duration::from_secs(20);

/// The drivers whose `sipd` these tests run.
const PACKAGES: [&str; 2] = ["sip-driver-tokio", "sip-driver-mio"];

/// A running sipd, killed when dropped.
struct Sipd {
    child: Child,
    udp: SocketAddr,
    tcp: SocketAddr,
}

impl Drop for Sipd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `package`'s sipd on free UDP and TCP ports of 127.0.0.1 (different ones).
fn sipd(package: &str) -> Sipd {
    let exe = common::example(package, "sipd", &format!("{package}-sipd-dialogs"));
    let mut child = Command::new(exe)
        .args(["--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
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
    let listening = loop {
        let Ok(line) = rx.recv_timeout(DEADLINE) else {
            let _ = child.kill();
            panic!("{package} sipd did not say where it listens: {lines:?}");
        };
        lines.push(line.clone());
        if let Some(rest) = line.strip_prefix("sipd: listening on ") {
            break rest.to_owned();
        }
    };
    let addr = |prefix: &str| -> SocketAddr {
        let at = listening.find(prefix).expect("both listeners") + prefix.len();
        listening[at..]
            .split([',', ' '])
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    Sipd {
        udp: addr("udp:"),
        tcp: addr("tcp:"),
        child,
    }
}

/// An INVITE with a PCMU offer and `extra` header lines.
fn invite(transport: &str, server: SocketAddr, me: SocketAddr, extra: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:sipd@{server} SIP/2.0\r\nVia: SIP/2.0/{transport} {me};branch=z9hG4bKdlg1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{me}>;tag=a\r\nTo: <sip:sipd@{server}>\r\n\
         Call-ID: sipd-dialogs-{transport}\r\nCSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\n\
         {extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

// RFC 3261 12.1.1: a call that arrives over TCP gets a Contact that names TCP (the TCP
// listener's port, `;transport=tcp`), also when sipd listens on UDP too: otherwise the
// peer's ACK and BYE go over UDP (to a port where, with only TCP, nothing listens).
#[test]
fn rfc3261_12_1_1_sipd_gives_a_call_over_tcp_a_tcp_contact() {
    for package in PACKAGES {
        let sipd = sipd(package);
        assert_ne!(sipd.udp.port(), sipd.tcp.port());
        let mut c = TcpStream::connect(sipd.tcp).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = c.local_addr().unwrap();
        c.write_all(invite("TCP", sipd.tcp, me, "").as_bytes())
            .unwrap();
        let (mut buf, mut chunk, mut contacts) = (Vec::new(), [0u8; 65536], Vec::new());
        'read: loop {
            while let Ok(StreamFrame::Message(v, used)) =
                MessageView::parse_stream(&buf, &Limits::DEFAULT)
            {
                let status = v.status().unwrap_or(0);
                if status > 100 {
                    let contact = v.header(HeaderName::Contact).unwrap_or("").to_owned();
                    contacts.push((status, contact));
                }
                buf.drain(..used);
                if status >= 200 {
                    break 'read;
                }
            }
            let n = c.read(&mut chunk).expect("responses in time");
            assert!(n > 0, "{package}: closed");
            buf.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(contacts.last().map(|c| c.0), Some(200), "{package}");
        for (status, contact) in contacts {
            assert!(
                contact.contains(&format!("@{};transport=tcp", sipd.tcp)),
                "{package}: {status} with Contact {contact:?}"
            );
        }
    }
}

// RFC 3261 12.1.1: the UAS copies every Record-Route of the INVITE, in order, into the
// responses that create the dialog (here the 180 and the 200).
#[test]
fn rfc3261_12_1_1_sipd_copies_record_route_into_the_180_and_the_200() {
    for package in PACKAGES {
        let sipd = sipd(package);
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let me = c.local_addr().unwrap();
        let rr = "Record-Route: <sip:p2.example.com;lr>\r\n\
                  Record-Route: <sip:p1.example.com;lr;ftag=x>\r\n";
        c.send_to(invite("UDP", sipd.udp, me, rr).as_bytes(), sipd.udp)
            .unwrap();
        let mut buf = [0u8; 65536];
        let mut checked = Vec::new();
        while !checked.contains(&200) {
            let n = c.recv(&mut buf).expect("responses in time");
            let v = MessageView::parse(&buf[..n]).unwrap();
            let status = v.status().unwrap();
            if status == 100 {
                continue;
            }
            let routes: Vec<&str> = v.header_all(HeaderName::RecordRoute).collect();
            assert_eq!(
                routes.join(", "),
                "<sip:p2.example.com;lr>, <sip:p1.example.com;lr;ftag=x>",
                "{package}: {status}"
            );
            checked.push(status);
        }
        assert!(checked.contains(&180), "{package}: {checked:?}");
    }
}
