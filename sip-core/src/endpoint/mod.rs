//! The endpoint: the transport and transaction layers behind one sans-IO facade.
//!
//! Inputs come from the driver (`handle_*`) and the transaction user (`send_request`,
//! `send_response`, `cancel`, `send_ack`); outputs are drained with `poll_transmit`,
//! `poll_io`, `poll_event` and `poll_timeout`. Time is always an argument, randomness comes
//! from the seed given to [`Endpoint::new`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::budget::Budget;
use crate::id::{Key, Slab};
use crate::transaction::client::ClientMachine;
use crate::transaction::key::{self, KeyTable, KeyedHasher};
use crate::transaction::server::ServerMachine;
use crate::transaction::{ClientState, ServerState, Slots, Timer, Timers};
use crate::transport::flow::{Admitted, Due, FlowRules, Flows, Refused};
pub(crate) use crate::transport::payload::Payload;
use crate::transport::reflection::Credit;
use crate::transport::via::ResponseRoute;
use crate::transport::ResponsePolicy;
use crate::transport::{FlowId, IoRequest, Listener, Source, Target, Transmit, Transport};
use crate::{Limits, Method, OwnedMessage, ParseError, SeededRng};

mod build;
mod locate;
mod next_hop;
mod receive;
mod timers;
mod tu;

pub use next_hop::NextHop;
pub use tu::TransactionUser;

use timers::{TimerRef, TimerTable};

/// A client transaction (RFC 3261 section 17.1), as the endpoint names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxId(Key);

/// A server transaction (RFC 3261 section 17.2), as the endpoint names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxId(Key);

/// Either kind of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxId {
    /// A client transaction.
    Client(ClientTxId),
    /// A server transaction.
    Server(ServerTxId),
}

/// How the endpoint is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// T1, T2, T4 and the 100 Trying delay.
    pub timers: Timers,
    /// Parser limits for received messages.
    pub limits: Limits,
    /// The local addresses; the first one of a transport and address family is used for
    /// requests sent over it.
    pub listeners: Vec<Listener>,
    /// Live client plus server transactions. A request beyond it is answered 503 (RFC 3261
    /// section 21.5.4) and `send_request` fails.
    pub max_transactions: usize,
    /// Open or connecting flows. When the table is full, a flow no transaction uses is
    /// closed to admit a new one (the oldest that has not completed a message, else the
    /// least recently used); when every flow carries a transaction, new ones are refused.
    pub max_flows: usize,
    /// A flow no transaction uses is closed after this long without a whole message or
    /// keep-alive (section 18 leaves the duration to the implementation).
    pub flow_idle_timeout: Duration,
    /// Requests larger than this go over TCP instead of UDP (section 18.1.1: 1300 bytes
    /// when the path MTU is unknown).
    pub udp_size_limit: usize,
    /// Where UDP responses go and whether their retransmissions must be earned (section
    /// 26.1.5). The default, [`ResponsePolicy::SourceOnly`], is for untrusted peers;
    /// [`ResponsePolicy::Rfc3261`] is section 18.2.2 as written.
    pub response_policy: ResponsePolicy,
    /// Connections accepted from one source address (an IPv6 source by its /64 prefix).
    /// Beyond it a connection is refused ([`SendError::TooManyFlowsFromSource`]), so one
    /// peer cannot take the whole flow table. A UA needs one or two (RFC 5626 section 4.2
    /// keeps one per registration flow); 64 leaves room for a NAT with dozens of UAs behind
    /// one address while one address holds under 1% of the default table.
    pub max_flows_per_source: usize,
    /// A stream message must be complete this long after its first byte arrived, or the
    /// flow is closed; bytes arriving meanwhile do not extend it. Section 18.3 sets no
    /// bound; the default is 64*T1 (32 s), the time after which the sender's transaction
    /// (timer B or F, section 17.1) has given up on the message anyway.
    pub stream_message_timeout: Duration,
    /// The byte budget: what peers can make the endpoint hold (messages stored by
    /// transactions, buffers of partly received stream messages). When it is spent, a new
    /// request is answered 503 with Retry-After (section 21.5.4) instead of getting a
    /// transaction, and a stream flow that needs more buffer is closed. Partial stream
    /// messages may hold at most half of it, so slow senders cannot starve the requests.
    /// See [`Stats::held_bytes`].
    pub max_held_bytes: usize,
    /// The RFC 3263 resolver of requests sent to a [`NextHop::Uri`] (and, under
    /// [`ResponsePolicy::Rfc3261`], of responses to a Via sent-by that is a name).
    pub resolver: crate::resolve::ResolverConfig,
    /// RFC 3263 4.3: an attempt that got no response at all (not even 100) within this long
    /// fails over to the next target. None: only the transaction timeout (B/F) counts.
    pub failover_timeout: Option<Duration>,
    /// RFC 5626 3.5.1: CRLFCRLF ping on stream flows the endpoint opened, after this long
    /// idle (jittered 80-100% from the seeded RNG); no pong within 10 s closes the flow
    /// (its transactions end with [`Event::TransportError`], or fail over). Only flows
    /// worth keeping are pinged: one a transaction uses, or any when
    /// [`Config::flow_idle_timeout`] is at least twice the interval. A pong proves the flow
    /// alive but does not keep a flow nothing uses from its idle timeout. None: off.
    pub keepalive_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timers: Timers::RFC,
            limits: Limits::DEFAULT,
            listeners: Vec::new(),
            max_transactions: 1 << 20,
            max_flows: 8192,
            flow_idle_timeout: Duration::from_secs(120),
            udp_size_limit: 1300,
            response_policy: ResponsePolicy::default(),
            max_flows_per_source: 64,
            stream_message_timeout: Duration::from_secs(32),
            max_held_bytes: 128 << 20,
            resolver: crate::resolve::ResolverConfig::default(),
            failover_timeout: None,
            keepalive_interval: Some(Duration::from_secs(120)),
        }
    }
}

