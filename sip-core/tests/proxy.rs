//! The proxy core (RFC 3261 section 16) in a simulated network on a virtual clock: UAC and
//! UAS endpoints exchange bytes with the proxy's endpoint over UDP and TCP. Every test is
//! named after the rule it checks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::proxy::{Forking, Inbound, Proxy, ProxyConfig, ProxyTarget, Received};
use sip_core::resolve::{Answer, Record, RecordType, Srv};
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
    /// The DNS zone the test plays for every endpoint's questions (NXDOMAIN otherwise).
    dns: HashMap<(String, RecordType), Answer>,
}

fn endpoint(a: SocketAddr, seed: u8) -> Endpoint {
    let config = Config {
        listeners: vec![
            Listener::new(Transport::Udp, a),
            Listener::new(Transport::Tcp, a),
            Listener::new(Transport::Tls, SocketAddr::new(a.ip(), 5061)),
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
            dns: HashMap::new(),
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
                // DNS questions, answered from the zone (after poll_io, as drivers do).
                while let Some(q) = self.nodes[n].ep.poll_dns() {
                    moved = true;
                    let now = self.now;
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
        let tx = self.send_later(from, req, transport);
        self.pump();
        tx
    }

    /// Queues `req` at the UA without moving the network yet.
    fn send_later(&mut self, from: usize, req: &OwnedMessage, transport: Transport) -> ClientTxId {
        let now = self.now;
        let target = Target {
            transport,
            addr: addr(PROXY),
        };
        self.nodes[from].ep.send_request(now, req, target).unwrap()
    }

    /// The UA at `from` cancels its INVITE `tx` (section 9.1).
    fn cancel(&mut self, from: usize, tx: ClientTxId) -> ClientTxId {
        let now = self.now;
        let c = self.nodes[from].ep.cancel(now, tx).unwrap();
        self.pump();
        c
    }

    /// The final status codes node `n` got for `tx`.
    fn finals(&self, n: usize, tx: ClientTxId) -> Vec<u16> {
        self.codes(n, tx)
            .into_iter()
            .filter(|c| *c >= 200)
            .collect()
    }

    /// The UAS at `n` answers every CANCEL it got with 200 and the INVITE with 487 (the
    /// UAS core of section 9.2).
    fn uas_honours_cancel(&mut self, n: usize) {
        let cancels: Vec<(ServerTxId, OwnedMessage, Option<ServerTxId>)> = self.nodes[n]
            .events
            .drain(..)
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|e| match e {
                Event::Request {
                    tx,
                    request,
                    cancels,
                    ..
                } if request.method() == Some(Method::Cancel) => Some((tx, request, cancels)),
                other => {
                    self.nodes[n].events.push(other);
                    None
                }
            })
            .collect();
        let now = self.now;
        for (tx, cancel, invite) in cancels {
            let ok = response_to(&cancel.message().unwrap(), 200, &mut self.rng).unwrap();
            let _ = self.nodes[n].ep.send_response(now, tx, &ok);
            if let Some(inv) = invite {
                if let Some(req) = self.nodes[n].ep.server_request(inv).cloned() {
                    let r = response_to(&req.message().unwrap(), 487, &mut self.rng).unwrap();
                    let _ = self.nodes[n].ep.send_response(now, inv, &r);
                }
            }
        }
        self.pump();
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

/// Routes to Bob and Carol at once.
fn fork_router() -> Router {
    Box::new(|_: &Inbound| {
        Some(vec![
            ProxyTarget::new("sip:bob@127.0.0.3:5060"),
            ProxyTarget::new("sip:carol@127.0.0.4:5060"),
        ])
    })
}

fn with_max_forwards(req: &OwnedMessage, hops: &str) -> OwnedMessage {
    let mut e = req.edit();
    e.set("Max-Forwards", hops).unwrap();
    e.finish().unwrap()
}

fn with_header(req: &OwnedMessage, name: &str, value: &str) -> OwnedMessage {
    let mut e = req.edit();
    e.append(name, value).unwrap();
    e.finish().unwrap()
}

#[test]
fn max_forwards_zero_is_answered_483() {
    // RFC 3261 16.3 step 3
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = with_max_forwards(&net.invite(1, "sip:bob@127.0.0.3:5060", "mf-0"), "0");
    let tx = net.send(1, &inv, Transport::Udp);
    assert_eq!(net.finals(1, tx), vec![483]);
    assert!(net.requests(2).is_empty(), "nothing forwarded");
}

#[test]
fn options_at_max_forwards_zero_is_answered_by_the_proxy() {
    // RFC 3261 16.3 step 3 (and 11.2): the proxy may answer OPTIONS itself.
    let mut net = Net::new(proxy_config(), Net::default_router());
    let opt = RequestBuilder::new(Method::Options, "sip:bob@127.0.0.3:5060")
        .from("<sip:alice@127.0.0.2>")
        .to("<sip:bob@127.0.0.3>")
        .max_forwards(0)
        .build(&mut net.rng)
        .unwrap();
    let tx = net.send(1, &opt, Transport::Udp);
    let r = net.responses(1, tx);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status(), Some(200));
    assert!(r[0].view().header(sip_core::HeaderName::Allow).is_some());
    assert!(net.requests(2).is_empty());
}

#[test]
fn unsupported_proxy_require_is_answered_420() {
    // RFC 3261 16.3 step 5
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = with_header(
        &net.invite(1, "sip:bob@127.0.0.3:5060", "pr-1"),
        "Proxy-Require",
        "foo",
    );
    let tx = net.send(1, &inv, Transport::Udp);
    let r = net.responses(1, tx);
    assert_eq!(r.last().and_then(|r| r.status()), Some(420));
    assert_eq!(
        r.last()
            .unwrap()
            .view()
            .header(sip_core::HeaderName::Unsupported),
        Some("foo")
    );
    assert!(net.requests(2).is_empty());
}

#[test]
fn unknown_uri_scheme_is_answered_416() {
    // RFC 3261 16.3 step 2
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "scheme-1");
    let mut e = inv.edit();
    e.set_request_uri("mailto:bob@example.com").unwrap();
    let inv = e.finish().unwrap();
    let tx = net.send(1, &inv, Transport::Udp);
    assert_eq!(net.finals(1, tx), vec![416]);
}

#[test]
fn fork_relays_the_2xx_and_cancels_the_ringing_branch() {
    // RFC 3261 16.7 step 5 (2xx forwarded at once) and step 10 (the others cancelled)
    let mut net = Net::new(proxy_config(), fork_router());
    let inv = net.invite(1, "sip:bob@example.com", "fork-1");
    let tx = net.send(1, &inv, Transport::Udp);
    assert_eq!(net.requests(2).len(), 1);
    assert_eq!(net.requests(3).len(), 1);
    net.answer(3, 0, 180);
    net.answer(2, 0, 200);
    assert_eq!(net.codes(1, tx), vec![180, 200]);
    assert_eq!(
        net.received(3, "CANCEL").len(),
        1,
        "Carol's branch is cancelled"
    );
    net.uas_honours_cancel(3);
    // Carol's 487 stays at the proxy: Alice has her 2xx.
    assert_eq!(net.finals(1, tx), vec![200]);
    assert_eq!(net.proxy.stats().cancels, 1);
}

#[test]
fn fork_with_a_486_and_a_200_relays_only_the_200() {
    // RFC 3261 16.7 step 6: the 486 is kept as a candidate; the 2xx goes up at once
    let mut net = Net::new(proxy_config(), fork_router());
    let inv = net.invite(1, "sip:bob@example.com", "fork-2");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(2, 0, 486);
    assert!(
        net.finals(1, tx).is_empty(),
        "Carol's branch is still pending"
    );
    net.answer(3, 0, 200);
    assert_eq!(net.finals(1, tx), vec![200]);
    assert!(
        net.received(2, "CANCEL").is_empty(),
        "Bob's branch was already done"
    );
    // the proxy's client transaction sent the ACK for the 486 (section 17.1.1.3)
    assert_eq!(
        net.received(2, "ACK").len(),
        0,
        "absorbed by Bob's transaction"
    );
}

#[test]
fn six_xx_cancels_the_other_branches_and_is_forwarded() {
    // RFC 3261 16.7 step 5 (6xx: cancel the rest, no new branches) and step 6
    let mut net = Net::new(proxy_config(), fork_router());
    let inv = net.invite(1, "sip:bob@example.com", "six-1");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(3, 0, 180);
    net.answer(2, 0, 603);
    assert_eq!(net.received(3, "CANCEL").len(), 1);
    assert!(
        net.finals(1, tx).is_empty(),
        "the 6xx waits for the cancelled branch"
    );
    net.uas_honours_cancel(3);
    assert_eq!(net.finals(1, tx), vec![603], "the 6xx beats the 487");
}

#[test]
fn cancel_reaches_every_pending_branch() {
    // RFC 3261 16.10
    let mut net = Net::new(proxy_config(), fork_router());
    let inv = net.invite(1, "sip:bob@example.com", "cancel-1");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(2, 0, 180);
    net.answer(3, 0, 183);
    let ctx = net.cancel(1, tx);
    assert_eq!(
        net.finals(1, ctx),
        vec![200],
        "the proxy answers the CANCEL"
    );
    assert_eq!(net.received(2, "CANCEL").len(), 1);
    assert_eq!(net.received(3, "CANCEL").len(), 1);
    net.uas_honours_cancel(2);
    assert!(net.finals(1, tx).is_empty());
    net.uas_honours_cancel(3);
    assert_eq!(net.finals(1, tx), vec![487]);
}

#[test]
fn cancel_matching_no_transaction_is_answered_481() {
    // RFC 3261 9.2 (a stateful proxy has a context for every INVITE it forwards, 16.10)
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "cancel-2");
    let m = inv.message().unwrap();
    let cancel = RequestBuilder::new(Method::Cancel, "sip:bob@127.0.0.3:5060")
        .from(m.view().header(sip_core::HeaderName::From).unwrap())
        .to("<sip:bob@127.0.0.3:5060>")
        .call_id("cancel-2")
        .cseq(1)
        .build(&mut net.rng)
        .unwrap();
    let tx = net.send(1, &cancel, Transport::Udp);
    assert_eq!(net.finals(1, tx), vec![481]);
}

