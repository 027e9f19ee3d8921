//! The minimal UAS core (`sip_core::ua`) on the simulated network: the call flow SIPp's
//! `uac` scenario expects, 2xx retransmission, BYE, CANCEL, and the answers to other
//! methods (RFC 3261 sections 8.2, 9.2, 12, 13.3, 15.1.2).

#[path = "support/sim.rs"]
mod sim;

use std::time::Duration;

use sim::{NetConfig, Sim};
use sip_core::sdp::LocalMedia;
use sip_core::ua::{UaConfig, UserAgent};
use sip_core::{
    ClientTxId, Event, HeaderName, Method, OwnedMessage, RequestBuilder, SeededRng, Target,
};

const UAC: usize = 0;
const UAS: usize = 1;

fn setup(ring: Duration) -> Sim {
    let mut sim = Sim::new(1, NetConfig::perfect());
    sim.add_node("127.0.0.1:5060");
    sim.add_node("127.0.0.2:5060");
    let mut config = UaConfig::new("<sip:sipd@127.0.0.2:5060>");
    config.ring = ring;
    sim.nodes[UAS].ua = Some(UserAgent::new(config, [4; 32]));
    sim
}

fn target() -> Target {
    Target::udp("127.0.0.2:5060".parse().unwrap())
}

fn request(method: Method<'_>, seed: u8) -> OwnedMessage {
    RequestBuilder::new(method, "sip:bob@127.0.0.2:5060")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@127.0.0.2>")
        .contact("<sip:alice@127.0.0.1:5060>")
        .build(&mut SeededRng::new([seed; 32]))
        .unwrap()
}

/// The statuses the UAC's transaction `tx` received, in order.
fn statuses(sim: &mut Sim, tx: ClientTxId) -> Vec<(u16, OwnedMessage)> {
    sim.events(UAC)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Response { tx: t, response } if t == tx => {
                Some((response.view().status().unwrap(), response))
            }
            _ => None,
        })
        .collect()
}

/// A request inside the dialog the 2xx `ok` created (section 12.2.1.1).
fn in_dialog(
    method: Method<'_>,
    invite: &OwnedMessage,
    ok: &OwnedMessage,
    cseq: u32,
) -> OwnedMessage {
    let inv = invite.view();
    let ok = ok.view();
    RequestBuilder::new(method, "sip:sipd@127.0.0.2:5060")
        .from(inv.header(HeaderName::From).unwrap())
        .to(ok.header(HeaderName::To).unwrap())
        .call_id(inv.header(HeaderName::CallId).unwrap())
        .cseq(cseq)
        .build(&mut SeededRng::new([9; 32]))
        .unwrap()
}

fn ua(sim: &Sim) -> &UserAgent {
    sim.nodes[UAS].ua.as_ref().unwrap()
}

#[test]
fn rfc3261_13_3_invite_is_answered_180_then_200_after_the_ring_time() {
    let mut sim = setup(Duration::from_secs(2));
    let invite = request(Method::Invite, 1);
    let now = sim.now;
    let tx = sim.ep(UAC).send_request(now, &invite, target()).unwrap();
    sim.run_for(Duration::from_secs(1));
    let early = statuses(&mut sim, tx);
    let codes: Vec<u16> = early.iter().map(|(c, _)| *c).collect();
    // The 180 goes at once, so no 100 Trying is needed (section 17.2.1: only a TU slower
    // than 200 ms needs one).
    assert_eq!(codes, [180]);
    sim.run_for(Duration::from_millis(1100));
    let late = statuses(&mut sim, tx);
    assert_eq!(late.len(), 1);
    let (code, ok) = &late[0];
    assert_eq!(*code, 200);
    let ok_msg = ok.message().unwrap();
    let ringing = early[0].1.message().unwrap();
    // Section 12.1.1: one To tag for the dialog, a Contact, and the SDP answer.
    assert_eq!(ok_msg.to().unwrap().tag(), ringing.to().unwrap().tag());
    assert!(ok_msg.to().unwrap().tag().is_some());
    assert_eq!(ok_msg.contacts().count(), 1);
    assert!(ok_msg.body().starts_with(b"v=0"));
    let sent_200 = sim.sent_times(UAS, "SIP/2.0 200");
    assert_eq!(
        sent_200,
        [Duration::from_millis(2010)],
        "sent once the ring time is over"
    );
    assert_eq!(ua(&sim).stats().calls_answered, 1);
}