/// What the endpoint tells the transaction user.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A new request (not ACK) with the server transaction created for it. The top Via
    /// already carries `received`/`rport` where section 18.2.1 and RFC 3581 add them.
    Request {
        /// The server transaction; answer with [`Endpoint::send_response`].
        tx: ServerTxId,
        /// The request.
        request: OwnedMessage,
        /// Where it came from.
        source: Source,
        /// For CANCEL: the server transaction of the request it cancels (section 9.2), if
        /// one exists. The transaction user answers the CANCEL (200, or 481 when `None`) and
        /// the cancelled INVITE (487).
        cancels: Option<ServerTxId>,
    },
    /// An ACK that is the transaction user's business: the ACK for a 2xx (it matches no
    /// transaction, section 17.2.3, or an INVITE transaction in Accepted, RFC 6026). An ACK
    /// matching no transaction is framed but its headers are not typed (nothing answers an
    /// ACK): type it with [`OwnedMessage::message`], and drop it if that fails.
    Ack {
        /// The ACK.
        request: OwnedMessage,
        /// Where it came from.
        source: Source,
    },
    /// A response for a client transaction (provisional, final, and 2xx retransmissions
    /// while the INVITE transaction is Accepted).
    Response {
        /// The client transaction.
        tx: ClientTxId,
        /// The response.
        response: OwnedMessage,
    },
    /// A response that matches no client transaction (section 18.1.2): for a UA, a
    /// retransmitted 2xx to an INVITE whose transaction has ended (section 13.2.2.4).
    StrayResponse {
        /// The response.
        response: OwnedMessage,
        /// Where it came from.
        source: Source,
    },
    /// A transaction timer fired. `timer` says which, and so what happened and whether the
    /// transaction goes on (RFC 3261 section 17, table 4):
    ///
    /// - [`Timer::B`] (INVITE) or [`Timer::F`] (non-INVITE), client: no final response came.
    ///   The transaction has ended; treat it as a 408 (section 8.1.3.1).
    /// - [`Timer::C`], INVITE client: no final response long after a provisional one
    ///   (section 16.6 step 11, [`Timers::c`]). The endpoint has sent a CANCEL (a client
    ///   transaction of its own) and the INVITE transaction goes on: a final response may
    ///   still arrive as [`Event::Response`]. A 2xx then still needs its ACK, and the session
    ///   it set up should be ended with BYE (sections 9.1, 13.2.2.4 and 15). Without a final
    ///   response the transaction ends silently 64*T1 later.
    /// - [`Timer::H`], INVITE server: the ACK for a non-2xx final response never came
    ///   (section 17.2.1). The transaction has ended.
    /// - [`Timer::Unanswered`], server: the transaction user never gave a final response.
    ///   A non-INVITE transaction has ended without one; an INVITE was answered 408 by the
    ///   endpoint on the transaction user's behalf and goes on waiting for the ACK (so a
    ///   timer H event may follow). Either way the transaction user cannot answer any more.
    ///
    /// Further timers may be named in later versions.
    #[non_exhaustive]
    Timeout {
        /// The transaction: ended, or for timer C cancelled, or for the unanswered-request
        /// timer of an INVITE answered 408.
        tx: TxId,
        /// The timer that fired: B, C, F, H or [`Timer::Unanswered`].
        timer: Timer,
    },
    /// The transport failed to carry the transaction's messages (section 17.1.4, 17.2.4).
    TransportError {
        /// The transaction, now ended.
        tx: TxId,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// `send_request` was given something other than a request, or an ACK (use
    /// [`Endpoint::send_ack`]).
    #[error("not a request that starts a transaction")]
    NotARequest,
    /// `send_response` was given something other than a response with a 1xx-6xx code.
    #[error("not a response")]
    NotAResponse,
    /// The transaction has ended or never existed.
    #[error("no such transaction")]
    UnknownTransaction,
    /// The transaction's state does not allow this (a response after the final one, a
    /// CANCEL after a final response, section 9.1).
    #[error("not allowed in the transaction's state")]
    WrongState,
    /// The transaction table is full ([`Config::max_transactions`]).
    #[error("too many transactions")]
    TooManyTransactions,
    /// The flow table is full ([`Config::max_flows`]).
    #[error("too many flows")]
    TooManyFlows,
    /// No listener of the address family to write a Via for.
    #[error("no local address for {0:?}")]
    NoListener(Transport),
    /// The message with the endpoint's Via did not parse.
    #[error("invalid message: {0}")]
    Invalid(ParseError),
    /// The source address already has [`Config::max_flows_per_source`] connections.
    #[error("too many flows from this source")]
    TooManyFlowsFromSource,
    /// [`Endpoint::send_request_with_branch`] was given a branch that is not a magic-cookie
    /// token, or one a live client transaction already has.
    #[error("invalid or duplicate branch")]
    InvalidBranch,
    /// A [`NextHop::Uri`] that cannot be resolved: not a sip: or sips: URI, an invalid
    /// host, a transport this endpoint has not, a `sips:` URI with a transport other than
    /// TLS (RFC 3261 section 26.2), or too many lookups open
    /// ([`ResolverConfig::max_lookups`](crate::resolve::ResolverConfig::max_lookups)).
    #[error("cannot resolve the next hop: {0}")]
    Unresolvable(crate::resolve::ResolveError),
}

/// Counters for logs and summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages received (datagrams and framed stream messages).
    pub received: u64,
    /// Received inputs that did not parse or lacked what the transaction layer needs.
    pub malformed: u64,
    /// Received messages dropped by a rule (a response whose Via is not ours, ...).
    pub dropped: u64,
    /// Request and response retransmissions the endpoint sent.
    pub retransmissions: u64,
    /// Received retransmissions absorbed by a transaction.
    pub absorbed: u64,
    /// Responses sent without a transaction (400, 503, and those of
    /// [`Endpoint::send_stateless_response`]).
    pub stateless_responses: u64,
    /// Transactions created.
    pub transactions: u64,
    /// Keep-alive pings answered.
    pub pongs: u64,
    /// Response retransmissions not sent because their destination had not earned them
    /// ([`ResponsePolicy::SourceOnly`]).
    pub withheld: u64,
    /// Bytes held against [`Config::max_held_bytes`] now: stored messages of live
    /// transactions and buffers of partial stream messages.
    pub held_bytes: u64,
    /// Flows closed to make room for a new one when the table was full.
    pub flows_evicted: u64,
    /// Flows closed because a message was not complete in time
    /// ([`Config::stream_message_timeout`]).
    pub flows_overdue: u64,
    /// DNS questions handed to the driver ([`Endpoint::poll_dns`]).
    pub dns_queries: u64,
    /// Lookups that found no target (the name does not resolve, or every answer failed).
    pub dns_failures: u64,
    /// Requests sent again to the next target (RFC 3263 section 4.3).
    pub failovers: u64,
    /// CRLFCRLF keep-alive pings sent (RFC 5626 section 3.5.1).
    pub keepalives_sent: u64,
}

#[derive(Debug)]
struct ClientEntry {
    m: ClientMachine,
    request: OwnedMessage,
    key: Box<[u8]>,
    key_hash: u64,
    transport: Transport,
    remote: SocketAddr,
    local: SocketAddr,
    flow: Option<FlowId>,
    ack: Option<Payload>,
    /// A CANCEL waiting for a provisional response before it may be sent (section 9.1).
    cancel: Option<ClientTxId>,
    /// This is such a CANCEL, not sent yet.
    held: bool,
    /// Bytes charged to the budget for it.
    charged: usize,
    /// Sent to a URI: its failover state (RFC 3263 section 4.3).
    located: Option<crate::id::Key>,
}

#[derive(Debug)]
struct ServerEntry {
    m: ServerMachine,
    /// Needed while the transaction user has not given a final response (100 Trying, the
    /// safety 408); let go once one is sent.
    request: Option<OwnedMessage>,
    key: Box<[u8]>,
    key_hash: u64,
    route: ResponseRoute,
    last_response: Option<Payload>,
    /// Are the machine's timers in the index yet? See [`Endpoint::unarmed`].
    armed: bool,
    /// The content hash of the 2xx sent in Accepted: the transaction user sending the same
    /// bytes again is retransmitting it (section 13.3.1.4).
    sent_2xx: Option<u64>,
    /// Bytes charged to the budget for it (see [`Endpoint::recharge_server`]).
    charged: usize,
}

/// Why a response is being sent, for [`ResponsePolicy::SourceOnly`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// Its first transmission, or a resend an input caused (the request again): always
    /// sent, and counted.
    Answer,
    /// A retransmission nothing asked for (timer G, the same 2xx from the transaction
    /// user): sent only if the destination has earned it.
    Retransmission,
}

#[derive(Debug)]
struct Queued {
    bytes: Payload,
    transmit: Transmit,
}