#[test]
fn cancel_crossing_a_200_still_relays_the_200() {
    // RFC 3261 16.10 and 16.7 step 5: a 2xx that crosses the CANCEL is forwarded
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "cross-1");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(2, 0, 180);
    // Bob's 200 and Alice's CANCEL are on the wire at the same time.
    let (btx, breq) = net.requests(2)[0].clone();
    let ok = response_to(&breq.message().unwrap(), 200, &mut net.rng).unwrap();
    let now = net.now;
    net.nodes[2].ep.send_response(now, btx, &ok).unwrap();
    let ctx = net.nodes[1].ep.cancel(now, tx).unwrap();
    net.pump();
    assert_eq!(net.finals(1, ctx), vec![200]);
    assert_eq!(net.finals(1, tx), vec![200], "the 200 reaches Alice");
}

fn short_timers(mut net: Net) -> Net {
    // The proxy's timer C shorter than the UAs' own (181 s), so that theirs stay out of
    // the way.
    let mut config = net.nodes[0].ep.config().clone();
    config.timers.c = Duration::from_secs(60);
    net.nodes[0].ep = Endpoint::new(config, [1; 32]);
    net
}

#[test]
fn timer_c_cancels_a_ringing_branch_and_its_487_goes_upstream() {
    // RFC 3261 16.8 (timer C fires: CANCEL) and 16.6 step 11
    let mut net = short_timers(Net::new(proxy_config(), Net::default_router()));
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "timer-c-1");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(2, 0, 180);
    net.advance(Duration::from_secs(59));
    assert!(net.received(2, "CANCEL").is_empty());
    net.advance(Duration::from_secs(2));
    assert_eq!(net.received(2, "CANCEL").len(), 1, "timer C sent a CANCEL");
    assert!(net.finals(1, tx).is_empty());
    net.uas_honours_cancel(2);
    assert_eq!(net.finals(1, tx), vec![487]);
    assert!(
        net.nodes[0].events.is_empty(),
        "the events of the CANCEL's transaction are the proxy's"
    );
}

#[test]
fn timer_c_without_a_final_response_ends_the_branch_as_408() {
    // RFC 3261 16.8: no final response after the CANCEL: as if 408
    let mut net = short_timers(Net::new(proxy_config(), Net::default_router()));
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "timer-c-2");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(2, 0, 180);
    net.advance(Duration::from_secs(61));
    assert_eq!(net.received(2, "CANCEL").len(), 1);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.finals(1, tx), vec![408]);
}

