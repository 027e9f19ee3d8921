//! The endpoint locating servers itself (RFC 3263 with RFC 3261 sections 8.1.2, 18.2.2 and
//! 26.2, RFC 5922 section 4, RFC 5626 section 3.5.1): requests sent to a `NextHop::Uri`,
//! DNS questions answered by hand from a little zone, failover between the targets, and
//! responses to a Via sent-by that is a name. The clock is virtual: `now` only moves when a
//! test moves it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::resolve::{Answer, Naptr, Record, RecordType, ResolveError, Srv};
use sip_core::{
    ClientTxId, Config, Endpoint, Event, FlowEvent, FlowId, IoRequest, Listener, Method, NextHop,
    OwnedMessage, RequestBuilder, ResponseBuilder, ResponsePolicy, SeededRng, SendError, Target,
    Timer, Transport, TxId,
};

const LOCAL: &str = "127.0.0.1:26000";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---- a little zone, answered by hand ----

#[derive(Default, Clone)]
struct Zone {
    records: HashMap<(String, RecordType), Vec<Record>>,
}

impl Zone {
    fn naptr(mut self, name: &str, order: u16, service: &str, replacement: &str) -> Zone {
        self.records
            .entry((name.into(), RecordType::Naptr))
            .or_default()
            .push(Record::Naptr(Naptr {
                order,
                preference: 10,
                flags: "s".into(),
                service: service.into(),
                replacement: replacement.into(),
                ttl: 300,
            }));
        self
    }

    fn srv(mut self, name: &str, priority: u16, port: u16, target: &str) -> Zone {
        self.records
            .entry((name.into(), RecordType::Srv))
            .or_default()
            .push(Record::Srv(Srv {
                priority,
                weight: 0,
                port,
                target: target.into(),
                ttl: 300,
            }));
        self
    }

    fn a(mut self, name: &str, addr: &str) -> Zone {
        self.records
            .entry((name.into(), RecordType::A))
            .or_default()
            .push(Record::A {
                addr: addr.parse().unwrap(),
                ttl: 300,
            });
        self
    }

    fn answer(&self, name: &str, rtype: RecordType) -> Answer {
        match self.records.get(&(name.to_owned(), rtype)) {
            Some(r) => Answer::Records(r.clone()),
            None => Answer::NxDomain { ttl: 300 },
        }
    }
}

/// Two UDP servers for example.test by SRV: 192.0.2.1 first, 192.0.2.2 second.
fn two_udp() -> Zone {
    Zone::default()
        .srv("_sip._udp.example.test", 10, 5060, "one.example.test")
        .srv("_sip._udp.example.test", 20, 5060, "two.example.test")
        .a("one.example.test", "192.0.2.1")
        .a("two.example.test", "192.0.2.2")
}

/// Two TCP servers, as `two_udp`.
fn two_tcp() -> Zone {
    Zone::default()
        .srv("_sip._tcp.example.test", 10, 5060, "one.example.test")
        .srv("_sip._tcp.example.test", 20, 5060, "two.example.test")
        .a("one.example.test", "192.0.2.1")
        .a("two.example.test", "192.0.2.2")
}

// ---- the endpoint under test ----

struct Out {
    sent: Vec<(SocketAddr, Transport, Option<FlowId>, Vec<u8>)>,
    io: Vec<IoRequest>,
    events: Vec<Event>,
}

impl Out {
    fn requests(&self, method: &str) -> Vec<(SocketAddr, OwnedMessage)> {
        self.sent
            .iter()
            .filter(|s| s.3.starts_with(format!("{method} ").as_bytes()))
            .map(|s| (s.0, OwnedMessage::parse(&s.3).unwrap()))
            .collect()
    }
}

struct H {
    ep: Endpoint,
    now: Instant,
    zone: Zone,
    questions: Vec<(String, RecordType)>,
}

fn config() -> Config {
    Config {
        listeners: vec![
            Listener::new(Transport::Udp, sa(LOCAL)),
            Listener::new(Transport::Tcp, sa(LOCAL)),
            Listener::new(Transport::Tls, sa("127.0.0.1:26001")),
        ],
        ..Config::default()
    }
}

impl H {
    fn new(zone: Zone) -> H {
        H::with(config(), zone)
    }

    fn with(config: Config, zone: Zone) -> H {
        H {
            ep: Endpoint::new(config, [9; 32]),
            now: Instant::now(),
            zone,
            questions: Vec::new(),
        }
    }

    /// Drains every output, answering DNS questions from the zone.
    fn drain(&mut self) -> Out {
        let mut out = Out {
            sent: Vec::new(),
            io: Vec::new(),
            events: Vec::new(),
        };
        loop {
            let mut any = false;
            while let Some(e) = self.ep.poll_event() {
                out.events.push(e);
                any = true;
            }
            let mut buf = Vec::new();
            while let Some(t) = self.ep.poll_transmit(&mut buf) {
                out.sent.push((t.remote, t.transport, t.flow, buf.clone()));
                any = true;
            }
            while let Some(io) = self.ep.poll_io() {
                out.io.push(io);
                any = true;
            }
            while let Some(q) = self.ep.poll_dns() {
                self.questions.push((q.name.clone(), q.rtype));
                let answer = self.zone.answer(&q.name, q.rtype);
                self.ep.handle_dns_answer(self.now, q.id, answer);
                any = true;
            }
            if !any {
                return out;
            }
        }
    }

