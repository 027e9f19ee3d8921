//! The driver: binds the listeners, then one task owns the [`Endpoint`] and its transaction
//! user while socket tasks move bytes through channels.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sip_core::resolve::{Answer, QueryId};
use sip_core::{
    Config, Endpoint, FlowEvent, FlowId, IoRequest, Listener, Stats, TransactionUser, Transmit,
    Transport,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use sip_driver_sys::tls::TlsConfig;
use sip_driver_sys::{icmp, os_seed};
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::rustls;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};
use tracing::Instrument;

use crate::dns::{self, Ask, Dns};
use crate::log::{self, Dir, StreamLog};
use crate::{Error, ListenSpec};

/// Inputs queued from the socket tasks to the owner task.
const INPUT_QUEUE: usize = 1024;
/// Datagrams queued for one UDP socket before new ones are dropped (UDP is lossy anyway,
/// and the transactions retransmit).
const UDP_QUEUE: usize = 1024;
/// Messages queued for one connection before it is deemed stuck and closed.
const STREAM_QUEUE: usize = 1024;
/// Bytes queued for one connection before it is deemed stuck and closed, as on the mio
/// driver: sixteen of the largest messages. A peer that never reads its responses (which
/// copy its Vias) would otherwise pin up to [`STREAM_QUEUE`] messages of 64 KiB each.
const STREAM_QUEUE_BYTES: usize = 1 << 20;
/// How long one write to a connection may wait for the peer to read (64*T1, as long as any
/// transaction waits). A peer that stops reading keeps its writer task, its socket and up
/// to [`STREAM_QUEUE_BYTES`] only this long, also after the endpoint has closed the flow.
const WRITE_TIMEOUT: Duration = Duration::from_secs(32);
/// How long an outbound connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(32);
/// How long a TLS handshake may take, either side: a peer that connects and says nothing
/// holds its socket and a handshake slot only this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes one listener runs at once; connections beyond are closed at once.
const MAX_HANDSHAKES: usize = 256;

/// What the driver itself counted (beside the endpoint's [`Stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// TLS handshakes completed, accepted and initiated: one per connection (RFC 3261
    /// section 26.3.1: connections are reused, so one per peer while the connection lives).
    pub tls_handshakes: u64,
    /// TLS handshakes that failed (certificate refused, timeout, protocol error).
    pub tls_failures: u64,
    /// DNS questions the driver answered from the network (the endpoint's resolver asks
    /// only what its cache does not hold).
    pub dns_queries: u64,
    /// DNS questions that got no answer: a timeout or a server failure.
    pub dns_failures: u64,
    /// Why the last TLS connection the driver opened failed: "TLS to 127.0.0.1:5061:
    /// certificate not valid for example.test".
    pub last_tls_failure: Option<String>,
}

/// The counters behind [`DriverStats`], shared by the owner task, the socket tasks and the
/// [`Client`](crate::Client).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    tls_handshakes: AtomicU64,
    tls_failures: AtomicU64,
    dns_queries: AtomicU64,
    dns_failures: AtomicU64,
    last_tls_failure: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> DriverStats {
        DriverStats {
            tls_handshakes: self.tls_handshakes.load(Ordering::Relaxed),
            tls_failures: self.tls_failures.load(Ordering::Relaxed),
            dns_queries: self.dns_queries.load(Ordering::Relaxed),
            dns_failures: self.dns_failures.load(Ordering::Relaxed),
            last_tls_failure: self.last_tls_failure.lock().ok().and_then(|l| l.clone()),
        }
    }

    fn tls_failed(&self, why: Option<String>) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
        if let (Some(why), Ok(mut last)) = (why, self.last_tls_failure.lock()) {
            *last = Some(why);
        }
    }
}

/// What the driver needs beside the endpoint's [`Config`]: TLS configurations and the
/// nameservers. The default has no TLS server side (a `tls:` listener is then an error),
/// verifies TLS servers against the system's roots, and resolves names with the system's
/// DNS configuration (`/etc/resolv.conf`).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::path::Path;
/// use sip_driver_sys::tls::{client_config, server_config, TlsConfig};
/// use sip_driver_tokio::{Driver, DriverOptions};
///
/// let tls = TlsConfig {
///     server: Some(server_config(Path::new("cert.pem"), Path::new("key.pem"))?),
///     client: client_config(Some(Path::new("ca.pem")))?,
/// };
/// let options = DriverOptions::default()
///     .with_tls(tls)
///     .with_nameservers(vec!["127.0.0.1:5353".parse()?]);
/// let driver = Driver::bind_with_options(
///     ["tls:127.0.0.1:5061".parse()?],
///     sip_core::Config::default(),
///     options,
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct DriverOptions {
    /// The TLS server configuration (for `tls:` listeners) and client configuration (for
    /// the connections the endpoint opens). None: no TLS server side, and servers are
    /// verified against the system's roots.
    pub tls: Option<TlsConfig>,
    /// The nameservers to ask (`--dns HOST:PORT`); None: the system's configuration.
    pub nameservers: Option<Vec<SocketAddr>>,
}

impl std::fmt::Debug for DriverOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverOptions")
            .field("tls", &self.tls.as_ref().map(|t| t.server.is_some()))
            .field("nameservers", &self.nameservers)
            .finish()
    }
}