#[test]
fn unanswered_branch_times_out_as_408() {
    // RFC 3261 16.8 (timer B) and 16.7 step 6 (408 when no final response)
    let mut net = Net::new(proxy_config(), Net::default_router());
    net.blackhole.push(addr(BOB));
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "timeout-1");
    let tx = net.send(1, &inv, Transport::Udp);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.finals(1, tx), vec![408]);
}

#[test]
fn transport_error_on_a_branch_counts_as_503_and_goes_up_as_500() {
    // RFC 3261 16.9 (transport error = 503) and 16.7 step 6 (503 becomes 500)
    let router: Router = Box::new(|_: &Inbound| {
        // nobody listens at 127.0.0.9: the connection fails
        Some(vec![ProxyTarget::new(
            "sip:bob@127.0.0.9:5060;transport=tcp",
        )])
    });
    let mut net = Net::new(proxy_config(), router);
    let inv = net.invite(1, "sip:bob@example.com", "tperr-1");
    let tx = net.send(1, &inv, Transport::Udp);
    assert_eq!(net.finals(1, tx), vec![500]);
}

#[test]
fn a_503_from_the_only_branch_is_forwarded_as_500() {
    // RFC 3261 16.7 step 6
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "503-1");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(2, 0, 503);
    assert_eq!(net.finals(1, tx), vec![500]);
}

#[test]
fn target_name_that_does_not_resolve_fails_as_a_transport_error() {
    // RFC 3261 16.6 step 7 with RFC 3263 section 4.3 (NXDOMAIN: as a transport error)
    let router: Router =
        Box::new(|_: &Inbound| Some(vec![ProxyTarget::new("sip:bob@example.com")]));
    let mut net = Net::new(proxy_config(), router);
    let inv = net.invite(1, "sip:bob@example.com", "noroute-1");
    let tx = net.send(1, &inv, Transport::Udp);
    assert_eq!(net.finals(1, tx), vec![500]);
    // (the branch went out as a NextHop::Uri; its lookup found nothing)
    assert_eq!(net.proxy.stats().forwarded, 1);
    assert_eq!(net.nodes[0].ep.stats().dns_failures, 1);
    assert!(net.requests(2).is_empty() && net.requests(3).is_empty());
}

#[test]
fn challenges_of_every_branch_are_aggregated() {
    // RFC 3261 16.7 step 7
    let mut net = Net::new(proxy_config(), fork_router());
    let inv = net.invite(1, "sip:bob@example.com", "auth-1");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer_with(
        2,
        0,
        401,
        &[("WWW-Authenticate", "Digest realm=\"bob\", nonce=\"1\"")],
    );
    net.answer_with(
        3,
        0,
        407,
        &[("Proxy-Authenticate", "Digest realm=\"carol\", nonce=\"2\"")],
    );
    let r = net.responses(1, tx);
    assert_eq!(r.len(), 1);
    let v = r[0].view();
    assert!(matches!(r[0].status(), Some(401 | 407)));
    let www: Vec<&str> = v
        .header_all(sip_core::HeaderName::WwwAuthenticate)
        .collect();
    let prx: Vec<&str> = v
        .header_all(sip_core::HeaderName::ProxyAuthenticate)
        .collect();
    assert_eq!(www, ["Digest realm=\"bob\", nonce=\"1\""]);
    assert_eq!(prx, ["Digest realm=\"carol\", nonce=\"2\""]);
    assert_eq!(r[0].message().unwrap().vias().count(), 1);
}

#[test]
fn loop_is_answered_482() {
    // RFC 3261 16.3 step 4: the same request back through this proxy
    let router: Router = Box::new(|i: &Inbound| {
        Some(vec![
            ProxyTarget::new(i.request_uri()).next_hop(Target::udp(addr(PROXY)))
        ])
    });
    let mut net = Net::new(proxy_config(), router);
    let inv = net.invite(1, "sip:bob@example.com", "loop-1");
    let tx = net.send(1, &inv, Transport::Udp);
    assert_eq!(net.finals(1, tx), vec![482]);
    assert_eq!(net.proxy.stats().loops, 1);
}

#[test]
fn spiral_with_a_changed_request_uri_is_not_a_loop() {
    // RFC 3261 16.3 step 4: a different Request-URI makes a different branch hash
    let router: Router = Box::new(|i: &Inbound| {
        if i.request_uri() == "sip:bob@example.com" {
            // e.g. an alias resolved in a first pass, the request sent back to ourselves
            Some(vec![
                ProxyTarget::new("sip:bob@127.0.0.3:5060").next_hop(Target::udp(addr(PROXY)))
            ])
        } else {
            Some(vec![ProxyTarget::new(i.request_uri())])
        }
    });
    let mut net = Net::new(proxy_config(), router);
    let inv = net.invite(1, "sip:bob@example.com", "spiral-1");
    let tx = net.send(1, &inv, Transport::Udp);
    let got = net.requests(2);
    assert_eq!(got.len(), 1, "Bob got the spiralled request");
    let m = got[0].1.message().unwrap();
    assert_eq!(m.vias().count(), 3, "two passes through the proxy");
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(net.proxy.stats().loops, 0);
    net.answer(2, 0, 200);
    assert_eq!(net.finals(1, tx), vec![200]);
}

#[test]
fn strict_router_request_uri_is_replaced_by_the_last_route() {
    // RFC 3261 16.4: our Record-Route URI in the Request-URI
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "strict-1");
    let mut e = inv.edit();
    e.set_request_uri(RR).unwrap();
    e.append("Route", "<sip:bob@127.0.0.3:5060>").unwrap();
    let inv = e.finish().unwrap();
    net.send(1, &inv, Transport::Udp);
    let got = net.requests(2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.request_uri(), Some("sip:bob@127.0.0.3:5060"));
    assert_eq!(got[0].1.message().unwrap().routes().count(), 0);
}