    /// Drains without answering DNS: the questions are returned.
    fn drain_unanswered(&mut self) -> (Out, Vec<sip_core::resolve::Query>) {
        let mut qs = Vec::new();
        while let Some(q) = self.ep.poll_dns() {
            qs.push(q);
        }
        let zone = std::mem::take(&mut self.zone);
        self.zone = Zone::default();
        let out = Out {
            sent: {
                let mut v = Vec::new();
                let mut buf = Vec::new();
                while let Some(t) = self.ep.poll_transmit(&mut buf) {
                    v.push((t.remote, t.transport, t.flow, buf.clone()));
                }
                v
            },
            io: std::iter::from_fn(|| self.ep.poll_io()).collect(),
            events: std::iter::from_fn(|| self.ep.poll_event()).collect(),
        };
        self.zone = zone;
        (out, qs)
    }

    /// Moves the clock by `d`, running every timer due on the way.
    fn advance(&mut self, d: Duration) -> Out {
        let end = self.now + d;
        let mut all = Out {
            sent: Vec::new(),
            io: Vec::new(),
            events: Vec::new(),
        };
        loop {
            let next = self.ep.poll_timeout().filter(|t| *t <= end);
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            self.ep.handle_timeout(self.now);
            let o = self.drain();
            all.sent.extend(o.sent);
            all.io.extend(o.io);
            all.events.extend(o.events);
        }
        self.now = end;
        all
    }

    fn send(&mut self, req: &OwnedMessage, uri: &str) -> ClientTxId {
        self.ep
            .send_request(self.now, req, NextHop::uri(uri))
            .unwrap()
    }

    /// The response `code` to `req` (as sent) arriving over UDP from `from`.
    fn respond(&mut self, req: &OwnedMessage, code: u16, from: &str, extra: &str) -> Out {
        let bytes = response(req, code, extra);
        self.ep
            .handle_datagram(self.now, sa(LOCAL), sa(from), &bytes);
        self.drain()
    }
}

fn request(method: Method<'_>, uri: &str) -> OwnedMessage {
    RequestBuilder::new(method, uri)
        .from("<sip:alice@example.org>;tag=alice1")
        .to(&format!("<{uri}>"))
        .call_id("call-1@example.org")
        .cseq(1)
        .contact("<sip:alice@127.0.0.1:26000>")
        .build(&mut SeededRng::new([1; 32]))
        .unwrap()
}

fn response(req: &OwnedMessage, code: u16, extra: &str) -> Vec<u8> {
    let msg = req.message().unwrap();
    let resp = ResponseBuilder::new(&msg, code)
        .to_tag("bobtag")
        .build(&mut SeededRng::new([2; 32]))
        .unwrap();
    let text = String::from_utf8(resp.as_bytes().to_vec()).unwrap();
    text.replacen("\r\n", &format!("\r\n{extra}"), 1)
        .into_bytes()
}

fn branch(msg: &OwnedMessage) -> String {
    msg.message()
        .unwrap()
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .to_owned()
}

fn codes(events: &[Event]) -> Vec<u16> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Response { response, .. } => response.status(),
            _ => None,
        })
        .collect()
}

// ---- NextHop ----

// RFC 3261 8.1.2: the first Route's URI when there is a Route, else the Request-URI.
#[test]
fn rfc3261_8_1_2_next_hop_is_the_first_route_else_the_request_uri() {
    let plain = request(Method::Options, "sip:bob@example.test");
    assert_eq!(
        NextHop::of_request(&plain),
        Some(NextHop::uri("sip:bob@example.test"))
    );
    let routed = RequestBuilder::new(Method::Options, "sip:bob@example.test")
        .from("<sip:alice@example.org>;tag=a")
        .to("<sip:bob@example.test>")
        .call_id("c1")
        .cseq(1)
        .header("Route", "<sip:p1.example.net;lr>, <sip:p2.example.net;lr>")
        .build(&mut SeededRng::new([1; 32]))
        .unwrap();
    assert_eq!(
        NextHop::of_request(&routed),
        Some(NextHop::uri("sip:p1.example.net;lr"))
    );
    let tel = request(Method::Options, "tel:+15551234");
    assert_eq!(NextHop::of_request(&tel), None);
    let t = Target::udp(sa("192.0.2.1:5060"));
    assert_eq!(NextHop::from(t), NextHop::Target(t));
}

// ---- resolution reaches the endpoint ----

// RFC 3263 4.1/4.2: NAPTR picks the transport (TCP before UDP by order), SRV the server by
// priority; the request goes there, over a connection the endpoint asks for.
#[test]
fn rfc3263_4_naptr_and_srv_order_reach_the_endpoint() {
    let zone = Zone::default()
        .naptr("example.test", 10, "SIP+D2T", "_sip._tcp.example.test")
        .naptr("example.test", 20, "SIP+D2U", "_sip._udp.example.test")
        .srv("_sip._tcp.example.test", 20, 5070, "two.example.test")
        .srv("_sip._tcp.example.test", 10, 5080, "one.example.test")
        .srv("_sip._udp.example.test", 0, 5060, "two.example.test")
        .a("one.example.test", "192.0.2.1")
        .a("two.example.test", "192.0.2.2");
    let mut h = H::new(zone);
    let req = request(Method::Options, "sip:bob@example.test");
    h.send(&req, "sip:bob@example.test");
    let out = h.drain();
    assert_eq!(
        h.questions.first(),
        Some(&("example.test".to_owned(), RecordType::Naptr))
    );
    assert!(matches!(
        out.io.as_slice(),
        [IoRequest::Connect { transport: Transport::Tcp, remote, .. }] if *remote == sa("192.0.2.1:5080")
    ));
    assert_eq!(h.ep.stats().dns_queries, h.questions.len() as u64);
}

