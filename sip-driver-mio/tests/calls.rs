//! The call API of the mio driver (`sip_driver_mio::calls`): two drivers in one thread on
//! loopback, one calling the other, each run in short slices in turn. Bounded: every wait
//! has a deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::sdp::{Direction, LocalMedia};
use sip_core::session::{CallHandle, EndReason, Invite, SessionConfig};
use sip_core::{Config, OwnedMessage, Target, Transport};
use sip_driver_mio::calls::{CallContext, CallHandler, Calls};
use sip_driver_mio::{Driver, ListenSpec};

const DEADLINE: Duration = Duration::from_secs(10);

/// What a handler saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Incoming,
    Progress(u16),
    Answered(Option<String>),
    Offer(String, String),
    Answer(String),
    OfferRefused(u16),
    Ended(EndReason),
}

/// What the callee does with an incoming call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pickup {
    /// Rings and accepts at once with the answer to the offer (488 when nothing is common).
    Answer,
    /// Rings only.
    Ring,
}

/// A phone: its media, what it does with calls, what it saw.
struct Phone {
    media: LocalMedia,
    pickup: Pickup,
    seen: Vec<Seen>,
    call: Option<CallHandle>,
}

impl Phone {
    fn new(port: u16, pickup: Pickup) -> Phone {
        Phone {
            media: LocalMedia::new("127.0.0.1".parse().unwrap(), port, u64::from(port)),
            pickup,
            seen: Vec::new(),
            call: None,
        }
    }
}

fn text(sdp: &[u8]) -> String {
    String::from_utf8_lossy(sdp).into_owned()
}

impl CallHandler for Phone {
    fn on_incoming(
        &mut self,
        ctx: &mut CallContext<'_>,
        call: CallHandle,
        _request: &OwnedMessage,
        offer: Option<&[u8]>,
    ) {
        self.seen.push(Seen::Incoming);
        self.call = Some(call);
        ctx.ring(call, None).unwrap();
        if self.pickup == Pickup::Ring {
            return;
        }
        let answer = match offer {
            Some(offer) => self.media.answer(offer),
            None => Ok(self.media.offer(Direction::SendRecv)),
        };
        match answer {
            Ok(sdp) => ctx.accept(call, Some(sdp)).unwrap(),
            Err(e) => ctx.reject(call, e.status()).unwrap(),
        }
    }

    fn on_progress(
        &mut self,
        _ctx: &mut CallContext<'_>,
        _call: CallHandle,
        status: u16,
        _reason: &str,
        _sdp: Option<&[u8]>,
    ) {
        self.seen.push(Seen::Progress(status));
    }

    fn on_answered(&mut self, _ctx: &mut CallContext<'_>, _call: CallHandle, sdp: Option<&[u8]>) {
        self.seen.push(Seen::Answered(sdp.map(text)));
    }

    fn on_offer(&mut self, ctx: &mut CallContext<'_>, call: CallHandle, method: &str, sdp: &[u8]) {
        self.seen.push(Seen::Offer(method.to_owned(), text(sdp)));
        let answer = self.media.answer(sdp).map_err(|e| e.status());
        ctx.answer_offer(call, answer).unwrap();
    }

    fn on_answer(&mut self, _ctx: &mut CallContext<'_>, _call: CallHandle, sdp: &[u8]) {
        self.seen.push(Seen::Answer(text(sdp)));
    }

    fn on_offer_refused(&mut self, _ctx: &mut CallContext<'_>, _call: CallHandle, status: u16) {
        self.seen.push(Seen::OfferRefused(status));
    }

    fn on_ended(&mut self, _ctx: &mut CallContext<'_>, _call: CallHandle, reason: EndReason) {
        self.seen.push(Seen::Ended(reason));
    }
}

/// One side: its driver and call API.
struct Side {
    driver: Driver,
    calls: Calls<Phone>,
    addr: SocketAddr,
}

fn side(transport: &str, name: &str, phone: Phone, seed: u8) -> Side {
    let spec: ListenSpec = format!("{transport}:127.0.0.1:0").parse().unwrap();
    let driver = Driver::bind(&[spec], Config::default()).unwrap();
    let addr = driver.local_addrs()[0].addr;
    let calls = Calls::new(SessionConfig::new(name), [seed; 32], phone);
    Side {
        driver,
        calls,
        addr,
    }
}

/// Runs both sides in 5 ms slices until `done` holds (panics past the deadline).
fn run_until(a: &mut Side, b: &mut Side, what: &str, done: impl Fn(&Phone, &Phone) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done(a.calls.handler(), b.calls.handler()) {
        assert!(
            Instant::now() < deadline,
            "{what}: caller saw {:?}, callee saw {:?}",
            a.calls.handler().seen,
            b.calls.handler().seen
        );
        a.driver
            .run_for(&mut a.calls, Duration::from_millis(5))
            .unwrap();
        b.driver
            .run_for(&mut b.calls, Duration::from_millis(5))
            .unwrap();
    }
}

fn ended(p: &Phone) -> bool {
    p.seen.iter().any(|s| matches!(s, Seen::Ended(_)))
}

