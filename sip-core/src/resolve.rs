//! Locating SIP servers (RFC 3263) as a sans-IO resolver.
//!
//! A [`Resolver`] turns a SIP URI (section 4) or the sent-by of a Via (section 5) into an
//! ordered list of [`Target`]s: transport, address and port. It never opens a socket and
//! never reads a clock: it asks for DNS records through [`Resolver::poll_query`], the caller
//! (a driver) answers each [`Query`] with [`Resolver::handle_answer`], and the result of a
//! lookup comes out of [`Resolver::poll_event`]. Time is the `now` given to each call and
//! the random draws of RFC 2782 come from the resolver's own [`SeededRng`].
//!
//! - Section 4.1, transport selection: the `transport` parameter, a numeric IP (no DNS), a
//!   port in the URI (A/AAAA only), NAPTR (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`; `SIP+D2S` is
//!   SCTP, which this stack has not), SRV for `_sip._udp`, `_sip._tcp`, `_sips._tcp`, and
//!   A/AAAA on the default port. `sips:` means TLS only.
//! - Section 4.2: SRV by priority, then weight as RFC 2782 says ([`order_srv`]), then the
//!   A and AAAA records of each target (IPv4 first unless [`ResolverConfig::prefer_ipv6`]).
//! - Section 4.3: [`Resolver::next_target`] and [`Resolver::target_failed`]: a target that
//!   failed (transport error, timeout, 503) is marked down for
//!   [`ResolverConfig::down_time`]; while down it goes to the back of new lists.
//! - Section 5: [`Resolver::resolve_sent_by`].
//! - A bounded cache keyed by (name, record type) with TTLs against `now`, negative answers
//!   cached for their SOA-minimum TTL (capped), and one query in flight per (name, type).
//!
//! The driver flattens CNAME chains: the answer to a query holds the records of the asked
//! type only. Every count is bounded ([`ResolverConfig`]); no input makes it panic.
//!
//! The [`Endpoint`](crate::Endpoint) owns one: a request sent to a
//! [`NextHop::Uri`](crate::NextHop::Uri) is resolved by it, its questions go to the driver
//! through [`Endpoint::poll_dns`](crate::Endpoint::poll_dns), and section 4.3 failover
//! (a new branch per attempt) and section 5 (responses to a sent-by name, under
//! [`ResponsePolicy::Rfc3261`](crate::ResponsePolicy::Rfc3261) only) are done there. A
//! [`Target`] given by the application is still sent to as it is.
//!
//! Resolving `sip:bob@example.test` by answering the queries by hand:
//!
//! ```
//! use std::time::Instant;
//! use sip_core::message::SipUri;
//! use sip_core::resolve::{Answer, Naptr, Record, RecordType, ResolveEvent, Resolver, ResolverConfig, Srv};
//!
//! let now = Instant::now();
//! let mut resolver = Resolver::new(ResolverConfig::default(), [7; 32]);
//! let uri = SipUri::parse("sip:bob@example.test").unwrap();
//! let lookup = resolver.resolve_uri(now, &uri)?;
//!
//! // RFC 3263 4.1: no transport, no port, a name: NAPTR first.
//! let q = resolver.poll_query().unwrap();
//! assert_eq!((q.name.as_str(), q.rtype), ("example.test", RecordType::Naptr));
//! resolver.handle_answer(now, q.id, Answer::Records(vec![Record::Naptr(Naptr {
//!     order: 10, preference: 10, flags: "s".into(), service: "SIP+D2T".into(),
//!     replacement: "_sip._tcp.example.test".into(), ttl: 300,
//! })]));
//! // Then the SRV records the NAPTR record points at.
//! let q = resolver.poll_query().unwrap();
//! assert_eq!((q.name.as_str(), q.rtype), ("_sip._tcp.example.test", RecordType::Srv));
//! resolver.handle_answer(now, q.id, Answer::Records(vec![Record::Srv(Srv {
//!     priority: 0, weight: 1, port: 5070, target: "sip1.example.test".into(), ttl: 300,
//! })]));
//! // Then A and AAAA of the SRV target.
//! while let Some(q) = resolver.poll_query() {
//!     let answer = match q.rtype {
//!         RecordType::A => Answer::Records(vec![Record::A { addr: "192.0.2.10".parse().unwrap(), ttl: 60 }]),
//!         _ => Answer::NoData { ttl: 60 },
//!     };
//!     resolver.handle_answer(now, q.id, answer);
//! }
//! match resolver.poll_event() {
//!     Some(ResolveEvent::Resolved { lookup: l, targets }) => {
//!         assert_eq!(l, lookup);
//!         for t in &targets {
//!             println!("{} {}", t.transport.via_token(), t.addr); // TCP 192.0.2.10:5070
//!         }
//!         assert_eq!(targets[0].addr, "192.0.2.10:5070".parse().unwrap());
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), sip_core::resolve::ResolveError>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::message::{Host, SipUri};
use crate::rng::{Rng, SeededRng};
use crate::transport::{Target, Transport};

/// The default port of `sip:` over UDP and TCP (RFC 3261 section 19.1.2).
pub const SIP_PORT: u16 = 5060;
/// The default port of TLS and `sips:` (RFC 3261 section 19.1.2).
pub const SIPS_PORT: u16 = 5061;
/// The longest domain name, in characters without the final dot (RFC 1035 section 2.3.4).
pub const MAX_NAME_LEN: usize = 253;
/// The longest label (RFC 1035 section 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// A DNS record type the resolver asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RecordType {
    /// NAPTR (RFC 3403).
    Naptr,
    /// SRV (RFC 2782).
    Srv,
    /// A (IPv4 address).
    A,
    /// AAAA (IPv6 address, RFC 3596).
    Aaaa,
}

/// Names one DNS question; the answer is given back with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(u64);

