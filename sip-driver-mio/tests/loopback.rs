//! The driver on loopback sockets, against plain `std::net` clients. Every test binds port 0
//! on 127.0.0.1 (or ::1), runs the driver on a background thread with a deadline, and reads
//! with timeouts: none can hang.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sip_core::{
    Config, Endpoint, Event, Limits, MessageView, Method, RequestBuilder, ResponseBuilder,
    SeededRng, StreamFrame, Target, TransactionUser, Transport,
};
use sip_driver_mio::{Driver, ListenSpec, Shutdown, Summary};

/// How long any one driver may run: a safety net far beyond what a test needs.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// How long a client waits for an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers every request 200 (with `body` when set) and reports what it saw.
struct Answer200 {
    rng: SeededRng,
    body: Option<Vec<u8>>,
}

impl Answer200 {
    fn new() -> Answer200 {
        Answer200 {
            rng: SeededRng::new([9; 32]),
            body: None,
        }
    }
}

impl TransactionUser for Answer200 {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        if let Event::Request { tx, request, .. } = event {
            let view = request.view();
            let mut b = ResponseBuilder::from_view(&view, 200);
            if let Some(body) = &self.body {
                b = b.body("text/plain", body);
            }
            let ok = b.build(&mut self.rng).expect("200 builds");
            endpoint.send_response(now, tx, &ok).expect("200 sends");
        }
    }
}

/// A driver running `tu` on a background thread.
struct Running {
    addrs: Vec<ListenSpec>,
    shutdown: Shutdown,
    thread: JoinHandle<io::Result<Summary>>,
}

impl Running {
    fn addr(&self, transport: Transport) -> SocketAddr {
        self.addrs
            .iter()
            .find(|s| s.transport == transport)
            .expect("listener")
            .addr
    }

    /// Shuts down and returns the summary; fails if the run does not return in time.
    fn stop(self) -> Summary {
        self.shutdown.shutdown();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "run() did not return on shutdown"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.thread.join().expect("driver thread").expect("run")
    }
}

fn start<T: TransactionUser + Send + 'static>(specs: &[&str], tu: T) -> Running {
    start_with(specs, tu, |_| {})
}

fn start_with<T: TransactionUser + Send + 'static>(
    specs: &[&str],
    tu: T,
    setup: impl FnOnce(&mut Driver),
) -> Running {
    launch(specs, Config::default(), tu, setup)
}

fn launch<T: TransactionUser + Send + 'static>(
    specs: &[&str],
    config: Config,
    mut tu: T,
    setup: impl FnOnce(&mut Driver),
) -> Running {
    let specs: Vec<ListenSpec> = specs.iter().map(|s| s.parse().expect("spec")).collect();
    let mut driver = Driver::bind(&specs, config).expect("bind");
    setup(&mut driver);
    let addrs = driver.local_addrs().to_vec();
    for (asked, got) in specs.iter().zip(&addrs) {
        assert_eq!(asked.transport, got.transport);
        assert_eq!(asked.addr.ip(), got.addr.ip());
        assert_ne!(got.addr.port(), 0, "the real port is reported");
    }
    let shutdown = driver.shutdown_handle();
    let thread = std::thread::spawn(move || driver.run_for(&mut tu, RUN_LIMIT));
    Running {
        addrs,
        shutdown,
        thread,
    }
}

