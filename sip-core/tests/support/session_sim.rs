//! Two (or more) user agents, each an Endpoint with a `Sessions` on top, on a virtual clock,
//! exchanging UDP datagrams and TCP stream writes through a seeded network that can lose,
//! duplicate and reorder datagrams. "Raw" nodes have an Endpoint only: the test plays
//! their part by hand (a forking proxy's two 2xx, a peer that misbehaves). Shared by
//! `tests/session.rs`, `tests/session_props.rs` and the `session` fuzz target.
#![allow(dead_code, unreachable_pub)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::resolve::{Answer, RecordType};
use sip_core::session::{SessionConfig, SessionEvent, Sessions};
use sip_core::{
    Config, Endpoint, Event, FlowEvent, FlowId, IoRequest, Listener, Rng, SeededRng, Transport,
};

/// How the network treats datagrams (streams are reliable and in order).
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    pub loss: f64,
    pub duplicate: f64,
    pub latency: (Duration, Duration),
}

impl NetConfig {
    pub fn perfect() -> NetConfig {
        NetConfig {
            loss: 0.0,
            duplicate: 0.0,
            latency: (Duration::from_millis(10), Duration::from_millis(10)),
        }
    }
}

/// What went over the wire.
#[derive(Debug, Clone)]
pub struct Wire {
    pub at: Instant,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub transport: Transport,
    pub bytes: Vec<u8>,
}

impl Wire {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    pub fn first_line(&self) -> String {
        self.text().lines().next().unwrap_or("").to_owned()
    }
}

