//! RFC 3262 (100rel, PRACK), RFC 3311 (UPDATE) and RFC 4028 (session timers) end to end: two
//! Endpoints with a Sessions layer each, joined by a lossless virtual UDP network on a virtual
//! clock. A filter can drop what one side sends (a PRACK, every message of a vanished peer).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::session::{
    CallHandle, EndReason, Invite, Rel100, SessionConfig, SessionEvent, SessionTimer, Sessions,
};
use sip_core::{Config, Endpoint, Listener, Message, Target, Transport};

const ALICE: &str = "127.0.0.1:5060";
const BOB: &str = "127.0.0.2:5060";
const OFFER: &[u8] = b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const ANSWER: &[u8] = b"v=0\r\no=b 2 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One user agent: an endpoint, its sessions, the events they gave, what it sent.
struct Ua {
    local: SocketAddr,
    endpoint: Endpoint,
    sessions: Sessions,
    events: Vec<SessionEvent>,
    /// Every message this side put on the wire (start line and all), in order.
    sent: Vec<Vec<u8>>,
}

impl Ua {
    fn new(local: &str, config: SessionConfig, seed: u8) -> Ua {
        let local = addr(local);
        let ep_config = Config {
            listeners: vec![Listener::new(Transport::Udp, local)],
            ..Config::default()
        };
        Ua {
            local,
            endpoint: Endpoint::new(ep_config, [seed; 32]),
            sessions: Sessions::new(config, [seed.wrapping_add(100); 32]),
            events: Vec::new(),
            sent: Vec::new(),
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        [self.endpoint.poll_timeout(), self.sessions.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers due, then drains the endpoint's events into the session layer.
    fn pump(&mut self, now: Instant) {
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        if self.sessions.poll_timeout().is_some_and(|t| t <= now) {
            self.sessions.handle_timeout(now, &mut self.endpoint);
        }
        while let Some(event) = self.endpoint.poll_event() {
            // what the session layer hands back is not this test's business
            let _ = self.sessions.handle_event(now, event, &mut self.endpoint);
        }
        while let Some(event) = self.sessions.poll_event() {
            self.events.push(event);
        }
    }
}

/// Which messages the network drops: `(from_alice, message) -> drop?`.
type Filter = Box<dyn FnMut(bool, &Message<'_>) -> bool>;

struct Net {
    now: Instant,
    alice: Ua,
    bob: Ua,
    filter: Filter,
    /// Rewrites what passes: `(from_alice, bytes) -> bytes`.
    rewrite: Box<dyn FnMut(bool, Vec<u8>) -> Vec<u8>>,
}

impl Net {
    fn new(alice: SessionConfig, bob: SessionConfig) -> Net {
        Net {
            now: Instant::now(),
            alice: Ua::new(ALICE, alice, 1),
            bob: Ua::new(BOB, bob, 2),
            filter: Box::new(|_, _| false),
            rewrite: Box::new(|_, b| b),
        }
    }

    /// Moves every datagram either side wants to send (dropping what the filter says), until
    /// both are quiet at this instant.
    fn settle(&mut self) {
        let mut buf = Vec::new();
        for _ in 0..1000 {
            self.alice.pump(self.now);
            self.bob.pump(self.now);
            let mut moved = false;
            for from_alice in [true, false] {
                let (src, dst) = if from_alice {
                    (&mut self.alice, &mut self.bob)
                } else {
                    (&mut self.bob, &mut self.alice)
                };
                while let Some(t) = src.endpoint.poll_transmit(&mut buf) {
                    moved = true;
                    src.sent.push(buf.clone());
                    let drop = Message::parse(&buf).is_ok_and(|m| (self.filter)(from_alice, &m));
                    if !drop && t.remote == dst.local {
                        let bytes = (self.rewrite)(from_alice, buf.clone());
                        dst.endpoint
                            .handle_datagram(self.now, dst.local, src.local, &bytes);
                    }
                }
                while src.endpoint.poll_io().is_some() {}
            }
            if !moved {
                return;
            }
        }
        panic!("the two sides never went quiet");
    }

    /// Advances the virtual clock to `until`, firing each timer at its instant.
    fn run_until(&mut self, until: Instant) {
        self.settle();
        loop {
            let next = [self.alice.next_timeout(), self.bob.next_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
        self.settle();
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn invite(&mut self, invite: Invite) -> CallHandle {
        let call = self
            .alice
            .sessions
            .invite(self.now, &mut self.alice.endpoint, invite)
            .unwrap();
        self.settle();
        call
    }

    /// Bob's handle of the incoming call.
    fn incoming(&self) -> CallHandle {
        self.bob
            .events
            .iter()
            .find_map(|e| match e {
                SessionEvent::Incoming { call, .. } => Some(*call),
                _ => None,
            })
            .expect("an incoming call")
    }
}

fn invite_to_bob() -> Invite {
    Invite::new(
        &format!("sip:bob@{BOB}"),
        &format!("<sip:alice@{ALICE}>"),
        &format!("<sip:bob@{BOB}>"),
        Target::udp(addr(BOB)),
    )
}

fn config(rel100: Rel100, timer: Option<SessionTimer>) -> SessionConfig {
    let mut c = SessionConfig::new("ua");
    c.rel100 = rel100;
    c.session_timer = timer;
    c
}

/// The start lines (`SIP/2.0 180 Ringing`, `PRACK sip:...`) a side sent, in order.
fn start_lines(sent: &[Vec<u8>]) -> Vec<String> {
    sent.iter()
        .map(|m| {
            let end = m.windows(2).position(|w| w == b"\r\n").unwrap_or(m.len());
            String::from_utf8_lossy(&m[..end]).into_owned()
        })
        .collect()
}

fn count(sent: &[Vec<u8>], prefix: &str) -> usize {
    start_lines(sent)
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

/// How many different requests (CSeq numbers) starting with `start` a side sent:
/// retransmissions count once.
fn distinct_cseqs(sent: &[Vec<u8>], start: &str) -> usize {
    let mut seen: Vec<String> = sent
        .iter()
        .filter(|m| m.starts_with(start.as_bytes()))
        .filter_map(|m| {
            let v = sip_core::MessageView::parse(m).ok()?;
            let cseq = v.header(sip_core::HeaderName::CSeq).map(str::to_owned);
            cseq
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen.len()
}

fn header_of(sent: &[Vec<u8>], start: &str, name: &str) -> Option<String> {
    sent.iter().rev().find_map(|m| {
        if !m.starts_with(start.as_bytes()) {
            return None;
        }
        let m = sip_core::MessageView::parse(m).ok()?;
        let value = m
            .headers()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.to_owned());
        value
    })
}

fn ended(ua: &Ua) -> Option<EndReason> {
    ua.events.iter().find_map(|e| match e {
        SessionEvent::Ended { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn answered(ua: &Ua) -> bool {
    ua.events
        .iter()
        .any(|e| matches!(e, SessionEvent::Answered { .. }))
}

/// A call with 100rel required by Alice, rung by Bob (`early`: SDP in the 183), up to the
/// reliable provisional. Returns Bob's handle.
fn reliable_ringing(net: &mut Net, early: Option<Vec<u8>>, offer: bool) -> CallHandle {
    let mut inv = invite_to_bob().rel100(Rel100::Required);
    if offer {
        inv = inv.offer(OFFER.to_vec());
    }
    net.invite(inv);
    let call = net.incoming();
    net.bob
        .sessions
        .ring(net.now, &mut net.bob.endpoint, call, early)
        .unwrap();
    net.settle();
    call
}

#[test]
fn reliable_180_retransmitted_until_prack() {
    // RFC 3262 3: the reliable 1xx is retransmitted (T1, doubling) until its PRACK
    let mut net = Net::new(
        config(Rel100::Supported, None),
        config(Rel100::Supported, None),
    );
    let drop_prack = std::rc::Rc::new(std::cell::Cell::new(true));
    let d = drop_prack.clone();
    net.filter = Box::new(move |_, m| d.get() && m.method() == Some(sip_core::Method::Prack));
    reliable_ringing(&mut net, None, true);
    assert_eq!(count(&net.bob.sent, "SIP/2.0 180"), 1);
    assert!(header_of(&net.bob.sent, "SIP/2.0 180", "RSeq").is_some());
    assert_eq!(
        header_of(&net.bob.sent, "SIP/2.0 180", "Require").as_deref(),
        Some("100rel")
    );
    net.run_for(Duration::from_millis(3600)); // T1 + 2T1 + 4T1 = 3.5 s
    assert_eq!(count(&net.bob.sent, "SIP/2.0 180"), 4);
    assert_eq!(net.bob.sessions.stats().rel1xx_retransmissions, 3);
    // retransmissions are not processed again: one PRACK per reliable 1xx (RFC 3262 4;
    // its own transaction retransmits it, with the same CSeq)
    assert_eq!(distinct_cseqs(&net.alice.sent, "PRACK "), 1);
    drop_prack.set(false);
    net.run_for(Duration::from_secs(4));
    let n = count(&net.bob.sent, "SIP/2.0 180");
    net.run_for(Duration::from_secs(20));
    assert_eq!(
        count(&net.bob.sent, "SIP/2.0 180"),
        n,
        "retransmission stopped"
    );
}

#[test]
fn prack_gets_200_and_rack_matches_rseq() {
    // RFC 3262 3, 7.2: the PRACK carries RAck (RSeq, CSeq, method) and gets 200
    let mut net = Net::new(
        config(Rel100::Supported, None),
        config(Rel100::Supported, None),
    );
    reliable_ringing(&mut net, None, true);
    let rseq = header_of(&net.bob.sent, "SIP/2.0 180", "RSeq").unwrap();
    let rack = header_of(&net.alice.sent, "PRACK ", "RAck").unwrap();
    assert!(rack.starts_with(&format!("{rseq} ")), "{rack} for {rseq}");
    assert!(rack.ends_with(" INVITE"));
    let lines = start_lines(&net.bob.sent);
    assert!(lines.iter().any(|l| l == "SIP/2.0 200 OK"), "{lines:?}");
    assert!(header_of(&net.bob.sent, "SIP/2.0 200", "CSeq")
        .unwrap()
        .ends_with("PRACK"));
}

#[test]
fn uas_requiring_100rel_rejects_a_uac_without_it_with_421() {
    // RFC 3262 3 (no reliable 1xx without Supported), RFC 3261 21.4.16: 421 + Require
    let mut net = Net::new(
        config(Rel100::Disabled, None),
        config(Rel100::Required, None),
    );
    net.invite(invite_to_bob().offer(OFFER.to_vec()));
    assert_eq!(ended(&net.alice), Some(EndReason::Rejected(421)));
    assert_eq!(
        header_of(&net.bob.sent, "SIP/2.0 421", "Require").as_deref(),
        Some("100rel")
    );
}

#[test]
fn no_2xx_before_the_prack_of_a_1xx_with_sdp() {
    // RFC 3262 3: a 2xx waits for the PRACK of a reliable 1xx carrying a session description
    let mut net = Net::new(
        config(Rel100::Supported, None),
        config(Rel100::Supported, None),
    );
    let drop_prack = std::rc::Rc::new(std::cell::Cell::new(true));
    let d = drop_prack.clone();
    net.filter = Box::new(move |_, m| d.get() && m.method() == Some(sip_core::Method::Prack));
    let call = reliable_ringing(&mut net, Some(ANSWER.to_vec()), true);
    assert_eq!(count(&net.bob.sent, "SIP/2.0 183"), 1);
    net.bob
        .sessions
        .accept(net.now, &mut net.bob.endpoint, call, Some(ANSWER.to_vec()))
        .unwrap();
    net.run_for(Duration::from_secs(2));
    assert!(
        !start_lines(&net.bob.sent)
            .iter()
            .any(|l| l.starts_with("SIP/2.0 200")),
        "no 200 before the PRACK"
    );
    drop_prack.set(false);
    net.run_for(Duration::from_secs(3));
    assert!(answered(&net.alice), "{:?}", net.alice.events);
    assert!(answered(&net.bob));
}

#[test]
fn offer_in_reliable_183_answered_in_prack() {
    // RFC 3262 5: offerless INVITE, offer in the reliable 183, answer in the PRACK
    let mut net = Net::new(
        config(Rel100::Supported, None),
        config(Rel100::Supported, None),
    );
    let bob_call = reliable_ringing(&mut net, Some(OFFER.to_vec()), false);
    let (alice_call, sdp) = net
        .alice
        .events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Offer { call, sdp, .. } => Some((*call, sdp.clone())),
            _ => None,
        })
        .expect("the offer of the 183 reaches Alice");
    assert_eq!(sdp, OFFER);
    net.alice
        .sessions
        .answer_offer(
            net.now,
            &mut net.alice.endpoint,
            alice_call,
            Ok(ANSWER.to_vec()),
        )
        .unwrap();
    net.settle();
    let prack = net
        .alice
        .sent
        .iter()
        .rev()
        .find(|m| m.starts_with(b"PRACK "))
        .expect("a PRACK");
    assert!(prack.ends_with(ANSWER), "the answer is in the PRACK");
    assert!(net.bob.events.iter().any(|e| matches!(
        e,
        SessionEvent::Answer { call, sdp } if *call == bob_call && sdp == ANSWER
    )));
    net.bob
        .sessions
        .accept(
            net.now,
            &mut net.bob.endpoint,
            bob_call,
            Some(OFFER.to_vec()),
        )
        .unwrap();
    net.settle();
    assert!(answered(&net.alice));
    // the 2xx repeats the offer already answered: the ACK goes at once, without a new offer
    assert!(answered(&net.bob), "{:?}", net.bob.events);
    let offers = net
        .alice
        .events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Offer { .. }))
        .count();
    assert_eq!(offers, 1);
}

#[test]
fn uas_gives_up_at_64_t1_without_prack() {
    // RFC 3262 3: 64*T1 without PRACK → the INVITE is rejected with a 5xx
    let mut net = Net::new(
        config(Rel100::Supported, None),
        config(Rel100::Supported, None),
    );
    net.filter = Box::new(|_, m| m.method() == Some(sip_core::Method::Prack));
    reliable_ringing(&mut net, None, true);
    net.run_for(Duration::from_millis(31_900));
    assert!(ended(&net.bob).is_none());
    net.run_for(Duration::from_secs(2));
    let status = match ended(&net.alice) {
        Some(EndReason::Rejected(s)) => s,
        other => panic!("{other:?}"),
    };
    assert!((500..600).contains(&status));
    assert!(ended(&net.bob).is_some());
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.bob.sessions.dialogs(), 0);
    assert_eq!(net.alice.sessions.dialogs(), 0);
}

/// An established call (offer in the INVITE, answer in the 200).
fn established(net: &mut Net, invite: Invite) -> (CallHandle, CallHandle) {
    let alice_call = net.invite(invite.offer(OFFER.to_vec()));
    let bob_call = net.incoming();
    net.bob
        .sessions
        .accept(
            net.now,
            &mut net.bob.endpoint,
            bob_call,
            Some(ANSWER.to_vec()),
        )
        .unwrap();
    net.settle();
    assert!(answered(&net.alice), "{:?}", net.alice.events);
    assert!(answered(&net.bob), "{:?}", net.bob.events);
    (alice_call, bob_call)
}

fn offers_to(ua: &Ua, method: &str) -> usize {
    ua.events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Offer { method: m, .. } if m == method))
        .count()
}

fn answer_all(net: &mut Net, bob: bool) {
    let ua = if bob { &mut net.bob } else { &mut net.alice };
    let mut pending = Vec::new();
    ua.events.retain(|e| match e {
        SessionEvent::Offer { call, .. } => {
            pending.push(*call);
            false
        }
        _ => true,
    });
    for call in pending {
        ua.sessions
            .answer_offer(net.now, &mut ua.endpoint, call, Ok(ANSWER.to_vec()))
            .unwrap();
    }
    net.settle();
}

#[test]
fn update_in_confirmed_dialog_offer_in_request_answer_in_2xx() {
    // RFC 3311 5: offer in the UPDATE, answer in its 2xx
    let mut net = Net::new(
        config(Rel100::Supported, None),
        config(Rel100::Supported, None),
    );
    let (alice_call, _) = established(&mut net, invite_to_bob());
    net.alice
        .sessions
        .update(net.now, &mut net.alice.endpoint, alice_call, OFFER.to_vec())
        .unwrap();
    net.settle();
    assert_eq!(offers_to(&net.bob, "UPDATE"), 1);
    answer_all(&mut net, true);
    assert!(net
        .alice
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::Answer { sdp, .. } if sdp == ANSWER)));
    // RFC 3311 5.1, 5.2: a target refresh request: Contact in the UPDATE and in its 2xx
    assert!(header_of(&net.alice.sent, "UPDATE ", "Contact").is_some());
    let ok = net
        .bob
        .sent
        .iter()
        .rev()
        .find(|m| {
            m.starts_with(b"SIP/2.0 200") && String::from_utf8_lossy(m).contains(" UPDATE\r\n")
        })
        .expect("the 200 to the UPDATE");
    let ok = sip_core::MessageView::parse(ok).unwrap();
    assert!(ok.header(sip_core::HeaderName::Contact).is_some());
    assert!(ok.body().ends_with(ANSWER));
    // RFC 3311 5.1: Allow lists UPDATE (and PRACK) so that the peer knows it may use them
    let allow = header_of(&net.bob.sent, "SIP/2.0 200", "Allow").unwrap_or_default();
    assert!(
        allow.contains("UPDATE") && allow.contains("PRACK"),
        "{allow}"
    );
}

#[test]
fn update_in_early_dialog_after_the_reliable_answer() {
    // RFC 3311 5.1: UPDATE in an early dialog once the first offer/answer completed
    let mut net = Net::new(
        config(Rel100::Supported, None),
        config(Rel100::Supported, None),
    );
    reliable_ringing(&mut net, Some(ANSWER.to_vec()), true);
    let alice_call = net
        .alice
        .events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Progress { call, .. } => Some(*call),
            _ => None,
        })
        .expect("progress");
    net.alice
        .sessions
        .update(net.now, &mut net.alice.endpoint, alice_call, OFFER.to_vec())
        .unwrap();
    net.settle();
    assert_eq!(offers_to(&net.bob, "UPDATE"), 1);
    answer_all(&mut net, true);
    assert!(net
        .alice
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::Answer { .. })));
    assert!(!answered(&net.alice), "still early");
}