fn options(transport: &str, server: SocketAddr, client: SocketAddr, n: u32) -> String {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {client};branch=z9hG4bK-test-{n}\r\n\
         From: <sip:alice@{client}>;tag=a{n}\r\n\
         To: <sip:{server}>\r\n\
         Call-ID: call-{n}@test\r\n\
         CSeq: {n} OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// What a stream client reads: whole messages, and pongs.
#[derive(Debug, PartialEq)]
enum Frame {
    Message(Vec<u8>),
    Pong,
}

/// Reads until `n` frames have arrived (or fails after the read timeout).
fn read_frames(stream: &mut TcpStream, n: usize) -> Vec<Frame> {
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let (mut buf, mut frames, mut chunk) = (Vec::new(), Vec::new(), vec![0u8; 65536]);
    let limits = Limits {
        max_message_size: 1 << 20,
        ..Limits::DEFAULT
    };
    while frames.len() < n {
        loop {
            match MessageView::parse_stream(&buf, &limits).expect("frames") {
                StreamFrame::Message(view, used) => {
                    frames.push(Frame::Message(view.as_bytes().to_vec()));
                    buf.drain(..used);
                }
                StreamFrame::Pong => {
                    frames.push(Frame::Pong);
                    buf.drain(..2);
                }
                StreamFrame::Ping => panic!("the driver sent a ping"),
                StreamFrame::Partial => break,
            }
        }
        if frames.len() >= n {
            break;
        }
        let got = stream.read(&mut chunk).expect("read before the timeout");
        assert!(got > 0, "connection closed after {} frames", frames.len());
        buf.extend_from_slice(&chunk[..got]);
    }
    frames
}

fn status(frame: &Frame) -> Option<u16> {
    match frame {
        Frame::Message(m) => MessageView::parse(m).ok()?.status(),
        Frame::Pong => None,
    }
}

fn cseq(frame: &Frame) -> String {
    match frame {
        Frame::Message(m) => MessageView::parse(m)
            .unwrap()
            .header(sip_core::HeaderName::CSeq)
            .unwrap()
            .to_owned(),
        Frame::Pong => String::new(),
    }
}

#[test]
fn rfc3261_18_2_2_udp_response_goes_to_the_request_source() {
    let server = start(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], Answer200::new());
    let to = server.addr(Transport::Udp);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let req = options("UDP", to, client.local_addr().unwrap(), 1);
    client.send_to(req.as_bytes(), to).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, from) = client.recv_from(&mut buf).expect("a response");
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"),
        "{:?}",
        &buf[..n]
    );
    assert_eq!(
        from, to,
        "RFC 3581 section 4: sent from where the request arrived"
    );
    let summary = server.stop();
    assert_eq!(summary.endpoint.received, 1);
    assert_eq!((summary.datagrams_in, summary.datagrams_out), (1, 1));
}

#[test]
fn rfc3581_4_each_udp_address_answers_from_itself() {
    // Two UDP listeners (127.0.0.2 is loopback too on Linux; skip where it is not).
    if UdpSocket::bind("127.0.0.2:0").is_err() {
        eprintln!("skipped: 127.0.0.2 cannot be bound here");
        return;
    }
    let server = start(&["udp:127.0.0.1:0", "udp:127.0.0.2:0"], Answer200::new());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    for (i, spec) in server.addrs.iter().enumerate() {
        let req = options("UDP", spec.addr, client.local_addr().unwrap(), i as u32 + 1);
        client.send_to(req.as_bytes(), spec.addr).unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, from) = client.recv_from(&mut buf).expect("a response");
        assert!(buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"));
        assert_eq!(from, spec.addr);
    }
    server.stop();
}

#[test]
fn rfc3261_18_2_2_tcp_response_on_the_request_connection() {
    let server = start(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], Answer200::new());
    let to = server.addr(Transport::Tcp);
    let mut client = TcpStream::connect(to).unwrap();
    let req = options("TCP", to, client.local_addr().unwrap(), 1);
    client.write_all(req.as_bytes()).unwrap();
    let frames = read_frames(&mut client, 1);
    assert_eq!(status(&frames[0]), Some(200));
    // The same connection carries the next transaction too.
    let req = options("TCP", to, client.local_addr().unwrap(), 2);
    client.write_all(req.as_bytes()).unwrap();
    let frames = read_frames(&mut client, 1);
    assert_eq!(cseq(&frames[0]), "2 OPTIONS");
    let summary = server.stop();
    assert_eq!(summary.accepted, 1);
    assert_eq!(summary.endpoint.received, 2);
}

#[test]
fn rfc3261_18_3_two_messages_in_one_write_are_both_answered() {
    let server = start(&["tcp:127.0.0.1:0"], Answer200::new());
    let to = server.addr(Transport::Tcp);
    let mut client = TcpStream::connect(to).unwrap();
    let me = client.local_addr().unwrap();
    let both = options("TCP", to, me, 1) + &options("TCP", to, me, 2);
    client.write_all(both.as_bytes()).unwrap();
    let frames = read_frames(&mut client, 2);
    assert_eq!(status(&frames[0]), Some(200));
    assert_eq!(status(&frames[1]), Some(200));
    assert_eq!(cseq(&frames[0]), "1 OPTIONS");
    assert_eq!(cseq(&frames[1]), "2 OPTIONS");
    server.stop();
}

