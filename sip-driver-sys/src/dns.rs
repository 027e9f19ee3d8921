//! DNS over UDP for the drivers: the nameservers of the system, and [`DnsClient`], a sans-IO
//! stub resolver that answers the questions of `sip_core::resolve` (RFC 3263: NAPTR, SRV, A,
//! AAAA) through one UDP socket the driver's loop owns.
//!
//! The wire format (RFC 1035, RFC 2782, RFC 3403, RFC 3596) is hickory-proto's. The client
//! does no I/O and reads no clock: the driver gives it the time, sends what
//! [`DnsClient::poll_transmit`] returns, feeds every datagram the socket receives to
//! [`DnsClient::handle_datagram`], calls [`DnsClient::handle_timeout`] at
//! [`DnsClient::poll_timeout`], and hands each [`DnsClient::poll_answer`] to
//! `Endpoint::handle_dns_answer`.
//!
//! What it does with an answer:
//!
//! - Accepted only from a server the query was sent to, with the 16-bit id it was sent with
//!   (drawn from a ChaCha20 generator seeded by the caller, RFC 5452 section 9.2) and the
//!   same question (name compared case-insensitively, type, class IN). Anything else is
//!   dropped silently: a spoofed datagram cannot answer a query.
//! - CNAME chains are flattened: the records of the asked type owned by the name asked or by
//!   a name the CNAME chain from it reaches (at most [`MAX_CNAME_CHAIN`] links).
//! - NXDOMAIN gives `Answer::NxDomain` and NOERROR without a record of the type
//!   `Answer::NoData`, each with the negative TTL of RFC 2308 section 5 (the smaller of the
//!   SOA record's TTL and its MINIMUM field, from the authority section; 0 without a SOA),
//!   capped at [`MAX_NEGATIVE_TTL`].
//! - SERVFAIL and REFUSED send the question to the next server at once when there is more
//!   than one server and a try is left, else give `Answer::ServerFailure`; other error codes
//!   give `Answer::ServerFailure` at once.
//! - A truncated answer (TC bit) gives `Answer::ServerFailure`: this client does not fall back
//!   to TCP. Queries carry an EDNS(0) OPT record offering [`EDNS_PAYLOAD`] bytes, which fits
//!   the NAPTR and SRV sets SIP domains publish.
//! - A datagram that does not decode is dropped (the query then times out): it cannot be
//!   told apart from a spoofed one.
//!
//! Retries: [`RETRY_INTERVAL`] per try, each try to the next server in turn, [`MAX_TRIES`]
//! tries in all, then `Answer::Timeout`. At most [`MAX_IN_FLIGHT`] queries wait for an answer;
//! a query beyond that is answered `Answer::ServerFailure` at once.
//!
//! A query the server never answers, on a virtual clock:
//!
//! ```
//! use std::time::Instant;
//! use sip_core::message::SipUri;
//! use sip_core::resolve::{Answer, Resolver, ResolverConfig};
//! use sip_driver_sys::dns::{DnsClient, MAX_TRIES, RETRY_INTERVAL};
//!
//! let mut now = Instant::now();
//! // The questions come from sip_core (here a Resolver; in a driver, Endpoint::poll_dns).
//! let mut resolver = Resolver::new(ResolverConfig::default(), [1; 32]);
//! resolver.resolve_uri(now, &SipUri::parse("sip:example.test").unwrap())?;
//! let query = resolver.poll_query().unwrap();
//!
//! let server = "127.0.0.1:53".parse().unwrap();
//! let mut client = DnsClient::new(vec![server], [7; 32]);
//! client.query(now, query.clone());
//! let (to, datagram) = client.poll_transmit().unwrap(); // the driver sends it
//! assert_eq!(to, server);
//! # let _ = datagram;
//! for _ in 0..MAX_TRIES {
//!     assert_eq!(client.poll_timeout(), Some(now + RETRY_INTERVAL));
//!     now += RETRY_INTERVAL;
//!     client.handle_timeout(now); // a retry, then the last try gives up
//! }
//! assert_eq!(client.poll_answer(), Some((query.id, Answer::Timeout)));
//! # Ok::<(), sip_core::resolve::ResolveError>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType as WireType};
use sip_core::resolve::{Answer, Naptr, Query, QueryId, Record, RecordType, Srv};
use sip_core::{Rng, SeededRng};