#[test]
fn request_uri_naming_a_served_domain_is_not_taken_for_a_strict_router() {
    // RFC 3261 16.4: only a URI this proxy put in a Record-Route is replaced by the last
    // Route; a REGISTER for the domain sent through us as outbound proxy (8.1.2) keeps
    // its Request-URI (its digest `uri` must still match).
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = std::rc::Rc::clone(&seen);
    let router: Router = Box::new(move |i: &Inbound| {
        log.borrow_mut().push(i.request_uri().to_owned());
        Some(vec![
            ProxyTarget::new(i.request_uri()).next_hop(Target::udp(addr("127.0.0.3:5060")))
        ])
    });
    let mut config = proxy_config();
    config.own = vec!["example.test".to_owned()];
    let mut net = Net::new(config, router);
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "domain-1");
    let mut e = inv.edit();
    e.set_request_uri("sip:example.test").unwrap();
    e.append("Route", &format!("<{RR}>")).unwrap();
    let inv = e.finish().unwrap();
    net.send(1, &inv, Transport::Udp);
    assert_eq!(*seen.borrow(), vec!["sip:example.test".to_owned()]);
    let got = net.requests(2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.request_uri(), Some("sip:example.test"));
    assert_eq!(got[0].1.message().unwrap().routes().count(), 0);
}

#[test]
fn own_top_route_is_removed() {
    // RFC 3261 16.4
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = with_header(
        &net.invite(1, "sip:bob@127.0.0.3:5060", "route-1"),
        "Route",
        &format!("<{RR}>"),
    );
    net.send(1, &inv, Transport::Udp);
    let got = net.requests(2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.message().unwrap().routes().count(), 0);
}

#[test]
fn remaining_route_is_followed_with_the_request_uri_unchanged() {
    // RFC 3261 16.4 and 16.6 steps 6-7: an in-dialog request with a Route beyond us
    let never: Router = Box::new(|_: &Inbound| panic!("not routed by the application"));
    let mut net = Net::new(proxy_config(), never);
    let inv = with_header(
        &net.invite(1, "sip:bob@127.0.0.3:5060", "route-2"),
        "Route",
        &format!("<{RR}>, <sip:127.0.0.4:5060;lr>"),
    );
    net.send(1, &inv, Transport::Udp);
    let got = net.requests(3);
    assert_eq!(got.len(), 1, "Carol, the next Route, got it");
    assert_eq!(got[0].1.request_uri(), Some("sip:bob@127.0.0.3:5060"));
    let routes: Vec<String> = got[0]
        .1
        .message()
        .unwrap()
        .routes()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(routes, ["<sip:127.0.0.4:5060;lr>"]);
}

#[test]
fn sequential_forking_tries_the_highest_q_first() {
    // RFC 3261 16.6 (q-values, sequential search)
    let router: Router = Box::new(|_: &Inbound| {
        Some(vec![
            ProxyTarget::new("sip:bob@127.0.0.3:5060").q(500),
            ProxyTarget::new("sip:carol@127.0.0.4:5060").q(1000),
        ])
    });
    let mut config = proxy_config();
    config.forking = Forking::Sequential;
    let mut net = Net::new(config, router);
    let inv = net.invite(1, "sip:bob@example.com", "seq-1");
    let tx = net.send(1, &inv, Transport::Udp);
    assert_eq!(net.requests(3).len(), 1, "Carol (q=1.0) first");
    assert!(net.requests(2).is_empty(), "Bob waits");
    net.answer(3, 0, 486);
    assert_eq!(net.requests(2).len(), 1, "then Bob");
    assert!(net.finals(1, tx).is_empty());
    net.answer(2, 0, 200);
    assert_eq!(net.finals(1, tx), vec![200]);
}

#[test]
fn ack_for_a_2xx_is_forwarded_statelessly() {
    // RFC 3261 16.11 (and 16.4: our Route removed; 16.6 step 3: Max-Forwards)
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "ack-1");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(2, 0, 200);
    let ok = net.responses(1, tx).pop().unwrap();
    let to = ok
        .message()
        .unwrap()
        .view()
        .header(sip_core::HeaderName::To)
        .unwrap()
        .to_owned();
    let ack = RequestBuilder::new(Method::Ack, "sip:bob@127.0.0.3:5060")
        .from(
            inv.message()
                .unwrap()
                .view()
                .header(sip_core::HeaderName::From)
                .unwrap(),
        )
        .to(&to)
        .call_id("ack-1")
        .cseq(1)
        .header("Route", &format!("<{RR}>"))
        .build(&mut net.rng)
        .unwrap();
    let now = net.now;
    net.nodes[1]
        .ep
        .send_ack(now, &ack, Target::udp(addr(PROXY)))
        .unwrap();
    net.pump();
    let acks = net.received(2, "ACK");
    assert_eq!(acks.len(), 1);
    let m = acks[0].message().unwrap();
    assert_eq!(m.routes().count(), 0);
    assert_eq!(m.vias().count(), 2);
    assert_eq!(m.max_forwards(), Some(69));
    assert_eq!(net.proxy.stats().acks, 1);
    assert_eq!(
        net.proxy.contexts(),
        1,
        "the ACK needed no context of its own"
    );
}

#[test]
fn udp_in_tcp_out_records_two_routes_and_answers_back_over_udp() {
    // RFC 5658 section 4 (double Record-Route), RFC 3261 18.2.2 and RFC 3581 (responses
    // back to the source port over the inbound transport)
    let router: Router = Box::new(|_: &Inbound| {
        Some(vec![ProxyTarget::new(
            "sip:bob@127.0.0.3:5060;transport=tcp",
        )])
    });
    let mut net = Net::new(proxy_config(), router);
    let inv = net.invite(1, "sip:bob@example.com", "xport-1");
    let tx = net.send(1, &inv, Transport::Udp);
    let got = net.requests(2);
    assert_eq!(got.len(), 1);
    let m = got[0].1.message().unwrap();
    let rr: Vec<String> = m.record_routes().map(|r| r.to_string()).collect();
    assert_eq!(
        rr,
        [
            "<sip:127.0.0.1:5060;transport=tcp;lr>",
            "<sip:127.0.0.1:5060;lr>"
        ],
        "the entry facing Bob (TCP) on top, the one facing Alice (UDP) below"
    );
    assert_eq!(m.top_via().unwrap().transport, "TCP");
    net.answer(2, 0, 200);
    assert_eq!(net.finals(1, tx), vec![200]);
    let to_alice = net
        .wire
        .iter()
        .filter(|w| w.to == addr(ALICE) && w.text().starts_with("SIP/2.0 200"))
        .count();
    assert_eq!(to_alice, 1);
    assert!(net
        .wire
        .iter()
        .filter(|w| w.to == addr(ALICE))
        .all(|w| w.transport == Transport::Udp));
}

