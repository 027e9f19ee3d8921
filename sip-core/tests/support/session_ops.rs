//! Drives two user agents (Endpoint + Sessions) and a forking peer with an arbitrary byte
//! string read as a call script: calls placed both ways, rung, accepted, rejected, hung up,
//! re-INVITEs and answers, a peer that vanishes and comes back, raw datagrams, clock ticks;
//! over a network that loses, duplicates and reorders datagrams (chosen by the first byte).
//! The checks: nothing panics, the tables stay bounded, and once the virtual clock has run
//! past every timer no call, dialog, transaction or timer is left. Shared by the proptest in
//! `tests/session_props.rs` and the `session` cargo-fuzz target.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

#[path = "session_sim.rs"]
mod session_sim;

use session_sim::{addr, Net, NetConfig};
use sip_core::session::{CallHandle, Invite, Rel100, SessionConfig, SessionEvent, SessionTimer};
use sip_core::{Event, Method, ResponseBuilder, SeededRng, Target};

const A: &str = "127.0.0.2:5060";
const B: &str = "127.0.0.3:5060";
/// A peer that answers every INVITE from two branches (two To tags), each 180 then 200,
/// as a forking proxy relays them.
const FORK: &str = "127.0.0.4:5060";
const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const MAX_CALLS: usize = 8;

struct Script {
    net: Net,
    /// Live handles per UA (0: A, 1: B) as the script knows them.
    calls: [Vec<CallHandle>; 2],
    /// Offers waiting for an answer per UA.
    offers: [Vec<CallHandle>; 2],
    rng: SeededRng,
}

impl Script {
    /// Collects session events into the script's view, and plays the forking peer.
    fn settle(&mut self) {
        self.net.pump();
        for i in 0..2 {
            for e in self.net.events(i) {
                match e {
                    SessionEvent::Incoming { call, .. } => self.calls[i].push(call),
                    SessionEvent::Offer { call, .. } => self.offers[i].push(call),
                    SessionEvent::Ended { call, .. } => {
                        self.calls[i].retain(|c| *c != call);
                        self.offers[i].retain(|c| *c != call);
                    }
                    _ => {}
                }
            }
            // requests the session layer left to the application: answered 200
            for e in self.net.other(i) {
                if let Event::Request { tx, request, .. } = e {
                    let view = request.view();
                    let r = ResponseBuilder::from_view(&view, 200).build(&mut self.rng);
                    if let Ok(r) = r {
                        let now = self.net.now;
                        let _ = self.net.nodes[i].ep.send_response(now, tx, &r);
                    }
                }
            }
        }
        for e in self.net.other(2) {
            let Event::Request { tx, request, .. } = e else {
                continue;
            };
            let view = request.view();
            let codes: &[(u16, &str)] = match request.method() {
                Some(Method::Invite)
                    if !view
                        .header(sip_core::HeaderName::To)
                        .is_some_and(|t| t.contains("tag=")) =>
                {
                    &[(180, "f1"), (180, "f2"), (200, "f1"), (200, "f2")]
                }
                Some(Method::Ack) => &[],
                _ => &[(200, "x")],
            };
            for &(code, tag) in codes {
                let b = ResponseBuilder::from_view(&view, code)
                    .to_tag(tag)
                    .header("Contact", "<sip:fork@127.0.0.4:5060>");
                let b = if code == 200 && request.method() == Some(Method::Invite) {
                    b.body("application/sdp", SDP)
                } else {
                    b
                };
                if let Ok(r) = b.build(&mut self.rng) {
                    let now = self.net.now;
                    let _ = self.net.nodes[2].ep.send_response(now, tx, &r);
                }
            }
        }
        self.net.pump();
        for i in 0..2 {
            let s = self.net.s(i);
            assert!(s.calls() <= MAX_CALLS + 8, "calls bounded");
            assert!(s.dialogs() <= 4 * (MAX_CALLS + 8), "dialogs bounded");
        }
    }

    fn pick(&self, i: usize, arg: u8) -> Option<CallHandle> {
        let v = &self.calls[i];
        (!v.is_empty()).then(|| v[arg as usize % v.len()])
    }
}