/// The transport and transaction layers of one SIP element.
///
/// Inputs come from the driver (`handle_*`, [`Endpoint::accept_flow`]) and the transaction
/// user (`send_*`, [`Endpoint::cancel`]); outputs queue up inside until the driver drains
/// them. After every input, a driver drains the outputs in this order:
///
/// 1. [`Endpoint::poll_event`], handing each [`Event`] to the transaction user, whose
///    answers queue more transmits;
/// 2. [`Endpoint::poll_transmit`], sending each [`Transmit`];
/// 3. [`Endpoint::poll_io`], performing each [`IoRequest`]: after the transmits, so that
///    bytes queued for a connection before its [`IoRequest::Close`] are written before it
///    closes (a connection being opened gets its bytes only once it is up);
/// 4. [`Endpoint::poll_dns`], asking each DNS question (RFC 3263, for requests sent to a
///    [`NextHop::Uri`]) and giving every answer, or [`Answer::Timeout`], back with
///    [`Endpoint::handle_dns_answer`] when it comes (a later input; the loop never waits
///    for it);
///
/// and again from 1 until all four are empty; then
///
/// 5. [`Endpoint::poll_timeout`] (which includes what DNS needs: how long a request waits
///    for its lookup, [`Config::failover_timeout`], keep-alives): the driver sleeps until
///    the next input or that instant, and calls [`Endpoint::handle_timeout`] when it has
///    passed.
///
/// [`Answer::Timeout`]: crate::resolve::Answer::Timeout
///
/// The `sip-driver-mio` and `sip-driver-tokio` drivers follow this order; the crate docs
/// show the loop. Time is always an argument; randomness comes from the seed given to
/// [`Endpoint::new`].
#[derive(Debug)]
pub struct Endpoint {
    config: Config,
    rng: SeededRng,
    /// Our sent-by values (lower-case host, port) for the check of section 18.1.2.
    sent_bys: Vec<(String, u16)>,
    clients: Slab<ClientEntry>,
    servers: Slab<ServerEntry>,
    client_keys: KeyTable<ClientTxId>,
    server_keys: KeyTable<ServerTxId>,
    timers: TimerTable,
    flows: Flows,
    transmits: VecDeque<Queued>,
    io: VecDeque<IoRequest>,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
    pong: Payload,
    /// The RFC 5626 keep-alive ping (CRLFCRLF), shared by every flow we ping.
    ping: Payload,
    stats: Stats,
    /// Server transactions created by the current input whose timers are not in the index
    /// yet. Most transaction users answer before the next input, which cancels the 100
    /// Trying timer and replaces the safety timer: indexing those only to remove them again
    /// was a fifth of the cost of a transaction. They are indexed when the next input
    /// arrives, and `poll_timeout` looks at them meanwhile.
    unarmed: Vec<ServerTxId>,
    /// Response bytes each UDP source has earned ([`ResponsePolicy::SourceOnly`]).
    credit: Credit,
    /// Destinations reported unreachable, waiting for the next pass over the transactions.
    unreachable: Vec<SocketAddr>,
    /// No pass over the transactions for unreachable destinations before this.
    unreachable_scan_at: Option<Instant>,
    /// What transactions and flows hold, against [`Config::max_held_bytes`].
    budget: Budget,
    /// RFC 3263: requests to URIs, their lookups and failover (see `locate`).
    locator: locate::Locator,
}

/// The least time between two passes over the transactions for destinations reported
/// unreachable (`Endpoint::handle_unreachable`): a pass visits every transaction.
const UNREACHABLE_SCAN_INTERVAL: Duration = Duration::from_millis(100);

/// How many unreachable destinations wait for the next pass at most.
const MAX_UNREACHABLE: usize = 16;

/// A hash of a message's bytes, to know a 2xx sent again (see `send_response`). Not keyed
/// and not meant to resist a chosen collision: a collision only makes one transaction's
/// different 2xx count as a retransmission of the first, and the bytes of a 2xx are the
/// transaction user's. Eight bytes a step: a third of what SipHash costs on a 2xx.
fn content_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunks = bytes.chunks_exact(8);
    let mut h = bytes.len() as u64;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K).rotate_left(29);
    }
    h
}

/// The longest flow timeout: longer ones mean the same, and adding them to an `Instant`
/// could overflow.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// An address with an IPv4-mapped IPv6 address as the IPv4 address it maps.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn sent_by_of(l: &Listener) -> String {
    match &l.sent_by {
        Some(s) => s.clone(),
        None => l.addr.to_string(),
    }
}

fn split_sent_by(s: &str, transport: Transport) -> (String, u16) {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && (h.ends_with(']') || !h.contains(':')) => {
            (h, p.parse().unwrap_or(transport.default_port()))
        }
        _ => (s, transport.default_port()),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.to_ascii_lowercase(), port)
}

impl Endpoint {
    /// A new endpoint. `seed` keys the ChaCha20 generator of every branch and tag it writes
    /// and, from a separate stream, the hash keys of its transaction tables (see
    /// [`SeededRng`]): give it 32 bytes from the operating system's generator (the drivers
    /// do), a fixed seed only in tests.
    pub fn new(config: Config, seed: [u8; 32]) -> Endpoint {
        let rng = SeededRng::with_stream(seed, crate::rng::ENDPOINT_TOKEN_STREAM);
        let (k0, k1) = crate::rng::hash_keys(seed);
        let hasher = KeyedHasher::new(k0, k1);
        let sent_bys = config
            .listeners
            .iter()
            .map(|l| split_sent_by(&sent_by_of(l), l.transport))
            .collect();
        let flows = Flows::new(FlowRules {
            max_flows: config.max_flows,
            max_per_source: config.max_flows_per_source,
            // (a deadline is `now` plus these: a year is "never" and cannot overflow an
            // Instant, whatever a configuration says)
            idle_timeout: config.flow_idle_timeout.min(FOREVER),
            message_timeout: config.stream_message_timeout.min(FOREVER),
        });
        let budget = Budget::new(config.max_held_bytes);
        let locator = locate::Locator::new(&config, seed);
        Endpoint {
            config,
            rng,
            sent_bys,
            clients: Slab::default(),
            servers: Slab::default(),
            client_keys: KeyTable::new(hasher),
            server_keys: KeyTable::new(hasher),
            timers: TimerTable::new(),
            flows,
            transmits: VecDeque::new(),
            io: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(128),
            pong: Payload::Bytes(Arc::from(&b"\r\n"[..])),
            ping: Payload::Bytes(Arc::from(&b"\r\n\r\n"[..])),
            stats: Stats::default(),
            unarmed: Vec::new(),
            credit: Credit::new(hasher),
            unreachable: Vec::new(),
            unreachable_scan_at: None,
            budget,
            locator,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            held_bytes: self.budget.used() as u64,
            ..self.stats
        }
    }

    /// Live client and server transactions.
    pub fn transactions(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// Open or connecting flows.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// The state of a client transaction, while it lives.
    pub fn client_state(&self, tx: ClientTxId) -> Option<ClientState> {
        self.clients.get(tx.0).map(|e| e.m.state)
    }

    /// The state of a server transaction, while it lives.
    pub fn server_state(&self, tx: ServerTxId) -> Option<ServerState> {
        self.servers.get(tx.0).map(|e| e.m.state)
    }

    /// The request of a live server transaction, until its final response is sent (a
    /// transaction does not keep it longer; see [`Event::Request`] for the copy the
    /// transaction user holds).
    pub fn server_request(&self, tx: ServerTxId) -> Option<&OwnedMessage> {
        self.servers.get(tx.0).and_then(|e| e.request.as_ref())
    }

    /// The next bytes to send, written into `buf` (cleared first).
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let q = self.transmits.pop_front()?;
        buf.clear();
        buf.extend_from_slice(q.bytes.as_slice());
        Some(q.transmit)
    }