#[test]
fn tcp_in_udp_out_relays_the_response_on_the_inbound_connection() {
    // RFC 3261 18.2.2: the response goes back on the connection the request came in on
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "xport-2");
    let tx = net.send(1, &inv, Transport::Tcp);
    assert_eq!(net.requests(2).len(), 1);
    net.answer(2, 0, 200);
    assert_eq!(net.finals(1, tx), vec![200]);
    assert!(net
        .wire
        .iter()
        .filter(|w| w.to.ip() == addr(ALICE).ip() && w.text().starts_with("SIP/2.0"))
        .all(|w| w.transport == Transport::Tcp));
}

#[test]
fn context_table_full_answers_503_with_retry_after() {
    // RFC 3261 21.5.4 (overload) with a bounded context table
    let mut config = proxy_config();
    config.max_contexts = 1;
    let mut net = Net::new(config, Net::default_router());
    let first = net.invite(1, "sip:bob@127.0.0.3:5060", "full-1");
    let t1 = net.send(1, &first, Transport::Udp);
    let second = net.invite(1, "sip:bob@127.0.0.3:5060", "full-2");
    let t2 = net.send(1, &second, Transport::Udp);
    assert!(net.finals(1, t1).is_empty());
    let r = net.responses(1, t2);
    assert_eq!(r.last().and_then(|r| r.status()), Some(503));
    assert_eq!(
        r.last()
            .unwrap()
            .view()
            .header(sip_core::HeaderName::RetryAfter),
        Some("5")
    );
    assert_eq!(net.proxy.contexts(), 1);
    assert_eq!(net.proxy.stats().overloaded, 1);
}

#[test]
fn contexts_end_when_their_transactions_are_over() {
    // RFC 3261 16.2 / 16.7: no state outlives the transactions
    let mut net = Net::new(proxy_config(), fork_router());
    let inv = net.invite(1, "sip:bob@example.com", "end-1");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(3, 0, 180);
    net.answer(2, 0, 200);
    net.uas_honours_cancel(3);
    assert_eq!(net.finals(1, tx), vec![200]);
    assert_eq!(net.proxy.contexts(), 1);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.proxy.contexts(), 0);
    assert_eq!(net.nodes[0].ep.transactions(), 0);
    assert_eq!(net.proxy.poll_timeout(), None);
}

#[test]
fn path_of_a_target_becomes_its_route() {
    // RFC 3327 section 5.3: the Path of a registered contact is the Route of the request
    let router: Router = Box::new(|_: &Inbound| {
        Some(vec![ProxyTarget::new("sip:bob@192.0.2.99:5060")
            .path(vec!["<sip:127.0.0.4:5060;lr>".to_owned()])])
    });
    let mut net = Net::new(proxy_config(), router);
    let inv = net.invite(1, "sip:bob@example.com", "path-1");
    net.send(1, &inv, Transport::Udp);
    let got = net.requests(3);
    assert_eq!(got.len(), 1, "sent to the Path's edge proxy (Carol)");
    assert_eq!(got[0].1.request_uri(), Some("sip:bob@192.0.2.99:5060"));
    let routes: Vec<String> = got[0]
        .1
        .message()
        .unwrap()
        .routes()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(routes, ["<sip:127.0.0.4:5060;lr>"]);
}

#[test]
fn retransmitted_invite_is_not_forwarded_twice() {
    // RFC 3261 16.6 step 10 / 17.2.3: no amplification, retransmissions are absorbed
    let mut net = Net::new(proxy_config(), Net::default_router());
    net.blackhole.push(addr(BOB));
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "retx-1");
    net.send(1, &inv, Transport::Udp);
    net.advance(Duration::from_secs(4));
    assert_eq!(net.proxy.stats().forwarded, 1);
    let alice_invites = net
        .wire
        .iter()
        .filter(|w| w.from == addr(ALICE) && w.text().starts_with("INVITE"))
        .count();
    let proxy_invites = net
        .wire
        .iter()
        .filter(|w| w.from == addr(PROXY) && w.text().starts_with("INVITE"))
        .count();
    assert!(alice_invites >= 1);
    // the proxy's own client transaction retransmits on its timer A only: 500 ms, 1 s, 2 s
    assert!(proxy_invites <= 4, "{proxy_invites}");
}

#[test]
fn strict_router_next_hop_gets_the_request_uri_as_its_last_route() {
    // RFC 3261 16.6 step 6: the top Route has no lr
    let never: Router = Box::new(|_: &Inbound| panic!("not routed by the application"));
    let mut net = Net::new(proxy_config(), never);
    let inv = with_header(
        &net.invite(1, "sip:bob@127.0.0.3:5060", "strict-2"),
        "Route",
        &format!("<{RR}>, <sip:127.0.0.4:5060>"),
    );
    net.send(1, &inv, Transport::Udp);
    let got = net.requests(3);
    assert_eq!(got.len(), 1, "the strict router (Carol) got it");
    assert_eq!(got[0].1.request_uri(), Some("sip:127.0.0.4:5060"));
    let routes: Vec<String> = got[0]
        .1
        .message()
        .unwrap()
        .routes()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(routes, ["<sip:bob@127.0.0.3:5060>"]);
}

#[test]
fn default_transaction_user_routes_to_the_request_uri() {
    // RFC 3261 16.5: a target set of the Request-URI alone (the proxy as a TransactionUser)
    use sip_core::TransactionUser;
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "tu-1");
    let now = net.now;
    net.nodes[1]
        .ep
        .send_request(now, &inv, Target::udp(addr(PROXY)))
        .unwrap();
    let mut buf = Vec::new();
    let t = net.nodes[1].ep.poll_transmit(&mut buf).unwrap();
    net.nodes[0]
        .ep
        .handle_datagram(now, t.remote, t.local, &buf);
    let mut proxy = Proxy::new(proxy_config(), [3; 32]);
    while let Some(ev) = net.nodes[0].ep.poll_event() {
        proxy.handle_event(now, ev, &mut net.nodes[0].ep);
    }
    let t = net.nodes[0].ep.poll_transmit(&mut buf).unwrap();
    assert_eq!(t.remote, addr(BOB));
    assert!(buf.starts_with(b"INVITE sip:bob@127.0.0.3:5060 SIP/2.0"));
    assert_eq!(proxy.contexts(), 1);
}

