//! Requests sent to URIs (RFC 3263): the endpoint's resolver, the DNS questions it hands
//! the driver, failover between the targets of a lookup (section 4.3), and responses to a
//! Via sent-by that is a name (section 5, RFC 3261 section 18.2.2).
//!
//! A client transaction sent to a [`NextHop::Uri`](super::NextHop::Uri) carries a
//! [`Located`]: the request as the transaction user gave it, the targets once resolved and
//! which were tried. Each attempt writes the request again with a new top Via (a new
//! branch, RFC 3261 section 8.1.3.4) and restarts the transaction machine under the same
//! [`ClientTxId`]; an attempt that got a final response still owes retransmitted responses
//! their ACK (section 17.1.1.3), so its machine lives on, unnamed, until timer D or K.
//!
//! Resolved target lists are kept per URI text: one RFC 2782 weighted order is used for
//! [`MEMO_TIME`] at most, then a new one is drawn from the records the lookup used (the
//! resolver's [`Plan`]: no parse, no walk through the cache, no DNS question) until the
//! first of those records' TTLs runs out, and only then is the URI resolved again (asking
//! DNS for what expired). So a request to a URI resolved a moment ago costs one string
//! comparison (or hash lookup), and is started as a request to an address is, with its
//! failover state beside it; targets marked down since the order was drawn are still
//! skipped when a target is picked (RFC 3263 section 4.3).

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{build, ClientEntry, ClientTxId, Config, Endpoint, Event, Payload, SendError};
use super::{Sending, ServerTxId, TxId};
use crate::id::{Key, Slab};
use crate::message::{Host, SipUri, Uri};
use crate::resolve::{
    Answer, Failure, LookupId, Plan, Query, QueryId, ResolveError, ResolveEvent, Resolver,
};
use crate::transaction::client::ClientMachine;
use crate::transaction::key;
use crate::transaction::ClientState;
use crate::transport::via::ResponseRoute;
use crate::transport::FlowId;
use crate::{Method, OwnedMessage, SeededRng, Target, Transport};

use super::timers::TimerRef;

/// How long one weighted order of a resolved target list is reused (never past the TTLs
/// it came from). Short, so that RFC 2782 weights still spread the requests: a new
/// weighted order is drawn once a second per name at most.
pub(crate) const MEMO_TIME: Duration = Duration::from_secs(1);

/// Resolved target lists kept at most.
const MAX_MEMO: usize = 256;

/// Targets a transaction tries at most (RFC 3263 section 4.3 sets no limit; the first 16
/// of the RFC order are plenty, and each may take a transaction timeout).
pub(crate) const MAX_ATTEMPTS: usize = 16;

/// Messages without a transaction (ACKs, stateless requests and responses) waiting for a
/// lookup at most; beyond it they are refused.
const MAX_WAITING_STATELESS: usize = 64;

/// The timer slot of a client transaction beside the machine's two: the lookup deadline
/// while it waits for DNS, then [`Config::failover_timeout`].
pub(crate) const LOCATE_SLOT: u8 = 2;

/// The failover state of a client transaction sent to a URI.
#[derive(Debug)]
pub(crate) struct Located {
    /// The request as the transaction user gave it (no Via of ours).
    original: OwnedMessage,
    /// The caller's branch (`send_request_with_branch`): attempt n >= 2 is `{branch}.{n}`.
    branch: Option<Box<str>>,
    /// The host of the URI when it is a name: what a TLS server must prove (RFC 5922).
    domain: Option<Arc<str>>,
    /// The lookup, while the targets are not known yet.
    lookup: Option<LookupId>,
    /// The targets in RFC 3263 order (at most [`MAX_ATTEMPTS`]).
    targets: Arc<[Target]>,
    /// Which were tried (bit i for `targets[i]`).
    tried: u32,
    /// The target of the attempt in progress.
    current: Option<Target>,
    /// Attempts made.
    attempts: u16,
    /// Failover may still happen: no provisional response, no CANCEL yet.
    pub(crate) failover: bool,
    /// The deadline armed in [`LOCATE_SLOT`].
    timer: Option<Instant>,
}

impl Located {
    /// Has the request gone out yet?
    pub(crate) fn sent(&self) -> bool {
        self.attempts > 0
    }
}

/// Resolved targets with the URI's domain (see [`Located::domain`]).
type Resolved = (Arc<[Target]>, Option<Arc<str>>);

/// A message without a transaction waiting for a lookup.
#[derive(Debug)]
enum Waiter {
    /// A client transaction.
    Client(ClientTxId),
    /// `send_ack` / `send_stateless`: the request without our Via and its branch.
    Stateless {
        request: OwnedMessage,
        branch: Box<str>,
        domain: Option<Arc<str>>,
    },
    /// A server transaction's response whose destination failed (section 5).
    Response(ServerTxId),
    /// `send_stateless_response` to a sent-by name.
    StatelessResponse {
        response: OwnedMessage,
        domain: Option<Arc<str>>,
    },
}