#[test]
fn rfc3261_13_3_1_4_the_2xx_is_retransmitted_until_the_ack() {
    let mut sim = setup(Duration::ZERO);
    let invite = request(Method::Invite, 1);
    let now = sim.now;
    let tx = sim.ep(UAC).send_request(now, &invite, target()).unwrap();
    sim.run_for(Duration::from_millis(1700));
    let ok = statuses(&mut sim, tx)
        .into_iter()
        .find(|(c, _)| *c == 200)
        .unwrap()
        .1;
    // 200 at 10 ms, then T1 and 2*T1 later: 510 ms, 1510 ms
    assert_eq!(
        sim.sent_times(UAS, "SIP/2.0 200"),
        [10, 510, 1510].map(Duration::from_millis)
    );
    // the ACK stops them
    let ack = in_dialog(Method::Ack, &invite, &ok, 1);
    let now = sim.now;
    sim.ep(UAC).send_ack(now, &ack, target()).unwrap();
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.sent_times(UAS, "SIP/2.0 200").len(), 3);
    assert_eq!(ua(&sim).stats().ok_retransmissions, 2);
    assert_eq!(ua(&sim).dialogs(), 1, "the dialog is confirmed");
}

#[test]
fn rfc3261_13_3_1_4_without_ack_retransmissions_double_to_t2_and_stop_at_64_t1() {
    let mut sim = setup(Duration::ZERO);
    let now = sim.now;
    sim.ep(UAC)
        .send_request(now, &request(Method::Invite, 1), target())
        .unwrap();
    sim.run_for(Duration::from_secs(60));
    let times = sim.sent_times(UAS, "SIP/2.0 200");
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert_eq!(&gaps[..4], [500, 1000, 2000, 4000]);
    assert!(gaps[4..].iter().all(|g| *g <= 4000));
    assert!(*times.last().unwrap() <= Duration::from_millis(32_010));
    assert_eq!(ua(&sim).stats().ack_timeouts, 1);
    // ... and the session is ended with a BYE (section 13.3.1.4), whose transaction ends
    // (timer F) by itself: the peer never answers it.
    let byes = sim.sent_times(UAS, "BYE ");
    assert!(
        !byes.is_empty() && byes[0] >= Duration::from_millis(32_000),
        "{byes:?}"
    );
    sim.run_for(Duration::from_secs(60));
    assert_eq!(ua(&sim).dialogs(), 0);
    assert_eq!(sim.nodes[UAS].ep.transactions(), 0);
}

#[test]
fn rfc3261_15_1_2_bye_ends_the_dialog_and_a_stray_bye_gets_481() {
    let mut sim = setup(Duration::ZERO);
    let invite = request(Method::Invite, 1);
    let now = sim.now;
    let tx = sim.ep(UAC).send_request(now, &invite, target()).unwrap();
    sim.run_for(Duration::from_millis(100));
    let ok = statuses(&mut sim, tx)
        .into_iter()
        .find(|(c, _)| *c == 200)
        .unwrap()
        .1;
    let now = sim.now;
    sim.ep(UAC)
        .send_ack(now, &in_dialog(Method::Ack, &invite, &ok, 1), target())
        .unwrap();
    let bye = in_dialog(Method::Bye, &invite, &ok, 2);
    let bye_tx = sim.ep(UAC).send_request(now, &bye, target()).unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        statuses(&mut sim, bye_tx)
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>(),
        [200]
    );
    assert_eq!(ua(&sim).dialogs(), 0);
    assert_eq!(ua(&sim).stats().calls_ended, 1);
    // the same BYE again is outside any dialog now
    let now = sim.now;
    let again = sim.ep(UAC).send_request(now, &bye, target()).unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        statuses(&mut sim, again)
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>(),
        [481]
    );
}

