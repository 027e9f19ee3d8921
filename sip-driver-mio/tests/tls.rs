//! TLS on the mio driver (RFC 3261 section 26.2, RFC 5922): two drivers on loopback, one
//! serving a `tls:` listener, the other sending requests through its endpoint to
//! `Target::tls`, with a CA and certificates made at test time. Every run has a deadline and
//! every read a timeout: none can hang.

#[path = "support/certs.rs"]
mod certs;

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use certs::Certs;
use sip_core::{
    Config, Endpoint, Event, Method, RequestBuilder, ResponseBuilder, SeededRng, Target,
    TransactionUser, Transport,
};
use sip_driver_mio::{Driver, DriverOptions, ListenSpec, Shutdown, Summary, TlsConfig};
use sip_driver_sys::tls::{client_config, server_config};

/// How long any one driver may run: a safety net far beyond what a test needs.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// How long a test waits for something to happen.
const WAIT: Duration = Duration::from_secs(10);
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A TLS target (sip-core has `Target::udp` and `Target::tcp` only).
fn tls(addr: SocketAddr) -> Target {
    Target {
        transport: Transport::Tls,
        addr,
    }
}

/// Answers every request 200.
struct Answer200(SeededRng);

impl TransactionUser for Answer200 {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        if let Event::Request { tx, request, .. } = event {
            let ok = ResponseBuilder::from_view(&request.view(), 200)
                .build(&mut self.0)
                .expect("200 builds");
            endpoint.send_response(now, tx, &ok).expect("200 sends");
        }
    }
}

/// What the client's transaction user saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Response(u16),
    TransportError,
    Timeout,
}

/// Sends OPTIONS where told, and notes the outcomes.
struct Client {
    rng: SeededRng,
    seen: Vec<Seen>,
}

impl Client {
    fn new() -> Client {
        Client {
            rng: SeededRng::new([5; 32]),
            seen: Vec::new(),
        }
    }

    fn options(&mut self, endpoint: &mut Endpoint, uri: &str, target: Target) {
        let request = RequestBuilder::new(Method::Options, uri)
            .from("<sip:client@127.0.0.1>")
            .to(&format!("<{uri}>"))
            .build(&mut self.rng)
            .expect("OPTIONS builds");
        endpoint
            .send_request(Instant::now(), &request, target)
            .expect("OPTIONS sends");
    }
}

impl TransactionUser for Client {
    fn handle_event(&mut self, _now: Instant, event: Event, _endpoint: &mut Endpoint) {
        match event {
            Event::Response { response, .. } => {
                let status = response.view().status().unwrap_or(0);
                if status >= 200 {
                    self.seen.push(Seen::Response(status));
                }
            }
            Event::TransportError { .. } => self.seen.push(Seen::TransportError),
            Event::Timeout { .. } => self.seen.push(Seen::Timeout),
            _ => {}
        }
    }
}

/// A TLS server driver on a background thread.
struct Server {
    addr: SocketAddr,
    shutdown: Shutdown,
    warnings: Arc<Mutex<Vec<String>>>,
    thread: JoinHandle<io::Result<Summary>>,
}

impl Server {
    /// Serves `tls:127.0.0.1:0` with `cert`/`key`, answering 200.
    fn start(cert: &Path, key: &Path, handshake_timeout: Option<Duration>) -> Server {
        let server = server_config(cert, key).expect("server config");
        let client = client_config(None).expect("client config");
        let mut options = DriverOptions {
            tls: Some(TlsConfig {
                server: Some(server),
                client,
            }),
            nameservers: Some(Vec::new()),
            ..DriverOptions::default()
        };
        if let Some(t) = handshake_timeout {
            options.tls_handshake_timeout = t;
        }
        let spec: ListenSpec = "tls:127.0.0.1:0".parse().unwrap();
        let mut driver = Driver::bind_with(&[spec], Config::default(), options).expect("bind");
        let addr = driver.local_addr(Transport::Tls).expect("tls listener");
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&warnings);
        driver.on_warning(move |w| log.lock().unwrap().push(w.to_owned()));
        let shutdown = driver.shutdown_handle();
        let thread = std::thread::spawn(move || {
            driver.run_for(&mut Answer200(SeededRng::new([3; 32])), RUN_LIMIT)
        });
        Server {
            addr,
            shutdown,
            warnings,
            thread,
        }
    }

    fn stop(self) -> Summary {
        self.shutdown.shutdown();
        self.thread.join().expect("server thread").expect("run")
    }
}

/// A client driver (a UDP listener for its Via) verifying servers against `ca`, with its
/// warnings collected.
fn client_driver(ca: &Path) -> (Driver, Arc<Mutex<Vec<String>>>) {
    let options = DriverOptions {
        tls: Some(TlsConfig {
            server: None,
            client: client_config(Some(ca)).expect("client config"),
        }),
        nameservers: Some(Vec::new()),
        ..DriverOptions::default()
    };
    let spec: ListenSpec = "udp:127.0.0.1:0".parse().unwrap();
    let mut driver = Driver::bind_with(&[spec], Config::default(), options).expect("bind");
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&warnings);
    driver.on_warning(move |w| log.lock().unwrap().push(w.to_owned()));
    (driver, warnings)
}

