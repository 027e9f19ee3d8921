//! A stateful proxy core (RFC 3261 section 16), sans-IO, on top of the [`Endpoint`].
//!
//! The endpoint runs the transactions; the [`Proxy`] is their transaction user. Every
//! [`Event`] the endpoint produces goes through [`Proxy::receive`], which
//!
//! - validates a new request (section 16.3: URI scheme, Max-Forwards, loops, Proxy-Require)
//!   and answers it when it must (416, 483, 482, 420; OPTIONS at Max-Forwards 0 is answered
//!   200 by the proxy itself, as section 16.3 step 3 allows, with an Allow header),
//! - preprocesses its route information (section 16.4: the strict-router fix, `maddr`, our
//!   own top Route removed),
//! - forwards by itself what needs no routing decision: a request that still carries a
//!   Route (an in-dialog request, or one for a loose-routing next hop), a request whose
//!   Request-URI has a `maddr` (section 16.5), the ACK for a 2xx (stateless, section
//!   16.11), a CANCEL (section 16.10),
//! - consumes the events of its own client transactions (responses, timeouts, transport
//!   errors: section 16.7 to 16.9),
//! - and returns [`Received::Route`] for a request the application must route: it builds
//!   the target set (section 16.5, e.g. from a location service) and calls
//!   [`Proxy::forward`], or [`Proxy::reject`].
//!
//! Anything else comes back as [`Received::NotMine`]: events of transactions that are not
//! the proxy's, an ACK addressed to the proxy itself, and [`Event::StrayResponse`] (section
//! 16.7 step 1 would relay a response matching no transaction statelessly; the proxy does
//! not, since a forged one would aim it at any address its Via names, section 26.1.5).
//!
//! With [`ProxyConfig::stateless`] the proxy forwards without state (section 16.11):
//! [`Proxy::forward`] sends to one target, under a branch computed from the request and
//! carrying a keyed MAC over the previous hop's Via, and drops the server transaction; an
//! [`Event::StrayResponse`] whose top Via carries such a branch (verified) is relayed along
//! the Via path, and a CANCEL matching no transaction is forwarded like any request.
//!
//! A minimal proxy that sends everything to one next hop:
//!
//! ```
//! use std::time::Instant;
//! use sip_core::proxy::{Proxy, ProxyConfig, ProxyTarget, Received};
//! use sip_core::{Config, Endpoint, Listener, Target, Transport};
//!
//! let me = "127.0.0.1:5060".parse().unwrap();
//! let config = Config { listeners: vec![Listener::new(Transport::Udp, me)], ..Config::default() };
//! let mut endpoint = Endpoint::new(config, [1; 32]);
//! let mut proxy = Proxy::new(ProxyConfig::new(Some("sip:127.0.0.1:5060;lr")), [2; 32]);
//! let next_hop = Target::udp("127.0.0.1:5070".parse().unwrap());
//! let now = Instant::now();
//! endpoint.handle_datagram(now, me, "127.0.0.1:5080".parse().unwrap(),
//!     b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
//!       From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
//!       Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
//! while let Some(event) = endpoint.poll_event() {
//!     match proxy.receive(now, event, &mut endpoint) {
//!         Received::Route(inbound) => {
//!             let target = ProxyTarget::new(inbound.request_uri()).next_hop(next_hop);
//!             proxy.forward(now, inbound, vec![target], &mut endpoint).unwrap();
//!         }
//!         Received::Handled => {}
//!         Received::NotMine(_) => {} // a registrar, a UAS, ... would take it
//!         _ => {}
//!     }
//! }
//! let mut buf = Vec::new();
//! let sent = endpoint.poll_transmit(&mut buf).unwrap();
//! assert_eq!(sent.remote, next_hop.addr);
//! assert!(buf.starts_with(b"OPTIONS sip:bob@example.com SIP/2.0\r\n"));
//! ```

mod route;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::message::{HeaderName, Message, Uri};
use crate::transaction::key::KeyedHasher;
use crate::{
    ClientTxId, Endpoint, Event, HopCount, Method, NextHop, OwnedMessage, ResponseBuilder,
    SeededRng, ServerState, ServerTxId, Source, Timer, Transport, TxId,
};

/// How a target set is tried (section 16.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Forking {
    /// Every target at once.
    #[default]
    Parallel,
    /// Targets in groups of equal q-value, highest first; the next group starts when every
    /// branch of the current one has failed (section 16.6: "the proxy MAY process the
    /// targets ... in decreasing q order").
    Sequential,
}

/// How the proxy is set up.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The URI this proxy puts in Record-Route (section 16.6 step 4), e.g.
    /// `sip:192.0.2.10:5060;lr`; `None`: no record-routing. When a request leaves on another
    /// transport or interface than it came in on, two entries are written instead, one per
    /// listener (RFC 5658 section 4).
    pub record_route: Option<String>,
    /// Further `host[:port]` values that name this proxy (a DNS name, a public address):
    /// its listeners (address and Via sent-by) and the Record-Route URI count already.
    pub own: Vec<String>,
    /// Response contexts at once. A request beyond it is answered 503 with Retry-After
    /// (section 21.5.4) instead of being forwarded.
    pub max_contexts: usize,
    /// Branches of one context (targets beyond it are dropped).
    pub max_branches: usize,
    /// Seconds in the Retry-After of the 503 sent when the context table is full.
    pub retry_after: u32,
    /// Parallel or sequential forking.
    pub forking: Forking,
    /// Option tags this proxy supports in Proxy-Require (section 16.3 step 5).
    pub extensions: Vec<String>,
    /// Forward statelessly (section 16.11): [`Proxy::forward`] sends the request to one
    /// target only (the first of the highest q-value), with no response context and no
    /// client transaction, under a branch computed from the request (the same for its
    /// retransmissions and its CANCEL) that carries a keyed MAC; the request's server
    /// transaction is dropped unanswered. A response whose top Via is ours with such a
    /// branch is relayed along the Via path; a CANCEL is forwarded like any request.
    pub stateless: bool,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            record_route: None,
            own: Vec::new(),
            max_contexts: 65536,
            max_branches: 16,
            retry_after: 5,
            forking: Forking::Parallel,
            extensions: Vec::new(),
            stateless: false,
        }
    }
}

impl ProxyConfig {
    /// The default configuration with this Record-Route URI (or none).
    pub fn new(record_route: Option<&str>) -> ProxyConfig {
        ProxyConfig {
            record_route: record_route.map(str::to_owned),
            ..ProxyConfig::default()
        }
    }
}

/// One target of a target set (section 16.5).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyTarget {
    /// The Request-URI of the copy sent to it.
    pub uri: String,
    /// Its q-value in thousandths (0 to 1000, as Contact's `q` is typed); `None` is 1000.
    pub q: Option<u16>,
    /// Its Path (RFC 3327), written as Route values above any others, first on top.
    pub path: Vec<String>,
    /// Where to send the copy: a [`Target`](crate::Target), or a [`NextHop::Uri`] the
    /// endpoint locates; `None`: where the top Route, else the URI, leads (section 16.6
    /// step 7: a numeric host at once, a name located by the endpoint, RFC 3263, with
    /// failover to its next server on a transport error, a timeout or a 503).
    pub next_hop: Option<NextHop>,
}

impl ProxyTarget {
    /// A target with this URI, no q-value, no Path, and no explicit next hop.
    pub fn new(uri: &str) -> ProxyTarget {
        ProxyTarget {
            uri: uri.to_owned(),
            q: None,
            path: Vec::new(),
            next_hop: None,
        }
    }

    /// With this next hop (a [`Target`](crate::Target) or a [`NextHop`]).
    pub fn next_hop(mut self, hop: impl Into<NextHop>) -> ProxyTarget {
        self.next_hop = Some(hop.into());
        self
    }

    /// With this q-value (thousandths).
    pub fn q(mut self, q: u16) -> ProxyTarget {
        self.q = Some(q.min(1000));
        self
    }

    /// With this Path (RFC 3327).
    pub fn path(mut self, path: Vec<String>) -> ProxyTarget {
        self.path = path;
        self
    }