// RFC 3263 4 and the measure: with the answers cached, a request to a name is sent
// at once, with no DNS question; also once the endpoint's short memo has expired (the
// resolver's cache answers).
#[test]
fn rfc3263_4_warm_cache_sends_at_once_without_a_dns_question() {
    let mut h = H::new(two_udp());
    let req = request(Method::Options, "sip:bob@example.test;transport=udp");
    h.send(&req, "sip:bob@example.test;transport=udp");
    let first = h.drain();
    assert_eq!(first.requests("OPTIONS")[0].0, sa("192.0.2.1:5060"));
    let asked = h.ep.stats().dns_queries;
    assert!(asked > 0);
    for wait in [Duration::ZERO, Duration::from_secs(5)] {
        h.advance(wait);
        h.ep.send_request(
            h.now,
            &req,
            NextHop::uri("sip:bob@example.test;transport=udp"),
        )
        .unwrap();
        // nothing drained in between: the request is already queued
        let (out, questions) = h.drain_unanswered();
        assert!(questions.is_empty(), "{questions:?}");
        assert_eq!(out.requests("OPTIONS")[0].0, sa("192.0.2.1:5060"));
    }
    assert_eq!(h.ep.stats().dns_queries, asked);
}

// ---- RFC 3263 4.3 failover ----

// RFC 3263 4.3: an ICMP unreachable for the first target sends the request to the next one
// with a new branch (RFC 3261 8.1.3.4); the transaction user sees one outcome under the
// same ClientTxId.
#[test]
fn rfc3263_4_3_failover_on_icmp_with_a_new_branch_and_the_same_transaction() {
    let mut h = H::new(two_udp());
    let req = request(Method::Options, "sip:bob@example.test;transport=udp");
    let tx = h.send(&req, "sip:bob@example.test;transport=udp");
    let out = h.drain();
    let (to, first) = out.requests("OPTIONS").remove(0);
    assert_eq!(to, sa("192.0.2.1:5060"));
    h.ep.handle_unreachable(h.now, to);
    let out = h.drain();
    assert!(out.events.is_empty(), "{:?}", out.events);
    let (to2, second) = out.requests("OPTIONS").remove(0);
    assert_eq!(to2, sa("192.0.2.2:5060"));
    assert_ne!(branch(&first), branch(&second));
    let out = h.respond(&second, 200, "192.0.2.2:5060", "");
    assert!(matches!(out.events.as_slice(), [Event::Response { tx: t, .. }] if *t == tx));
    assert_eq!(h.ep.stats().failovers, 1);
    assert!(h
        .ep
        .resolver()
        .is_down(h.now, &Target::udp(sa("192.0.2.1:5060"))));
}

// RFC 3263 4.3: a connection that cannot be opened sends the request to the next target.
#[test]
fn rfc3263_4_3_failover_on_connect_failure() {
    let mut h = H::new(two_tcp());
    let req = request(Method::Options, "sip:bob@example.test;transport=tcp");
    let tx = h.send(&req, "sip:bob@example.test;transport=tcp");
    let out = h.drain();
    let [IoRequest::Connect { flow, remote, .. }] = out.io.as_slice() else {
        panic!("{:?}", out.io)
    };
    assert_eq!(*remote, sa("192.0.2.1:5060"));
    h.ep.handle_flow_event(h.now, *flow, FlowEvent::Failed);
    let out = h.drain();
    assert!(out.events.is_empty());
    let [IoRequest::Connect { flow, remote, .. }] = out.io.as_slice() else {
        panic!("{:?}", out.io)
    };
    assert_eq!(*remote, sa("192.0.2.2:5060"));
    h.ep.handle_flow_event(h.now, *flow, FlowEvent::Connected { local: sa(LOCAL) });
    let out = h.drain();
    let sent = out.requests("OPTIONS");
    assert_eq!(sent.len(), 1);
    let bytes = response(&sent[0].1, 200, "");
    h.ep.handle_stream(h.now, *flow, &bytes);
    let out = h.drain();
    assert!(matches!(out.events.as_slice(), [Event::Response { tx: t, .. }] if *t == tx));
}

// RFC 3263 4.3: timer F of the first attempt sends the request to the next target; the last
// target's timeout is what the transaction user sees, once.
#[test]
fn rfc3263_4_3_failover_on_timeout_and_the_last_timeout_goes_up_once() {
    let mut h = H::new(two_udp());
    let req = request(Method::Options, "sip:bob@example.test;transport=udp");
    let tx = h.send(&req, "sip:bob@example.test;transport=udp");
    h.drain();
    let out = h.advance(Duration::from_secs(32));
    assert!(out.events.is_empty(), "{:?}", out.events);
    assert!(out
        .requests("OPTIONS")
        .iter()
        .any(|(to, _)| *to == sa("192.0.2.2:5060")));
    let out = h.advance(Duration::from_secs(33));
    assert!(matches!(
        out.events.as_slice(),
        [Event::Timeout { tx: TxId::Client(t), timer: Timer::F, .. }] if *t == tx
    ));
    assert_eq!(h.ep.transactions(), 0);
}

// RFC 3263 4.3 with Config::failover_timeout: no response at all within it moves on.
#[test]
fn rfc3263_4_3_failover_timeout_without_any_response() {
    let mut config = config();
    config.failover_timeout = Some(Duration::from_secs(2));
    let mut h = H::with(config, two_udp());
    let req = request(Method::Invite, "sip:bob@example.test;transport=udp");
    h.send(&req, "sip:bob@example.test;transport=udp");
    h.drain();
    let out = h.advance(Duration::from_millis(2_500));
    let to: Vec<SocketAddr> = out.requests("INVITE").iter().map(|r| r.0).collect();
    // retransmissions to the first target, then the second target
    assert_eq!(to.last(), Some(&sa("192.0.2.2:5060")));
    assert!(out.events.is_empty());
}