#[test]
fn rfc3261_12_2_2_a_reinvite_outside_any_dialog_gets_481() {
    let mut sim = setup(Duration::ZERO);
    let reinvite = RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.2:5060")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@127.0.0.2>;tag=nosuchdialog")
        .build(&mut SeededRng::new([2; 32]))
        .unwrap();
    let now = sim.now;
    let tx = sim.ep(UAC).send_request(now, &reinvite, target()).unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        statuses(&mut sim, tx)
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>(),
        [481]
    );
}

#[test]
fn rfc3261_9_2_cancel_while_ringing_gets_200_and_the_invite_487() {
    let mut sim = setup(Duration::from_secs(5));
    let now = sim.now;
    let tx = sim
        .ep(UAC)
        .send_request(now, &request(Method::Invite, 1), target())
        .unwrap();
    sim.run_for(Duration::from_millis(100));
    let now = sim.now;
    let cancel = sim.ep(UAC).cancel(now, tx).unwrap();
    sim.run_for(Duration::from_millis(100));
    let events = sim.events(UAC);
    let code_of = |want: ClientTxId| {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Response { tx, response } if *tx == want => response.view().status(),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(code_of(cancel), [200]);
    assert_eq!(code_of(tx), [180, 487]);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        sim.sent_times(UAS, "SIP/2.0 200").len(),
        1,
        "the call is never answered"
    );
    assert_eq!(ua(&sim).stats().calls_cancelled, 1);
}

#[test]
fn rfc3261_11_2_options_message_and_other_methods_are_answered() {
    let mut sim = setup(Duration::ZERO);
    let now = sim.now;
    let options = sim
        .ep(UAC)
        .send_request(now, &request(Method::Options, 1), target())
        .unwrap();
    let message = RequestBuilder::new(Method::Message, "sip:bob@127.0.0.2")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@127.0.0.2>")
        .body("text/plain", b"hello")
        .build(&mut SeededRng::new([3; 32]))
        .unwrap();
    let message = sim.ep(UAC).send_request(now, &message, target()).unwrap();
    let register = sim
        .ep(UAC)
        .send_request(now, &request(Method::Register, 4), target())
        .unwrap();
    let foo = RequestBuilder::new(Method::from_token("FOO"), "sip:bob@127.0.0.2")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@127.0.0.2>")
        .build(&mut SeededRng::new([5; 32]))
        .unwrap();
    let foo = sim.ep(UAC).send_request(now, &foo, target()).unwrap();
    sim.run_for(Duration::from_millis(100));
    let events = sim.events(UAC);
    let answer = |want: ClientTxId| {
        events
            .iter()
            .find_map(|(_, e)| match e {
                Event::Response { tx, response } if *tx == want => Some(response.clone()),
                _ => None,
            })
            .unwrap()
    };
    let o = answer(options);
    assert_eq!(o.view().status(), Some(200));
    assert!(o
        .view()
        .header(HeaderName::Allow)
        .unwrap()
        .contains("INVITE"));
    assert!(o.view().header(HeaderName::Accept).is_some());
    assert_eq!(answer(message).view().status(), Some(200));
    let r = answer(register);
    assert_eq!(r.view().status(), Some(405));
    assert!(
        r.view().header(HeaderName::Allow).is_some(),
        "405 lists Allow (section 8.2.1)"
    );
    assert_eq!(answer(foo).view().status(), Some(501));
    assert_eq!(ua(&sim).stats().messages, 1);
}

#[test]
fn events_kept_for_a_caller_that_never_polls_are_bounded() {
    // Peers cause UaEvents (here one per MESSAGE): a caller that never polls must not let
    // them pile up without bound; the newest are kept.
    let mut sim = setup(Duration::ZERO);
    let total = sip_core::ua::MAX_UA_EVENTS + 10;
    for i in 0..total {
        let now = sim.now;
        let message = RequestBuilder::new(Method::Message, "sip:bob@127.0.0.2")
            .from("<sip:alice@127.0.0.1>")
            .to("<sip:bob@127.0.0.2>")
            .body("text/plain", format!("m{i}").as_bytes())
            .build(&mut SeededRng::new([(i % 250) as u8 + 1; 32]))
            .unwrap();
        sim.ep(UAC).send_request(now, &message, target()).unwrap();
        if i % 100 == 99 {
            sim.run_for(Duration::from_millis(10));
        }
    }
    sim.run_for(Duration::from_millis(100));
    let ua = sim.nodes[UAS].ua.as_mut().unwrap();
    assert_eq!(ua.stats().messages, total as u64);
    let mut texts = Vec::new();
    while let Some(e) = ua.poll_event() {
        if let sip_core::ua::UaEvent::Message { text } = e {
            texts.push(text);
        }
    }
    assert_eq!(texts.len(), sip_core::ua::MAX_UA_EVENTS);
    assert_eq!(
        texts.last().map(String::as_str),
        Some(&*format!("m{}", total - 1))
    );
}