impl DriverOptions {
    /// With TLS configurations.
    pub fn with_tls(mut self, tls: TlsConfig) -> DriverOptions {
        self.tls = Some(tls);
        self
    }

    /// With these nameservers instead of the system's.
    pub fn with_nameservers(mut self, nameservers: Vec<SocketAddr>) -> DriverOptions {
        self.nameservers = Some(nameservers);
        self
    }
}

/// A driver with its listeners bound, ready to run a transaction user ([`Driver::run`]) or
/// the built-in one behind the async [`Client`](crate::Client) API ([`Driver::start`]).
///
/// ```no_run
/// # async fn f() -> Result<(), sip_driver_tokio::Error> {
/// use sip_driver_tokio::{Driver, ListenSpec};
///
/// let driver = Driver::bind(["udp:127.0.0.1:0".parse::<ListenSpec>().unwrap()]).await?;
/// println!("listening on {:?}", driver.listeners());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Driver {
    config: Config,
    udp: Vec<(SocketAddr, UdpSocket)>,
    tcp: Vec<(SocketAddr, TcpListener)>,
    tls: Vec<(SocketAddr, TcpListener)>,
    options: DriverOptions,
    counters: Arc<Counters>,
    seed: [u8; 32],
    tu_seed: [u8; 32],
    shutdown: Arc<watch::Sender<bool>>,
}

/// Stops a running driver: [`Shutdown::shutdown`] makes [`Driver::run`] return.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    /// Asks the driver to stop; it returns from [`Driver::run`] at its next turn.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }
}

/// What [`Driver::run`] gives back when it stops.
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished<T> {
    /// The transaction user, as it was when the driver stopped.
    pub tu: T,
    /// The endpoint's counters.
    pub stats: Stats,
    /// The driver's own counters (TLS handshakes, DNS questions).
    pub driver: DriverStats,
}

impl Driver {
    /// Binds every listen specification (port 0 gets a free port) with the default
    /// [`Config`].
    pub async fn bind(specs: impl IntoIterator<Item = ListenSpec>) -> Result<Driver, Error> {
        Self::bind_with_config(specs, Config::default()).await
    }

    /// Binds every listen specification; `config.listeners` is replaced by the bound
    /// addresses (with the real ports). The endpoint and the built-in transaction user get
    /// seeds of their own from [`os_seed`]; [`Error::Seed`] when the operating system has
    /// none to give.
    pub async fn bind_with_config(
        specs: impl IntoIterator<Item = ListenSpec>,
        config: Config,
    ) -> Result<Driver, Error> {
        Self::bind_with_options(specs, config, DriverOptions::default()).await
    }

