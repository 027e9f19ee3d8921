//! The session layer (RFC 3261 sections 12 to 15, RFC 3264 offer/answer state) between two
//! endpoints on a virtual clock: `Sessions` on both sides, or on one side with the other
//! played by hand. Every test is named after the rule it checks.

#[path = "support/session_sim.rs"]
mod session_sim;

use std::time::Duration;

use session_sim::{addr, Net, NetConfig};
use sip_core::dialog::DialogState;
use sip_core::session::{CallHandle, EndReason, Invite, SessionConfig, SessionError, SessionEvent};
use sip_core::{
    ClientTxId, Event, Method, OwnedMessage, RequestBuilder, ResponseBuilder, SeededRng,
    ServerTxId, Target, Transport,
};

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

// ---- a peer played by hand ----

const CAROL: &str = "127.0.0.4:5060";

fn rng() -> SeededRng {
    SeededRng::new([3; 32])
}

/// Alice (Sessions) and Carol (an Endpoint the test drives).
fn alice_and_raw() -> (Net, usize, usize) {
    let mut net = Net::new(2, NetConfig::perfect());
    let a = net.add_ua(ALICE, config("alice"));
    let c = net.add_raw(CAROL);
    (net, a, c)
}

/// The requests node `i` received (server transaction, request), in order.
fn requests(net: &mut Net, i: usize) -> Vec<(ServerTxId, OwnedMessage)> {
    net.other(i)
        .into_iter()
        .filter_map(|e| match e {
            Event::Request { tx, request, .. } => Some((tx, request)),
            _ => None,
        })
        .collect()
}

/// The responses node `i` received.
fn responses(net: &mut Net, i: usize) -> Vec<OwnedMessage> {
    net.other(i)
        .into_iter()
        .filter_map(|e| match e {
            Event::Response { response, .. } | Event::StrayResponse { response, .. } => {
                Some(response)
            }
            _ => None,
        })
        .collect()
}

/// The raw node answers `req` on `tx`.
#[allow(clippy::too_many_arguments)]
fn answer(
    net: &mut Net,
    i: usize,
    tx: ServerTxId,
    req: &OwnedMessage,
    code: u16,
    tag: &str,
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) -> OwnedMessage {
    let view = req.view();
    let mut b = ResponseBuilder::from_view(&view, code).to_tag(tag);
    for &(n, v) in extra {
        b = b.header(n, v);
    }
    if let Some(body) = body {
        b = b.body("application/sdp", body);
    }
    let resp = b.build(&mut rng()).unwrap();
    let now = net.now;
    net.nodes[i].ep.send_response(now, tx, &resp).unwrap();
    net.pump();
    resp
}

/// Alice calls Carol; returns Alice's call and Carol's INVITE.
fn alice_calls_raw(
    net: &mut Net,
    a: usize,
    c: usize,
    offer: bool,
) -> (CallHandle, ServerTxId, OwnedMessage) {
    let (s, ep, now) = net.ua(a);
    let mut inv = invite_to(CAROL, Target::udp(addr(CAROL)));
    if offer {
        inv = inv.offer(OFFER.to_vec());
    }
    let call = s.invite(now, ep, inv).unwrap();
    net.run_for(Duration::from_millis(20));
    let (tx, req) = requests(net, c).pop().expect("Carol gets the INVITE");
    (call, tx, req)
}