#[test]
fn request_for_the_proxy_itself_goes_to_the_application() {
    // RFC 3261 16.5: a Request-URI the proxy is responsible for is the application's (a
    // registrar or location service); it can take the request back as an Event
    let mut got = None;
    let mut net = Net::new(proxy_config(), Net::default_router());
    let reg = RequestBuilder::new(Method::Register, "sip:127.0.0.1:5060")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:alice@127.0.0.1>")
        .contact("<sip:alice@127.0.0.2:5060>")
        .build(&mut net.rng)
        .unwrap();
    net.router = Box::new(|_: &Inbound| None);
    let now = net.now;
    net.nodes[1]
        .ep
        .send_request(now, &reg, Target::udp(addr(PROXY)))
        .unwrap();
    let mut buf = Vec::new();
    let t = net.nodes[1].ep.poll_transmit(&mut buf).unwrap();
    net.nodes[0]
        .ep
        .handle_datagram(now, t.remote, t.local, &buf);
    while let Some(ev) = net.nodes[0].ep.poll_event() {
        if let Received::Route(inbound) = net.proxy.receive(now, ev, &mut net.nodes[0].ep) {
            assert_eq!(inbound.method(), Method::Register);
            assert_eq!(inbound.request_uri(), "sip:127.0.0.1:5060");
            got = Some(inbound.into_event());
        }
    }
    assert!(
        matches!(got, Some(Event::Request { request, .. }) if request.method() == Some(Method::Register))
    );
}

#[test]
fn retransmitted_2xx_is_relayed_again() {
    // RFC 3261 16.7 step 5 with RFC 6026 (the 2xx retransmissions pass the Accepted states)
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "retx-2xx");
    let tx = net.send(1, &inv, Transport::Udp);
    let ok = net.answer(2, 0, 200);
    let (btx, _) = net.requests(2)[0].clone();
    let now = net.now;
    // Bob's UAS core retransmits its 2xx (section 13.3.1.4)
    net.nodes[2].ep.send_response(now, btx, &ok).unwrap();
    net.pump();
    assert_eq!(net.finals(1, tx), vec![200, 200]);
}

#[test]
fn every_2xx_of_a_fork_is_relayed() {
    // RFC 3261 16.7 step 5: any 2xx is forwarded, also after the first one
    let mut net = Net::new(proxy_config(), fork_router());
    let inv = net.invite(1, "sip:bob@example.com", "two-2xx");
    let tx = net.send(1, &inv, Transport::Udp);
    let now = net.now;
    for n in [2, 3] {
        let (stx, req) = net.requests(n)[0].clone();
        let ok = response_to(&req.message().unwrap(), 200, &mut net.rng).unwrap();
        net.nodes[n].ep.send_response(now, stx, &ok).unwrap();
    }
    net.pump();
    let finals = net.responses(1, tx);
    assert_eq!(finals.len(), 2, "both 2xx reach Alice");
    let tags: Vec<String> = finals
        .iter()
        .map(|r| r.message().unwrap().to().unwrap().tag().unwrap().to_owned())
        .collect();
    assert_ne!(tags[0], tags[1], "two dialogs");
}

#[test]
fn context_of_a_failed_call_ends_with_its_final_response() {
    // RFC 3261 16.7: after a non-2xx final response nothing more comes to the context (the
    // transactions absorb retransmissions and the ACK), so it ends at once
    let mut net = Net::new(proxy_config(), fork_router());
    let inv = net.invite(1, "sip:bob@example.com", "end-2");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(2, 0, 180);
    net.answer(3, 0, 486);
    assert_eq!(net.proxy.contexts(), 1, "Bob still rings");
    let ctx = net.cancel(1, tx);
    assert_eq!(net.finals(1, ctx), vec![200]);
    net.uas_honours_cancel(2);
    // 16.7 step 6: the 486 and the 487 are of one class; the first one received is kept
    assert_eq!(net.finals(1, tx), vec![486]);
    assert_eq!(
        net.proxy.contexts(),
        0,
        "ended with the 487, its CANCEL answered"
    );
    assert!(
        net.nodes[0].events.is_empty(),
        "no event left to the application"
    );
}

#[test]
fn spiral_through_a_route_set_naming_us_twice_is_not_a_loop() {
    // RFC 3261 16.3 step 4 and 16.6 step 8: the Route set is part of what the branch hashes
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = with_header(
        &net.invite(1, "sip:bob@127.0.0.3:5060", "spiral-2"),
        "Route",
        &format!("<{RR}>, <sip:127.0.0.1:5060;lr;pass=2>"),
    );
    let tx = net.send(1, &inv, Transport::Udp);
    let got = net.requests(2);
    assert_eq!(got.len(), 1, "Bob got it after two passes");
    assert_eq!(got[0].1.message().unwrap().vias().count(), 3);
    assert_eq!(net.proxy.stats().loops, 0);
    net.answer(2, 0, 486);
    assert_eq!(net.finals(1, tx), vec![486]);
}

// ---- stateless forwarding: RFC 3261 section 16.11 ----

fn stateless_config() -> ProxyConfig {
    ProxyConfig {
        stateless: true,
        ..ProxyConfig::default()
    }
}

/// The top Via branches of the requests of `method` the proxy sent, in order.
fn proxy_branches(net: &Net, method: &str) -> Vec<String> {
    net.wire
        .iter()
        .filter(|w| w.from == addr(PROXY) && w.text().starts_with(&format!("{method} ")))
        .filter_map(|w| {
            let m = OwnedMessage::parse(&w.bytes).ok()?;
            let b = m.message().ok()?.top_via()?.branch()?.to_owned();
            Some(b)
        })
        .collect()
}

#[test]
fn stateless_proxy_relays_a_request_and_its_responses_without_state() {
    // RFC 3261 16.11
    let mut net = Net::new(stateless_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "sl-1");
    let tx = net.send(1, &inv, Transport::Udp);
    assert_eq!(net.requests(2).len(), 1, "Bob got the INVITE");
    assert_eq!(net.proxy.contexts(), 0, "no response context");
    assert_eq!(
        net.nodes[0].ep.transactions(),
        0,
        "no transaction left at the proxy"
    );
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
    assert_eq!(net.proxy.contexts(), 0);
    assert_eq!(net.nodes[0].ep.transactions(), 0);
    assert_eq!(net.proxy.stats().responses, 2);
}