#[test]
fn update_glare_gets_491_and_is_retried() {
    // RFC 3311 5.2: an UPDATE offer while ours is pending gets 491; retried after 14.1 timers
    let mut net = Net::new(
        config(Rel100::Supported, None),
        config(Rel100::Supported, None),
    );
    let (alice_call, bob_call) = established(&mut net, invite_to_bob());
    net.alice
        .sessions
        .update(net.now, &mut net.alice.endpoint, alice_call, OFFER.to_vec())
        .unwrap();
    net.bob
        .sessions
        .update(net.now, &mut net.bob.endpoint, bob_call, ANSWER.to_vec())
        .unwrap();
    net.settle();
    // each side has its own offer pending: both UPDATEs get 491
    assert_eq!(count(&net.alice.sent, "SIP/2.0 491"), 1);
    assert_eq!(count(&net.bob.sent, "SIP/2.0 491"), 1);
    for _ in 0..10 {
        net.run_for(Duration::from_millis(500));
        answer_all(&mut net, true);
        answer_all(&mut net, false);
    }
    assert!(ended(&net.alice).is_none() && ended(&net.bob).is_none());
    // RFC 3261 14.1 timers: the retries do not collide for ever; both offers get answered
    let answers = |ua: &Ua| {
        ua.events
            .iter()
            .filter(|e| matches!(e, SessionEvent::Answer { .. }))
            .count()
    };
    assert_eq!(answers(&net.alice), 1, "{:?}", net.alice.events);
    assert_eq!(answers(&net.bob), 1, "{:?}", net.bob.events);
}

