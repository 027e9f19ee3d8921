//! The driver: binds the listeners, then one task owns the [`Endpoint`] and its transaction
//! user while socket tasks move bytes through channels.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_core::{
    Config, Endpoint, FlowEvent, FlowId, IoRequest, Listener, Stats, TransactionUser, Transmit,
    Transport,
};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use sip_driver_sys::{icmp, os_seed};
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;

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
        mut config: Config,
    ) -> Result<Driver, Error> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
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
        let shutdown = self.shutdown.subscribe();
        let endpoint = Endpoint::new(self.config, self.seed);
        (
            Owner {
                ep: endpoint,
                inputs,
                input_tx,
                udp,
                conns: HashMap::new(),
                connecting: HashSet::new(),
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
        stream: TcpStream,
    },
    Connected {
        flow: FlowId,
        stream: TcpStream,
    },
    ConnectFailed {
        flow: FlowId,
        error: io::Error,
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
            Ok(Finished { tu, stats })
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
            } => match self.ep.accept_flow(now, Transport::Tcp, local, remote) {
                Ok(flow) => {
                    tracing::debug!(?flow, %remote, %local, "accepted TCP connection");
                    self.open_conn(flow, Transport::Tcp, local, remote, stream);
                }
                Err(e) => tracing::warn!(%remote, "refused TCP connection: {e}"),
            },
            Input::Connected { flow, stream } => {
                if !self.connecting.remove(&flow) {
                    // The endpoint gave up on this flow meanwhile.
                    return;
                }
                match (stream.local_addr(), stream.peer_addr()) {
                    (Ok(local), Ok(remote)) => {
                        tracing::debug!(?flow, %remote, %local, "TCP connection up");
                        self.open_conn(flow, Transport::Tcp, local, remote, stream);
                        self.ep
                            .handle_flow_event(now, flow, FlowEvent::Connected { local });
                    }
                    _ => self.ep.handle_flow_event(now, flow, FlowEvent::Failed),
                }
            }
            Input::ConnectFailed { flow, error } => {
                if self.connecting.remove(&flow) {
                    tracing::info!(?flow, "TCP connect failed: {error}");
                    self.ep.handle_flow_event(now, flow, FlowEvent::Failed);
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

    fn open_conn(
        &mut self,
        flow: FlowId,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        stream: TcpStream,
    ) {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        let span = tracing::info_span!("conn", ?flow);
        let reader = self.tasks.spawn(
            stream_reader(read, flow, transport, local, remote, self.input_tx.clone())
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
                self.input_tx.clone(),
            )
            .instrument(span),
        );
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
            if !busy {
                break;
            }
        }
    }

    fn io(&mut self, io: IoRequest) {
        match io {
            IoRequest::Connect {
                flow,
                transport,
                remote,
            } => {
                if transport != Transport::Tcp {
                    tracing::warn!(?flow, %remote, ?transport, "transport not supported");
                    self.ep
                        .handle_flow_event(Instant::now(), flow, FlowEvent::Failed);
                    return;
                }
                tracing::debug!(?flow, %remote, "connecting");
                self.connecting.insert(flow);
                let inputs = self.input_tx.clone();
                self.tasks.spawn(async move {
                    let input =
                        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote))
                            .await
                        {
                            Ok(Ok(stream)) => Input::Connected { flow, stream },
                            Ok(Err(error)) => Input::ConnectFailed { flow, error },
                            Err(_) => Input::ConnectFailed {
                                flow,
                                error: io::ErrorKind::TimedOut.into(),
                            },
                        };
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

async fn tcp_acceptor(listener: TcpListener, local: SocketAddr, inputs: mpsc::Sender<Input>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let local = stream.local_addr().unwrap_or(local);
                if inputs
                    .send(Input::Accepted {
                        local,
                        remote,
                        stream,
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

async fn stream_writer(
    mut write: OwnedWriteHalf,
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