#[derive(Debug)]
struct Waiting {
    waiter: Waiter,
    /// The memo key the result is kept under, with the URI's domain.
    memo_key: Option<(Box<str>, Option<Arc<str>>)>,
    /// For waiters without a transaction: when to give up.
    deadline: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Memo {
    targets: Arc<[Target]>,
    /// The URI's host when it is a name (see [`Located::domain`]).
    domain: Option<Arc<str>>,
    /// Until when `targets` (one RFC 2782 draw) are used as they are.
    expires: Instant,
    /// The records they came from, to draw a new order from once `expires` has passed,
    /// until the records' own TTLs run out ([`Plan::expires`]).
    plan: Option<Arc<Plan>>,
}

impl Memo {
    /// Good for anything at `now`: its order, or at least its plan.
    fn alive(&self, now: Instant) -> bool {
        self.expires > now || self.plan.as_ref().is_some_and(|p| p.expires() > now)
    }
}

/// A server transaction whose responses go to the targets of its Via's sent-by.
#[derive(Debug)]
struct ResponseTargets {
    targets: Arc<[Target]>,
    next: usize,
    domain: Option<Arc<str>>,
}

/// The endpoint's RFC 3263 state.
#[derive(Debug)]
pub(super) struct Locator {
    resolver: Resolver,
    /// Keep-alive jitter (RFC 5626 section 3.5.1).
    pub(super) rng: SeededRng,
    waiting: HashMap<LookupId, Waiting>,
    /// Deadlines of waiters without a transaction.
    deadlines: BTreeSet<(Instant, LookupId)>,
    stateless_waiting: usize,
    memo: HashMap<Box<str>, Memo>,
    /// The failover state of client transactions sent to a URI (a slab: no allocation per
    /// request once it has grown).
    pub(super) located: Slab<Located>,
    /// The memo entry inserted last, looked at before the map.
    last: Option<(Box<str>, Memo)>,
    responses: HashMap<ServerTxId, ResponseTargets>,
}

impl Locator {
    pub(super) fn new(config: &Config, seed: [u8; 32]) -> Locator {
        let (resolver_seed, rng) = crate::rng::resolver_seed(seed);
        Locator {
            resolver: Resolver::new(config.resolver.clone(), resolver_seed),
            rng,
            waiting: HashMap::new(),
            deadlines: BTreeSet::new(),
            stateless_waiting: 0,
            memo: HashMap::new(),
            located: Slab::default(),
            last: None,
            responses: HashMap::new(),
        }
    }

    /// The earliest deadline of a waiter without a transaction.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Lookups the endpoint waits for (for tests of the bounds).
    pub(super) fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The memoized targets (and domain) of the URI `uri` (as text: a caller sends to the
    /// same Request-URI or Route again and again, and a hit needs no parsing), if still
    /// fresh. An order older than [`MEMO_TIME`] is drawn again from the memo's [`Plan`]
    /// while the records it came from live (RFC 2782: a new weighted selection; section
    /// 4.3: targets down now at the back); past their TTLs, `None`: resolve again.
    fn memo_hit(&mut self, now: Instant, uri: &str) -> Option<Resolved> {
        // The URI resolved last first: one comparison, no hashing, for the common case of
        // one next hop (an outbound proxy, a route set).
        let last = matches!(&self.last, Some((key, _)) if **key == *uri);
        let memo = match &self.last {
            Some((_, m)) if last => Some(m),
            _ if self.memo.is_empty() => None,
            _ => self.memo.get(uri),
        }?;
        if memo.expires > now {
            return Some((memo.targets.clone(), memo.domain.clone()));
        }
        let plan = memo.plan.clone().filter(|p| p.expires() > now)?;
        let domain = memo.domain.clone();
        let mut targets = self.resolver.order(now, &plan);
        if targets.is_empty() {
            return None;
        }
        targets.truncate(MAX_ATTEMPTS);
        let targets: Arc<[Target]> = targets.into();
        let expires = plan.expires().min(now + MEMO_TIME);
        for m in [
            self.last.as_mut().filter(|_| last).map(|(_, m)| m),
            self.memo.get_mut(uri),
        ]
        .into_iter()
        .flatten()
        {
            m.targets = targets.clone();
            m.expires = expires;
        }
        Some((targets, domain))
    }

    fn memo_insert(
        &mut self,
        now: Instant,
        key: Box<str>,
        targets: Arc<[Target]>,
        domain: Option<Arc<str>>,
        until: Instant,
        plan: Option<Plan>,
    ) {
        let expires = until.min(now + MEMO_TIME);
        if expires <= now {
            return;
        }
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            self.memo.retain(|_, m| m.alive(now));
            if self.memo.len() >= MAX_MEMO {
                self.memo.clear();
            }
        }
        let memo = Memo {
            targets,
            domain,
            expires,
            plan: plan.map(Arc::new),
        };
        self.last = Some((key.clone(), memo.clone()));
        self.memo.insert(key, memo);
    }

