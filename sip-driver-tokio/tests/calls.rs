//! The call API of the tokio driver (`Client::call`, `Call`, `IncomingCalls`) between two
//! drivers in one process, and against a hand-written UAS on a plain UDP socket for the
//! forked 2xx. Loopback only, ephemeral ports; every step is bounded (`common::bounded`).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::bounded;
use sip_core::sdp::{Codec, Direction, LocalMedia, Sdp};
use sip_core::session::{EndReason, Invite, Rel100, SessionConfig};
use sip_core::{Message, ResponseBuilder, SeededRng, Target, Transport};
use sip_driver_tokio::{Call, CallEvent, Client, Driver, IncomingCall, IncomingCalls};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A driver on 127.0.0.1 (UDP) taking calls.
async fn phone(user: &str) -> (Client, IncomingCalls, SocketAddr) {
    let driver = Driver::bind(["udp:127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let mut config = SessionConfig::new(user);
    config.timers = driver.config().timers;
    let (client, incoming, calls) = driver.start_with_calls(config);
    // Requests outside the calls are not these tests' business.
    drop(incoming);
    let addr = client.local_addr(Transport::Udp).unwrap();
    (client, calls, addr)
}

fn media(port: u16) -> LocalMedia {
    LocalMedia::new(LOOPBACK, port, u64::from(port))
}

fn invite_to(callee: SocketAddr, caller: SocketAddr, offer: Vec<u8>) -> Invite {
    Invite::new(
        &format!("sip:bob@{callee}"),
        &format!("<sip:alice@{caller}>"),
        &format!("<sip:bob@{callee}>"),
        Target::udp(callee),
    )
    .offer(offer)
}

/// The next event other than progress reports.
async fn next_settled(call: &mut Call, what: &str) -> CallEvent {
    loop {
        match bounded(what, call.next_event()).await {
            Some(CallEvent::Ringing { .. } | CallEvent::EarlyMedia { .. }) => continue,
            Some(e) => return e,
            None => panic!("{what}: the call's events ended"),
        }
    }
}

async fn ended(call: &mut Call, what: &str) -> EndReason {
    loop {
        match bounded(what, call.next_event()).await {
            Some(CallEvent::Ended(reason)) => return reason,
            Some(_) => continue,
            None => panic!("{what}: no Ended event"),
        }
    }
}

/// Caller and callee, the call established with a LocalMedia offer and answer.
struct Established {
    caller: Client,
    callee: Client,
    out: Call,
    inc: Call,
    alice: LocalMedia,
    bob: LocalMedia,
}

async fn establish() -> Established {
    common::init_tracing();
    let (callee, mut calls, bob_addr) = phone("bob").await;
    let (caller, _calls, alice_addr) = phone("alice").await;
    let mut alice = media(40000);
    let mut bob = media(40002);
    let offer = alice.offer(Direction::SendRecv);
    let mut out = caller
        .call(invite_to(bob_addr, alice_addr, offer))
        .await
        .unwrap();
    let incoming: IncomingCall = bounded("incoming call", calls.next()).await.unwrap();
    let answer = bob.answer(incoming.offer().expect("an offer")).unwrap();
    incoming.ring(None).await.unwrap();
    let mut inc = incoming.accept(Some(answer.clone())).await.unwrap();
    match next_settled(&mut out, "caller: answered").await {
        CallEvent::Answered { sdp: Some(sdp) } => {
            assert_eq!(sdp, answer);
            alice.accept_answer(&sdp).unwrap();
        }
        other => panic!("caller: {other:?}"),
    }
    assert_eq!(out.remote_sdp(), Some(&answer[..]));
    assert!(matches!(
        next_settled(&mut inc, "callee: ACK").await,
        CallEvent::Answered { .. }
    ));
    Established {
        caller,
        callee,
        out,
        inc,
        alice,
        bob,
    }
}

#[tokio::test]
async fn caller_bye_ends_the_call_on_both_sides() {
    // RFC 3261 13.2.2.4 (ACK), 15.1.1 (BYE sent), 15.1.2 (BYE received)
    let mut e = establish().await;
    e.out.hangup().await.unwrap();
    assert_eq!(ended(&mut e.out, "caller ended").await, EndReason::LocalBye);
    assert_eq!(
        ended(&mut e.inc, "callee ended").await,
        EndReason::RemoteBye
    );
    assert!(e.out.next_event().await.is_none());
    e.caller.shutdown().await;
    e.callee.shutdown().await;
}

#[tokio::test]
async fn callee_bye_ends_the_call_on_both_sides() {
    // RFC 3261 15.1.1, 15.1.2: BYE from the callee, answered by the caller's session layer
    let mut e = establish().await;
    e.inc.hangup().await.unwrap();
    assert_eq!(ended(&mut e.inc, "callee ended").await, EndReason::LocalBye);
    assert_eq!(
        ended(&mut e.out, "caller ended").await,
        EndReason::RemoteBye
    );
    e.caller.shutdown().await;
    e.callee.shutdown().await;
}

#[tokio::test]
async fn cancel_while_ringing_ends_both_sides_cancelled() {
    // RFC 3261 9.1 (CANCEL sent), 9.2 (487 to the INVITE)
    common::init_tracing();
    let (callee, mut calls, bob_addr) = phone("bob").await;
    let (caller, _calls, alice_addr) = phone("alice").await;
    let offer = media(40010).offer(Direction::SendRecv);
    let mut out = caller
        .call(invite_to(bob_addr, alice_addr, offer))
        .await
        .unwrap();
    let mut incoming = bounded("incoming call", calls.next()).await.unwrap();
    incoming.ring(None).await.unwrap();
    match bounded("ringing", out.next_event()).await {
        Some(CallEvent::Ringing { status: 180, .. }) => {}
        other => panic!("{other:?}"),
    }
    out.hangup().await.unwrap();
    assert_eq!(ended(&mut out, "caller").await, EndReason::Cancelled);
    match bounded("callee", incoming.next_event()).await {
        Some(CallEvent::Ended(EndReason::Cancelled)) => {}
        other => panic!("{other:?}"),
    }
    caller.shutdown().await;
    callee.shutdown().await;
}

#[tokio::test]
async fn reinvite_hold_and_resume_mirror_the_direction() {
    // RFC 3264 8.4 (hold: sendonly answered recvonly), 6.1 (direction mirrored); RFC 3261 14
    let mut e = establish().await;
    e.out.hold(&mut e.alice).await.unwrap();
    for (offered, answered) in [
        (Direction::SendOnly, Direction::RecvOnly),
        (Direction::SendRecv, Direction::SendRecv),
    ] {
        if offered == Direction::SendRecv {
            e.out.resume(&mut e.alice).await.unwrap();
        }
        let offer = match next_settled(&mut e.inc, "callee: re-INVITE").await {
            CallEvent::Offer { method, sdp } => {
                assert_eq!(method, "INVITE");
                sdp
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(Sdp::parse(&offer).unwrap().media()[0].direction(), offered);
        let answer = e.bob.answer(&offer).unwrap();
        e.inc.answer_offer(Ok(answer)).await.unwrap();
        match next_settled(&mut e.out, "caller: answer").await {
            CallEvent::Answer { sdp } => {
                assert_eq!(Sdp::parse(&sdp).unwrap().media()[0].direction(), answered);
                e.alice.accept_answer(&sdp).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    e.out.hangup().await.unwrap();
    assert_eq!(ended(&mut e.inc, "callee").await, EndReason::RemoteBye);
    e.caller.shutdown().await;
    e.callee.shutdown().await;
}

#[tokio::test]
async fn offer_without_a_common_codec_is_rejected_488() {
    // RFC 3264 6 / RFC 3261 13.3.1.3: 488 when no codec is common
    common::init_tracing();
    let (callee, mut calls, bob_addr) = phone("bob").await;
    let (caller, _calls, alice_addr) = phone("alice").await;
    let offer = media(40020)
        .with_codecs(vec![Codec::new("G729", 8000, 18)])
        .offer(Direction::SendRecv);
    let mut out = caller
        .call(invite_to(bob_addr, alice_addr, offer))
        .await
        .unwrap();
    let incoming = bounded("incoming call", calls.next()).await.unwrap();
    let refusal = media(40022)
        .answer(incoming.offer().unwrap())
        .expect_err("nothing in common");
    assert_eq!(refusal.status(), 488);
    incoming.reject(refusal.status()).await.unwrap();
    assert_eq!(ended(&mut out, "caller").await, EndReason::Rejected(488));
    caller.shutdown().await;
    callee.shutdown().await;
}

#[tokio::test]
async fn reinvite_refused_488_keeps_the_call() {
    // RFC 3261 14.1: a refused re-INVITE leaves the session as it was
    let mut e = establish().await;
    let g729 = media(40030)
        .with_codecs(vec![Codec::new("G729", 8000, 18)])
        .offer(Direction::SendRecv);
    e.out.reinvite(g729).await.unwrap();
    let offer = match next_settled(&mut e.inc, "callee: re-INVITE").await {
        CallEvent::Offer { sdp, .. } => sdp,
        other => panic!("{other:?}"),
    };
    let status = e.bob.answer(&offer).unwrap_err().status();
    e.inc.answer_offer(Err(status)).await.unwrap();
    match next_settled(&mut e.out, "caller: refused").await {
        CallEvent::OfferRefused { status: 488 } => {}
        other => panic!("{other:?}"),
    }
    e.out.hangup().await.unwrap();
    assert_eq!(ended(&mut e.out, "caller").await, EndReason::LocalBye);
    e.caller.shutdown().await;
    e.callee.shutdown().await;
}

#[tokio::test]
async fn dropping_the_incoming_calls_gives_invites_back_to_incoming() {
    // The request/response API keeps working beside the calls: without an IncomingCalls,
    // an INVITE is a request on Incoming (as before the call API).
    common::init_tracing();
    let driver = Driver::bind(["udp:127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let (server, mut incoming) = driver.start();
    let server_addr = server.local_addr(Transport::Udp).unwrap();
    let (caller, _calls, alice_addr) = phone("alice").await;
    let offer = media(40040).offer(Direction::SendRecv);
    let mut out = caller
        .call(invite_to(server_addr, alice_addr, offer))
        .await
        .unwrap();
    let (request, mut responder) = bounded("INVITE on Incoming", incoming.next())
        .await
        .unwrap();
    assert_eq!(request.view().method(), Some(sip_core::Method::Invite));
    responder.respond_status(486).await.unwrap();
    assert_eq!(ended(&mut out, "caller").await, EndReason::Rejected(486));
    // The final response that ended it, for the application (a challenge to answer, a
    // redirection's Contacts).
    assert_eq!(out.rejection().and_then(|r| r.view().status()), Some(486));
    caller.shutdown().await;
    server.shutdown().await;
}

/// A UAS on a plain UDP socket: reads until a request whose first line starts with
/// `method`.
async fn recv_request(
    socket: &tokio::net::UdpSocket,
    method: &str,
) -> (sip_core::OwnedMessage, SocketAddr) {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await.unwrap();
        if buf[..n].starts_with(method.as_bytes()) {
            let m = sip_core::OwnedMessage::parse(&buf[..n]).unwrap();
            return (m, from);
        }
    }
}

#[tokio::test]
async fn second_fork_2xx_is_acked_then_ended_with_bye() {
    // RFC 3261 13.2.2.4: every 2xx is ACKed; a 2xx from a fork the call does not keep is
    // ended with BYE. Two 200s with different To tags, as a forking proxy delivers them.
    common::init_tracing();
    let uas = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let uas_addr = uas.local_addr().unwrap();
    let (caller, _calls, alice_addr) = phone("alice").await;
    let offer = media(40050).offer(Direction::SendRecv);
    let mut out = caller
        .call(invite_to(uas_addr, alice_addr, offer))
        .await
        .unwrap();
    let (invite, from) = bounded("INVITE", recv_request(&uas, "INVITE ")).await;
    let answer = media(40052).answer(invite.view().body()).unwrap();
    let mut rng = SeededRng::new([5; 32]);
    let request = Message::parse(invite.as_bytes()).unwrap();
    for tag in ["fork-a", "fork-b"] {
        let ok = ResponseBuilder::new(&request, 200)
            .to_tag(tag)
            .header("Contact", &format!("<sip:{tag}@{uas_addr}>"))
            .body("application/sdp", &answer)
            .build(&mut rng)
            .unwrap();
        uas.send_to(ok.as_bytes(), from).await.unwrap();
    }
    assert!(matches!(
        next_settled(&mut out, "answered").await,
        CallEvent::Answered { .. }
    ));
    // Both 2xx get their ACK, and one fork (the one not kept) a BYE.
    let mut acked = Vec::new();
    let mut bye = None;
    while acked.len() < 2 || bye.is_none() {
        let mut buf = vec![0u8; 65535];
        let (n, from) = bounded("ACK, ACK and BYE", uas.recv_from(&mut buf))
            .await
            .unwrap();
        let m = sip_core::OwnedMessage::parse(&buf[..n]).unwrap();
        let to = m
            .view()
            .header(sip_core::HeaderName::To)
            .unwrap()
            .to_owned();
        let tag = if to.contains("fork-a") {
            "fork-a"
        } else {
            "fork-b"
        };
        match m.view().method() {
            Some(sip_core::Method::Ack) if !acked.contains(&tag) => acked.push(tag),
            Some(sip_core::Method::Bye) => {
                let ok = ResponseBuilder::new(&Message::parse(m.as_bytes()).unwrap(), 200)
                    .build(&mut rng)
                    .unwrap();
                uas.send_to(ok.as_bytes(), from).await.unwrap();
                bye = Some(tag);
            }
            _ => {}
        }
    }
    // The BYE went to the fork the call did not keep: the call goes on with the other,
    // which hanging up ends.
    let kept = if bye == Some("fork-a") {
        "fork-b"
    } else {
        "fork-a"
    };
    out.hangup().await.unwrap();
    let (bye_kept, from) = bounded("BYE of the kept fork", recv_request(&uas, "BYE ")).await;
    assert!(bye_kept
        .view()
        .header(sip_core::HeaderName::To)
        .unwrap()
        .contains(kept));
    let ok = ResponseBuilder::new(&Message::parse(bye_kept.as_bytes()).unwrap(), 200)
        .build(&mut rng)
        .unwrap();
    uas.send_to(ok.as_bytes(), from).await.unwrap();
    assert_eq!(ended(&mut out, "caller").await, EndReason::LocalBye);
    caller.shutdown().await;
}

#[tokio::test]
async fn incoming_call_dropped_unanswered_is_refused_480() {
    // RFC 3261 13.3.1.3: a call the application lets go is refused (480 Temporarily
    // Unavailable), not left to time out at the caller
    common::init_tracing();
    let (callee, mut calls, bob_addr) = phone("bob").await;
    let (caller, _calls, alice_addr) = phone("alice").await;
    let offer = media(40060).offer(Direction::SendRecv);
    let mut out = caller
        .call(invite_to(bob_addr, alice_addr, offer))
        .await
        .unwrap();
    drop(bounded("incoming call", calls.next()).await.unwrap());
    assert_eq!(ended(&mut out, "caller").await, EndReason::Rejected(480));
    caller.shutdown().await;
    callee.shutdown().await;
}

#[tokio::test]
async fn dropping_an_established_call_hangs_up() {
    // RFC 3261 15.1.1: a Call dropped before its end sends BYE
    let mut e = establish().await;
    drop(e.out);
    assert_eq!(ended(&mut e.inc, "callee").await, EndReason::RemoteBye);
    e.caller.shutdown().await;
    e.callee.shutdown().await;
}

#[tokio::test]
async fn call_over_tcp_is_ended_by_the_callee_over_tcp() {
    // RFC 3261 12.1.1, 12.1.2, 18: Contacts with ;transport=tcp, so the callee's BYE
    // reaches the caller, which listens on TCP only
    common::init_tracing();
    let tcp_phone = |user: &'static str| async move {
        let driver = Driver::bind(["tcp:127.0.0.1:0".parse().unwrap()])
            .await
            .unwrap();
        let mut config = SessionConfig::new(user);
        config.timers = driver.config().timers;
        let (client, _incoming, calls) = driver.start_with_calls(config);
        let addr = client.local_addr(Transport::Tcp).unwrap();
        (client, calls, addr)
    };
    let (callee, mut calls, bob_addr) = tcp_phone("bob").await;
    let (caller, _calls, alice_addr) = tcp_phone("alice").await;
    let offer = media(40070).offer(Direction::SendRecv);
    let invite = Invite::new(
        &format!("sip:bob@{bob_addr};transport=tcp"),
        &format!("<sip:alice@{alice_addr}>"),
        &format!("<sip:bob@{bob_addr}>"),
        Target::tcp(bob_addr),
    )
    .offer(offer);
    let mut out = caller.call(invite).await.unwrap();
    let incoming = bounded("incoming call", calls.next()).await.unwrap();
    let contact = incoming
        .request()
        .view()
        .header(sip_core::HeaderName::Contact)
        .unwrap()
        .to_owned();
    assert!(
        contact.contains(&format!("{alice_addr};transport=tcp")),
        "{contact}"
    );
    let answer = media(40072).answer(incoming.offer().unwrap()).unwrap();
    let mut inc = incoming.accept(Some(answer)).await.unwrap();
    assert!(matches!(
        next_settled(&mut out, "answered").await,
        CallEvent::Answered { .. }
    ));
    assert!(matches!(
        next_settled(&mut inc, "ACK").await,
        CallEvent::Answered { .. }
    ));
    inc.hangup().await.unwrap();
    assert_eq!(ended(&mut out, "caller").await, EndReason::RemoteBye);
    assert_eq!(ended(&mut inc, "callee").await, EndReason::LocalBye);
    caller.shutdown().await;
    callee.shutdown().await;
}

#[tokio::test]
async fn update_offer_is_answered_inside_the_dialog() {
    // RFC 3311 5.1, 5.2: an UPDATE with an offer in a confirmed dialog, answered in its 200
    let mut e = establish().await;
    let offer = e.alice.offer(Direction::SendOnly);
    e.out.update(offer).await.unwrap();
    let sdp = match next_settled(&mut e.inc, "callee: UPDATE").await {
        CallEvent::Offer { method, sdp } => {
            assert_eq!(method, "UPDATE");
            sdp
        }
        other => panic!("{other:?}"),
    };
    e.inc
        .answer_offer(Ok(e.bob.answer(&sdp).unwrap()))
        .await
        .unwrap();
    match next_settled(&mut e.out, "caller: answer").await {
        CallEvent::Answer { sdp } => {
            assert_eq!(
                Sdp::parse(&sdp).unwrap().media()[0].direction(),
                Direction::RecvOnly
            );
        }
        other => panic!("{other:?}"),
    }
    e.out.hangup().await.unwrap();
    assert_eq!(ended(&mut e.inc, "callee").await, EndReason::RemoteBye);
    e.caller.shutdown().await;
    e.callee.shutdown().await;
}

#[tokio::test]
async fn reliable_183_with_early_media_reaches_the_caller_and_the_call_goes_on() {
    // RFC 3262 3, 4: the caller requires 100rel; the callee's 183 with SDP is sent
    // reliably, the session layer PRACKs it, the caller sees early media, then the answer
    common::init_tracing();
    let (callee, mut calls, bob_addr) = phone("bob").await;
    let (caller, _calls, alice_addr) = phone("alice").await;
    let offer = media(40080).offer(Direction::SendRecv);
    let invite = invite_to(bob_addr, alice_addr, offer).rel100(Rel100::Required);
    let mut out = caller.call(invite).await.unwrap();
    let incoming = bounded("incoming call", calls.next()).await.unwrap();
    let require = incoming
        .request()
        .view()
        .header(sip_core::HeaderName::Require)
        .unwrap_or("")
        .to_owned();
    assert!(require.contains("100rel"), "{require}");
    let mut bob = media(40082);
    let early = bob.answer(incoming.offer().unwrap()).unwrap();
    incoming.ring(Some(early.clone())).await.unwrap();
    match bounded("early media", out.next_event()).await {
        Some(CallEvent::EarlyMedia {
            status: 183, sdp, ..
        }) => assert_eq!(sdp, early),
        other => panic!("{other:?}"),
    }
    // The answer was given in the reliable 183: the 200 repeats it, or has none.
    let mut inc = incoming.accept(Some(early.clone())).await.unwrap();
    assert!(matches!(
        next_settled(&mut out, "answered").await,
        CallEvent::Answered { .. }
    ));
    assert_eq!(out.remote_sdp(), Some(&early[..]));
    out.hangup().await.unwrap();
    assert_eq!(ended(&mut inc, "callee").await, EndReason::RemoteBye);
    caller.shutdown().await;
    callee.shutdown().await;
}
