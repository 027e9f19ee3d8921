//! The peers of the TLS and DNS tests: a server driver answering 200 on a background thread,
//! and a client transaction user sending OPTIONS and noting what became of them.

#![allow(dead_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sip_core::{
    Config, Endpoint, Event, Method, NextHop, RequestBuilder, ResponseBuilder, SeededRng, Target,
    TransactionUser, Transport,
};
use sip_driver_mio::{Driver, DriverOptions, ListenSpec, Shutdown, Summary, TlsConfig};
use sip_driver_sys::tls::{client_config, server_config};

/// How long any one driver may run: a safety net far beyond what a test needs.
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(20);
/// How long a test waits for something to happen.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
pub(crate) const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A TLS target (sip-core has `Target::udp` and `Target::tcp` only).
pub(crate) fn tls(addr: SocketAddr) -> Target {
    Target {
        transport: Transport::Tls,
        addr,
    }
}

/// Answers every request 200.
pub(crate) struct Answer200(pub(crate) SeededRng);

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
pub(crate) enum Seen {
    Response(u16),
    TransportError,
    Timeout,
}

/// Sends OPTIONS where told, and notes the outcomes; answers requests 200.
pub(crate) struct Client {
    rng: SeededRng,
    pub(crate) seen: Vec<Seen>,
}

impl Client {
    pub(crate) fn new() -> Client {
        Client {
            rng: SeededRng::new([5; 32]),
            seen: Vec::new(),
        }
    }

    /// An OPTIONS for `uri` sent to `hop`.
    pub(crate) fn options(&mut self, endpoint: &mut Endpoint, uri: &str, hop: impl Into<NextHop>) {
        let request = RequestBuilder::new(Method::Options, uri)
            .from("<sip:client@127.0.0.1>")
            .to(&format!("<{uri}>"))
            .build(&mut self.rng)
            .expect("OPTIONS builds");
        endpoint
            .send_request(Instant::now(), &request, hop)
            .expect("OPTIONS sends");
    }

    /// A MESSAGE with `body` (text/plain) for `uri` sent to `hop`.
    pub(crate) fn message(
        &mut self,
        endpoint: &mut Endpoint,
        uri: &str,
        hop: impl Into<NextHop>,
        body: &[u8],
    ) {
        let request = RequestBuilder::new(Method::Message, uri)
            .from("<sip:client@127.0.0.1>")
            .to(&format!("<{uri}>"))
            .body("text/plain", body)
            .build(&mut self.rng)
            .expect("MESSAGE builds");
        endpoint
            .send_request(Instant::now(), &request, hop)
            .expect("MESSAGE sends");
    }
}

impl TransactionUser for Client {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        match event {
            Event::Request { tx, request, .. } => {
                let ok = ResponseBuilder::from_view(&request.view(), 200)
                    .build(&mut self.rng)
                    .expect("200 builds");
                endpoint.send_response(now, tx, &ok).expect("200 sends");
            }
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

/// A server driver on a background thread, answering 200.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    shutdown: Shutdown,
    pub(crate) warnings: Arc<Mutex<Vec<String>>>,
    thread: JoinHandle<io::Result<Summary>>,
}

impl Server {
    /// Serves `spec` (`tls:127.0.0.1:0`, `udp:...`) with the certificate and key `tls`.
    pub(crate) fn start(
        spec: &str,
        tls: Option<(&Path, &Path)>,
        handshake_timeout: Option<Duration>,
    ) -> Server {
        // The client side (unused by a server): the test CA beside the certificate (as
        // `Certs` writes them), so that no test needs the system's roots.
        let tls = tls.map(|(cert, key)| TlsConfig {
            server: Some(server_config(cert, key).expect("server config")),
            client: client_config(Some(&cert.with_file_name("ca.pem"))).expect("client config"),
        });
        let mut options = DriverOptions {
            tls,
            nameservers: Some(Vec::new()),
            ..DriverOptions::default()
        };
        if let Some(t) = handshake_timeout {
            options.tls_handshake_timeout = t;
        }
        let spec: ListenSpec = spec.parse().expect("spec");
        let mut driver = Driver::bind_with(&[spec], Config::default(), options).expect("bind");
        let addr = driver.local_addrs()[0].addr;
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

    pub(crate) fn stop(self) -> Summary {
        self.shutdown.shutdown();
        self.thread.join().expect("server thread").expect("run")
    }
}

/// A client driver (a UDP listener for its Via) verifying servers against `ca`, asking
/// `nameservers`, with its warnings collected.
pub(crate) fn client_driver(
    ca: &Path,
    nameservers: Vec<SocketAddr>,
) -> (Driver, Arc<Mutex<Vec<String>>>) {
    client_driver_on(&["udp:127.0.0.1:0"], ca, nameservers)
}

/// Like [`client_driver`], listening on `specs` (a listener of each address family it sends
/// to, for its Via).
pub(crate) fn client_driver_on(
    specs: &[&str],
    ca: &Path,
    nameservers: Vec<SocketAddr>,
) -> (Driver, Arc<Mutex<Vec<String>>>) {
    let options = DriverOptions {
        tls: Some(TlsConfig {
            server: None,
            client: client_config(Some(ca)).expect("client config"),
        }),
        nameservers: Some(nameservers),
        ..DriverOptions::default()
    };
    let specs: Vec<ListenSpec> = specs.iter().map(|s| s.parse().expect("spec")).collect();
    let mut driver = Driver::bind_with(&specs, Config::default(), options).expect("bind");
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&warnings);
    driver.on_warning(move |w| log.lock().unwrap().push(w.to_owned()));
    (driver, warnings)
}

/// Runs `driver` in short slices until `client` has seen `n` outcomes (or fails after WAIT).
pub(crate) fn run_until_seen(driver: &mut Driver, client: &mut Client, n: usize) {
    run_until_seen_within(driver, client, n, WAIT);
}

/// Runs `driver` in short slices until `client` has seen `n` outcomes (or fails after
/// `wait`).
pub(crate) fn run_until_seen_within(
    driver: &mut Driver,
    client: &mut Client,
    n: usize,
    wait: Duration,
) {
    let deadline = Instant::now() + wait;
    while client.seen.len() < n {
        assert!(Instant::now() < deadline, "only {:?} in time", client.seen);
        driver
            .run_for(client, Duration::from_millis(20))
            .expect("run");
    }
}
