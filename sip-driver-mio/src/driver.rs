//! The event loop: sockets and one timer around a [`sip_core::Endpoint`] and a
//! [`TransactionUser`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use sip_core::{
    Config, Endpoint, FlowEvent, FlowId, IoRequest, Listener, Stats, TransactionUser, Transmit,
    Transport,
};

use crate::dns::{Dns, DNS_V4, DNS_V6};
use crate::tls::{reason, PendingHandshakes, Tls, DEFAULT_TLS_HANDSHAKE_TIMEOUT};
use crate::ListenSpec;
use sip_driver_sys::tls::TlsConfig;
use sip_driver_sys::{icmp, os_seed};

/// The longest the loop sleeps without looking at the shutdown flag, so a flag set where no
/// [`Waker`] can be called (a signal handler, see [`Shutdown::flag`]) is seen within this.
pub const MAX_WAIT: Duration = Duration::from_millis(200);

/// The default of [`Driver::set_write_buffer_limit`]: 1 MiB, sixteen of the largest messages
/// the core accepts, on top of what the kernel's socket buffer holds.
pub const DEFAULT_WRITE_BUFFER_LIMIT: usize = 1 << 20;

const WAKER: Token = Token(0);
/// The largest UDP payload.
const DATAGRAM_SIZE: usize = 65_535;
/// Stream reads go into a buffer this large.
const READ_SIZE: usize = 64 * 1024;
/// Reads (datagrams, stream chunks, accepts) one socket gets per turn before the others get
/// theirs; a socket with more to read is visited again on the next turn without waiting.
const READ_BUDGET: usize = 64;

/// A transmit observer: see [`Driver::trace_transmits`].
type Tracer = Box<dyn FnMut(&Transmit, &[u8]) + Send>;

/// A warning observer: see [`Driver::on_warning`].
type Warner = Box<dyn FnMut(&str) + Send>;

/// What [`Driver::bind_with`] takes besides the listeners and the endpoint's configuration.
///
/// ```
/// use std::time::Duration;
/// use sip_driver_mio::DriverOptions;
///
/// let options = DriverOptions {
///     nameservers: Some(vec!["127.0.0.1:5353".parse().unwrap()]),
///     tls_handshake_timeout: Duration::from_secs(5),
///     ..DriverOptions::default()
/// };
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct DriverOptions {
    /// TLS: the server side for `tls:` listeners (required by them), the client side for
    /// the connections the endpoint opens with [`Transport::Tls`]. None: no `tls:`
    /// listener, and TLS connections verify servers against the system's roots
    /// ([`sip_driver_sys::tls::client_config`]`(None)`, built at the first TLS connect).
    pub tls: Option<TlsConfig>,
    /// The nameservers asked for the endpoint's DNS questions. None: those of the system
    /// ([`sip_driver_sys::dns::system_nameservers`], `/etc/resolv.conf`). An empty list (or
    /// a system without any) makes every question fail at once.
    pub nameservers: Option<Vec<SocketAddr>>,
    /// How long a TLS handshake may take (for an outbound connection, from the connect on)
    /// before the socket is closed. Default [`DEFAULT_TLS_HANDSHAKE_TIMEOUT`].
    pub tls_handshake_timeout: Duration,
}

impl Default for DriverOptions {
    fn default() -> DriverOptions {
        DriverOptions {
            tls: None,
            nameservers: None,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
        }
    }
}

impl fmt::Debug for DriverOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriverOptions")
            .field("tls_server", &self.tls.as_ref().map(|t| t.server.is_some()))
            .field("nameservers", &self.nameservers)
            .field("tls_handshake_timeout", &self.tls_handshake_timeout)
            .finish()
    }
}

/// Makes [`Driver::run`] return. Cheap to clone and usable from any thread.
#[derive(Debug, Clone)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Shutdown {
    /// Asks the run loop to return, and wakes it.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // A failed wake still leaves the flag, seen within MAX_WAIT.
        let _ = self.waker.wake();
    }

    /// Has shutdown been asked for?
    pub fn is_shutdown(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag itself, for code that can only store a boolean: a signal handler, as with
    /// `signal_hook::flag::register(SIGTERM, shutdown.flag())`. Setting it makes the loop
    /// return within [`MAX_WAIT`].
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }
}

/// What a run did: the endpoint's counters and the driver's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// The endpoint's counters at the end of the run.
    pub endpoint: Stats,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams sent.
    pub datagrams_out: u64,
    /// Stream connections accepted.
    pub accepted: u64,
    /// Outbound stream connections established.
    pub connected: u64,
    /// Outbound stream connections that failed (or used a transport the driver lacks).
    pub connect_failures: u64,
    /// Stream connections that the peer closed or that broke.
    pub closed: u64,
    /// Stream writes that could not complete at once and were buffered (partial writes).
    pub write_blocked: u64,
    /// Stream connections dropped because the peer did not read what was buffered for it
    /// (more than the write buffer limit); also counted in `closed`.
    pub write_overflows: u64,
    /// Messages that could not be sent (no socket for the family, a send error, a full
    /// socket buffer for a datagram, a flow without a connection).
    pub send_errors: u64,
    /// TLS handshakes completed (accepted and outbound connections).
    pub tls_handshakes: u64,
    /// DNS questions asked for the endpoint (RFC 3263 lookups).
    pub dns_queries: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.endpoint;
        write!(
            f,
            "received {} (malformed {}, dropped {}, absorbed {}), transactions {}, \
             retransmissions {}, stateless responses {}, pongs {}; datagrams in {} out {}; \
             connections accepted {} connected {} failed {} closed {}; write stalls {} \
             overflows {}; send errors {}; tls handshakes {}; dns queries {}",
            e.received,
            e.malformed,
            e.dropped,
            e.absorbed,
            e.transactions,
            e.retransmissions,
            e.stateless_responses,
            e.pongs,
            self.datagrams_in,
            self.datagrams_out,
            self.accepted,
            self.connected,
            self.connect_failures,
            self.closed,
            self.write_blocked,
            self.write_overflows,
            self.send_errors,
            self.tls_handshakes,
            self.dns_queries,
        )
    }
}