    /// The next connect or close the driver must perform.
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        self.io.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next deadline: call [`Endpoint::handle_timeout`] then (or earlier).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let indexed = self.timers.next_deadline();
        let unarmed = self
            .unarmed
            .iter()
            .filter_map(|tx| self.servers.get(tx.0))
            .flat_map(|e| e.m.timers.into_iter().flatten().map(|(t, _)| t))
            .min();
        let scan = self
            .unreachable_scan_at
            .filter(|_| !self.unreachable.is_empty());
        indexed
            .into_iter()
            .chain(unarmed)
            .chain(scan)
            .chain(self.flows.next_deadline())
            .chain(self.locator.next_deadline())
            .min()
    }

    /// Puts the timers of the transactions the previous input created into the index.
    fn arm_new_transactions(&mut self) {
        for i in 0..self.unarmed.len() {
            let tx = self.unarmed[i];
            let Some(e) = self.servers.get_mut(tx.0) else {
                continue;
            };
            if !e.armed {
                e.armed = true;
                let slots = e.m.timers;
                self.timers
                    .sync(|s| TimerRef::Server(tx.0, s), [None, None], slots);
            }
        }
        self.unarmed.clear();
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.arm_new_transactions();
        self.apply_unreachable(now);
        while let Some(owner) = self.timers.pop_expired(now) {
            match owner {
                TimerRef::Client(k, slot) => self.client_timer(now, ClientTxId(k), slot as usize),
                TimerRef::Server(k, slot) => self.server_timer(now, ServerTxId(k), slot as usize),
            }
        }
        while let Some(due) = self.flows.expire(now) {
            match due {
                Due::Close { id, overdue } => {
                    if overdue {
                        self.stats.flows_overdue += 1;
                    }
                    self.close_flow(now, id);
                }
                Due::Ping(transmit) => {
                    // RFC 5626 3.5.1: CRLFCRLF; the pong must come within 10 s.
                    self.stats.keepalives_sent += 1;
                    self.transmits.push_back(Queued {
                        bytes: self.ping.clone(),
                        transmit,
                    });
                }
            }
        }
        self.expire_waiters(now);
    }

    // ---- the transaction user's commands ----

    /// Starts a client transaction for `request` (anything but ACK) towards `hop`.
    ///
    /// The endpoint writes its own top Via (section 8.1.1.7: transport, sent-by of the
    /// listener, a fresh `z9hG4bK` branch, and `rport`, RFC 3581) and sends the request over
    /// UDP, or over TCP when it is too large for UDP (section 18.1.1).
    ///
    /// `hop` is a [`Target`] (this transport and address) or a [`NextHop::Uri`], which the
    /// endpoint locates itself (RFC 3263, see [`Endpoint::poll_dns`]) and fails over on
    /// (section 4.3: a transport error, a timeout or a 503 sends the request to the next
    /// target with a new branch; the transaction user sees only the final outcome under
    /// the same [`ClientTxId`]). A name that does not resolve (or no target that takes the
    /// request) ends the transaction with [`Event::TransportError`]; a lookup still not
    /// answered after 64*T1 with [`Event::Timeout`] (timer B or F). A provisional response
    /// ends failover, and so does [`Endpoint::cancel`] (the CANCEL goes to the attempt in
    /// progress). A URI that cannot be resolved at all is refused at once
    /// ([`SendError::Unresolvable`]).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        hop: impl Into<NextHop>,
    ) -> Result<ClientTxId, SendError> {
        match hop.into() {
            NextHop::Target(target) => self.start_client(now, request, target, None),
            NextHop::Uri(uri) => self.start_located(now, request, &uri, None),
        }
    }

    /// The body of [`Endpoint::send_request`] and [`Endpoint::send_request_with_branch`].
    fn start_client(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        target: Target,
        branch: Option<&str>,
    ) -> Result<ClientTxId, SendError> {
        self.start_client_named(now, request, target, branch, None)
    }

    /// [`Endpoint::start_client`] for the first target of a URI whose host is `name` (a TLS
    /// flow must be one opened for it, RFC 5922 section 4): a request sent to a name with
    /// a warm cache is started as one sent to an address, and its failover state added.
    pub(super) fn start_client_named(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        target: Target,
        branch: Option<&str>,
        name: Option<&str>,
    ) -> Result<ClientTxId, SendError> {
        let method = request.method().ok_or(SendError::NotARequest)?;
        if method == Method::Ack {
            return Err(SendError::NotARequest);
        }
        if self.transactions() >= self.config.max_transactions {
            return Err(SendError::TooManyTransactions);
        }
        let mut transport = target.transport;
        // Section 18.1.1: a request that may not fit a datagram goes over a congestion
        // controlled transport; the Via says so.
        if transport == Transport::Udp
            && request.as_bytes().len() + 100 > self.config.udp_size_limit
        {
            transport = Transport::Tcp;
        }
        let (sent_by, local) = self.local_for(transport, target.addr)?;
        let branch = match branch {
            Some(b) => b.to_owned(),
            None => crate::new_branch(&mut self.rng),
        };
        let bytes = build::insert_via(request.as_bytes(), transport, &sent_by, &branch);
        let owned = OwnedMessage::parse(&bytes).map_err(SendError::Invalid)?;
        key::client_key(&mut self.scratch, &branch, method.as_str());
        let invite = method == Method::Invite;
        let m = ClientMachine::start(invite, transport.is_reliable(), now, &self.config.timers);
        let data = Payload::Message(owned.clone());
        let flow = self.send_to_named(now, transport, local, target.addr, data, None, name)?;
        let key: Box<[u8]> = self.scratch.as_slice().into();
        let key_hash = self.client_keys.hash(&key);
        // Our own requests are not refused for the budget, but they count against it.
        let charged = owned.as_bytes().len() + key.len();
        self.budget.charge(charged);
        let id = ClientTxId(self.clients.insert(ClientEntry {
            m,
            request: owned,
            key: key.clone(),
            key_hash,
            transport,
            remote: target.addr,
            local,
            flow,
            ack: None,
            cancel: None,
            held: false,
            charged,
            located: None,
        }));
        self.client_keys.insert(key_hash, key, id);
        self.bind_flow(flow);
        self.stats.transactions += 1;
        let timers = self
            .clients
            .get(id.0)
            .map(|e| e.m.timers)
            .unwrap_or_default();
        self.sync_client_timers(id, [None, None], timers);
        Ok(id)
    }

    /// Cancels a pending INVITE (section 9.1). The CANCEL is a client transaction of its
    /// own, returned here; it is sent once a provisional response has arrived (at once if
    /// one has), and never if the INVITE gets its final response first.
    pub fn cancel(&mut self, now: Instant, invite: ClientTxId) -> Result<ClientTxId, SendError> {
        let entry = self
            .clients
            .get(invite.0)
            .ok_or(SendError::UnknownTransaction)?;
        if !entry.m.invite
            || !matches!(
                entry.m.state,
                ClientState::Calling | ClientState::Proceeding
            )
        {
            return Err(SendError::WrongState);
        }
        if let Some(c) = entry.cancel {
            return Ok(c);
        }
        if self.transactions() >= self.config.max_transactions {
            return Err(SendError::TooManyTransactions);
        }
        // A request sent to a URI that is still waiting for DNS: the CANCEL is written for
        // its first attempt, when that goes out (see `refresh_held_cancel`).
        let unsent = self.is_unsent(invite);
        let entry = self
            .clients
            .get(invite.0)
            .ok_or(SendError::UnknownTransaction)?;
        let bytes = build::cancel_for(&entry.request.view());
        let owned = OwnedMessage::parse(&bytes).map_err(SendError::Invalid)?;
        let branch = {
            let view = entry.request.view();
            let via = view.header(crate::HeaderName::Via).unwrap_or("");
            // (typed as the message layer types it; the endpoint wrote this Via itself)
            crate::message::raw::first_via(via)
                .and_then(|v| v.branch())
                .unwrap_or("")
                .to_owned()
        };
        key::client_key(&mut self.scratch, &branch, "CANCEL");
        let (transport, remote, local, flow, proceeding) = (
            entry.transport,
            entry.remote,
            entry.local,
            entry.flow,
            entry.m.state == ClientState::Proceeding,
        );
        let key: Box<[u8]> = if unsent {
            Box::new([])
        } else {
            self.scratch.as_slice().into()
        };
        let key_hash = self.client_keys.hash(&key);
        let m = ClientMachine::start(false, transport.is_reliable(), now, &self.config.timers);
        let charged = owned.as_bytes().len() + key.len();
        self.budget.charge(charged);
        let id = ClientTxId(self.clients.insert(ClientEntry {
            m,
            request: owned,
            key: key.clone(),
            key_hash,
            transport,
            remote,
            local,
            flow,
            ack: None,
            cancel: None,
            held: true,
            charged,
            located: None,
        }));
        if !unsent {
            self.client_keys.insert(key_hash, key, id);
        }
        self.bind_flow(flow);
        self.stats.transactions += 1;
        if let Some(e) = self.clients.get_mut(invite.0) {
            e.cancel = Some(id);
        }
        // RFC 3263 4.3 ends here: the CANCEL goes to the attempt in progress.
        self.stop_failover(invite);
        if proceeding {
            self.release_cancel(now, id);
        }
        Ok(id)
    }

    /// Sends a response on a server transaction. Build it with
    /// [`response_to`](crate::response_to) from the request of [`Event::Request`] (it must
    /// carry that request's Via). The transport sends it where section 18.2.2 says, as
    /// [`Config::response_policy`] reads it.
    ///
    /// Sending the same 2xx again (the same message or a clone of it) retransmits it
    /// (section 13.3.1.4); under [`ResponsePolicy::SourceOnly`] such a retransmission over
    /// UDP is sent only if its destination has earned it, and is otherwise counted in
    /// [`Stats::withheld`] (the call still returns `Ok`).
    pub fn send_response(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        response: &OwnedMessage,
    ) -> Result<(), SendError> {
        let code = response.status().ok_or(SendError::NotAResponse)?;
        if !(100..=699).contains(&code) {
            return Err(SendError::NotAResponse);
        }
        // A 2xx is known by its content, not by its buffer: a transaction user that builds
        // the same 2xx again is retransmitting it too, and a freed buffer's address may
        // come back for another message. (Only the untrusted-peer policy withholds
        // retransmissions, so only it pays for the hash.)
        let is_2xx = (200..=299).contains(&code);
        let sent = (is_2xx && self.config.response_policy == ResponsePolicy::SourceOnly)
            .then(|| content_hash(response.as_bytes()));
        let timers = &self.config.timers;
        let entry = self
            .servers
            .get_mut(tx.0)
            .ok_or(SendError::UnknownTransaction)?;
        let before = entry.m.timers;
        entry
            .m
            .on_send(now, code, timers)
            .map_err(|_| SendError::WrongState)?;
        let after = entry.m.timers;
        // The same 2xx again (the transaction user's section 13.3.1.4 retransmission) is
        // sent only if its destination has earned it; another 2xx is a first transmission.
        let sending = if sent.is_some() && entry.sent_2xx == sent {
            Sending::Retransmission
        } else {
            Sending::Answer
        };
        if is_2xx {
            entry.sent_2xx = sent;
        }
        let data = Payload::Message(response.clone());
        // What each state needs (figures 7 and 8, RFC 6026): Completed resends the final
        // response; Accepted resends nothing (the transaction user retransmits its 2xx). No
        // state after a final response needs the request. Keeping only that keeps a
        // lingering transaction (32 s on UDP) small.
        entry.last_response = match entry.m.state {
            ServerState::Accepted => None,
            _ => Some(data.clone()),
        };
        if (200..=699).contains(&code) {
            entry.request = None;
        }
        recharge(&mut self.budget, entry);
        self.sync_server_timers(tx, before, after);
        self.send_on_route(now, tx, data, sending);
        self.finish_server(tx);
        Ok(())
    }

    /// Sends the ACK for a 2xx (section 13.2.2.4): not a transaction, but the endpoint still
    /// writes the top Via with a fresh branch.
    ///
    /// To a [`NextHop::Uri`]: at once when the resolver has its targets cached, else once
    /// the lookup ends (the ACK waits in a bounded queue); to the first target, with no
    /// failover.
    pub fn send_ack(
        &mut self,
        now: Instant,
        ack: &OwnedMessage,
        hop: impl Into<NextHop>,
    ) -> Result<(), SendError> {
        if ack.method() != Some(Method::Ack) {
            return Err(SendError::NotARequest);
        }
        let branch = crate::new_branch(&mut self.rng);
        self.send_stateless(now, ack, hop, &branch)
    }

    /// Sends a request without a transaction, with the endpoint's Via carrying `branch` on
    /// top: what a stateless proxy does (RFC 3261 section 16.11), whose branch must be the
    /// same for a request and its retransmission and so is computed by the caller. Nothing
    /// is kept: no retransmission, no timer, no response matched (a response comes back as
    /// [`Event::StrayResponse`]). The branch must start with the magic cookie and be a token,
    /// else [`SendError::InvalidBranch`]. A [`NextHop::Uri`] is handled as for
    /// [`Endpoint::send_ack`].
    pub fn send_stateless(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        hop: impl Into<NextHop>,
        branch: &str,
    ) -> Result<(), SendError> {
        if request.method().is_none() {
            return Err(SendError::NotARequest);
        }
        if !valid_branch(branch) {
            return Err(SendError::InvalidBranch);
        }
        match hop.into() {
            NextHop::Target(target) => self.stateless_to(now, request, target, branch, None),
            NextHop::Uri(uri) => self.stateless_located(now, request, &uri, branch),
        }
    }

    /// [`Endpoint::send_stateless`] to an address (`name`: the URI host it was resolved
    /// from, for a TLS connection).
    fn stateless_to(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        target: Target,
        branch: &str,
        name: Option<&str>,
    ) -> Result<(), SendError> {
        let transport = target.transport;
        let (sent_by, local) = self.local_for(transport, target.addr)?;
        let bytes = build::insert_via(request.as_bytes(), transport, &sent_by, branch);
        OwnedMessage::parse(&bytes).map_err(SendError::Invalid)?;
        let name = name.filter(|_| transport == Transport::Tls);
        self.send_to_named(
            now,
            transport,
            local,
            target.addr,
            Payload::Bytes(Arc::from(bytes)),
            None,
            name,
        )?;
        Ok(())
    }

    /// [`Endpoint::send_request`] with the branch of the top Via chosen by the caller: a
    /// proxy's branch encodes what its loop detection needs (RFC 3261 section 16.6 step 8).
    /// The branch must start with the magic cookie `z9hG4bK` (section 8.1.1.7), be a token
    /// (section 25.1) and be unique for the transaction: otherwise
    /// [`SendError::InvalidBranch`].
    ///
    /// To a [`NextHop::Uri`], attempt `n` from the second on (RFC 3263 section 4.3
    /// failover) carries the branch `{branch}.{n}`, which keeps the caller's prefix.
    pub fn send_request_with_branch(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        hop: impl Into<NextHop>,
        branch: &str,
    ) -> Result<ClientTxId, SendError> {
        if !valid_branch(branch) {
            return Err(SendError::InvalidBranch);
        }
        let method = request.method().ok_or(SendError::NotARequest)?;
        key::client_key(&mut self.scratch, branch, method.as_str());
        if self
            .client_keys
            .find(self.client_keys.hash(&self.scratch), &self.scratch)
            .is_some()
        {
            return Err(SendError::InvalidBranch);
        }
        match hop.into() {
            NextHop::Target(target) => self.start_client(now, request, target, Some(branch)),
            NextHop::Uri(uri) => self.start_located(now, request, &uri, Some(branch)),
        }
    }

    /// Sends a response without a server transaction, where its top Via says (RFC 3261
    /// section 18.2.2 with RFC 3581): to `received` (else the sent-by host) and `rport`
    /// (else the sent-by port, else the transport's default). Over TCP or TLS it goes on a
    /// flow to that address (an open one, else a new connection). This is what a stateless
    /// proxy does with a response (section 16.11) after removing its own Via: the caller
    /// must have checked that the response is one to relay, since the Via chooses the
    /// destination (section 26.1.5).
    ///
    /// A sent-by that is a name, with no `received`, is resolved as RFC 3263 section 5 says
    /// (the response waits for the lookup, then goes to the first target) under
    /// [`ResponsePolicy::Rfc3261`]; under [`ResponsePolicy::SourceOnly`] only a numeric
    /// address is used ([`SendError::NotAResponse`] otherwise), so that a Via never aims a
    /// response at a DNS answer.
    pub fn send_stateless_response(
        &mut self,
        now: Instant,
        response: &OwnedMessage,
    ) -> Result<(), SendError> {
        if !response.status().is_some_and(|c| (100..=699).contains(&c)) {
            return Err(SendError::NotAResponse);
        }
        let (transport, remote) = {
            let m = response.message().map_err(SendError::Invalid)?;
            let via = m.top_via().ok_or(SendError::NotAResponse)?;
            let transport = Transport::from_via_token(via.transport)
                .ok_or(SendError::NoListener(Transport::Udp))?;
            if let (None, crate::message::Host::Domain(host)) = (via.received(), via.host) {
                if self.config.response_policy.trusts_via() {
                    return self
                        .stateless_response_located(now, response, host, via.port, transport);
                }
            }
            let ip = match via.received() {
                Some(r) => r.trim_start_matches('[').trim_end_matches(']').parse().ok(),
                None => crate::transport::via::host_ip(&via.host),
            }
            .ok_or(SendError::NotAResponse)?;
            let port = match via.rport() {
                Some(Some(p)) => p,
                _ => via.port.unwrap_or(transport.default_port()),
            };
            (transport, SocketAddr::new(ip, port))
        };
        let (_, local) = self.local_for(transport, remote)?;
        self.stats.stateless_responses += 1;
        let data = Payload::Message(response.clone());
        self.send_to(now, transport, local, remote, data, None)?;
        Ok(())
    }

    /// Ends a server transaction silently: no response (not even the 408 of
    /// [`Timer::Unanswered`]), no timer left, its bytes given back to the budget. A
    /// stateless proxy (RFC 3261 section 16.11) does this with the transaction of a request
    /// it forwarded, since the downstream element answers it. A retransmission of the
    /// request then starts a new transaction. Returns whether the transaction existed.
    pub fn abandon_server(&mut self, tx: ServerTxId) -> bool {
        let Some(e) = self.servers.get_mut(tx.0) else {
            return false;
        };
        let before = e.m.timers;
        e.m.terminate();
        self.sync_server_timers(tx, before, [None, None]);
        self.finish_server(tx);
        true
    }

    // ---- the driver's flow inputs ----

    /// A connection the driver accepted: the core names it and frames what arrives on it.
    pub fn accept_flow(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<FlowId, SendError> {
        self.arm_new_transactions();
        let admitted = self
            .flows
            .accept(now, transport, local, remote, &mut self.budget);
        self.admitted(admitted)
    }

    /// A flow admitted or refused by the table: the flow it evicted is closed.
    fn admitted(&mut self, admitted: Result<Admitted, Refused>) -> Result<FlowId, SendError> {
        match admitted {
            Ok(Admitted { id, evicted }) => {
                if let Some(old) = evicted {
                    self.stats.flows_evicted += 1;
                    self.io.push_back(IoRequest::Close { flow: old });
                }
                Ok(id)
            }
            Err(Refused::TableFull) => Err(SendError::TooManyFlows),
            Err(Refused::SourceFull) => Err(SendError::TooManyFlowsFromSource),
        }
    }

    /// What became of a flow: connected, failed to connect, or closed.
    pub fn handle_flow_event(&mut self, now: Instant, flow: FlowId, event: crate::FlowEvent) {
        self.arm_new_transactions();
        match event {
            crate::FlowEvent::Connected { local } => {
                let Some((transmit, pending)) = self.flows.connected(flow, local, now) else {
                    return;
                };
                for bytes in pending {
                    self.transmits.push_back(Queued { bytes, transmit });
                }
            }
            _ => self.flow_gone(now, flow),
        }
    }

    /// The network says datagrams to `remote` cannot be delivered: an ICMP destination or
    /// port unreachable for a datagram sent there, or a send that the operating system
    /// refused. RFC 3261 section 18.4 asks the transport to report such an error to the
    /// transport user, and sections 17.1.4 and 17.2.4 end the transaction with it: every
    /// datagram transaction still exchanging messages with `remote` (a client transaction
    /// waiting for its final response; a server transaction that has responses to send or
    /// resend) ends with [`Event::TransportError`], as if its timeout had fired at once.
    /// Stream transactions are left to their flow's events.
    ///
    /// An ICMP message can be forged by anyone on the path who knows the addresses and ports,
    /// just as a datagram can; a driver reports only what its socket received for its own
    /// datagrams (on Linux the kernel checks the returned UDP header's ports).
    ///
    /// Reports are applied in one pass over the transactions, at most every 100 ms (the
    /// first at once; the next pass is a deadline of [`Endpoint::poll_timeout`]), so that a
    /// flood of ICMP messages costs at most one pass per 100 ms. Up to 16 destinations wait
    /// for the next pass; further ones are dropped (their transactions end by timeout).
    pub fn handle_unreachable(&mut self, now: Instant, remote: SocketAddr) {
        self.arm_new_transactions();
        // (an IPv4 peer reached through a dual-stack socket has an IPv4-mapped address on
        // one side and a plain one on the other: both are compared in their IPv4 form)
        let remote = canonical(remote);
        if !self.unreachable.contains(&remote) && self.unreachable.len() < MAX_UNREACHABLE {
            self.unreachable.push(remote);
        }
        self.apply_unreachable(now);
    }

    // ---- internals shared by the command and receive paths ----

    /// Ends the datagram transactions to the destinations reported unreachable, when the
    /// scan interval allows (see [`Endpoint::handle_unreachable`]).
    fn apply_unreachable(&mut self, now: Instant) {
        if self.unreachable.is_empty() || self.unreachable_scan_at.is_some_and(|at| at > now) {
            return;
        }
        let gone = std::mem::take(&mut self.unreachable);
        self.unreachable_scan_at = Some(now + UNREACHABLE_SCAN_INTERVAL);
        let clients: Vec<ClientTxId> = self
            .clients
            .iter()
            .filter(|(_, e)| {
                !e.transport.is_stream()
                    && !e.held
                    && matches!(
                        e.m.state,
                        ClientState::Calling | ClientState::Trying | ClientState::Proceeding
                    )
                    && gone.contains(&canonical(e.remote))
            })
            .map(|(k, _)| ClientTxId(k))
            .collect();
        for tx in clients {
            // RFC 3263 4.3: a request sent to a URI goes to the next target.
            if self.fail_over(now, tx, crate::resolve::Failure::TransportError, None) {
                continue;
            }
            if let Some(e) = self.clients.get_mut(tx.0) {
                let before = e.m.timers;
                e.m.on_transport_error();
                self.sync_client_timers(tx, before, [None, None]);
                self.events.push_back(Event::TransportError {
                    tx: TxId::Client(tx),
                });
            }
            self.finish_client(tx);
        }
        let servers: Vec<ServerTxId> = self
            .servers
            .iter()
            .filter(|(_, e)| {
                !matches!(e.m.state, ServerState::Confirmed | ServerState::Terminated)
                    && matches!(e.route, ResponseRoute::Datagram { remote, .. } if gone.contains(&canonical(remote)))
            })
            .map(|(k, _)| ServerTxId(k))
            .collect();
        for tx in servers {
            self.server_transport_error(now, tx);
        }
    }

    /// The sent-by and local address for sending over `transport` to `remote`.
    fn local_for(
        &self,
        transport: Transport,
        remote: SocketAddr,
    ) -> Result<(String, SocketAddr), SendError> {
        let same_family = |l: &&Listener| l.addr.is_ipv4() == remote.is_ipv4();
        let l = self
            .config
            .listeners
            .iter()
            .filter(same_family)
            .find(|l| l.transport == transport)
            .or_else(|| self.config.listeners.iter().find(same_family))
            .ok_or(SendError::NoListener(transport))?;
        Ok((sent_by_of(l), l.addr))
    }

    /// Is `host:port` one of our sent-by values (section 18.1.2)?
    fn is_ours(&self, host: &str, port: Option<u16>, transport: Option<Transport>) -> bool {
        let port = port.unwrap_or(transport.unwrap_or(Transport::Udp).default_port());
        self.sent_bys
            .iter()
            .any(|(h, p)| *p == port && h.eq_ignore_ascii_case(host))
    }

    /// Sends `data` over `transport`: a datagram, or on the flow to `remote` (reusing one,
    /// or asking the driver to connect). Returns the flow used.
    fn send_to(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        data: Payload,
        flow: Option<FlowId>,
    ) -> Result<Option<FlowId>, SendError> {
        self.send_to_named(now, transport, local, remote, data, flow, None)
    }

    /// [`Endpoint::send_to`] for a URI whose host is `name`: a TLS flow is reused only if
    /// it was opened for that name, and a new one remembers it (RFC 5922 section 4, see
    /// [`Endpoint::tls_server_name`]).
    #[allow(clippy::too_many_arguments)]
    fn send_to_named(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        data: Payload,
        flow: Option<FlowId>,
        name: Option<&str>,
    ) -> Result<Option<FlowId>, SendError> {
        if !transport.is_stream() {
            self.queue_datagram(local, remote, data);
            return Ok(None);
        }
        let id = self.flow_for(now, transport, remote, flow, name)?;
        if let Some((transmit, bytes)) = self.flows.send(id, now, data) {
            self.transmits.push_back(Queued { bytes, transmit });
        }
        Ok(Some(id))
    }

    /// Queues a UDP response. Under [`ResponsePolicy::SourceOnly`] its bytes count against
    /// the destination's credit, and a retransmission the destination has not earned is
    /// withheld (section 26.1.5).
    /// The flow to send on: `flow` while it lives, else one open to `remote` (for a `name`,
    /// only one opened for that name), else a new connection the driver is asked for.
    fn flow_for(
        &mut self,
        now: Instant,
        transport: Transport,
        remote: SocketAddr,
        flow: Option<FlowId>,
        name: Option<&str>,
    ) -> Result<FlowId, SendError> {
        let found = flow.filter(|f| self.flows.contains(*f)).or_else(|| {
            self.flows
                .find(transport, remote)
                .filter(|f| name.is_none() || self.flows.server_name(*f) == name)
        });
        if let Some(id) = found {
            return Ok(id);
        }
        let keepalive = self.keepalive_for();
        let admitted =
            self.flows
                .connect(now, transport, remote, &mut self.budget, name, keepalive);
        let id = self.admitted(admitted)?;
        self.io.push_back(IoRequest::Connect {
            flow: id,
            transport,
            remote,
        });
        Ok(id)
    }

    /// The keep-alive interval of a flow being opened: [`Config::keepalive_interval`]
    /// jittered to 80-100% (RFC 5626 section 4.4.1).
    fn keepalive_for(&mut self) -> Option<Duration> {
        let base = self.config.keepalive_interval?.min(FOREVER);
        let draw = crate::Rng::next_u64(&mut self.locator.rng) % 1001;
        Some(base.mul_f64(0.8 + 0.2 * draw as f64 / 1000.0))
    }

    fn queue_response_datagram(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        data: Payload,
        sending: Sending,
    ) -> bool {
        if !self.config.response_policy.trusts_via() {
            let len = data.as_slice().len();
            match sending {
                Sending::Answer => self.credit.charge(remote.ip(), len),
                Sending::Retransmission => {
                    if !self.credit.spend(remote.ip(), len) {
                        self.stats.withheld += 1;
                        return false;
                    }
                }
            }
        }
        self.queue_datagram(local, remote, data);
        true
    }

    /// Queues a UDP datagram.
    fn queue_datagram(&mut self, local: SocketAddr, remote: SocketAddr, bytes: Payload) {
        self.transmits.push_back(Queued {
            bytes,
            transmit: Transmit {
                transport: Transport::Udp,
                local,
                remote,
                flow: None,
            },
        });
    }

    fn bind_flow(&mut self, flow: Option<FlowId>) {
        if let Some(f) = flow {
            self.flows.bind(f);
        }
    }

    fn unbind_flow(&mut self, flow: Option<FlowId>) {
        if let Some(f) = flow {
            self.flows.unbind(f);
        }
    }

    /// Closes a flow the core gave up on (idle, overdue, unframeable) and tells the driver.
    fn close_flow(&mut self, now: Instant, flow: FlowId) {
        if self.flows.contains(flow) {
            self.flow_gone(now, flow);
            self.io.push_back(IoRequest::Close { flow });
        }
    }

    /// A flow failed or closed: its client transactions fail (section 17.1.4); server
    /// transactions keep their fallback address (section 18.2.2).
    fn flow_gone(&mut self, now: Instant, id: FlowId) {
        let Some(f) = self.flows.remove(id, &mut self.budget) else {
            return;
        };
        if f.users == 0 {
            return;
        }
        // Section 17.2.4: a server transaction whose response could not be delivered on a
        // connection it opened (section 18.2.2's fallback) fails; one whose request flow
        // closed keeps its fallback for the next response.
        if f.connecting {
            let stuck: Vec<ServerTxId> = self
                .servers
                .iter()
                .filter(|(_, e)| matches!(e.route, ResponseRoute::Flow { flow, .. } if flow == id))
                .map(|(k, _)| ServerTxId(k))
                .collect();
            for tx in stuck {
                self.server_transport_error(now, tx);
            }
        }
        let failed: Vec<ClientTxId> = self
            .clients
            .iter()
            .filter(|(_, e)| e.flow == Some(id))
            .map(|(k, _)| ClientTxId(k))
            .collect();
        for tx in failed {
            // RFC 3263 4.3: a request sent to a URI goes to the next target.
            if self.fail_over(now, tx, crate::resolve::Failure::TransportError, None) {
                continue;
            }
            if let Some(e) = self.clients.get_mut(tx.0) {
                let before = e.m.timers;
                e.m.on_transport_error();
                e.flow = None;
                self.sync_client_timers(tx, before, [None, None]);
                self.events.push_back(Event::TransportError {
                    tx: TxId::Client(tx),
                });
            }
            self.finish_client(tx);
        }
    }

    fn sync_client_timers(&mut self, tx: ClientTxId, before: Slots, after: Slots) {
        self.timers
            .sync(|s| TimerRef::Client(tx.0, s), before, after);
    }

    fn sync_server_timers(&mut self, tx: ServerTxId, before: Slots, after: Slots) {
        if self.servers.get(tx.0).is_some_and(|e| !e.armed) {
            return;
        }
        self.timers
            .sync(|s| TimerRef::Server(tx.0, s), before, after);
    }

    fn client_timer(&mut self, now: Instant, tx: ClientTxId, slot: usize) {
        if slot == locate::LOCATE_SLOT as usize {
            self.locate_timer(now, tx);
            return;
        }
        let timers = self.config.timers;
        let Some(e) = self.clients.get_mut(tx.0) else {
            return;
        };
        let before = e.m.timers;
        let step = e.m.on_timer(now, slot, &timers);
        let after = e.m.timers;
        let located = e.located.is_some();
        let resend = step.send_request.then(|| {
            (
                e.transport,
                e.local,
                e.remote,
                Payload::Message(e.request.clone()),
                e.flow,
            )
        });
        self.sync_client_timers(tx, before, after);
        if let Some((transport, local, remote, data, flow)) = resend {
            self.stats.retransmissions += 1;
            // A retransmission over UDP cannot fail here; streams never retransmit.
            let _ = self.send_to(now, transport, local, remote, data, flow);
        }
        if let Some(timer) = step.timeout {
            // RFC 3263 4.3: timer B or F of a request sent to a URI: the next target.
            // (a request sent to a Target has no failover state to look up)
            let failed_over = located
                && matches!(timer, Timer::B | Timer::F)
                && self.fail_over(now, tx, crate::resolve::Failure::Timeout, None);
            if !failed_over {
                self.events.push_back(Event::Timeout {
                    tx: TxId::Client(tx),
                    timer,
                });
            }
        }
        if step.cancel {
            // Section 16.6 step 11: timer C fired, cancel the INVITE.
            let _ = self.cancel(now, tx);
        }
        self.finish_client(tx);
    }

    fn server_timer(&mut self, now: Instant, tx: ServerTxId, slot: usize) {
        let timers = self.config.timers;
        let Some(e) = self.servers.get_mut(tx.0) else {
            return;
        };
        let before = e.m.timers;
        let step = e.m.on_timer(now, slot, &timers);
        let after = e.m.timers;
        let trying = if step.send_trying {
            e.request.clone()
        } else {
            None
        };
        self.sync_server_timers(tx, before, after);
        if let Some(request) = trying {
            // Section 17.2.1: 100 Trying when the transaction user is slow to answer.
            let view = request.view();
            let trying = crate::ResponseBuilder::from_view(&view, 100).build(&mut self.rng);
            if let Ok(msg) = trying {
                let data = Payload::Message(msg);
                if let Some(e) = self.servers.get_mut(tx.0) {
                    e.last_response = Some(data.clone());
                }
                self.recharge_server(tx);
                self.send_on_route(now, tx, data, Sending::Answer);
            }
        }
        if step.resend_response {
            // Timer G: nothing arrived that asked for it.
            self.resend(now, tx, Sending::Retransmission);
        }
        if let Some(timer) = step.timeout {
            self.events.push_back(Event::Timeout {
                tx: TxId::Server(tx),
                timer,
            });
        }
        if step.send_timeout {
            // The transaction user never answered the INVITE: 408 on its behalf.
            let request = self.servers.get(tx.0).and_then(|e| e.request.clone());
            if let Some(request) = request {
                let view = request.view();
                let timeout = crate::ResponseBuilder::from_view(&view, 408).build(&mut self.rng);
                match timeout {
                    Ok(resp) => {
                        let _ = self.send_response(now, tx, &resp);
                    }
                    Err(_) => self.server_transport_error(now, tx),
                }
            }
        }
        self.finish_server(tx);
    }

    /// Resends the last response because its request arrived again.
    fn resend_response(&mut self, now: Instant, tx: ServerTxId) {
        self.resend(now, tx, Sending::Answer);
    }

    fn resend(&mut self, now: Instant, tx: ServerTxId, sending: Sending) {
        let Some(data) = self.servers.get(tx.0).and_then(|e| e.last_response.clone()) else {
            return;
        };
        if self.send_on_route(now, tx, data, sending) {
            self.stats.retransmissions += 1;
        }
    }

    /// Section 18.2.2: a response goes on the request's flow, or a new connection to the
    /// fallback address when that flow has closed, or as a datagram (see
    /// [`Endpoint::queue_response_datagram`] for what the response policy adds). False when
    /// nothing was sent.
    fn send_on_route(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        data: Payload,
        sending: Sending,
    ) -> bool {
        let Some(e) = self.servers.get(tx.0) else {
            return false;
        };
        match e.route {
            ResponseRoute::Datagram { local, remote } => {
                self.queue_response_datagram(local, remote, data, sending)
            }
            ResponseRoute::Flow {
                flow,
                transport,
                fallback,
            } => {
                let local = self.flows.local(flow).unwrap_or(fallback);
                match self.send_to(now, transport, local, fallback, data, Some(flow)) {
                    Ok(Some(used)) if used != flow => {
                        if let Some(e) = self.servers.get_mut(tx.0) {
                            e.route = ResponseRoute::Flow {
                                flow: used,
                                transport,
                                fallback,
                            };
                        }
                        self.unbind_flow(Some(flow));
                        self.bind_flow(Some(used));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        self.server_transport_error(now, tx);
                        return false;
                    }
                }
                true
            }
        }
    }

    /// A server transaction's response could not be delivered: RFC 3263 section 5 under
    /// [`ResponsePolicy::Rfc3261`] (see `response_failover`), else it fails.
    fn server_transport_error(&mut self, now: Instant, tx: ServerTxId) {
        if self.response_failover(now, tx) {
            return;
        }
        self.fail_server(tx);
    }

    /// The server transaction fails with [`Event::TransportError`] (section 17.2.4).
    fn fail_server(&mut self, tx: ServerTxId) {
        if let Some(e) = self.servers.get_mut(tx.0) {
            let before = e.m.timers;
            e.m.terminate();
            self.sync_server_timers(tx, before, [None, None]);
            self.events.push_back(Event::TransportError {
                tx: TxId::Server(tx),
            });
        }
        self.finish_server(tx);
    }

    /// Frees a client transaction that reached Terminated.
    fn finish_client(&mut self, tx: ClientTxId) {
        let done = self
            .clients
            .get(tx.0)
            .is_some_and(|e| e.m.state == ClientState::Terminated);
        if !done {
            return;
        }
        if let Some(e) = self.clients.remove(tx.0) {
            self.timers
                .sync(|s| TimerRef::Client(tx.0, s), e.m.timers, [None, None]);
            // one lookup: put back the rare entry that names a later transaction
            self.client_keys.remove(e.key_hash, &e.key, tx);
            self.budget.release(e.charged);
            self.unbind_flow(e.flow);
            if e.located.is_some() {
                self.forget_located(tx, e.located);
            }
            // A CANCEL still waiting for a provisional response dies with its INVITE.
            if let Some(c) = e.cancel {
                if self.clients.get(c.0).is_some_and(|c| c.held) {
                    if let Some(ce) = self.clients.get_mut(c.0) {
                        ce.m.terminate();
                    }
                    self.finish_client(c);
                }
            }
        }
    }

    /// Frees a server transaction that reached Terminated.
    fn finish_server(&mut self, tx: ServerTxId) {
        let done = self
            .servers
            .get(tx.0)
            .is_some_and(|e| e.m.state == ServerState::Terminated);
        if !done {
            return;
        }
        if let Some(e) = self.servers.remove(tx.0) {
            self.timers
                .sync(|s| TimerRef::Server(tx.0, s), e.m.timers, [None, None]);
            self.server_keys.remove(e.key_hash, &e.key, tx);
            self.budget.release(e.charged);
            self.forget_server(tx);
            if let ResponseRoute::Flow { flow, .. } = e.route {
                self.unbind_flow(Some(flow));
            }
        }
    }

    /// Brings the budget in line with what a server transaction stores: its request until
    /// the final response, then the response it may have to resend, and its key.
    fn recharge_server(&mut self, tx: ServerTxId) {
        if let Some(e) = self.servers.get_mut(tx.0) {
            recharge(&mut self.budget, e);
        }
    }

    /// Sends a CANCEL that waited for the INVITE's provisional response.
    fn release_cancel(&mut self, now: Instant, tx: ClientTxId) {
        let timers = self.config.timers;
        let Some(e) = self.clients.get_mut(tx.0) else {
            return;
        };
        if !e.held {
            return;
        }
        e.held = false;
        e.m = ClientMachine::start(false, e.transport.is_reliable(), now, &timers);
        let after = e.m.timers;
        let (transport, local, remote, data, flow) = (
            e.transport,
            e.local,
            e.remote,
            Payload::Message(e.request.clone()),
            e.flow,
        );
        self.sync_client_timers(tx, [None, None], after);
        if self
            .send_to(now, transport, local, remote, data, flow)
            .is_err()
        {
            // (the timers just armed leave the table with the machine's slots)
            let armed = self.clients.get_mut(tx.0).map(|e| {
                let before = e.m.timers;
                e.m.terminate();
                before
            });
            if let Some(before) = armed {
                self.sync_client_timers(tx, before, [None, None]);
            }
            self.events.push_back(Event::TransportError {
                tx: TxId::Client(tx),
            });
            self.finish_client(tx);
        }
    }
}

/// A branch a caller may choose: the magic cookie (section 8.1.1.7), then a token (section
/// 25.1), at most 128 bytes.
fn valid_branch(branch: &str) -> bool {
    branch.len() > crate::MAGIC_COOKIE.len()
        && branch.len() <= 128
        && branch.starts_with(crate::MAGIC_COOKIE)
        && branch.bytes().all(crate::message::scan::is_token)
}

/// See [`Endpoint::recharge_server`].
fn recharge(budget: &mut Budget, e: &mut ServerEntry) {
    let held = e.request.as_ref().map_or(0, |r| r.as_bytes().len())
        + e.last_response.as_ref().map_or(0, |r| r.as_slice().len())
        + e.key.len();
    budget.release(e.charged);
    budget.charge(held);
    e.charged = held;
}