/// Names one lookup (one URI or one sent-by being resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(u64);

/// A DNS question for the caller to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Give it back with the answer ([`Resolver::handle_answer`]).
    pub id: QueryId,
    /// The name asked, without the final dot, lower case.
    pub name: String,
    /// The record type asked.
    pub rtype: RecordType,
}

/// A NAPTR record (RFC 3403 section 4.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Naptr {
    /// ORDER: lower first.
    pub order: u16,
    /// PREFERENCE: lower first among equal ORDER.
    pub preference: u16,
    /// FLAGS: RFC 3263 uses `s` (the replacement names SRV records).
    pub flags: String,
    /// SERVICES, such as `SIP+D2U`.
    pub service: String,
    /// REPLACEMENT: the SRV name to look up.
    pub replacement: String,
    /// Time to live, in seconds.
    pub ttl: u32,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Srv {
    /// Priority: lower first.
    pub priority: u16,
    /// Weight: relative chance among equal priority.
    pub weight: u16,
    /// The port of the service.
    pub port: u16,
    /// The host name of the target (`.` means no service).
    pub target: String,
    /// Time to live, in seconds.
    pub ttl: u32,
}

/// One record of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Record {
    /// A NAPTR record.
    Naptr(Naptr),
    /// An SRV record.
    Srv(Srv),
    /// An A record.
    A {
        /// The address.
        addr: Ipv4Addr,
        /// Time to live, in seconds.
        ttl: u32,
    },
    /// An AAAA record.
    Aaaa {
        /// The address.
        addr: Ipv6Addr,
        /// Time to live, in seconds.
        ttl: u32,
    },
}

impl Record {
    fn rtype(&self) -> RecordType {
        match self {
            Record::Naptr(_) => RecordType::Naptr,
            Record::Srv(_) => RecordType::Srv,
            Record::A { .. } => RecordType::A,
            Record::Aaaa { .. } => RecordType::Aaaa,
        }
    }

    fn ttl(&self) -> u32 {
        match self {
            Record::Naptr(n) => n.ttl,
            Record::Srv(s) => s.ttl,
            Record::A { ttl, .. } | Record::Aaaa { ttl, .. } => *ttl,
        }
    }
}

/// The answer to a [`Query`]. The driver flattens CNAME chains and gives the records of the
/// type asked; records of other types are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// The records found.
    Records(Vec<Record>),
    /// The name exists but has no record of this type; `ttl` is the negative TTL of the
    /// SOA record (RFC 2308 section 5).
    NoData {
        /// Negative TTL in seconds (capped by [`ResolverConfig::max_negative_ttl`]).
        ttl: u32,
    },
    /// The name does not exist (NXDOMAIN), with the negative TTL of the SOA record.
    NxDomain {
        /// Negative TTL in seconds (capped by [`ResolverConfig::max_negative_ttl`]).
        ttl: u32,
    },
    /// The server failed (SERVFAIL, REFUSED, a malformed reply): not cached.
    ServerFailure,
    /// No reply in time: not cached.
    Timeout,
}

/// Why a lookup could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// The host is not a valid domain name or IP address (length, labels, characters).
    InvalidName,
    /// The `transport` parameter names a transport this stack has not, or one not in
    /// [`ResolverConfig::transports`].
    UnsupportedTransport,
    /// A `sips:` URI with a transport other than TLS (RFC 3261 section 26.2).
    SipsNeedsTls,
    /// [`ResolverConfig::max_lookups`] lookups are open: finish some.
    TooManyLookups,
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResolveError::InvalidName => "invalid host name",
            ResolveError::UnsupportedTransport => "unsupported transport",
            ResolveError::SipsNeedsTls => "sips: needs TLS",
            ResolveError::TooManyLookups => "too many lookups in progress",
        })
    }
}

impl std::error::Error for ResolveError {}

/// The outcome of a lookup, from [`Resolver::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveEvent {
    /// The targets in the order to try them (RFC 3263 section 4.2); targets marked down
    /// come last. [`Resolver::next_target`] walks the same list.
    Resolved {
        /// The lookup.
        lookup: LookupId,
        /// The targets, never empty.
        targets: Vec<Target>,
    },
    /// No target found: the request fails (RFC 3263 section 4.3 asks for a 503 to the
    /// application, or for a proxy a 503 upstream).
    NotFound {
        /// The lookup.
        lookup: LookupId,
    },
}

/// Why a target failed, for [`Resolver::target_failed`] (RFC 3263 section 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// A transport error: connection refused or reset, ICMP unreachable.
    TransportError,
    /// The transaction timed out (timer B or F).
    Timeout,
    /// A 503 (Service Unavailable) response.
    ServiceUnavailable,
}

/// The limits and choices of a [`Resolver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// The transports the client supports: NAPTR services and SRV names of others are
    /// skipped. The driver lists what it can open.
    pub transports: Vec<Transport>,
    /// AAAA addresses before A ones (default: IPv4 first).
    pub prefer_ipv6: bool,
    /// How long a failed target stays down (RFC 3263 section 4.3).
    pub down_time: Duration,
    /// Cache entries (one per name and record type); the one expiring first is evicted.
    pub max_cache_entries: usize,
    /// The longest a positive answer is cached, whatever its TTL.
    pub max_positive_ttl: Duration,
    /// The longest a negative answer is cached (RFC 2308 section 5 suggests 1 to 3 hours
    /// as an upper bound; a short one lets a fixed zone be seen soon).
    pub max_negative_ttl: Duration,
    /// Lookups open at once (until [`Resolver::finish`]).
    pub max_lookups: usize,
    /// Records kept from one answer; the rest are dropped.
    pub max_records_per_answer: usize,
    /// NAPTR records followed per lookup.
    pub max_naptr: usize,
    /// SRV targets per lookup.
    pub max_srv_targets: usize,
    /// Addresses kept per host name.
    pub max_addresses_per_target: usize,
    /// Targets remembered as down; the one coming back first is forgotten beyond it.
    pub max_down: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
            prefer_ipv6: false,
            down_time: Duration::from_secs(60),
            max_cache_entries: 1024,
            max_positive_ttl: Duration::from_secs(24 * 3600),
            max_negative_ttl: Duration::from_secs(300),
            max_lookups: 1024,
            max_records_per_answer: 64,
            max_naptr: 4,
            max_srv_targets: 32,
            max_addresses_per_target: 16,
            max_down: 1024,
        }
    }
}

