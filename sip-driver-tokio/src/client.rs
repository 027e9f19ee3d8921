//! The async application API: a built-in transaction user inside the owner task forwards
//! events to channels keyed by transaction, and the handles here send it commands.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_core::message::Contact;
use sip_core::session::SessionConfig;
use sip_core::{
    ClientTxId, Endpoint, Event, HeaderName, HeaderValue, Listener, Method, NextHop, OwnedMessage,
    RequestBuilder, ResponseBuilder, Rng, SeededRng, SendError, ServerTxId, Source, Timer,
    TransactionUser, Transport, TxId,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::call::{CallCommand, CallTable, IncomingCall};
use crate::driver::{first_addr, Counters};
use crate::registration::{unregister_all, RegCommand, Registered};
use crate::{Driver, DriverStats, Error, RequestError};

/// Requests queued for the application before new ones are answered 503.
const INCOMING_QUEUE: usize = 256;

/// Forks of an INVITE given up at timer C whose 2xx gets an ACK and a BYE; 2xx responses
/// with further To tags are ignored (they time out at the callee).
const MAX_ABANDONED_FORKS: usize = 16;

/// What the handles ask of the owner task.
#[derive(Debug)]
pub(crate) enum Command {
    Request {
        request: OwnedMessage,
        target: NextHop,
        /// Give up waiting for the final response after this long.
        timeout: Option<Duration>,
        responses: mpsc::UnboundedSender<Result<OwnedMessage, RequestError>>,
        reply: oneshot::Sender<Result<ClientTxId, SendError>>,
    },
    Cancel {
        tx: ClientTxId,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
    Ack {
        ack: OwnedMessage,
        target: NextHop,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
    Respond {
        tx: ServerTxId,
        response: Reply,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// A responder was dropped before a final response.
    Abandon { tx: ServerTxId },
    /// A call's command ([`crate::Call`], [`Client::call`]).
    Call(CallCommand),
}

#[derive(Debug)]
pub(crate) enum Reply {
    Message(OwnedMessage),
    Status(u16),
}

/// Sends requests through a running driver started with [`Driver::start`]. Cheap to clone;
/// the driver stops when every [`Client`], the [`Incoming`] stream and every [`Responder`]
/// are dropped, or at [`Client::shutdown`].
#[derive(Debug, Clone)]
pub struct Client {
    cmds: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    listeners: Vec<Listener>,
    shutdown: Arc<watch::Sender<bool>>,
    done: watch::Receiver<bool>,
    /// The live registrations' tasks, removed at [`Client::shutdown`].
    registrations: std::sync::Mutex<Vec<mpsc::WeakUnboundedSender<RegCommand>>>,
    /// How many of them are up, per AOR (RFC 5626 section 4.5's base time).
    registered: Arc<Registered>,
    /// The driver's own counters.
    counters: Arc<Counters>,
}

/// The responses to one request: provisional ones, then the final one. Ends after the final
/// response or an error.
#[derive(Debug)]
pub struct Responses {
    tx: ClientTxId,
    rx: mpsc::UnboundedReceiver<Result<OwnedMessage, RequestError>>,
    cmds: mpsc::UnboundedSender<Command>,
    done: bool,
}

/// The requests that arrive, each with its [`Responder`]. CANCEL is handled by the driver
/// (200 to the CANCEL, 487 to the INVITE) and ACKs end 2xx retransmissions; neither is
/// delivered here. Requests inside (or cancelling) the calls of [`Client::call`] and
/// [`crate::IncomingCalls`] are the session layer's and not delivered here either, nor,
/// while an [`crate::IncomingCalls`] lives, a new INVITE.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<(OwnedMessage, Responder)>,
    /// Keeps the driver alive while the application listens.
    _cmds: mpsc::UnboundedSender<Command>,
}

/// Answers one received request. Dropping it before a final response answers 500.
#[derive(Debug)]
pub struct Responder {
    tx: ServerTxId,
    source: Source,
    cmds: mpsc::UnboundedSender<Command>,
    finished: bool,
}

impl Driver {
    /// Starts the driver on the current tokio runtime with the built-in transaction user,
    /// and returns the handles of the async API.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use sip_driver_tokio::Driver;
    ///
    /// let (client, mut incoming) = Driver::bind(["udp:127.0.0.1:0".parse()?]).await?.start();
    /// while let Some((request, mut responder)) = incoming.next().await {
    ///     println!("{:?}", request.view().method());
    ///     responder.respond_status(200).await?;
    /// }
    /// client.shutdown().await;
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> (Client, Incoming) {
        let mut config = SessionConfig::new("user");
        config.timers = self.config().timers;
        self.start_inner(config, None)
    }

    /// [`Driver::start`] with the session layer's configuration, and the queue of incoming
    /// calls when the application takes them ([`Driver::start_with_calls`]).
    pub(crate) fn start_inner(
        self,
        sessions: SessionConfig,
        incoming_calls: Option<mpsc::Sender<IncomingCall>>,
    ) -> (Client, Incoming) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(INCOMING_QUEUE);
        let (done_tx, done_rx) = watch::channel(false);
        let listeners = self.listeners().to_vec();
        let shutdown = self.shutdown_handle_arc();
        let counters = self.counters();
        let mut rng = SeededRng::new(self.tu_seed());
        // The session layer's own seed (tags, Call-IDs, the retry timers of RFC 3261 14.1).
        let mut session_seed = [0u8; 32];
        for chunk in session_seed.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let tu = AppTu {
            incoming: in_tx,
            cmds: cmd_tx.downgrade(),
            pending: HashMap::new(),
            servers: HashMap::new(),
            retransmits: Vec::new(),
            acks: HashMap::new(),
            invites: HashMap::new(),
            abandoned: HashMap::new(),
            deadlines: BTreeSet::new(),
            rng,
            calls: CallTable::new(sessions, session_seed, incoming_calls, cmd_tx.downgrade()),
        };
        let (owner, tu) = self.into_owner(tu);
        tokio::spawn(async move {
            let _ = owner.run(tu, Some(cmd_rx), AppTu::command).await;
            done_tx.send_replace(true);
        });
        let client = Client {
            cmds: cmd_tx.clone(),
            shared: Arc::new(Shared {
                listeners,
                shutdown,
                done: done_rx,
                registrations: std::sync::Mutex::new(Vec::new()),
                registered: Arc::default(),
                counters,
            }),
        };
        let incoming = Incoming {
            rx: in_rx,
            _cmds: cmd_tx,
        };
        (client, incoming)
    }
}

impl Client {
    /// Sends `request` (anything but ACK, without a Via: the endpoint writes its own) to
    /// `hop`, and returns its responses.
    ///
    /// `hop` is a [`Target`](sip_core::Target) (transport and address), or a
    /// [`NextHop::Uri`] that the endpoint locates itself (RFC 3263: NAPTR, SRV, A and AAAA
    /// through the driver's DNS, and failover to the next server on a transport error, a
    /// timeout or a 503). `NextHop::of_request(&request)` is the request's own next hop:
    /// its first Route, else its Request-URI:
    ///
    /// ```no_run
    /// # async fn f(client: sip_driver_tokio::Client, request: sip_core::OwnedMessage) -> Result<(), Box<dyn std::error::Error>> {
    /// use sip_core::NextHop;
    ///
    /// // sip:bob@example.test: NAPTR and SRV of example.test, then A/AAAA of the target.
    /// let responses = client.request(request, NextHop::uri("sip:bob@example.test")).await?;
    /// let ok = responses.final_response().await?;
    /// # Ok(()) }
    /// ```
    pub async fn request(
        &self,
        request: OwnedMessage,
        hop: impl Into<NextHop>,
    ) -> Result<Responses, Error> {
        self.request_inner(request, hop.into(), None).await
    }

    /// Like [`Client::request`], but the responses end with [`RequestError::Timeout`] if no
    /// final response has come `timeout` after the request was sent, even when the
    /// transaction's own timers (B, F: 64*T1, 32 s by default) would wait longer.
    ///
    /// An INVITE is then cancelled (RFC 3261 section 9.1), and a 2xx that still arrives is
    /// ACKed and its call ended with BYE by the driver, as after timer C. A non-INVITE
    /// request cannot be cancelled: its transaction runs to its end, its responses unheard.
    pub async fn request_with_timeout(
        &self,
        request: OwnedMessage,
        hop: impl Into<NextHop>,
        timeout: Duration,
    ) -> Result<Responses, Error> {
        self.request_inner(request, hop.into(), Some(timeout)).await
    }

    async fn request_inner(
        &self,
        request: OwnedMessage,
        target: NextHop,
        timeout: Option<Duration>,
    ) -> Result<Responses, Error> {
        let (responses, rx) = mpsc::unbounded_channel();
        let (reply, result) = oneshot::channel();
        self.send(Command::Request {
            request,
            target,
            timeout,
            responses,
            reply,
        })?;
        let tx = result.await.map_err(|_| Error::Stopped)??;
        Ok(Responses {
            tx,
            rx,
            cmds: self.cmds.clone(),
            done: false,
        })
    }

    /// Cancels a pending INVITE (RFC 3261 section 9.1); its [`Responses`] then end with a
    /// 487, or with the final response that crossed the CANCEL.
    pub async fn cancel(&self, tx: ClientTxId) -> Result<(), Error> {
        cancel(&self.cmds, tx).await
    }

    /// Sends the ACK for a 2xx to an INVITE (RFC 3261 section 13.2.2.4), without a Via.
    /// The driver sends it again whenever the 2xx is retransmitted, for 64*T1.
    pub async fn ack(&self, ack: OwnedMessage, hop: impl Into<NextHop>) -> Result<(), Error> {
        let (reply, result) = oneshot::channel();
        let target = hop.into();
        self.send(Command::Ack { ack, target, reply })?;
        Ok(result.await.map_err(|_| Error::Stopped)??)
    }

    /// The driver's own counters: TLS handshakes (one per connection, however many
    /// requests it carries), DNS questions asked, and why the last TLS connection failed.
    pub fn driver_stats(&self) -> DriverStats {
        self.shared.counters.snapshot()
    }

    /// The bound addresses.
    pub fn listeners(&self) -> &[Listener] {
        &self.shared.listeners
    }

    /// The first bound address of `transport`.
    pub fn local_addr(&self, transport: Transport) -> Option<std::net::SocketAddr> {
        first_addr(&self.shared.listeners, transport)
    }

    /// Removes the bindings of the live registrations ([`Client::register`], waiting up to
    /// 5 s for them), then stops the driver and waits until its sockets are closed.
    pub async fn shutdown(&self) {
        let live: Vec<_> = match self.shared.registrations.lock() {
            Ok(mut r) => r.drain(..).filter_map(|w| w.upgrade()).collect(),
            Err(_) => Vec::new(),
        };
        if !live.is_empty() {
            unregister_all(live).await;
        }
        self.shared.shutdown.send_replace(true);
        let mut done = self.shared.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }

    /// Keeps a registration's task to remove its binding at shutdown.
    pub(crate) fn add_registration(&self, cmds: mpsc::WeakUnboundedSender<RegCommand>) {
        if let Ok(mut r) = self.shared.registrations.lock() {
            // Forget the ended ones, so that the list does not grow with every registration.
            r.retain(|w| w.strong_count() > 0);
            r.push(cmds);
        }
    }

    /// The count of registrations up per AOR, shared by the registration tasks.
    pub(crate) fn registered(&self) -> Arc<Registered> {
        Arc::clone(&self.shared.registered)
    }

    pub(crate) fn send(&self, cmd: Command) -> Result<(), Error> {
        self.cmds.send(cmd).map_err(|_| Error::Stopped)
    }

    /// A sender of commands, which keeps the driver running while it lives.
    pub(crate) fn commands(&self) -> mpsc::UnboundedSender<Command> {
        self.cmds.clone()
    }
}

async fn cancel(cmds: &mpsc::UnboundedSender<Command>, tx: ClientTxId) -> Result<(), Error> {
    let (reply, result) = oneshot::channel();
    cmds.send(Command::Cancel { tx, reply })
        .map_err(|_| Error::Stopped)?;
    Ok(result.await.map_err(|_| Error::Stopped)??)
}

impl Responses {
    /// The client transaction.
    pub fn id(&self) -> ClientTxId {
        self.tx
    }

    /// The next response; `None` after the final response or an error.
    pub async fn next(&mut self) -> Option<Result<OwnedMessage, RequestError>> {
        if self.done {
            return None;
        }
        let item = self.rx.recv().await.unwrap_or(Err(RequestError::Stopped));
        match &item {
            Ok(r) if r.view().status().is_some_and(|c| c < 200) => {}
            _ => self.done = true,
        }
        Some(item)
    }

    /// Skips provisional responses and returns the final one.
    pub async fn final_response(mut self) -> Result<OwnedMessage, RequestError> {
        loop {
            match self.next().await {
                Some(Ok(r)) if r.view().status().is_some_and(|c| c < 200) => continue,
                Some(r) => return r,
                None => return Err(RequestError::Stopped),
            }
        }
    }

    /// Cancels the request (an INVITE, RFC 3261 section 9.1).
    pub async fn cancel(&self) -> Result<(), Error> {
        cancel(&self.cmds, self.tx).await
    }
}

impl Incoming {
    /// The next request; `None` once the driver has stopped.
    pub async fn next(&mut self) -> Option<(OwnedMessage, Responder)> {
        self.rx.recv().await
    }
}

impl Responder {
    /// The server transaction.
    pub fn id(&self) -> ServerTxId {
        self.tx
    }

    /// Where the request came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Sends a response built by the application (for example with
    /// [`ResponseBuilder::from_view`]); it must carry the request's Via. May be called for
    /// provisional responses, then once for the final one.
    pub async fn respond(&mut self, response: OwnedMessage) -> Result<(), Error> {
        self.respond_with(Reply::Message(response)).await
    }

    /// Sends a response with `code` and the default reason phrase, built by the driver
    /// with one To tag for every response of the transaction.
    pub async fn respond_status(&mut self, code: u16) -> Result<(), Error> {
        self.respond_with(Reply::Status(code)).await
    }

    async fn respond_with(&mut self, response: Reply) -> Result<(), Error> {
        let final_ = match &response {
            Reply::Message(m) => m.view().status().is_some_and(|c| c >= 200),
            Reply::Status(c) => *c >= 200,
        };
        let (reply, result) = oneshot::channel();
        self.cmds
            .send(Command::Respond {
                tx: self.tx,
                response,
                reply,
            })
            .map_err(|_| Error::Stopped)?;
        let r = result.await.map_err(|_| Error::Stopped)?;
        if final_ && r.is_ok() {
            self.finished = true;
        }
        r
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.cmds.send(Command::Abandon { tx: self.tx });
        }
    }
}

/// A server transaction the application is answering.
#[derive(Debug)]
struct ServerInfo {
    invite: bool,
    reliable: bool,
    to_tag: String,
}

/// A 2xx to an INVITE over UDP, retransmitted by the transaction user until the ACK comes
/// (RFC 3261 section 13.3.1.4).
#[derive(Debug)]
struct Retransmit {
    tx: ServerTxId,
    call_id: String,
    cseq: u32,
    response: OwnedMessage,
    next: Instant,
    interval: Duration,
    until: Instant,
}

/// The built-in transaction user behind [`Client`] and [`Incoming`].
#[derive(Debug)]
pub(crate) struct AppTu {
    incoming: mpsc::Sender<(OwnedMessage, Responder)>,
    /// Weak, so that the handles alone keep the driver running.
    cmds: mpsc::WeakUnboundedSender<Command>,
    pending: HashMap<ClientTxId, mpsc::UnboundedSender<Result<OwnedMessage, RequestError>>>,
    servers: HashMap<ServerTxId, ServerInfo>,
    retransmits: Vec<Retransmit>,
    /// ACKs sent for 2xx responses, by Call-ID and CSeq number, sent again when the 2xx is
    /// retransmitted (RFC 3261 section 13.2.2.4), until they expire (64*T1).
    acks: HashMap<(String, u32), SentAck>,
    rng: SeededRng,
    /// The INVITEs waiting for their final response, as the application wrote them: what
    /// the ACK and BYE for a 2xx are made from if timer C makes the application give up.
    invites: HashMap<ClientTxId, (OwnedMessage, NextHop)>,
    /// INVITEs the application was told timed out at timer C: the endpoint sent CANCEL, but
    /// a 2xx may still arrive (RFC 3261 section 9.1); the driver then ACKs it and ends the
    /// call with BYE (sections 13.2.2.4 and 15), since nobody holds the call.
    abandoned: HashMap<ClientTxId, Abandoned>,
    /// The deadlines of [`Client::request_with_timeout`]; an entry whose transaction has
    /// its final response already is skipped when it comes up.
    deadlines: BTreeSet<(Instant, ClientTxId)>,
    /// The session layer and the calls ([`Client::call`], [`crate::IncomingCalls`]).
    calls: CallTable,
}

/// An INVITE given up at timer C. See [`AppTu::abandoned`].
#[derive(Debug)]
struct Abandoned {
    invite: OwnedMessage,
    target: NextHop,
    /// The To tags of the 2xx responses already ACKed and ended (one per fork).
    ended: Vec<String>,
    /// After this no 2xx can match the transaction any more (64*T1 after timer C for the
    /// final response, then 64*T1 of 2xx retransmissions).
    until: Instant,
}

#[derive(Debug)]
struct SentAck {
    ack: OwnedMessage,
    target: NextHop,
    until: Instant,
}

fn call_id_cseq(m: &OwnedMessage) -> (String, u32) {
    let v = m.view();
    let call_id = v.header(HeaderName::CallId).unwrap_or("").trim().to_owned();
    let cseq = v
        .header(HeaderName::CSeq)
        .and_then(|c| c.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (call_id, cseq)
}

impl AppTu {
    fn command(&mut self, now: Instant, cmd: Command, ep: &mut Endpoint) {
        match cmd {
            Command::Request {
                request,
                target,
                timeout,
                responses,
                reply,
            } => {
                let r = ep.send_request(now, &request, target.clone());
                if let Ok(tx) = r {
                    self.pending.insert(tx, responses);
                    // A deadline beyond what the clock can name is no deadline.
                    if let Some(at) = timeout.and_then(|t| now.checked_add(t)) {
                        self.deadlines.insert((at, tx));
                    }
                    if request.view().method() == Some(Method::Invite) {
                        self.invites.insert(tx, (request, target));
                    }
                }
                let _ = reply.send(r);
            }
            Command::Cancel { tx, reply } => {
                let _ = reply.send(ep.cancel(now, tx).map(|_| ()));
            }
            Command::Ack { ack, target, reply } => {
                let r = ep.send_ack(now, &ack, target.clone());
                if r.is_ok() {
                    self.acks.retain(|_, a| a.until > now);
                    let until = now + ep.config().timers.t1x64();
                    self.acks
                        .insert(call_id_cseq(&ack), SentAck { ack, target, until });
                }
                let _ = reply.send(r);
            }
            Command::Respond {
                tx,
                response,
                reply,
            } => {
                let _ = reply.send(self.respond(now, tx, response, ep));
            }
            Command::Abandon { tx } => {
                if self.servers.contains_key(&tx) {
                    let _ = self.respond(now, tx, Reply::Status(500), ep);
                }
                self.servers.remove(&tx);
            }
            Command::Call(cmd) => self.calls.command(now, cmd, ep),
        }
    }

    /// Is `event` the session layer's to see first? Requests inside (or cancelling) its
    /// calls, and new INVITEs while the application takes incoming calls; responses,
    /// timeouts and transport errors of transactions the request/response API did not start
    /// (the session layer gives back what is not its own).
    fn for_sessions(&self, event: &Event) -> bool {
        match event {
            Event::Request { request, .. } => self.calls.wants_request(request),
            Event::Ack { .. } | Event::StrayResponse { .. } => self.calls.active(),
            Event::Response { tx, .. }
            | Event::Timeout {
                tx: TxId::Client(tx),
                ..
            }
            | Event::TransportError {
                tx: TxId::Client(tx),
            } => {
                self.calls.active()
                    && !self.pending.contains_key(tx)
                    && !self.abandoned.contains_key(tx)
            }
            Event::Timeout {
                tx: TxId::Server(tx),
                ..
            }
            | Event::TransportError {
                tx: TxId::Server(tx),
            } => self.calls.active() && !self.servers.contains_key(tx),
            _ => self.calls.active(),
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        response: Reply,
        ep: &mut Endpoint,
    ) -> Result<(), Error> {
        let response = match response {
            Reply::Message(m) => m,
            Reply::Status(code) => {
                let request = ep
                    .server_request(tx)
                    .ok_or(SendError::UnknownTransaction)?
                    .clone();
                let view = request.view();
                let mut b = ResponseBuilder::from_view(&view, code);
                if let Some(info) = self.servers.get(&tx) {
                    b = b.to_tag(&info.to_tag);
                }
                b.build(&mut self.rng)?
            }
        };
        let code = response.view().status().unwrap_or(0);
        ep.send_response(now, tx, &response)?;
        if code >= 200 {
            if let Some(info) = self.servers.remove(&tx) {
                if info.invite && !info.reliable && (200..300).contains(&code) {
                    let t = ep.config().timers;
                    let (call_id, cseq) = call_id_cseq(&response);
                    self.retransmits.push(Retransmit {
                        tx,
                        call_id,
                        cseq,
                        response,
                        next: now + t.t1,
                        interval: t.t1,
                        until: now + t.t1x64(),
                    });
                }
            }
        }
        Ok(())
    }

    fn respond_now(&mut self, now: Instant, tx: ServerTxId, code: u16, ep: &mut Endpoint) {
        if let Err(e) = self.respond(now, tx, Reply::Status(code), ep) {
            tracing::debug!(?tx, code, "could not respond: {e}");
        }
        self.servers.remove(&tx);
    }

    /// A 2xx to an INVITE that arrived again after its final response: ACK it again.
    fn reack(&mut self, now: Instant, response: &OwnedMessage, ep: &mut Endpoint) {
        let view = response.view();
        let invite = view
            .header(HeaderName::CSeq)
            .is_some_and(|c| c.split_whitespace().nth(1) == Some("INVITE"));
        if !invite || !view.status().is_some_and(|c| (200..300).contains(&c)) {
            return;
        }
        if let Some(a) = self.acks.get(&call_id_cseq(response)) {
            if a.until > now {
                let _ = ep.send_ack(now, &a.ack, a.target.clone());
            }
        }
    }

    /// The application gives up on INVITE `tx` (timer C fired, or its own deadline passed):
    /// a 2xx that still arrives is the driver's to end.
    fn abandon(&mut self, now: Instant, tx: ClientTxId, ep: &Endpoint) {
        if let Some((invite, target)) = self.invites.remove(&tx) {
            self.abandoned.retain(|_, a| a.until > now);
            let until = now + ep.config().timers.t1x64().saturating_mul(2);
            self.abandoned.insert(
                tx,
                Abandoned {
                    invite,
                    target,
                    ended: Vec::new(),
                    until,
                },
            );
        }
    }

    /// A response to an INVITE given up at timer C: a 2xx is ACKed and its call ended with
    /// BYE (RFC 3261 sections 9.1, 13.2.2.4 and 15); a retransmitted 2xx is ACKed again.
    fn end_abandoned(
        &mut self,
        now: Instant,
        tx: ClientTxId,
        response: &OwnedMessage,
        ep: &mut Endpoint,
    ) {
        let Some(code) = response.view().status() else {
            return;
        };
        if code < 200 {
            return;
        }
        if code >= 300 {
            // The CANCEL won: 487 (or another failure); the transaction ACKs it itself.
            self.abandoned.remove(&tx);
            return;
        }
        let Ok(ok) = response.message() else {
            return;
        };
        // Only a 2xx to the INVITE itself: the 200 to the CANCEL carries the same CSeq
        // number (section 9.1) and must not start an ACK and a BYE.
        if ok.cseq().map(|c| c.method) != Some(Method::Invite) {
            return;
        }
        let to_tag = ok.to().and_then(|t| t.tag()).unwrap_or("").to_owned();
        let Some(a) = self.abandoned.get_mut(&tx) else {
            return;
        };
        if a.ended.contains(&to_tag) {
            self.reack(now, response, ep);
            return;
        }
        // Each fork's 2xx costs an ACK and a BYE: a bounded number of forks per abandoned
        // INVITE, so that forged 2xx responses cannot make the client send without end.
        if a.ended.len() >= MAX_ABANDONED_FORKS {
            tracing::debug!(?tx, "2xx from one fork too many ignored");
            return;
        }
        a.ended.push(to_tag);
        let (invite, target) = (a.invite.clone(), a.target.clone());
        match dialog_requests(&invite, response, &mut self.rng) {
            Ok((ack, bye)) => {
                if ep.send_ack(now, &ack, target.clone()).is_ok() {
                    self.acks.retain(|_, a| a.until > now);
                    let until = now + ep.config().timers.t1x64();
                    self.acks.insert(
                        call_id_cseq(&ack),
                        SentAck {
                            ack,
                            target: target.clone(),
                            until,
                        },
                    );
                }
                // Nobody waits for the BYE's responses: they are dropped as unknown.
                if let Err(e) = ep.send_request(now, &bye, target) {
                    tracing::debug!(?tx, "could not end the abandoned call: {e}");
                }
            }
            Err(e) => tracing::debug!(?tx, "cannot build the ACK and BYE: {e}"),
        }
    }

    fn finish_client(&mut self, tx: ClientTxId, r: Result<OwnedMessage, RequestError>) {
        let last = !matches!(&r, Ok(m) if m.view().status().is_some_and(|c| c < 200));
        if last {
            self.invites.remove(&tx);
        }
        if let Some(ch) = if last {
            self.pending.remove(&tx)
        } else {
            self.pending.get(&tx).cloned()
        } {
            let _ = ch.send(r);
        }
    }
}

/// The ACK and the BYE for a 2xx to `invite`, in the dialog the 2xx set up (RFC 3261
/// sections 12.1.2, 12.2.1.1 and 13.2.2.4): Request-URI the 2xx's Contact, Route the
/// reversed Record-Route, From and Call-ID of the INVITE, To of the 2xx; the ACK has the
/// INVITE's CSeq number, the BYE the next one.
fn dialog_requests(
    invite: &OwnedMessage,
    ok: &OwnedMessage,
    rng: &mut SeededRng,
) -> Result<(OwnedMessage, OwnedMessage), Error> {
    let inv = invite
        .message()
        .map_err(|e| Error::Send(SendError::Invalid(e)))?;
    let okm = ok
        .message()
        .map_err(|e| Error::Send(SendError::Invalid(e)))?;
    let remote_target = match okm.contacts().next() {
        Some(Contact::Addr(a)) => a.uri.to_string(),
        _ => inv.request_uri().map(|u| u.to_string()).unwrap_or_default(),
    };
    let mut routes: Vec<String> = okm
        .values(HeaderName::RecordRoute)
        .filter_map(|v| match v {
            HeaderValue::Addr(a) if a.params.is_empty() => Some(format!("<{}>", a.uri)),
            HeaderValue::Addr(a) => Some(format!("<{}>;{}", a.uri, a.params.as_str())),
            _ => None,
        })
        .collect();
    routes.reverse();
    let view = invite.view();
    let from = view.header(HeaderName::From).unwrap_or("");
    let call_id = view.header(HeaderName::CallId).unwrap_or("").trim();
    let to = ok.view().header(HeaderName::To).unwrap_or("");
    let seq = inv.cseq().map(|c| c.seq).unwrap_or(1);
    let build = |method, seq| {
        let mut b = RequestBuilder::new(method, &remote_target)
            .from(from)
            .to(to)
            .call_id(call_id)
            .cseq(seq);
        for r in &routes {
            b = b.header("Route", r);
        }
        b
    };
    let ack = build(Method::Ack, seq).build(rng)?;
    let bye = build(Method::Bye, seq.wrapping_add(1)).build(rng)?;
    Ok((ack, bye))
}

impl TransactionUser for AppTu {
    fn handle_event(&mut self, now: Instant, event: Event, ep: &mut Endpoint) {
        let event = if self.for_sessions(&event) {
            match self.calls.handle_event(now, event, ep) {
                Some(back) => back,
                None => return,
            }
        } else {
            event
        };
        match event {
            Event::Request {
                tx,
                request,
                source,
                cancels,
            } => {
                let method = request.view().method();
                self.servers.insert(
                    tx,
                    ServerInfo {
                        invite: method == Some(Method::Invite),
                        reliable: source.transport.is_reliable(),
                        to_tag: format!("{:016x}", self.rng.next_u64()),
                    },
                );
                if method == Some(Method::Cancel) {
                    // RFC 3261 section 9.2: 200 to the CANCEL, 487 to the INVITE.
                    match cancels {
                        Some(invite) => {
                            self.respond_now(now, tx, 200, ep);
                            if self.servers.contains_key(&invite) {
                                self.respond_now(now, invite, 487, ep);
                            }
                        }
                        None => self.respond_now(now, tx, 481, ep),
                    }
                    return;
                }
                let Some(cmds) = self.cmds.upgrade() else {
                    self.respond_now(now, tx, 503, ep);
                    return;
                };
                let responder = Responder {
                    tx,
                    source,
                    cmds,
                    finished: false,
                };
                if let Err(e) = self.incoming.try_send((request, responder)) {
                    // Nobody takes requests, or too many wait: the responder's drop
                    // queues an abandon; answer now instead.
                    let (_, mut responder) = e.into_inner();
                    responder.finished = true;
                    self.respond_now(now, tx, 503, ep);
                }
            }
            Event::Ack { request, .. } => {
                let (call_id, cseq) = call_id_cseq(&request);
                self.retransmits
                    .retain(|r| !(r.call_id == call_id && r.cseq == cseq));
            }
            Event::Response { tx, response } => {
                if self.pending.contains_key(&tx) {
                    self.finish_client(tx, Ok(response));
                } else if self.abandoned.contains_key(&tx) {
                    self.end_abandoned(now, tx, &response, ep);
                } else {
                    self.reack(now, &response, ep);
                }
            }
            Event::Timeout {
                tx: TxId::Client(tx),
                timer,
                ..
            } => {
                // Timer C: the endpoint cancels the INVITE, whose transaction goes on.
                if timer == Timer::C {
                    self.abandon(now, tx, ep);
                }
                self.finish_client(tx, Err(RequestError::Timeout));
            }
            Event::TransportError {
                tx: TxId::Client(tx),
            } => self.finish_client(tx, Err(RequestError::Transport)),
            Event::Timeout {
                tx: TxId::Server(tx),
                ..
            }
            | Event::TransportError {
                tx: TxId::Server(tx),
            } => {
                self.servers.remove(&tx);
                self.retransmits.retain(|r| r.tx != tx);
            }
            Event::StrayResponse { response, source } => {
                tracing::debug!(status = ?response.view().status(), peer = %source.remote, "stray response");
                // A 2xx to an INVITE given up at timer C whose transaction has ended since.
                let key = call_id_cseq(&response);
                let abandoned = self
                    .abandoned
                    .iter()
                    .find(|(_, a)| a.until > now && call_id_cseq(&a.invite) == key)
                    .map(|(tx, _)| *tx);
                match abandoned {
                    Some(tx) => self.end_abandoned(now, tx, &response, ep),
                    None => self.reack(now, &response, ep),
                }
            }
            other => tracing::debug!(?other, "event ignored"),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.deadlines.first().map(|(at, _)| *at);
        self.retransmits
            .iter()
            .map(|r| r.next.min(r.until))
            .chain(deadline)
            .chain(self.calls.poll_timeout())
            .min()
    }

    fn handle_timeout(&mut self, now: Instant, ep: &mut Endpoint) {
        if self.calls.poll_timeout().is_some_and(|t| t <= now) {
            self.calls.handle_timeout(now, ep);
        }
        while let Some(&(at, tx)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if !self.pending.contains_key(&tx) {
                continue;
            }
            // Client::request_with_timeout's deadline: an INVITE is cancelled (RFC 3261
            // section 9.1; sent once a provisional response has come).
            if self.invites.contains_key(&tx) {
                if let Err(e) = ep.cancel(now, tx) {
                    tracing::debug!(?tx, "cannot cancel: {e}");
                }
                self.abandon(now, tx, ep);
            }
            self.finish_client(tx, Err(RequestError::Timeout));
        }
        let t2 = ep.config().timers.t2;
        self.retransmits.retain_mut(|r| {
            if r.until <= now {
                return false;
            }
            if r.next > now {
                return true;
            }
            if ep.send_response(now, r.tx, &r.response).is_err() {
                return false;
            }
            r.interval = (r.interval * 2).min(t2);
            r.next = now + r.interval;
            true
        });
    }
}