#[test]
fn rfc3261_18_3_a_message_split_across_writes_is_answered_once_whole() {
    let server = start(&["tcp:127.0.0.1:0"], Answer200::new());
    let to = server.addr(Transport::Tcp);
    let mut client = TcpStream::connect(to).unwrap();
    client.set_nodelay(true).unwrap();
    let req = options("TCP", to, client.local_addr().unwrap(), 1);
    let (a, b) = req.as_bytes().split_at(req.len() / 2);
    client.write_all(a).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    client.write_all(b).unwrap();
    let frames = read_frames(&mut client, 1);
    assert_eq!(status(&frames[0]), Some(200));
    assert_eq!(server.stop().endpoint.received, 1);
}

#[test]
fn rfc5626_3_5_1_crlfcrlf_ping_gets_a_crlf_pong() {
    let server = start(&["tcp:127.0.0.1:0"], Answer200::new());
    let to = server.addr(Transport::Tcp);
    let mut client = TcpStream::connect(to).unwrap();
    client.write_all(b"\r\n\r\n").unwrap();
    assert_eq!(read_frames(&mut client, 1), vec![Frame::Pong]);
    // The connection still carries requests afterwards.
    let req = options("TCP", to, client.local_addr().unwrap(), 1);
    client.write_all(req.as_bytes()).unwrap();
    assert_eq!(status(&read_frames(&mut client, 1)[0]), Some(200));
    assert_eq!(server.stop().endpoint.pongs, 1);
}

#[test]
fn rfc5626_3_5_1_pong_queued_before_a_close_is_written_first() {
    // A ping, then a request that cannot be framed (no Content-Length, RFC 3261 18.3), in
    // one write: the endpoint queues the pong, then the Close, and the driver drains
    // transmits before I/O requests (the order `Endpoint` documents).
    let server = start(&["tcp:127.0.0.1:0"], Answer200::new());
    let to = server.addr(Transport::Tcp);
    let mut client = TcpStream::connect(to).unwrap();
    client.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    client
        .write_all(b"\r\n\r\nOPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKq\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"\r\n", "the pong, then the end of the stream");
    assert_eq!(server.stop().endpoint.malformed, 1);
}

#[test]
fn ipv6_udp_on_loopback_gets_200() {
    let Ok(client) = UdpSocket::bind("[::1]:0") else {
        eprintln!("skipped: ::1 cannot be bound here");
        return;
    };
    let server = start(&["udp:127.0.0.1:0", "udp:[::1]:0"], Answer200::new());
    let to = server.addrs[1].addr;
    assert!(to.is_ipv6());
    client.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let req = options("UDP", to, client.local_addr().unwrap(), 1);
    client.send_to(req.as_bytes(), to).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, from) = client.recv_from(&mut buf).expect("a response");
    assert!(buf[..n].starts_with(b"SIP/2.0 200 OK\r\n"));
    assert_eq!(from, to);
    server.stop();
}

#[test]
fn ipv6_tcp_on_loopback_gets_200() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: ::1 cannot be bound here");
        return;
    }
    let server = start(&["tcp:[::1]:0"], Answer200::new());
    let to = server.addr(Transport::Tcp);
    let mut client = TcpStream::connect(to).unwrap();
    let req = options("TCP", to, client.local_addr().unwrap(), 1);
    client.write_all(req.as_bytes()).unwrap();
    assert_eq!(status(&read_frames(&mut client, 1)[0]), Some(200));
    server.stop();
}

#[test]
fn shutdown_makes_run_return() {
    let mut driver =
        Driver::bind(&["udp:127.0.0.1:0".parse().unwrap()], Config::default()).unwrap();
    let shutdown = driver.shutdown_handle();
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        // `run`, not `run_for`: only the shutdown can end it.
        let summary = driver.run(&mut Answer200::new());
        let _ = done_tx.send(());
        summary
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(done_rx.try_recv().is_err(), "run() returned on its own");
    let asked = Instant::now();
    shutdown.shutdown();
    done_rx
        .recv_timeout(Duration::from_secs(2))
        .expect("run() returned after shutdown");
    assert!(asked.elapsed() < Duration::from_secs(1));
    let summary = thread.join().unwrap().unwrap();
    assert_eq!(summary.endpoint.received, 0);
}