    fn q_or_one(&self) -> u16 {
        self.q.unwrap_or(1000)
    }
}

/// A response context (section 16.2), as the proxy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextId(u64);

/// A request the application must route (sections 16.3 and 16.4 done), with its server
/// transaction.
#[derive(Debug)]
pub struct Inbound {
    tx: ServerTxId,
    request: OwnedMessage,
    source: Source,
    loop_hash: u64,
    /// The URI of its top Route after section 16.4, if any.
    first_route: Option<String>,
}

impl Inbound {
    /// The request, after section 16.4.
    pub fn request(&self) -> &OwnedMessage {
        &self.request
    }

    /// Its Request-URI.
    pub fn request_uri(&self) -> &str {
        self.request.request_uri().unwrap_or("")
    }

    /// Its method.
    pub fn method(&self) -> Method<'_> {
        self.request.method().unwrap_or(Method::Extension(""))
    }

    /// Where it came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Its server transaction (answer it through [`Proxy::reject`], or with
    /// [`Endpoint::send_response`] when the application acts as a UAS for it).
    pub fn tx(&self) -> ServerTxId {
        self.tx
    }

    /// The request as the endpoint's [`Event::Request`] again, for an application that
    /// handles it as a UAS (a registrar, [`UserAgent`](crate::ua::UserAgent)) instead of
    /// routing it. (A CANCEL comes as an `Inbound` only in the stateless mode, and only when
    /// it matches no transaction, so `cancels` is `None`.)
    pub fn into_event(self) -> Event {
        Event::Request {
            tx: self.tx,
            request: self.request,
            source: self.source,
            cancels: None,
        }
    }
}

/// What [`Proxy::receive`] did with an event.
#[derive(Debug)]
#[non_exhaustive]
pub enum Received {
    /// A request for the application to route: call [`Proxy::forward`] or
    /// [`Proxy::reject`] (or answer it as a UAS).
    Route(Inbound),
    /// The proxy took care of it.
    Handled,
    /// Not the proxy's: the application may use it (a registrar, a UAS core).
    NotMine(Event),
}

/// Why [`Proxy::forward`] did not create a context. In every case the request has been
/// answered already (or cannot be any more).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The target set was empty: answered 480 (section 16.5).
    #[error("empty target set")]
    NoTargets,
    /// The context table is full: answered 503 with Retry-After.
    #[error("too many response contexts")]
    Overloaded,
    /// The server transaction was answered or ended meanwhile (e.g. cancelled).
    #[error("the request's transaction is gone")]
    TransactionGone,
    /// Stateless forwarding (section 16.11) found no next hop for the target or could not
    /// send to it: answered 500 (what a stateful proxy answers for a branch that failed
    /// that way, section 16.7 step 6).
    #[error("no next hop for the target")]
    Unroutable,
    /// Stateless forwarding of a `sips:` request whose next hop is not TLS: answered 480
    /// with warn-code 380 (RFC 3261 section 26.2, RFC 5630 section 5.3: never forwarded
    /// over a hop that is not TLS).
    #[error("a sips: request cannot be forwarded over a hop that is not TLS")]
    InsecureHop,
}

/// Counters for logs and summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Requests sent downstream (one per branch).
    pub forwarded: u64,
    /// Responses forwarded upstream.
    pub responses: u64,
    /// Requests answered 482 (section 16.3 step 4).
    pub loops: u64,
    /// Requests answered by the proxy itself (16.3 rejections, 503 when full, ...).
    pub answered: u64,
    /// ACKs for 2xx forwarded statelessly (section 16.11).
    pub acks: u64,
    /// CANCELs sent downstream (section 16.10, 16.7 step 10, timer C).
    pub cancels: u64,
    /// Requests refused for the context table (503).
    pub overloaded: u64,
    /// ACKs and branches that could not be sent anywhere (no next hop).
    pub unroutable: u64,
    /// Branches of `sips:` requests not sent because their next hop was not TLS (RFC 3261
    /// section 26.2, RFC 5630 section 5.3: 480 with warn-code 380).
    pub insecure_hops: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BranchState {
    /// Sent, no final response yet; `provisional` once a 101-199 came.
    Pending { provisional: bool },
    /// Final response `code` (synthesized 408 / 503 included).
    Done(u16),
}

#[derive(Debug)]
struct Branch {
    tx: Option<ClientTxId>,
    /// The CANCEL sent for it, while its transaction may still report.
    cancel_tx: Option<ClientTxId>,
    state: BranchState,
    cancelled: bool,
}

#[derive(Debug)]
struct Context {
    server: ServerTxId,
    /// The request after section 16.4, while branches may still start or a response be
    /// built from it; dropped once the context only lingers.
    request: Option<OwnedMessage>,
    source: Source,
    loop_hash: u64,
    first_route: Option<String>,
    invite: bool,
    branches: Vec<Branch>,
    /// Targets not tried yet (sequential forking), next group first.
    waiting: Vec<ProxyTarget>,
    /// The best non-2xx final response so far (section 16.7 step 6), with its code.
    best: Option<(u16, Option<OwnedMessage>)>,
    /// WWW-Authenticate and Proxy-Authenticate values of every 401/407 (step 7).
    challenges: Vec<(HeaderName, String)>,
    /// A final response went upstream.
    final_sent: bool,
    /// CANCELled by the client, or a 6xx came: no new branches (section 16.7 step 5).
    stop: bool,
    /// Removal scheduled.
    lingering: bool,
    /// A branch was not sent because the request is `sips:` and its next hop not TLS: a
    /// 480 made up for it carries warn-code 380 (RFC 5630 section 5.3).
    sips_refused: bool,
}

/// Why section 16.6 could not make a copy for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoCopy {
    /// No next hop, or the copy could not be written: the branch fails as a transport
    /// error would (section 16.9, 503).
    Unroutable,
    /// A `sips:` request and a hop that is not TLS (section 26.2): 480, warn-code 380.
    Insecure,
}

/// The Warning of a 480 for a `sips:` request that cannot go on over TLS (RFC 5630 section
/// 5.3, warn-code 380 of its section 9).
fn sips_warning(endpoint: &Endpoint) -> String {
    let agent = endpoint
        .config()
        .listeners
        .first()
        .map_or_else(|| "-".to_owned(), |l| l.addr.to_string());
    format!("380 {agent} \"SIPS Not Allowed\"")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// Timer C fired on this branch and its CANCEL went out; its final response never came
    /// (section 16.8: as if 408).
    BranchGiveUp(ContextId, usize),
    /// The context is done; its transactions have ended (Accepted states included).
    Remove(ContextId),
}

/// Bounds on what the proxy keeps from one response.
const MAX_CHALLENGES: usize = 16;
const MAX_CHALLENGE_LEN: usize = 2048;

/// The stateful proxy core. See the module docs.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    rng: SeededRng,
    hasher: KeyedHasher,
    /// The key of the MAC in stateless branches (section 16.11).
    mac_key: KeyedHasher,
    next_id: u64,
    contexts: HashMap<ContextId, Context>,
    by_server: HashMap<ServerTxId, ContextId>,
    by_client: HashMap<ClientTxId, (ContextId, usize)>,
    /// CANCEL client transactions the proxy sent: their events are consumed.
    cancel_txs: HashMap<ClientTxId, ContextId>,
    due: BinaryHeap<Reverse<(Instant, Due)>>,
    stats: ProxyStats,
    /// `<record_route>`, as written into Record-Route.
    rr_value: Option<String>,
    /// What names this proxy (rebuilt when the endpoint's listeners differ).
    own: route::OwnSet,
}

/// The stream of the proxy's ChaCha20 generator (tokens, branches).
const PROXY_TOKEN_STREAM: u64 = 3;
/// The stream of its hash keys (loop hash).
const PROXY_HASH_STREAM: u64 = 4;