/// Is `name` a domain name we will ask about: at most 253 characters, labels of 1 to 63
/// letters, digits, `-` and `_` (service labels), no empty label (a final dot is allowed)?
pub fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The name as asked and cached: lower case, no final dot. `None` when invalid.
fn normalize(name: &str) -> Option<String> {
    valid_name(name).then(|| name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase())
}

/// The SRV name prefix of a transport (RFC 3263 section 4.1).
fn srv_prefix(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "_sip._udp.",
        Transport::Tcp => "_sip._tcp.",
        Transport::Tls => "_sips._tcp.",
    }
}

/// The default port of a transport (RFC 3261 section 19.1.2).
fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Tls => SIPS_PORT,
        Transport::Udp | Transport::Tcp => SIP_PORT,
    }
}

/// The transport of a NAPTR service (RFC 3263 section 4.1), for a `sips:` URI only
/// `SIPS+D2T`.
fn naptr_transport(service: &str, secure: bool) -> Option<Transport> {
    let t = if service.eq_ignore_ascii_case("SIPS+D2T") {
        Transport::Tls
    } else if service.eq_ignore_ascii_case("SIP+D2T") {
        Transport::Tcp
    } else if service.eq_ignore_ascii_case("SIP+D2U") {
        Transport::Udp
    } else {
        // SIP+D2S (SCTP) and anything else: not a transport of this stack.
        return None;
    };
    (!secure || t == Transport::Tls).then_some(t)
}

/// Orders SRV records as RFC 2782 says: by priority, and within a priority by weighted
/// random selection: the records of weight 0 first, a number drawn uniformly in
/// `0..=sum of weights`, the first record whose running sum of weights reaches it is next;
/// repeat without it.
pub fn order_srv<R: Rng + ?Sized>(records: &[Srv], rng: &mut R) -> Vec<Srv> {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(sorted.len());
    let mut rest = sorted.as_slice();
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        let mut group = group.to_vec();
        // RFC 2782: "arrange all SRV RRs (that have not been ordered yet) in any order,
        // except that all those with weight 0 are placed at the beginning of the list".
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let sum: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
            let draw = if sum == 0 {
                0
            } else {
                rng.next_u64() % (sum + 1)
            };
            let mut running = 0u64;
            let pick = group
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= draw
                })
                .unwrap_or(group.len() - 1);
            out.push(group.remove(pick));
        }
    }
    out
}

type Key = (String, RecordType);

/// One query a lookup waits for, and its records once answered.
#[derive(Debug)]
struct Slot {
    key: Key,
    records: Option<Vec<Record>>,
}

#[derive(Debug)]
enum Stage {
    /// NAPTR of the domain (slot 0).
    Naptr,
    /// SRV: slot i for `srv[i]`'s transport; then `fallback` A/AAAA if all are empty.
    Srv {
        transports: Vec<Transport>,
        fallback: Option<(String, Transport, u16)>,
    },
    /// A and AAAA: slots 2i and 2i+1 for `hosts[i]`.
    Addr { hosts: Vec<(Transport, u16)> },
    /// Resolved (or not found); `targets` is the list.
    Done,
}

#[derive(Debug)]
struct Lookup {
    secure: bool,
    domain: String,
    stage: Stage,
    slots: Vec<Slot>,
    targets: Vec<Target>,
    tried: Vec<bool>,
    current: Option<usize>,
    /// The earliest expiry of the records the lookup used (see [`Resolver::expires`]).
    expires: Option<Instant>,
    /// The SRV records by set, once the SRV stage is done (see [`Plan`]).
    plan_sets: Option<Vec<Vec<PlanEntry>>>,
    /// False when the lookup cannot be replayed from a plan (the SRV target cap).
    plan_ok: bool,
    /// The plan's sets and hosts, once resolved; made a [`Plan`] by [`Resolver::plan`].
    plan_draft: Option<(Vec<Vec<PlanEntry>>, Vec<PlanHost>)>,
}

/// A resolved lookup's records, kept so that its targets can be ordered again
/// ([`Resolver::order`]) without walking the cache from the URI: the SRV records of each
/// set (RFC 3263 4.2, in NAPTR order) by priority, and the addresses of each SRV target.
/// It holds until [`Plan::expires`], the earliest TTL of the records it came from; past
/// that the URI must be resolved again ([`Resolver::resolve_uri`]), which asks DNS for
/// what expired.
#[derive(Debug)]
pub struct Plan {
    sets: Box<[Box<[PlanEntry]>]>,
    hosts: Box<[PlanHost]>,
    expires: Instant,
}

impl Plan {
    /// When the first of the records the plan came from expires.
    pub fn expires(&self) -> Instant {
        self.expires
    }
}

/// One SRV record of a [`Plan`] (a host without SRV: priority and weight 0).
#[derive(Debug, Clone, Copy)]
struct PlanEntry {
    priority: u16,
    weight: u16,
    /// Index in [`Plan::hosts`].
    host: usize,
}

/// One SRV target (or the host itself) of a [`Plan`]: its transport, port and addresses in
/// the order the lookup uses them (IPv4 first unless [`ResolverConfig::prefer_ipv6`]).
#[derive(Debug)]
struct PlanHost {
    transport: Transport,
    port: u16,
    ips: Box<[IpAddr]>,
}