// RFC 3263 4.3 and RFC 3261 17.1.1.3: a 503 to an INVITE is ACKed to the server that sent
// it, then the INVITE goes to the next target with a new branch; Retry-After keeps the
// server down longer; the transaction user sees only the final outcome.
#[test]
fn rfc3263_4_3_failover_on_503_acks_it_and_tries_the_next_target() {
    let mut h = H::new(two_udp());
    let req = request(Method::Invite, "sip:bob@example.test;transport=udp");
    let tx = h.send(&req, "sip:bob@example.test;transport=udp");
    let (_, first) = h.drain().requests("INVITE").remove(0);
    let out = h.respond(&first, 503, "192.0.2.1:5060", "Retry-After: 600\r\n");
    assert!(out.events.is_empty(), "{:?}", out.events);
    let acks = out.requests("ACK");
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].0, sa("192.0.2.1:5060"));
    assert_eq!(branch(&acks[0].1), branch(&first));
    let (to, second) = out.requests("INVITE").remove(0);
    assert_eq!(to, sa("192.0.2.2:5060"));
    assert_ne!(branch(&first), branch(&second));
    // a retransmitted 503 on the first branch is ACKed again, not passed up
    let out = h.respond(&first, 503, "192.0.2.1:5060", "");
    assert_eq!(out.requests("ACK").len(), 1);
    assert!(out.events.is_empty(), "{:?}", out.events);
    let out = h.respond(&second, 486, "192.0.2.2:5060", "");
    assert_eq!(codes(&out.events), [486]);
    assert!(matches!(&out.events[0], Event::Response { tx: t, .. } if *t == tx));
    // Retry-After 600 s: still down after the default 60 s down time
    h.advance(Duration::from_secs(120));
    assert!(h
        .ep
        .resolver()
        .is_down(h.now, &Target::udp(sa("192.0.2.1:5060"))));
}

// RFC 3263 4.3: the last target's 503 is the outcome the transaction user sees.
#[test]
fn rfc3263_4_3_last_503_goes_up() {
    let mut h = H::new(two_udp());
    let req = request(Method::Options, "sip:bob@example.test;transport=udp");
    h.send(&req, "sip:bob@example.test;transport=udp");
    let (_, first) = h.drain().requests("OPTIONS").remove(0);
    let out = h.respond(&first, 503, "192.0.2.1:5060", "");
    let (_, second) = out.requests("OPTIONS").remove(0);
    let out = h.respond(&second, 503, "192.0.2.2:5060", "");
    assert_eq!(codes(&out.events), [503]);
    assert_eq!(h.ep.stats().failovers, 1);
}

// RFC 3263 4.3: a provisional response means the server took the request: no failover
// after it, a later 503 goes up.
#[test]
fn rfc3263_4_3_provisional_response_stops_failover() {
    let mut h = H::new(two_udp());
    let req = request(Method::Invite, "sip:bob@example.test;transport=udp");
    h.send(&req, "sip:bob@example.test;transport=udp");
    let (_, first) = h.drain().requests("INVITE").remove(0);
    let out = h.respond(&first, 180, "192.0.2.1:5060", "");
    assert_eq!(codes(&out.events), [180]);
    let out = h.respond(&first, 503, "192.0.2.1:5060", "");
    assert_eq!(codes(&out.events), [503]);
    assert!(out.requests("INVITE").is_empty());
}

// RFC 3261 9.1 with RFC 3263 4.3: the CANCEL goes to the attempt in progress (its branch,
// its server), and after it there is no new attempt.
#[test]
fn rfc3263_4_3_cancel_goes_to_the_attempt_in_progress_and_ends_failover() {
    let mut h = H::new(two_udp());
    let req = request(Method::Invite, "sip:bob@example.test;transport=udp");
    let tx = h.send(&req, "sip:bob@example.test;transport=udp");
    h.drain();
    h.ep.handle_unreachable(h.now, sa("192.0.2.1:5060"));
    let (to, second) = h.drain().requests("INVITE").remove(0);
    assert_eq!(to, sa("192.0.2.2:5060"));
    h.respond(&second, 180, "192.0.2.2:5060", "");
    h.ep.cancel(h.now, tx).unwrap();
    let out = h.drain();
    let cancels = out.requests("CANCEL");
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].0, sa("192.0.2.2:5060"));
    assert_eq!(branch(&cancels[0].1), branch(&second));

    // A CANCEL before any provisional response: the attempt's failure goes up as it is.
    let mut h = H::new(two_udp());
    let tx = h.send(&req, "sip:bob@example.test;transport=udp");
    h.drain();
    h.ep.cancel(h.now, tx).unwrap();
    h.drain();
    h.advance(Duration::from_millis(200));
    h.ep.handle_unreachable(h.now, sa("192.0.2.1:5060"));
    let out = h.drain();
    assert!(out.requests("INVITE").is_empty());
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::TransportError { tx: TxId::Client(t) } if *t == tx)));
}