impl Proxy {
    /// A proxy. `seed` keys its generator (branches, tags) and the hash of its loop
    /// detection: 32 bytes from the operating system in real use, fixed only in tests.
    pub fn new(config: ProxyConfig, seed: [u8; 32]) -> Proxy {
        let mut keys = SeededRng::with_stream(seed, PROXY_HASH_STREAM);
        let (k0, k1, m0, m1) = {
            use crate::Rng;
            (
                keys.next_u64(),
                keys.next_u64(),
                keys.next_u64(),
                keys.next_u64(),
            )
        };
        Proxy {
            rr_value: config.record_route.as_ref().map(|r| format!("<{r}>")),
            own: route::OwnSet::default(),
            config,
            rng: SeededRng::with_stream(seed, PROXY_TOKEN_STREAM),
            hasher: KeyedHasher::new(k0, k1),
            mac_key: KeyedHasher::new(m0, m1),
            next_id: 0,
            contexts: HashMap::new(),
            by_server: HashMap::new(),
            by_client: HashMap::new(),
            cancel_txs: HashMap::new(),
            due: BinaryHeap::new(),
            stats: ProxyStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Live response contexts.
    pub fn contexts(&self) -> usize {
        self.contexts.len()
    }

    /// The counters.
    pub fn stats(&self) -> ProxyStats {
        self.stats
    }

    /// The next deadline of the proxy's own timers.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    /// Runs the proxy's timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        while let Some(Reverse((t, due))) = self.due.peek().copied() {
            if t > now {
                break;
            }
            self.due.pop();
            match due {
                Due::BranchGiveUp(id, i) => {
                    let pending = self
                        .contexts
                        .get(&id)
                        .and_then(|c| c.branches.get(i))
                        .is_some_and(|b| matches!(b.state, BranchState::Pending { .. }));
                    if pending {
                        self.branch_final(now, id, i, 408, None, endpoint);
                    }
                }
                Due::Remove(id) => self.remove_context(id),
            }
        }
    }

    /// Does this URI name the proxy (a listener's address or Via sent-by, the Record-Route
    /// URI, or [`ProxyConfig::own`])?
    pub fn is_own_uri(&self, uri: &str, endpoint: &Endpoint) -> bool {
        match Uri::parse(uri) {
            Some(Uri::Sip(u)) => self.is_own_host(u.host.as_str(), route::uri_port(&u), endpoint),
            _ => false,
        }
    }

    /// Is this Request-URI one this proxy put in a Record-Route (section 16.4: the previous
    /// hop was a strict router)? Only such a URI: no user part, the `lr` parameter every
    /// Record-Route of ours carries, and a listener's or the Record-Route URI's address. The
    /// names in [`ProxyConfig::own`] (a domain this proxy serves) do not count, so that a
    /// REGISTER for `sip:example.com` sent through an outbound proxy keeps its Request-URI.
    fn is_own_record_route(&self, ruri: Option<&Uri<'_>>, endpoint: &Endpoint) -> bool {
        let Some(Uri::Sip(u)) = ruri else {
            return false;
        };
        if u.user.is_some() || !u.params.contains("lr") {
            return false;
        }
        route::OwnSet::new(
            &endpoint.config().listeners,
            self.config.record_route.as_deref(),
            &[],
        )
        .contains(u.host.as_str(), route::uri_port(u))
    }

    fn is_own_host(&self, host: &str, port: u16, endpoint: &Endpoint) -> bool {
        let listeners = &endpoint.config().listeners;
        if self.own.is_for(listeners) {
            self.own.contains(host, port)
        } else {
            self.own_set(endpoint).contains(host, port)
        }
    }

    fn own_set(&self, endpoint: &Endpoint) -> route::OwnSet {
        route::OwnSet::new(
            &endpoint.config().listeners,
            self.config.record_route.as_deref(),
            &self.config.own,
        )
    }

    /// Builds the set of own addresses again if the endpoint is not the one it was built
    /// for (it is built once in practice).
    fn refresh_own(&mut self, endpoint: &Endpoint) {
        if !self.own.is_for(&endpoint.config().listeners) {
            self.own = self.own_set(endpoint);
        }
    }

    /// Takes an event from the endpoint. See the module docs.
    pub fn receive(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) -> Received {
        self.refresh_own(endpoint);
        match event {
            Event::Request {
                tx,
                request,
                source,
                cancels,
            } => {
                // (a stateless proxy forwards a CANCEL matching no transaction like any
                // request, section 16.11)
                let stateless_cancel = self.config.stateless && cancels.is_none();
                if request.method() == Some(Method::Cancel) && !stateless_cancel {
                    return self.on_cancel(now, tx, &request, cancels, endpoint);
                }
                self.on_request(now, tx, request, source, endpoint)
            }
            Event::Ack { request, source } => self.on_ack(now, request, source, endpoint),
            Event::Response { tx, response } => {
                if let Some(&(id, i)) = self.by_client.get(&tx) {
                    self.on_response(now, id, i, response, endpoint);
                    Received::Handled
                } else if self.cancel_txs.contains_key(&tx) {
                    if response.status().is_some_and(|c| c >= 200) {
                        self.cancel_done(tx, endpoint);
                    }
                    Received::Handled
                } else {
                    Received::NotMine(Event::Response { tx, response })
                }
            }
            Event::StrayResponse { response, source } if self.config.stateless => {
                self.on_stray_response(now, response, source, endpoint)
            }
            Event::Timeout { tx, timer } => self.on_timeout(now, tx, timer, endpoint),
            Event::TransportError { tx } => self.on_transport_error(now, tx, endpoint),
            other => Received::NotMine(other),
        }
    }

    fn on_timeout(
        &mut self,
        now: Instant,
        tx: TxId,
        timer: Timer,
        endpoint: &mut Endpoint,
    ) -> Received {
        match tx {
            TxId::Client(c) => {
                if self.cancel_txs.contains_key(&c) {
                    self.cancel_done(c, endpoint);
                    return Received::Handled;
                }
                let Some(&(id, i)) = self.by_client.get(&c) else {
                    return Received::NotMine(Event::Timeout { tx, timer });
                };
                if timer == Timer::C {
                    // Section 16.8: the endpoint sent the CANCEL; the final response (487)
                    // should follow. If it never does, the branch ends as a 408 once the
                    // INVITE transaction has given up (64*T1 after the CANCEL).
                    self.stats.cancels += 1;
                    // (the endpoint's CANCEL: its events are the proxy's too)
                    let cancel = endpoint.cancel(now, c).ok();
                    if let Some(ctx) = cancel {
                        self.cancel_txs.insert(ctx, id);
                    }
                    if let Some(b) = self.branch_mut(id, i) {
                        b.cancelled = true;
                        b.cancel_tx = b.cancel_tx.or(cancel);
                    }
                    let at = now + endpoint.config().timers.t1x64() + Duration::from_millis(1);
                    self.due.push(Reverse((at, Due::BranchGiveUp(id, i))));
                } else {
                    // Timer B or F: section 16.8, the branch's result is 408.
                    self.by_client.remove(&c);
                    self.branch_final(now, id, i, 408, None, endpoint);
                }
                Received::Handled
            }
            TxId::Server(s) => {
                let Some(&id) = self.by_server.get(&s) else {
                    return Received::NotMine(Event::Timeout { tx, timer });
                };
                // The server transaction answered (408 on the proxy's behalf) or ended:
                // nothing more can go upstream, so the pending branches are cancelled.
                if let Some(c) = self.contexts.get_mut(&id) {
                    c.final_sent = true;
                    c.stop = true;
                }
                self.cancel_pending(now, id, endpoint);
                self.check_done(now, id, endpoint);
                Received::Handled
            }
        }
    }

    fn on_transport_error(&mut self, now: Instant, tx: TxId, endpoint: &mut Endpoint) -> Received {
        match tx {
            TxId::Client(c) => {
                if self.cancel_txs.contains_key(&c) {
                    self.cancel_done(c, endpoint);
                    return Received::Handled;
                }
                let Some((id, i)) = self.by_client.remove(&c) else {
                    return Received::NotMine(Event::TransportError { tx });
                };
                // Section 16.9: as if the branch had answered 503.
                self.branch_final(now, id, i, 503, None, endpoint);
                Received::Handled
            }
            TxId::Server(s) => {
                let Some(&id) = self.by_server.get(&s) else {
                    return Received::NotMine(Event::TransportError { tx });
                };
                if let Some(c) = self.contexts.get_mut(&id) {
                    c.final_sent = true;
                    c.stop = true;
                }
                self.cancel_pending(now, id, endpoint);
                self.check_done(now, id, endpoint);
                Received::Handled
            }
        }
    }