// ---- The UAS core on the session layer (issue 10) ----

/// PCMU and telephone-event, as most softphones offer.
const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 0 18 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:18 G729/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

/// Only G.729: nothing in common with PCMU, PCMA and telephone-event.
const G729_ONLY: &str = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";

fn setup_with(config: UaConfig) -> Sim {
    let mut sim = Sim::new(1, NetConfig::perfect());
    sim.add_node("127.0.0.1:5060");
    sim.add_node("127.0.0.2:5060");
    sim.nodes[UAS].ua = Some(UserAgent::new(config, [4; 32]));
    sim
}

/// A UAS core answering from the offer (RFC 3264) with PCMU, PCMA and telephone-event.
fn media_config() -> UaConfig {
    let mut config = UaConfig::new("<sip:sipd@127.0.0.2:5060>");
    config.media = Some(LocalMedia::new("127.0.0.2".parse().unwrap(), 49170, 7));
    config
}

/// An INVITE from alice with `headers` and an optional SDP offer; `seed` makes its
/// Call-ID, tag and branch.
fn invite_with(seed: u8, headers: &[(&str, &str)], offer: Option<&str>) -> OwnedMessage {
    let mut b = RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.2:5060")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@127.0.0.2>")
        .contact("<sip:alice@127.0.0.1:5060>");
    for (n, v) in headers {
        b = b.header(n, v);
    }
    if let Some(sdp) = offer {
        b = b.body("application/sdp", sdp.as_bytes());
    }
    b.build(&mut SeededRng::new([seed; 32])).unwrap()
}

/// Sends `invite` and runs until its final response; returns the responses.
fn call(sim: &mut Sim, invite: &OwnedMessage) -> Vec<(u16, OwnedMessage)> {
    let now = sim.now;
    let tx = sim.ep(UAC).send_request(now, invite, target()).unwrap();
    sim.run_for(Duration::from_millis(200));
    statuses(sim, tx)
}

fn body(m: &OwnedMessage) -> String {
    String::from_utf8_lossy(m.view().body()).into_owned()
}

#[test]
fn rfc3261_12_1_1_the_uas_copies_record_route_into_the_1xx_and_2xx() {
    // RFC 3261 12.1.1
    let mut sim = setup(Duration::ZERO);
    let invite = invite_with(
        1,
        &[
            ("Record-Route", "<sip:p2.example.com;lr>"),
            ("Record-Route", "<sip:p1.example.com;lr;ftag=x>"),
        ],
        None,
    );
    let responses = call(&mut sim, &invite);
    let codes: Vec<u16> = responses.iter().map(|(c, _)| *c).collect();
    assert!(codes.contains(&180) && codes.contains(&200), "{codes:?}");
    for (code, response) in responses.iter().filter(|(c, _)| *c > 100) {
        let rr: Vec<&str> = response
            .view()
            .header_all(HeaderName::RecordRoute)
            .collect();
        assert_eq!(
            rr.join(", "),
            "<sip:p2.example.com;lr>, <sip:p1.example.com;lr;ftag=x>",
            "{code}"
        );
    }
}

#[test]
fn rfc3264_6_1_the_2xx_answers_the_offer_with_the_common_codecs() {
    // RFC 3264 6.1: the answer lists the offered formats we take, in the offer's m= line.
    let mut sim = setup_with(media_config());
    let responses = call(&mut sim, &invite_with(1, &[], Some(OFFER)));
    let ok = &responses.iter().find(|(c, _)| *c == 200).unwrap().1;
    let answer = body(ok);
    let m = answer.lines().find(|l| l.starts_with("m=audio")).unwrap();
    assert!(m.starts_with("m=audio 49170 RTP/AVP 0 "), "{answer}");
    assert!(m.contains(" 101"), "telephone-event kept: {answer}");
    assert!(!m.contains(" 18"), "G.729 is not ours: {answer}");
}