// RFC 3261 9.1 with RFC 3263: a CANCEL asked for while the INVITE waits for DNS is
// written for the INVITE's first attempt and sent after its provisional response; that
// attempt is the only one.
#[test]
fn rfc3263_4_3_cancel_while_the_lookup_runs_follows_the_first_attempt() {
    let mut h = H::new(two_udp());
    let req = request(Method::Invite, "sip:bob@example.test;transport=udp");
    let tx = h.send(&req, "sip:bob@example.test;transport=udp");
    let (out, questions) = h.drain_unanswered();
    assert!(out.sent.is_empty());
    h.ep.cancel(h.now, tx).unwrap();
    assert!(h.drain_unanswered().0.sent.is_empty());
    for q in questions {
        let a = h.zone.answer(&q.name, q.rtype);
        h.ep.handle_dns_answer(h.now, q.id, a);
    }
    let out = h.drain();
    assert!(
        out.requests("CANCEL").is_empty(),
        "held until a provisional"
    );
    let (to, invite) = out.requests("INVITE").remove(0);
    assert_eq!(to, sa("192.0.2.1:5060"));
    let out = h.respond(&invite, 180, "192.0.2.1:5060", "");
    let cancels = out.requests("CANCEL");
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].0, sa("192.0.2.1:5060"));
    assert_eq!(branch(&cancels[0].1), branch(&invite));
    let out = h.respond(&invite, 487, "192.0.2.1:5060", "");
    assert_eq!(codes(&out.events), [487]);

    // No failover after the CANCEL, even before any provisional response: a 503 goes up.
    let mut h = H::new(two_udp());
    let tx = h.send(&req, "sip:bob@example.test;transport=udp");
    let (_, questions) = h.drain_unanswered();
    h.ep.cancel(h.now, tx).unwrap();
    for q in questions {
        let a = h.zone.answer(&q.name, q.rtype);
        h.ep.handle_dns_answer(h.now, q.id, a);
    }
    let (_, invite) = h.drain().requests("INVITE").remove(0);
    let out = h.respond(&invite, 503, "192.0.2.1:5060", "");
    assert_eq!(codes(&out.events), [503]);
    assert!(out.requests("INVITE").is_empty());
}

// RFC 3263 4.3 for send_request_with_branch: attempt n >= 2 carries `{branch}.{n}`.
#[test]
fn rfc3263_4_3_caller_branch_gets_an_attempt_suffix() {
    let mut h = H::new(two_udp());
    let req = request(Method::Options, "sip:bob@example.test;transport=udp");
    h.ep.send_request_with_branch(
        h.now,
        &req,
        NextHop::uri("sip:bob@example.test;transport=udp"),
        "z9hG4bKproxy1",
    )
    .unwrap();
    let (_, first) = h.drain().requests("OPTIONS").remove(0);
    assert_eq!(branch(&first), "z9hG4bKproxy1");
    h.ep.handle_unreachable(h.now, sa("192.0.2.1:5060"));
    let (_, second) = h.drain().requests("OPTIONS").remove(0);
    assert_eq!(branch(&second), "z9hG4bKproxy1.2");
}

// RFC 3263 4.3: a name that does not resolve fails the request as a transport error.
#[test]
fn rfc3263_4_3_name_not_found_is_a_transport_error() {
    let mut h = H::new(Zone::default());
    let req = request(Method::Options, "sip:bob@nowhere.test");
    let tx = h.send(&req, "sip:bob@nowhere.test");
    let out = h.drain();
    assert!(out.sent.is_empty());
    assert!(matches!(
        out.events.as_slice(),
        [Event::TransportError { tx: TxId::Client(t) }] if *t == tx
    ));
    assert_eq!(h.ep.stats().dns_failures, 1);
    assert_eq!(h.ep.transactions(), 0);
}

// ---- ACK and stateless requests to a name ----

// RFC 3261 13.2.2.4 with RFC 3263: the ACK for a 2xx to a name waits for the lookup, then
// goes to the first target; once cached it goes at once.
#[test]
fn rfc3263_ack_to_a_name_waits_for_the_lookup() {
    let mut h = H::new(two_udp());
    let ack = RequestBuilder::new(Method::Ack, "sip:bob@example.test;transport=udp")
        .from("<sip:alice@example.org>;tag=a")
        .to("<sip:bob@example.test>;tag=b")
        .call_id("c1")
        .cseq(1)
        .build(&mut SeededRng::new([1; 32]))
        .unwrap();
    let hop = || NextHop::uri("sip:bob@example.test;transport=udp");
    h.ep.send_ack(h.now, &ack, hop()).unwrap();
    let (out, questions) = h.drain_unanswered();
    assert!(out.sent.is_empty());
    assert!(!questions.is_empty());
    for q in questions {
        let a = h.zone.answer(&q.name, q.rtype);
        h.ep.handle_dns_answer(h.now, q.id, a);
    }
    let out = h.drain();
    assert_eq!(out.requests("ACK")[0].0, sa("192.0.2.1:5060"));
    h.ep.send_ack(h.now, &ack, hop()).unwrap();
    let (out, questions) = h.drain_unanswered();
    assert!(questions.is_empty());
    assert_eq!(out.requests("ACK").len(), 1);
}

// ---- sips: and TLS ----

// RFC 3261 26.2 / RFC 3263 4.1: a sips URI goes over TLS only, whatever else the NAPTR
// records offer; a sips URI with transport=udp is refused.
#[test]
fn rfc3261_26_2_sips_uses_only_tls_targets() {
    let zone = Zone::default()
        .naptr("example.test", 10, "SIP+D2U", "_sip._udp.example.test")
        .naptr("example.test", 20, "SIPS+D2T", "_sips._tcp.example.test")
        .srv("_sip._udp.example.test", 0, 5060, "one.example.test")
        .srv("_sips._tcp.example.test", 0, 5061, "two.example.test")
        .a("one.example.test", "192.0.2.1")
        .a("two.example.test", "192.0.2.2");
    let mut h = H::new(zone);
    let req = request(Method::Options, "sips:bob@example.test");
    h.send(&req, "sips:bob@example.test");
    let out = h.drain();
    assert!(matches!(
        out.io.as_slice(),
        [IoRequest::Connect { transport: Transport::Tls, remote, .. }] if *remote == sa("192.0.2.2:5061")
    ));
    assert!(out.sent.iter().all(|s| s.1 == Transport::Tls));
    assert_eq!(
        h.ep.send_request(
            h.now,
            &req,
            NextHop::uri("sips:bob@example.test;transport=udp")
        ),
        Err(SendError::Unresolvable(ResolveError::SipsNeedsTls))
    );
}

