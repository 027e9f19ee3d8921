//! The UAS core (`sip_core::ua`) as the driver's transaction user, on loopback sockets: what
//! `examples/sipd.rs` runs. Bounded like `loopback.rs`: deadlines and read timeouts only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use sip_core::ua::{UaConfig, UserAgent};
use sip_core::{Config, HeaderName, Limits, MessageView, StreamFrame};
use sip_driver_mio::{Driver, ListenSpec, Summary};

const READ_TIMEOUT: Duration = Duration::from_secs(5);

struct Running {
    udp: SocketAddr,
    tcp: SocketAddr,
    shutdown: sip_driver_mio::Shutdown,
    thread: std::thread::JoinHandle<(Summary, sip_core::ua::UaStats)>,
}

fn start(ring: Duration) -> Running {
    let specs: Vec<ListenSpec> = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let mut driver = Driver::bind(&specs, Config::default()).unwrap();
    let udp = driver.local_addrs()[0].addr;
    let tcp = driver.local_addrs()[1].addr;
    let mut config = UaConfig::new(&format!("<sip:sipd@{udp}>"));
    config.ring = ring;
    let shutdown = driver.shutdown_handle();
    let thread = std::thread::spawn(move || {
        let mut ua = UserAgent::new(config, [3; 32]);
        let summary = driver.run_for(&mut ua, Duration::from_secs(20)).unwrap();
        (summary, ua.stats())
    });
    Running {
        udp,
        tcp,
        shutdown,
        thread,
    }
}

impl Running {
    fn stop(self) -> (Summary, sip_core::ua::UaStats) {
        self.shutdown.shutdown();
        self.thread.join().unwrap()
    }
}

fn request(method: &str, transport: &str, server: SocketAddr, me: SocketAddr, n: u32) -> String {
    request_with(method, transport, server, me, n, "", "")
}