/// The DNS port (RFC 1035 section 4.2).
pub const DNS_PORT: u16 = 53;
/// How long one try waits for its answer before the next try.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Tries per query, over the servers in turn; then `Answer::Timeout`.
pub const MAX_TRIES: u32 = 3;
/// Queries waiting for an answer at most; a query beyond gets `Answer::ServerFailure`.
pub const MAX_IN_FLIGHT: usize = 256;
/// CNAME links followed at most in one answer.
pub const MAX_CNAME_CHAIN: usize = 8;
/// The largest negative TTL given (seconds); `sip_core::resolve::ResolverConfig` caps again.
pub const MAX_NEGATIVE_TTL: u32 = 3600;
/// The UDP payload size offered in the EDNS(0) OPT record (RFC 6891), and the receive buffer
/// a driver needs at least.
pub const EDNS_PAYLOAD: u16 = 1232;
/// How many nameservers [`parse_resolv_conf`] keeps (as glibc's MAXNS).
pub const MAX_NAMESERVERS: usize = 3;

/// The nameservers of /etc/resolv.conf (port 53), or an error if none.
pub fn system_nameservers() -> io::Result<Vec<SocketAddr>> {
    let text = std::fs::read_to_string("/etc/resolv.conf")?;
    let servers = parse_resolv_conf(&text);
    if servers.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no usable nameserver line in /etc/resolv.conf",
        ));
    }
    Ok(servers)
}

/// The `nameserver` lines of a resolv.conf text, in order, port 53, at most
/// [`MAX_NAMESERVERS`]. Comments (`#`, `;`) and other options are ignored, and so are
/// addresses that do not parse (an IPv6 address with a zone, `fe80::1%eth0`, among them).
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut servers = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        if let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) {
            servers.push(SocketAddr::new(ip, DNS_PORT));
            if servers.len() == MAX_NAMESERVERS {
                break;
            }
        }
    }
    servers
}

/// `"127.0.0.1:5353"`, `"[::1]:5353"`, `"127.0.0.1"` or `"::1"` (port 53) -> address.
pub fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, DNS_PORT)),
        Err(_) => Err(format!(
            "not a nameserver address: {s:?} (expected IP, IP:PORT or [IPv6]:PORT)"
        )),
    }
}

/// One query waiting for its answer.
#[derive(Debug)]
struct Pending {
    query: Query,
    /// The question as sent, to compare the answer's question with.
    name: Name,
    wire_type: WireType,
    /// The encoded query (sent again on a retry).
    wire: Vec<u8>,
    /// The servers asked so far (an answer from any of them counts).
    asked: Vec<SocketAddr>,
    /// The index in `servers` of the last server asked.
    server: usize,
    tries: u32,
    deadline: Instant,
}

/// A sans-IO DNS client over UDP for a loop that owns one non-blocking socket: random
/// 16-bit ids from the seed, answers accepted only from the server asked and with the
/// question asked, retries over the servers, a timeout -> `Answer::Timeout`, CNAMEs
/// flattened, NXDOMAIN/NoData with the SOA minimum TTL, truncated answers -> ServerFailure
/// (no TCP). Bounded in-flight queries. See the [module docs](self) for the rules.
pub struct DnsClient {
    servers: Vec<SocketAddr>,
    rng: SeededRng,
    /// By DNS message id: ids are unique among the queries in flight.
    pending: HashMap<u16, Pending>,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    answers: VecDeque<(QueryId, Answer)>,
}