    /// The first target not tried that is not down, else the first not tried (RFC 3263
    /// section 4.3), marked tried.
    fn pick(&self, now: Instant, targets: &[Target], tried: &mut u32) -> Option<Target> {
        let left = untried(targets, *tried);
        if left == 0 {
            return None;
        }
        let first = left.trailing_zeros() as usize;
        let i = if left & (left - 1) == 0 {
            // The only one left is used whether it is down or not: no look at the table.
            first
        } else {
            (first..targets.len().min(MAX_ATTEMPTS))
                .filter(|i| left & (1 << i) != 0)
                .find(|i| !self.resolver.is_down(now, &targets[*i]))
                .unwrap_or(first)
        };
        *tried |= 1 << i;
        Some(targets[i])
    }
}

/// The targets not tried yet, as bits (bit i for `targets[i]`, the first [`MAX_ATTEMPTS`]).
fn untried(targets: &[Target], tried: u32) -> u32 {
    let n = targets.len().min(MAX_ATTEMPTS);
    let all = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
    all & !tried
}

/// The host to verify a TLS server against (RFC 5922 section 4): the URI's maddr or host
/// when it is a name, lower case.
fn domain_of<T: From<String>>(uri: &SipUri<'_>) -> Option<T> {
    let host = uri.maddr().unwrap_or(uri.host.as_str());
    match Host::classify(host) {
        Some(Host::Domain(d)) => Some(T::from(d.trim_end_matches('.').to_ascii_lowercase())),
        _ => None,
    }
}

/// A placeholder address for a transaction not sent yet.
const NOWHERE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// The Retry-After of a 503, in seconds (RFC 3261 section 20.33), capped at an hour.
fn retry_after(msg: &crate::Message<'_>) -> Option<Duration> {
    let v = msg.view().header(crate::HeaderName::RetryAfter)?;
    let digits: &str = &v[..v.bytes().take_while(u8::is_ascii_digit).count()];
    let secs: u64 = digits.parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

impl Endpoint {
    /// The body of `send_request` / `send_request_with_branch` for a [`NextHop::Uri`].
    ///
    /// [`NextHop::Uri`]: super::NextHop::Uri
    pub(super) fn start_located(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        uri: &str,
        branch: Option<&str>,
    ) -> Result<ClientTxId, SendError> {
        let memo = self.locator.memo_hit(now, uri);
        let mut tried = 0;
        if let Some((targets, domain)) = &memo {
            // A warm memo: the first attempt is started as a request to an address is,
            // and its failover state added to it.
            if let Some(target) = self.locator.pick(now, targets, &mut tried) {
                let name = domain
                    .as_deref()
                    .filter(|_| target.transport == Transport::Tls);
                match self.start_client_named(now, request, target, branch, name) {
                    Ok(id) => {
                        self.attach_located(
                            now, id, request, branch, targets, domain, tried, target,
                        );
                        return Ok(id);
                    }
                    // (refused before anything was sent: not the target's fault)
                    Err(e @ (SendError::NotARequest | SendError::TooManyTransactions)) => {
                        return Err(e)
                    }
                    Err(e) => {
                        // (this target cannot be reached from here: the next one, as
                        // `next_attempt` does)
                        self.locator.resolver.mark_down(now, target);
                        if untried(targets, tried) == 0 {
                            return Err(e);
                        }
                    }
                }
            }
        }
        // (with a warm memo `start_client_named` has checked these)
        let method = request.method().ok_or(SendError::NotARequest)?;
        if method == Method::Ack {
            return Err(SendError::NotARequest);
        }
        if self.transactions() >= self.config.max_transactions {
            return Err(SendError::TooManyTransactions);
        }
        let (lookup, targets, domain) = match memo {
            Some((targets, domain)) => (None, targets, domain),
            None => {
                let Some(Uri::Sip(parsed)) = Uri::parse(uri) else {
                    return Err(SendError::Unresolvable(ResolveError::InvalidName));
                };
                let lookup = self
                    .locator
                    .resolver
                    .resolve_uri(now, &parsed)
                    .map_err(SendError::Unresolvable)?;
                (Some(lookup), Arc::from(Vec::new()), domain_of(&parsed))
            }
        };
        let invite = method == Method::Invite;
        // (a machine whose timers run only once the request goes out, see `attempt`)
        let m = ClientMachine::waiting(invite, &self.config.timers);
        let charged = request.as_bytes().len();
        self.budget.charge(charged);
        let located = Located {
            original: request.clone(),
            branch: branch.map(Into::into),
            domain: domain.clone(),
            lookup,
            targets,
            tried,
            current: None,
            attempts: 0,
            failover: true,
            timer: None,
        };
        let id = ClientTxId(self.clients.insert(ClientEntry {
            m,
            request: request.clone(),
            key: Box::new([]),
            key_hash: 0,
            transport: Transport::Udp,
            remote: NOWHERE,
            local: NOWHERE,
            flow: None,
            ack: None,
            cancel: None,
            held: false,
            charged,
            located: Some(self.locator.located.insert(located)),
        }));
        self.stats.transactions += 1;
        match lookup {
            None => {
                // A warm memo: the first attempt now; a failure to send is the caller's.
                if let Err(e) = self.next_attempt(now, id) {
                    self.drop_client(id);
                    return Err(e);
                }
            }
            Some(lookup) => {
                // Until the lookup ends: a deadline as long as the transaction's timeout.
                let deadline = now + self.config.timers.t1x64();
                self.set_locate_timer(id, Some(deadline));
                let memo_key = Some((uri.into(), domain));
                self.locator.waiting.insert(
                    lookup,
                    Waiting {
                        waiter: Waiter::Client(id),
                        memo_key,
                        deadline: None,
                    },
                );
                self.drain_resolver(now);
            }
        }
        Ok(id)
    }

    /// Gives the client transaction `tx`, just sent to `target` (the first pick from
    /// `targets`, `tried` marking it) by [`Endpoint::start_client_named`], the failover
    /// state of a request sent to a URI, as [`Endpoint::attempt`] leaves it.
    #[allow(clippy::too_many_arguments)]
    fn attach_located(
        &mut self,
        now: Instant,
        tx: ClientTxId,
        request: &OwnedMessage,
        branch: Option<&str>,
        targets: &Arc<[Target]>,
        domain: &Option<Arc<str>>,
        tried: u32,
        target: Target,
    ) {
        let located = Located {
            original: request.clone(),
            branch: branch.map(Into::into),
            domain: domain.clone(),
            lookup: None,
            targets: targets.clone(),
            tried,
            current: Some(target),
            attempts: 1,
            failover: true,
            timer: None,
        };
        let key = self.locator.located.insert(located);
        let extra = request.as_bytes().len();
        if let Some(e) = self.clients.get_mut(tx.0) {
            e.located = Some(key);
            // (the original is held too, as `attempt` counts it)
            e.charged += extra;
            self.budget.charge(extra);
        }
        if let Some(at) = self
            .config
            .failover_timeout
            .and_then(|d| now.checked_add(d))
        {
            self.set_locate_timer(tx, Some(at));
        }
    }

    /// Frees a client transaction that never went out (its first send failed at once).
    fn drop_client(&mut self, tx: ClientTxId) {
        if let Some(e) = self.clients.get_mut(tx.0) {
            let before = e.m.timers;
            e.m.terminate();
            self.sync_client_timers(tx, before, [None, None]);
        }
        self.finish_client(tx);
    }

    /// Arms (or moves, or clears) the locate timer of a client transaction.
    fn set_locate_timer(&mut self, tx: ClientTxId, at: Option<Instant>) {
        let Some(l) = self.located_mut(tx) else {
            return;
        };
        let owner = TimerRef::Client(tx.0, LOCATE_SLOT);
        if let Some(old) = std::mem::replace(&mut l.timer, at) {
            self.timers.cancel(old, owner);
        }
        if let Some(at) = at {
            self.timers.arm(at, owner);
        }
    }

    /// Tries the targets not tried yet until one takes the request (RFC 3263 section
    /// 4.3). `Err` with the last error when none is left.
    fn next_attempt(&mut self, now: Instant, tx: ClientTxId) -> Result<(), SendError> {
        let mut last = SendError::Unresolvable(ResolveError::InvalidName);
        loop {
            let Some(l) = self.located(tx) else {
                return Err(SendError::UnknownTransaction);
            };
            let targets = l.targets.clone();
            let mut tried = l.tried;
            let Some(target) = self.locator.pick(now, &targets, &mut tried) else {
                return Err(last);
            };
            if let Some(l) = self.located_mut(tx) {
                l.tried = tried;
            }
            match self.attempt(now, tx, target) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // (this target cannot be reached from here: the next one)
                    self.locator.resolver.mark_down(now, target);
                    last = e;
                }
            }
        }
    }

