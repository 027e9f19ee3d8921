//! Digest credentials in the session layer (RFC 3261 sections 8.1.3.5, 22.2 and 13.2.2.4):
//! Alice (`Sessions`) calls Carol, a node the test drives by hand, who challenges with 401
//! or 407. Every test is named after the rule it checks.

#[path = "support/session_sim.rs"]
mod session_sim;

use std::time::Duration;

use session_sim::{addr, Net, NetConfig};
use sip_core::auth::{AuthConfig, AuthKind, AuthVerdict, Authenticator, DigestClient};
use sip_core::session::{CallHandle, EndReason, Invite, SessionConfig, SessionEvent};
use sip_core::{Event, OwnedMessage, ResponseBuilder, SeededRng, ServerTxId, Target};

const ALICE: &str = "127.0.0.2:5060";
const CAROL: &str = "127.0.0.4:5060";
const OFFER: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const OFFER2: &[u8] = b"v=0\r\no=- 1 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n";
const ANSWER: &[u8] = b"v=0\r\no=- 2 1 IN IP4 127.0.0.4\r\ns=-\r\nc=IN IP4 127.0.0.4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";
const CONTACT: (&str, &str) = ("Contact", "<sip:carol@127.0.0.4:5060>");

fn proxy_challenge(nonce: &str) -> String {
    format!("Digest realm=\"example.com\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"")
}

/// Alice (Sessions) and Carol (an Endpoint the test drives).
fn alice_and_raw() -> (Net, usize, usize) {
    let mut net = Net::new(7, NetConfig::perfect());
    let a = net.add_ua(ALICE, SessionConfig::new("alice"));
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

/// Carol answers `req` on `tx` with To tag `ct`.
fn answer(
    net: &mut Net,
    i: usize,
    tx: ServerTxId,
    req: &OwnedMessage,
    code: u16,
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) {
    let view = req.view();
    let mut b = ResponseBuilder::from_view(&view, code).to_tag("ct");
    for &(n, v) in extra {
        b = b.header(n, v);
    }
    if let Some(body) = body {
        b = b.body("application/sdp", body);
    }
    let resp = b.build(&mut SeededRng::new([5; 32])).unwrap();
    let now = net.now;
    net.nodes[i].ep.send_response(now, tx, &resp).unwrap();
    net.run_for(Duration::from_millis(20));
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

fn header(req: &OwnedMessage, name: &str) -> Vec<String> {
    header_lines(&String::from_utf8_lossy(req.as_bytes()), name)
}

/// Alice calls Carol with credentials (or without); returns the call and Carol's INVITE.
fn alice_calls(
    net: &mut Net,
    a: usize,
    c: usize,
    password: Option<&str>,
) -> (CallHandle, ServerTxId, OwnedMessage) {
    let (s, ep, now) = net.ua(a);
    let mut inv = Invite::new(
        "sip:carol@127.0.0.4:5060",
        "Alice <sip:alice@example.com>",
        "Carol <sip:carol@example.com>",
        Target::udp(addr(CAROL)),
    )
    .offer(OFFER.to_vec())
    .route("<sip:127.0.0.4:5060;lr>");
    if let Some(p) = password {
        inv = inv.credentials(DigestClient::new("alice", p));
    }
    let call = s.invite(now, ep, inv).unwrap();
    net.run_for(Duration::from_millis(20));
    let (tx, req) = requests(net, c).pop().expect("Carol gets the INVITE");
    (call, tx, req)
}

/// Carol challenges the INVITE with `code` and nonce `nonce`; returns the INVITE sent
/// again, if any.
fn challenge(
    net: &mut Net,
    c: usize,
    tx: ServerTxId,
    req: &OwnedMessage,
    code: u16,
    nonce: &str,
) -> Option<(ServerTxId, OwnedMessage)> {
    let name = if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    answer(
        net,
        c,
        tx,
        req,
        code,
        &[(name, &proxy_challenge(nonce))],
        None,
    );
    requests(net, c).pop()
}

fn ended(events: &[SessionEvent], call: CallHandle) -> Option<EndReason> {
    events.iter().find_map(|e| match e {
        SessionEvent::Ended { call: c, reason } if c == &call => Some(*reason),
        _ => None,
    })
}

/// A call challenged with 407 and answered 200: Alice's call, Carol's second INVITE.
fn established(net: &mut Net, a: usize, c: usize) -> (CallHandle, OwnedMessage) {
    let (ca, tx, req) = alice_calls(net, a, c, Some("secret"));
    let (tx2, again) = challenge(net, c, tx, &req, 407, "n1").expect("INVITE again");
    answer(net, c, tx2, &again, 200, &[CONTACT], Some(ANSWER));
    let ev = net.events(a);
    assert!(
        ev.iter()
            .any(|e| matches!(e, SessionEvent::Answered { call, .. } if *call == ca)),
        "{ev:?}"
    );
    (ca, again)
}

#[test]
fn invite_challenged_407_is_sent_again_with_proxy_authorization_and_cseq_plus_one() {
    // RFC 3261 22.2 (and 8.1.3.5)
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls(&mut net, a, c, Some("secret"));
    assert!(header(&req, "Proxy-Authorization").is_empty());
    let (_, again) = challenge(&mut net, c, tx, &req, 407, "n1").expect("INVITE again");
    // the transaction ACKed the 407 (section 17.1.1.3)
    assert_eq!(net.sent(a, "ACK").len(), 1);
    let (m1, m2) = (req.message().unwrap(), again.message().unwrap());
    assert_eq!(m2.call_id(), m1.call_id());
    assert_eq!(m2.from().unwrap().tag(), m1.from().unwrap().tag());
    assert_eq!(m2.to().unwrap().tag(), None);
    assert_eq!(m2.cseq().unwrap().seq, m1.cseq().unwrap().seq + 1);
    assert_eq!(m2.body(), OFFER);
    assert_eq!(header(&again, "Route"), header(&req, "Route"));
    assert_ne!(header(&again, "Via"), header(&req, "Via"), "a new branch");
    let pa = header(&again, "Proxy-Authorization");
    assert_eq!(pa.len(), 1, "{pa:?}");
    assert!(pa[0].contains("username=\"alice\"") && pa[0].contains("nonce=\"n1\""));
    assert!(pa[0].contains("nc=00000001"), "{pa:?}");
    assert!(header(&again, "Authorization").is_empty());
    // the application saw nothing yet: the call goes on
    assert_eq!(ended(&net.events(a), ca), None);
    assert_eq!(net.s(a).stats().auth_retries, 1);
}

#[test]
fn invite_challenged_401_is_sent_again_with_authorization() {
    // RFC 3261 22.2
    let (mut net, a, c) = alice_and_raw();
    let (_, tx, req) = alice_calls(&mut net, a, c, Some("secret"));
    let (_, again) = challenge(&mut net, c, tx, &req, 401, "w1").expect("INVITE again");
    let au = header(&again, "Authorization");
    assert_eq!(au.len(), 1, "{au:?}");
    assert!(au[0].contains("nonce=\"w1\"") && au[0].contains("uri=\"sip:carol@127.0.0.4:5060\""));
}

#[test]
fn ack_of_the_2xx_carries_the_credentials_of_the_invite() {
    // RFC 3261 13.2.2.4
    let (mut net, a, c) = alice_and_raw();
    let (_, again) = established(&mut net, a, c);
    let acks = net.sent(a, "ACK");
    // the 407's ACK (by the transaction), then the 2xx's
    assert_eq!(acks.len(), 2);
    let ack = acks[1].text();
    assert_eq!(header_lines(&ack, "CSeq"), vec!["2 ACK".to_owned()]);
    assert_eq!(
        header_lines(&ack, "Proxy-Authorization"),
        header(&again, "Proxy-Authorization")
    );
}

#[test]
fn same_nonce_challenged_again_ends_the_call_rejected() {
    // RFC 3261 22.2: the credentials were refused; no retry loop
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls(&mut net, a, c, Some("wrong"));
    let (tx2, again) = challenge(&mut net, c, tx, &req, 407, "n1").expect("INVITE again");
    assert!(challenge(&mut net, c, tx2, &again, 407, "n1").is_none());
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Rejected(407)));
    assert_eq!(net.sent(a, "INVITE").len(), 2);
}

#[test]
fn fresh_credentials_challenged_with_a_new_nonce_end_the_call_rejected() {
    // RFC 3261 22.2: a wrong password, whatever nonce the server sends next
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls(&mut net, a, c, Some("wrong"));
    let (tx2, again) = challenge(&mut net, c, tx, &req, 401, "w1").expect("INVITE again");
    assert!(challenge(&mut net, c, tx2, &again, 401, "w2").is_none());
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Rejected(401)));
}