/// The header values of `name` in a message's text, in order.
fn header_lines(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// Carol's INVITE to Bob (Sessions), sent through Carol's endpoint.
fn raw_invite(net: &mut Net, c: usize, extra: &[(&str, &str)], cseq: u32) -> ClientTxId {
    let mut b = RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.3:5060")
        .from("<sip:carol@example.com>;tag=ct")
        .to("<sip:bob@example.com>")
        .call_id("raw-call")
        .cseq(cseq)
        .contact("<sip:carol@127.0.0.4:5060>")
        .body("application/sdp", OFFER);
    for &(n, v) in extra {
        b = b.header(n, v);
    }
    let req = b.build(&mut rng()).unwrap();
    let now = net.now;
    let tx = net.nodes[c]
        .ep
        .send_request(now, &req, Target::udp(addr(BOB)))
        .unwrap();
    net.run_for(Duration::from_millis(20));
    tx
}

/// Carol (raw) sends a request inside her dialog with Bob.
fn raw_in_dialog(
    net: &mut Net,
    c: usize,
    method: Method<'_>,
    cseq: u32,
    to_tag: &str,
    body: Option<&[u8]>,
) {
    let mut b = RequestBuilder::new(method, "sip:bob@127.0.0.3:5060")
        .from("<sip:carol@example.com>;tag=ct")
        .to(&format!("<sip:bob@example.com>;tag={to_tag}"))
        .call_id("raw-call")
        .cseq(cseq)
        .contact("<sip:carol@127.0.0.4:5060>");
    if let Some(body) = body {
        b = b.body("application/sdp", body);
    }
    let req = b.build(&mut rng()).unwrap();
    let now = net.now;
    if method == Method::Ack {
        net.nodes[c]
            .ep
            .send_ack(now, &req, Target::udp(addr(BOB)))
            .unwrap();
    } else {
        net.nodes[c]
            .ep
            .send_request(now, &req, Target::udp(addr(BOB)))
            .unwrap();
    }
    net.run_for(Duration::from_millis(20));
}

/// Bob (Sessions, node `b`) answers Carol's INVITE; returns Bob's call and his To tag.
fn bob_answers_raw(net: &mut Net, b: usize, c: usize) -> (CallHandle, String) {
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    let (s, ep, now) = net.ua(b);
    s.accept(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    net.run_for(Duration::from_millis(20));
    let ok = responses(net, c)
        .into_iter()
        .find(|r| r.status() == Some(200))
        .unwrap();
    let tag = ok
        .message()
        .unwrap()
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_owned();
    raw_in_dialog(net, c, Method::Ack, 1, &tag, None);
    (cb, tag)
}

fn bob_and_raw() -> (Net, usize, usize) {
    let mut net = Net::new(3, NetConfig::perfect());
    let b = net.add_ua(BOB, config("bob"));
    let c = net.add_raw(CAROL);
    (net, b, c)
}

#[test]
fn uas_copies_record_route_into_every_dialog_creating_response() {
    // RFC 3261 12.1.1 (sipd did not: a reported bug)
    let (mut net, b, c) = bob_and_raw();
    raw_invite(
        &mut net,
        c,
        &[
            (
                "Record-Route",
                "<sip:p2.example.com;lr;x=1>, <sip:p1.example.com;lr>",
            ),
            ("Record-Route", "<sip:127.0.0.4:5060;lr>"),
        ],
        1,
    );
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    let (s, ep, now) = net.ua(b);
    s.ring(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    s.accept(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    net.run_for(Duration::from_millis(20));
    for prefix in ["SIP/2.0 183", "SIP/2.0 200"] {
        let text = net.sent(b, prefix).pop().unwrap().text();
        assert_eq!(
            header_lines(&text, "Record-Route").join(", "),
            "<sip:p2.example.com;lr;x=1>, <sip:p1.example.com;lr>, <sip:127.0.0.4:5060;lr>",
            "{text}"
        );
        assert_eq!(header_lines(&text, "Contact"), ["<sip:bob@127.0.0.3:5060>"]);
    }
    // and the UAS's route set is the Record-Route in order: its BYE goes to the top one
    let d = net.s(b).dialog(cb).unwrap();
    assert_eq!(d.route_set().len(), 3);
    assert_eq!(d.route_set()[0], "<sip:p2.example.com;lr;x=1>");
}

#[test]
fn uac_route_set_is_the_reversed_record_route_and_in_dialog_requests_follow_it() {
    // RFC 3261 12.1.2, 12.2.1.1
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls_raw(&mut net, a, c, true);
    let rr = [
        ("Record-Route", "<sip:10.0.0.9;lr>, <sip:127.0.0.4:5060;lr>"),
        ("Contact", "<sip:carol@10.1.1.1:5099>"),
    ];
    answer(&mut net, c, tx, &req, 200, "ct", &rr, Some(ANSWER));
    net.run_for(Duration::from_millis(20));
    let d = net.s(a).dialog(ca).unwrap();
    assert_eq!(
        d.route_set(),
        ["<sip:127.0.0.4:5060;lr>", "<sip:10.0.0.9;lr>"]
    );
    assert_eq!(d.remote_target(), "sip:carol@10.1.1.1:5099");
    assert_eq!(d.next_hop(), Some(Target::udp(addr(CAROL)).into()));
    let ack = net.sent(a, "ACK").pop().unwrap();
    assert_eq!(ack.to, addr(CAROL), "the ACK goes to the first route");
    assert!(ack.first_line().starts_with("ACK sip:carol@10.1.1.1:5099 "));
    assert_eq!(
        header_lines(&ack.text(), "Route"),
        ["<sip:127.0.0.4:5060;lr>", "<sip:10.0.0.9;lr>"]
    );
    let (s, ep, now) = net.ua(a);
    s.hangup(now, ep, ca).unwrap();
    net.run_for(Duration::from_millis(20));
    let bye = net.sent(a, "BYE").pop().unwrap();
    assert_eq!(bye.to, addr(CAROL));
    let text = bye.text();
    assert!(text.starts_with("BYE sip:carol@10.1.1.1:5099 SIP/2.0"));
    assert_eq!(
        header_lines(&text, "Route"),
        ["<sip:127.0.0.4:5060;lr>", "<sip:10.0.0.9;lr>"]
    );
    // CSeq one more than the INVITE's
    let invite_seq = req.message().unwrap().cseq().unwrap().seq;
    assert_eq!(
        header_lines(&text, "CSeq"),
        [format!("{} BYE", invite_seq + 1)]
    );
}

#[test]
fn strict_route_becomes_the_request_uri_and_the_remote_target_the_last_route() {
    // RFC 3261 12.2.1.1, 16.12.1.1
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls_raw(&mut net, a, c, true);
    let rr = [
        ("Record-Route", "<sip:10.0.0.9;lr>, <sip:127.0.0.4:5060>"),
        ("Contact", "<sip:carol@10.1.1.1:5099>"),
    ];
    answer(&mut net, c, tx, &req, 200, "ct", &rr, Some(ANSWER));
    net.run_for(Duration::from_millis(20));
    let (s, ep, now) = net.ua(a);
    s.hangup(now, ep, ca).unwrap();
    net.run_for(Duration::from_millis(20));
    let bye = net.sent(a, "BYE").pop().unwrap();
    assert_eq!(bye.to, addr(CAROL));
    let text = bye.text();
    assert!(text.starts_with("BYE sip:127.0.0.4:5060 SIP/2.0"), "{text}");
    assert_eq!(
        header_lines(&text, "Route"),
        ["<sip:10.0.0.9;lr>", "<sip:carol@10.1.1.1:5099>"]
    );
}

#[test]
fn request_matching_no_dialog_gets_481() {
    // RFC 3261 12.2.2
    let (mut net, b, c) = bob_and_raw();
    raw_in_dialog(&mut net, c, Method::Bye, 2, "nosuchtag", None);
    assert_eq!(net.sent(b, "SIP/2.0 481").len(), 1);
    assert_eq!(net.s(b).dialogs(), 0);
}

#[test]
fn lower_cseq_in_a_dialog_gets_500_and_other_methods_go_to_the_caller() {
    // RFC 3261 12.2.2
    let (mut net, b, c) = bob_and_raw();
    raw_invite(&mut net, c, &[], 5);
    let (_cb, tag) = bob_answers_raw(&mut net, b, c);
    raw_in_dialog(&mut net, c, Method::Info, 4, &tag, None);
    assert_eq!(net.sent(b, "SIP/2.0 500").len(), 1);
    assert!(net.other(b).is_empty());
    raw_in_dialog(&mut net, c, Method::Info, 6, &tag, None);
    let back: Vec<_> = requests(&mut net, b);
    assert_eq!(back.len(), 1, "INFO is the application's");
    assert_eq!(net.s(b).dialog(_cb).unwrap().remote_seq(), Some(6));
    // OPTIONS inside the dialog is answered by the session layer
    raw_in_dialog(&mut net, c, Method::Options, 7, &tag, None);
    assert!(net
        .sent(b, "SIP/2.0 200")
        .iter()
        .any(|w| w.text().contains("7 OPTIONS")));
}

#[test]
fn every_2xx_is_acked_again_for_each_retransmission() {
    // RFC 3261 13.2.2.4
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls_raw(&mut net, a, c, true);
    let ok = answer(
        &mut net,
        c,
        tx,
        &req,
        200,
        "ct",
        &[("Contact", "<sip:carol@127.0.0.4:5060>")],
        Some(ANSWER),
    );
    net.run_for(Duration::from_millis(20));
    assert_eq!(net.sent(a, "ACK").len(), 1);
    // a retransmission while the transaction is Accepted (Event::Response)
    let now = net.now;
    net.nodes[c].ep.send_response(now, tx, &ok).unwrap();
    net.run_for(Duration::from_millis(20));
    assert_eq!(net.sent(a, "ACK").len(), 2);
    // and one after the transaction ended (Event::StrayResponse)
    net.run_for(Duration::from_secs(40));
    net.inject(addr(CAROL), a, ok.as_bytes());
    net.run_for(Duration::from_millis(20));
    let acks = net.sent(a, "ACK");
    assert_eq!(acks.len(), 3);
    assert_eq!(acks[0].bytes, acks[2].bytes, "the same ACK each time");
    assert_eq!(net.s(a).stats().acks_resent, 2);
    assert!(net.s(a).dialog(ca).is_some());
}

#[test]
fn second_fork_2xx_is_acked_and_ended_with_bye() {
    // RFC 3261 13.2.2.4, 12.1.2 (one early dialog per To tag)
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls_raw(&mut net, a, c, true);
    let contact = [("Contact", "<sip:carol@127.0.0.4:5060>")];
    answer(&mut net, c, tx, &req, 180, "f1", &contact, None);
    // (a forking proxy relays the second branch's responses on the same transaction)
    answer_other_tag(&mut net, c, tx, &req, 180, "f2");
    net.run_for(Duration::from_millis(20));
    assert_eq!(net.s(a).dialogs(), 2, "one early dialog per To tag");
    let progress = net
        .events(a)
        .into_iter()
        .filter(|e| matches!(e, SessionEvent::Progress { status: 180, .. }))
        .count();
    assert_eq!(progress, 2);
    answer_other_tag(&mut net, c, tx, &req, 200, "f2");
    answer_other_tag(&mut net, c, tx, &req, 200, "f1");
    net.run_for(Duration::from_millis(20));
    let acks = net.sent(a, "ACK");
    assert_eq!(acks.len(), 2, "both 2xx ACKed");
    let byes = net.sent(a, "BYE");
    assert_eq!(byes.len(), 1);
    assert!(
        byes[0].text().contains("tag=f1"),
        "the fork not kept is ended"
    );
    assert_eq!(net.s(a).stats().forks_ended, 1);
    assert_eq!(
        net.s(a).dialog(ca).unwrap().id().remote_tag,
        "f2",
        "the first 2xx is kept"
    );
    // Carol answers the BYE; the kept call goes on
    let (btx, bye) = requests(&mut net, c)
        .into_iter()
        .find(|(_, r)| r.method() == Some(Method::Bye))
        .unwrap();
    answer(&mut net, c, btx, &bye, 200, "f1", &[], None);
    net.run_for(Duration::from_secs(40));
    assert_eq!(net.s(a).dialogs(), 1);
    assert_eq!(net.s(a).calls(), 1);
    assert_eq!(ended(&net.events(a), ca), None);
}

/// A response with another To tag on the same transaction: what a forking proxy relays.
fn answer_other_tag(
    net: &mut Net,
    i: usize,
    tx: ServerTxId,
    req: &OwnedMessage,
    code: u16,
    tag: &str,
) {
    answer(
        net,
        i,
        tx,
        req,
        code,
        tag,
        &[("Contact", "<sip:carol@127.0.0.4:5060>")],
        None,
    );
}

#[test]
fn a_2xx_crossing_the_cancel_is_acked_and_ended_with_bye() {
    // RFC 3261 9.1, 13.2.2.4
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls_raw(&mut net, a, c, true);
    answer_other_tag(&mut net, c, tx, &req, 180, "x");
    net.run_for(Duration::from_millis(20));
    let (s, ep, now) = net.ua(a);
    s.hangup(now, ep, ca).unwrap();
    // Carol answered 200 before the CANCEL arrived
    answer_other_tag(&mut net, c, tx, &req, 200, "x");
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.sent(a, "CANCEL").len(), 1);
    assert_eq!(net.sent(a, "ACK").len(), 1);
    assert_eq!(net.sent(a, "BYE").len(), 1);
    let (btx, bye) = requests(&mut net, c)
        .into_iter()
        .find(|(_, r)| r.method() == Some(Method::Bye))
        .unwrap();
    answer(&mut net, c, btx, &bye, 200, "x", &[], None);
    net.run_for(Duration::from_millis(50));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Cancelled));
    net.drain(Duration::from_secs(100));
    assert_eq!((net.s(a).calls(), net.s(a).dialogs()), (0, 0));
}

#[test]
fn uas_retransmits_2xx_until_the_ack_and_sends_bye_at_64_t1_without_it() {
    // RFC 3261 13.3.1.4
    let (mut net, b, c) = bob_and_raw();
    raw_invite(&mut net, c, &[], 1);
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    let t0 = net.now;
    let (s, ep, now) = net.ua(b);
    s.accept(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    net.run_for(Duration::from_secs(40));
    let times: Vec<Duration> = net
        .sent(b, "SIP/2.0 200")
        .iter()
        .map(|w| w.at - t0)
        .collect();
    let expected: Vec<Duration> = [
        0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ]
    .iter()
    .map(|&ms| Duration::from_millis(ms))
    .collect();
    assert_eq!(times, expected, "T1, doubling, capped at T2, for 64*T1");
    let byes = net.sent(b, "BYE");
    assert!(
        byes.iter().all(|w| w.bytes == byes[0].bytes),
        "one BYE (and its retransmissions)"
    );
    assert_eq!(byes[0].at - t0, Duration::from_secs(32));
    assert_eq!(net.s(b).stats().ack_timeouts, 1);
    // Carol never answers the BYE either: it times out, and everything is freed
    net.drain(Duration::from_secs(100));
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::NoAck));
    assert_eq!((net.s(b).calls(), net.s(b).dialogs()), (0, 0));
}