    /// Sends the transaction's request to `target`: a new top Via and branch, a fresh
    /// machine, the key in the table. The attempt before it, if its machine still runs
    /// (Completed, absorbing retransmitted final responses), lives on unnamed.
    fn attempt(&mut self, now: Instant, tx: ClientTxId, target: Target) -> Result<(), SendError> {
        let timers = self.config.timers;
        let e = self
            .clients
            .get(tx.0)
            .ok_or(SendError::UnknownTransaction)?;
        let l = e
            .located
            .and_then(|k| self.locator.located.get(k))
            .ok_or(SendError::UnknownTransaction)?;
        let original = l.original.clone();
        let n = l.attempts + 1;
        let base = l.branch.clone();
        let domain = l.domain.clone();
        let method = original.method().ok_or(SendError::NotARequest)?;
        let invite = method == Method::Invite;
        let mut transport = target.transport;
        if transport == Transport::Udp
            && original.as_bytes().len() + 100 > self.config.udp_size_limit
        {
            transport = Transport::Tcp;
        }
        let (sent_by, local) = self.local_for(transport, target.addr)?;
        let branch = match base {
            Some(b) if n == 1 => b.into_string(),
            Some(b) => format!("{b}.{n}"),
            None => crate::new_branch(&mut self.rng),
        };
        let bytes = build::insert_via(original.as_bytes(), transport, &sent_by, &branch);
        let owned = OwnedMessage::parse(&bytes).map_err(SendError::Invalid)?;
        let name = if transport == Transport::Tls {
            domain.as_deref()
        } else {
            None
        };
        let data = Payload::Message(owned.clone());
        let flow = self.send_to_named(now, transport, local, target.addr, data, None, name)?;
        key::client_key(&mut self.scratch, &branch, method.as_str());
        let key: Box<[u8]> = self.scratch.as_slice().into();
        let key_hash = self.client_keys.hash(&key);
        self.retire_attempt(tx);
        let m = ClientMachine::start(invite, transport.is_reliable(), now, &timers);
        let charged = owned.as_bytes().len() + key.len() + original.as_bytes().len();
        let Some(e) = self.clients.get_mut(tx.0) else {
            return Err(SendError::UnknownTransaction);
        };
        let before = e.m.timers;
        let after = m.timers;
        e.m = m;
        e.request = owned;
        e.key = key.clone();
        e.key_hash = key_hash;
        e.transport = transport;
        e.remote = target.addr;
        e.local = local;
        e.flow = flow;
        e.ack = None;
        self.budget.release(e.charged);
        e.charged = charged;
        self.budget.charge(charged);
        let located = e.located;
        let (failover, timer) = located
            .and_then(|k| self.locator.located.get_mut(k))
            .map_or((false, false), |l| {
                l.attempts = n;
                l.current = Some(target);
                l.lookup = None;
                (l.failover, l.timer.is_some())
            });
        self.client_keys.insert(key_hash, key, tx);
        self.bind_flow(flow);
        self.sync_client_timers(tx, before, after);
        if n > 1 {
            self.stats.failovers += 1;
        }
        let at = self
            .config
            .failover_timeout
            .filter(|_| failover)
            .and_then(|d| now.checked_add(d));
        if at.is_some() || timer {
            self.set_locate_timer(tx, at);
        }
        self.refresh_held_cancel(tx);
        Ok(())
    }