#[test]
fn rfc3264_6_an_offer_without_a_common_codec_gets_488() {
    // RFC 3264 6 / RFC 3261 13.3.1.3: 488 Not Acceptable Here.
    let mut sim = setup_with(media_config());
    let responses = call(&mut sim, &invite_with(1, &[], Some(G729_ONLY)));
    let codes: Vec<u16> = responses.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes.last(), Some(&488), "{codes:?}");
    assert!(!codes.contains(&200));
    assert_eq!(ua(&sim).dialogs(), 0);
    assert_eq!(ua(&sim).stats().calls_answered, 0);
}

#[test]
fn rfc3264_5_an_offerless_invite_gets_our_offer_in_the_2xx() {
    // RFC 3264 5 / RFC 3261 13.2.1: an INVITE without offer gets the offer in the 2xx.
    let mut sim = setup_with(media_config());
    let responses = call(&mut sim, &invite_with(1, &[], None));
    let ok = &responses.iter().find(|(c, _)| *c == 200).unwrap().1;
    let offer = body(ok);
    assert!(offer.contains("a=rtpmap:0 PCMU/8000"), "{offer}");
    assert!(offer.contains("a=rtpmap:8 PCMA/8000"), "{offer}");
    assert!(offer.contains("telephone-event/8000"), "{offer}");
}

#[test]
fn rfc3264_8_4_a_sendonly_reinvite_is_answered_recvonly() {
    // RFC 3264 6.1 and 8.4: hold (sendonly) is answered recvonly, resume sendrecv.
    let mut sim = setup_with(media_config());
    let invite = invite_with(1, &[], Some(OFFER));
    let responses = call(&mut sim, &invite);
    let ok = responses.into_iter().find(|(c, _)| *c == 200).unwrap().1;
    let now = sim.now;
    sim.ep(UAC)
        .send_ack(now, &in_dialog(Method::Ack, &invite, &ok, 1), target())
        .unwrap();
    sim.run_for(Duration::from_millis(100));
    let hold = OFFER.replace("o=alice 1 1", "o=alice 1 2") + "a=sendonly\r\n";
    let reinvite = RequestBuilder::new(Method::Invite, "sip:sipd@127.0.0.2:5060")
        .from(invite.view().header(HeaderName::From).unwrap())
        .to(ok.view().header(HeaderName::To).unwrap())
        .call_id(invite.view().header(HeaderName::CallId).unwrap())
        .cseq(2)
        .contact("<sip:alice@127.0.0.1:5060>")
        .body("application/sdp", hold.as_bytes())
        .build(&mut SeededRng::new([8; 32]))
        .unwrap();
    let responses = call(&mut sim, &reinvite);
    let ok2 = &responses.iter().find(|(c, _)| *c == 200).unwrap().1;
    let answer = body(ok2);
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert_eq!(ua(&sim).dialogs(), 1);
}

/// The calls (Call-IDs) the UAS sent a BYE in (retransmissions counted once).
fn byes_sent(sim: &Sim) -> usize {
    let addr = sim.nodes[UAS].addr;
    let mut calls: Vec<String> = sim
        .log
        .iter()
        .filter(|(_, p)| p.from == addr && p.first_line().starts_with("BYE "))
        .filter_map(|(_, p)| {
            let m = OwnedMessage::parse(&p.data).ok()?;
            Some(m.view().header(HeaderName::CallId)?.to_owned())
        })
        .collect();
    calls.sort();
    calls.dedup();
    calls.len()
}

/// Places `n` calls that are answered and ACKed and never ended by the caller.
fn calls_never_ended(sim: &mut Sim, n: u8, headers: &[(&str, &str)]) {
    for i in 0..n {
        let invite = invite_with(10 + i, headers, Some(OFFER));
        let responses = call(sim, &invite);
        let ok = responses.into_iter().find(|(c, _)| *c == 200).unwrap().1;
        let now = sim.now;
        sim.ep(UAC)
            .send_ack(now, &in_dialog(Method::Ack, &invite, &ok, 1), target())
            .unwrap();
    }
    sim.run_for(Duration::from_millis(100));
    assert_eq!(ua(sim).dialogs(), usize::from(n), "all confirmed");
}

