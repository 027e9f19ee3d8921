//! The session layer (RFC 3261 sections 12 to 15, RFC 3264 offer/answer state) between two
//! endpoints on a virtual clock: `Sessions` on both sides, or on one side with the other
//! played by hand. Every test is named after the rule it checks.

#[path = "support/session_sim.rs"]
mod session_sim;

use std::time::Duration;

use session_sim::{addr, Net, NetConfig};
use sip_core::dialog::DialogState;
use sip_core::session::{CallHandle, EndReason, Invite, SessionConfig, SessionError, SessionEvent};
use sip_core::{Event, OwnedMessage, Target};

const ALICE: &str = "127.0.0.2:5060";
const BOB: &str = "127.0.0.3:5060";
const OFFER: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const ANSWER: &[u8] = b"v=0\r\no=- 2 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

fn config(user: &str) -> SessionConfig {
    SessionConfig::new(user)
}

/// Alice and Bob, each an Endpoint with Sessions.
fn pair() -> (Net, usize, usize) {
    let mut net = Net::new(1, NetConfig::perfect());
    let a = net.add_ua(ALICE, config("alice"));
    let b = net.add_ua(BOB, config("bob"));
    (net, a, b)
}

fn invite_to(to: &str, target: Target) -> Invite {
    Invite::new(
        &format!("sip:bob@{to}"),
        "Alice <sip:alice@example.com>",
        "Bob <sip:bob@example.com>",
        target,
    )
}

/// Alice calls Bob with an offer; returns both handles once Bob's Incoming arrived.
fn place(net: &mut Net, a: usize, b: usize) -> (CallHandle, CallHandle) {
    let (s, ep, now) = net.ua(a);
    let call = s
        .invite(
            now,
            ep,
            invite_to(BOB, Target::udp(addr(BOB))).offer(OFFER.to_vec()),
        )
        .unwrap();
    net.pump();
    net.run_for(Duration::from_millis(20));
    let incoming = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, offer, .. } => {
                assert_eq!(offer.as_deref(), Some(OFFER));
                Some(call)
            }
            _ => None,
        })
        .expect("Bob hears the INVITE");
    (call, incoming)
}

/// A call set up: Alice calls, Bob rings and accepts with an answer.
fn establish(net: &mut Net, a: usize, b: usize) -> (CallHandle, CallHandle) {
    let (ca, cb) = place(net, a, b);
    let (s, ep, now) = net.ua(b);
    s.ring(now, ep, cb, None).unwrap();
    s.accept(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    net.run_for(Duration::from_millis(100));
    let ea = net.events(a);
    assert!(
        ea.iter().any(|e| matches!(e, SessionEvent::Answered { call, sdp } if call == &ca && sdp.as_deref() == Some(ANSWER))),
        "{ea:?}"
    );
    let eb = net.events(b);
    assert!(
        eb.iter()
            .any(|e| matches!(e, SessionEvent::Answered { call, .. } if call == &cb)),
        "{eb:?}"
    );
    (ca, cb)
}

fn ended(events: &[SessionEvent], call: CallHandle) -> Option<EndReason> {
    events.iter().find_map(|e| match e {
        SessionEvent::Ended { call: c, reason } if c == &call => Some(*reason),
        _ => None,
    })
}

/// Everything freed on both sides once the clock has run out.
fn assert_all_freed(net: &mut Net) {
    net.drain(Duration::from_secs(3600 * 3));
    for (i, n) in net.nodes.iter().enumerate() {
        if let Some(s) = &n.s {
            assert_eq!((s.calls(), s.dialogs()), (0, 0), "node {i}");
            assert_eq!(s.poll_timeout(), None, "node {i}: a timer left");
        }
        assert_eq!(n.ep.transactions(), 0, "node {i}: a transaction left");
    }
}

#[test]
fn call_is_set_up_and_ended_with_bye_from_the_caller() {
    // RFC 3261 13.2.2.4, 13.3.1.4, 15.1
    let (mut net, a, b) = pair();
    let (ca, cb) = establish(&mut net, a, b);
    assert_eq!(net.s(a).dialog(ca).unwrap().state(), DialogState::Confirmed);
    assert_eq!(net.sent(a, "ACK").len(), 1, "one ACK for the 2xx");
    let (s, ep, now) = net.ua(a);
    s.hangup(now, ep, ca).unwrap();
    net.run_for(Duration::from_millis(100));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::LocalBye));
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::RemoteBye));
    assert!(net
        .sent(b, "SIP/2.0 200")
        .iter()
        .any(|w| w.text().contains("CSeq: 2 BYE")));
    assert_all_freed(&mut net);
}

#[test]
fn callee_ends_the_call_with_bye() {
    // RFC 3261 15.1.1
    let (mut net, a, b) = pair();
    let (ca, cb) = establish(&mut net, a, b);
    let (s, ep, now) = net.ua(b);
    s.hangup(now, ep, cb).unwrap();
    net.run_for(Duration::from_millis(100));
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::LocalBye));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::RemoteBye));
    // the callee's BYE goes to the caller's Contact, with the dialog's tags swapped
    let bye = net.sent(b, "BYE").pop().unwrap().text();
    assert!(
        bye.starts_with("BYE sip:alice@127.0.0.2:5060 SIP/2.0"),
        "{bye}"
    );
    assert_all_freed(&mut net);
}

#[test]
fn cancel_before_the_answer_gets_487_and_ends_both_sides() {
    // RFC 3261 9.1, 9.2
    let (mut net, a, b) = pair();
    let (ca, cb) = place(&mut net, a, b);
    let (s, ep, now) = net.ua(b);
    s.ring(now, ep, cb, None).unwrap();
    net.run_for(Duration::from_millis(50));
    let (s, ep, now) = net.ua(a);
    s.hangup(now, ep, ca).unwrap();
    net.run_for(Duration::from_millis(100));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Cancelled));
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::Cancelled));
    assert_eq!(net.sent(b, "SIP/2.0 487").len(), 1);
    assert!(net
        .sent(b, "SIP/2.0 200")
        .iter()
        .any(|w| w.text().contains("CANCEL")));
    // the callee cannot answer a cancelled call
    let (s, ep, now) = net.ua(b);
    assert_eq!(s.accept(now, ep, cb, None), Err(SessionError::UnknownCall));
    assert_all_freed(&mut net);
}

#[test]
fn rejected_call_ends_with_the_status() {
    // RFC 3261 13.2.2.3
    let (mut net, a, b) = pair();
    let (ca, cb) = place(&mut net, a, b);
    let (s, ep, now) = net.ua(b);
    s.reject(now, ep, cb, 486).unwrap();
    net.run_for(Duration::from_millis(100));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Rejected(486)));
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::Rejected(486)));
    assert_all_freed(&mut net);
}

#[allow(dead_code)]
fn unused(_: OwnedMessage, _: Event) {}
