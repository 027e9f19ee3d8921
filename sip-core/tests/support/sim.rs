//! A deterministic network simulation for the Endpoint (in the manner of quinn-proto's
//! `Pair` and str0m's `netem`): endpoints on a virtual clock exchange UDP datagrams through
//! a seeded network with configurable loss, duplication and latency (random latency also
//! reorders). `step()` jumps straight to the next deadline, so minutes of RFC timers run in
//! microseconds.
#![allow(dead_code, unreachable_pub)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::ua::UserAgent;
use sip_core::{Config, Endpoint, Event, Listener, Rng, SeededRng, TransactionUser, Transport};

/// How the simulated network treats each datagram.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a delivered datagram arrives twice.
    pub duplicate: f64,
    /// Latency, drawn uniformly from this range (a range wider than zero reorders).
    pub latency: (Duration, Duration),
}

impl NetConfig {
    /// A perfect network with 10 ms latency.
    pub fn perfect() -> NetConfig {
        NetConfig {
            loss: 0.0,
            duplicate: 0.0,
            latency: (Duration::from_millis(10), Duration::from_millis(10)),
        }
    }

    /// Loss in both directions, some duplication and reordering.
    pub fn lossy(loss: f64) -> NetConfig {
        NetConfig {
            loss,
            duplicate: 0.05,
            latency: (Duration::from_millis(5), Duration::from_millis(80)),
        }
    }
}

/// A datagram in the simulated network, or one that was sent (see [`Sim::log`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Packet {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

impl Packet {
    /// The start line, for assertions.
    pub fn first_line(&self) -> String {
        let s = String::from_utf8_lossy(&self.data);
        s.lines().next().unwrap_or("").to_owned()
    }
}

/// One simulated element.
pub struct Node {
    pub ep: Endpoint,
    pub addr: SocketAddr,
    pub events: VecDeque<(Instant, Event)>,
    /// A UAS core that gets this node's events (instead of `events`) and runs its timers.
    pub ua: Option<UserAgent>,
}

/// The simulation.
pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub nodes: Vec<Node>,
    net: NetConfig,
    rng: SeededRng,
    seq: u64,
    in_flight: BinaryHeap<Reverse<(Instant, u64, Packet)>>,
    /// Every datagram an endpoint sent, with the time it was sent.
    pub log: Vec<(Instant, Packet)>,
    /// Wake-ups the test's application logic asked for (its own timers).
    alarms: BinaryHeap<Reverse<Instant>>,
    /// The DNS zone the test plays: the answer to each (name, type) an endpoint asks
    /// (`Endpoint::poll_dns`); NXDOMAIN for what it does not list.
    pub dns: std::collections::HashMap<
        (String, sip_core::resolve::RecordType),
        sip_core::resolve::Answer,
    >,
}

impl Sim {
    pub fn new(seed: u64, net: NetConfig) -> Sim {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        // The one clock read of the simulation: a base for the virtual clock.
        let start = Instant::now();
        Sim {
            start,
            now: start,
            nodes: Vec::new(),
            net,
            rng: SeededRng::new(s),
            seq: 0,
            in_flight: BinaryHeap::new(),
            log: Vec::new(),
            alarms: BinaryHeap::new(),
            dns: std::collections::HashMap::new(),
        }
    }

    /// Adds an endpoint listening on UDP at `addr`. The simulated peers trust each other
    /// (`ResponsePolicy::Rfc3261`): these tests check the RFC's retransmission schedules as
    /// written, toward peers that may stay silent; `tests/reflection.rs` covers the default
    /// policy for untrusted peers.
    pub fn add_node(&mut self, addr: &str) -> usize {
        let config = Config {
            response_policy: sip_core::ResponsePolicy::Rfc3261,
            ..Config::default()
        };
        self.add_node_with(addr, config)
    }

    /// Adds an endpoint with `config`, listening on UDP at `addr` (added to its listeners).
    pub fn add_node_with(&mut self, addr: &str, mut config: Config) -> usize {
        let addr: SocketAddr = addr.parse().unwrap();
        config.listeners.push(Listener::new(Transport::Udp, addr));
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        self.nodes.push(Node {
            ep: Endpoint::new(config, seed),
            addr,
            events: VecDeque::new(),
            ua: None,
        });
        self.nodes.len() - 1
    }

    /// The endpoint of node `i`.
    pub fn ep(&mut self, i: usize) -> &mut Endpoint {
        &mut self.nodes[i].ep
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = self.net.latency;
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_nanos() as u64;
        lo + Duration::from_nanos(self.rng.next_u64() % span)
    }