struct Udp {
    socket: UdpSocket,
    local: SocketAddr,
}

struct Conn {
    stream: TcpStream,
    /// The endpoint's name of the connection; None for an accepted TLS connection until
    /// its handshake is done.
    flow: Option<FlowId>,
    /// A non-blocking connect in progress.
    connecting: bool,
    /// Bytes waiting for the socket: `out[out_at..]`.
    out: Vec<u8>,
    out_at: usize,
    /// Registered for writability.
    want_write: bool,
    /// A write failed or overflowed: nothing more is written to it, and it is closed once
    /// the transmits are drained.
    broken: bool,
    /// TLS connections: rustls' state (which buffers the records; `out` is unused).
    tls: Option<Box<Tls>>,
}

impl Conn {
    fn pending(&self) -> &[u8] {
        &self.out[self.out_at..]
    }
}

/// What a token names.
enum Slot {
    Waker,
    Udp(usize),
    TcpListener(usize),
    Dns,
    Conn,
}

/// A TCP or TLS listener.
struct StreamListener {
    listener: TcpListener,
    local: SocketAddr,
    transport: Transport,
}

/// A SIP endpoint on mio sockets: a single-threaded event loop. See the crate docs.
pub struct Driver {
    poll: Poll,
    events: Events,
    endpoint: Endpoint,
    bound: Vec<ListenSpec>,
    udp: Vec<Udp>,
    tcp: Vec<StreamListener>,
    conns: HashMap<Token, Conn>,
    by_flow: HashMap<FlowId, Token>,
    next_token: usize,
    shutdown: Shutdown,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Connections a write broke, closed once the transmits are drained.
    broken: Vec<Token>,
    /// Sockets that used up their read budget and may have more to read.
    ready: Vec<Token>,
    write_buffer_limit: usize,
    summary: Summary,
    tracer: Option<Tracer>,
    warner: Option<Warner>,
    /// TLS configurations: the options' (or, for clients, the system roots' once asked).
    tls: Option<TlsConfig>,
    tls_handshake_timeout: Duration,
    /// Accepted TLS connections in their handshake (bounded: [`crate::MAX_TLS_HANDSHAKES`],
    /// [`crate::MAX_TLS_HANDSHAKES_PER_SOURCE`]).
    tls_pending: PendingHandshakes,
    /// When each TLS handshake must be done by, in the order they began (one timeout for
    /// all, so the front is the earliest).
    handshake_deadlines: VecDeque<(Instant, Token)>,
    dns: Dns,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("listening", &self.bound)
            .field("connections", &self.conns.len())
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Binds every listener, then creates the endpoint with `config` whose
    /// [`Config::listeners`] become the bound addresses (real ports where port 0 was asked),
    /// in the order given. A listener already in `config` with the same transport and
    /// requested address lends its `sent_by`. The seed comes from [`os_seed`].
    ///
    /// Fails on the first address that cannot be bound, and for a `tls:` listener (which
    /// needs a certificate: [`Driver::bind_with`]). DNS uses the system's nameservers and
    /// TLS connections the system's roots, as with [`DriverOptions::default`].
    pub fn bind(listeners: &[ListenSpec], config: Config) -> io::Result<Driver> {
        Driver::bind_with(listeners, config, DriverOptions::default())
    }