fn answered(p: &Phone) -> bool {
    p.seen.iter().any(|s| matches!(s, Seen::Answered(_)))
}

/// Alice (UDP, or `transport`) calls bob with `offer`.
fn place(transport: &str, bob: Pickup, offer: Option<Vec<u8>>) -> (Side, Side, CallHandle) {
    let mut alice = side(transport, "alice", Phone::new(4000, Pickup::Answer), 1);
    let bob = side(transport, "bob", Phone::new(5000, bob), 2);
    let target = match transport {
        "tcp" => Target::tcp(bob.addr),
        _ => Target::udp(bob.addr),
    };
    let uri = match transport {
        "tcp" => format!("sip:bob@{};transport=tcp", bob.addr),
        _ => format!("sip:bob@{}", bob.addr),
    };
    let mut invite = Invite::new(
        &uri,
        &format!("<sip:alice@{}>", alice.addr),
        &format!("<sip:bob@{}>", bob.addr),
        target,
    );
    let offer = offer.unwrap_or_else(|| alice.calls.handler_mut().media.offer(Direction::SendRecv));
    invite = invite.offer(offer);
    let call = alice
        .calls
        .call(alice.driver.endpoint_mut(), invite)
        .unwrap();
    alice.calls.handler_mut().call = Some(call);
    (alice, bob, call)
}

#[test]
fn rfc3261_13_a_call_is_rung_answered_and_ended_by_the_caller() {
    // RFC 3261 13.2, 13.3, 15.1; RFC 3264 6 (the answer in the 2xx).
    let (mut alice, mut bob, call) = place("udp", Pickup::Answer, None);
    run_until(&mut alice, &mut bob, "answered", |a, b| {
        answered(a) && answered(b)
    });
    let seen = &alice.calls.handler().seen;
    assert!(seen.contains(&Seen::Progress(180)), "{seen:?}");
    let Some(Seen::Answered(Some(answer))) = seen.iter().find(|s| matches!(s, Seen::Answered(_)))
    else {
        panic!("no answer SDP: {seen:?}");
    };
    assert!(answer.contains("m=audio 5000 RTP/AVP 0"), "{answer}");
    assert_eq!(alice.calls.sessions().dialogs(), 1);
    assert_eq!(bob.calls.sessions().dialogs(), 1);

    alice
        .calls
        .hangup(alice.driver.endpoint_mut(), call)
        .unwrap();
    run_until(&mut alice, &mut bob, "ended", |a, b| ended(a) && ended(b));
    assert_eq!(
        alice.calls.handler().seen.last(),
        Some(&Seen::Ended(EndReason::LocalBye))
    );
    assert_eq!(
        bob.calls.handler().seen,
        [
            Seen::Incoming,
            Seen::Answered(None),
            Seen::Ended(EndReason::RemoteBye)
        ]
    );
    assert_eq!(alice.calls.sessions().dialogs(), 0);
    assert_eq!(bob.calls.sessions().dialogs(), 0);
}

#[test]
fn rfc3261_12_1_1_a_call_over_tcp_gets_a_tcp_contact_and_ends() {
    // RFC 3261 12.1.1 / 18: the Contact of each side names TCP, so the BYE comes over TCP.
    let (mut alice, mut bob, call) = place("tcp", Pickup::Answer, None);
    run_until(&mut alice, &mut bob, "answered", |a, b| {
        answered(a) && answered(b)
    });
    let remote = alice
        .calls
        .sessions()
        .dialog(call)
        .unwrap()
        .remote_target()
        .to_owned();
    assert!(remote.contains("transport=tcp"), "{remote}");
    let bob_call = bob.calls.handler().call.unwrap();
    bob.calls
        .hangup(bob.driver.endpoint_mut(), bob_call)
        .unwrap();
    run_until(&mut alice, &mut bob, "ended", |a, b| ended(a) && ended(b));
    assert_eq!(
        alice.calls.handler().seen.last(),
        Some(&Seen::Ended(EndReason::RemoteBye))
    );
    assert_eq!(alice.driver.local_addr(Transport::Udp), None);
}

#[test]
fn rfc3261_15_1_the_callee_hangs_up() {
    // RFC 3261 15.1: either side may end the call with BYE.
    let (mut alice, mut bob, _) = place("udp", Pickup::Answer, None);
    run_until(&mut alice, &mut bob, "answered", |a, b| {
        answered(a) && answered(b)
    });
    let bob_call = bob.calls.handler().call.unwrap();
    bob.calls
        .hangup(bob.driver.endpoint_mut(), bob_call)
        .unwrap();
    run_until(&mut alice, &mut bob, "ended", |a, b| ended(a) && ended(b));
    assert_eq!(
        alice.calls.handler().seen.last(),
        Some(&Seen::Ended(EndReason::RemoteBye))
    );
    assert_eq!(
        bob.calls.handler().seen.last(),
        Some(&Seen::Ended(EndReason::LocalBye))
    );
    assert_eq!(bob.calls.sessions().dialogs(), 0);
}