    /// Collects every node's transmits (into the network) and events.
    pub fn drain(&mut self) {
        let mut buf = Vec::new();
        let mut answered = false;
        for i in 0..self.nodes.len() {
            // A UAS core answers at once; what it sends is drained below.
            let now = self.now;
            let node = &mut self.nodes[i];
            if let Some(ua) = node.ua.as_mut() {
                while let Some(ev) = node.ep.poll_event() {
                    ua.handle_event(now, ev, &mut node.ep);
                }
            }
            while let Some(t) = self.nodes[i].ep.poll_transmit(&mut buf) {
                let p = Packet {
                    from: t.local,
                    to: t.remote,
                    data: buf.clone(),
                };
                self.log.push((self.now, p.clone()));
                if self.chance(self.net.loss) {
                    continue;
                }
                let copies = if self.chance(self.net.duplicate) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let at = self.now + self.latency();
                    self.seq += 1;
                    self.in_flight.push(Reverse((at, self.seq, p.clone())));
                }
            }
            while let Some(ev) = self.nodes[i].ep.poll_event() {
                self.nodes[i].events.push_back((self.now, ev));
            }
            while self.nodes[i].ep.poll_io().is_some() {}
            while let Some(q) = self.nodes[i].ep.poll_dns() {
                let answer = self
                    .dns
                    .get(&(q.name.clone(), q.rtype))
                    .cloned()
                    .unwrap_or(sip_core::resolve::Answer::NxDomain { ttl: 60 });
                let now = self.now;
                self.nodes[i].ep.handle_dns_answer(now, q.id, answer);
                answered = true;
            }
        }
        if answered {
            // what the answers released (requests waiting for their lookup)
            self.drain();
        }
    }

    /// Makes [`Sim::step`] stop at `t` (for application timers in tests).
    pub fn wake_at(&mut self, t: Instant) {
        self.alarms.push(Reverse(t));
    }

    /// The next instant something happens.
    pub fn next_deadline(&self) -> Option<Instant> {
        let net = self.in_flight.peek().map(|Reverse((t, _, _))| *t);
        let alarm = self.alarms.peek().map(|Reverse(t)| *t);
        let timers = self
            .nodes
            .iter()
            .flat_map(|n| {
                [
                    n.ep.poll_timeout(),
                    n.ua.as_ref().and_then(|u| u.poll_timeout()),
                ]
            })
            .flatten()
            .min();
        [net, alarm, timers].into_iter().flatten().min()
    }

    /// Advances to the next deadline and runs everything due then. False when nothing is
    /// left to happen.
    pub fn step(&mut self) -> bool {
        self.drain();
        let Some(at) = self.next_deadline() else {
            return false;
        };
        self.now = self.now.max(at);
        while self.alarms.peek().is_some_and(|Reverse(t)| *t <= self.now) {
            self.alarms.pop();
        }
        while let Some(Reverse((t, _, _))) = self.in_flight.peek() {
            if *t > self.now {
                break;
            }
            let Some(Reverse((_, _, p))) = self.in_flight.pop() else {
                break;
            };
            if let Some(i) = self.nodes.iter().position(|n| n.addr == p.to) {
                let now = self.now;
                self.nodes[i].ep.handle_datagram(now, p.to, p.from, &p.data);
            }
        }
        let now = self.now;
        for n in &mut self.nodes {
            if n.ep.poll_timeout().is_some_and(|t| t <= now) {
                n.ep.handle_timeout(now);
            }
            if let Some(ua) = n.ua.as_mut() {
                if ua.poll_timeout().is_some_and(|t| t <= now) {
                    ua.handle_timeout(now, &mut n.ep);
                }
            }
        }
        self.drain();
        true
    }

    /// Steps until `t` (the clock ends at `t` even when nothing happens then).
    pub fn run_until(&mut self, t: Instant) {
        // What the test just sent enters the network first.
        self.drain();
        while self.next_deadline().is_some_and(|d| d <= t) {
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Steps for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Takes node `i`'s events so far.
    pub fn events(&mut self, i: usize) -> Vec<(Instant, Event)> {
        self.nodes[i].events.drain(..).collect()
    }

    /// Times (since start) at which datagrams whose first line starts with `prefix` were
    /// sent from node `i`.
    pub fn sent_times(&self, i: usize, prefix: &str) -> Vec<Duration> {
        let addr = self.nodes[i].addr;
        self.log
            .iter()
            .filter(|(_, p)| p.from == addr && p.first_line().starts_with(prefix))
            .map(|(t, _)| *t - self.start)
            .collect()
    }
}