    /// Takes the current attempt out of `tx`: its key leaves the table, its flow is let
    /// go; a machine still absorbing retransmissions (Completed) goes on as an unnamed
    /// transaction that only ACKs them and ends by timer D or K.
    fn retire_attempt(&mut self, tx: ClientTxId) {
        // The unnamed attempt is a transaction like any other: it may not take the table
        // past `max_transactions` (each attempt of a failing-over request would otherwise
        // add one). Without room, the old attempt ends at once; a retransmission of its
        // final response then matches nothing and is dropped as a stray one (its server
        // stops retransmitting at its timer H).
        let room = self.transactions() < self.config.max_transactions;
        let Some(e) = self.clients.get_mut(tx.0) else {
            return;
        };
        if e.key.is_empty() {
            // not sent yet: nothing to retire
            return;
        }
        let key = std::mem::take(&mut e.key);
        let key_hash = e.key_hash;
        let flow = e.flow.take();
        let timers = e.m.timers;
        if e.m.state == ClientState::Completed && room {
            let charged = e.request.as_bytes().len() + key.len();
            let ghost = ClientEntry {
                m: e.m.clone(),
                request: e.request.clone(),
                key: key.clone(),
                key_hash,
                transport: e.transport,
                remote: e.remote,
                local: e.local,
                flow,
                ack: e.ack.take(),
                cancel: None,
                held: false,
                charged,
                located: None,
            };
            e.m.terminate();
            self.budget.charge(charged);
            let ghost = ClientTxId(self.clients.insert(ghost));
            self.timers
                .sync(|s| TimerRef::Client(tx.0, s), timers, [None, None]);
            self.timers
                .sync(|s| TimerRef::Client(ghost.0, s), [None, None], timers);
            self.client_keys.insert(key_hash, key, ghost);
            // (the flow binding moves with it)
        } else {
            e.m.terminate();
            self.timers
                .sync(|s| TimerRef::Client(tx.0, s), timers, [None, None]);
            self.client_keys.remove(key_hash, &key, tx);
            self.unbind_flow(flow);
        }
    }

    /// A CANCEL asked for before the INVITE went out (it waited for the lookup) is written
    /// for the attempt now in progress.
    fn refresh_held_cancel(&mut self, invite: ClientTxId) {
        let Some(e) = self.clients.get(invite.0) else {
            return;
        };
        let Some(c) = e.cancel else {
            return;
        };
        if !self
            .clients
            .get(c.0)
            .is_some_and(|ce| ce.held && ce.key.is_empty())
        {
            return;
        }
        let Ok(owned) = OwnedMessage::parse(&build::cancel_for(&e.request.view())) else {
            return;
        };
        let branch = {
            let view = e.request.view();
            let via = view.header(crate::HeaderName::Via).unwrap_or("");
            crate::message::raw::first_via(via)
                .and_then(|v| v.branch())
                .unwrap_or("")
                .to_owned()
        };
        let (transport, remote, local, flow) = (e.transport, e.remote, e.local, e.flow);
        key::client_key(&mut self.scratch, &branch, "CANCEL");
        let key: Box<[u8]> = self.scratch.as_slice().into();
        let key_hash = self.client_keys.hash(&key);
        let Some(ce) = self.clients.get_mut(c.0) else {
            return;
        };
        self.budget.release(ce.charged);
        ce.charged = owned.as_bytes().len() + key.len();
        self.budget.charge(ce.charged);
        ce.request = owned;
        ce.key = key.clone();
        ce.key_hash = key_hash;
        ce.transport = transport;
        ce.remote = remote;
        ce.local = local;
        ce.flow = flow;
        self.client_keys.insert(key_hash, key, c);
        self.bind_flow(flow);
    }

    /// The failover state of `tx`, if it was sent to a URI.
    fn located(&self, tx: ClientTxId) -> Option<&Located> {
        let k = self.clients.get(tx.0)?.located?;
        self.locator.located.get(k)
    }

    /// See [`Endpoint::located`].
    fn located_mut(&mut self, tx: ClientTxId) -> Option<&mut Located> {
        let k = self.clients.get(tx.0)?.located?;
        self.locator.located.get_mut(k)
    }

    /// Is `tx` a located transaction that has not gone out yet?
    pub(super) fn is_unsent(&self, tx: ClientTxId) -> bool {
        self.located(tx).is_some_and(|l| !l.sent())
    }

    /// RFC 3263 section 4.3: the current attempt of `tx` failed; the target is marked down
    /// and the request goes to the next one. True when an attempt is under way again (the
    /// transaction user hears nothing), false when the caller reports the failure.
    pub(super) fn fail_over(
        &mut self,
        now: Instant,
        tx: ClientTxId,
        failure: Failure,
        down_for: Option<Duration>,
    ) -> bool {
        let Some(l) = self.located(tx) else {
            return false;
        };
        if !l.failover {
            return false;
        }
        let Some(target) = l.current else {
            return false;
        };
        let more = untried(&l.targets, l.tried) != 0;
        let _ = failure; // every failure of section 4.3 is treated alike
        match down_for {
            Some(d) => self.locator.resolver.mark_down_for(now, target, d),
            None => self.locator.resolver.mark_down(now, target),
        }
        more && self.next_attempt(now, tx).is_ok()
    }