#[derive(Debug)]
struct CacheEntry {
    expires: Instant,
    records: Vec<Record>,
}

#[derive(Debug)]
struct InFlight {
    waiters: Vec<LookupId>,
}

/// The RFC 3263 resolver (see the [module docs](self)).
#[derive(Debug)]
pub struct Resolver {
    config: ResolverConfig,
    rng: SeededRng,
    next_id: u64,
    lookups: HashMap<LookupId, Lookup>,
    cache: HashMap<Key, CacheEntry>,
    in_flight: HashMap<Key, InFlight>,
    query_keys: HashMap<QueryId, Key>,
    queries: VecDeque<Query>,
    events: VecDeque<ResolveEvent>,
    down: HashMap<Target, Instant, DownHasher>,
}

/// The hasher of the table of targets that are down, asked about on every request sent to
/// a URI: a folded 64x64->128-bit multiply per word (a handful of instructions, where
/// SipHash over a `Target`'s several small writes costs a few hundred), keyed from the
/// seed so that the answers of a DNS server cannot be chosen to collide without knowing
/// the key. The table is bounded ([`ResolverConfig::max_down`]) in any case.
#[derive(Debug, Clone, Copy)]
struct DownHasher {
    k0: u64,
    k1: u64,
}

impl DownHasher {
    fn new(seed: [u8; 32]) -> DownHasher {
        let mut rng = SeededRng::with_stream(seed, crate::rng::RESOLVER_HASH_STREAM);
        DownHasher {
            k0: rng.next_u64(),
            k1: rng.next_u64() | 1,
        }
    }
}

impl BuildHasher for DownHasher {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            h: self.k0,
            k: self.k1,
        }
    }
}

/// See [`DownHasher`].
struct FoldHasher {
    h: u64,
    k: u64,
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        let r = u128::from(self.h ^ v) * u128::from(self.k);
        self.h = (r as u64) ^ ((r >> 64) as u64);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.mix(u64::from(v));
    }
    #[inline]
    fn write_u16(&mut self, v: u16) {
        self.mix(u64::from(v));
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.mix(u64::from(v));
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let r = u128::from(self.h.rotate_left(23)) * u128::from(self.k ^ 0x9e37_79b9_7f4a_7c15);
        (r as u64) ^ ((r >> 64) as u64)
    }
}

