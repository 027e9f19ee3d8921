//! Drives a Proxy and its Endpoint with an arbitrary byte string read as a sequence of
//! inputs (raw datagrams, requests from a UAC, responses from the UASes to what the proxy
//! forwarded, looped requests, CANCELs, clock ticks), checking the invariants: nothing
//! panics, the context and transaction tables stay within their bounds, and once the clock
//! has run past every timer no context, transaction or timer is left. Shared by the proptest in
//! `tests/proxy_props.rs` and the `proxy` cargo-fuzz target.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::proxy::{Forking, Proxy, ProxyConfig, ProxyTarget, Received};
use sip_core::{
    response_to, Config, Endpoint, FlowEvent, IoRequest, Listener, OwnedMessage, SeededRng, Target,
    Transport,
};

const MAX_CONTEXTS: usize = 4;
const MAX_TX: usize = 32;

fn seed_request(kind: u8, n: u8) -> Vec<u8> {
    let (method, extra, uri) = match kind % 7 {
        0 => ("INVITE", "", "sip:bob@example.com"),
        1 => ("OPTIONS", "", "sip:bob@example.com"),
        2 => ("CANCEL", "", "sip:bob@example.com"),
        3 => (
            "BYE",
            "Route: <sip:127.0.0.1:5060;lr>, <sip:127.0.0.3:5060;lr>\r\n",
            "sip:bob@127.0.0.3",
        ),
        4 => ("INVITE", "Max-Forwards: 0\r\n", "sip:bob@example.com"),
        5 => ("INVITE", "Proxy-Require: x\r\n", "sip:bob@example.com"),
        _ => (
            "ACK",
            "Route: <sip:127.0.0.1:5060;lr>\r\n",
            "sip:bob@127.0.0.3",
        ),
    };
    let mf = if extra.contains("Max-Forwards") {
        ""
    } else {
        "Max-Forwards: 70\r\n"
    };
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKu{n}\r\n\
         {mf}{extra}From: <sip:alice@example.com>;tag=a{n}\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: call-{n}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

struct Harness {
    now: Instant,
    ep: Endpoint,
    proxy: Proxy,
    /// Requests the proxy sent downstream (the last few).
    sent: Vec<(SocketAddr, Vec<u8>)>,
    rng: SeededRng,
    routed: u64,
}

const ME: &str = "127.0.0.1:5060";
const UAC: &str = "127.0.0.2:5060";

impl Harness {
    fn drain(&mut self) {
        let me: SocketAddr = ME.parse().unwrap();
        let mut buf = Vec::new();
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(ev) = self.ep.poll_event() {
                moved = true;
                match self.proxy.receive(self.now, ev, &mut self.ep) {
                    Received::Route(inbound) => {
                        self.routed += 1;
                        let bob = ProxyTarget::new("sip:bob@127.0.0.3:5060");
                        let carol =
                            ProxyTarget::new("sip:carol@127.0.0.4:5060;transport=tcp").q(500);
                        let name = ProxyTarget::new("sip:dave@example.net");
                        let targets = match self.routed % 4 {
                            0 => vec![bob],
                            1 => vec![bob, carol],
                            2 => vec![bob, carol, name],
                            _ => vec![],
                        };
                        let _ = self.proxy.forward(self.now, inbound, targets, &mut self.ep);
                    }
                    Received::NotMine(_) | Received::Handled => {}
                    _ => {}
                }
                assert!(self.proxy.contexts() <= MAX_CONTEXTS);
            }
            while let Some(t) = self.ep.poll_transmit(&mut buf) {
                moved = true;
                let is_request = !buf.starts_with(b"SIP/2.0");
                if is_request && t.remote != me {
                    if self.sent.len() == 8 {
                        self.sent.remove(0);
                    }
                    self.sent.push((t.remote, buf.clone()));
                }
            }
            while let Some(io) = self.ep.poll_io() {
                moved = true;
                if let IoRequest::Connect { flow, .. } = io {
                    self.ep.handle_flow_event(self.now, flow, FlowEvent::Failed);
                }
            }
            // A name target (sip:dave@example.net) does not resolve here: NXDOMAIN.
            while let Some(q) = self.ep.poll_dns() {
                moved = true;
                let answer = sip_core::resolve::Answer::NxDomain { ttl: 60 };
                self.ep.handle_dns_answer(self.now, q.id, answer);
            }
            if !moved {
                return;
            }
        }
        panic!("the proxy did not settle");
    }

    fn tick(&mut self, d: Duration) {
        self.now += d;
        self.ep.handle_timeout(self.now);
        self.proxy.handle_timeout(self.now, &mut self.ep);
        self.drain();
    }
}