fn request_with(
    method: &str,
    transport: &str,
    server: SocketAddr,
    me: SocketAddr,
    n: u32,
    to_tag: &str,
    branch: &str,
) -> String {
    // With its rtpmap, as phones write it: the 2xx retransmissions to a silent client are
    // metered by the INVITE's bytes (`ResponsePolicy::SourceOnly`).
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let (body, ctype) = if method == "INVITE" {
        (sdp, "Content-Type: application/sdp\r\n")
    } else {
        ("", "")
    };
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let branch = if branch.is_empty() {
        format!("z9hG4bK-{method}-{n}")
    } else {
        branch.to_owned()
    };
    format!(
        "{method} sip:sipd@{server} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {me};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{me}>;tag=alice\r\n\
         To: <sip:sipd@{server}>{to_tag}\r\n\
         Call-ID: call@test\r\n\
         CSeq: {n} {method}\r\n\
         Contact: <sip:alice@{me}>\r\n\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn to_tag(response: &[u8]) -> String {
    let view = MessageView::parse(response).unwrap();
    let to = view.header(HeaderName::To).unwrap();
    to.split(";tag=").nth(1).unwrap().to_owned()
}

/// Reads stream messages until one with `status` arrives; returns all read.
fn read_until(stream: &mut TcpStream, status: u16) -> Vec<Vec<u8>> {
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let (mut buf, mut out, mut chunk) = (Vec::new(), Vec::new(), [0u8; 65536]);
    loop {
        while let Ok(StreamFrame::Message(v, used)) =
            MessageView::parse_stream(&buf, &Limits::DEFAULT)
        {
            let done = v.status() == Some(status);
            out.push(v.as_bytes().to_vec());
            buf.drain(..used);
            if done {
                return out;
            }
        }
        let n = stream
            .read(&mut chunk)
            .expect("a response before the timeout");
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn rfc3261_13_3_invite_over_tcp_rings_then_answers_and_bye_ends_the_call() {
    let ring = Duration::from_millis(200);
    let server = start(ring);
    let mut c = TcpStream::connect(server.tcp).unwrap();
    let me = c.local_addr().unwrap();
    let sent = Instant::now();
    c.write_all(request("INVITE", "TCP", server.tcp, me, 1).as_bytes())
        .unwrap();
    let got = read_until(&mut c, 200);
    let codes: Vec<u16> = got
        .iter()
        .map(|m| MessageView::parse(m).unwrap().status().unwrap())
        .collect();
    // The 180 goes at once: no 100 Trying is needed (section 17.2.1).
    assert_eq!(codes, [180, 200]);
    assert!(sent.elapsed() >= ring, "the 200 waits for the ring time");
    let tag = to_tag(&got[1]);
    let ack = request_with("ACK", "TCP", server.tcp, me, 1, &tag, "z9hG4bK-ack");
    c.write_all(ack.as_bytes()).unwrap();
    let bye = request_with("BYE", "TCP", server.tcp, me, 2, &tag, "");
    c.write_all(bye.as_bytes()).unwrap();
    let got = read_until(&mut c, 200);
    let last = MessageView::parse(got.last().unwrap()).unwrap();
    assert_eq!(last.header(HeaderName::CSeq), Some("2 BYE"));
    let (summary, ua) = server.stop();
    assert_eq!((ua.calls_answered, ua.calls_ended), (1, 1));
    assert_eq!(ua.ok_retransmissions, 0, "a reliable transport needs none");
    assert_eq!(summary.endpoint.received, 3);
}

#[test]
fn rfc3261_13_3_1_4_2xx_is_retransmitted_over_udp_until_the_ack() {
    let server = start(Duration::ZERO);
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let me = c.local_addr().unwrap();
    c.send_to(
        request("INVITE", "UDP", server.udp, me, 1).as_bytes(),
        server.udp,
    )
    .unwrap();
    let mut buf = [0u8; 65536];
    let mut oks = Vec::new();
    // 100, 180, 200, then the 200 again after T1 (500 ms) without an ACK.
    while oks.len() < 2 {
        let n = c.recv(&mut buf).expect("responses before the timeout");
        let view = MessageView::parse(&buf[..n]).unwrap();
        if view.status() == Some(200) {
            oks.push((Instant::now(), buf[..n].to_vec()));
        }
    }
    let gap = oks[1].0 - oks[0].0;
    assert!(gap >= Duration::from_millis(400), "T1 between: {gap:?}");
    assert_eq!(oks[0].1, oks[1].1, "the same 2xx");
    let tag = to_tag(&oks[0].1);
    let ack = request_with("ACK", "UDP", server.udp, me, 1, &tag, "z9hG4bK-ack");
    c.send_to(ack.as_bytes(), server.udp).unwrap();
    // After the ACK: no more 200s (wait past the next retransmission, 2*T1 = 1 s).
    c.set_read_timeout(Some(Duration::from_millis(1300)))
        .unwrap();
    assert!(c.recv(&mut buf).is_err(), "a 2xx after the ACK");
    let (_, ua) = server.stop();
    assert_eq!(ua.calls_answered, 1);
    assert!(ua.ok_retransmissions >= 1);
}

#[test]
fn rfc3261_9_2_cancel_gets_200_and_the_ringing_invite_487() {
    let server = start(Duration::from_secs(10));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let me = c.local_addr().unwrap();
    let invite = request_with("INVITE", "UDP", server.udp, me, 1, "", "z9hG4bK-call");
    c.send_to(invite.as_bytes(), server.udp).unwrap();
    let mut buf = [0u8; 65536];
    let mut seen = Vec::new();
    while !seen.contains(&180) {
        let n = c.recv(&mut buf).unwrap();
        seen.push(MessageView::parse(&buf[..n]).unwrap().status().unwrap());
    }
    let cancel = request_with("CANCEL", "UDP", server.udp, me, 1, "", "z9hG4bK-call");
    c.send_to(cancel.as_bytes(), server.udp).unwrap();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let n = c.recv(&mut buf).unwrap();
        let v = MessageView::parse(&buf[..n]).unwrap();
        answers.push((
            v.status().unwrap(),
            v.header(HeaderName::CSeq).unwrap().to_owned(),
        ));
    }
    answers.sort();
    assert_eq!(
        answers,
        [(200, "1 CANCEL".to_owned()), (487, "1 INVITE".to_owned())]
    );
    let (_, ua) = server.stop();
    assert_eq!(ua.calls_cancelled, 1);
}