#[test]
fn no_bye_aimed_elsewhere_for_an_unacked_2xx_over_udp() {
    // RFC 3261 13.3.1.4 (the BYE is a SHOULD), 26.1.5: an INVITE whose source may be
    // forged names another host in its Contact; without an ACK the source never proved
    // it receives, so the BYE at 64*T1 is not sent to that host.
    let (mut net, b, c) = bob_and_raw();
    let req = RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.3:5060")
        .from("<sip:carol@example.com>;tag=ct")
        .to("<sip:bob@example.com>")
        .call_id("forged-call")
        .cseq(1)
        .contact("<sip:victim@192.0.2.7:5060>")
        .body("application/sdp", OFFER)
        .build(&mut rng())
        .unwrap();
    let now = net.now;
    net.nodes[c]
        .ep
        .send_request(now, &req, Target::udp(addr(BOB)))
        .unwrap();
    net.run_for(Duration::from_millis(20));
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    let (s, ep, now) = net.ua(b);
    s.accept(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    net.drain(Duration::from_secs(100));
    assert!(net.sent(b, "BYE").is_empty(), "no BYE towards the Contact");
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::NoAck));
    assert_eq!(net.s(b).stats().byes_withheld, 1);
    assert_eq!((net.s(b).calls(), net.s(b).dialogs()), (0, 0));
}