    /// Like [`Driver::bind`], with TLS configurations and nameservers: `tls:` listeners
    /// take `options.tls`'s server configuration (an [`io::ErrorKind::InvalidInput`] error
    /// without one).
    pub fn bind_with(
        listeners: &[ListenSpec],
        mut config: Config,
        options: DriverOptions,
    ) -> io::Result<Driver> {
        let server_tls = options.tls.as_ref().and_then(|t| t.server.clone());
        if server_tls.is_none() && listeners.iter().any(|s| s.transport == Transport::Tls) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a tls: listener needs a certificate and key (a TLS server configuration)",
            ));
        }
        let (nameservers, no_dns) = match options.nameservers {
            Some(list) => (list, "no nameserver given: DNS lookups fail".to_owned()),
            None => match sip_driver_sys::dns::system_nameservers() {
                Ok(list) => (
                    list,
                    "no nameserver in the system's configuration".to_owned(),
                ),
                Err(e) => (Vec::new(), format!("no nameserver: {e}: DNS lookups fail")),
            },
        };
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        // Tokens: the waker, then the UDP sockets, then the TCP listeners (see `slot`),
        // each group in the order given.
        let udp_count = listeners
            .iter()
            .filter(|s| s.transport == Transport::Udp)
            .count();
        let (mut udp_token, mut tcp_token) = (1, 1 + udp_count);
        let (mut bound, mut udp, mut tcp, mut config_listeners) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for spec in listeners {
            let local = match spec.transport {
                Transport::Udp => {
                    let mut socket = UdpSocket::bind(spec.addr)?;
                    enlarge_udp_buffers(&socket);
                    let local = socket.local_addr()?;
                    // ICMP errors for its datagrams, where the system reports them.
                    let _ = icmp::enable(&socket, local);
                    poll.registry()
                        .register(&mut socket, Token(udp_token), Interest::READABLE)?;
                    udp_token += 1;
                    udp.push(Udp { socket, local });
                    local
                }
                Transport::Tcp | Transport::Tls => {
                    let mut listener = TcpListener::bind(spec.addr)?;
                    let local = listener.local_addr()?;
                    poll.registry().register(
                        &mut listener,
                        Token(tcp_token),
                        Interest::READABLE,
                    )?;
                    tcp_token += 1;
                    tcp.push(StreamListener {
                        listener,
                        local,
                        transport: spec.transport,
                    });
                    local
                }
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("{other:?} listeners are not supported by this driver"),
                    ))
                }
            };
            let sent_by = config
                .listeners
                .iter()
                .find(|l| l.transport == spec.transport && l.addr == spec.addr)
                .and_then(|l| l.sent_by.clone());
            config_listeners.push(Listener {
                sent_by,
                ..Listener::new(spec.transport, local)
            });
            bound.push(ListenSpec::new(spec.transport, local));
        }
        config.listeners = config_listeners;
        let endpoint = Endpoint::new(config, os_seed()?);
        Ok(Driver {
            poll,
            events: Events::with_capacity(256),
            endpoint,
            bound,
            udp,
            tcp,
            conns: HashMap::new(),
            by_flow: HashMap::new(),
            next_token: tcp_token,
            shutdown: Shutdown {
                flag: Arc::new(AtomicBool::new(false)),
                waker,
            },
            rx: vec![0; DATAGRAM_SIZE.max(READ_SIZE)],
            tx: Vec::with_capacity(DATAGRAM_SIZE),
            broken: Vec::new(),
            ready: Vec::new(),
            write_buffer_limit: DEFAULT_WRITE_BUFFER_LIMIT,
            summary: Summary::default(),
            tracer: None,
            warner: None,
            tls: options.tls,
            tls_handshake_timeout: options.tls_handshake_timeout,
            tls_pending: PendingHandshakes::default(),
            handshake_deadlines: VecDeque::new(),
            dns: Dns::new(nameservers, os_seed()?, no_dns),
        })
    }

    /// The bound listeners, with their real addresses, in the order given to
    /// [`Driver::bind`].
    pub fn local_addrs(&self) -> &[ListenSpec] {
        &self.bound
    }

    /// The first bound address of `transport`.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.bound
            .iter()
            .find(|s| s.transport == transport)
            .map(|s| s.addr)
    }

    /// A handle that makes [`Driver::run`] return, from any thread.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The endpoint, to look at.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The endpoint, to send requests before or between runs (what it queues goes out when
    /// the loop runs).
    pub fn endpoint_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    /// Calls `f` with every message the driver sends (its transmit and bytes), before it is
    /// written: for logs and traces.
    pub fn trace_transmits(&mut self, f: impl FnMut(&Transmit, &[u8]) + Send + 'static) {
        self.tracer = Some(Box::new(f));
    }

    /// Calls `f` with what the driver cannot tell the endpoint in full, one line each (no
    /// control characters): why a TLS handshake failed ("TLS to 127.0.0.1:5061
    /// (example.test): certificate not valid for example.test ...", rustls' error text
    /// otherwise), that it timed out, that there is no nameserver. Without it, these go
    /// nowhere.
    pub fn on_warning(&mut self, f: impl FnMut(&str) + Send + 'static) {
        self.warner = Some(Box::new(f));
    }

    fn warn(&mut self, line: &str) {
        if let Some(warn) = self.warner.as_mut() {
            // Names in a peer's certificate are the peer's text: no control characters
            // reach a terminal or a log.
            if line.chars().any(char::is_control) {
                let mut clean = String::with_capacity(line.len() + 8);
                for c in line.chars() {
                    if c.is_control() {
                        clean.extend(c.escape_default());
                    } else {
                        clean.push(c);
                    }
                }
                warn(&clean);
            } else {
                warn(line);
            }
        }
    }

    /// How many bytes a stream connection may hold for a peer that does not read (beyond
    /// the kernel's socket buffer) before the driver drops the connection and reports it
    /// closed. Default [`DEFAULT_WRITE_BUFFER_LIMIT`]. For TLS it bounds rustls' buffer of
    /// records not yet written, for connections made after the call.
    pub fn set_write_buffer_limit(&mut self, bytes: usize) {
        self.write_buffer_limit = bytes;
    }

    /// The counters so far.
    pub fn summary(&self) -> Summary {
        Summary {
            endpoint: self.endpoint.stats(),
            ..self.summary
        }
    }

    /// Runs until [`Shutdown::shutdown`] (or its flag), handing every event to `tu`.
    /// Returns the counters. Errors only when polling itself fails; a socket error is the
    /// affected connection's or message's, never the loop's.
    pub fn run<T: TransactionUser + ?Sized>(&mut self, tu: &mut T) -> io::Result<Summary> {
        self.run_inner(tu, None)
    }

    /// Runs like [`Driver::run`], but returns at `deadline` at the latest.
    pub fn run_until<T: TransactionUser + ?Sized>(
        &mut self,
        tu: &mut T,
        deadline: Instant,
    ) -> io::Result<Summary> {
        self.run_inner(tu, Some(deadline))
    }

    /// Runs like [`Driver::run`], for `duration` at most.
    pub fn run_for<T: TransactionUser + ?Sized>(
        &mut self,
        tu: &mut T,
        duration: Duration,
    ) -> io::Result<Summary> {
        self.run_inner(tu, Some(Instant::now() + duration))
    }

    fn run_inner<T: TransactionUser + ?Sized>(
        &mut self,
        tu: &mut T,
        deadline: Option<Instant>,
    ) -> io::Result<Summary> {
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let result = self.event_loop(tu, deadline, &mut events);
        self.events = events;
        // Give what is still buffered one last chance to leave.
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            self.flush(token);
        }
        result.map(|()| self.summary())
    }

    fn event_loop<T: TransactionUser + ?Sized>(
        &mut self,
        tu: &mut T,
        deadline: Option<Instant>,
        events: &mut Events,
    ) -> io::Result<()> {
        // What the transaction user or endpoint queued before the run.
        self.pump(tu);
        loop {
            if self.shutdown.is_shutdown() {
                return Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Ok(());
            }
            let wake = [
                self.endpoint.poll_timeout(),
                tu.poll_timeout(),
                self.dns.poll_timeout(),
                self.handshake_deadlines.front().map(|&(at, _)| at),
                deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            let mut timeout = wake
                .map_or(MAX_WAIT, |w| w.saturating_duration_since(now))
                .min(MAX_WAIT);
            if !self.ready.is_empty() {
                timeout = Duration::ZERO;
            }
            match self.poll.poll(events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            // Sockets left with reads to do on the last turn, then the new events.
            for token in std::mem::take(&mut self.ready) {
                self.on_ready(token, true, false, tu);
            }
            for event in events.iter() {
                if event.is_error() {
                    if let Slot::Udp(i) = self.slot(event.token()) {
                        // ICMP errors queued for this socket's datagrams.
                        self.drain_icmp(i);
                    }
                }
                let gone = event.is_error() || event.is_read_closed();
                let readable = event.is_readable() || gone;
                self.on_ready(event.token(), readable, event.is_writable(), tu);
            }
            // Timers, and whatever the inputs produced.
            self.pump(tu);
        }
    }

    fn on_ready<T: TransactionUser + ?Sized>(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
        tu: &mut T,
    ) {
        match self.slot(token) {
            Slot::Waker => {}
            Slot::Udp(i) => self.on_udp(i, tu),
            Slot::TcpListener(i) => self.on_accept(i),
            Slot::Dns => {
                if self.dns.on_readable(token, &mut self.rx, READ_BUDGET) {
                    self.ready.push(token);
                }
                self.pump(tu);
            }
            Slot::Conn => self.on_conn(token, readable, writable, tu),
        }
    }

    fn slot(&self, token: Token) -> Slot {
        let i = token.0;
        if token == WAKER {
            Slot::Waker
        } else if token == DNS_V4 || token == DNS_V6 {
            Slot::Dns
        } else if i <= self.udp.len() {
            Slot::Udp(i - 1)
        } else if i <= self.udp.len() + self.tcp.len() {
            Slot::TcpListener(i - 1 - self.udp.len())
        } else {
            Slot::Conn
        }
    }

    /// Feeds nothing, drains everything: timers that are due, then events, transmits and
    /// connection requests (the order [`Endpoint`] documents), until the endpoint and
    /// transaction user have nothing left.
    fn pump<T: TransactionUser + ?Sized>(&mut self, tu: &mut T) {
        loop {
            let now = Instant::now();
            if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                self.endpoint.handle_timeout(now);
            }
            if tu.poll_timeout().is_some_and(|t| t <= now) {
                tu.handle_timeout(now, &mut self.endpoint);
            }
            self.dns.handle_timeout(now);
            self.expire_handshakes(now);
            let mut busy = false;
            while let Some(event) = self.endpoint.poll_event() {
                busy = true;
                tu.handle_event(now, event, &mut self.endpoint);
            }
            let mut tx = std::mem::take(&mut self.tx);
            while let Some(t) = self.endpoint.poll_transmit(&mut tx) {
                busy = true;
                self.transmit(&t, &tx);
            }
            self.tx = tx;
            for token in std::mem::take(&mut self.broken) {
                busy = true;
                self.close_conn(now, token, true);
            }
            while let Some(io) = self.endpoint.poll_io() {
                busy = true;
                self.io_request(now, io);
            }
            while let Some(query) = self.endpoint.poll_dns() {
                busy = true;
                self.summary.dns_queries += 1;
                if let Some(warning) = self.dns.query(now, query) {
                    self.warn(&warning);
                }
            }
            self.dns.send(self.poll.registry());
            while let Some((id, answer)) = self.dns.poll_answer() {
                busy = true;
                self.endpoint.handle_dns_answer(now, id, answer);
            }
            if !busy {
                return;
            }
        }
    }

    fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
        if let Some(trace) = self.tracer.as_mut() {
            trace(t, bytes);
        }
        if !t.transport.is_stream() {
            let socket = self
                .udp
                .iter()
                .position(|u| u.local == t.local)
                .or_else(|| {
                    self.udp
                        .iter()
                        .position(|u| u.local.is_ipv4() == t.remote.is_ipv4())
                });
            let Some(i) = socket else {
                self.summary.send_errors += 1;
                return;
            };
            let mut sent = self.udp[i].socket.send_to(bytes, t.remote);
            if sent.as_ref().is_err_and(icmp::stale_error) {
                // An earlier ICMP error surfaced here instead of sending: read what it was
                // about, then send this datagram.
                self.drain_icmp(i);
                sent = self.udp[i].socket.send_to(bytes, t.remote);
            }
            match sent {
                Ok(_) => self.summary.datagrams_out += 1,
                Err(e) => {
                    self.summary.send_errors += 1;
                    // RFC 3261 section 18.4: a destination the system refuses to send to
                    // fails its transactions now. Other errors (a full buffer): the
                    // transaction layer retransmits.
                    if icmp::unreachable_send(&e) {
                        self.endpoint.handle_unreachable(Instant::now(), t.remote);
                    }
                }
            }
            return;
        }
        let Some(token) = t.flow.and_then(|f| self.by_flow.get(&f).copied()) else {
            self.summary.send_errors += 1;
            return;
        };
        let Some(conn) = self.conns.get_mut(&token).filter(|c| !c.broken) else {
            self.summary.send_errors += 1;
            return;
        };
        if let Some(tls) = conn.tls.as_mut() {
            // rustls encrypts into its own buffer, bounded by the write buffer limit (set
            // when the connection was made): what the socket does not take waits there.
            let taken = tls.conn.writer().write(bytes).unwrap_or(0);
            if taken < bytes.len() {
                self.summary.write_overflows += 1;
                conn.broken = true;
                self.broken.push(token);
                return;
            }
            if !self.flush(token) {
                if let Some(conn) = self.conns.get_mut(&token) {
                    conn.broken = true;
                }
                self.broken.push(token);
            } else if self.conns.get(&token).is_some_and(|c| c.want_write) {
                self.summary.write_blocked += 1;
            }
            return;
        }
        let mut at = 0;
        if conn.pending().is_empty() && !conn.connecting {
            while at < bytes.len() {
                match conn.stream.write(&bytes[at..]) {
                    Ok(0) => {
                        conn.broken = true;
                        self.broken.push(token);
                        return;
                    }
                    Ok(n) => at += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        conn.broken = true;
                        self.broken.push(token);
                        return;
                    }
                }
            }
        }
        if at == bytes.len() {
            return;
        }
        self.summary.write_blocked += 1;
        if conn.out_at > 0 && conn.out_at * 2 >= conn.out.len() {
            conn.out.drain(..conn.out_at);
            conn.out_at = 0;
        }
        conn.out.extend_from_slice(&bytes[at..]);
        if conn.out.len() - conn.out_at > self.write_buffer_limit {
            self.summary.write_overflows += 1;
            conn.broken = true;
            self.broken.push(token);
            return;
        }
        if !conn.want_write {
            conn.want_write = true;
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, interest)
                .is_err()
            {
                conn.broken = true;
                self.broken.push(token);
            }
        }
    }

    /// Writes what a connection has buffered (for TLS, the records rustls holds: handshake
    /// messages, alerts, data); false when the connection broke. Watches for writability
    /// exactly while something is left.
    fn flush(&mut self, token: Token) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return true;
        };
        if let Some(tls) = conn.tls.as_mut() {
            if conn.connecting {
                // The ClientHello waits for the TCP connection.
                return true;
            }
            while tls.conn.wants_write() {
                match tls.conn.write_tls(&mut conn.stream) {
                    Ok(0) => return false,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
            let want = tls.conn.wants_write();
            if want == conn.want_write {
                return true;
            }
            conn.want_write = want;
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            return self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, interest)
                .is_ok();
        }
        while !conn.pending().is_empty() {
            match conn.stream.write(&conn.out[conn.out_at..]) {
                Ok(0) => return false,
                Ok(n) => conn.out_at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        conn.out.clear();
        conn.out_at = 0;
        // A backlog grew the buffer: give it back once written.
        if conn.out.capacity() > READ_SIZE {
            conn.out = Vec::new();
        }
        if conn.want_write && !conn.connecting {
            conn.want_write = false;
            return self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, Interest::READABLE)
                .is_ok();
        }
        true
    }

    fn io_request(&mut self, now: Instant, io: IoRequest) {
        match io {
            IoRequest::Connect {
                flow,
                transport,
                remote,
            } => {
                let tls = match transport {
                    Transport::Tcp => None,
                    Transport::Tls => match self.client_tls(flow, remote) {
                        Ok(tls) => Some(tls),
                        Err(why) => {
                            self.warn(&why);
                            self.summary.connect_failures += 1;
                            self.endpoint
                                .handle_flow_event(now, flow, FlowEvent::Failed);
                            return;
                        }
                    },
                    _ => {
                        self.summary.connect_failures += 1;
                        self.endpoint
                            .handle_flow_event(now, flow, FlowEvent::Failed);
                        return;
                    }
                };
                let token = Token(self.next_token);
                let registered = TcpStream::connect(remote).and_then(|mut stream| {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    self.poll
                        .registry()
                        .register(&mut stream, token, interest)?;
                    Ok(stream)
                });
                match registered {
                    Ok(stream) => {
                        self.next_token += 1;
                        if tls.is_some() {
                            // The connect counts in the handshake's time.
                            self.handshake_deadlines
                                .push_back((now + self.tls_handshake_timeout, token));
                        }
                        self.conns.insert(
                            token,
                            Conn {
                                stream,
                                flow: Some(flow),
                                connecting: true,
                                out: Vec::new(),
                                out_at: 0,
                                want_write: true,
                                broken: false,
                                tls,
                            },
                        );
                        self.by_flow.insert(flow, token);
                    }
                    Err(e) => {
                        if let Some(tls) = tls {
                            self.warn(&format!("{}: cannot connect: {e}", tls.describe()));
                        }
                        self.summary.connect_failures += 1;
                        self.endpoint
                            .handle_flow_event(now, flow, FlowEvent::Failed);
                    }
                }
            }
            IoRequest::Close { flow } => {
                if let Some(&token) = self.by_flow.get(&flow) {
                    self.close_conn(now, token, false);
                }
            }
            // A request this driver does not know: nothing it can do.
            _ => {}
        }
    }

    /// rustls' client side for a connection the endpoint asked for: the server must prove
    /// the domain the endpoint resolved (RFC 5922 section 4), else the address it connects
    /// to.
    fn client_tls(&mut self, flow: FlowId, remote: SocketAddr) -> Result<Box<Tls>, String> {
        let name = sip_driver_sys::tls::server_name(self.endpoint.tls_server_name(flow), remote);
        let config = match &self.tls {
            Some(tls) => Arc::clone(&tls.client),
            None => {
                // No configuration given: the system's roots, read once.
                let client = sip_driver_sys::tls::client_config(None).map_err(|e| {
                    format!("TLS to {remote}: no client configuration (system roots): {e}")
                })?;
                self.tls = Some(TlsConfig {
                    server: None,
                    client: Arc::clone(&client),
                });
                client
            }
        };
        let mut conn = rustls::ClientConnection::new(config, name.clone())
            .map_err(|e| format!("TLS to {remote}: {e}"))?;
        conn.set_buffer_limit(Some(self.write_buffer_limit));
        let unspecified = match remote {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        };
        Ok(Box::new(Tls {
            conn: conn.into(),
            handshaking: true,
            // Known once the TCP connection is up.
            local: unspecified,
            remote,
            name: Some(name),
        }))
    }

    /// rustls' server side for an accepted connection, counted in the handshakes under way;
    /// None when too many are (in all, or from this peer's address).
    fn server_tls(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<Box<Tls>> {
        let config = self.tls.as_ref()?.server.clone()?;
        let mut conn = rustls::ServerConnection::new(config).ok()?;
        if !self.tls_pending.start(remote.ip()) {
            return None;
        }
        conn.set_buffer_limit(Some(self.write_buffer_limit));
        Some(Box::new(Tls {
            conn: conn.into(),
            handshaking: true,
            local,
            remote,
            name: None,
        }))
    }

    /// Forgets a connection: out of the poll and the flow table.
    fn remove_conn(&mut self, token: Token) -> Option<Conn> {
        let mut conn = self.conns.remove(&token)?;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        match conn.flow {
            Some(flow) => {
                if self.by_flow.get(&flow) == Some(&token) {
                    self.by_flow.remove(&flow);
                }
            }
            None => {
                if let Some(tls) = conn.tls.as_ref().filter(|t| t.handshaking) {
                    self.tls_pending.end(tls.remote.ip());
                }
            }
        }
        Some(conn)
    }

    /// Forgets a connection (after one last try at what it has buffered); tells the
    /// endpoint when `report`: `Closed`, or `Failed` for an outbound TLS connection whose
    /// handshake was not done.
    fn close_conn(&mut self, now: Instant, token: Token, report: bool) {
        if let Some(tls) = self.conns.get_mut(&token).and_then(|c| c.tls.as_mut()) {
            // RFC 8446 section 6.1: say that the connection ends (best effort).
            tls.conn.send_close_notify();
        }
        self.flush(token);
        let Some(conn) = self.remove_conn(token) else {
            return;
        };
        let Some(flow) = conn.flow.filter(|_| report) else {
            return;
        };
        if conn.tls.as_ref().is_some_and(|t| t.handshaking) {
            self.summary.connect_failures += 1;
            self.endpoint
                .handle_flow_event(now, flow, FlowEvent::Failed);
        } else {
            self.summary.closed += 1;
            self.endpoint
                .handle_flow_event(now, flow, FlowEvent::Closed);
        }
    }

    /// A TLS connection failed (its handshake, the certificate, a record): says why and
    /// closes it (the endpoint hears `Failed` before the handshake, `Closed` after).
    fn fail_tls(&mut self, now: Instant, token: Token, why: &str) {
        let Some(tls) = self.conns.get(&token).and_then(|c| c.tls.as_ref()) else {
            return;
        };
        let line = format!("{}: {why}", tls.describe());
        self.warn(&line);
        self.close_conn(now, token, true);
    }

    /// Closes the TLS connections whose handshake is late (a peer that connects and sends
    /// nothing, or too little).
    fn expire_handshakes(&mut self, now: Instant) {
        while let Some(&(at, token)) = self.handshake_deadlines.front() {
            if at > now {
                return;
            }
            self.handshake_deadlines.pop_front();
            let late = self
                .conns
                .get(&token)
                .and_then(|c| c.tls.as_ref())
                .is_some_and(|t| t.handshaking);
            if late {
                let why = format!(
                    "handshake not done within {} ms",
                    self.tls_handshake_timeout.as_millis()
                );
                self.fail_tls(now, token, &why);
            }
        }
    }

    fn on_udp<T: TransactionUser + ?Sized>(&mut self, i: usize, tu: &mut T) {
        // Edge-triggered: read until the socket would block, or the budget is spent (then
        // the next turn comes back). Errors (ICMP reports surfacing as ECONNREFUSED) are
        // skipped.
        for _ in 0..READ_BUDGET {
            let u = &self.udp[i];
            match u.socket.recv_from(&mut self.rx) {
                Ok((n, from)) => {
                    self.summary.datagrams_in += 1;
                    let local = u.local;
                    self.endpoint
                        .handle_datagram(Instant::now(), local, from, &self.rx[..n]);
                    self.pump(tu);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error for one of our datagrams (Linux with IP_RECVERR).
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    self.drain_icmp(i);
                    self.pump(tu);
                }
                Err(_) => {}
            }
        }
        self.ready.push(Token(i + 1));
    }

    /// Reads the ICMP errors queued on UDP socket `i` and tells the endpoint which
    /// destinations are unreachable (RFC 3261 section 18.4).
    fn drain_icmp(&mut self, i: usize) {
        let mut gone = Vec::new();
        icmp::drain(&self.udp[i].socket, &mut gone);
        let now = Instant::now();
        for remote in gone {
            self.endpoint.handle_unreachable(now, remote);
        }
    }

    fn on_accept(&mut self, i: usize) {
        for _ in 0..READ_BUDGET {
            let listener = &self.tcp[i];
            let (mut stream, remote) = match listener.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: all taken. Anything else (out of descriptors): the rest stay
                // in the backlog until the next connection wakes us.
                Err(_) => return,
            };
            let local = stream.local_addr().unwrap_or(listener.local);
            let transport = listener.transport;
            let now = Instant::now();
            // TCP: a flow now. TLS: a flow once the handshake is done (`handshake_done`).
            let (flow, tls) = if transport == Transport::Tls {
                let Some(tls) = self.server_tls(local, remote) else {
                    // Too many handshakes under way: refuse by dropping.
                    continue;
                };
                (None, Some(tls))
            } else {
                let Ok(flow) = self
                    .endpoint
                    .accept_flow(now, Transport::Tcp, local, remote)
                else {
                    // Too many flows: refuse the connection by dropping it.
                    continue;
                };
                (Some(flow), None)
            };
            let _ = stream.set_nodelay(true);
            let token = Token(self.next_token);
            if self
                .poll
                .registry()
                .register(&mut stream, token, Interest::READABLE)
                .is_err()
            {
                if let Some(flow) = flow {
                    self.endpoint
                        .handle_flow_event(now, flow, FlowEvent::Closed);
                }
                if tls.is_some() {
                    self.tls_pending.end(remote.ip());
                }
                continue;
            }
            self.next_token += 1;
            self.summary.accepted += 1;
            if tls.is_some() {
                self.handshake_deadlines
                    .push_back((now + self.tls_handshake_timeout, token));
            }
            self.conns.insert(
                token,
                Conn {
                    stream,
                    flow,
                    connecting: false,
                    out: Vec::new(),
                    out_at: 0,
                    want_write: false,
                    broken: false,
                    tls,
                },
            );
            if let Some(flow) = flow {
                self.by_flow.insert(flow, token);
            }
        }
        self.ready.push(Token(1 + self.udp.len() + i));
    }

    fn on_conn<T: TransactionUser + ?Sized>(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
        tu: &mut T,
    ) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.connecting {
            let Some(flow) = conn.flow else {
                return;
            };
            if !(readable || writable) {
                return;
            }
            // The outcome of a non-blocking connect: an error, or a peer address.
            let outcome = match conn.stream.take_error() {
                Ok(None) => match conn.stream.peer_addr() {
                    Ok(_) => conn.stream.local_addr().map(Some),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(None),
                    Err(e) => Err(e),
                },
                Ok(Some(e)) | Err(e) => Err(e),
            };
            let now = Instant::now();
            match outcome {
                Ok(None) => return, // not yet
                Ok(Some(local)) => {
                    conn.connecting = false;
                    let _ = conn.stream.set_nodelay(true);
                    if let Some(tls) = conn.tls.as_mut() {
                        // TCP is up: the handshake begins (the ClientHello rustls has
                        // ready goes out below); the endpoint hears `Connected` when it
                        // is done.
                        tls.local = local;
                    } else {
                        self.summary.connected += 1;
                        self.endpoint
                            .handle_flow_event(now, flow, FlowEvent::Connected { local });
                        self.pump(tu);
                    }
                    // The pending messages went out, or wait for writability.
                    if !self.flush(token) {
                        self.close_conn(now, token, true);
                        return;
                    }
                }
                Err(e) => {
                    if let Some(tls) = self.remove_conn(token).and_then(|c| c.tls) {
                        self.warn(&format!("{}: cannot connect: {e}", tls.describe()));
                    }
                    self.summary.connect_failures += 1;
                    self.endpoint
                        .handle_flow_event(now, flow, FlowEvent::Failed);
                    return;
                }
            }
        }
        if writable && !self.flush(token) {
            self.close_conn(Instant::now(), token, true);
            return;
        }
        if readable {
            self.read(token, tu);
        }
    }

    /// Reads until the socket would block (or the budget is spent), feeding the endpoint
    /// chunk by chunk.
    fn read<T: TransactionUser + ?Sized>(&mut self, token: Token, tu: &mut T) {
        if self.conns.get(&token).is_some_and(|c| c.tls.is_some()) {
            self.read_tls(token, tu);
            return;
        }
        for _ in 0..READ_BUDGET {
            // The flow may have been closed by what the last chunk caused.
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            let Some(flow) = conn.flow else {
                return;
            };
            match conn.stream.read(&mut self.rx[..READ_SIZE]) {
                Ok(0) => {
                    // The peer closed (or half-closed) its side: what it sent is answered
                    // already (pumped below), so close ours and tell the endpoint.
                    self.close_conn(Instant::now(), token, true);
                    return;
                }
                Ok(n) => {
                    self.endpoint
                        .handle_stream(Instant::now(), flow, &self.rx[..n]);
                    self.pump(tu);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.close_conn(Instant::now(), token, true);
                    return;
                }
            }
        }
        self.ready.push(token);
    }

    /// A TLS connection's reads: the records from the socket into rustls, the handshake
    /// moved on (and its end told), the plaintext to the endpoint as TCP's bytes are, what
    /// rustls has to say written back.
    fn read_tls<T: TransactionUser + ?Sized>(&mut self, token: Token, tu: &mut T) {
        for _ in 0..READ_BUDGET {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            let Some(tls) = conn.tls.as_mut() else {
                return;
            };
            let now = Instant::now();
            let (eof, drained) = match tls.conn.read_tls(&mut conn.stream) {
                Ok(0) => (true, false),
                Ok(_) => (false, false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (false, true),
                Err(e) => {
                    let why = e.to_string();
                    self.fail_tls(now, token, &why);
                    return;
                }
            };
            if let Err(e) = tls.conn.process_new_packets() {
                // The alert rustls queued goes out as the connection is closed.
                let why = reason(&e, tls.name.as_ref(), tls.remote);
                self.fail_tls(now, token, &why);
                return;
            }
            if tls.handshaking && !tls.conn.is_handshaking() {
                if !self.handshake_done(now, token) {
                    return;
                }
                // An outbound connection is up: the messages waiting for it go out.
                self.pump(tu);
            }
            if !self.read_plaintext(token, tu) {
                return;
            }
            if !self.flush(token) {
                self.close_conn(Instant::now(), token, true);
                return;
            }
            if eof {
                // The peer closed its side; what it sent is answered already.
                self.close_conn(Instant::now(), token, true);
                return;
            }
            if drained {
                return;
            }
        }
        self.ready.push(token);
    }

    /// The handshake of a TLS connection is done: an accepted connection is handed to the
    /// endpoint (closed when it refuses it: too many flows), an outbound one is reported
    /// `Connected`. False when the connection is gone.
    fn handshake_done(&mut self, now: Instant, token: Token) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return false;
        };
        let Some(tls) = conn.tls.as_mut() else {
            return false;
        };
        tls.handshaking = false;
        self.summary.tls_handshakes += 1;
        if let Some(flow) = conn.flow {
            self.summary.connected += 1;
            let local = tls.local;
            self.endpoint
                .handle_flow_event(now, flow, FlowEvent::Connected { local });
            return true;
        }
        self.tls_pending.end(tls.remote.ip());
        match self
            .endpoint
            .accept_flow(now, Transport::Tls, tls.local, tls.remote)
        {
            Ok(flow) => {
                conn.flow = Some(flow);
                self.by_flow.insert(flow, token);
                true
            }
            Err(_) => {
                self.close_conn(now, token, false);
                false
            }
        }
    }

    /// Hands what rustls decrypted to the endpoint; false when the connection is gone
    /// (closed by the peer's close_notify, or by what the endpoint did).
    fn read_plaintext<T: TransactionUser + ?Sized>(&mut self, token: Token, tu: &mut T) -> bool {
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return false;
            };
            let (Some(tls), Some(flow)) = (conn.tls.as_mut(), conn.flow) else {
                // An accepted connection still in its handshake: no data yet.
                return true;
            };
            match tls.conn.reader().read(&mut self.rx[..READ_SIZE]) {
                Ok(0) => {
                    // close_notify: the peer is done.
                    self.close_conn(Instant::now(), token, true);
                    return false;
                }
                Ok(n) => {
                    self.endpoint
                        .handle_stream(Instant::now(), flow, &self.rx[..n]);
                    self.pump(tu);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The peer closed without close_notify (a truncation attack or a crash):
                // what came before it was whole records, already handed over.
                Err(_) => {
                    self.close_conn(Instant::now(), token, true);
                    return false;
                }
            }
        }
    }
}

/// Room for bursts: the kernel's default UDP receive buffer (about 200 KB) overflows at
/// around 10,000 calls/s, and every datagram dropped there costs a retransmission round.
/// What the kernel grants (it caps the value at `net.core.rmem_max`) is taken as is.
pub(crate) fn enlarge_udp_buffers(socket: &UdpSocket) {
    let s = socket2::SockRef::from(socket);
    let _ = s.set_recv_buffer_size(UDP_BUFFER);
    let _ = s.set_send_buffer_size(UDP_BUFFER);
}

/// The socket buffer size asked for UDP sockets (4 MiB).
const UDP_BUFFER: usize = 4 << 20;