// RFC 5922 section 4: a TLS connection opened for a URI must prove the URI's domain, not
// the SRV target's name; one opened for an address has no name; a TLS flow opened for one
// domain is not reused for another one at the same address.
#[test]
fn rfc5922_4_tls_server_name_is_the_uri_host() {
    let zone = Zone::default()
        .srv("_sips._tcp.example.test", 0, 5061, "sip1.provider.test")
        .srv("_sips._tcp.other.test", 0, 5061, "sip1.provider.test")
        .a("sip1.provider.test", "192.0.2.7");
    let mut h = H::new(zone);
    let req = request(Method::Options, "sips:bob@example.test");
    h.send(&req, "sips:bob@example.test");
    let out = h.drain();
    let [IoRequest::Connect { flow, .. }] = out.io.as_slice() else {
        panic!("{:?}", out.io)
    };
    assert_eq!(h.ep.tls_server_name(*flow), Some("example.test"));
    h.ep.handle_flow_event(h.now, *flow, FlowEvent::Connected { local: sa(LOCAL) });
    h.drain();
    // the same domain again: the flow is reused
    h.send(&req, "sips:bob@example.test");
    assert!(h.drain().io.is_empty());
    // another domain at the same address: a connection of its own
    h.send(&req, "sips:carol@other.test");
    let out = h.drain();
    let [IoRequest::Connect { flow: other, .. }] = out.io.as_slice() else {
        panic!("{:?}", out.io)
    };
    assert_ne!(other, flow);
    assert_eq!(h.ep.tls_server_name(*other), Some("other.test"));
    // an address target: no name (the driver checks the IP address)
    let t = Target {
        transport: Transport::Tls,
        addr: sa("192.0.2.8:5061"),
    };
    h.ep.send_request(h.now, &req, t).unwrap();
    let out = h.drain();
    let [IoRequest::Connect { flow: plain, .. }] = out.io.as_slice() else {
        panic!("{:?}", out.io)
    };
    assert_eq!(h.ep.tls_server_name(*plain), None);
}

// ---- responses: RFC 3263 section 5, RFC 3261 18.2.2 ----

/// A request from 192.0.2.9 whose Via sent-by is the name client.test.
fn peer_request() -> Vec<u8> {
    b"OPTIONS sip:ep@127.0.0.1:26000 SIP/2.0\r\n\
      Via: SIP/2.0/UDP client.test:5060;branch=z9hG4bKpeer1\r\n\
      Max-Forwards: 70\r\n\
      From: <sip:peer@client.test>;tag=p1\r\n\
      To: <sip:ep@127.0.0.1>\r\n\
      Call-ID: peer-call-1\r\n\
      CSeq: 1 OPTIONS\r\n\
      Content-Length: 0\r\n\r\n"
        .to_vec()
}

fn serve(policy: ResponsePolicy) -> (H, Out) {
    let mut config = config();
    config.response_policy = policy;
    let zone = Zone::default().a("client.test", "192.0.2.10");
    let mut h = H::with(config, zone);
    h.ep.handle_datagram(h.now, sa(LOCAL), sa("192.0.2.9:5060"), &peer_request());
    let out = h.drain();
    let Some(Event::Request { tx, request, .. }) = out.events.into_iter().next() else {
        panic!("no request")
    };
    let msg = request.message().unwrap();
    let resp = ResponseBuilder::new(&msg, 200)
        .build(&mut SeededRng::new([3; 32]))
        .unwrap();
    h.ep.send_response(h.now, tx, &resp).unwrap();
    let out = h.drain();
    assert_eq!(out.sent[0].0, sa("192.0.2.9:5060"), "to `received` first");
    h.ep.handle_unreachable(h.now, sa("192.0.2.9:5060"));
    let out = h.drain();
    (h, out)
}

// RFC 3263 section 5 / RFC 3261 18.2.2, ResponsePolicy::Rfc3261: a response whose
// destination is unreachable goes to the resolved sent-by.
#[test]
fn rfc3263_5_response_fails_over_to_the_resolved_sent_by_under_rfc3261() {
    let (h, out) = serve(ResponsePolicy::Rfc3261);
    assert!(h
        .questions
        .contains(&("client.test".to_owned(), RecordType::A)));
    assert_eq!(out.sent.len(), 1);
    assert_eq!(out.sent[0].0, sa("192.0.2.10:5060"));
    assert!(out.events.is_empty(), "{:?}", out.events);
}

// RFC 3261 26.1.5 with the default ResponsePolicy::SourceOnly: a Via never aims a response
// at a DNS answer; the transaction fails instead.
#[test]
fn rfc3261_26_1_5_no_sent_by_resolution_under_source_only() {
    let (h, out) = serve(ResponsePolicy::SourceOnly);
    assert!(h.questions.is_empty());
    assert!(out.sent.is_empty());
    assert!(matches!(
        out.events.as_slice(),
        [Event::TransportError {
            tx: TxId::Server(_)
        }]
    ));
}