    /// [`Driver::bind_with_config`] with TLS configurations and nameservers. A `tls:`
    /// listener needs `options.tls` with a server configuration ([`Error::Bind`] otherwise).
    pub async fn bind_with_options(
        specs: impl IntoIterator<Item = ListenSpec>,
        mut config: Config,
        options: DriverOptions,
    ) -> Result<Driver, Error> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let mut tls = Vec::new();
        let mut listeners = Vec::new();
        for spec in specs {
            let bind_err = |source| Error::Bind { spec, source };
            let addr = if spec.transport == Transport::Udp {
                let s = UdpSocket::bind(spec.addr).await.map_err(bind_err)?;
                // Room for bursts: the kernel's default receive buffer (about 200 KB)
                // overflows at high call rates; what the kernel grants is taken as is.
                let sock = socket2::SockRef::from(&s);
                let _ = sock.set_recv_buffer_size(4 << 20);
                let _ = sock.set_send_buffer_size(4 << 20);
                let addr = s.local_addr().map_err(bind_err)?;
                // ICMP errors for its datagrams, where the system reports them.
                let _ = icmp::enable(&s, addr);
                udp.push((addr, s));
                addr
            } else if spec.transport == Transport::Tcp {
                let l = TcpListener::bind(spec.addr).await.map_err(bind_err)?;
                let addr = l.local_addr().map_err(bind_err)?;
                tcp.push((addr, l));
                addr
            } else if spec.transport == Transport::Tls {
                if options
                    .tls
                    .as_ref()
                    .and_then(|t| t.server.as_ref())
                    .is_none()
                {
                    return Err(bind_err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a TLS listener needs a certificate and a key",
                    )));
                }
                let l = TcpListener::bind(spec.addr).await.map_err(bind_err)?;
                let addr = l.local_addr().map_err(bind_err)?;
                tls.push((addr, l));
                addr
            } else {
                return Err(bind_err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "transport not supported",
                )));
            };
            listeners.push(Listener::new(spec.transport, addr));
        }
        if listeners.is_empty() {
            return Err(Error::NoListeners);
        }
        config.listeners = listeners;
        let seed = os_seed().map_err(Error::Seed)?;
        let tu_seed = os_seed().map_err(Error::Seed)?;
        let (tx, _) = watch::channel(false);
        Ok(Driver {
            config,
            udp,
            tcp,
            tls,
            options,
            counters: Arc::default(),
            seed,
            tu_seed,
            shutdown: Arc::new(tx),
        })
    }

    /// The bound addresses, with the real ports where port 0 was asked.
    pub fn listeners(&self) -> &[Listener] {
        &self.config.listeners
    }

    /// The first bound address of `transport`.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        first_addr(&self.config.listeners, transport)
    }

    /// The endpoint's configuration (listeners included).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A handle that stops [`Driver::run`].
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown {
            tx: Arc::clone(&self.shutdown),
        }
    }

    /// Runs the endpoint with `tu` on top until a [`Shutdown`] handle asks it to stop,
    /// then returns the transaction user and the counters. Sockets and connections are
    /// closed on return.
    pub async fn run<T: TransactionUser>(self, tu: T) -> Result<Finished<T>, Error> {
        let (owner, tu) = self.into_owner(tu);
        owner.run(tu, None, ignore_command::<T, ()>).await
    }

    /// Runs the endpoint with `tu` on top, like [`Driver::run`], and also wakes up for the
    /// application's own inputs: each value received on `inbox` is handed to `on_input`
    /// with the current time, the transaction user and the endpoint, in the task that owns
    /// them, and what the endpoint has to send afterwards is sent at once.
    ///
    /// This is how work done outside the loop comes back into it: a transaction user
    /// starts a task (a database query, a DNS lookup) with a clone of the inbox's sender,
    /// and the task sends its result here. The inbox is bounded: a task waits
    /// (`send().await`) or gives up (`try_send`) when the loop is behind, instead of
    /// queuing without limit. Inputs and network events are served in turn (neither starves
    /// the other). When every sender is dropped the driver goes on without the inbox; it
    /// returns only when a [`Shutdown`] handle asks.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), sip_driver_tokio::Error> {
    /// use std::time::Instant;
    /// use sip_core::ua::{UaConfig, UserAgent};
    /// use sip_core::Endpoint;
    /// use sip_driver_tokio::Driver;
    /// use tokio::sync::mpsc;
    ///
    /// let driver = Driver::bind(["udp:127.0.0.1:0".parse().unwrap()]).await?;
    /// let ua = UserAgent::new(UaConfig::new("<sip:ua@127.0.0.1>"), [7; 32]);
    /// let (tx, inbox) = mpsc::channel::<String>(64);
    /// tokio::spawn(async move {
    ///     let _ = tx.send("hello from a task".to_owned()).await;
    /// });
    /// fn on_input(_ua: &mut UserAgent, _now: Instant, note: String, _ep: &mut Endpoint) {
    ///     println!("{note}");
    /// }
    /// driver.run_with(ua, inbox, on_input).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run_with<T: TransactionUser, C>(
        self,
        tu: T,
        inbox: mpsc::Receiver<C>,
        on_input: fn(&mut T, Instant, C, &mut Endpoint),
    ) -> Result<Finished<T>, Error> {
        let (owner, tu) = self.into_owner(tu);
        owner
            .run_inbox(tu, Some(Inbox::Bounded(inbox)), on_input)
            .await
    }

    /// The driver's own counters, shared with the running driver.
    pub(crate) fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    pub(crate) fn shutdown_handle_arc(&self) -> Arc<watch::Sender<bool>> {
        Arc::clone(&self.shutdown)
    }

    /// A 32-byte seed for the transaction user's own random numbers (tags), from the
    /// operating system.
    pub(crate) fn tu_seed(&self) -> [u8; 32] {
        self.tu_seed
    }

    pub(crate) fn into_owner<T>(self, tu: T) -> (Owner, T) {
        let (input_tx, inputs) = mpsc::channel(INPUT_QUEUE);
        let mut tasks = JoinSet::new();
        let mut udp = Vec::new();
        for (addr, socket) in self.udp {
            let socket = Arc::new(socket);
            let (tx, rx) = mpsc::channel(UDP_QUEUE);
            let span = tracing::info_span!("udp", local = %addr);
            tasks.spawn(
                udp_reader(Arc::clone(&socket), addr, input_tx.clone()).instrument(span.clone()),
            );
            tasks.spawn(udp_writer(socket, addr, rx, input_tx.clone()).instrument(span));
            udp.push((addr, tx));
        }
        for (addr, listener) in self.tcp {
            let span = tracing::info_span!("tcp-listener", local = %addr);
            tasks.spawn(tcp_acceptor(listener, addr, input_tx.clone()).instrument(span));
        }
        let server = self.options.tls.as_ref().and_then(|t| t.server.clone());
        for (addr, listener) in self.tls {
            let Some(server) = server.clone() else {
                continue;
            };
            let span = tracing::info_span!("tls-listener", local = %addr);
            tasks.spawn(
                tls_acceptor(
                    listener,
                    addr,
                    TlsAcceptor::from(server),
                    input_tx.clone(),
                    Arc::clone(&self.counters),
                )
                .instrument(span),
            );
        }
        let shutdown = self.shutdown.subscribe();
        let endpoint = Endpoint::new(self.config, self.seed);
        let tls_client = self.options.tls.as_ref().map(|t| Arc::clone(&t.client));
        (
            Owner {
                ep: endpoint,
                inputs,
                input_tx,
                udp,
                conns: HashMap::new(),
                connecting: HashSet::new(),
                dns: Dns::new(self.options.nameservers.clone()),
                tls_client,
                counters: self.counters,
                tasks,
                shutdown,
                _shutdown_tx: self.shutdown,
            },
            tu,
        )
    }
}