    /// A provisional response or a CANCEL: no more failover for `tx`.
    pub(super) fn stop_failover(&mut self, tx: ClientTxId) {
        let Some(l) = self.located_mut(tx) else {
            return;
        };
        // (a CANCEL before the request went out: its first attempt is its only one; the
        // lookup's deadline stays)
        l.failover = false;
        if l.sent() {
            self.set_locate_timer(tx, None);
        }
    }

    /// A client transaction's response: what RFC 3263 section 4.3 makes of it. True when
    /// the response is consumed by failover (a 503 with a next target: the transaction
    /// user does not see it).
    pub(super) fn located_response(
        &mut self,
        now: Instant,
        tx: ClientTxId,
        msg: &crate::Message<'_>,
        code: u16,
    ) -> bool {
        let Some(l) = self.located(tx) else {
            return false;
        };
        if !l.failover {
            return false;
        }
        if code != 503 {
            self.stop_failover(tx);
            return false;
        }
        let down_for = retry_after(msg);
        self.fail_over(now, tx, Failure::ServiceUnavailable, down_for)
    }

    /// The locate timer of `tx` fired: the lookup took too long (the transaction times out)
    /// or the attempt got no response within [`Config::failover_timeout`].
    pub(super) fn locate_timer(&mut self, now: Instant, tx: ClientTxId) {
        let Some(l) = self.located_mut(tx) else {
            return;
        };
        l.timer = None;
        if !l.sent() {
            let invite = self.clients.get(tx.0).is_some_and(|e| e.m.invite);
            let timer = if invite {
                crate::Timer::B
            } else {
                crate::Timer::F
            };
            self.events.push_back(Event::Timeout {
                tx: TxId::Client(tx),
                timer,
            });
            self.drop_client(tx);
            return;
        }
        let silent = self
            .clients
            .get(tx.0)
            .is_some_and(|e| matches!(e.m.state, ClientState::Calling | ClientState::Trying));
        if silent {
            // No response at all: the next target; the last one runs to its own timeout.
            let more = self
                .located(tx)
                .is_some_and(|l| untried(&l.targets, l.tried) != 0);
            if more {
                self.fail_over(now, tx, Failure::Timeout, None);
            }
        }
    }

    /// A client transaction ends: its lookup is let go.
    pub(super) fn forget_located(&mut self, tx: ClientTxId, located: Option<Key>) {
        let Some(l) = located.and_then(|k| self.locator.located.remove(k)) else {
            return;
        };
        if let Some(at) = l.timer {
            self.timers.cancel(at, TimerRef::Client(tx.0, LOCATE_SLOT));
        }
        if let Some(lookup) = l.lookup {
            self.locator.waiting.remove(&lookup);
            self.locator.resolver.finish(lookup);
        }
    }

    /// Hands the resolver's finished lookups to what waits for them.
    pub(super) fn drain_resolver(&mut self, now: Instant) {
        while let Some(event) = self.locator.resolver.poll_event() {
            let (lookup, targets) = match event {
                ResolveEvent::Resolved { lookup, targets } => (lookup, Some(targets)),
                ResolveEvent::NotFound { lookup } => (lookup, None),
            };
            let expires = self.locator.resolver.expires(lookup);
            let plan = self.locator.resolver.plan(lookup);
            self.locator.resolver.finish(lookup);
            let Some(w) = self.locator.waiting.remove(&lookup) else {
                continue;
            };
            if let Some(d) = w.deadline {
                self.locator.deadlines.remove(&(d, lookup));
                self.locator.stateless_waiting = self.locator.stateless_waiting.saturating_sub(1);
            }
            let targets: Option<Arc<[Target]>> = targets.map(|mut t| {
                t.truncate(MAX_ATTEMPTS);
                t.into()
            });
            match &targets {
                Some(t) => {
                    if let (Some((key, domain)), Some(until)) = (w.memo_key, expires) {
                        self.locator
                            .memo_insert(now, key, t.clone(), domain, until, plan);
                    }
                }
                None => self.stats.dns_failures += 1,
            }
            self.resolved(now, w.waiter, targets);
        }
    }

    /// A lookup ended for `waiter`: `None` when nothing was found.
    fn resolved(&mut self, now: Instant, waiter: Waiter, targets: Option<Arc<[Target]>>) {
        match waiter {
            Waiter::Client(tx) => {
                let ok = match targets {
                    Some(t) => {
                        if let Some(l) = self.located_mut(tx) {
                            l.lookup = None;
                            l.targets = t;
                        }
                        self.set_locate_timer(tx, None);
                        self.next_attempt(now, tx).is_ok()
                    }
                    None => {
                        if let Some(l) = self.located_mut(tx) {
                            l.lookup = None;
                        }
                        false
                    }
                };
                if !ok && self.clients.get(tx.0).is_some() {
                    // RFC 3263 4.3: no target: the request fails.
                    self.events.push_back(Event::TransportError {
                        tx: TxId::Client(tx),
                    });
                    self.drop_client(tx);
                }
            }
            Waiter::Stateless {
                request,
                branch,
                domain,
            } => {
                let mut tried = 0;
                if let Some(t) = targets.and_then(|t| self.locator.pick(now, &t, &mut tried)) {
                    let _ = self.stateless_to(now, &request, t, &branch, domain.as_deref());
                }
            }
            Waiter::Response(tx) => match targets {
                Some(t) => {
                    if let Some(r) = self.locator.responses.get_mut(&tx) {
                        r.targets = t;
                        r.next = 0;
                    }
                    self.next_response_target(now, tx);
                }
                None => {
                    self.locator.responses.remove(&tx);
                    self.server_gave_up(tx);
                }
            },
            Waiter::StatelessResponse { response, domain } => {
                if let Some(t) = targets.as_ref().and_then(|t| t.first().copied()) {
                    if let Ok((_, local)) = self.local_for(t.transport, t.addr) {
                        let name = domain.as_deref().filter(|_| t.transport == Transport::Tls);
                        self.stats.stateless_responses += 1;
                        let data = Payload::Message(response);
                        let _ =
                            self.send_to_named(now, t.transport, local, t.addr, data, None, name);
                    }
                }
            }
        }
    }