impl Resolver {
    /// A resolver with `config`, drawing the RFC 2782 weights from ChaCha20 keyed with
    /// `seed`.
    pub fn new(config: ResolverConfig, seed: [u8; 32]) -> Resolver {
        Resolver {
            config,
            rng: SeededRng::new(seed),
            next_id: 0,
            lookups: HashMap::new(),
            cache: HashMap::new(),
            in_flight: HashMap::new(),
            query_keys: HashMap::new(),
            queries: VecDeque::new(),
            events: VecDeque::new(),
            down: HashMap::with_hasher(DownHasher::new(seed)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    fn supports(&self, t: Transport) -> bool {
        self.config.transports.contains(&t)
    }

    /// Starts resolving a SIP or SIPS URI (RFC 3263 section 4). The `maddr` parameter,
    /// when present, replaces the host. The result comes from [`Resolver::poll_event`],
    /// at once when no DNS is needed (numeric IP) or everything is cached.
    pub fn resolve_uri(
        &mut self,
        now: Instant,
        uri: &SipUri<'_>,
    ) -> Result<LookupId, ResolveError> {
        let host = match uri.maddr() {
            Some(m) => Host::classify(m).ok_or(ResolveError::InvalidName)?,
            None => uri.host,
        };
        // RFC 3263 4.1: the transport parameter, else chosen below.
        let transport = match uri.transport() {
            None => None,
            Some(p) => {
                let t = if p.eq_ignore_ascii_case("tls") {
                    Transport::Tls
                } else {
                    Transport::from_via_token(p).ok_or(ResolveError::UnsupportedTransport)?
                };
                Some(t)
            }
        };
        let transport = if uri.secure {
            // RFC 3261 26.2, RFC 3263 4.1: sips: is TLS; transport=tcp means TLS over TCP.
            match transport {
                None | Some(Transport::Tcp) | Some(Transport::Tls) => Some(Transport::Tls),
                Some(_) => return Err(ResolveError::SipsNeedsTls),
            }
        } else {
            transport
        };
        self.start(now, uri.secure, host, uri.port, transport, true)
    }

    /// Starts resolving the sent-by of a Via for a response (RFC 3263 section 5, RFC 3261
    /// section 18.2.2): with a port, the A/AAAA records of the host on it; without, the SRV
    /// records of the Via's transport, else A/AAAA on its default port.
    pub fn resolve_sent_by(
        &mut self,
        now: Instant,
        host: &str,
        port: Option<u16>,
        transport: Transport,
    ) -> Result<LookupId, ResolveError> {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host = match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => Host::Ipv6(host),
            _ => Host::classify(host).ok_or(ResolveError::InvalidName)?,
        };
        self.start(
            now,
            transport == Transport::Tls,
            host,
            port,
            Some(transport),
            false,
        )
    }

    fn start(
        &mut self,
        now: Instant,
        secure: bool,
        host: Host<'_>,
        port: Option<u16>,
        transport: Option<Transport>,
        naptr: bool,
    ) -> Result<LookupId, ResolveError> {
        if let Some(t) = transport {
            if !self.supports(t) {
                return Err(ResolveError::UnsupportedTransport);
            }
        }
        if self.lookups.len() >= self.config.max_lookups {
            return Err(ResolveError::TooManyLookups);
        }
        // The transport when neither NAPTR nor SRV says: UDP for sip: (TCP when UDP is
        // not supported), TLS for sips: (RFC 3263 4.1).
        let default_transport = transport.or_else(|| {
            let choices: &[Transport] = if secure {
                &[Transport::Tls]
            } else {
                &[Transport::Udp, Transport::Tcp]
            };
            choices.iter().copied().find(|t| self.supports(*t))
        });
        let id = LookupId(self.fresh_id());
        if let Some(ip) = host.ip() {
            // RFC 3263 4.1 and 4.2: a numeric IP needs no DNS.
            let t = default_transport.ok_or(ResolveError::UnsupportedTransport)?;
            let addr = SocketAddr::new(ip, port.unwrap_or_else(|| default_port(t)));
            let mut lookup = Lookup::new(secure, String::new());
            lookup.finish(vec![Target { transport: t, addr }]);
            self.complete(now, id, lookup);
            return Ok(id);
        }
        if matches!(host, Host::Ipv6(_) | Host::Ipv4(_)) {
            return Err(ResolveError::InvalidName);
        }
        let domain = normalize(host.as_str()).ok_or(ResolveError::InvalidName)?;
        let mut lookup = Lookup::new(secure, domain.clone());
        if let Some(port) = port {
            // RFC 3263 4.2: a port in the URI: A/AAAA only.
            let t = default_transport.ok_or(ResolveError::UnsupportedTransport)?;
            lookup.addr_stage(vec![(domain, t, port)]);
        } else if let Some(t) = transport {
            // RFC 3263 4.1/4.2: the transport is known: its SRV, else A/AAAA.
            let fallback = Some((domain.clone(), t, default_port(t)));
            let name = format!("{}{}", srv_prefix(t), domain);
            // A domain near the length limit has no room for the SRV labels: A/AAAA only.
            let srv = if valid_name(&name) {
                vec![(name, t)]
            } else {
                Vec::new()
            };
            lookup.srv_stage(srv, fallback);
        } else if naptr {
            lookup.stage = Stage::Naptr;
            lookup.slots = vec![Slot::new((domain, RecordType::Naptr))];
        }
        self.lookups.insert(id, lookup);
        self.fill_and_advance(now, id);
        Ok(id)
    }

    /// The next DNS question to ask, if any. Each is asked once however many lookups wait
    /// for it; answer it with [`Resolver::handle_answer`]. Every question must be answered,
    /// with [`Answer::Timeout`] when the servers do not reply: the resolver reads no clock,
    /// so a lookup (and the question's entry) waits until then.
    pub fn poll_query(&mut self) -> Option<Query> {
        self.queries.pop_front()
    }

    /// The next finished lookup, if any.
    pub fn poll_event(&mut self) -> Option<ResolveEvent> {
        self.events.pop_front()
    }

    /// The answer to the question `id`. Unknown or repeated ids are ignored.
    pub fn handle_answer(&mut self, now: Instant, id: QueryId, answer: Answer) {
        let Some(key) = self.query_keys.remove(&id) else {
            return;
        };
        let Some(in_flight) = self.in_flight.remove(&key) else {
            return;
        };
        let (records, ttl) = match answer {
            Answer::Records(records) => {
                let mut kept: Vec<Record> = records
                    .into_iter()
                    .filter(|r| r.rtype() == key.1)
                    .take(self.config.max_records_per_answer)
                    .collect();
                kept.dedup();
                let ttl = kept.iter().map(Record::ttl).min().unwrap_or(0);
                let cap = self.config.max_positive_ttl;
                (kept, Duration::from_secs(u64::from(ttl)).min(cap))
            }
            Answer::NoData { ttl } | Answer::NxDomain { ttl } => {
                let cap = self.config.max_negative_ttl;
                (Vec::new(), Duration::from_secs(u64::from(ttl)).min(cap))
            }
            Answer::ServerFailure | Answer::Timeout => (Vec::new(), Duration::ZERO),
        };
        if !ttl.is_zero() {
            if let Some(expires) = now.checked_add(ttl) {
                self.cache_insert(now, key.clone(), expires, records.clone());
            }
        }
        // (an answer not cached is good for this instant only)
        let expires = now.checked_add(ttl).unwrap_or(now);
        for lookup_id in in_flight.waiters {
            if let Some(lookup) = self.lookups.get_mut(&lookup_id) {
                for slot in &mut lookup.slots {
                    if slot.records.is_none() && slot.key == key {
                        slot.records = Some(records.clone());
                        lookup.expires = Some(lookup.expires.map_or(expires, |e| e.min(expires)));
                    }
                }
                self.fill_and_advance(now, lookup_id);
            }
        }
    }

    fn cache_insert(&mut self, now: Instant, key: Key, expires: Instant, records: Vec<Record>) {
        if self.config.max_cache_entries == 0 {
            return;
        }
        if self.cache.len() >= self.config.max_cache_entries && !self.cache.contains_key(&key) {
            self.cache.retain(|_, e| e.expires > now);
        }
        if self.cache.len() >= self.config.max_cache_entries && !self.cache.contains_key(&key) {
            // Evict the entry that would expire first.
            if let Some(k) = self
                .cache
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
            {
                self.cache.remove(&k);
            }
        }
        self.cache.insert(key, CacheEntry { expires, records });
    }

    /// Fills the lookup's empty slots from the cache or asks for them; moves on to the next
    /// stage while every slot is filled.
    fn fill_and_advance(&mut self, now: Instant, id: LookupId) {
        loop {
            let Some(mut lookup) = self.lookups.remove(&id) else {
                return;
            };
            if matches!(lookup.stage, Stage::Done) {
                self.lookups.insert(id, lookup);
                return;
            }
            let mut waiting = false;
            for slot in &mut lookup.slots {
                if slot.records.is_some() {
                    continue;
                }
                match self.cache.get(&slot.key) {
                    Some(e) if e.expires > now => {
                        slot.records = Some(e.records.clone());
                        let at = e.expires;
                        lookup.expires = Some(lookup.expires.map_or(at, |x| x.min(at)));
                    }
                    _ => {
                        waiting = true;
                        self.ask(id, slot.key.clone());
                    }
                }
            }
            if waiting {
                self.lookups.insert(id, lookup);
                return;
            }
            self.advance(&mut lookup);
            if matches!(lookup.stage, Stage::Done) {
                self.complete(now, id, lookup);
                return;
            }
            self.lookups.insert(id, lookup);
        }
    }

    /// Registers `id` as waiting for `key`, asking the question once.
    fn ask(&mut self, id: LookupId, key: Key) {
        if let Some(f) = self.in_flight.get_mut(&key) {
            if !f.waiters.contains(&id) {
                f.waiters.push(id);
            }
            return;
        }
        let qid = QueryId(self.fresh_id());
        self.queries.push_back(Query {
            id: qid,
            name: key.0.clone(),
            rtype: key.1,
        });
        self.query_keys.insert(qid, key.clone());
        self.in_flight.insert(key, InFlight { waiters: vec![id] });
    }

    /// The next stage from a stage whose slots are all answered.
    fn advance(&mut self, lookup: &mut Lookup) {
        let slots = std::mem::take(&mut lookup.slots);
        let records = |i: usize| {
            slots
                .get(i)
                .and_then(|s| s.records.as_deref())
                .unwrap_or(&[])
        };
        match std::mem::replace(&mut lookup.stage, Stage::Done) {
            Stage::Naptr => {
                // RFC 3263 4.1: NAPTR records with flag "s" and a service we support, by
                // order then preference.
                let mut naptrs: Vec<&Naptr> = records(0)
                    .iter()
                    .filter_map(|r| match r {
                        Record::Naptr(n) => Some(n),
                        _ => None,
                    })
                    .collect();
                naptrs.sort_by_key(|n| (n.order, n.preference));
                let mut srv = Vec::new();
                for n in naptrs {
                    if srv.len() >= self.config.max_naptr {
                        break;
                    }
                    if !n.flags.eq_ignore_ascii_case("s") {
                        continue;
                    }
                    let Some(t) = naptr_transport(&n.service, lookup.secure) else {
                        continue;
                    };
                    if !self.supports(t) {
                        continue;
                    }
                    if let Some(name) = normalize(&n.replacement) {
                        if !srv.iter().any(|(s, _)| *s == name) {
                            srv.push((name, t));
                        }
                    }
                }
                let fallback = self.default_fallback(lookup);
                if srv.is_empty() {
                    // RFC 3263 4.1: no usable NAPTR: SRV for each transport we support.
                    let order: &[Transport] = if lookup.secure {
                        &[Transport::Tls]
                    } else {
                        &[Transport::Udp, Transport::Tcp, Transport::Tls]
                    };
                    srv = order
                        .iter()
                        .filter(|t| self.supports(**t))
                        .map(|t| (format!("{}{}", srv_prefix(*t), lookup.domain), *t))
                        .filter(|(name, _)| valid_name(name))
                        .collect();
                }
                lookup.srv_stage(srv, fallback);
            }
            Stage::Srv {
                transports,
                fallback,
            } => {
                // RFC 3263 4.2: each SRV set ordered as RFC 2782 says, in the order of the
                // NAPTR records (or of our transports).
                let mut hosts = Vec::new();
                // Every SRV record with a target, for the plan (see [`Plan`]).
                let mut draft: Vec<(usize, Srv, Transport)> = Vec::new();
                for (i, t) in transports.iter().enumerate() {
                    let set: Vec<Srv> = records(i)
                        .iter()
                        .filter_map(|r| match r {
                            Record::Srv(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect();
                    draft.extend(set.iter().map(|s| (i, s.clone(), *t)));
                    for s in order_srv(&set, &mut self.rng) {
                        if hosts.len() >= self.config.max_srv_targets {
                            break;
                        }
                        // RFC 2782: a target of "." means the service is not offered.
                        if let Some(name) = normalize(&s.target) {
                            if !hosts.contains(&(name.clone(), *t, s.port)) {
                                hosts.push((name, *t, s.port));
                            }
                        }
                    }
                }
                // The plan: each record by the index of its host, when every host is among
                // those asked about (else the cap cut some off: no plan).
                let mut sets: Vec<Vec<PlanEntry>> = vec![Vec::new(); transports.len()];
                let mut complete = true;
                for (i, s, t) in draft {
                    let Some(name) = normalize(&s.target) else {
                        continue;
                    };
                    match hosts
                        .iter()
                        .position(|(n, ht, p)| *n == name && *ht == t && *p == s.port)
                    {
                        Some(host) => sets[i].push(PlanEntry {
                            priority: s.priority,
                            weight: s.weight,
                            host,
                        }),
                        None => complete = false,
                    }
                }
                if hosts.is_empty() {
                    if let Some(f) = fallback {
                        hosts.push(f);
                    }
                    lookup.plan_sets = None;
                } else if complete {
                    for set in &mut sets {
                        // RFC 2782's order within a priority: weight 0 first (stable).
                        set.sort_by_key(|e| (e.priority, e.weight != 0));
                    }
                    lookup.plan_sets = Some(sets);
                } else {
                    lookup.plan_ok = false;
                }
                lookup.addr_stage(hosts);
            }
            Stage::Addr { hosts } => {
                let mut targets = Vec::new();
                let mut plan_hosts = Vec::with_capacity(hosts.len());
                for (i, (t, port)) in hosts.iter().enumerate() {
                    let v4 = records(2 * i).iter().filter_map(|r| match r {
                        Record::A { addr, .. } => Some(IpAddr::V4(*addr)),
                        _ => None,
                    });
                    let v6 = records(2 * i + 1).iter().filter_map(|r| match r {
                        Record::Aaaa { addr, .. } => Some(IpAddr::V6(*addr)),
                        _ => None,
                    });
                    let ips: Vec<IpAddr> = if self.config.prefer_ipv6 {
                        v6.chain(v4).collect()
                    } else {
                        v4.chain(v6).collect()
                    };
                    let mut kept = 0;
                    for &ip in &ips {
                        if kept >= self.config.max_addresses_per_target {
                            break;
                        }
                        let target = Target {
                            transport: *t,
                            addr: SocketAddr::new(ip, *port),
                        };
                        if !targets.contains(&target) {
                            targets.push(target);
                            kept += 1;
                        }
                    }
                    plan_hosts.push(PlanHost {
                        transport: *t,
                        port: *port,
                        ips: ips.into(),
                    });
                }
                if lookup.plan_ok {
                    // (no SRV stage, or its fallback: each host in turn, nothing to draw)
                    let sets = lookup.plan_sets.take().unwrap_or_else(|| {
                        (0..plan_hosts.len())
                            .map(|host| {
                                vec![PlanEntry {
                                    priority: 0,
                                    weight: 0,
                                    host,
                                }]
                            })
                            .collect()
                    });
                    lookup.plan_draft = Some((sets, plan_hosts));
                }
                lookup.finish(targets);
            }
            Stage::Done => {}
        }
    }

    /// A/AAAA of the domain on the default port of the default transport (RFC 3263 4.1).
    fn default_fallback(&self, lookup: &Lookup) -> Option<(String, Transport, u16)> {
        let choices: &[Transport] = if lookup.secure {
            &[Transport::Tls]
        } else {
            &[Transport::Udp, Transport::Tcp]
        };
        let t = choices.iter().copied().find(|t| self.supports(*t))?;
        Some((lookup.domain.clone(), t, default_port(t)))
    }

    /// A finished lookup: targets that are down go to the back; the event is queued.
    fn complete(&mut self, now: Instant, id: LookupId, mut lookup: Lookup) {
        self.down.retain(|_, until| *until > now);
        let down = &self.down;
        // A stable sort keeps the RFC order within the up and the down targets.
        lookup.targets.sort_by_key(|t| down.contains_key(t));
        lookup.tried = vec![false; lookup.targets.len()];
        let event = if lookup.targets.is_empty() {
            ResolveEvent::NotFound { lookup: id }
        } else {
            ResolveEvent::Resolved {
                lookup: id,
                targets: lookup.targets.clone(),
            }
        };
        self.lookups.insert(id, lookup);
        self.events.push_back(event);
    }

    /// The next target of a resolved lookup to try (RFC 3263 section 4.3): the first not
    /// yet tried that is not down at `now`, else the first not yet tried. `None` when the
    /// lookup is unknown, not resolved yet, or every target was tried.
    pub fn next_target(&mut self, now: Instant, lookup: LookupId) -> Option<Target> {
        let l = self.lookups.get_mut(&lookup)?;
        if !matches!(l.stage, Stage::Done) {
            return None;
        }
        let is_down = |t: &Target| self.down.get(t).is_some_and(|until| *until > now);
        let untried = |i: &usize| !l.tried[*i];
        let pick = (0..l.targets.len())
            .filter(untried)
            .find(|i| !is_down(&l.targets[*i]))
            .or_else(|| (0..l.targets.len()).find(untried))?;
        l.tried[pick] = true;
        l.current = Some(pick);
        Some(l.targets[pick])
    }

    /// The target last given by [`Resolver::next_target`] for `lookup` failed (a transport
    /// error, a timeout or a 503, RFC 3263 section 4.3): it is down until
    /// `now + down_time`. Call [`Resolver::next_target`] for the next one.
    pub fn target_failed(&mut self, now: Instant, lookup: LookupId, failure: Failure) {
        let _ = failure; // every failure of section 4.3 is treated alike
        let Some(target) = self
            .lookups
            .get(&lookup)
            .and_then(|l| l.current.map(|i| l.targets[i]))
        else {
            return;
        };
        self.mark_down(now, target);
    }

    /// Marks a target down until `now + down_time` (RFC 3263 section 4.3), for every
    /// lookup resolved from now on.
    pub fn mark_down(&mut self, now: Instant, target: Target) {
        let Some(until) = now.checked_add(self.config.down_time) else {
            return;
        };
        if self.config.max_down == 0 {
            return;
        }
        if self.down.len() >= self.config.max_down && !self.down.contains_key(&target) {
            self.down.retain(|_, u| *u > now);
            if self.down.len() >= self.config.max_down {
                if let Some(k) = self.down.iter().min_by_key(|(_, u)| **u).map(|(k, _)| *k) {
                    self.down.remove(&k);
                }
            }
        }
        self.down.insert(target, until);
    }

    /// Is `target` down at `now`?
    pub fn is_down(&self, now: Instant, target: &Target) -> bool {
        // (no hashing at all in the usual case: nothing is down)
        !self.down.is_empty() && self.down.get(target).is_some_and(|until| *until > now)
    }

    /// Forgets a lookup (resolved or not): its table entry is freed. Answers to its
    /// questions still fill the cache, unless more than
    /// [`ResolverConfig::max_lookups`] questions are in flight: then the questions no
    /// lookup waits for any more are forgotten (their answers are ignored), so a caller
    /// whose answers never come cannot grow the table without bound.
    pub fn finish(&mut self, lookup: LookupId) {
        let Some(l) = self.lookups.remove(&lookup) else {
            return;
        };
        for slot in l.slots.iter().filter(|s| s.records.is_none()) {
            if let Some(f) = self.in_flight.get_mut(&slot.key) {
                f.waiters.retain(|w| *w != lookup);
            }
        }
        if self.in_flight.len() > self.config.max_lookups {
            self.in_flight.retain(|_, f| !f.waiters.is_empty());
            let in_flight = &self.in_flight;
            self.query_keys.retain(|_, k| in_flight.contains_key(k));
        }
    }

    /// When the answers a resolved lookup was made from start expiring (the earliest TTL
    /// of the records it used, `now` for an answer not cached): its targets may be reused
    /// until then without asking again. `None` for an unknown lookup or one with no DNS.
    pub fn expires(&self, lookup: LookupId) -> Option<Instant> {
        self.lookups.get(&lookup).and_then(|l| l.expires)
    }

    /// Marks a target down until `now + max(down_time, for)` (RFC 3263 section 4.3 with a
    /// 503's Retry-After, RFC 3261 section 21.5.4).
    pub fn mark_down_for(&mut self, now: Instant, target: Target, duration: Duration) {
        self.mark_down(now, target);
        if duration > self.config.down_time {
            if let (Some(until), Some(entry)) =
                (now.checked_add(duration), self.down.get_mut(&target))
            {
                *entry = until;
            }
        }
    }

    /// The records of a resolved lookup (after its [`ResolveEvent::Resolved`], before
    /// [`Resolver::finish`]) as a [`Plan`], to order its targets again with
    /// [`Resolver::order`] until [`Plan::expires`]. `None` for a lookup not resolved, one
    /// that needed no DNS, or one whose SRV targets were more than
    /// [`ResolverConfig::max_srv_targets`]. It is handed out once per lookup.
    pub fn plan(&mut self, lookup: LookupId) -> Option<Plan> {
        let l = self.lookups.get_mut(&lookup)?;
        let expires = l.expires?;
        let (sets, hosts) = l.plan_draft.take()?;
        Some(Plan {
            sets: sets.into_iter().map(Vec::into_boxed_slice).collect(),
            hosts: hosts.into(),
            expires,
        })
    }

    /// The targets of `plan` in a new RFC 3263 order, as a lookup from the same records
    /// would give them: each SRV set in turn, by priority and a new RFC 2782 weighted
    /// draw, then the addresses of each target; targets down at `now` go to the back
    /// (section 4.3). Empty when the plan has expired: resolve the URI again.
    pub fn order(&mut self, now: Instant, plan: &Plan) -> Vec<Target> {
        let mut targets = Vec::new();
        if plan.expires <= now {
            return targets;
        }
        let mut order: Vec<usize> = Vec::with_capacity(plan.hosts.len());
        let mut group: Vec<PlanEntry> = Vec::new();
        for set in plan.sets.iter() {
            let mut rest: &[PlanEntry] = set;
            while let Some(first) = rest.first() {
                let n = rest
                    .iter()
                    .take_while(|e| e.priority == first.priority)
                    .count();
                group.clear();
                group.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                // RFC 2782, as `order_srv` (weight 0 first, kept from the plan's sort).
                while !group.is_empty() {
                    let sum: u64 = group.iter().map(|e| u64::from(e.weight)).sum();
                    let draw = if sum == 0 {
                        0
                    } else {
                        self.rng.next_u64() % (sum + 1)
                    };
                    let mut running = 0u64;
                    let pick = group
                        .iter()
                        .position(|e| {
                            running += u64::from(e.weight);
                            running >= draw
                        })
                        .unwrap_or(group.len() - 1);
                    let host = group.remove(pick).host;
                    if order.len() < self.config.max_srv_targets && !order.contains(&host) {
                        order.push(host);
                    }
                }
            }
        }
        for host in order {
            let Some(h) = plan.hosts.get(host) else {
                continue;
            };
            let mut kept = 0;
            for &ip in h.ips.iter() {
                if kept >= self.config.max_addresses_per_target {
                    break;
                }
                let target = Target {
                    transport: h.transport,
                    addr: SocketAddr::new(ip, h.port),
                };
                if !targets.contains(&target) {
                    targets.push(target);
                    kept += 1;
                }
            }
        }
        if !self.down.is_empty() {
            let down = &self.down;
            targets.sort_by_key(|t| down.get(t).is_some_and(|until| *until > now));
        }
        targets
    }

    /// Lookups open (not yet given to [`Resolver::finish`]).
    pub fn lookups(&self) -> usize {
        self.lookups.len()
    }

    /// Entries in the cache (expired ones included until they are replaced or evicted).
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Questions asked and not answered yet.
    pub fn queries_in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

impl Lookup {
    fn new(secure: bool, domain: String) -> Lookup {
        Lookup {
            secure,
            domain,
            stage: Stage::Done,
            slots: Vec::new(),
            targets: Vec::new(),
            tried: Vec::new(),
            current: None,
            expires: None,
            plan_sets: None,
            plan_ok: true,
            plan_draft: None,
        }
    }

    fn srv_stage(
        &mut self,
        srv: Vec<(String, Transport)>,
        fallback: Option<(String, Transport, u16)>,
    ) {
        self.slots = srv
            .iter()
            .map(|(name, _)| Slot::new((name.clone(), RecordType::Srv)))
            .collect();
        self.stage = Stage::Srv {
            transports: srv.into_iter().map(|(_, t)| t).collect(),
            fallback,
        };
    }

    fn addr_stage(&mut self, hosts: Vec<(String, Transport, u16)>) {
        self.slots = hosts
            .iter()
            .flat_map(|(name, _, _)| {
                [
                    Slot::new((name.clone(), RecordType::A)),
                    Slot::new((name.clone(), RecordType::Aaaa)),
                ]
            })
            .collect();
        self.stage = Stage::Addr {
            hosts: hosts.into_iter().map(|(_, t, p)| (t, p)).collect(),
        };
    }

    fn finish(&mut self, targets: Vec<Target>) {
        self.slots.clear();
        self.stage = Stage::Done;
        self.targets = targets;
    }
}

impl Slot {
    fn new(key: Key) -> Slot {
        Slot { key, records: None }
    }
}

#[cfg(test)]
mod tests;