#[test]
fn ack_stops_the_2xx_retransmissions() {
    // RFC 3261 13.3.1.4
    let (mut net, b, c) = bob_and_raw();
    raw_invite(&mut net, c, &[], 1);
    bob_answers_raw(&mut net, b, c);
    net.run_for(Duration::from_secs(40));
    assert_eq!(net.sent(b, "SIP/2.0 200").len(), 1);
    assert!(net.sent(b, "BYE").is_empty());
}

const OFFER2: &[u8] = b"v=0\r\no=- 1 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
const ANSWER2: &[u8] = b"v=0\r\no=- 2 2 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=recvonly\r\n";

/// The offer of the first `Offer` event for `call`, if any.
fn offer_of(events: &[SessionEvent], call: CallHandle) -> Option<Vec<u8>> {
    events.iter().find_map(|e| match e {
        SessionEvent::Offer { call: c, sdp, .. } if c == &call => Some(sdp.clone()),
        _ => None,
    })
}

#[test]
fn reinvite_carries_offer_and_answer_both_ways() {
    // RFC 3261 14.1, 14.2, RFC 3264 section 8
    let (mut net, a, b) = pair();
    let (ca, cb) = establish(&mut net, a, b);
    for (from, to, cf, ct) in [(a, b, ca, cb), (b, a, cb, ca)] {
        let (s, ep, now) = net.ua(from);
        s.reinvite(now, ep, cf, OFFER2.to_vec()).unwrap();
        // RFC 3264 section 4: no second offer while one is pending
        assert_eq!(
            s.reinvite(now, ep, cf, OFFER2.to_vec()),
            Err(SessionError::OfferPending)
        );
        net.run_for(Duration::from_millis(20));
        assert_eq!(offer_of(&net.events(to), ct).as_deref(), Some(OFFER2));
        let (s, ep, now) = net.ua(to);
        s.answer_offer(now, ep, ct, Ok(ANSWER2.to_vec())).unwrap();
        net.run_for(Duration::from_millis(50));
        let got = net.events(from);
        assert!(
            got.iter().any(
                |e| matches!(e, SessionEvent::Answer { call, sdp } if call == &cf && sdp == ANSWER2)
            ),
            "{got:?}"
        );
    }
    // the 2xx to each re-INVITE was ACKed: no retransmission left
    net.run_for(Duration::from_secs(40));
    assert_eq!(
        net.s(a).stats().ok_retransmissions + net.s(b).stats().ok_retransmissions,
        0
    );
    assert_eq!(
        net.s(a).dialog(ca).unwrap().local_seq(),
        2,
        "CSeq +1 per request"
    );
}