#[test]
fn rfc3261_15_dialogs_of_calls_never_ended_are_freed_after_the_maximum_lifetime() {
    // RFC 3261 15 / issue 10 point 5: without session timers, a dialog whose peer never
    // sends BYE is ended (BYE sent) after SessionConfig::max_lifetime.
    let mut config = media_config();
    config.session.session_timer = None;
    config.session.max_lifetime = Duration::from_secs(60);
    let mut sim = setup_with(config);
    calls_never_ended(&mut sim, 20, &[]);
    sim.run_for(Duration::from_secs(130));
    assert_eq!(ua(&sim).dialogs(), 0);
    assert_eq!(ua(&sim).sessions().calls(), 0);
    assert_eq!(byes_sent(&sim), 20, "a BYE for each");
    assert_eq!(ua(&sim).stats().calls_expired, 20);
}

/// Answers the call `invite` got `ok` for with an ACK, then runs a little.
fn ack(sim: &mut Sim, invite: &OwnedMessage, ok: &OwnedMessage) {
    let now = sim.now;
    sim.ep(UAC)
        .send_ack(now, &in_dialog(Method::Ack, invite, ok, 1), target())
        .unwrap();
    sim.run_for(Duration::from_millis(100));
}

#[test]
fn rfc3262_3_a_caller_requiring_100rel_gets_a_reliable_180_then_the_200() {
    // RFC 3262 3 and 4: Require: 100rel makes the 180 reliable (Require, RSeq); the PRACK
    // gets 200 and the INVITE its 200 after the ring time.
    let mut config = media_config();
    config.ring = Duration::from_secs(2);
    let mut sim = setup_with(config);
    let invite = invite_with(
        1,
        &[("Require", "100rel"), ("Supported", "100rel")],
        Some(OFFER),
    );
    let now = sim.now;
    let tx = sim.ep(UAC).send_request(now, &invite, target()).unwrap();
    sim.run_for(Duration::from_millis(200));
    let early = statuses(&mut sim, tx);
    let ringing = &early.iter().find(|(c, _)| *c == 180).unwrap().1;
    let v = ringing.view();
    assert!(v
        .header(HeaderName::Require)
        .unwrap_or("")
        .contains("100rel"));
    let rseq = v.header(HeaderName::RSeq).expect("RSeq").trim().to_owned();
    let prack = RequestBuilder::new(Method::Prack, "sip:sipd@127.0.0.2:5060")
        .from(invite.view().header(HeaderName::From).unwrap())
        .to(v.header(HeaderName::To).unwrap())
        .call_id(invite.view().header(HeaderName::CallId).unwrap())
        .cseq(2)
        .header("RAck", &format!("{rseq} 1 INVITE"))
        .build(&mut SeededRng::new([6; 32]))
        .unwrap();
    let now = sim.now;
    let prack_tx = sim.ep(UAC).send_request(now, &prack, target()).unwrap();
    sim.run_for(Duration::from_secs(3));
    let events = sim.events(UAC);
    let codes = |want: ClientTxId| {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Response { tx, response } if *tx == want => response.view().status(),
                _ => None,
            })
            .collect::<Vec<u16>>()
    };
    assert_eq!(codes(prack_tx), [200]);
    assert!(codes(tx).contains(&200), "the call is answered");
}