#[test]
fn invite_challenged_without_credentials_ends_the_call_rejected() {
    // RFC 3261 22.2: nothing to answer with
    let (mut net, a, c) = alice_and_raw();
    let (ca, tx, req) = alice_calls(&mut net, a, c, None);
    assert!(challenge(&mut net, c, tx, &req, 407, "n1").is_none());
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::Rejected(407)));
    assert_eq!(net.s(a).stats().auth_retries, 0);
}

#[test]
fn bye_reuses_the_kept_nonce_with_the_next_nonce_count() {
    // RFC 7616 3.4 (RFC 3261 22.2: credentials for later requests in the realm)
    let (mut net, a, c) = alice_and_raw();
    let (ca, _) = established(&mut net, a, c);
    let (s, ep, now) = net.ua(a);
    s.hangup(now, ep, ca).unwrap();
    net.run_for(Duration::from_millis(20));
    let (tx, bye) = requests(&mut net, c).pop().expect("BYE");
    let pa = header(&bye, "Proxy-Authorization");
    assert_eq!(pa.len(), 1, "{pa:?}");
    assert!(pa[0].contains("nonce=\"n1\"") && pa[0].contains("nc=00000002"));
    answer(&mut net, c, tx, &bye, 200, &[], None);
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::LocalBye));
}