impl std::fmt::Debug for DnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsClient")
            .field("servers", &self.servers)
            .field("in_flight", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl DnsClient {
    /// A client asking `servers` in turn (the first one first), with query ids drawn from a
    /// ChaCha20 generator keyed with `seed` (give it a seed of its own, from the operating
    /// system: predictable ids make spoofing easy). With no server, every query is answered
    /// `Answer::ServerFailure`.
    pub fn new(servers: Vec<SocketAddr>, seed: [u8; 32]) -> DnsClient {
        DnsClient {
            servers,
            rng: SeededRng::new(seed),
            pending: HashMap::new(),
            transmits: VecDeque::new(),
            answers: VecDeque::new(),
        }
    }

    /// The servers asked.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// How many queries wait for an answer.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Asks `query`: a datagram for [`DnsClient::poll_transmit`], and later exactly one
    /// answer for it from [`DnsClient::poll_answer`].
    pub fn query(&mut self, now: Instant, query: Query) {
        if self.servers.is_empty() || self.pending.len() >= MAX_IN_FLIGHT {
            self.answers.push_back((query.id, Answer::ServerFailure));
            return;
        }
        let Some((name, wire_type)) = question(&query) else {
            self.answers.push_back((query.id, Answer::ServerFailure));
            return;
        };
        let Some(id) = self.fresh_id() else {
            self.answers.push_back((query.id, Answer::ServerFailure));
            return;
        };
        let Some(wire) = encode_query(id, &name, wire_type) else {
            self.answers.push_back((query.id, Answer::ServerFailure));
            return;
        };
        // The first server first, as resolv.conf says; the others on retries.
        let server = 0;
        let addr = self.servers[server];
        self.transmits.push_back((addr, wire.clone()));
        self.pending.insert(
            id,
            Pending {
                query,
                name,
                wire_type,
                wire,
                asked: vec![addr],
                server,
                tries: 1,
                deadline: now + RETRY_INTERVAL,
            },
        );
    }

    /// The next datagram to send: (server, bytes).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// A datagram received on the DNS socket from `from` (the address as the socket reports
    /// it: it must equal a server's address exactly, so a dual-stack socket must not report
    /// an IPv4 server as `::ffff:a.b.c.d`). Use a receive buffer of at least
    /// [`EDNS_PAYLOAD`] bytes: a cut datagram does not decode. Never panics; anything that
    /// is not the answer to a query in flight is dropped.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        // The id is the first two bytes: look it up before decoding anything.
        let Some(id) = bytes.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return;
        };
        let Some(pending) = self.pending.get(&id) else {
            return;
        };
        if !pending.asked.contains(&from) {
            return;
        }
        let Ok(message) = Message::from_vec(bytes) else {
            return;
        };
        if message.metadata.message_type != MessageType::Response
            || message.metadata.op_code != OpCode::Query
            || !same_question(&message, &pending.name, pending.wire_type)
        {
            return;
        }
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        let outcome = interpret(&message, &pending);
        match outcome {
            Outcome::Answer(answer) => self.answers.push_back((pending.query.id, answer)),
            // With one server there is nobody else to ask: no point in asking again now.
            Outcome::TryNext if self.servers.len() > 1 => {
                self.retry_with_id(now, id, pending, Answer::ServerFailure)
            }
            Outcome::TryNext => self
                .answers
                .push_back((pending.query.id, Answer::ServerFailure)),
        }
    }

    /// The next answer, with the id of the query it answers.
    pub fn poll_answer(&mut self) -> Option<(QueryId, Answer)> {
        self.answers.pop_front()
    }

    /// When [`DnsClient::handle_timeout`] is due: the earliest retry deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Retries the queries whose try timed out (the next server), or answers them
    /// `Answer::Timeout` after [`MAX_TRIES`] tries.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(pending) = self.pending.remove(&id) {
                self.retry_with_id(now, id, pending, Answer::Timeout);
            }
        }
    }

    /// Sends `pending` (DNS id `id`) to the next server if a try is left, else answers
    /// `last`.
    fn retry_with_id(&mut self, now: Instant, id: u16, mut pending: Pending, last: Answer) {
        if pending.tries >= MAX_TRIES {
            self.answers.push_back((pending.query.id, last));
            return;
        }
        pending.tries += 1;
        pending.server = (pending.server + 1) % self.servers.len();
        let addr = self.servers[pending.server];
        if !pending.asked.contains(&addr) {
            pending.asked.push(addr);
        }
        pending.deadline = now + RETRY_INTERVAL;
        self.transmits.push_back((addr, pending.wire.clone()));
        self.pending.insert(id, pending);
    }

    /// A random id no query in flight has.
    fn fresh_id(&mut self) -> Option<u16> {
        // With at most MAX_IN_FLIGHT of 65536 ids taken, a draw is free with odds above
        // 99.6%: 32 draws all failing does not happen, but the loop is bounded anyway.
        for _ in 0..32 {
            let id = (self.rng.next_u64() & 0xffff) as u16;
            if !self.pending.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }
}

/// The wire name and type of a query; None for a name that cannot be a DNS name.
fn question(query: &Query) -> Option<(Name, WireType)> {
    let wire_type = match query.rtype {
        RecordType::Naptr => WireType::NAPTR,
        RecordType::Srv => WireType::SRV,
        RecordType::A => WireType::A,
        RecordType::Aaaa => WireType::AAAA,
        _ => return None,
    };
    let mut name = Name::from_ascii(&query.name).ok()?;
    // Fully qualified: no search list applies to the names of RFC 3263.
    name.set_fqdn(true);
    if name.is_root() {
        return None;
    }
    Some((name, wire_type))
}