#[test]
fn refused_reinvite_leaves_the_session_as_it_was() {
    // RFC 3261 14.1
    let (mut net, a, b) = pair();
    let (ca, cb) = establish(&mut net, a, b);
    let (s, ep, now) = net.ua(a);
    s.reinvite(now, ep, ca, OFFER2.to_vec()).unwrap();
    net.run_for(Duration::from_millis(20));
    let (s, ep, now) = net.ua(b);
    s.answer_offer(now, ep, cb, Err(488)).unwrap();
    net.run_for(Duration::from_millis(50));
    let got = net.events(a);
    assert!(
        got.iter()
            .any(|e| matches!(e, SessionEvent::OfferRefused { status: 488, .. })),
        "{got:?}"
    );
    assert_eq!(net.s(a).calls(), 1);
    // a new offer may follow
    let (s, ep, now) = net.ua(a);
    s.reinvite(now, ep, ca, OFFER.to_vec()).unwrap();
    net.run_for(Duration::from_millis(20));
    assert!(offer_of(&net.events(b), cb).is_some());
}

#[test]
fn glare_gets_491_and_each_side_retries_after_its_14_1_timer() {
    // RFC 3261 14.1, 14.2
    let (mut net, a, b) = pair();
    let (ca, cb) = establish(&mut net, a, b);
    let t0 = net.now;
    let (s, ep, now) = net.ua(a);
    s.reinvite(now, ep, ca, OFFER2.to_vec()).unwrap();
    let (s, ep, now) = net.ua(b);
    s.reinvite(now, ep, cb, OFFER2.to_vec()).unwrap();
    net.run_for(Duration::from_millis(30));
    assert_eq!(net.sent(a, "SIP/2.0 491").len(), 1);
    assert_eq!(net.sent(b, "SIP/2.0 491").len(), 1);
    // each answers the other's retried offer as it comes
    for _ in 0..100 {
        net.run_for(Duration::from_millis(50));
        for (i, c) in [(a, ca), (b, cb)] {
            let evs = net.events(i);
            if offer_of(&evs, c).is_some() {
                let (s, ep, now) = net.ua(i);
                s.answer_offer(now, ep, c, Ok(ANSWER2.to_vec())).unwrap();
            }
            assert!(
                !evs.iter()
                    .any(|e| matches!(e, SessionEvent::OfferRefused { .. })),
                "{evs:?}"
            );
        }
    }
    let invites = |net: &Net, i: usize| -> Vec<Duration> {
        net.sent(i, "INVITE")
            .iter()
            .filter(|w| w.at >= t0)
            .map(|w| w.at - t0)
            .collect()
    };
    let (ia, ib) = (invites(&net, a), invites(&net, b));
    assert_eq!((ia.len(), ib.len()), (2, 2), "{ia:?} {ib:?}");
    // Alice owns the Call-ID: 2.1 to 4 s; Bob: 0 to 2 s (after the 491 arrived)
    let after_491 = Duration::from_millis(20);
    assert!(
        ia[1] >= after_491 + Duration::from_millis(2100)
            && ia[1] <= after_491 + Duration::from_millis(4000) + Duration::from_millis(20),
        "{ia:?}"
    );
    assert!(
        ib[1] >= after_491
            && ib[1] <= after_491 + Duration::from_millis(2000) + Duration::from_millis(20),
        "{ib:?}"
    );
    assert_eq!(net.s(a).stats().glare_retries, 1);
    assert_eq!(net.s(b).stats().glare_retries, 1);
}

#[test]
fn reinvite_while_another_is_processed_gets_500_with_retry_after() {
    // RFC 3261 14.2
    let (mut net, b, c) = bob_and_raw();
    raw_invite(&mut net, c, &[], 1);
    let (cb, tag) = bob_answers_raw(&mut net, b, c);
    raw_in_dialog(&mut net, c, Method::Invite, 2, &tag, Some(OFFER2));
    assert_eq!(offer_of(&net.events(b), cb).as_deref(), Some(OFFER2));
    raw_in_dialog(&mut net, c, Method::Invite, 3, &tag, Some(OFFER2));
    let r500 = net.sent(b, "SIP/2.0 500").pop().expect("500").text();
    let secs: u32 = header_lines(&r500, "Retry-After")[0].parse().unwrap();
    assert!(secs <= 10);
}

#[test]
fn reinvite_while_our_offer_is_pending_gets_491() {
    // RFC 3261 14.2, RFC 3264 section 4
    let (mut net, b, c) = bob_and_raw();
    raw_invite(&mut net, c, &[], 1);
    let (cb, tag) = bob_answers_raw(&mut net, b, c);
    let (s, ep, now) = net.ua(b);
    s.reinvite(now, ep, cb, OFFER2.to_vec()).unwrap();
    raw_in_dialog(&mut net, c, Method::Invite, 2, &tag, Some(OFFER2));
    assert_eq!(net.sent(b, "SIP/2.0 491").len(), 1);
}