pub struct Node {
    pub ep: Endpoint,
    pub addr: SocketAddr,
    pub s: Option<Sessions>,
    /// Session events (UA nodes).
    pub events: Vec<SessionEvent>,
    /// Endpoint events the session layer returned (UA nodes) or all of them (raw nodes).
    pub other: Vec<Event>,
    /// A vanished peer: receives nothing, sends nothing.
    pub down: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Delivery {
    Datagram {
        to: SocketAddr,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Stream {
        node: usize,
        flow: FlowId,
        bytes: Vec<u8>,
    },
}

pub struct Net {
    pub now: Instant,
    pub start: Instant,
    pub nodes: Vec<Node>,
    pub cfg: NetConfig,
    rng: SeededRng,
    seq: u64,
    in_flight: BinaryHeap<Reverse<(Instant, u64, Delivery)>>,
    links: HashMap<(usize, FlowId), (usize, FlowId)>,
    next_port: u16,
    pub wire: Vec<Wire>,
    /// Keep at most this many wire records (0: all).
    pub wire_cap: usize,
    /// The DNS zone the test plays: the answer to each (name, type) the endpoints ask
    /// ([`Endpoint::poll_dns`]); a question it does not list is answered NXDOMAIN.
    pub dns: HashMap<(String, RecordType), Answer>,
    /// The DNS questions asked: (node, name, type).
    pub dns_asked: Vec<(usize, String, RecordType)>,
    /// The connections asked for: (node, transport, remote).
    pub connects: Vec<(usize, Transport, SocketAddr)>,
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Net {
    pub fn new(seed: u64, cfg: NetConfig) -> Net {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        let start = Instant::now();
        Net {
            now: start,
            start,
            nodes: Vec::new(),
            cfg,
            rng: SeededRng::new(s),
            seq: 0,
            in_flight: BinaryHeap::new(),
            links: HashMap::new(),
            next_port: 40000,
            wire: Vec::new(),
            wire_cap: 0,
            dns: HashMap::new(),
            dns_asked: Vec::new(),
            connects: Vec::new(),
        }
    }

    fn endpoint(&mut self, a: SocketAddr, tcp: bool) -> Endpoint {
        let mut listeners = vec![Listener::new(Transport::Udp, a)];
        if tcp {
            listeners.push(Listener::new(Transport::Tcp, a));
        }
        self.endpoint_on(listeners)
    }

    fn endpoint_on(&mut self, listeners: Vec<Listener>) -> Endpoint {
        let config = Config {
            listeners,
            response_policy: sip_core::ResponsePolicy::Rfc3261,
            ..Config::default()
        };
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        Endpoint::new(config, seed)
    }

    /// A user agent (Endpoint + Sessions) at `a` (UDP and TCP listeners).
    pub fn add_ua(&mut self, a: &str, config: SessionConfig) -> usize {
        let a = addr(a);
        let ep = self.endpoint(a, true);
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        seed[8] = 1;
        self.nodes.push(Node {
            ep,
            addr: a,
            s: Some(Sessions::new(config, seed)),
            events: Vec::new(),
            other: Vec::new(),
            down: false,
        });
        self.nodes.len() - 1
    }

    /// A user agent at `a` with a listener of each of `transports` (TLS at port + 1, as
    /// 5060 and 5061 go together).
    pub fn add_ua_on(&mut self, a: &str, config: SessionConfig, transports: &[Transport]) -> usize {
        let a = addr(a);
        let listeners = transports
            .iter()
            .map(|&t| match t {
                Transport::Tls => Listener::new(t, SocketAddr::new(a.ip(), a.port() + 1)),
                _ => Listener::new(t, a),
            })
            .collect();
        let ep = self.endpoint_on(listeners);
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        seed[8] = 1;
        self.nodes.push(Node {
            ep,
            addr: a,
            s: Some(Sessions::new(config, seed)),
            events: Vec::new(),
            other: Vec::new(),
            down: false,
        });
        self.nodes.len() - 1
    }

    /// An Endpoint without a session layer, played by the test.
    pub fn add_raw(&mut self, a: &str) -> usize {
        let a = addr(a);
        let ep = self.endpoint(a, true);
        self.nodes.push(Node {
            ep,
            addr: a,
            s: None,
            events: Vec::new(),
            other: Vec::new(),
            down: false,
        });
        self.nodes.len() - 1
    }

    /// Node `i`'s endpoint and session layer, for commands.
    pub fn ua(&mut self, i: usize) -> (&mut Sessions, &mut Endpoint, Instant) {
        let n = &mut self.nodes[i];
        (n.s.as_mut().unwrap(), &mut n.ep, self.now)
    }

    pub fn s(&self, i: usize) -> &Sessions {
        self.nodes[i].s.as_ref().unwrap()
    }

    fn node_of(&self, a: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr == a).or_else(|| {
            // a node's other listeners (TLS at port + 1)
            self.nodes.iter().position(|n| {
                n.addr.ip() == a.ip() && n.ep.config().listeners.iter().any(|l| l.addr == a)
            })
        })
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = self.cfg.latency;
        if hi <= lo {
            return lo;
        }
        lo + Duration::from_nanos(self.rng.next_u64() % (hi - lo).as_nanos() as u64)
    }

    fn record(&mut self, w: Wire) {
        if self.wire_cap > 0 && self.wire.len() >= self.wire_cap {
            self.wire.remove(0);
        }
        self.wire.push(w);
    }

    /// Moves events, transmits and I/O requests until nothing is left to move (the clock
    /// stands still).
    pub fn pump(&mut self) {
        let mut buf = Vec::new();
        for _ in 0..100_000 {
            let mut moved = false;
            for n in 0..self.nodes.len() {
                let now = self.now;
                let node = &mut self.nodes[n];
                while let Some(ev) = node.ep.poll_event() {
                    moved = true;
                    match node.s.as_mut() {
                        Some(s) => {
                            if let Some(back) = s.handle_event(now, ev, &mut node.ep) {
                                node.other.push(back);
                            }
                        }
                        None => node.other.push(ev),
                    }
                }
                if let Some(s) = node.s.as_mut() {
                    while let Some(ev) = s.poll_event() {
                        node.events.push(ev);
                    }
                }
                while let Some(t) = self.nodes[n].ep.poll_transmit(&mut buf) {
                    moved = true;
                    let now = self.now;
                    self.record(Wire {
                        at: now,
                        from: t.local,
                        to: t.remote,
                        transport: t.transport,
                        bytes: buf.clone(),
                    });
                    if self.nodes[n].down {
                        continue;
                    }
                    match t.flow {
                        None => {
                            if self.chance(self.cfg.loss) {
                                continue;
                            }
                            let copies = if self.chance(self.cfg.duplicate) {
                                2
                            } else {
                                1
                            };
                            for _ in 0..copies {
                                let at = now + self.latency();
                                self.seq += 1;
                                let d = Delivery::Datagram {
                                    to: t.remote,
                                    from: t.local,
                                    bytes: buf.clone(),
                                };
                                self.in_flight.push(Reverse((at, self.seq, d)));
                            }
                        }
                        Some(f) => {
                            if let Some(&(m, g)) = self.links.get(&(n, f)) {
                                self.seq += 1;
                                let d = Delivery::Stream {
                                    node: m,
                                    flow: g,
                                    bytes: buf.clone(),
                                };
                                let at = now + self.cfg.latency.0;
                                self.in_flight.push(Reverse((at, self.seq, d)));
                            }
                        }
                    }
                }
                while let Some(io) = self.nodes[n].ep.poll_io() {
                    moved = true;
                    let now = self.now;
                    match io {
                        IoRequest::Connect {
                            flow,
                            transport,
                            remote,
                        } => {
                            self.connects.push((n, transport, remote));
                            let m = self.node_of(remote).filter(|&m| !self.nodes[m].down);
                            let Some(m) = m else {
                                self.nodes[n]
                                    .ep
                                    .handle_flow_event(now, flow, FlowEvent::Failed);
                                continue;
                            };
                            self.next_port += 1;
                            let local = SocketAddr::new(self.nodes[n].addr.ip(), self.next_port);
                            let Ok(g) = self.nodes[m].ep.accept_flow(now, transport, remote, local)
                            else {
                                self.nodes[n]
                                    .ep
                                    .handle_flow_event(now, flow, FlowEvent::Failed);
                                continue;
                            };
                            self.links.insert((n, flow), (m, g));
                            self.links.insert((m, g), (n, flow));
                            self.nodes[n].ep.handle_flow_event(
                                now,
                                flow,
                                FlowEvent::Connected { local },
                            );
                        }
                        IoRequest::Close { flow } => {
                            if let Some((m, g)) = self.links.remove(&(n, flow)) {
                                self.links.remove(&(m, g));
                                self.nodes[m]
                                    .ep
                                    .handle_flow_event(now, g, FlowEvent::Closed);
                            }
                        }
                        _ => {}
                    }
                }
                // The DNS questions, answered from the zone at once (after poll_io, as
                // drivers drain them).
                while let Some(q) = self.nodes[n].ep.poll_dns() {
                    moved = true;
                    let now = self.now;
                    self.dns_asked.push((n, q.name.clone(), q.rtype));
                    let answer = self
                        .dns
                        .get(&(q.name.clone(), q.rtype))
                        .cloned()
                        .unwrap_or(Answer::NxDomain { ttl: 60 });
                    self.nodes[n].ep.handle_dns_answer(now, q.id, answer);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network did not settle");
    }

    /// The next instant something happens.
    pub fn next_deadline(&self) -> Option<Instant> {
        let net = self.in_flight.peek().map(|Reverse((t, _, _))| *t);
        let timers = self
            .nodes
            .iter()
            .flat_map(|n| {
                [
                    n.ep.poll_timeout(),
                    n.s.as_ref().and_then(|s| s.poll_timeout()),
                ]
            })
            .flatten()
            .min();
        [net, timers].into_iter().flatten().min()
    }

    /// Runs what is due at the next deadline; false when nothing is left.
    pub fn step(&mut self) -> bool {
        self.pump();
        let Some(at) = self.next_deadline() else {
            return false;
        };
        self.now = self.now.max(at);
        let now = self.now;
        while let Some(Reverse((t, _, _))) = self.in_flight.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, _, d))) = self.in_flight.pop() else {
                break;
            };
            match d {
                Delivery::Datagram { to, from, bytes } => {
                    if let Some(m) = self.node_of(to).filter(|&m| !self.nodes[m].down) {
                        self.nodes[m].ep.handle_datagram(now, to, from, &bytes);
                    }
                }
                Delivery::Stream { node, flow, bytes } => {
                    if !self.nodes[node].down {
                        self.nodes[node].ep.handle_stream(now, flow, &bytes);
                    }
                }
            }
            self.pump();
        }
        for n in &mut self.nodes {
            if n.ep.poll_timeout().is_some_and(|t| t <= now) {
                n.ep.handle_timeout(now);
            }
        }
        self.pump();
        for n in &mut self.nodes {
            if let Some(s) = n.s.as_mut() {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now, &mut n.ep);
                }
            }
        }
        self.pump();
        true
    }

    /// Runs the clock for `d`.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.pump();
        while self.next_deadline().is_some_and(|t| t <= end) {
            self.step();
        }
        self.now = self.now.max(end);
        self.pump();
    }

    /// Runs until nothing is left to happen (at most `max` of virtual time).
    pub fn drain(&mut self, max: Duration) {
        let end = self.now + max;
        self.pump();
        while self.next_deadline().is_some_and(|t| t <= end) {
            self.step();
        }
    }

    /// Session events of node `i` so far.
    pub fn events(&mut self, i: usize) -> Vec<SessionEvent> {
        std::mem::take(&mut self.nodes[i].events)
    }

    /// Endpoint events node `i` did not hand to a session layer (or got back from it).
    pub fn other(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.nodes[i].other)
    }

    /// Messages node `i` sent whose first line starts with `prefix`.
    pub fn sent(&self, i: usize, prefix: &str) -> Vec<Wire> {
        let a = self.nodes[i].addr;
        self.wire
            .iter()
            .filter(|w| {
                (w.from == a || w.from.ip() == a.ip() && w.transport != Transport::Udp)
                    && w.first_line().starts_with(prefix)
            })
            .cloned()
            .collect()
    }

    /// Injects a datagram from `from` to node `to` now.
    pub fn inject(&mut self, from: SocketAddr, to: usize, bytes: &[u8]) {
        let now = self.now;
        let a = self.nodes[to].addr;
        self.nodes[to].ep.handle_datagram(now, a, from, bytes);
        self.pump();
    }
}