#[test]
fn rfc3311_5_2_an_update_offer_is_answered_from_our_media() {
    // RFC 3311 5.2 and RFC 3264 6.1: an UPDATE with a sendonly offer in a confirmed
    // dialog gets 200 with a recvonly answer.
    let mut sim = setup_with(media_config());
    let invite = invite_with(1, &[], Some(OFFER));
    let responses = call(&mut sim, &invite);
    let ok = responses.into_iter().find(|(c, _)| *c == 200).unwrap().1;
    ack(&mut sim, &invite, &ok);
    let hold = OFFER.replace("o=alice 1 1", "o=alice 1 2") + "a=sendonly\r\n";
    let update = RequestBuilder::new(Method::Update, "sip:sipd@127.0.0.2:5060")
        .from(invite.view().header(HeaderName::From).unwrap())
        .to(ok.view().header(HeaderName::To).unwrap())
        .call_id(invite.view().header(HeaderName::CallId).unwrap())
        .cseq(2)
        .contact("<sip:alice@127.0.0.1:5060>")
        .body("application/sdp", hold.as_bytes())
        .build(&mut SeededRng::new([8; 32]))
        .unwrap();
    let responses = call(&mut sim, &update);
    let ok2 = &responses.iter().find(|(c, _)| *c == 200).unwrap().1;
    assert!(body(ok2).contains("a=recvonly"), "{}", body(ok2));
}
#[test]
fn rfc4028_10_sessions_never_refreshed_are_ended_with_bye() {
    // RFC 4028 10: the refresher (the UAC here) never refreshes: before the session
    // expires the UAS sends BYE, and the dialogs are gone.
    let mut config = media_config();
    config.session.max_lifetime = Duration::from_secs(3600);
    let mut sim = setup_with(config);
    let headers = [
        ("Supported", "timer"),
        ("Session-Expires", "90;refresher=uac"),
    ];
    calls_never_ended(&mut sim, 20, &headers);
    sim.run_for(Duration::from_secs(200));
    assert_eq!(ua(&sim).dialogs(), 0);
    assert_eq!(byes_sent(&sim), 20, "a BYE for each");
    assert_eq!(ua(&sim).stats().calls_expired, 20);
}

#[test]
fn rfc3261_12_2_1_1_the_uas_cores_bye_to_a_name_contact_is_located() {
    // RFC 3261 12.2.1.1 with RFC 3263: sipd's UAS core ends a call (here its
    // max_lifetime) with a BYE to the caller's Contact, a name: the endpoint locates it
    // (the caller's phone at 127.0.0.3, not the address the INVITE came from)
    use sip_core::resolve::{Answer, Record, RecordType};
    let mut sim = Sim::new(1, NetConfig::perfect());
    sim.add_node("127.0.0.1:5060");
    sim.add_node("127.0.0.2:5060");
    let phone = sim.add_node("127.0.0.3:5060");
    let mut config = UaConfig::new("<sip:sipd@127.0.0.2:5060>");
    config.ring = Duration::ZERO;
    config.session.max_lifetime = Duration::from_secs(10);
    config.session.session_timer = None;
    sim.nodes[UAS].ua = Some(UserAgent::new(config, [4; 32]));
    sim.dns.insert(
        ("alice-host.example.test".to_owned(), RecordType::A),
        Answer::Records(vec![Record::A {
            addr: [127, 0, 0, 3].into(),
            ttl: 300,
        }]),
    );
    let invite = RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.2:5060")
        .from("<sip:alice@example.test>")
        .to("<sip:bob@127.0.0.2>")
        .contact("<sip:alice@alice-host.example.test>")
        .build(&mut SeededRng::new([1; 32]))
        .unwrap();
    let now = sim.now;
    let tx = sim.ep(UAC).send_request(now, &invite, target()).unwrap();
    sim.run_for(Duration::from_millis(100));
    let ok = statuses(&mut sim, tx)
        .into_iter()
        .find(|(c, _)| *c == 200)
        .unwrap()
        .1;
    let now = sim.now;
    sim.ep(UAC)
        .send_ack(now, &in_dialog(Method::Ack, &invite, &ok, 1), target())
        .unwrap();
    sim.run_for(Duration::from_secs(11));
    let byes: Vec<_> = sim
        .log
        .iter()
        .filter(|(_, p)| {
            p.data
                .starts_with(b"BYE sip:alice@alice-host.example.test ")
        })
        .collect();
    // (the caller here does not answer it: timer E retransmits it, to the same place)
    assert!(!byes.is_empty());
    let located: std::net::SocketAddr = "127.0.0.3:5060".parse().unwrap();
    assert!(byes.iter().all(|(_, p)| p.to == located));
    let got_bye = sim.events(phone).into_iter().any(|(_, e)| {
        matches!(e, Event::Request { ref request, .. } if request.method() == Some(Method::Bye))
    });
    assert!(got_bye);
}