#[test]
fn reinvite_refreshes_the_remote_target() {
    // RFC 3261 12.2.2 (target refresh)
    let (mut net, b, c) = bob_and_raw();
    raw_invite(&mut net, c, &[], 1);
    let (cb, tag) = bob_answers_raw(&mut net, b, c);
    let mut req = RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.3:5060")
        .from("<sip:carol@example.com>;tag=ct")
        .to(&format!("<sip:bob@example.com>;tag={tag}"))
        .call_id("raw-call")
        .cseq(2)
        .contact("<sip:carol@127.0.0.4:5077>")
        .body("application/sdp", OFFER2)
        .build(&mut rng())
        .unwrap();
    let now = net.now;
    net.nodes[c]
        .ep
        .send_request(now, &req, Target::udp(addr(BOB)))
        .unwrap();
    net.run_for(Duration::from_millis(20));
    assert_eq!(
        net.s(b).dialog(cb).unwrap().remote_target(),
        "sip:carol@127.0.0.4:5077"
    );
    req = req.clone();
    let _ = req;
}

#[test]
fn offerless_invite_gets_the_offer_in_the_2xx_and_the_answer_in_the_ack() {
    // RFC 3264 section 4 / RFC 3261 13.2.1
    let (mut net, a, b) = pair();
    let (s, ep, now) = net.ua(a);
    let ca = s
        .invite(now, ep, invite_to(BOB, Target::udp(addr(BOB))))
        .unwrap();
    net.run_for(Duration::from_millis(20));
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming {
                call, offer: None, ..
            } => Some(call),
            _ => None,
        })
        .unwrap();
    let (s, ep, now) = net.ua(b);
    s.accept(now, ep, cb, Some(OFFER.to_vec())).unwrap();
    net.run_for(Duration::from_millis(20));
    assert_eq!(offer_of(&net.events(a), ca).as_deref(), Some(OFFER));
    assert!(
        net.sent(a, "ACK").is_empty(),
        "the ACK waits for the answer"
    );
    let (s, ep, now) = net.ua(a);
    s.answer_offer(now, ep, ca, Ok(ANSWER.to_vec())).unwrap();
    net.run_for(Duration::from_millis(20));
    let ack = net.sent(a, "ACK").pop().unwrap().text();
    assert!(ack.ends_with(std::str::from_utf8(ANSWER).unwrap()));
    let got = net.events(b);
    assert!(
        got.iter().any(|e| matches!(e, SessionEvent::Answered { call, sdp: Some(s) } if call == &cb && s == ANSWER)),
        "{got:?}"
    );
}

#[test]
fn a_481_to_a_reinvite_ends_the_dialog() {
    // RFC 3261 12.2.1.2
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls_raw(&mut net, a, c, true);
    answer_other_tag(&mut net, c, tx, &req, 200, "t");
    net.run_for(Duration::from_millis(20));
    let (s, ep, now) = net.ua(a);
    s.reinvite(now, ep, ca, OFFER2.to_vec()).unwrap();
    net.run_for(Duration::from_millis(20));
    let (rtx, re) = requests(&mut net, c)
        .into_iter()
        .find(|(_, r)| r.method() == Some(Method::Invite))
        .unwrap();
    answer(&mut net, c, rtx, &re, 481, "t", &[], None);
    net.run_for(Duration::from_millis(20));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::DialogGone));
    assert_eq!((net.s(a).calls(), net.s(a).dialogs()), (0, 0));
}

#[test]
fn a_timed_out_reinvite_ends_the_dialog() {
    // RFC 3261 12.2.1.2 (a timeout is a 408)
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls_raw(&mut net, a, c, true);
    answer_other_tag(&mut net, c, tx, &req, 200, "t");
    net.run_for(Duration::from_millis(20));
    net.nodes[c].down = true;
    let (s, ep, now) = net.ua(a);
    s.reinvite(now, ep, ca, OFFER2.to_vec()).unwrap();
    net.run_for(Duration::from_secs(40));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Timeout));
    assert_all_freed(&mut net);
}

#[test]
fn no_final_response_ends_the_call_at_timer_b() {
    // RFC 3261 17.1.1.2, 8.1.3.1
    let (mut net, a, c) = alice_and_raw();
    net.nodes[c].down = true;
    let (s, ep, now) = net.ua(a);
    let ca = s
        .invite(now, ep, invite_to(CAROL, Target::udp(addr(CAROL))))
        .unwrap();
    net.run_for(Duration::from_secs(33));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Timeout));
    assert_all_freed(&mut net);
}

#[test]
fn a_full_call_table_answers_503_with_retry_after() {
    // RFC 3261 21.5.4 (SessionConfig::max_calls)
    let mut net = Net::new(4, NetConfig::perfect());
    let a = net.add_ua(ALICE, config("alice"));
    let mut small = config("bob");
    small.max_calls = 1;
    let b = net.add_ua(BOB, small);
    place(&mut net, a, b);
    let (s, ep, now) = net.ua(a);
    let second = s
        .invite(now, ep, invite_to(BOB, Target::udp(addr(BOB))))
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let r503 = net.sent(b, "SIP/2.0 503").pop().expect("503").text();
    assert!(!header_lines(&r503, "Retry-After").is_empty());
    assert_eq!(
        ended(&net.events(a), second),
        Some(EndReason::Rejected(503))
    );
    assert_eq!(net.s(b).calls(), 1);
    assert_eq!(net.s(b).stats().calls_refused, 1);
}