    /// Waiters without a transaction whose lookup took too long are dropped.
    pub(super) fn expire_waiters(&mut self, now: Instant) {
        while let Some(&(at, lookup)) = self.locator.deadlines.first() {
            if at > now {
                return;
            }
            self.locator.deadlines.pop_first();
            self.locator.stateless_waiting = self.locator.stateless_waiting.saturating_sub(1);
            self.locator.resolver.finish(lookup);
            if let Some(w) = self.locator.waiting.remove(&lookup) {
                if let Waiter::Response(tx) = w.waiter {
                    self.locator.responses.remove(&tx);
                    self.server_gave_up(tx);
                }
            }
        }
    }

    /// Registers a waiter without a transaction, bounded.
    fn wait_stateless(
        &mut self,
        now: Instant,
        lookup: LookupId,
        waiter: Waiter,
        memo_key: Option<(Box<str>, Option<Arc<str>>)>,
    ) -> Result<(), SendError> {
        if self.locator.stateless_waiting >= MAX_WAITING_STATELESS {
            self.locator.resolver.finish(lookup);
            return Err(SendError::Unresolvable(ResolveError::TooManyLookups));
        }
        let deadline = now + self.config.timers.t1x64();
        self.locator.stateless_waiting += 1;
        self.locator.deadlines.insert((deadline, lookup));
        self.locator.waiting.insert(
            lookup,
            Waiting {
                waiter,
                memo_key,
                deadline: Some(deadline),
            },
        );
        self.drain_resolver(now);
        Ok(())
    }

    /// The body of `send_stateless` for a [`NextHop::Uri`].
    ///
    /// [`NextHop::Uri`]: super::NextHop::Uri
    pub(super) fn stateless_located(
        &mut self,
        now: Instant,
        request: &OwnedMessage,
        uri: &str,
        branch: &str,
    ) -> Result<(), SendError> {
        if let Some((targets, domain)) = self.locator.memo_hit(now, uri) {
            let mut tried = 0;
            let t = self
                .locator
                .pick(now, &targets, &mut tried)
                .ok_or(SendError::Unresolvable(ResolveError::InvalidName))?;
            return self.stateless_to(now, request, t, branch, domain.as_deref());
        }
        let Some(Uri::Sip(parsed)) = Uri::parse(uri) else {
            return Err(SendError::Unresolvable(ResolveError::InvalidName));
        };
        let lookup = self
            .locator
            .resolver
            .resolve_uri(now, &parsed)
            .map_err(SendError::Unresolvable)?;
        let domain: Option<Arc<str>> = domain_of(&parsed);
        let memo_key = Some((uri.into(), domain.clone()));
        let waiter = Waiter::Stateless {
            request: request.clone(),
            branch: branch.into(),
            domain,
        };
        self.wait_stateless(now, lookup, waiter, memo_key)
    }

    // ---- responses: RFC 3263 section 5, RFC 3261 section 18.2.2 ----

    /// A server transaction's response could not be delivered (ICMP, a failed
    /// connection). Under [`ResponsePolicy::Rfc3261`](crate::ResponsePolicy::Rfc3261),
    /// when its Via sent-by is a name, the response goes to the sent-by's targets in turn
    /// (section 5). True when that is under way; false when the transaction fails.
    pub(super) fn response_failover(&mut self, now: Instant, tx: ServerTxId) -> bool {
        if !self.config.response_policy.trusts_via() {
            // RFC 3261 26.1.5: a spoofed Via must not aim responses at a DNS answer.
            return false;
        }
        if self.locator.responses.contains_key(&tx) {
            return self.next_response_target(now, tx);
        }
        let Some(data) = self.servers.get(tx.0).and_then(|e| e.last_response.clone()) else {
            return false;
        };
        let Ok(msg) = crate::Message::parse_with(data.as_slice(), &self.config.limits) else {
            return false;
        };
        let Some(via) = msg.top_via() else {
            return false;
        };
        let Host::Domain(host) = via.host else {
            return false;
        };
        let Some(transport) = Transport::from_via_token(via.transport) else {
            return false;
        };
        let Ok(lookup) = self
            .locator
            .resolver
            .resolve_sent_by(now, host, via.port, transport)
        else {
            return false;
        };
        let domain: Option<Arc<str>> = Some(host.trim_end_matches('.').to_ascii_lowercase().into());
        self.locator.responses.insert(
            tx,
            ResponseTargets {
                targets: Arc::from(Vec::new()),
                next: 0,
                domain,
            },
        );
        if self
            .wait_stateless(now, lookup, Waiter::Response(tx), None)
            .is_err()
        {
            self.locator.responses.remove(&tx);
            return false;
        }
        true
    }