pub(crate) fn first_addr(listeners: &[Listener], transport: Transport) -> Option<SocketAddr> {
    listeners
        .iter()
        .find(|l| l.transport == transport)
        .map(|l| l.addr)
}

fn ignore_command<T, C>(_: &mut T, _: Instant, _: C, _: &mut Endpoint) {}

/// Where the owner task's commands come from.
#[derive(Debug)]
enum Inbox<C> {
    /// The async API's commands ([`Driver::start`]): the loop ends when they close.
    Unbounded(mpsc::UnboundedReceiver<C>),
    /// The application's inputs ([`Driver::run_with`]): the loop goes on when they close.
    Bounded(mpsc::Receiver<C>),
}

/// What the socket tasks tell the owner task.
#[derive(Debug)]
pub(crate) enum Input {
    Datagram {
        local: SocketAddr,
        remote: SocketAddr,
        data: Vec<u8>,
    },
    Accepted {
        local: SocketAddr,
        remote: SocketAddr,
        stream: Stream,
    },
    Connected {
        flow: FlowId,
        stream: Stream,
    },
    ConnectFailed {
        flow: FlowId,
        error: io::Error,
        /// Why a TLS connection failed, for the log and [`DriverStats::last_tls_failure`].
        tls: Option<String>,
    },
    /// The answer to a DNS question of the endpoint.
    Dns {
        id: QueryId,
        answer: Answer,
    },
    Stream {
        flow: FlowId,
        data: Vec<u8>,
    },
    Closed {
        flow: FlowId,
    },
    /// Datagrams to `remote` cannot be delivered (an ICMP error, a refused send).
    Unreachable {
        remote: SocketAddr,
    },
}

/// A connection: plain TCP, or TLS after its handshake.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn transport(&self) -> Transport {
        match self {
            Stream::Tcp(_) => Transport::Tcp,
            Stream::Tls(_) => Transport::Tls,
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

/// The queue of a UDP socket's writer task: destination and datagram.
type DatagramTx = mpsc::Sender<(SocketAddr, Vec<u8>)>;

#[derive(Debug)]
struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    reader: AbortHandle,
    /// Aborted when the connection is stuck (its queue is full): a peer that does not read
    /// would keep the write pending, and the socket open, for ever.
    writer: AbortHandle,
    /// Bytes handed to the writer task and not written yet.
    queued: Arc<AtomicUsize>,
}

/// The task state that owns the endpoint.
#[derive(Debug)]
pub(crate) struct Owner {
    ep: Endpoint,
    inputs: mpsc::Receiver<Input>,
    input_tx: mpsc::Sender<Input>,
    udp: Vec<(SocketAddr, DatagramTx)>,
    conns: HashMap<FlowId, Conn>,
    connecting: HashSet<FlowId>,
    /// The DNS questions being asked for the endpoint.
    dns: Dns,
    /// The TLS client configuration; made from the system's roots at the first TLS
    /// connection when none was given.
    tls_client: Option<Arc<rustls::ClientConfig>>,
    counters: Arc<Counters>,
    tasks: JoinSet<()>,
    shutdown: watch::Receiver<bool>,
    /// Keeps the shutdown channel open so that `changed` only reports real requests.
    _shutdown_tx: Arc<watch::Sender<bool>>,
}

impl Owner {
    /// The loop: feed inputs, drain outputs, sleep until the next input or deadline.
    /// `commands`, when given, are applied to the transaction user with `apply`; the loop
    /// ends when they are closed (every handle dropped) or on shutdown.
    pub(crate) async fn run<T: TransactionUser, C>(
        self,
        tu: T,
        commands: Option<mpsc::UnboundedReceiver<C>>,
        apply: fn(&mut T, Instant, C, &mut Endpoint),
    ) -> Result<Finished<T>, Error> {
        self.run_inbox(tu, commands.map(Inbox::Unbounded), apply)
            .await
    }

