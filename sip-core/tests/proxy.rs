//! The proxy core (RFC 3261 section 16) in a simulated network on a virtual clock: UAC and
//! UAS endpoints exchange bytes with the proxy's endpoint over UDP and TCP. Every test is
//! named after the rule it checks.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::proxy::{Forking, Inbound, Proxy, ProxyConfig, ProxyTarget, Received};
use sip_core::{
    response_to, ClientTxId, Config, Endpoint, Event, FlowEvent, FlowId, IoRequest, Listener,
    Method, OwnedMessage, RequestBuilder, SeededRng, ServerTxId, Target, Transport,
};

const PROXY: &str = "127.0.0.1:5060";
const ALICE: &str = "127.0.0.2:5060";
const BOB: &str = "127.0.0.3:5060";
const CAROL: &str = "127.0.0.4:5060";
const RR: &str = "sip:127.0.0.1:5060;lr";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// How the simulated proxy application routes: the target set for a request.
type Router = Box<dyn FnMut(&Inbound) -> Option<Vec<ProxyTarget>>>;

/// One simulated element.
struct Node {
    ep: Endpoint,
    addr: SocketAddr,
    /// Events a UA received (the proxy's node keeps what the proxy left to it).
    events: Vec<Event>,
}

/// A datagram or stream write seen on the wire, for assertions.
#[derive(Clone)]
struct Wire {
    from: SocketAddr,
    to: SocketAddr,
    transport: Transport,
    bytes: Vec<u8>,
}

impl Wire {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

struct Net {
    now: Instant,
    nodes: Vec<Node>,
    proxy: Proxy,
    router: Router,
    /// (node, flow) -> (peer node, peer flow)
    links: HashMap<(usize, FlowId), (usize, FlowId)>,
    wire: Vec<Wire>,
    next_port: u16,
    rng: SeededRng,
    /// Drop datagrams to these addresses (a UAS that never answers).
    blackhole: Vec<SocketAddr>,
}

fn endpoint(a: SocketAddr, seed: u8) -> Endpoint {
    let config = Config {
        listeners: vec![
            Listener::new(Transport::Udp, a),
            Listener::new(Transport::Tcp, a),
        ],
        response_policy: sip_core::ResponsePolicy::Rfc3261,
        ..Config::default()
    };
    Endpoint::new(config, [seed; 32])
}

impl Net {
    fn new(config: ProxyConfig, router: Router) -> Net {
        let nodes = [PROXY, ALICE, BOB, CAROL]
            .iter()
            .enumerate()
            .map(|(i, a)| Node {
                ep: endpoint(addr(a), i as u8 + 1),
                addr: addr(a),
                events: Vec::new(),
            })
            .collect();
        Net {
            now: Instant::now(),
            nodes,
            proxy: Proxy::new(config, [9; 32]),
            router,
            links: HashMap::new(),
            wire: Vec::new(),
            next_port: 40000,
            rng: SeededRng::new([7; 32]),
            blackhole: Vec::new(),
        }
    }

    /// A proxy that routes everything to its Request-URI (numeric hosts).
    fn default_router() -> Router {
        Box::new(|inbound: &Inbound| Some(vec![ProxyTarget::new(inbound.request_uri())]))
    }

    fn node_of(&self, a: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr.ip() == a.ip())
    }

