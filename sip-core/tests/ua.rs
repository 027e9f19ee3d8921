//! The minimal UAS core (`sip_core::ua`) on the simulated network: the call flow SIPp's
//! `uac` scenario expects, 2xx retransmission, BYE, CANCEL, and the answers to other
//! methods (RFC 3261 sections 8.2, 9.2, 12, 13.3, 15.1.2).

#[path = "support/sim.rs"]
mod sim;

use std::time::Duration;

use sim::{NetConfig, Sim};
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
fn rfc3261_13_3_invite_is_answered_100_180_then_200_after_the_ring_time() {
    let mut sim = setup(Duration::from_secs(2));
    let invite = request(Method::Invite, 1);
    let now = sim.now;
    let tx = sim.ep(UAC).send_request(now, &invite, target()).unwrap();
    sim.run_for(Duration::from_secs(1));
    let early = statuses(&mut sim, tx);
    let codes: Vec<u16> = early.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [100, 180]);
    sim.run_for(Duration::from_millis(1100));
    let late = statuses(&mut sim, tx);
    assert_eq!(late.len(), 1);
    let (code, ok) = &late[0];
    assert_eq!(*code, 200);
    let ok_msg = ok.message().unwrap();
    let ringing = early[1].1.message().unwrap();
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
    assert_eq!(code_of(tx), [100, 180, 487]);
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