#[test]
fn shutdown_flag_alone_is_seen_within_max_wait() {
    // What a signal handler can do: store the flag, without waking the loop.
    let mut driver =
        Driver::bind(&["udp:127.0.0.1:0".parse().unwrap()], Config::default()).unwrap();
    let flag = driver.shutdown_handle().flag();
    let thread = std::thread::spawn(move || driver.run(&mut Answer200::new()));
    std::thread::sleep(Duration::from_millis(50));
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + sip_driver_mio::MAX_WAIT + Duration::from_secs(2);
    while !thread.is_finished() {
        assert!(Instant::now() < deadline, "run() did not see the flag");
        std::thread::sleep(Duration::from_millis(10));
    }
    thread.join().unwrap().unwrap();
}

/// Sends one OPTIONS to `target` once the run starts, and reports every event.
struct Caller {
    target: Target,
    at: Option<Instant>,
    rng: SeededRng,
    events: mpsc::Sender<Event>,
}

impl Caller {
    fn new(target: Target, events: mpsc::Sender<Event>) -> Caller {
        Caller {
            target,
            at: Some(Instant::now()),
            rng: SeededRng::new([5; 32]),
            events,
        }
    }
}

impl TransactionUser for Caller {
    fn handle_event(&mut self, _now: Instant, event: Event, _endpoint: &mut Endpoint) {
        let _ = self.events.send(event);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.at
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        if self.at.is_some_and(|at| at <= now) {
            self.at = None;
            let uri = format!("sip:{}", self.target.addr);
            let req = RequestBuilder::new(Method::Options, &uri)
                .from("<sip:caller@127.0.0.1>")
                .to(&format!("<{uri}>"))
                .build(&mut self.rng)
                .unwrap();
            endpoint.send_request(now, &req, self.target).unwrap();
        }
    }
}

#[test]
fn rfc3261_18_1_1_outbound_request_connects_and_is_delivered_over_tcp() {
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let (events_tx, events) = mpsc::channel();
    let tu = Caller::new(Target::tcp(peer.local_addr().unwrap()), events_tx);
    let server = start(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], tu);
    let our_tcp = server.addr(Transport::Tcp);

    // The driver connects to us; accept with a deadline.
    peer.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut conn = loop {
        match peer.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the driver never connected");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    let frames = read_frames(&mut conn, 1);
    let Frame::Message(request) = &frames[0] else {
        panic!("expected a request")
    };
    let view = MessageView::parse(request).unwrap();
    assert_eq!(view.method(), Some(Method::Options));
    let via = view.header(sip_core::HeaderName::Via).unwrap();
    assert!(
        via.starts_with(&format!("SIP/2.0/TCP {our_tcp};branch=z9hG4bK")),
        "the endpoint's Via names the TCP listener: {via}"
    );

    // Answer on the same connection: the client transaction gets it.
    let ok = ResponseBuilder::from_view(&view, 200)
        .build(&mut SeededRng::new([1; 32]))
        .unwrap();
    conn.write_all(ok.as_bytes()).unwrap();
    let event = events.recv_timeout(READ_TIMEOUT).expect("an event");
    match event {
        Event::Response { response, .. } => assert_eq!(response.view().status(), Some(200)),
        other => panic!("expected the 200, got {other:?}"),
    }

    // The peer closes: the driver reports it.
    drop(conn);
    // Give the loop time to see the close before the shutdown.
    std::thread::sleep(Duration::from_millis(300));
    let summary = server.stop();
    assert_eq!(summary.connected, 1);
    assert_eq!(summary.closed, 1);
}