#[test]
fn max_lifetime_ends_the_dialog_with_bye() {
    // SessionConfig::max_lifetime (issue 10: no dialog lives for ever), RFC 3261 15.1.1
    let mut net = Net::new(5, NetConfig::perfect());
    let mut short = config("alice");
    short.max_lifetime = Duration::from_secs(60);
    // (a dialog with a session timer has no lifetime limit: RFC 4028 frees it instead)
    short.session_timer = None;
    let a = net.add_ua(ALICE, short);
    let b = net.add_ua(BOB, config("bob"));
    let (ca, cb) = establish(&mut net, a, b);
    net.run_for(Duration::from_secs(61));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Lifetime));
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::RemoteBye));
    assert_all_freed(&mut net);
}

#[test]
fn contact_names_the_transport_of_the_dialog_and_a_tcp_dialog_reuses_its_connection() {
    // RFC 3261 8.1.1.8, 12.1.1, 18 (sipd/sipc advertised the UDP Contact on TCP calls)
    let (mut net, a, b) = pair();
    let (s, ep, now) = net.ua(a);
    let ca = s
        .invite(
            now,
            ep,
            invite_to(BOB, Target::tcp(addr(BOB))).offer(OFFER.to_vec()),
        )
        .unwrap();
    net.run_for(Duration::from_millis(20));
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    let inv = net.sent(a, "INVITE").pop().unwrap();
    assert_eq!(inv.transport, Transport::Tcp);
    assert_eq!(
        header_lines(&inv.text(), "Contact"),
        ["<sip:alice@127.0.0.2:5060;transport=tcp>"]
    );
    let (s, ep, now) = net.ua(b);
    s.accept(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    net.run_for(Duration::from_millis(50));
    let ok = net.sent(b, "SIP/2.0 200").pop().unwrap();
    assert_eq!(
        header_lines(&ok.text(), "Contact"),
        ["<sip:bob@127.0.0.3:5060;transport=tcp>"]
    );
    assert_eq!(net.sent(a, "ACK").pop().unwrap().transport, Transport::Tcp);
    // Bob's BYE goes back over the connection the INVITE came on
    let (s, ep, now) = net.ua(b);
    s.hangup(now, ep, cb).unwrap();
    net.run_for(Duration::from_millis(50));
    let bye = net.sent(b, "BYE").pop().unwrap();
    assert_eq!(bye.transport, Transport::Tcp);
    assert_eq!(bye.to.ip(), addr(ALICE).ip());
    assert_ne!(
        bye.to.port(),
        5060,
        "the connection's address, not a new one"
    );
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::RemoteBye));
    assert_all_freed(&mut net);
}

#[test]
fn callee_hangup_before_the_ack_waits_for_it() {
    // RFC 3261 15 (the callee must not send BYE before the ACK or its timeout)
    let (mut net, b, c) = bob_and_raw();
    raw_invite(&mut net, c, &[], 1);
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    let (s, ep, now) = net.ua(b);
    s.accept(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    s.hangup(now, ep, cb).unwrap();
    net.run_for(Duration::from_millis(20));
    assert!(net.sent(b, "BYE").is_empty());
    let ok = responses(&mut net, c)
        .into_iter()
        .find(|r| r.status() == Some(200))
        .unwrap();
    let tag = ok
        .message()
        .unwrap()
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_owned();
    raw_in_dialog(&mut net, c, Method::Ack, 1, &tag, None);
    assert_eq!(net.sent(b, "BYE").len(), 1);
}

#[test]
fn a_handle_of_an_ended_call_never_names_a_later_one() {
    // generational handles (issue 10 point 1)
    let (mut net, a, b) = pair();
    let (ca, cb) = place(&mut net, a, b);
    let (s, ep, now) = net.ua(b);
    s.reject(now, ep, cb, 486).unwrap();
    net.run_for(Duration::from_millis(50));
    let (ca2, cb2) = place(&mut net, a, b);
    assert_ne!(cb, cb2);
    assert_ne!(ca, ca2);
    let (s, ep, now) = net.ua(b);
    assert_eq!(s.accept(now, ep, cb, None), Err(SessionError::UnknownCall));
    assert_eq!(s.hangup(now, ep, cb), Err(SessionError::UnknownCall));
}

#[test]
fn timer_c_cancels_a_ringing_call_and_it_ends_even_if_nothing_answers() {
    // RFC 3261 16.6 step 11 / 9.1 (the endpoint's timer C), 17.1.1.2
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls_raw(&mut net, a, c, true);
    answer_other_tag(&mut net, c, tx, &req, 180, "r");
    net.nodes[c].down = true; // rings for ever, then answers nothing
    net.run_for(Duration::from_secs(182));
    assert!(!net.sent(a, "CANCEL").is_empty());
    assert_eq!(
        ended(&net.events(a), ca),
        None,
        "the final response may still come"
    );
    net.run_for(Duration::from_secs(33));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Timeout));
    assert_all_freed(&mut net);
}

#[test]
fn hanging_up_before_answering_the_offer_in_the_2xx_still_acks_it() {
    // RFC 3261 13.2.2.4 (every 2xx is ACKed), 15.1.1
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls_raw(&mut net, a, c, false);
    answer(
        &mut net,
        c,
        tx,
        &req,
        200,
        "t",
        &[("Contact", "<sip:carol@127.0.0.4:5060>")],
        Some(OFFER),
    );
    net.run_for(Duration::from_millis(20));
    assert!(offer_of(&net.events(a), ca).is_some());
    assert!(net.sent(a, "ACK").is_empty());
    let (s, ep, now) = net.ua(a);
    s.hangup(now, ep, ca).unwrap();
    net.run_for(Duration::from_millis(20));
    assert_eq!(net.sent(a, "ACK").len(), 1);
    let bye = net.sent(a, "BYE");
    assert!(!bye.is_empty());
    assert!(bye[0].at >= net.sent(a, "ACK")[0].at);
}