#[test]
fn session_timer_422_then_retry_with_min_se() {
    // RFC 4028 7.3 / 9: Session-Expires below the UAS's Min-SE → 422, retried with its Min-SE
    let timer = |expires, min_se| Some(SessionTimer { expires, min_se });
    let mut net = Net::new(
        config(Rel100::Supported, timer(1800, 90)),
        config(Rel100::Supported, timer(1800, 600)),
    );
    established(&mut net, invite_to_bob().session_expires(120));
    assert_eq!(count(&net.bob.sent, "SIP/2.0 422"), 1);
    assert_eq!(
        header_of(&net.bob.sent, "SIP/2.0 422", "Min-SE").as_deref(),
        Some("600")
    );
    let se = header_of(&net.bob.sent, "SIP/2.0 200", "Session-Expires").unwrap();
    assert!(se.starts_with("600"), "{se}");
    // the retry: a new CSeq, the same Call-ID and From tag (RFC 4028 7.3, RFC 3261 8.1.3.5)
    assert_eq!(distinct_cseqs(&net.alice.sent, "INVITE "), 2);
    let ids: Vec<(String, String)> = net
        .alice
        .sent
        .iter()
        .filter(|m| m.starts_with(b"INVITE "))
        .map(|m| {
            let v = sip_core::MessageView::parse(m).unwrap();
            let id = v.header(sip_core::HeaderName::CallId).unwrap().to_owned();
            let from = v.header(sip_core::HeaderName::From).unwrap().to_owned();
            (id, from)
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(
        header_of(&net.alice.sent, "INVITE ", "Min-SE").as_deref(),
        Some("600")
    );
}

#[test]
fn session_refresh_keeps_the_call() {
    // RFC 4028 10: the refresher refreshes at half the interval (UPDATE when allowed)
    let timer = Some(SessionTimer {
        expires: 90,
        min_se: 90,
    });
    let mut net = Net::new(
        config(Rel100::Supported, timer),
        config(Rel100::Supported, timer),
    );
    established(&mut net, invite_to_bob());
    net.run_for(Duration::from_secs(600));
    assert!(ended(&net.alice).is_none(), "{:?}", net.alice.events);
    assert!(ended(&net.bob).is_none(), "{:?}", net.bob.events);
    let refreshes = count(&net.alice.sent, "UPDATE ") + count(&net.bob.sent, "UPDATE ");
    assert!(refreshes >= 600 / 45 - 1, "{refreshes} refreshes");
    assert_eq!(
        net.alice.sessions.stats().session_refreshes as usize,
        distinct_cseqs(&net.alice.sent, "UPDATE ")
    );
}

#[test]
fn silent_peer_gets_bye_at_session_expiry_and_the_dialog_is_freed() {
    // RFC 4028 10: no refresh → BYE min(32, SE/3) before expiry; the dialog is freed
    let timer = Some(SessionTimer {
        expires: 90,
        min_se: 90,
    });
    let mut net = Net::new(
        config(Rel100::Supported, timer),
        config(Rel100::Supported, timer),
    );
    established(&mut net, invite_to_bob());
    let se = header_of(&net.bob.sent, "SIP/2.0 200", "Session-Expires").unwrap();
    // Alice refreshes (refresher=uac); she vanishes
    assert!(se.contains("refresher=uac"), "{se}");
    net.filter = Box::new(|from_alice, _| from_alice);
    net.run_for(Duration::from_secs(59));
    assert_eq!(count(&net.bob.sent, "BYE "), 0);
    net.run_for(Duration::from_secs(2)); // 90 - min(32, 90/3) = 60 s
    assert!(count(&net.bob.sent, "BYE ") >= 1);
    // the BYE goes unanswered: the call ends when its transaction gives up (64*T1)
    net.run_for(Duration::from_secs(64));
    assert_eq!(ended(&net.bob), Some(EndReason::SessionExpired));
    assert_eq!(net.bob.sessions.stats().sessions_expired, 1);
    assert_eq!(net.bob.sessions.dialogs(), 0);
    assert_eq!(net.bob.sessions.calls(), 0);
}

#[test]
fn session_refresh_by_reinvite_when_the_peer_does_not_allow_update() {
    // RFC 4028 7.4 / 10: without UPDATE in the peer's Allow the refresher re-INVITEs, with
    // the SDP it sent before; each 2xx restarts the timer and the call goes on
    let timer = Some(SessionTimer {
        expires: 90,
        min_se: 90,
    });
    let mut net = Net::new(
        config(Rel100::Supported, timer),
        config(Rel100::Supported, timer),
    );
    // Bob's Allow loses UPDATE on the way
    net.rewrite = Box::new(|from_alice, b| {
        if from_alice {
            return b;
        }
        let text = String::from_utf8_lossy(&b).replace(", PRACK, UPDATE\r\n", "\r\n");
        text.into_bytes()
    });
    established(&mut net, invite_to_bob());
    for _ in 0..120 {
        net.run_for(Duration::from_secs(5));
        answer_all(&mut net, true);
        answer_all(&mut net, false);
    }
    assert!(ended(&net.alice).is_none(), "{:?}", net.alice.events);
    assert!(ended(&net.bob).is_none(), "{:?}", net.bob.events);
    assert_eq!(count(&net.alice.sent, "UPDATE "), 0);
    // the initial INVITE and a refresh about every 45 s of the 600
    let invites = distinct_cseqs(&net.alice.sent, "INVITE ");
    assert!(invites >= 1 + 600 / 45 - 1, "{invites} INVITEs");
    let refresh = net
        .alice
        .sent
        .iter()
        .rev()
        .find(|m| m.starts_with(b"INVITE "))
        .unwrap();
    assert!(refresh.ends_with(OFFER), "the refresh repeats our SDP");
}

#[test]
fn offer_in_prack_is_answered_in_its_2xx() {
    // RFC 3262 5: after an answer in a reliable 1xx the PRACK may carry a new offer; the
    // UAS puts the answer in the 2xx to the PRACK
    let mut net = Net::new(
        config(Rel100::Supported, None),
        config(Rel100::Supported, None),
    );
    // Alice's PRACK gets an offer on the way
    net.rewrite = Box::new(|from_alice, b| {
        if !from_alice || !b.starts_with(b"PRACK ") {
            return b;
        }
        let text = String::from_utf8_lossy(&b).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
                OFFER.len(),
                String::from_utf8_lossy(OFFER)
            ),
        );
        text.into_bytes()
    });
    reliable_ringing(&mut net, Some(ANSWER.to_vec()), true);
    assert_eq!(offers_to(&net.bob, "PRACK"), 1, "{:?}", net.bob.events);
    assert!(
        !start_lines(&net.bob.sent)
            .iter()
            .any(|l| l == "SIP/2.0 200 OK"),
        "the 200 to the PRACK waits for the answer"
    );
    answer_all(&mut net, true);
    let ok = net
        .bob
        .sent
        .iter()
        .find(|m| {
            m.starts_with(b"SIP/2.0 200") && String::from_utf8_lossy(m).contains(" PRACK\r\n")
        })
        .expect("the 200 to the PRACK");
    assert!(ok.ends_with(ANSWER));
}