    /// Sends the server transaction's last response to its next sent-by target. False
    /// (and the state dropped) when none is left.
    fn next_response_target(&mut self, now: Instant, tx: ServerTxId) -> bool {
        loop {
            let Some(r) = self.locator.responses.get_mut(&tx) else {
                return false;
            };
            let Some(t) = r.targets.get(r.next).copied() else {
                self.locator.responses.remove(&tx);
                self.server_gave_up(tx);
                return true;
            };
            r.next += 1;
            let name = r.domain.clone().filter(|_| t.transport == Transport::Tls);
            let Ok((_, local)) = self.local_for(t.transport, t.addr) else {
                continue;
            };
            let old = self.servers.get(tx.0).map(|e| e.route);
            let Some(old) = old else {
                self.locator.responses.remove(&tx);
                return true;
            };
            let failed = match old {
                ResponseRoute::Datagram { remote, .. } => remote,
                ResponseRoute::Flow { fallback, .. } => fallback,
            };
            if t.addr == failed {
                // (the address that just failed: the next one)
                continue;
            }
            let route = if t.transport.is_stream() {
                let Ok(flow) = self.flow_for(now, t.transport, t.addr, None, name.as_deref())
                else {
                    continue;
                };
                ResponseRoute::Flow {
                    flow,
                    transport: t.transport,
                    fallback: t.addr,
                }
            } else {
                ResponseRoute::Datagram {
                    local,
                    remote: t.addr,
                }
            };
            if let ResponseRoute::Flow { flow, .. } = old {
                self.unbind_flow(Some(flow));
            }
            if let ResponseRoute::Flow { flow, .. } = route {
                self.bind_flow(Some(flow));
            }
            if let Some(e) = self.servers.get_mut(tx.0) {
                e.route = route;
            }
            if let Some(data) = self.servers.get(tx.0).and_then(|e| e.last_response.clone()) {
                self.send_on_route(now, tx, data, Sending::Answer);
            }
            return true;
        }
    }

    /// A response that no target took: the server transaction fails (section 17.2.4).
    fn server_gave_up(&mut self, tx: ServerTxId) {
        self.fail_server(tx);
    }

    /// `send_stateless_response` to a sent-by name without `received` (RFC 3263 section
    /// 5), under [`ResponsePolicy::Rfc3261`](crate::ResponsePolicy::Rfc3261) only.
    pub(super) fn stateless_response_located(
        &mut self,
        now: Instant,
        response: &OwnedMessage,
        host: &str,
        port: Option<u16>,
        transport: Transport,
    ) -> Result<(), SendError> {
        let lookup = self
            .locator
            .resolver
            .resolve_sent_by(now, host, port, transport)
            .map_err(SendError::Unresolvable)?;
        let domain: Option<Arc<str>> = Some(host.trim_end_matches('.').to_ascii_lowercase().into());
        let waiter = Waiter::StatelessResponse {
            response: response.clone(),
            domain,
        };
        self.wait_stateless(now, lookup, waiter, None)
    }

    /// A server transaction ends: its response targets are let go.
    pub(super) fn forget_server(&mut self, tx: ServerTxId) {
        if !self.locator.responses.is_empty() {
            self.locator.responses.remove(&tx);
        }
    }

    // ---- the driver's DNS surface ----

    /// The next DNS question for the driver to ask (drain it after [`Endpoint::poll_io`]),
    /// answered with [`Endpoint::handle_dns_answer`]. Every question must be answered, with
    /// [`Answer::Timeout`] when the servers do not reply. The driver flattens CNAME chains.
    pub fn poll_dns(&mut self) -> Option<Query> {
        let q = self.locator.resolver.poll_query()?;
        self.stats.dns_queries += 1;
        Some(q)
    }

    /// The answer to the DNS question `id` (from [`Endpoint::poll_dns`]). Requests waiting
    /// for the lookup go out (queued for [`Endpoint::poll_transmit`]), or fail.
    pub fn handle_dns_answer(&mut self, now: Instant, id: QueryId, answer: Answer) {
        self.arm_new_transactions();
        self.locator.resolver.handle_answer(now, id, answer);
        self.drain_resolver(now);
    }

    /// The resolver (cache size, open lookups) for summaries.
    pub fn resolver(&self) -> &Resolver {
        &self.locator.resolver
    }

    /// RFC 5922 section 4: the domain a TLS connection the endpoint asked for
    /// ([`IoRequest::Connect`](crate::IoRequest::Connect) with
    /// [`Transport::Tls`](crate::Transport::Tls)) must prove: the host of the URI that was
    /// resolved (not the SRV target). None for a connection to a [`Target`](crate::Target)
    /// given as an address (the driver then checks the IP address) and for accepted
    /// connections.
    ///
    /// A request to a URI reuses a TLS flow only if it was opened for the same domain: a
    /// connection that proved `a.example` is not used for `b.example` at the same address
    /// (a new one is opened). A request to a [`Target`](crate::Target) reuses any flow to
    /// its address, as before.
    pub fn tls_server_name(&self, flow: FlowId) -> Option<&str> {
        self.flows.server_name(flow)
    }

    /// Lookups the endpoint waits for: requests, ACKs and responses held until DNS
    /// answers (bounded by [`ResolverConfig::max_lookups`], the transaction table and a
    /// small queue for messages without a transaction).
    ///
    /// [`ResolverConfig::max_lookups`]: crate::resolve::ResolverConfig::max_lookups
    pub fn waiting_for_dns(&self) -> usize {
        self.locator.waiting()
    }
}