#[test]
fn rfc3581_4_outbound_udp_request_leaves_from_the_listener_and_gets_its_response() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let (events_tx, events) = mpsc::channel();
    let tu = Caller::new(Target::udp(peer.local_addr().unwrap()), events_tx);
    let server = start(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], tu);
    let our_udp = server.addr(Transport::Udp);
    let mut buf = vec![0u8; 65536];
    let (n, from) = peer.recv_from(&mut buf).expect("the request");
    assert_eq!(from, our_udp, "sent from the UDP listener's socket");
    let view = MessageView::parse(&buf[..n]).unwrap();
    let via = view.header(sip_core::HeaderName::Via).unwrap();
    assert!(via.starts_with(&format!("SIP/2.0/UDP {our_udp};")), "{via}");
    let ok = ResponseBuilder::from_view(&view, 200)
        .build(&mut SeededRng::new([1; 32]))
        .unwrap();
    peer.send_to(ok.as_bytes(), from).unwrap();
    match events.recv_timeout(READ_TIMEOUT).expect("an event") {
        Event::Response { response, .. } => assert_eq!(response.view().status(), Some(200)),
        other => panic!("expected the 200, got {other:?}"),
    }
    server.stop();
}

#[test]
fn rfc3261_18_idle_connection_is_closed_by_the_endpoint() {
    // The core asks for the close (IoRequest::Close) once the flow has been idle.
    let config = Config {
        flow_idle_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let server = launch(&["tcp:127.0.0.1:0"], config, Answer200::new(), |_| {});
    let to = server.addr(Transport::Tcp);
    let mut client = TcpStream::connect(to).unwrap();
    let req = options("TCP", to, client.local_addr().unwrap(), 1);
    client.write_all(req.as_bytes()).unwrap();
    assert_eq!(status(&read_frames(&mut client, 1)[0]), Some(200));
    let waited = Instant::now();
    let mut rest = [0u8; 16];
    match client.read(&mut rest) {
        Ok(0) => {}
        other => panic!("expected the driver to close the connection, got {other:?}"),
    }
    assert!(waited.elapsed() < READ_TIMEOUT);
    let summary = server.stop();
    assert_eq!(
        summary.closed, 0,
        "a close the endpoint asked for is not reported back"
    );
}

#[test]
fn rfc3261_17_1_4_refused_connection_is_a_transport_error() {
    // A port nobody listens on: bind one, then free it.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (events_tx, events) = mpsc::channel();
    let server = start(
        &["tcp:127.0.0.1:0"],
        Caller::new(Target::tcp(free), events_tx),
    );
    let event = events.recv_timeout(READ_TIMEOUT).expect("an event");
    assert!(
        matches!(event, Event::TransportError { .. }),
        "expected a transport error, got {event:?}"
    );
    let summary = server.stop();
    assert_eq!(summary.connect_failures, 1);
}

// Linux and Android report ICMP errors on unconnected UDP sockets (IP_RECVERR); elsewhere
// the transaction ends by timer F as before.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn rfc3261_18_4_udp_request_to_a_closed_port_is_a_transport_error() {
    // RFC 3261 18.4 and 17.1.4: the ICMP port unreachable ends the client transaction with a
    // transport error, long before timer F (32 s; the wait here is bounded by 5 s).
    let free = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (events_tx, events) = mpsc::channel();
    let server = start(
        &["udp:127.0.0.1:0"],
        Caller::new(Target::udp(free), events_tx),
    );
    let event = events.recv_timeout(READ_TIMEOUT).expect("an event");
    assert!(
        matches!(event, Event::TransportError { .. }),
        "expected a transport error, got {event:?}"
    );
    server.stop();
}

// Linux refuses a datagram to port 0 at once (EINVAL); the driver's handling of a refused
// send is portable, the refusal itself is what is checked on Linux.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn rfc3261_18_4_udp_send_the_system_refuses_is_a_transport_error() {
    // RFC 3261 18.4 and 17.1.4: a send that fails for good ends the transaction.
    let (events_tx, events) = mpsc::channel();
    let server = start(
        &["udp:127.0.0.1:0"],
        Caller::new(Target::udp("127.0.0.1:0".parse().unwrap()), events_tx),
    );
    let event = events.recv_timeout(READ_TIMEOUT).expect("an event");
    assert!(
        matches!(event, Event::TransportError { .. }),
        "expected a transport error, got {event:?}"
    );
    let summary = server.stop();
    assert_eq!(summary.send_errors, 1);
}