#[test]
fn stateless_retransmission_gets_the_same_branch_downstream() {
    // RFC 3261 16.11: the branch is computed from the request, not drawn at random
    let mut net = Net::new(stateless_config(), Net::default_router());
    net.blackhole.push(addr(BOB));
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "sl-2");
    net.send(1, &inv, Transport::Udp);
    net.advance(Duration::from_millis(1600));
    let branches = proxy_branches(&net, "INVITE");
    assert!(
        branches.len() >= 2,
        "Alice's retransmissions went on: {branches:?}"
    );
    assert!(branches.iter().all(|b| *b == branches[0]), "{branches:?}");
    assert!(branches[0].starts_with("z9hG4bK"));
    assert_eq!(net.proxy.stats().forwarded, branches.len() as u64);
    assert_eq!(net.nodes[0].ep.transactions(), 0);
}

#[test]
fn stateless_cancel_gets_the_branch_of_its_invite() {
    // RFC 3261 16.11 (and 9.1: the CANCEL matches the INVITE's transaction downstream)
    let mut net = Net::new(stateless_config(), Net::default_router());
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "sl-3");
    let tx = net.send(1, &inv, Transport::Udp);
    net.answer(2, 0, 180);
    let ctx = net.cancel(1, tx);
    assert_eq!(
        proxy_branches(&net, "CANCEL"),
        proxy_branches(&net, "INVITE")
    );
    let matched = net.nodes[2].events.iter().any(|e| {
        matches!(e, Event::Request { request, cancels: Some(_), .. }
            if request.method() == Some(Method::Cancel))
    });
    assert!(matched, "Bob matched the CANCEL to his INVITE transaction");
    net.uas_honours_cancel(2);
    assert_eq!(net.finals(1, ctx), vec![200], "Bob's 200 to the CANCEL");
    assert_eq!(net.finals(1, tx), vec![487], "Bob's 487 to the INVITE");
    // Alice's ACK for the 487 carries the INVITE's branch, so it matches too.
    assert_eq!(proxy_branches(&net, "ACK"), proxy_branches(&net, "INVITE"));
    assert_eq!(net.proxy.contexts(), 0);
}

#[test]
fn stateless_proxy_does_not_relay_a_response_with_a_branch_it_did_not_make() {
    // RFC 3261 16.11 and 26.1.5: a forged response does not make the proxy a reflector
    let mut net = Net::new(stateless_config(), Net::default_router());
    let forged = b"SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK0123456789abcdef.s0123456789abcdef\r\n\
        Via: SIP/2.0/UDP 127.0.0.4:5060;branch=z9hG4bKvictim\r\n\
        From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
        Call-ID: forged\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let now = net.now;
    net.nodes[0]
        .ep
        .handle_datagram(now, addr(PROXY), addr(BOB), forged);
    net.pump();
    assert!(
        !net.wire.iter().any(|w| w.from == addr(PROXY)),
        "nothing sent"
    );
    assert!(net.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::StrayResponse { .. })));
    assert_eq!(net.proxy.stats().responses, 0);
    // A branch the proxy did make, replayed above Alice's Via with `received` changed to
    // another address (the victim's), does not verify either: the MAC covers the next Via.
    let inv = net.invite(1, "sip:bob@127.0.0.3:5060", "sl-4");
    let tx = net.send(1, &inv, Transport::Udp);
    let ours = proxy_branches(&net, "INVITE").remove(0);
    let alices = inv_branch(&net, 1, tx).unwrap();
    let replayed = format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch={ours}\r\n\
         Via: SIP/2.0/UDP 127.0.0.2:5060;branch={alices};rport=5060;received=127.0.0.4\r\n\
         From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
         Call-ID: sl-4\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    let now = net.now;
    net.nodes[0]
        .ep
        .handle_datagram(now, addr(PROXY), addr(BOB), replayed.as_bytes());
    net.pump();
    assert!(
        !net.wire.iter().any(|w| w.to == addr(CAROL)),
        "nothing to the victim"
    );
    assert_eq!(net.proxy.stats().responses, 0);
}

#[test]
fn stateless_proxy_forwards_to_one_target_only() {
    // RFC 3261 16.11: a stateless proxy does not fork (the highest q wins)
    let router: Router = Box::new(|_: &Inbound| {
        Some(vec![
            ProxyTarget::new("sip:bob@127.0.0.3:5060").q(500),
            ProxyTarget::new("sip:carol@127.0.0.4:5060").q(900),
        ])
    });
    let mut net = Net::new(stateless_config(), router);
    let inv = net.invite(1, "sip:bob@example.com", "sl-5");
    net.send(1, &inv, Transport::Udp);
    assert_eq!(net.requests(2).len(), 0);
    assert_eq!(net.requests(3).len(), 1, "Carol (q=0.9) only");
    assert_eq!(net.proxy.stats().forwarded, 1);
}

/// `example.test`: no NAPTR; `_sip._udp` SRV names Bob's host (priority 0) then Carol's
/// (priority 1).
fn two_servers(net: &mut Net) {
    net.dns.insert(
        ("example.test".to_owned(), RecordType::Naptr),
        Answer::NoData { ttl: 300 },
    );
    let srv = |priority, target: &str| {
        Record::Srv(Srv {
            priority,
            weight: 1,
            port: 5060,
            target: target.to_owned(),
            ttl: 300,
        })
    };
    net.dns.insert(
        ("_sip._udp.example.test".to_owned(), RecordType::Srv),
        Answer::Records(vec![
            srv(0, "bob.example.test"),
            srv(1, "carol.example.test"),
        ]),
    );
    for (name, ip) in [
        ("bob.example.test", [127, 0, 0, 3]),
        ("carol.example.test", [127, 0, 0, 4]),
    ] {
        net.dns.insert(
            (name.to_owned(), RecordType::A),
            Answer::Records(vec![Record::A {
                addr: ip.into(),
                ttl: 300,
            }]),
        );
    }
}

fn top_via_branch(req: &OwnedMessage) -> String {
    req.message()
        .unwrap()
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .to_owned()
}