#[test]
fn a_bye_whose_connection_has_closed_goes_to_the_remote_target() {
    // RFC 3261 12.2.1.1 (next hop), 18 (a TCP flow closes when idle)
    let (mut net, a, b) = pair();
    let (s, ep, now) = net.ua(a);
    let ca = s
        .invite(
            now,
            ep,
            invite_to(BOB, Target::tcp(addr(BOB))).offer(OFFER.to_vec()),
        )
        .unwrap();
    net.run_for(Duration::from_millis(20));
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    let (s, ep, now) = net.ua(b);
    s.accept(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    // the connection idles out
    net.run_for(Duration::from_secs(200));
    assert_eq!(net.nodes[b].ep.flows(), 0);
    let (s, ep, now) = net.ua(b);
    s.hangup(now, ep, cb).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::RemoteBye));
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::LocalBye));
    let bye = net.sent(b, "BYE").pop().unwrap();
    assert_eq!(bye.to, addr(ALICE), "to the Contact, over a new connection");
    assert_all_freed(&mut net);
}

#[test]
fn the_configured_contact_is_used_and_extra_headers_refuse_line_breaks() {
    // RFC 3261 8.1.1.8, 7.3.1 (no header injection)
    let mut net = Net::new(6, NetConfig::perfect());
    let mut fixed = config("alice");
    fixed.contact = Some("<sip:alice@198.51.100.7:5070>".to_owned());
    fixed.user_agent = Some("test-ua/1".to_owned());
    let a = net.add_ua(ALICE, fixed);
    let b = net.add_ua(BOB, config("bob"));
    place(&mut net, a, b);
    let inv = net.sent(a, "INVITE").pop().unwrap().text();
    assert_eq!(
        header_lines(&inv, "Contact"),
        ["<sip:alice@198.51.100.7:5070>"]
    );
    assert_eq!(header_lines(&inv, "User-Agent"), ["test-ua/1"]);
    let (s, ep, now) = net.ua(a);
    let bad = invite_to(BOB, Target::udp(addr(BOB))).header("Subject", "hi\r\nX-Evil: 1");
    assert!(matches!(
        s.invite(now, ep, bad),
        Err(SessionError::Build(_))
    ));
    assert_eq!(s.calls(), 1);
}

#[test]
fn an_invite_never_answered_by_the_application_ends_both_calls() {
    // RFC 3261 13.3.1 (the endpoint answers 408 for a silent transaction user), 8.1.3.1
    let (mut net, a, b) = pair();
    let (ca, cb) = place(&mut net, a, b);
    net.run_for(Duration::from_secs(200));
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::Timeout));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Timeout));
    assert_all_freed(&mut net);
}

#[test]
fn a_cancelled_reinvite_gets_487_and_the_session_goes_on() {
    // RFC 3261 9.2, 14.2
    let (mut net, b, c) = bob_and_raw();
    raw_invite(&mut net, c, &[], 1);
    let (cb, tag) = bob_answers_raw(&mut net, b, c);
    let req = RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.3:5060")
        .from("<sip:carol@example.com>;tag=ct")
        .to(&format!("<sip:bob@example.com>;tag={tag}"))
        .call_id("raw-call")
        .cseq(2)
        .contact("<sip:carol@127.0.0.4:5060>")
        .body("application/sdp", OFFER2)
        .build(&mut rng())
        .unwrap();
    let now = net.now;
    let itx = net.nodes[c]
        .ep
        .send_request(now, &req, Target::udp(addr(BOB)))
        .unwrap();
    net.run_for(Duration::from_millis(300)); // (100 Trying lets the CANCEL go)
    assert!(offer_of(&net.events(b), cb).is_some());
    let now = net.now;
    net.nodes[c].ep.cancel(now, itx).unwrap();
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.sent(b, "SIP/2.0 487").len(), 1);
    let (s, ep, now) = net.ua(b);
    assert_eq!(
        s.answer_offer(now, ep, cb, Ok(ANSWER2.to_vec())),
        Err(SessionError::WrongState),
        "the cancelled offer is gone"
    );
    assert_eq!(s.calls(), 1);
    assert_eq!(ended(&net.events(b), cb), None);
}

#[test]
fn a_bye_on_an_early_dialog_ends_the_ringing_call() {
    // RFC 3261 15 (the caller may send BYE on an early dialog), 15.1.2
    let (mut net, b, c) = bob_and_raw();
    raw_invite(&mut net, c, &[], 1);
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .unwrap();
    let (s, ep, now) = net.ua(b);
    s.ring(now, ep, cb, None).unwrap();
    net.run_for(Duration::from_millis(20));
    let ringing = responses(&mut net, c)
        .into_iter()
        .find(|r| r.status() == Some(180))
        .unwrap();
    let tag = ringing
        .message()
        .unwrap()
        .to()
        .unwrap()
        .tag()
        .unwrap()
        .to_owned();
    raw_in_dialog(&mut net, c, Method::Bye, 2, &tag, None);
    assert!(net
        .sent(b, "SIP/2.0 200")
        .iter()
        .any(|w| w.text().contains("2 BYE")));
    assert_eq!(net.sent(b, "SIP/2.0 487").len(), 1);
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::RemoteBye));
    assert_eq!((net.s(b).calls(), net.s(b).dialogs()), (0, 0));
}