#[test]
fn peer_close_is_reported_and_the_flow_forgotten() {
    let server = start(&["tcp:127.0.0.1:0"], Answer200::new());
    let to = server.addr(Transport::Tcp);
    for n in 1..=3 {
        let mut client = TcpStream::connect(to).unwrap();
        let req = options("TCP", to, client.local_addr().unwrap(), n);
        client.write_all(req.as_bytes()).unwrap();
        assert_eq!(status(&read_frames(&mut client, 1)[0]), Some(200));
    }
    // Give the loop time to see the close before the shutdown.
    std::thread::sleep(Duration::from_millis(300));
    let summary = server.stop();
    assert_eq!(summary.accepted, 3);
    assert_eq!(summary.closed, 3);
}

#[test]
fn tcp_writes_the_socket_cannot_take_are_buffered_and_delivered_in_order() {
    // 200 responses of 50 kB each (10 MB) to a client that reads only after a pause: far more
    // than loopback socket buffers hold, so the driver must buffer and finish on writability.
    const COUNT: u32 = 200;
    let tu = Answer200 {
        body: Some(vec![b'x'; 50_000]),
        ..Answer200::new()
    };
    let server = start_with(&["tcp:127.0.0.1:0"], tu, |d| {
        d.set_write_buffer_limit(16 << 20)
    });
    let to = server.addr(Transport::Tcp);
    let mut client = TcpStream::connect(to).unwrap();
    let me = client.local_addr().unwrap();
    let all: String = (1..=COUNT).map(|n| options("TCP", to, me, n)).collect();
    client.write_all(all.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let frames = read_frames(&mut client, COUNT as usize);
    for (n, f) in (1..=COUNT).zip(&frames) {
        assert_eq!(status(f), Some(200));
        assert_eq!(cseq(f), format!("{n} OPTIONS"));
        let Frame::Message(m) = f else { unreachable!() };
        assert_eq!(MessageView::parse(m).unwrap().body().len(), 50_000);
    }
    let summary = server.stop();
    assert!(summary.write_blocked > 0, "{summary:?}");
    assert_eq!(summary.send_errors, 0);
    assert_eq!(summary.write_overflows, 0);
}

#[test]
fn a_peer_that_does_not_read_is_dropped_past_the_write_buffer_limit() {
    // The same 10 MB of responses, but only 64 kB may wait beyond the socket buffer.
    let tu = Answer200 {
        body: Some(vec![b'x'; 50_000]),
        ..Answer200::new()
    };
    let server = start_with(&["tcp:127.0.0.1:0"], tu, |d| {
        d.set_write_buffer_limit(64 << 10)
    });
    let to = server.addr(Transport::Tcp);
    let mut client = TcpStream::connect(to).unwrap();
    let me = client.local_addr().unwrap();
    let all: String = (1..=200).map(|n| options("TCP", to, me, n)).collect();
    client.write_all(all.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // What arrived before the drop ends in EOF (or a reset), not in 200 responses.
    client.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut total = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 200 * 50_000, "read {total} bytes");
    let summary = server.stop();
    assert_eq!(summary.write_overflows, 1, "{summary:?}");
    assert_eq!(summary.closed, 1);
}

#[test]
fn a_udp_burst_beyond_one_read_budget_is_all_answered() {
    // More datagrams than one turn reads (64), queued before the loop starts: the rest are
    // read on the next turn, without waiting for a new readiness event (there is none).
    const COUNT: u32 = 100;
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let me = client.local_addr().unwrap();
    let server = start_with(&["udp:127.0.0.1:0"], Answer200::new(), |d| {
        let to = d.local_addr(Transport::Udp).unwrap();
        for n in 1..=COUNT {
            client
                .send_to(options("UDP", to, me, n).as_bytes(), to)
                .unwrap();
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    let mut buf = vec![0u8; 65536];
    while seen.len() < COUNT as usize {
        let n = client
            .recv(&mut buf)
            .expect("every response before the timeout");
        let view = MessageView::parse(&buf[..n]).unwrap();
        assert_eq!(view.status(), Some(200));
        seen.insert(view.header(sip_core::HeaderName::CSeq).unwrap().to_owned());
    }
    assert_eq!(server.stop().datagrams_in, u64::from(COUNT));
}

// A tls: listener needs a certificate: without a server configuration, bind fails.
#[test]
fn tls_listener_without_a_certificate_is_refused() {
    let err = Driver::bind(&["tls:127.0.0.1:0".parse().unwrap()], Config::default()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[test]
fn driver_is_send() {
    fn is_send<T: Send>() {}
    is_send::<Driver>();
    is_send::<Shutdown>();
}