/// Runs `driver` in short slices until `client` has seen `n` outcomes (or fails after WAIT).
fn run_until_seen(driver: &mut Driver, client: &mut Client, n: usize) {
    let deadline = Instant::now() + WAIT;
    while client.seen.len() < n {
        assert!(Instant::now() < deadline, "only {:?} in time", client.seen);
        driver
            .run_for(client, Duration::from_millis(20))
            .expect("run");
    }
}

// RFC 3261 26.2 / RFC 5922 7: an OPTIONS sent over TLS to a server whose certificate the
// client's CA signed (for the address it connects to) is answered, and several transactions
// to that peer share the one connection: one handshake on each side.
#[test]
fn rfc5922_one_tls_handshake_serves_several_transactions_to_one_peer() {
    let certs = Certs::new();
    let (cert, key) = certs.leaf("server", &["example.test"], &[LOCALHOST]);
    let server = Server::start(&cert, &key, None);
    let (mut driver, warnings) = client_driver(&certs.ca());
    let mut client = Client::new();
    let uri = format!("sip:{};transport=tls", server.addr);
    for n in 1..=3 {
        client.options(driver.endpoint_mut(), &uri, tls(server.addr));
        run_until_seen(&mut driver, &mut client, n);
    }
    assert_eq!(client.seen, vec![Seen::Response(200); 3]);
    let summary = driver.summary();
    assert_eq!(summary.tls_handshakes, 1, "{summary}");
    assert_eq!(summary.connected, 1, "{summary}");
    assert!(
        warnings.lock().unwrap().is_empty(),
        "{:?}",
        warnings.lock().unwrap()
    );
    let served = server.stop();
    assert_eq!(served.tls_handshakes, 1, "{served}");
    assert_eq!(served.accepted, 1, "{served}");
    assert_eq!(served.endpoint.received, 3, "{served}");
}

// RFC 5922 7.2: a server whose certificate does not name what the client connects to is
// refused: the handshake fails, the transaction gets a transport error, and the driver says
// why ("certificate not valid for ...").
#[test]
fn rfc5922_7_2_a_certificate_for_another_name_is_refused_with_the_reason() {
    let certs = Certs::new();
    let (cert, key) = certs.leaf("wrong", &["wrong.test"], &[]);
    let server = Server::start(&cert, &key, None);
    let (mut driver, warnings) = client_driver(&certs.ca());
    let mut client = Client::new();
    let uri = format!("sip:{};transport=tls", server.addr);
    client.options(driver.endpoint_mut(), &uri, tls(server.addr));
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(client.seen, [Seen::TransportError]);
    let summary = driver.summary();
    assert_eq!(
        (summary.tls_handshakes, summary.connect_failures),
        (0, 1),
        "{summary}"
    );
    let warnings = warnings.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("certificate not valid for 127.0.0.1")),
        "{warnings:?}"
    );
    let served = server.stop();
    assert_eq!(served.tls_handshakes, 0, "{served}");
    assert_eq!(served.endpoint.received, 0, "{served}");
}

// A server the client's CA did not sign is refused the same way (rustls' reason).
#[test]
fn rfc5922_7_a_certificate_from_an_unknown_ca_is_refused() {
    let certs = Certs::new();
    let other = Certs::new();
    let (cert, key) = other.leaf("server", &["example.test"], &[LOCALHOST]);
    let server = Server::start(&cert, &key, None);
    let (mut driver, warnings) = client_driver(&certs.ca());
    let mut client = Client::new();
    let uri = format!("sip:{};transport=tls", server.addr);
    client.options(driver.endpoint_mut(), &uri, tls(server.addr));
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(client.seen, [Seen::TransportError]);
    let warnings = warnings.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&server.addr.to_string()) && w.contains("certificate")),
        "{warnings:?}"
    );
    server.stop();
}

// A peer that connects and never completes the handshake (a slow-loris) is closed after the
// handshake timeout, and never reaches the endpoint.
#[test]
fn a_tls_handshake_that_never_completes_is_closed_after_the_timeout() {
    let certs = Certs::new();
    let (cert, key) = certs.leaf("server", &["example.test"], &[LOCALHOST]);
    let server = Server::start(&cert, &key, Some(Duration::from_millis(200)));
    let mut silent = TcpStream::connect(server.addr).expect("connect");
    silent.set_read_timeout(Some(WAIT)).unwrap();
    // Closed by the server (after at most an alert): end of stream or a reset, long before
    // the read timeout.
    let mut buf = [0u8; 64];
    let mut got = 0;
    loop {
        match silent.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                assert!(
                    !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ),
                    "not closed: {e}"
                );
                break;
            }
        }
        assert!(got < 64, "the server sends more than an alert");
    }
    let warnings = server.warnings.lock().unwrap().clone();
    assert!(
        warnings.iter().any(|w| w.contains("handshake not done")),
        "{warnings:?}"
    );
    let served = server.stop();
    assert_eq!((served.accepted, served.tls_handshakes), (1, 0), "{served}");
    assert_eq!(served.endpoint.received, 0, "{served}");
}

// A tls: listener without a certificate is an error at bind time.
#[test]
fn a_tls_listener_needs_a_server_configuration() {
    let certs = Certs::new();
    let options = DriverOptions {
        tls: Some(TlsConfig {
            server: None,
            client: client_config(Some(&certs.ca())).unwrap(),
        }),
        ..DriverOptions::default()
    };
    let spec: ListenSpec = "tls:127.0.0.1:0".parse().unwrap();
    let err = Driver::bind_with(&[spec], Config::default(), options).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}