#[test]
fn rfc3261_16_6_step_7_name_target_fails_over_on_503_and_loop_detection_reads_branch_dot_2() {
    // RFC 3261 16.6 step 7 and 16.7 with RFC 3263 4.3: a target that is a name is located
    // by the endpoint; Bob's server answers 503, the same request goes to Carol's under
    // `{branch}.2`, and only Carol's 200 goes upstream. RFC 3261 16.3 step 4: that copy,
    // come back to the proxy, is still recognised as a loop (482).
    let mut net = Net::new(proxy_config(), Net::default_router());
    two_servers(&mut net);
    let inv = net.invite(1, "sip:bob@example.test", "names-1");
    let tx = net.send(1, &inv, Transport::Udp);
    let at_bob = net.requests(2);
    assert_eq!(at_bob.len(), 1, "Bob's server first (SRV priority 0)");
    let first = top_via_branch(&at_bob[0].1);
    net.answer(2, 0, 503);
    let at_carol = net.requests(3);
    assert_eq!(at_carol.len(), 1, "then Carol's");
    assert_eq!(top_via_branch(&at_carol[0].1), format!("{first}.2"));
    net.answer(3, 0, 200);
    assert_eq!(net.finals(1, tx), vec![200]);
    // The copy Carol got, sent back to the proxy (a loop): 482.
    let looped = at_carol[0].1.clone();
    let back = net.send(3, &looped, Transport::Udp);
    assert_eq!(net.finals(3, back), vec![482]);
    assert_eq!(net.proxy.stats().loops, 1);
}

#[test]
fn rfc3261_26_2_proxy_forwards_a_sips_request_over_tls_only() {
    // RFC 3261 26.2 / 16.6 step 4 (RFC 5630 sections 4 and 5.3): a sips: Request-URI is
    // forwarded over TLS, record-routed with a sips: URI; to a target that is only
    // reachable over UDP it is not forwarded at all: 480 with warn-code 380
    let mut net = Net::new(proxy_config(), Net::default_router());
    let inv = net.invite(1, "sips:bob@127.0.0.3", "sips-1");
    let tx = net.send(1, &inv, Transport::Tcp);
    let at_bob = net.requests(2);
    assert_eq!(at_bob.len(), 1);
    let w = net
        .wire
        .iter()
        .find(|w| w.text().starts_with("INVITE sips:bob@127.0.0.3") && w.to.ip() == addr(BOB).ip())
        .unwrap()
        .clone();
    assert_eq!(
        (w.transport, w.to),
        (Transport::Tls, addr("127.0.0.3:5061"))
    );
    let m = at_bob[0].1.message().unwrap();
    let rr: Vec<String> = m.record_routes().map(|r| r.to_string()).collect();
    assert_eq!(rr, ["<sips:127.0.0.1:5061;lr>"]);
    assert!(m.top_via().unwrap().transport.eq_ignore_ascii_case("TLS"));
    net.answer(2, 0, 200);
    assert_eq!(net.finals(1, tx), vec![200]);

    let router: Router = Box::new(|i: &Inbound| {
        Some(vec![
            ProxyTarget::new(i.request_uri()).next_hop(Target::udp(addr(BOB)))
        ])
    });
    let mut net = Net::new(proxy_config(), router);
    let inv = net.invite(1, "sips:bob@127.0.0.3", "sips-2");
    let tx = net.send(1, &inv, Transport::Tcp);
    assert!(net.requests(2).is_empty(), "never over UDP");
    let r = net.responses(1, tx);
    let last = r.last().unwrap();
    assert_eq!(last.status(), Some(480));
    let warning = last
        .view()
        .header(sip_core::HeaderName::Warning)
        .unwrap()
        .to_owned();
    assert!(warning.starts_with("380 "), "{warning}");
    assert_eq!(net.proxy.stats().insecure_hops, 1);
}

#[test]
fn rfc5658_udp_in_tls_out_records_a_sips_route_facing_the_tls_side() {
    // RFC 5658 section 4 with RFC 5630 section 5.3 (no transport=tls): a sip: request in
    // over UDP and out over TLS (a name whose URI says transport=tls): the entry facing
    // the TLS side is a sips: URI of the TLS listener, the one facing Alice a sip: URI
    let router: Router = Box::new(|_: &Inbound| {
        Some(vec![ProxyTarget::new(
            "sip:bob@bob.example.test;transport=tls",
        )])
    });
    let mut net = Net::new(proxy_config(), router);
    net.dns.insert(
        ("_sips._tcp.bob.example.test".to_owned(), RecordType::Srv),
        Answer::NxDomain { ttl: 60 },
    );
    net.dns.insert(
        ("bob.example.test".to_owned(), RecordType::A),
        Answer::Records(vec![Record::A {
            addr: [127, 0, 0, 3].into(),
            ttl: 300,
        }]),
    );
    let inv = net.invite(1, "sip:bob@example.com", "tls-rr-1");
    let tx = net.send(1, &inv, Transport::Udp);
    let got = net.requests(2);
    assert_eq!(got.len(), 1);
    let m = got[0].1.message().unwrap();
    let rr: Vec<String> = m.record_routes().map(|r| r.to_string()).collect();
    assert_eq!(rr, ["<sips:127.0.0.1:5061;lr>", "<sip:127.0.0.1:5060;lr>"]);
    assert_eq!(m.top_via().unwrap().transport, "TLS");
    net.answer(2, 0, 200);
    assert_eq!(net.finals(1, tx), vec![200]);
}

#[test]
fn rfc3261_16_11_stateless_proxy_forwards_to_a_name_first_target() {
    // RFC 3261 16.11 with RFC 3263: a stateless proxy sends a name target to the first
    // target the endpoint locates (send_stateless to a NextHop::Uri, no failover)
    let router: Router =
        Box::new(|_: &Inbound| Some(vec![ProxyTarget::new("sip:bob@example.test")]));
    let mut net = Net::new(stateless_config(), router);
    two_servers(&mut net);
    let inv = net.invite(1, "sip:bob@example.test", "stateless-name-1");
    let tx = net.send(1, &inv, Transport::Udp);
    assert_eq!(net.requests(2).len(), 1, "Bob's server, SRV priority 0");
    assert!(net.requests(3).is_empty());
    net.answer(2, 0, 200);
    assert_eq!(net.finals(1, tx), vec![200]);
}