#[test]
fn bye_challenged_401_is_sent_again_once_with_the_next_cseq() {
    // RFC 3261 22.2
    let (mut net, a, c) = alice_and_raw();
    let (ca, _) = established(&mut net, a, c);
    let (s, ep, now) = net.ua(a);
    s.hangup(now, ep, ca).unwrap();
    net.run_for(Duration::from_millis(20));
    let (tx, bye) = requests(&mut net, c).pop().expect("BYE");
    answer(
        &mut net,
        c,
        tx,
        &bye,
        401,
        &[("WWW-Authenticate", &proxy_challenge("b1"))],
        None,
    );
    let (tx2, bye2) = requests(&mut net, c).pop().expect("BYE again");
    let (m1, m2) = (bye.message().unwrap(), bye2.message().unwrap());
    assert_eq!(m2.cseq().unwrap().seq, m1.cseq().unwrap().seq + 1);
    assert_eq!(m2.to().unwrap().tag(), Some("ct"));
    let au = header(&bye2, "Authorization");
    assert!(au.len() == 1 && au[0].contains("nonce=\"b1\""), "{au:?}");
    assert_eq!(ended(&net.events(a), ca), None, "the call still ends");
    // a second challenge to the BYE sent again is not answered: the call ends with it
    answer(
        &mut net,
        c,
        tx2,
        &bye2,
        401,
        &[("WWW-Authenticate", &proxy_challenge("b2"))],
        None,
    );
    assert!(requests(&mut net, c).is_empty(), "no third BYE");
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::LocalBye));
    assert_eq!(net.s(a).dialogs(), 0);
}

#[test]
fn reinvite_challenged_407_is_sent_again_and_its_ack_carries_the_new_credentials() {
    // RFC 3261 22.2 and 13.2.2.4
    let (mut net, a, c) = alice_and_raw();
    let (ca, _) = established(&mut net, a, c);
    let (s, ep, now) = net.ua(a);
    s.reinvite(now, ep, ca, OFFER2.to_vec()).unwrap();
    net.run_for(Duration::from_millis(20));
    let (tx, re) = requests(&mut net, c).pop().expect("re-INVITE");
    answer(
        &mut net,
        c,
        tx,
        &re,
        407,
        &[("Proxy-Authenticate", &proxy_challenge("r1"))],
        None,
    );
    let (tx2, re2) = requests(&mut net, c).pop().expect("re-INVITE again");
    let m2 = re2.message().unwrap();
    assert_eq!(
        m2.cseq().unwrap().seq,
        re.message().unwrap().cseq().unwrap().seq + 1
    );
    assert_eq!(m2.body(), OFFER2);
    let pa = header(&re2, "Proxy-Authorization");
    assert!(pa.len() == 1 && pa[0].contains("nonce=\"r1\""), "{pa:?}");
    answer(&mut net, c, tx2, &re2, 200, &[CONTACT], Some(ANSWER));
    let ev = net.events(a);
    assert!(
        ev.iter()
            .any(|e| matches!(e, SessionEvent::Answer { call, .. } if *call == ca)),
        "{ev:?}"
    );
    let acks = net.sent(a, "ACK");
    let ack = acks.last().unwrap().text();
    assert_eq!(
        header_lines(&ack, "CSeq"),
        vec![format!("{} ACK", m2.cseq().unwrap().seq)]
    );
    assert_eq!(header_lines(&ack, "Proxy-Authorization"), pa);
}