/// A standard query with recursion desired and an EDNS(0) OPT record.
fn encode_query(id: u16, name: &Name, wire_type: WireType) -> Option<Vec<u8>> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    let mut q = hickory_proto::op::Query::query(name.clone(), wire_type);
    q.set_query_class(DNSClass::IN);
    message.add_query(q);
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    message.to_vec().ok()
}

/// Names equal as DNS compares them: ASCII case-insensitively (RFC 4343), fully qualified.
fn same_name(a: &Name, b: &Name) -> bool {
    let a = a.to_ascii();
    let b = b.to_ascii();
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The answer repeats the one question asked (RFC 5452 section 9.1).
fn same_question(message: &Message, name: &Name, wire_type: WireType) -> bool {
    match message.queries.as_slice() {
        [q] => {
            q.query_type == wire_type && q.query_class == DNSClass::IN && same_name(&q.name, name)
        }
        _ => false,
    }
}

enum Outcome {
    Answer(Answer),
    /// SERVFAIL or REFUSED: the next server may do better.
    TryNext,
}

fn interpret(message: &Message, pending: &Pending) -> Outcome {
    if message.metadata.truncation {
        // No TCP fallback: see the module docs.
        return Outcome::Answer(Answer::ServerFailure);
    }
    match message.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => {
            return Outcome::Answer(Answer::NxDomain {
                ttl: negative_ttl(message),
            })
        }
        ResponseCode::ServFail | ResponseCode::Refused => return Outcome::TryNext,
        _ => return Outcome::Answer(Answer::ServerFailure),
    }
    let records = flatten(message, &pending.name, pending.wire_type);
    if records.is_empty() {
        Outcome::Answer(Answer::NoData {
            ttl: negative_ttl(message),
        })
    } else {
        Outcome::Answer(Answer::Records(records))
    }
}

/// RFC 2308 section 5: the negative TTL is the smaller of the SOA record's TTL and its
/// MINIMUM field; 0 (do not cache) without a SOA in the authority section.
fn negative_ttl(message: &Message) -> u32 {
    message
        .authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })
        .unwrap_or(0)
        .min(MAX_NEGATIVE_TTL)
}

/// The records of the asked type owned by the name asked or by the names its CNAME chain
/// leads to, converted; records of other types and other owners are left out.
fn flatten(message: &Message, name: &Name, wire_type: WireType) -> Vec<Record> {
    let mut owners = vec![name.clone()];
    let mut current = name.clone();
    for _ in 0..MAX_CNAME_CHAIN {
        let next = message.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(cname) if same_name(&r.name, &current) => Some(cname.0.clone()),
            _ => None,
        });
        match next {
            // A loop ends the chain.
            Some(target) if !owners.iter().any(|o| same_name(o, &target)) => {
                owners.push(target.clone());
                current = target;
            }
            _ => break,
        }
    }
    message
        .answers
        .iter()
        .filter(|r| r.record_type() == wire_type && r.dns_class == DNSClass::IN)
        .filter(|r| owners.iter().any(|o| same_name(o, &r.name)))
        .filter_map(|r| convert(&r.data, r.ttl))
        .collect()
}

/// A domain name as sip_core::resolve wants it: lower case, no final dot; the root is ".".
fn name_text(name: &Name) -> String {
    if name.is_root() {
        return ".".to_string();
    }
    let mut text = name.to_ascii();
    if text.ends_with('.') {
        text.pop();
    }
    text.make_ascii_lowercase();
    text
}

/// A hickory record as a sip_core record; None for types the resolver does not use.
fn convert(data: &RData, ttl: u32) -> Option<Record> {
    match data {
        RData::A(a) => Some(Record::A { addr: a.0, ttl }),
        RData::AAAA(aaaa) => Some(Record::Aaaa { addr: aaaa.0, ttl }),
        RData::SRV(srv) => Some(Record::Srv(Srv {
            priority: srv.priority,
            weight: srv.weight,
            port: srv.port,
            target: name_text(&srv.target),
            ttl,
        })),
        RData::NAPTR(naptr) => Some(Record::Naptr(Naptr {
            order: naptr.order,
            preference: naptr.preference,
            flags: String::from_utf8_lossy(&naptr.flags).into_owned(),
            service: String::from_utf8_lossy(&naptr.services).into_owned(),
            replacement: name_text(&naptr.replacement),
            ttl,
        })),
        _ => None,
    }
}