    /// Moves everything until nothing is left to move.
    fn pump(&mut self) {
        let mut buf = Vec::new();
        for _ in 0..10_000 {
            let mut moved = false;
            // events
            while let Some(ev) = self.nodes[0].ep.poll_event() {
                moved = true;
                let now = self.now;
                match self.proxy.receive(now, ev, &mut self.nodes[0].ep) {
                    Received::Route(inbound) => match (self.router)(&inbound) {
                        Some(targets) => {
                            let _ =
                                self.proxy
                                    .forward(now, inbound, targets, &mut self.nodes[0].ep);
                        }
                        None => self.proxy.reject(now, inbound, 404, &mut self.nodes[0].ep),
                    },
                    Received::NotMine(ev) => self.nodes[0].events.push(ev),
                    _ => {}
                }
            }
            for n in 1..self.nodes.len() {
                while let Some(ev) = self.nodes[n].ep.poll_event() {
                    moved = true;
                    self.nodes[n].events.push(ev);
                }
            }
            // transmits
            for n in 0..self.nodes.len() {
                while let Some(t) = self.nodes[n].ep.poll_transmit(&mut buf) {
                    moved = true;
                    self.wire.push(Wire {
                        from: t.local,
                        to: t.remote,
                        transport: t.transport,
                        bytes: buf.clone(),
                    });
                    if self.blackhole.contains(&t.remote) {
                        continue;
                    }
                    match t.flow {
                        None => {
                            if let Some(m) = self.node_of(t.remote) {
                                let now = self.now;
                                self.nodes[m]
                                    .ep
                                    .handle_datagram(now, t.remote, t.local, &buf);
                            }
                        }
                        Some(f) => {
                            if let Some(&(m, g)) = self.links.get(&(n, f)) {
                                let now = self.now;
                                self.nodes[m].ep.handle_stream(now, g, &buf);
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
                            let Some(m) = self.node_of(remote) else {
                                self.nodes[n]
                                    .ep
                                    .handle_flow_event(now, flow, FlowEvent::Failed);
                                continue;
                            };
                            self.next_port += 1;
                            let local = SocketAddr::new(self.nodes[n].addr.ip(), self.next_port);
                            let g = self.nodes[m]
                                .ep
                                .accept_flow(now, transport, remote, local)
                                .unwrap();
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
            }
            if !moved {
                return;
            }
        }
        panic!("the network did not settle");
    }

    /// Runs the clock forward by `d`, firing every deadline on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.pump();
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.ep.poll_timeout())
                .chain(self.proxy.poll_timeout())
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for n in &mut self.nodes {
                        n.ep.handle_timeout(now);
                    }
                    self.proxy.handle_timeout(now, &mut self.nodes[0].ep);
                }
                _ => break,
            }
        }
        self.now = end;
        self.pump();
    }

    fn invite(&mut self, from: usize, uri: &str, call: &str) -> OwnedMessage {
        let ua = self.nodes[from].addr;
        RequestBuilder::new(Method::Invite, uri)
            .from(&format!("<sip:alice@{ua}>"))
            .to(&format!("<{uri}>"))
            .call_id(call)
            .contact(&format!("<sip:alice@{ua}>"))
            .build(&mut self.rng)
            .unwrap()
    }

    /// The UA at `from` sends `req` to the proxy.
    fn send(&mut self, from: usize, req: &OwnedMessage, transport: Transport) -> ClientTxId {
        let now = self.now;
        let target = Target {
            transport,
            addr: addr(PROXY),
        };
        let tx = self.nodes[from].ep.send_request(now, req, target).unwrap();
        self.pump();
        tx
    }

    /// The requests node `n` received (its server transactions), in order.
    fn requests(&self, n: usize) -> Vec<(ServerTxId, OwnedMessage)> {
        self.nodes[n]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Request { tx, request, .. } => Some((*tx, request.clone())),
                _ => None,
            })
            .collect()
    }

    /// The responses node `n` got for client transaction `tx`, as status codes.
    fn codes(&self, n: usize, tx: ClientTxId) -> Vec<u16> {
        self.responses(n, tx)
            .iter()
            .filter_map(|r| r.status())
            .collect()
    }

    fn responses(&self, n: usize, tx: ClientTxId) -> Vec<OwnedMessage> {
        self.nodes[n]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Response { tx: t, response } if *t == tx => Some(response.clone()),
                _ => None,
            })
            .collect()
    }

    /// The UAS at `n` answers its `i`-th request with `code`.
    fn answer(&mut self, n: usize, i: usize, code: u16) -> OwnedMessage {
        self.answer_with(n, i, code, &[])
    }

    fn answer_with(
        &mut self,
        n: usize,
        i: usize,
        code: u16,
        headers: &[(&str, &str)],
    ) -> OwnedMessage {
        let (tx, req) = self.requests(n)[i].clone();
        let m = req.message().unwrap();
        let mut b = sip_core::ResponseBuilder::new(&m, code);
        // Section 12.1.1: a UAS copies Record-Route into responses that set up a dialog.
        let rr: Vec<&str> = m
            .view()
            .header_all(sip_core::HeaderName::RecordRoute)
            .collect();
        if (101..300).contains(&code) {
            for v in &rr {
                b = b.header("Record-Route", v);
            }
        }
        for (h, v) in headers {
            b = b.header(h, v);
        }
        let resp = b.build(&mut self.rng).unwrap();
        let now = self.now;
        self.nodes[n].ep.send_response(now, tx, &resp).unwrap();
        self.pump();
        resp
    }

    /// The requests of `method` that reached node `n` (server transactions and ACKs).
    fn received(&self, n: usize, method: &str) -> Vec<OwnedMessage> {
        self.nodes[n]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Request { request, .. } | Event::Ack { request, .. }
                    if request
                        .method()
                        .map(|m| m.as_str() == method)
                        .unwrap_or(false) =>
                {
                    Some(request.clone())
                }
                _ => None,
            })
            .collect()
    }
}

fn proxy_config() -> ProxyConfig {
    ProxyConfig::new(Some(RR))
}

#[test]
fn forwards_a_request_and_relays_its_responses() {
    // RFC 3261 16.6 and 16.7: copy, Request-URI, Max-Forwards, Record-Route, Via; the
    // response comes back without the proxy's Via.
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "fwd-1");
    let tx = net.send(1, &inv, Transport::Udp);
    let got = net.requests(2);
    assert_eq!(got.len(), 1, "Bob got the INVITE once");
    let m = got[0].1.message().unwrap();
    assert_eq!(m.max_forwards(), Some(69));
    assert_eq!(m.vias().count(), 2);
    assert_eq!(m.top_via().unwrap().host.as_str(), "127.0.0.1");
    let rr: Vec<String> = m.record_routes().map(|r| r.to_string()).collect();
    assert_eq!(rr, [format!("<{RR}>")]);
    net.answer(2, 0, 180);
    net.answer(2, 0, 200);
    assert_eq!(net.codes(1, tx), vec![180, 200]);
    let ok = &net.responses(1, tx)[1];
    let okm = ok.message().unwrap();
    assert_eq!(okm.vias().count(), 1, "the proxy's Via is gone");
    assert_eq!(
        okm.top_via().unwrap().branch(),
        inv_branch(&net, 1, tx).as_deref()
    );
    assert_eq!(okm.record_routes().count(), 1);
}

/// The branch of the UAC's own Via on its INVITE (from the wire).
fn inv_branch(net: &Net, n: usize, _tx: ClientTxId) -> Option<String> {
    let from = net.nodes[n].addr;
    net.wire
        .iter()
        .find(|w| w.from == from && w.text().starts_with("INVITE "))
        .and_then(|w| {
            let m = OwnedMessage::parse(&w.bytes).ok()?;
            let b = m.message().ok()?.top_via()?.branch()?.to_owned();
            Some(b)
        })
}

#[allow(dead_code)]
fn unused(_: Forking, _: fn(&sip_core::Message<'_>, u16, &mut SeededRng)) {
    let _ = response_to;
}