// RFC 3263 section 5: send_stateless_response resolves a sent-by name (no `received`)
// under Rfc3261, and refuses it under SourceOnly.
#[test]
fn rfc3263_5_stateless_response_to_a_sent_by_name() {
    let resp = OwnedMessage::parse(
        b"SIP/2.0 200 OK\r\n\
          Via: SIP/2.0/UDP client.test:5070;branch=z9hG4bKx\r\n\
          From: <sip:a@client.test>;tag=1\r\nTo: <sip:b@example.test>;tag=2\r\n\
          Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let zone = Zone::default().a("client.test", "192.0.2.10");
    let mut config = config();
    config.response_policy = ResponsePolicy::Rfc3261;
    let mut h = H::with(config, zone.clone());
    h.ep.send_stateless_response(h.now, &resp).unwrap();
    let out = h.drain();
    assert_eq!(out.sent.len(), 1);
    assert_eq!(out.sent[0].0, sa("192.0.2.10:5070"));
    let mut h = H::new(zone);
    assert_eq!(
        h.ep.send_stateless_response(h.now, &resp),
        Err(SendError::NotAResponse)
    );
    h.drain();
    assert!(h.questions.is_empty());
}

// ---- RFC 5626 3.5.1 keep-alives ----

// RFC 5626 3.5.1 / 4.4.1: a flow the endpoint opened is pinged with CRLFCRLF when quiet; a
// pong keeps it; no pong within 10 s closes it, and the transaction on it fails.
#[test]
fn rfc5626_3_5_1_keepalive_ping_and_close_on_missing_pong() {
    let mut config = config();
    config.keepalive_interval = Some(Duration::from_secs(30));
    let mut h = H::with(config, Zone::default());
    let req = request(Method::Invite, "sip:bob@192.0.2.3;transport=tcp");
    let tx =
        h.ep.send_request(h.now, &req, Target::tcp(sa("192.0.2.3:5060")))
            .unwrap();
    let out = h.drain();
    let [IoRequest::Connect { flow, .. }] = out.io.as_slice() else {
        panic!()
    };
    let flow = *flow;
    h.ep.handle_flow_event(h.now, flow, FlowEvent::Connected { local: sa(LOCAL) });
    let out = h.drain();
    let (_, sent) = out.requests("INVITE").remove(0);
    // a provisional response: the INVITE stays on the flow for minutes (timer C)
    h.ep.handle_stream(h.now, flow, &response(&sent, 180, ""));
    h.drain();
    let pings = |o: &Out| o.sent.iter().filter(|s| s.3 == b"\r\n\r\n").count();
    let out = h.advance(Duration::from_secs(31));
    assert_eq!(pings(&out), 1, "a ping within the jittered interval");
    h.ep.handle_stream(h.now, flow, b"\r\n");
    let out = h.advance(Duration::from_secs(15));
    assert!(
        out.io.is_empty(),
        "the pong kept the flow {:?} {:?}",
        out.io,
        out.events
    );
    let out = h.advance(Duration::from_secs(30));
    assert_eq!(pings(&out), 1);
    assert!(
        out.io.contains(&IoRequest::Close { flow }),
        "no pong within 10 s: {:?}",
        out.io
    );
    assert!(out
        .events
        .iter()
        .any(|e| matches!(e, Event::TransportError { tx: TxId::Client(t) } if *t == tx)));
    assert_eq!(h.ep.stats().keepalives_sent, 2);
}

// ---- bounds ----

// Nothing a caller or a silent DNS can grow without bound: requests to many names whose
// answers never come wait at most the transaction timeout, the lookups are capped, and all
// of it is gone afterwards.
#[test]
fn bounds_unanswered_lookups_do_not_accumulate() {
    let mut config = config();
    config.resolver.max_lookups = 64;
    let mut h = H::with(config, Zone::default());
    let req = request(Method::Options, "sip:bob@example.test");
    let mut refused = 0;
    for i in 0..500 {
        let uri = format!("sip:bob@h{i}.example.test");
        if h.ep.send_request(h.now, &req, NextHop::uri(&uri)).is_err() {
            refused += 1;
        }
        let ack = format!("sip:bob@a{i}.example.test");
        let _ = h.ep.send_ack(
            h.now,
            &OwnedMessage::parse(
                b"ACK sip:b@x SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            )
            .unwrap(),
            NextHop::uri(&ack),
        );
        let _ = h.drain_unanswered();
        assert!(h.ep.waiting_for_dns() <= 64);
        assert!(h.ep.resolver().lookups() <= 64);
        assert!(h.ep.resolver().queries_in_flight() <= 3 * 64);
        h.now += Duration::from_millis(10);
    }
    assert!(refused > 0);
    let out = h.advance(Duration::from_secs(40));
    assert!(out
        .events
        .iter()
        .all(|e| matches!(e, Event::Timeout { .. })));
    assert_eq!(h.ep.waiting_for_dns(), 0);
    assert_eq!(h.ep.transactions(), 0);
    assert_eq!(h.ep.resolver().lookups(), 0);
}

// ---- the memo of resolved names ----

// RFC 3263 4 with RFC 1035's TTLs: the endpoint draws a new order from the records it
// keeps once a second, asking nothing while they live (300 s here), and asks again once
// they have expired.
#[test]
fn rfc3263_4_memoized_name_is_resolved_again_after_the_ttl() {
    let mut h = H::new(two_udp());
    let uri = "sip:bob@example.test;transport=udp";
    let req = request(Method::Options, uri);
    h.send(&req, uri);
    h.drain();
    let asked = h.ep.stats().dns_queries;
    for _ in 0..5 {
        h.advance(Duration::from_secs(2));
        h.send(&req, uri);
        let out = h.drain();
        assert_eq!(h.ep.stats().dns_queries, asked);
        assert_eq!(out.requests("OPTIONS").len(), 1);
    }
    h.advance(Duration::from_secs(300));
    h.send(&req, uri);
    let out = h.drain();
    assert!(h.ep.stats().dns_queries > asked);
    assert_eq!(out.requests("OPTIONS").len(), 1);
}

// RFC 3263 4.3: a target that failed after the memo's order was drawn is not used first
// from it, neither within the memo's second nor from the order drawn after it.
#[test]
fn rfc3263_4_3_target_down_is_not_used_first_from_the_memo() {
    let mut h = H::new(two_udp());
    let uri = "sip:bob@example.test;transport=udp";
    let req = request(Method::Options, uri);
    h.send(&req, uri);
    let out = h.drain();
    assert_eq!(out.requests("OPTIONS")[0].0, sa("192.0.2.1:5060"));
    h.ep.handle_unreachable(h.now, sa("192.0.2.1:5060"));
    h.drain();
    for wait in [Duration::ZERO, Duration::from_secs(2)] {
        h.advance(wait);
        h.send(&req, uri);
        let out = h.drain();
        assert_eq!(out.requests("OPTIONS")[0].0, sa("192.0.2.2:5060"));
    }
}

// RFC 2782: targets of one priority share the requests by weight over time: the memo keeps
// one weighted draw for a second at most, then draws again.
#[test]
fn rfc2782_memoized_name_spreads_requests_over_equal_priority_targets() {
    let mut zone = Zone::default()
        .a("one.example.test", "192.0.2.1")
        .a("two.example.test", "192.0.2.2");
    zone.records.insert(
        ("_sip._udp.example.test".into(), RecordType::Srv),
        ["one", "two"]
            .iter()
            .map(|t| {
                Record::Srv(Srv {
                    priority: 10,
                    weight: 10,
                    port: 5060,
                    target: format!("{t}.example.test"),
                    ttl: 3600,
                })
            })
            .collect(),
    );
    let mut h = H::new(zone);
    let uri = "sip:bob@example.test;transport=udp";
    let req = request(Method::Options, uri);
    let mut first = HashMap::new();
    for _ in 0..40 {
        h.send(&req, uri);
        let out = h.drain();
        *first.entry(out.requests("OPTIONS")[0].0).or_insert(0) += 1;
        // (answered, so no target is marked down by a timeout)
        let (_, sent) = out.requests("OPTIONS").remove(0);
        let from = out.requests("OPTIONS")[0].0.to_string();
        h.respond(&sent, 200, &from, "");
        h.advance(Duration::from_millis(1500));
    }
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first.values().all(|n| *n >= 5), "{first:?}");
}

// RFC 3263 4.3: a request started from the memo (a warm cache, sent at once as one to an
// address is) fails over like one that waited for its lookup: Config::failover_timeout and
// then an ICMP error each move it to the next target with a new branch, under the
// same transaction, and the transaction user sees only the final outcome.
#[test]
fn rfc3263_4_3_request_from_the_memo_fails_over_with_a_new_branch() {
    let mut config = config();
    config.failover_timeout = Some(Duration::from_secs(2));
    let zone = two_udp().a("three.example.test", "192.0.2.3").srv(
        "_sip._udp.example.test",
        30,
        5060,
        "three.example.test",
    );
    let mut h = H::with(config, zone);
    let uri = "sip:bob@example.test;transport=udp";
    let req = request(Method::Options, uri);
    let warm = h.send(&req, uri);
    let out = h.drain();
    let (_, first) = out.requests("OPTIONS").remove(0);
    h.respond(&first, 200, "192.0.2.1:5060", "");
    assert_eq!(h.ep.transactions(), 1, "{warm:?} completed, absorbing");
    // The memo is warm now: this one is sent at once.
    let tx = h.ep.send_request(h.now, &req, NextHop::uri(uri)).unwrap();
    let (out, questions) = h.drain_unanswered();
    assert!(questions.is_empty());
    let (to, a) = out.requests("OPTIONS").remove(0);
    assert_eq!(to, sa("192.0.2.1:5060"));
    let out = h.advance(Duration::from_millis(2_500));
    assert!(out.events.is_empty(), "{:?}", out.events);
    let (to, b) = out.requests("OPTIONS").pop().unwrap();
    assert_eq!(to, sa("192.0.2.2:5060"));
    h.ep.handle_unreachable(h.now, to);
    let out = h.drain();
    assert!(out.events.is_empty(), "{:?}", out.events);
    let (to, c) = out.requests("OPTIONS").remove(0);
    assert_eq!(to, sa("192.0.2.3:5060"));
    let branches = [branch(&a), branch(&b), branch(&c)];
    assert!(branches[0] != branches[1] && branches[1] != branches[2]);
    let out = h.respond(&c, 200, "192.0.2.3:5060", "");
    assert!(matches!(out.events.as_slice(), [Event::Response { tx: t, .. }] if *t == tx));
    assert_eq!(h.ep.stats().failovers, 2);
}

// RFC 3261 17.1: an ACK is no client transaction, also to a name with a warm cache; and a
// request refused before anything was sent marks no target down (RFC 3263 4.3 is about
// targets that failed).
#[test]
fn rfc3263_4_3_refused_request_to_a_warm_name_marks_no_target_down() {
    let mut h = H::new(two_udp());
    let uri = "sip:bob@example.test;transport=udp";
    h.send(&request(Method::Options, uri), uri);
    h.drain();
    let ack = OwnedMessage::parse(
        b"ACK sip:bob@example.test SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let r = h.ep.send_request(h.now, &ack, NextHop::uri(uri));
    assert!(matches!(r, Err(SendError::NotARequest)), "{r:?}");
    assert!(!h
        .ep
        .resolver()
        .is_down(h.now, &Target::udp(sa("192.0.2.1:5060"))));
}