#[test]
fn credentials_of_the_invite_sent_again_and_of_the_bye_verify_on_the_server() {
    // RFC 3261 22.2, RFC 7616 3.4: the digest covers each request's method and URI; the
    // BYE's kept nonce with the next nonce-count is accepted, not taken for a replay
    let (mut net, a, c) = alice_and_raw();
    let now = net.now;
    let mut server =
        Authenticator::new(AuthConfig::new("example.com", [9; 32]), now, 1_700_000_000);
    server.add_user("alice", "secret");
    let (ca, tx, req) = alice_calls(&mut net, a, c, Some("secret"));
    assert_eq!(
        server.verify(&req, AuthKind::Proxy, net.now),
        AuthVerdict::Challenge { stale: false }
    );
    let challenge = server
        .challenge(
            &req,
            AuthKind::Proxy,
            false,
            net.now,
            &mut SeededRng::new([4; 32]),
        )
        .unwrap();
    let now = net.now;
    net.nodes[c].ep.send_response(now, tx, &challenge).unwrap();
    net.run_for(Duration::from_millis(20));
    let (tx2, again) = requests(&mut net, c).pop().expect("INVITE again");
    let alice = AuthVerdict::Authorized {
        user: "alice".into(),
    };
    assert_eq!(server.verify(&again, AuthKind::Proxy, net.now), alice);
    answer(&mut net, c, tx2, &again, 200, &[CONTACT], Some(ANSWER));
    let (s, ep, now) = net.ua(a);
    s.hangup(now, ep, ca).unwrap();
    net.run_for(Duration::from_millis(20));
    let (_, bye) = requests(&mut net, c).pop().expect("BYE");
    assert_eq!(server.verify(&bye, AuthKind::Proxy, net.now), alice);
}

#[test]
fn first_invite_carries_credentials_from_a_nonce_the_client_kept() {
    // RFC 7616 3.4 (RFC 3261 22.2): a client that answered the registrar's challenge
    // reuses its nonce for the INVITE, with the next nonce-count
    let register = OwnedMessage::parse(
        b"REGISTER sip:example.com SIP/2.0\r\n\
          From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n\
          Call-ID: r1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let unauthorized = OwnedMessage::parse(
        format!(
            "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1\r\n\
             From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>;tag=2\r\n\
             Call-ID: r1\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: {}\r\n\
             Content-Length: 0\r\n\r\n",
            proxy_challenge("k1")
        )
        .as_bytes(),
    )
    .unwrap();
    let mut client = DigestClient::new("alice", "secret");
    client
        .retry(&register, &unauthorized, &mut SeededRng::new([6; 32]))
        .unwrap();
    let (mut net, a, c) = alice_and_raw();
    let (s, ep, now) = net.ua(a);
    let inv = Invite::new(
        "sip:carol@127.0.0.4:5060",
        "Alice <sip:alice@example.com>",
        "Carol <sip:carol@example.com>",
        Target::udp(addr(CAROL)),
    )
    .credentials(client);
    s.invite(now, ep, inv).unwrap();
    net.run_for(Duration::from_millis(20));
    let (_, req) = requests(&mut net, c).pop().expect("INVITE");
    let au = header(&req, "Authorization");
    assert!(
        au.len() == 1 && au[0].contains("nonce=\"k1\"") && au[0].contains("nc=00000002"),
        "{au:?}"
    );
}