/// Runs the inputs encoded in `data`.
pub fn run(data: &[u8]) {
    let me: SocketAddr = ME.parse().unwrap();
    let uac: SocketAddr = UAC.parse().unwrap();
    let config = Config {
        listeners: vec![
            Listener::new(Transport::Udp, me),
            Listener::new(Transport::Tcp, me),
        ],
        max_transactions: MAX_TX,
        ..Config::default()
    };
    let mut pc = ProxyConfig::new(Some("sip:127.0.0.1:5060;lr"));
    pc.max_contexts = MAX_CONTEXTS;
    pc.max_branches = 3;
    if data.first().is_some_and(|b| b & 1 == 1) {
        pc.forking = Forking::Sequential;
    }
    // RFC 3261 16.11: the stateless mode too.
    pc.stateless = data.first().is_some_and(|b| b & 2 == 2);
    let mut h = Harness {
        now: Instant::now(),
        ep: Endpoint::new(config, [5; 32]),
        proxy: Proxy::new(pc, [6; 32]),
        sent: Vec::new(),
        rng: SeededRng::new([7; 32]),
        routed: 0,
    };
    let mut i = 0;
    while i + 1 < data.len() {
        let (op, arg) = (data[i], data[i + 1]);
        i += 2;
        match op % 6 {
            0 => {
                let len = (arg as usize * 4).min(data.len() - i);
                let bytes = data[i..i + len].to_vec();
                i += len;
                h.ep.handle_datagram(h.now, me, uac, &bytes);
            }
            1 => {
                let req = seed_request(arg, arg / 7);
                h.ep.handle_datagram(h.now, me, uac, &req);
            }
            2 => {
                // A UAS answers one of the requests the proxy forwarded.
                if let Some((from, req)) = h.sent.get(arg as usize % h.sent.len().max(1)).cloned() {
                    let code = [100, 180, 183, 200, 401, 407, 486, 503, 603][arg as usize % 9];
                    if let Ok(m) = OwnedMessage::parse(&req) {
                        if let Ok(msg) = m.message() {
                            if msg.method().is_some_and(|m| m.as_str() != "ACK") {
                                if let Ok(resp) = response_to(&msg, code, &mut h.rng) {
                                    h.ep.handle_datagram(h.now, me, from, resp.as_bytes());
                                }
                            }
                        }
                    }
                }
            }
            3 => h.tick(Duration::from_millis(arg as u64 * 250)),
            4 => {
                // A forwarded request comes back (a loop), or is replayed as is.
                if let Some((from, req)) = h.sent.get(arg as usize % h.sent.len().max(1)).cloned() {
                    h.ep.handle_datagram(h.now, me, from, &req);
                }
            }
            _ => {
                // The UAC retransmits or cancels its latest INVITE.
                let req = seed_request(if arg & 1 == 0 { 0 } else { 2 }, arg / 2 % 8 * 7 / 7);
                h.ep.handle_datagram(h.now, me, uac, &req);
            }
        }
        h.drain();
        assert!(h.proxy.contexts() <= MAX_CONTEXTS);
        assert!(h.ep.transactions() <= MAX_TX);
    }
    // Everything ends: run the clock well past timer C, 64*T1 and the lingering contexts.
    for _ in 0..40 {
        h.tick(Duration::from_secs(30));
    }
    assert_eq!(h.proxy.contexts(), 0, "every context ended");
    assert_eq!(h.ep.transactions(), 0, "every transaction ended");
    assert_eq!(h.proxy.poll_timeout(), None);
    let _ = Target::udp(me);
}