#[test]
fn rfc3264_8_4_hold_and_resume_by_reinvite() {
    // RFC 3264 8.4: hold is a sendonly offer, answered recvonly; resume is sendrecv.
    let (mut alice, mut bob, call) = place("udp", Pickup::Answer, None);
    run_until(&mut alice, &mut bob, "answered", |a, b| {
        answered(a) && answered(b)
    });
    let answers = |p: &Phone| {
        p.seen
            .iter()
            .filter(|s| matches!(s, Seen::Answer(_)))
            .count()
    };
    let hold = alice.calls.handler_mut().media.offer(Direction::SendOnly);
    alice
        .calls
        .act(alice.driver.endpoint_mut(), |ctx, _| {
            ctx.reinvite(call, hold)
        })
        .unwrap();
    run_until(&mut alice, &mut bob, "held", |a, _| answers(a) == 1);
    let resume = alice.calls.handler_mut().media.offer(Direction::SendRecv);
    alice
        .calls
        .act(alice.driver.endpoint_mut(), |ctx, _| {
            ctx.reinvite(call, resume)
        })
        .unwrap();
    run_until(&mut alice, &mut bob, "resumed", |a, _| answers(a) == 2);
    let got: Vec<&String> = alice
        .calls
        .handler()
        .seen
        .iter()
        .filter_map(|s| match s {
            Seen::Answer(sdp) => Some(sdp),
            _ => None,
        })
        .collect();
    assert!(got[0].contains("a=recvonly"), "{}", got[0]);
    assert!(
        !got[1].contains("a=recvonly") && !got[1].contains("a=inactive"),
        "{}",
        got[1]
    );
    let offers: Vec<&Seen> = bob
        .calls
        .handler()
        .seen
        .iter()
        .filter(|s| matches!(s, Seen::Offer(..)))
        .collect();
    assert_eq!(offers.len(), 2, "bob saw both offers");
    alice
        .calls
        .hangup(alice.driver.endpoint_mut(), call)
        .unwrap();
    run_until(&mut alice, &mut bob, "ended", |a, b| ended(a) && ended(b));
}

#[test]
fn rfc3261_9_1_cancel_while_ringing() {
    // RFC 3261 9.1 / 9.2: the caller cancels a ringing call: 487, both sides end.
    let (mut alice, mut bob, call) = place("udp", Pickup::Ring, None);
    run_until(&mut alice, &mut bob, "ringing", |a, _| {
        a.seen.contains(&Seen::Progress(180))
    });
    alice
        .calls
        .hangup(alice.driver.endpoint_mut(), call)
        .unwrap();
    run_until(&mut alice, &mut bob, "cancelled", |a, b| {
        ended(a) && ended(b)
    });
    assert_eq!(
        alice.calls.handler().seen.last(),
        Some(&Seen::Ended(EndReason::Cancelled))
    );
    assert_eq!(
        bob.calls.handler().seen.last(),
        Some(&Seen::Ended(EndReason::Cancelled))
    );
    assert_eq!(alice.calls.sessions().calls(), 0);
    assert_eq!(bob.calls.sessions().calls(), 0);
}

#[test]
fn rfc3264_6_an_offer_without_a_common_codec_is_rejected_488() {
    // RFC 3264 6: nothing in common: 488 Not Acceptable Here.
    let g729 = b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
        .to_vec();
    let (mut alice, mut bob, _) = place("udp", Pickup::Answer, Some(g729));
    run_until(&mut alice, &mut bob, "rejected", |a, b| {
        ended(a) && ended(b)
    });
    assert_eq!(
        alice.calls.handler().seen.last(),
        Some(&Seen::Ended(EndReason::Rejected(488)))
    );
    assert_eq!(
        bob.calls.handler().seen.last(),
        Some(&Seen::Ended(EndReason::Rejected(488)))
    );
}

#[test]
fn rfc3311_5_1_an_update_offer_is_answered() {
    // RFC 3311 5.1 and 5.2: an UPDATE carries an offer inside the confirmed dialog; the
    // answer comes in its 2xx (hold: recvonly).
    let (mut alice, mut bob, call) = place("udp", Pickup::Answer, None);
    run_until(&mut alice, &mut bob, "answered", |a, b| {
        answered(a) && answered(b)
    });
    let hold = alice.calls.handler_mut().media.offer(Direction::SendOnly);
    alice
        .calls
        .act(alice.driver.endpoint_mut(), |ctx, _| ctx.update(call, hold))
        .unwrap();
    run_until(&mut alice, &mut bob, "updated", |a, _| {
        a.seen.iter().any(|s| matches!(s, Seen::Answer(_)))
    });
    let Some(Seen::Answer(answer)) = alice.calls.handler().seen.last().cloned() else {
        panic!("{:?}", alice.calls.handler().seen);
    };
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(
        bob.calls
            .handler()
            .seen
            .iter()
            .any(|s| matches!(s, Seen::Offer(m, _) if m == "UPDATE")),
        "{:?}",
        bob.calls.handler().seen
    );
    alice
        .calls
        .hangup(alice.driver.endpoint_mut(), call)
        .unwrap();
    run_until(&mut alice, &mut bob, "ended", |a, b| ended(a) && ended(b));
}