/// Runs the script encoded in `data`.
pub fn run(data: &[u8]) {
    let first = data.first().copied().unwrap_or(0);
    let cfg = match first % 4 {
        0 => NetConfig::perfect(),
        1 => NetConfig {
            loss: 0.1,
            duplicate: 0.05,
            latency: (Duration::from_millis(5), Duration::from_millis(80)),
        },
        2 => NetConfig {
            loss: 0.3,
            duplicate: 0.2,
            latency: (Duration::from_millis(1), Duration::from_millis(300)),
        },
        _ => NetConfig {
            loss: 0.0,
            duplicate: 0.3,
            latency: (Duration::from_millis(1), Duration::from_millis(50)),
        },
    };
    let mut net = Net::new(u64::from(first), cfg);
    net.wire_cap = 4;
    for (n, (a, user)) in [(A, "a"), (B, "b")].into_iter().enumerate() {
        let mut c = SessionConfig::new(user);
        c.max_calls = MAX_CALLS;
        // RFC 3262 and RFC 4028 (h-ext), chosen by the first byte: 100rel disabled,
        // supported or required on each side; short session timers (refreshes and expiry
        // within the script), a larger Min-SE on B (422 and retry), or timers off.
        let bits = first >> 2;
        c.rel100 = match (bits >> (2 * n)) % 3 {
            0 => Rel100::Supported,
            1 => Rel100::Required,
            _ => Rel100::Disabled,
        };
        c.session_timer = match (bits >> 4) % 4 {
            0 => c.session_timer,
            1 => Some(SessionTimer {
                expires: 90,
                min_se: if n == 1 { 120 } else { 90 },
            }),
            2 => Some(SessionTimer {
                expires: 90,
                min_se: 90,
            }),
            _ => None,
        };
        net.add_ua(a, c);
    }
    net.add_raw(FORK);
    let mut s = Script {
        net,
        calls: [Vec::new(), Vec::new()],
        offers: [Vec::new(), Vec::new()],
        rng: SeededRng::new([first; 32]),
    };
    let mut i = 1;
    while i + 1 < data.len() {
        let (op, arg) = (data[i], data[i + 1]);
        i += 2;
        let side = usize::from(arg & 1);
        let now = s.net.now;
        match op % 10 {
            0 | 1 => {
                // a call: A to B, B to A, or A to the forking peer; with or without offer
                let (from, to) = match arg % 3 {
                    0 => (0, B),
                    1 => (1, A),
                    _ => (0, FORK),
                };
                let transport = if arg & 8 == 8 {
                    Target::tcp(addr(to))
                } else {
                    Target::udp(addr(to))
                };
                let mut inv = Invite::new(
                    &format!("sip:x@{to}"),
                    "<sip:me@example.com>",
                    "<sip:you@example.com>",
                    transport,
                );
                if arg & 4 == 0 {
                    inv = inv.offer(SDP.to_vec());
                }
                let node = &mut s.net.nodes[from];
                if let Ok(c) = node.s.as_mut().unwrap().invite(now, &mut node.ep, inv) {
                    s.calls[from].push(c);
                }
            }
            2 => {
                if let Some(c) = s.pick(side, arg >> 1) {
                    let node = &mut s.net.nodes[side];
                    let ses = node.s.as_mut().unwrap();
                    let _ = match arg >> 5 {
                        0 => ses.ring(now, &mut node.ep, c, None),
                        1 => ses.ring(now, &mut node.ep, c, Some(SDP.to_vec())),
                        2 => ses.reject(now, &mut node.ep, c, 486),
                        _ => ses.accept(now, &mut node.ep, c, Some(SDP.to_vec())),
                    };
                }
            }
            3 => {
                if let Some(c) = s.pick(side, arg >> 1) {
                    let node = &mut s.net.nodes[side];
                    let _ = node.s.as_mut().unwrap().hangup(now, &mut node.ep, c);
                }
            }
            4 if arg & 0x80 == 0x80 => {
                // every call re-INVITEs at once: glare on calls between A and B
                for side in 0..2 {
                    for c in s.calls[side].clone() {
                        let node = &mut s.net.nodes[side];
                        let _ =
                            node.s
                                .as_mut()
                                .unwrap()
                                .reinvite(now, &mut node.ep, c, SDP.to_vec());
                    }
                }
            }
            4 => {
                if let Some(c) = s.pick(side, arg >> 1) {
                    let node = &mut s.net.nodes[side];
                    let ses = node.s.as_mut().unwrap();
                    let _ = if arg & 0x40 == 0 {
                        ses.reinvite(now, &mut node.ep, c, SDP.to_vec())
                    } else {
                        // RFC 3311 (h-ext), early or confirmed
                        ses.update(now, &mut node.ep, c, SDP.to_vec())
                    };
                }
            }
            5 => {
                if let Some(c) = s.offers[side].pop() {
                    let answer = if arg & 2 == 0 {
                        Ok(SDP.to_vec())
                    } else {
                        Err(488)
                    };
                    let node = &mut s.net.nodes[side];
                    let _ = node
                        .s
                        .as_mut()
                        .unwrap()
                        .answer_offer(now, &mut node.ep, c, answer);
                }
            }
            6 | 7 => s.net.run_for(Duration::from_millis(u64::from(arg) * 40)),
            8 => {
                // a peer vanishes, or comes back
                let n = usize::from(arg % 3);
                s.net.nodes[n].down = !s.net.nodes[n].down;
            }
            _ => {
                // raw bytes from the forking peer's address
                let len = usize::from(arg).min(data.len() - i);
                let bytes = data[i..i + len].to_vec();
                i += len;
                s.net.inject(addr(FORK), side, &bytes);
            }
        }
        s.settle();
    }
    // Session timers run (refreshes, a vanished peer's session expiring: RFC 4028), then
    // what is still up is hung up: two live peers refreshing a session keep it for ever.
    s.net.run_for(Duration::from_secs(600));
    s.settle();
    for side in 0..2 {
        for c in s.calls[side].clone() {
            let now = s.net.now;
            let node = &mut s.net.nodes[side];
            let _ = node.s.as_mut().unwrap().hangup(now, &mut node.ep, c);
        }
    }
    s.settle();
    // Everything ends: the peers come back or not, the clock runs past every timer
    // (max_lifetime included).
    for _ in 0..8 {
        s.net.drain(Duration::from_secs(3 * 3600));
        s.settle();
    }
    if std::env::var("SESSION_OPS_STATS").is_ok() {
        eprintln!("{:?} {:?}", s.net.s(0).stats(), s.net.s(1).stats());
    }
    for i in 0..2 {
        let ses = s.net.s(i);
        assert_eq!(
            (ses.calls(), ses.dialogs()),
            (0, 0),
            "node {i}: calls and dialogs freed"
        );
        assert_eq!(ses.poll_timeout(), None, "node {i}: no timer left");
    }
    for (i, n) in s.net.nodes.iter().enumerate() {
        assert_eq!(n.ep.transactions(), 0, "node {i}: no transaction left");
    }
}