    fn branch_mut(&mut self, id: ContextId, i: usize) -> Option<&mut Branch> {
        self.contexts
            .get_mut(&id)
            .and_then(|c| c.branches.get_mut(i))
    }

    // ---- requests: sections 16.3 and 16.4 ----

    /// Answers `request` on `tx` with `code` (and extra header lines).
    fn answer(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        request: &OwnedMessage,
        code: u16,
        extra: &[(&str, &str)],
        endpoint: &mut Endpoint,
    ) {
        let view = request.view();
        let mut b = ResponseBuilder::from_view(&view, code);
        for (n, v) in extra {
            b = b.header(n, v);
        }
        if let Ok(resp) = b.build(&mut self.rng) {
            self.stats.answered += 1;
            let _ = endpoint.send_response(now, tx, &resp);
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        request: OwnedMessage,
        source: Source,
        endpoint: &mut Endpoint,
    ) -> Received {
        let Ok(m) = request.message() else {
            self.answer(now, tx, &request, 400, &[], endpoint);
            return Received::Handled;
        };
        let loop_hash = match self.validate(&m, endpoint) {
            Ok(hash) => hash,
            Err((code, extra)) => {
                if code == 482 {
                    self.stats.loops += 1;
                }
                let extra: Vec<(&str, &str)> =
                    extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
                self.answer(now, tx, &request, code, &extra, endpoint);
                return Received::Handled;
            }
        };
        // Section 16.4.
        let (request, follow, first_route) = match self.preprocess_routes(&request, &m, endpoint) {
            Ok(r) => r,
            Err(()) => {
                self.answer(now, tx, &request, 400, &[], endpoint);
                return Received::Handled;
            }
        };
        let inbound = Inbound {
            tx,
            request,
            source,
            loop_hash,
            first_route,
        };
        // Section 16.5 (and 16.4's note): a request that still has a Route goes to it with
        // its Request-URI unchanged; so does one whose Request-URI has a maddr.
        if follow {
            let target = ProxyTarget::new(inbound.request_uri());
            let _ = self.forward(now, inbound, vec![target], endpoint);
            return Received::Handled;
        }
        Received::Route(inbound)
    }

    /// Section 16.3 steps 2 to 5: the loop hash of an acceptable request, or the response
    /// owed with its extra header lines.
    #[allow(clippy::type_complexity)]
    fn validate(
        &self,
        m: &Message<'_>,
        endpoint: &Endpoint,
    ) -> Result<u64, (u16, Vec<(&'static str, String)>)> {
        // Step 2: a scheme the proxy understands.
        let scheme_ok = m.request_uri().is_some_and(|u| {
            ["sip", "sips", "tel"]
                .iter()
                .any(|s| u.scheme().eq_ignore_ascii_case(s))
        });
        if !scheme_ok {
            return Err((416, Vec::new()));
        }
        // Step 3: Max-Forwards.
        if m.max_forwards() == Some(0) {
            if m.method() == Some(Method::Options) {
                // Section 16.3 step 3 / 11.2: the proxy answers as a UAS would.
                return Err((
                    200,
                    vec![(
                        "Allow",
                        "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, \
                         PRACK, SUBSCRIBE, NOTIFY, REFER"
                            .to_owned(),
                    )],
                ));
            }
            return Err((483, Vec::new()));
        }
        // Step 4: loop detection. A Via this proxy wrote whose loop part equals what this
        // request hashes to is a loop; a different hash (another Request-URI, ...) is a
        // spiral.
        let hash = if self.config.stateless {
            route::stateless_loop_hash(&self.hasher, m)
        } else {
            route::loop_hash(&self.hasher, m)
        };
        for via in m.vias() {
            let port = via.port.unwrap_or_else(|| {
                Transport::from_via_token(via.transport)
                    .unwrap_or(Transport::Udp)
                    .default_port()
            });
            if !self.is_own_host(via.host.as_str(), port, endpoint) {
                continue;
            }
            if via.branch().and_then(route::branch_loop_part) == Some(hash) {
                return Err((482, Vec::new()));
            }
        }
        // Step 5: Proxy-Require.
        let unsupported: Vec<&str> = m
            .tokens(HeaderName::ProxyRequire)
            .filter(|t| {
                !self
                    .config
                    .extensions
                    .iter()
                    .any(|e| e.eq_ignore_ascii_case(t))
            })
            .collect();
        if !unsupported.is_empty() {
            return Err((420, vec![("Unsupported", unsupported.join(", "))]));
        }
        Ok(hash)
    }

    /// Section 16.4: the strict-router fix (our own Request-URI replaced by the last Route),
    /// `maddr` naming us stripped, and a top Route naming us removed.
    /// Returns the request and whether it must simply follow its Route or `maddr`.
    fn preprocess_routes(
        &self,
        request: &OwnedMessage,
        m: &Message<'_>,
        endpoint: &Endpoint,
    ) -> Result<(OwnedMessage, bool, Option<String>), ()> {
        let ruri = request.request_uri().unwrap_or("");
        let maddr = matches!(m.request_uri(), Some(Uri::Sip(u)) if u.maddr().is_some());
        if !maddr && m.view().header(HeaderName::Route).is_none() {
            // The common case: nothing to preprocess.
            return Ok((request.clone(), false, None));
        }
        let routes: Vec<String> = m
            .view()
            .header_all(HeaderName::Route)
            .flat_map(split_values)
            .collect();
        let mut edit = request.edit();
        let mut changed = false;
        let mut routes_now = routes.clone();
        if !routes.is_empty() && self.is_own_record_route(m.request_uri(), endpoint) {
            // The previous hop was a strict router that put our Record-Route URI into the
            // Request-URI: the real one is the last Route value.
            let last = routes_now.pop().unwrap_or_default();
            edit.set_request_uri(route::route_uri(&last))
                .map_err(|_| ())?;
            edit.remove("Route").map_err(|_| ())?;
            for r in &routes_now {
                edit.append("Route", r).map_err(|_| ())?;
            }
            changed = true;
        } else if let Some(Uri::Sip(u)) = m.request_uri() {
            // maddr naming us: strip maddr, port and transport (section 16.4).
            if let Some(maddr) = u.maddr() {
                let port = route::uri_port(u);
                if self.is_own_host(maddr, port, endpoint) {
                    let stripped = strip_maddr(ruri);
                    edit.set_request_uri(&stripped).map_err(|_| ())?;
                    changed = true;
                }
            }
        }
        if let Some(first) = routes_now.first() {
            if self.is_own_uri(route::route_uri(first), endpoint) {
                edit.remove_first_value("Route").map_err(|_| ())?;
                changed = true;
            }
        }
        let out = if changed {
            edit.finish().map_err(|_| ())?
        } else {
            request.clone()
        };
        let (follow, first_route) = {
            let m = out.message().map_err(|_| ())?;
            let first = m.routes().next().map(|r| r.uri.to_string());
            let maddr = matches!(m.request_uri(), Some(Uri::Sip(u)) if u.maddr().is_some());
            (first.is_some() || maddr, first)
        };
        Ok((out, follow, first_route))
    }

    // ---- CANCEL: section 16.10 ----

    fn on_cancel(
        &mut self,
        now: Instant,
        tx: ServerTxId,
        request: &OwnedMessage,
        cancels: Option<ServerTxId>,
        endpoint: &mut Endpoint,
    ) -> Received {
        let Some(invite) = cancels else {
            // Section 16.10 asks to forward statelessly a CANCEL matching no context; a
            // stateful proxy has a context for every INVITE it forwarded while the INVITE's
            // server transaction lives, so nothing downstream is waiting for it: 481
            // (section 9.2).
            self.answer(now, tx, request, 481, &[], endpoint);
            return Received::Handled;
        };
        self.answer(now, tx, request, 200, &[], endpoint);
        match self.by_server.get(&invite).copied() {
            Some(id) => {
                if let Some(c) = self.contexts.get_mut(&id) {
                    c.stop = true;
                    c.waiting.clear();
                }
                self.cancel_pending(now, id, endpoint);
                // A context whose branches were all done already, or whose last branches
                // never started, may be complete now.
                self.check_done(now, id, endpoint);
            }
            None => {
                // Not forwarded yet (in the application's hands): answered 487 here;
                // `forward` will find the transaction answered.
                if let Some(req) = endpoint.server_request(invite).cloned() {
                    self.answer(now, invite, &req, 487, &[], endpoint);
                }
            }
        }
        Received::Handled
    }

    /// Sends CANCEL on every branch still waiting for its final response.
    fn cancel_pending(&mut self, now: Instant, id: ContextId, endpoint: &mut Endpoint) {
        let Some(c) = self.contexts.get_mut(&id) else {
            return;
        };
        if !c.invite {
            return;
        }
        for b in c.branches.iter_mut() {
            if b.cancelled || !matches!(b.state, BranchState::Pending { .. }) {
                continue;
            }
            let Some(tx) = b.tx else { continue };
            b.cancelled = true;
            if let Ok(ctx) = endpoint.cancel(now, tx) {
                self.stats.cancels += 1;
                b.cancel_tx = Some(ctx);
                self.cancel_txs.insert(ctx, id);
            }
        }
    }

    // ---- ACK for a 2xx: section 16.11 ----

    fn on_ack(
        &mut self,
        now: Instant,
        request: OwnedMessage,
        source: Source,
        endpoint: &mut Endpoint,
    ) -> Received {
        let Ok(m) = request.message() else {
            return Received::Handled;
        };
        if m.max_forwards() == Some(0) {
            return Received::Handled;
        }
        let has_route = m.routes().next().is_some();
        let ruri = request.request_uri().unwrap_or("");
        if self.is_own_uri(ruri, endpoint) && !has_route {
            // An ACK for a 2xx the application sent as a UAS.
            return Received::NotMine(Event::Ack { request, source });
        }
        let Ok((fwd, _, _)) = self.preprocess_routes(&request, &m, endpoint) else {
            return Received::Handled;
        };
        let mut edit = fwd.edit();
        if !matches!(
            edit.decrement_max_forwards(),
            Ok(HopCount::Decremented(_) | HopCount::Added(_))
        ) {
            return Received::Handled;
        }
        let Ok(fwd) = edit.finish() else {
            return Received::Handled;
        };
        let Some(target) = next_hop_of(&fwd) else {
            self.stats.unroutable += 1;
            return Received::Handled;
        };
        let sent = if self.config.stateless {
            // Section 16.11: the branch from the request, so that the ACK for a non-2xx
            // matches the INVITE's transaction downstream.
            let Some(top) = m.top_via() else {
                return Received::Handled;
            };
            let hash = route::stateless_loop_hash(&self.hasher, &m);
            let branch = route::stateless_branch(&self.mac_key, hash, &top, Some(source.remote));
            endpoint.send_stateless(now, &fwd, target, &branch)
        } else {
            endpoint.send_ack(now, &fwd, target)
        };
        if sent.is_ok() {
            self.stats.acks += 1;
        }
        Received::Handled
    }

    // ---- stateless forwarding: section 16.11 ----

    /// Section 16.11: the request to one target (the first of the highest q-value), under
    /// a branch computed from the request, and its server transaction dropped.
    fn forward_stateless(
        &mut self,
        now: Instant,
        inbound: Inbound,
        targets: Vec<ProxyTarget>,
        endpoint: &mut Endpoint,
    ) -> Result<ContextId, ProxyError> {
        // A stateless proxy does not fork: the best target only.
        let mut best: Option<&ProxyTarget> = None;
        for t in &targets {
            if best.is_none_or(|b| t.q_or_one() > b.q_or_one()) {
                best = Some(t);
            }
        }
        let sent = match best {
            Some(target) => self.send_stateless_copy(now, &inbound, target, endpoint),
            None => Err(NoCopy::Unroutable),
        };
        match sent {
            Ok(()) => {}
            Err(NoCopy::Insecure) => {
                self.stats.insecure_hops += 1;
                let warning = sips_warning(endpoint);
                let extra = [("Warning", warning.as_str())];
                self.answer(now, inbound.tx, &inbound.request, 480, &extra, endpoint);
                return Err(ProxyError::InsecureHop);
            }
            Err(NoCopy::Unroutable) => {
                self.stats.unroutable += 1;
                self.answer(now, inbound.tx, &inbound.request, 500, &[], endpoint);
                return Err(ProxyError::Unroutable);
            }
        }
        self.stats.forwarded += 1;
        // The downstream element answers: nothing is kept here, and the server
        // transaction ends without a response (a retransmission is forwarded again).
        endpoint.abandon_server(inbound.tx);
        let id = ContextId(self.next_id);
        self.next_id += 1;
        Ok(id)
    }

    /// Section 16.11: the copy of `inbound` for `target`, sent without a transaction under
    /// the branch computed from the request (to a name: the endpoint locates it and sends
    /// to its first target).
    fn send_stateless_copy(
        &mut self,
        now: Instant,
        inbound: &Inbound,
        target: &ProxyTarget,
        endpoint: &mut Endpoint,
    ) -> Result<(), NoCopy> {
        let branch = {
            let m = inbound.request.message().map_err(|_| NoCopy::Unroutable)?;
            let top = m.top_via().ok_or(NoCopy::Unroutable)?;
            route::stateless_branch(&self.mac_key, inbound.loop_hash, &top, None)
        };
        let (fwd, next) = self.copy_for(
            &inbound.request,
            inbound.source,
            inbound.first_route.as_deref(),
            target,
            endpoint,
        )?;
        endpoint
            .send_stateless(now, &fwd, next, &branch)
            .map_err(|_| NoCopy::Unroutable)
    }

    /// Section 16.11: a response matching no transaction is relayed when its top Via is
    /// ours and its branch one this proxy made (the MAC over the next Via verifies), so a
    /// forged response cannot use the proxy as a reflector (section 26.1.5).
    fn on_stray_response(
        &mut self,
        now: Instant,
        response: OwnedMessage,
        source: Source,
        endpoint: &mut Endpoint,
    ) -> Received {
        let ours = {
            let Ok(m) = response.message() else {
                return Received::NotMine(Event::StrayResponse { response, source });
            };
            let mut vias = m.vias();
            match (vias.next(), vias.next()) {
                (Some(top), Some(prev)) => {
                    let port = top.port.unwrap_or_else(|| {
                        Transport::from_via_token(top.transport)
                            .unwrap_or(Transport::Udp)
                            .default_port()
                    });
                    self.is_own_host(top.host.as_str(), port, endpoint)
                        && top
                            .branch()
                            .and_then(route::stateless_branch_parts)
                            .is_some_and(|(loop_part, mac)| {
                                route::via_mac(&self.mac_key, loop_part, &prev, None) == mac
                            })
                }
                _ => false,
            }
        };
        if !ours {
            return Received::NotMine(Event::StrayResponse { response, source });
        }
        if let Some(out) = without_top_via(&response) {
            if endpoint.send_stateless_response(now, &out).is_ok() {
                self.stats.responses += 1;
            }
        }
        Received::Handled
    }

    // ---- forwarding: sections 16.5 and 16.6 ----

    /// Answers a request the application will not route (404, 403, ...).
    pub fn reject(&mut self, now: Instant, inbound: Inbound, status: u16, endpoint: &mut Endpoint) {
        self.answer(now, inbound.tx, &inbound.request, status, &[], endpoint);
    }

    /// Forwards `inbound` to the target set (section 16.6 for each target), in parallel or
    /// by q-value groups ([`ProxyConfig::forking`]). Responses are then processed by
    /// [`Proxy::receive`] (section 16.7). A target whose next hop cannot be found (a host
    /// name without [`ProxyTarget::next_hop`]) or whose request cannot be sent counts as a
    /// branch that answered 503 (section 16.9; RFC 3263 section 4.3 treats a failed lookup
    /// as a transport error).
    ///
    /// With [`ProxyConfig::stateless`] (section 16.11) only the first target of the highest
    /// q-value is tried, nothing is kept, and the returned id names no context; a target
    /// that cannot be reached is answered 500 ([`ProxyError::Unroutable`]).
    pub fn forward(
        &mut self,
        now: Instant,
        inbound: Inbound,
        mut targets: Vec<ProxyTarget>,
        endpoint: &mut Endpoint,
    ) -> Result<ContextId, ProxyError> {
        let live = matches!(
            endpoint.server_state(inbound.tx),
            Some(ServerState::Proceeding | ServerState::Trying)
        );
        if !live {
            return Err(ProxyError::TransactionGone);
        }
        if targets.is_empty() {
            self.answer(now, inbound.tx, &inbound.request, 480, &[], endpoint);
            return Err(ProxyError::NoTargets);
        }
        if self.config.stateless {
            return self.forward_stateless(now, inbound, targets, endpoint);
        }
        if self.contexts.len() >= self.config.max_contexts {
            self.stats.overloaded += 1;
            let retry = self.config.retry_after.to_string();
            self.answer(
                now,
                inbound.tx,
                &inbound.request,
                503,
                &[("Retry-After", &retry)],
                endpoint,
            );
            return Err(ProxyError::Overloaded);
        }
        targets.truncate(self.config.max_branches.max(1));
        if self.config.forking == Forking::Sequential {
            // Highest q first (a stable sort keeps the given order within a q-value).
            targets.sort_by_key(|t| Reverse(t.q_or_one()));
        }
        let id = ContextId(self.next_id);
        self.next_id += 1;
        let invite = inbound.request.method() == Some(Method::Invite);
        self.contexts.insert(
            id,
            Context {
                server: inbound.tx,
                request: Some(inbound.request),
                source: inbound.source,
                loop_hash: inbound.loop_hash,
                first_route: inbound.first_route,
                invite,
                branches: Vec::with_capacity(targets.len()),
                waiting: targets,
                best: None,
                challenges: Vec::new(),
                final_sent: false,
                stop: false,
                lingering: false,
                sips_refused: false,
            },
        );
        self.by_server.insert(inbound.tx, id);
        self.start_next_group(now, id, endpoint);
        Ok(id)
    }

    /// Starts the next group of waiting targets: all of them (parallel), or those sharing
    /// the highest q-value (sequential).
    fn start_next_group(&mut self, now: Instant, id: ContextId, endpoint: &mut Endpoint) {
        let group: Vec<ProxyTarget> = {
            let Some(c) = self.contexts.get_mut(&id) else {
                return;
            };
            if c.waiting.is_empty() {
                return;
            }
            let n = match self.config.forking {
                Forking::Parallel => c.waiting.len(),
                Forking::Sequential => {
                    let q = c.waiting[0].q_or_one();
                    c.waiting.iter().take_while(|t| t.q_or_one() == q).count()
                }
            };
            c.waiting.drain(..n).collect()
        };
        let mut failed = Vec::new();
        for target in group {
            let i = match self.contexts.get_mut(&id) {
                Some(c) => {
                    c.branches.push(Branch {
                        tx: None,
                        cancel_tx: None,
                        state: BranchState::Pending { provisional: false },
                        cancelled: false,
                    });
                    c.branches.len() - 1
                }
                None => return,
            };
            match self.send_branch(now, id, &target, endpoint) {
                Ok(tx) => {
                    self.stats.forwarded += 1;
                    if let Some(b) = self.branch_mut(id, i) {
                        b.tx = Some(tx);
                    }
                    self.by_client.insert(tx, (id, i));
                }
                Err(why) => failed.push((i, why)),
            }
        }
        for (i, why) in failed {
            let code = match why {
                NoCopy::Unroutable => {
                    self.stats.unroutable += 1;
                    503
                }
                NoCopy::Insecure => {
                    // RFC 5630 section 5.3: a sips: request is not forwarded over a hop
                    // that is not TLS; the branch ends as 480 (warn-code 380).
                    self.stats.insecure_hops += 1;
                    if let Some(c) = self.contexts.get_mut(&id) {
                        c.sips_refused = true;
                    }
                    480
                }
            };
            self.branch_final(now, id, i, code, None, endpoint);
        }
    }

    /// Section 16.6 steps 1 to 8 and 10 for one target: the copy, and its client
    /// transaction.
    fn send_branch(
        &mut self,
        now: Instant,
        id: ContextId,
        target: &ProxyTarget,
        endpoint: &mut Endpoint,
    ) -> Result<ClientTxId, NoCopy> {
        let c = self.contexts.get(&id).ok_or(NoCopy::Unroutable)?;
        let request = c.request.as_ref().ok_or(NoCopy::Unroutable)?;
        let (fwd, next) = self.copy_for(
            request,
            c.source,
            c.first_route.as_deref(),
            target,
            endpoint,
        )?;
        // Step 8: our Via, with the loop-detecting branch (the endpoint writes it; a
        // failover attempt n to the next server of a name gets `{branch}.{n}`, whose loop
        // part is the same).
        let branch = route::branch_for(c.loop_hash, &mut self.rng);
        endpoint
            .send_request_with_branch(now, &fwd, next, &branch)
            .map_err(|_| NoCopy::Unroutable)
    }

    /// Section 16.6 steps 1 to 7 for one target: the copy and its next hop.
    fn copy_for(
        &self,
        request: &OwnedMessage,
        source: Source,
        first_route: Option<&str>,
        target: &ProxyTarget,
        endpoint: &Endpoint,
    ) -> Result<(OwnedMessage, NextHop), NoCopy> {
        use NoCopy::Unroutable;
        // The top Route of the copy: the target's Path first (RFC 3327), else the request's.
        let top_route: Option<&str> = target
            .path
            .first()
            .map(|p| route::route_uri(p))
            .or(first_route);
        let strict =
            top_route.is_some_and(|u| matches!(Uri::parse(u), Some(Uri::Sip(s)) if !s.lr()));
        // Section 26.2 (RFC 5630 section 4): a sips: Request-URI (or top Route) goes over
        // TLS on every hop, and its Record-Route is sips: (section 16.6 step 4).
        let sips = crate::hop::is_sips(&target.uri) || top_route.is_some_and(crate::hop::is_sips);
        // Step 1: copy. Step 2: the Request-URI.
        let mut edit = request.edit();
        if request.request_uri() != Some(target.uri.as_str()) {
            edit.set_request_uri(&target.uri).map_err(|_| Unroutable)?;
        }
        // Step 3: Max-Forwards (0 was answered 483 by section 16.3).
        if edit.decrement_max_forwards().map_err(|_| Unroutable)? == HopCount::Exhausted {
            return Err(Unroutable);
        }
        // RFC 3327 section 5.3: the Path becomes the top of the Route set.
        for p in target.path.iter().rev() {
            edit.prepend("Route", p).map_err(|_| Unroutable)?;
        }
        // Step 7: the next hop: explicit, else the top Route's, else the Request-URI's; a
        // numeric host at once, a name located by the endpoint (RFC 3263).
        let (mut edit, next) = if strict {
            // Step 6: a strict router as next hop gets the Request-URI at the end of the
            // Route set and its own URI as the Request-URI (rare: the copy is re-read).
            let fwd = strict_route_fix(edit.finish().map_err(|_| Unroutable)?).ok_or(Unroutable)?;
            let next = match &target.next_hop {
                Some(h) => h.clone(),
                None => fwd
                    .request_uri()
                    .and_then(route::next_hop)
                    .ok_or(Unroutable)?,
            };
            (fwd.edit(), next)
        } else {
            let next = match &target.next_hop {
                Some(h) => h.clone(),
                None => top_route
                    .map_or_else(|| route::next_hop(&target.uri), route::next_hop)
                    .ok_or(Unroutable)?,
            };
            (edit, next)
        };
        let mut next = if sips {
            crate::hop::secure_hop(next).ok_or(NoCopy::Insecure)?
        } else {
            next
        };
        let extra: usize = target.path.iter().map(|p| p.len() + 9).sum();
        if let NextHop::Target(t) = &mut next {
            if t.transport == Transport::Udp
                && request.as_bytes().len() + extra + 400 > endpoint.config().udp_size_limit
            {
                t.transport = Transport::Tcp; // as the endpoint will (section 18.1.1)
            }
        }
        // Step 4: Record-Route, one entry, or two when the request changes transport or
        // interface (RFC 5658 section 4), the one facing the next hop on top. The
        // outgoing transport of a name is known once it is located: its `transport`
        // parameter or `sips:` says it, else UDP is assumed (RFC 3263 section 4.1's
        // default); a wrong guess still names a listener of this proxy. A sips: request
        // is record-routed with sips: URIs of TLS listeners only (section 16.6 step 4).
        if let Some(rr) = &self.rr_value {
            let listeners = &endpoint.config().listeners;
            let ipv4 = match &next {
                NextHop::Target(t) => t.addr.is_ipv4(),
                NextHop::Uri(_) => source.remote.is_ipv4(),
            };
            let out_transport = crate::hop::known_transport(&next).unwrap_or(Transport::Udp);
            let in_transport = if sips {
                Transport::Tls
            } else {
                source.transport
            };
            let inbound = listeners
                .iter()
                .find(|l| l.transport == in_transport && l.addr == source.local)
                .or_else(|| {
                    listeners.iter().find(|l| {
                        l.transport == in_transport && l.addr.is_ipv4() == source.local.is_ipv4()
                    })
                })
                .or_else(|| listeners.iter().find(|l| l.transport == in_transport));
            let outbound = route::outgoing_listener(endpoint, out_transport, ipv4);
            match (inbound, outbound) {
                (Some(i), Some(o)) if i.transport != o.transport || i.addr != o.addr => {
                    edit.prepend_record_route(&format!("<{}>", route::listener_uri(i)))
                        .map_err(|_| Unroutable)?;
                    edit.prepend_record_route(&format!("<{}>", route::listener_uri(o)))
                        .map_err(|_| Unroutable)?;
                }
                (_, Some(o)) if sips => {
                    edit.prepend_record_route(&format!("<{}>", route::listener_uri(o)))
                        .map_err(|_| Unroutable)?;
                }
                _ => {
                    edit.prepend_record_route(rr).map_err(|_| Unroutable)?;
                }
            }
        }
        let fwd = edit.finish().map_err(|_| Unroutable)?;
        Ok((fwd, next))
    }

    // ---- responses: sections 16.7 to 16.9 ----

    fn on_response(
        &mut self,
        now: Instant,
        id: ContextId,
        i: usize,
        response: OwnedMessage,
        endpoint: &mut Endpoint,
    ) {
        let Some(code) = response.status() else {
            return;
        };
        let Some(c) = self.contexts.get_mut(&id) else {
            return;
        };
        let Some(b) = c.branches.get_mut(i) else {
            return;
        };
        match code {
            100 => {}
            101..=199 => {
                if let BranchState::Pending { provisional } = &mut b.state {
                    *provisional = true;
                }
                // Section 16.7 step 5: provisional responses go upstream at once.
                if !c.final_sent {
                    let server = c.server;
                    self.relay(now, server, &response, endpoint);
                }
            }
            200..=299 => {
                // Every 2xx goes upstream at once (section 16.7 step 5), its retransmissions
                // too (through the server transaction's Accepted state, RFC 6026).
                let first = matches!(b.state, BranchState::Pending { .. });
                let b_tx = b.tx;
                b.state = BranchState::Done(code);
                let server = c.server;
                let invite = c.invite;
                let already = c.final_sent;
                c.final_sent = true;
                c.stop = true;
                c.waiting.clear();
                if invite || !already {
                    self.relay(now, server, &response, endpoint);
                }
                if first {
                    if !invite {
                        if let Some(tx) = b_tx {
                            self.by_client.remove(&tx);
                        }
                    }
                    // Section 16.7 step 10: a final response went upstream, so the other
                    // branches are cancelled.
                    self.cancel_pending(now, id, endpoint);
                    self.check_done(now, id, endpoint);
                }
            }
            _ => {
                if !matches!(b.state, BranchState::Pending { .. }) {
                    return;
                }
                // (the client transaction absorbs retransmissions of a non-2xx)
                self.branch_final(now, id, i, code, Some(response), endpoint);
            }
        }
    }

    /// A branch ended with a non-2xx final `code` (received, or 408 / 503 made up for a
    /// timeout or a transport error).
    fn branch_final(
        &mut self,
        now: Instant,
        id: ContextId,
        i: usize,
        code: u16,
        response: Option<OwnedMessage>,
        endpoint: &mut Endpoint,
    ) {
        let Some(c) = self.contexts.get_mut(&id) else {
            return;
        };
        let Some(b) = c.branches.get_mut(i) else {
            return;
        };
        if !matches!(b.state, BranchState::Pending { .. }) {
            return;
        }
        b.state = BranchState::Done(code);
        if let Some(tx) = b.tx {
            self.by_client.remove(&tx);
        }
        // Step 7: keep the challenges of every 401 and 407.
        if let Some(r) = &response {
            if code == 401 || code == 407 {
                let view = r.view();
                for name in [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate] {
                    for v in view.header_all(name) {
                        if c.challenges.len() < MAX_CHALLENGES && v.len() <= MAX_CHALLENGE_LEN {
                            c.challenges.push((name, v.to_owned()));
                        }
                    }
                }
            }
        }
        // Step 6: the best response so far.
        let better = match &c.best {
            None => true,
            Some((best, _)) => rank(code) < rank(*best),
        };
        if better {
            c.best = Some((code, response));
        }
        if (600..=699).contains(&code) {
            // Step 5: a 6xx ends the search: the others are cancelled, no new branches.
            c.stop = true;
            c.waiting.clear();
            self.cancel_pending(now, id, endpoint);
        }
        self.check_done(now, id, endpoint);
    }

    /// When no branch is pending: the next group (sequential forking), or the best response
    /// upstream (section 16.7 step 6), and the context's removal once its transactions are
    /// over.
    fn check_done(&mut self, now: Instant, id: ContextId, endpoint: &mut Endpoint) {
        let Some(c) = self.contexts.get(&id) else {
            return;
        };
        let pending = c
            .branches
            .iter()
            .any(|b| matches!(b.state, BranchState::Pending { .. }));
        if pending {
            return;
        }
        if !c.stop && !c.final_sent && !c.waiting.is_empty() {
            self.start_next_group(now, id, endpoint);
            return;
        }
        if !c.final_sent {
            self.send_best(now, id, endpoint);
        }
        let Some(c) = self.contexts.get_mut(&id) else {
            return;
        };
        if !c.lingering {
            c.lingering = true;
            c.request = None;
            c.challenges = Vec::new();
            c.best = None;
            if self.needs_linger(id, endpoint) {
                // The client transactions of 2xx branches stay in Accepted (timer M) and
                // the server transaction in Accepted (timer L) for 64*T1: 2xx
                // retransmissions are relayed until then; the CANCELs sent report until
                // their final response (timer F at most).
                let at = now + endpoint.config().timers.t1x64() + Duration::from_millis(1);
                self.due.push(Reverse((at, Due::Remove(id))));
            } else {
                self.remove_context(id);
            }
        }
    }

    /// Does a context that is done still expect events: a 2xx of an INVITE branch (its
    /// retransmissions are relayed), or a CANCEL of its own without its final response?
    fn needs_linger(&self, id: ContextId, endpoint: &Endpoint) -> bool {
        let Some(c) = self.contexts.get(&id) else {
            return false;
        };
        c.branches.iter().any(|b| {
            (c.invite && matches!(b.state, BranchState::Done(200..=299)))
                || b.cancel_tx.is_some_and(|t| {
                    // (a CANCEL still held for a provisional response died with its INVITE)
                    self.cancel_txs.contains_key(&t) && endpoint.client_state(t).is_some()
                })
        })
    }

    /// A CANCEL of the proxy's got its final response or ended: the context it belongs to
    /// may be over.
    fn cancel_done(&mut self, tx: ClientTxId, endpoint: &Endpoint) {
        let Some(id) = self.cancel_txs.remove(&tx) else {
            return;
        };
        let lingering = self.contexts.get(&id).is_some_and(|c| c.lingering);
        if lingering && !self.needs_linger(id, endpoint) {
            self.remove_context(id);
        }
    }

    /// Section 16.7 step 6 and 7: the best response goes upstream (408 when there is none,
    /// 500 for a 503, the challenges of every branch in a 401/407).
    fn send_best(&mut self, now: Instant, id: ContextId, endpoint: &mut Endpoint) {
        let Some(c) = self.contexts.get_mut(&id) else {
            return;
        };
        c.final_sent = true;
        let server = c.server;
        let (code, response) = c.best.take().unwrap_or((408, None));
        let out = match (code, response) {
            (503, _) | (_, None) => {
                let code = if code == 503 { 500 } else { code };
                let warning = (code == 480 && c.sips_refused).then(|| sips_warning(endpoint));
                let request = c.request.as_ref();
                request.and_then(|r| {
                    let view = r.view();
                    let mut b = ResponseBuilder::from_view(&view, code);
                    if let Some(w) = &warning {
                        b = b.header("Warning", w);
                    }
                    b.build(&mut self.rng).ok()
                })
            }
            (401 | 407, Some(r)) => {
                let mut e = r.edit();
                let ok = e.remove_top_via().is_ok()
                    && e.remove("WWW-Authenticate").is_ok()
                    && e.remove("Proxy-Authenticate").is_ok()
                    && c.challenges
                        .iter()
                        .all(|(n, v)| e.append(n.as_str(), v).is_ok());
                if ok {
                    e.finish().ok()
                } else {
                    None
                }
            }
            (_, Some(r)) => without_top_via(&r),
        };
        if let Some(out) = out {
            self.stats.responses += 1;
            let _ = endpoint.send_response(now, server, &out);
        }
    }

    /// Section 16.7 steps 3 and 9: a response relayed upstream without our Via.
    fn relay(
        &mut self,
        now: Instant,
        server: ServerTxId,
        response: &OwnedMessage,
        endpoint: &mut Endpoint,
    ) {
        let Some(out) = without_top_via(response) else {
            return;
        };
        if endpoint.send_response(now, server, &out).is_ok() {
            self.stats.responses += 1;
        }
    }

    fn remove_context(&mut self, id: ContextId) {
        if let Some(c) = self.contexts.remove(&id) {
            self.by_server.remove(&c.server);
            for b in &c.branches {
                if let Some(tx) = b.tx {
                    self.by_client.remove(&tx);
                }
                if let Some(tx) = b.cancel_tx {
                    self.cancel_txs.remove(&tx);
                }
            }
        }
    }
}

/// A proxy that routes every request to its Request-URI (numeric hosts, or the top Route):
/// the default policy, for tests and for drivers that run any transaction user. Events that
/// are not the proxy's are dropped.
impl crate::TransactionUser for Proxy {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        if let Received::Route(inbound) = self.receive(now, event, endpoint) {
            let target = ProxyTarget::new(inbound.request_uri());
            let _ = self.forward(now, inbound, vec![target], endpoint);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Proxy::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        Proxy::handle_timeout(self, now, endpoint);
    }
}

/// Section 16.7 step 3: the response without the proxy's Via.
fn without_top_via(response: &OwnedMessage) -> Option<OwnedMessage> {
    let mut e = response.edit();
    e.remove_top_via().ok()?;
    e.finish().ok()
}

/// Section 16.7 step 6: the order of final responses, lower is better: 6xx, then the
/// lowest class of 3xx, 4xx and 5xx.
fn rank(code: u16) -> u16 {
    if (600..=699).contains(&code) {
        0
    } else {
        code / 100
    }
}

/// The values of a Route header line (comma-separated outside quotes and angle brackets).
fn split_values(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    let b = line.as_bytes();
    for (i, &ch) in b.iter().enumerate() {
        match ch {
            b'"' => quoted = !quoted,
            b'<' if !quoted => depth += 1,
            b'>' if !quoted => depth -= 1,
            b',' if !quoted && depth <= 0 => {
                let v = line[start..i].trim();
                if !v.is_empty() {
                    out.push(v.to_owned());
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let v = line[start..].trim();
    if !v.is_empty() {
        out.push(v.to_owned());
    }
    out
}

/// A SIP URI without its maddr, transport and port (section 16.4).
fn strip_maddr(uri: &str) -> String {
    let (head, rest) = match uri.find(';') {
        Some(i) => (&uri[..i], &uri[i..]),
        None => (uri, ""),
    };
    // drop the port: after the last ':' of the host part (not inside IPv6 brackets)
    let host_start = head
        .find('@')
        .map_or_else(|| head.find(':').map_or(0, |i| i + 1), |i| i + 1);
    let host = &head[host_start..];
    let host_end = if host.starts_with('[') {
        host.find(']').map_or(host.len(), |i| i + 1)
    } else {
        host.find(':').unwrap_or(host.len())
    };
    let mut out = String::with_capacity(uri.len());
    out.push_str(&head[..host_start + host_end]);
    for p in rest.split(';').filter(|p| !p.is_empty()) {
        let name = p.split('=').next().unwrap_or("");
        if name.eq_ignore_ascii_case("maddr") || name.eq_ignore_ascii_case("transport") {
            continue;
        }
        out.push(';');
        out.push_str(p);
    }
    out
}

/// Section 16.6 step 6: when the top Route is a strict router (no `lr`), the Request-URI
/// goes to the end of the Route set and the top Route becomes the Request-URI.
fn strict_route_fix(fwd: OwnedMessage) -> Option<OwnedMessage> {
    let (top, ruri) = {
        let m = fwd.message().ok()?;
        let Some(top) = m.routes().next() else {
            return Some(fwd);
        };
        match top.uri {
            Uri::Sip(u) if !u.lr() => {}
            _ => return Some(fwd),
        }
        (top.uri.to_string(), fwd.request_uri()?.to_owned())
    };
    let mut e = fwd.edit();
    e.remove_first_value("Route").ok()?;
    e.append("Route", &format!("<{ruri}>")).ok()?;
    e.set_request_uri(&top).ok()?;
    e.finish().ok()
}

/// Section 16.6 step 7: the top Route's next hop, else the Request-URI's (a numeric host
/// at once, a name located by the endpoint); TLS only for a `sips:` one (section 26.2).
fn next_hop_of(fwd: &OwnedMessage) -> Option<NextHop> {
    let m: Message<'_> = fwd.message().ok()?;
    let uri = match m.routes().next() {
        Some(top) => top.uri.to_string(),
        None => fwd.request_uri()?.to_owned(),
    };
    let hop = route::next_hop(&uri)?;
    if crate::hop::is_sips(&uri) || crate::hop::is_sips(fwd.request_uri()?) {
        return crate::hop::secure_hop(hop);
    }
    Some(hop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3261_16_7_step_6_ranks_6xx_first_then_the_lowest_class() {
        assert!(rank(603) < rank(302));
        assert!(rank(302) < rank(486));
        assert!(rank(486) < rank(503));
    }

    #[test]
    fn rfc3261_16_4_maddr_port_and_transport_stripped() {
        assert_eq!(
            strip_maddr("sip:bob@p1.example.com:5070;maddr=192.0.2.1;transport=udp;x=1"),
            "sip:bob@p1.example.com;x=1"
        );
        assert_eq!(strip_maddr("sip:[::1]:5070;maddr=::1"), "sip:[::1]");
    }

    #[test]
    fn route_values_split_outside_brackets() {
        assert_eq!(
            split_values("<sip:a;lr>, \"x,y\" <sip:b>"),
            vec!["<sip:a;lr>".to_owned(), "\"x,y\" <sip:b>".to_owned()]
        );
    }
}