    /// [`Owner::run`] with either kind of command channel (see [`Inbox`]).
    async fn run_inbox<T: TransactionUser, C>(
        mut self,
        mut tu: T,
        mut commands: Option<Inbox<C>>,
        apply: fn(&mut T, Instant, C, &mut Endpoint),
    ) -> Result<Finished<T>, Error> {
        let span = tracing::info_span!("sip-endpoint");
        async {
            tracing::debug!(listeners = ?self.ep.config().listeners, "driver running");
            loop {
                let now = Instant::now();
                if self.ep.poll_timeout().is_some_and(|t| t <= now) {
                    self.ep.handle_timeout(now);
                }
                if tu.poll_timeout().is_some_and(|t| t <= now) {
                    tu.handle_timeout(now, &mut self.ep);
                }
                self.drain(&mut tu);
                // A finished connection task stays in the set until joined: reap them, or
                // every connection ever opened would keep its task's memory until shutdown.
                while let Some(done) = self.tasks.try_join_next() {
                    if let Err(e) = done {
                        if e.is_panic() {
                            tracing::error!("a socket task panicked: {e}");
                        }
                    }
                }
                if *self.shutdown.borrow() {
                    break;
                }
                let deadline = match (self.ep.poll_timeout(), tu.poll_timeout()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let sleep = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                };
                let command = async {
                    match commands.as_mut() {
                        Some(Inbox::Unbounded(rx)) => rx.recv().await,
                        Some(Inbox::Bounded(rx)) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                // No bias: a flood of input must not starve the commands or the timers.
                tokio::select! {
                    _ = self.shutdown.changed() => {}
                    input = self.inputs.recv() => {
                        // The owner holds a sender, so the channel never closes.
                        if let Some(input) = input {
                            self.input(input);
                            // Take what else is queued before draining.
                            for _ in 0..64 {
                                match self.inputs.try_recv() {
                                    Ok(input) => self.input(input),
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    command = command => match command {
                        Some(c) => apply(&mut tu, Instant::now(), c, &mut self.ep),
                        None if matches!(commands, Some(Inbox::Bounded(_))) => commands = None,
                        None => break,
                    },
                    _ = sleep => {}
                }
            }
            let stats = self.ep.stats();
            tracing::debug!(?stats, "driver stopped");
            self.tasks.shutdown().await;
            Ok(Finished {
                tu,
                stats,
                driver: self.counters.snapshot(),
            })
        }
        .instrument(span)
        .await
    }

    fn input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Datagram {
                local,
                remote,
                data,
            } => self.ep.handle_datagram(now, local, remote, &data),
            Input::Stream { flow, data } => self.ep.handle_stream(now, flow, &data),
            Input::Accepted {
                local,
                remote,
                stream,
            } => {
                let transport = stream.transport();
                if transport == Transport::Tls {
                    self.counters.tls_handshakes.fetch_add(1, Ordering::Relaxed);
                }
                match self.ep.accept_flow(now, transport, local, remote) {
                    Ok(flow) => {
                        tracing::debug!(?flow, %remote, %local, ?transport, "accepted connection");
                        self.open_conn(flow, local, remote, stream);
                    }
                    Err(e) => tracing::warn!(%remote, ?transport, "refused connection: {e}"),
                }
            }
            Input::Connected { flow, stream } => {
                if stream.transport() == Transport::Tls {
                    self.counters.tls_handshakes.fetch_add(1, Ordering::Relaxed);
                }
                if !self.connecting.remove(&flow) {
                    // The endpoint gave up on this flow meanwhile.
                    return;
                }
                match (stream.tcp().local_addr(), stream.tcp().peer_addr()) {
                    (Ok(local), Ok(remote)) => {
                        tracing::debug!(?flow, %remote, %local, transport = ?stream.transport(), "connection up");
                        self.open_conn(flow, local, remote, stream);
                        self.ep
                            .handle_flow_event(now, flow, FlowEvent::Connected { local });
                    }
                    _ => self.ep.handle_flow_event(now, flow, FlowEvent::Failed),
                }
            }
            Input::ConnectFailed { flow, error, tls } => {
                match tls {
                    Some(why) => {
                        tracing::warn!(?flow, "{why}");
                        self.counters.tls_failed(Some(why));
                    }
                    None => tracing::info!(?flow, "TCP connect failed: {error}"),
                }
                if self.connecting.remove(&flow) {
                    self.ep.handle_flow_event(now, flow, FlowEvent::Failed);
                }
            }
            Input::Dns { id, answer } => {
                if matches!(answer, Answer::Timeout | Answer::ServerFailure) {
                    self.counters.dns_failures.fetch_add(1, Ordering::Relaxed);
                }
                self.ep.handle_dns_answer(now, id, answer);
                if let Some((resolver, query)) = self.dns.done() {
                    self.start_dns(resolver, query);
                }
            }
            Input::Closed { flow } => {
                if let Some(conn) = self.conns.remove(&flow) {
                    tracing::debug!(?flow, "connection closed");
                    conn.reader.abort();
                    self.ep.handle_flow_event(now, flow, FlowEvent::Closed);
                }
            }
            Input::Unreachable { remote } => {
                tracing::debug!(%remote, "destination unreachable");
                self.ep.handle_unreachable(now, remote);
            }
        }
    }

    fn open_conn(&mut self, flow: FlowId, local: SocketAddr, remote: SocketAddr, stream: Stream) {
        let _ = stream.tcp().set_nodelay(true);
        let transport = stream.transport();
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let span = tracing::info_span!("conn", ?flow);
        let inputs = self.input_tx.clone();
        let (reader, writer) = match stream {
            Stream::Tcp(stream) => {
                let (read, write) = stream.into_split();
                let reader = self.tasks.spawn(
                    stream_reader(read, flow, transport, local, remote, inputs.clone())
                        .instrument(span.clone()),
                );
                let writer = self.tasks.spawn(
                    stream_writer(
                        write,
                        flow,
                        transport,
                        local,
                        remote,
                        (rx, queued.clone()),
                        inputs,
                    )
                    .instrument(span),
                );
                (reader, writer)
            }
            Stream::Tls(stream) => {
                // The framing is the endpoint's: TLS is just another byte stream.
                let (read, write) = tokio::io::split(*stream);
                let reader = self.tasks.spawn(
                    buffered_reader(read, flow, transport, local, remote, inputs.clone())
                        .instrument(span.clone()),
                );
                let writer = self.tasks.spawn(
                    stream_writer(
                        write,
                        flow,
                        transport,
                        local,
                        remote,
                        (rx, queued.clone()),
                        inputs,
                    )
                    .instrument(span),
                );
                (reader, writer)
            }
        };
        self.conns.insert(
            flow,
            Conn {
                tx,
                reader,
                writer,
                queued,
            },
        );
    }

    /// Hands every event to the transaction user, then performs every transmit, then every
    /// I/O request (the order [`Endpoint`] documents: a Close comes after the bytes queued
    /// before it), until the endpoint has nothing more to say.
    fn drain<T: TransactionUser>(&mut self, tu: &mut T) {
        loop {
            let mut busy = false;
            while let Some(event) = self.ep.poll_event() {
                busy = true;
                tu.handle_event(Instant::now(), event, &mut self.ep);
            }
            let mut buf = Vec::new();
            while let Some(t) = self.ep.poll_transmit(&mut buf) {
                busy = true;
                self.transmit(t, std::mem::take(&mut buf));
            }
            while let Some(io) = self.ep.poll_io() {
                busy = true;
                self.io(io);
            }
            while let Some(query) = self.ep.poll_dns() {
                busy = true;
                match self.dns.ask(query) {
                    Ask::Start(resolver, query) => self.start_dns(resolver, query),
                    Ask::Answer(id, answer) => {
                        self.counters.dns_failures.fetch_add(1, Ordering::Relaxed);
                        self.ep.handle_dns_answer(Instant::now(), id, answer);
                    }
                    Ask::Wait => {}
                }
            }
            if !busy {
                break;
            }
        }
    }

    /// Asks one DNS question in a task; its answer comes back as [`Input::Dns`].
    fn start_dns(
        &mut self,
        resolver: Arc<hickory_resolver::TokioResolver>,
        query: sip_core::resolve::Query,
    ) {
        self.counters.dns_queries.fetch_add(1, Ordering::Relaxed);
        let inputs = self.input_tx.clone();
        let span = tracing::debug_span!("dns", name = %query.name, rtype = ?query.rtype);
        self.tasks.spawn(
            async move {
                let (id, answer) = dns::lookup(resolver, query).await;
                let _ = inputs.send(Input::Dns { id, answer }).await;
            }
            .instrument(span),
        );
    }

    /// The TLS client configuration: the one given, else one verifying against the
    /// system's roots (made once).
    fn tls_client(&mut self) -> Result<Arc<rustls::ClientConfig>, String> {
        if let Some(c) = &self.tls_client {
            return Ok(Arc::clone(c));
        }
        let c = sip_driver_sys::tls::client_config(None).map_err(|e| e.to_string())?;
        self.tls_client = Some(Arc::clone(&c));
        Ok(c)
    }

    fn io(&mut self, io: IoRequest) {
        match io {
            IoRequest::Connect {
                flow,
                transport,
                remote,
            } => {
                if transport == Transport::Udp {
                    tracing::warn!(?flow, %remote, ?transport, "transport not supported");
                    self.ep
                        .handle_flow_event(Instant::now(), flow, FlowEvent::Failed);
                    return;
                }
                // RFC 5922 section 4: the domain the server must prove, or its address.
                let tls = if transport == Transport::Tls {
                    let domain = self.ep.tls_server_name(flow).map(str::to_owned);
                    let config = match self.tls_client() {
                        Ok(c) => c,
                        Err(e) => {
                            let why = format!("TLS to {remote}: no client configuration: {e}");
                            tracing::warn!(?flow, "{why}");
                            self.counters.tls_failed(Some(why));
                            self.ep
                                .handle_flow_event(Instant::now(), flow, FlowEvent::Failed);
                            return;
                        }
                    };
                    Some((config, domain))
                } else {
                    None
                };
                tracing::debug!(?flow, %remote, ?transport, "connecting");
                self.connecting.insert(flow);
                let inputs = self.input_tx.clone();
                self.tasks.spawn(async move {
                    let input = connect(flow, remote, tls).await;
                    let _ = inputs.send(input).await;
                });
            }
            IoRequest::Close { flow } => {
                self.connecting.remove(&flow);
                if let Some(conn) = self.conns.remove(&flow) {
                    tracing::debug!(?flow, "closing connection");
                    // The writer flushes what is queued, then shuts the stream down.
                    conn.reader.abort();
                }
            }
            _ => tracing::warn!(?io, "unknown I/O request"),
        }
    }

    fn transmit(&mut self, t: Transmit, bytes: Vec<u8>) {
        match t.flow {
            None => {
                let socket = self.udp.iter().find(|(a, _)| *a == t.local).or_else(|| {
                    self.udp
                        .iter()
                        .find(|(a, _)| a.is_ipv4() == t.remote.is_ipv4())
                });
                match socket {
                    Some((_, tx)) => {
                        if tx.try_send((t.remote, bytes)).is_err() {
                            tracing::warn!(remote = %t.remote, "UDP send queue full, datagram dropped");
                        }
                    }
                    None => {
                        tracing::warn!(local = %t.local, remote = %t.remote, "no UDP socket to send from")
                    }
                }
            }
            Some(flow) => {
                let sent = self.conns.get(&flow).map(|c| {
                    let len = bytes.len();
                    let waiting = c.queued.load(Ordering::Relaxed);
                    if waiting > 0 && waiting + len > STREAM_QUEUE_BYTES {
                        return false;
                    }
                    c.queued.fetch_add(len, Ordering::Relaxed);
                    c.tx.try_send(bytes).is_ok()
                });
                if sent != Some(true) {
                    if sent.is_some() {
                        tracing::warn!(?flow, "connection send queue full, closing it");
                    }
                    if let Some(conn) = self.conns.remove(&flow) {
                        conn.reader.abort();
                        conn.writer.abort();
                    }
                    self.ep
                        .handle_flow_event(Instant::now(), flow, FlowEvent::Closed);
                }
            }
        }
    }
}

async fn udp_reader(socket: Arc<UdpSocket>, local: SocketAddr, inputs: mpsc::Sender<Input>) {
    let mut buf = vec![0u8; 65535];
    loop {
        // Datagrams, and the ICMP errors the system queues for ours (see `icmp`).
        let ready = match socket.ready(Interest::READABLE | Interest::ERROR).await {
            Ok(r) => r,
            Err(e) => {
                // (readiness itself failing does not get better by asking again at once)
                tracing::warn!("UDP socket error, reader stops: {e}");
                return;
            }
        };
        if ready.is_error() && !report_icmp(&socket, &inputs).await {
            return;
        }
        if !ready.is_readable() {
            continue;
        }
        match socket.try_recv_from(&mut buf) {
            Ok((n, remote)) => {
                let data = buf[..n].to_vec();
                log::message(Dir::Recv, Transport::Udp, local, remote, &data);
                if inputs
                    .send(Input::Datagram {
                        local,
                        remote,
                        data,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // An ICMP error of an earlier send surfacing: the error queue says more.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                if !report_icmp(&socket, &inputs).await {
                    return;
                }
            }
            Err(e) => tracing::debug!("UDP receive error: {e}"),
        }
    }
}

/// Reads the socket's error queue and reports each unreachable destination to the owner
/// (RFC 3261 section 18.4). False when the owner is gone.
async fn report_icmp(socket: &UdpSocket, inputs: &mpsc::Sender<Input>) -> bool {
    let mut gone = Vec::new();
    // Returning WouldBlock clears the error readiness until the next error arrives.
    let _ = socket.try_io(Interest::ERROR, || {
        icmp::drain(socket, &mut gone);
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
    for remote in gone {
        if inputs.send(Input::Unreachable { remote }).await.is_err() {
            return false;
        }
    }
    true
}

async fn udp_writer(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    mut rx: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    inputs: mpsc::Sender<Input>,
) {
    while let Some((remote, data)) = rx.recv().await {
        // Logged before the send so that the log reads in causal order.
        log::message(Dir::Sent, Transport::Udp, local, remote, &data);
        let mut sent = socket.send_to(&data, remote).await;
        if sent.as_ref().is_err_and(icmp::stale_error) {
            // An earlier ICMP error surfaced here instead of sending (the reader reports
            // it from the error queue): send this datagram.
            sent = socket.send_to(&data, remote).await;
        }
        if let Err(e) = sent {
            tracing::info!(%remote, "UDP send failed: {e}");
            // RFC 3261 section 18.4: a destination the system refuses to send to fails its
            // transactions now. Other errors: the transaction layer retransmits.
            if icmp::unreachable_send(&e)
                && inputs.send(Input::Unreachable { remote }).await.is_err()
            {
                return;
            }
        }
    }
}

/// Connects to `remote`, then, for TLS, runs the handshake verifying the server as
/// `domain` (or its address when there is no domain).
async fn connect(
    flow: FlowId,
    remote: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
) -> Input {
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            let tls = tls.map(|_| format!("TLS to {remote}: {error}"));
            return Input::ConnectFailed { flow, error, tls };
        }
        Err(_) => {
            let tls = tls.map(|_| format!("TLS to {remote}: connect timed out"));
            return Input::ConnectFailed {
                flow,
                error: io::ErrorKind::TimedOut.into(),
                tls,
            };
        }
    };
    let Some((config, domain)) = tls else {
        return Input::Connected {
            flow,
            stream: Stream::Tcp(tcp),
        };
    };
    let _ = tcp.set_nodelay(true);
    let name = sip_driver_sys::tls::server_name(domain.as_deref(), remote);
    let expected = domain.unwrap_or_else(|| remote.ip().to_string());
    let handshake = TlsConnector::from(config).connect(name, tcp);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Input::Connected {
            flow,
            stream: Stream::Tls(Box::new(TlsStream::Client(stream))),
        },
        Ok(Err(error)) => {
            let why = format!("TLS to {remote}: {}", tls_reason(&error, &expected));
            Input::ConnectFailed {
                flow,
                error,
                tls: Some(why),
            }
        }
        Err(_) => Input::ConnectFailed {
            flow,
            error: io::ErrorKind::TimedOut.into(),
            tls: Some(format!("TLS to {remote}: handshake timed out")),
        },
    }
}

/// Why a TLS handshake failed, in words (see [`sip_driver_sys::tls::failure_reason`]);
/// an error that is not rustls' (the connection broke) as it is.
pub(crate) fn tls_reason(error: &io::Error, expected: &str) -> String {
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(e) => sip_driver_sys::tls::failure_reason(e, expected),
        None => error.to_string(),
    }
}

async fn tcp_acceptor(listener: TcpListener, local: SocketAddr, inputs: mpsc::Sender<Input>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let local = stream.local_addr().unwrap_or(local);
                if inputs
                    .send(Input::Accepted {
                        local,
                        remote,
                        stream: Stream::Tcp(stream),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Accepts TLS connections: each handshake runs in a task of its own (bounded in number
/// and time), so that a slow peer holds up nobody; a connection is handed to the owner
/// only once its handshake is done. The handshake tasks end with this one.
async fn tls_acceptor(
    listener: TcpListener,
    local: SocketAddr,
    acceptor: TlsAcceptor,
    inputs: mpsc::Sender<Input>,
    counters: Arc<Counters>,
) {
    let mut handshakes = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = handshakes.join_next() => continue,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if handshakes.len() >= MAX_HANDSHAKES {
            tracing::warn!(%remote, "too many TLS handshakes at once, connection closed");
            continue;
        }
        let local = stream.local_addr().unwrap_or(local);
        let _ = stream.set_nodelay(true);
        let (acceptor, inputs, counters) = (acceptor.clone(), inputs.clone(), counters.clone());
        handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let stream = Stream::Tls(Box::new(TlsStream::Server(tls)));
                    let _ = inputs
                        .send(Input::Accepted {
                            local,
                            remote,
                            stream,
                        })
                        .await;
                }
                Ok(Err(e)) => {
                    tracing::info!(%remote, "TLS handshake failed: {e}");
                    counters.tls_failed(None);
                }
                Err(_) => {
                    tracing::info!(%remote, "TLS handshake timed out");
                    counters.tls_failed(None);
                }
            }
        });
    }
}

/// Reads a stream that has its own buffering (TLS): into a buffer of the size the reads
/// have needed lately.
async fn buffered_reader<R: AsyncRead + Unpin>(
    mut read: R,
    flow: FlowId,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    inputs: mpsc::Sender<Input>,
) {
    let mut size = READ_MIN;
    let mut log = StreamLog::default();
    loop {
        let mut data = Vec::with_capacity(size);
        match read.read_buf(&mut data).await {
            Ok(0) => break,
            Ok(n) => {
                if n == size {
                    size = (size * 2).min(READ_MAX);
                } else if n <= READ_MIN {
                    size = READ_MIN;
                }
                if n <= data.capacity() / 2 {
                    data.shrink_to_fit();
                }
                log.feed(transport, local, remote, &data);
                if inputs.send(Input::Stream { flow, data }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!("read failed: {e}");
                break;
            }
        }
    }
    let _ = inputs.send(Input::Closed { flow }).await;
}

async fn stream_reader(
    read: OwnedReadHalf,
    flow: FlowId,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    inputs: mpsc::Sender<Input>,
) {
    let mut size = READ_MIN;
    let mut log = StreamLog::default();
    loop {
        // Wait for data holding no buffer: an idle connection costs none (a 64 KiB buffer
        // per connection up front was 424 MB for 8,192 silent connections).
        if let Err(e) = read.readable().await {
            tracing::debug!("read failed: {e}");
            break;
        }
        let mut data = Vec::with_capacity(size);
        match read.try_read_buf(&mut data) {
            Ok(0) => break,
            Ok(n) => {
                // A read that filled the buffer may have left more: read more next time,
                // up to the largest message; a small one brings the size back down.
                if n == size {
                    size = (size * 2).min(READ_MAX);
                } else if n <= READ_MIN {
                    size = READ_MIN;
                }
                if n <= data.capacity() / 2 {
                    data.shrink_to_fit();
                }
                log.feed(transport, local, remote, &data);
                if inputs.send(Input::Stream { flow, data }).await.is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::debug!("read failed: {e}");
                break;
            }
        }
    }
    let _ = inputs.send(Input::Closed { flow }).await;
}

/// The first read of a connection, and the size it returns to after a large message.
const READ_MIN: usize = 4 * 1024;

/// The largest read: a whole message at the default size limit.
const READ_MAX: usize = 64 * 1024;

async fn stream_writer<W: AsyncWrite + Unpin>(
    mut write: W,
    flow: FlowId,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    // the queue of messages to write, and its size in bytes
    (mut rx, queued): (mpsc::Receiver<Vec<u8>>, Arc<AtomicUsize>),
    inputs: mpsc::Sender<Input>,
) {
    while let Some(data) = rx.recv().await {
        log::message(Dir::Sent, transport, local, remote, &data);
        let written = tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&data)).await;
        if let Err(e) = written.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())) {
            tracing::info!("write failed: {e}");
            let _ = inputs.send(Input::Closed { flow }).await;
            return;
        }
        queued.fetch_sub(data.len(), Ordering::Relaxed);
    }
    // The owner dropped the connection: what was queued is written, now close it.
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write.shutdown()).await;
}
