//! Sessions to names and over TLS (issue 11): calls whose Request-URI, Contact or Route is a
//! host name the endpoint locates (RFC 3263, the test answering the DNS questions by hand
//! from a zone), dialogs that keep their connection (RFC 3261 12.2.1.1), and the `sips:`
//! rules of RFC 3261 section 26.2 (with RFC 5630). Every test is named after the rule it
//! checks.

#[path = "support/session_sim.rs"]
mod session_sim;

use std::net::Ipv4Addr;
use std::time::Duration;

use session_sim::{addr, Net, NetConfig};
use sip_core::resolve::{Answer, Record, RecordType, Srv};
use sip_core::session::{CallHandle, EndReason, Invite, SessionConfig, SessionError, SessionEvent};
use sip_core::{Event, Method, NextHop, RequestBuilder, SeededRng, Target, Transport};

const ALICE: &str = "127.0.0.2:5060";
const BOB: &str = "127.0.0.3:5060";
const BOB_TLS: &str = "127.0.0.3:5061";
const OFFER: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const ANSWER: &[u8] = b"v=0\r\no=- 2 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

const ALL: &[Transport] = &[Transport::Udp, Transport::Tcp, Transport::Tls];

/// Alice and Bob with listeners of `transports`, Bob with this fixed Contact (if any).
fn pair(transports: &[Transport], bob_contact: Option<&str>) -> (Net, usize, usize) {
    let mut net = Net::new(11, NetConfig::perfect());
    let a = net.add_ua_on(ALICE, SessionConfig::new("alice"), transports);
    let mut bob = SessionConfig::new("bob");
    bob.contact = bob_contact.map(str::to_owned);
    let b = net.add_ua_on(BOB, bob, transports);
    (net, a, b)
}

fn a_record(net: &mut Net, name: &str, ip: Ipv4Addr) {
    net.dns.insert(
        (name.to_owned(), RecordType::A),
        Answer::Records(vec![Record::A { addr: ip, ttl: 10 }]),
    );
}

fn srv(net: &mut Net, name: &str, targets: &[(u16, u16, &str)]) {
    let records = targets
        .iter()
        .map(|&(priority, port, target)| {
            Record::Srv(Srv {
                priority,
                weight: 1,
                port,
                target: target.to_owned(),
                ttl: 10,
            })
        })
        .collect();
    net.dns
        .insert((name.to_owned(), RecordType::Srv), Answer::Records(records));
}

/// `example.test`: no NAPTR, `_sip._udp` and `_sips._tcp` SRV records naming
/// `bob-host.example.test` (127.0.0.3), on 5060 and 5061.
fn zone(net: &mut Net) {
    net.dns.insert(
        ("example.test".to_owned(), RecordType::Naptr),
        Answer::NoData { ttl: 300 },
    );
    srv(
        net,
        "_sip._udp.example.test",
        &[(0, 5060, "bob-host.example.test")],
    );
    srv(
        net,
        "_sips._tcp.example.test",
        &[(0, 5061, "bob-host.example.test")],
    );
    a_record(net, "bob-host.example.test", Ipv4Addr::new(127, 0, 0, 3));
}

/// Places `invite` from Alice; Bob accepts it with an answer. Returns both handles.
fn call(net: &mut Net, a: usize, b: usize, invite: Invite) -> (CallHandle, CallHandle) {
    let (s, ep, now) = net.ua(a);
    let ca = s.invite(now, ep, invite.offer(OFFER.to_vec())).unwrap();
    net.run_for(Duration::from_millis(50));
    let cb = net
        .events(b)
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Incoming { call, .. } => Some(call),
            _ => None,
        })
        .expect("Bob hears the INVITE");
    let (s, ep, now) = net.ua(b);
    s.accept(now, ep, cb, Some(ANSWER.to_vec())).unwrap();
    net.run_for(Duration::from_millis(100));
    let ea = net.events(a);
    assert!(
        ea.iter()
            .any(|e| matches!(e, SessionEvent::Answered { call, .. } if *call == ca)),
        "{ea:?}"
    );
    let eb = net.events(b);
    assert!(
        eb.iter()
            .any(|e| matches!(e, SessionEvent::Answered { call, .. } if *call == cb)),
        "{eb:?}"
    );
    (ca, cb)
}

fn hang_up(net: &mut Net, who: usize, call: CallHandle) {
    let (s, ep, now) = net.ua(who);
    s.hangup(now, ep, call).unwrap();
    net.run_for(Duration::from_millis(100));
}

fn ended(events: &[SessionEvent], call: CallHandle) -> Option<EndReason> {
    events.iter().find_map(|e| match e {
        SessionEvent::Ended { call: c, reason } if *c == call => Some(*reason),
        _ => None,
    })
}

fn asked(net: &Net, node: usize, name: &str) -> bool {
    net.dns_asked
        .iter()
        .any(|(n, q, _)| *n == node && q == name)
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn rfc3263_call_to_a_name_is_located_answered_and_hung_up() {
    // RFC 3261 8.1.2 with RFC 3263 section 4: sip:bob@example.test with only a name
    let (mut net, a, b) = pair(&[Transport::Udp, Transport::Tcp], None);
    zone(&mut net);
    let invite = Invite::to_uri(
        "sip:bob@example.test",
        "Alice <sip:alice@example.test>",
        "Bob <sip:bob@example.test>",
    );
    let (ca, cb) = call(&mut net, a, b, invite);
    assert!(asked(&net, a, "example.test"), "{:?}", net.dns_asked);
    assert!(asked(&net, a, "bob-host.example.test"));
    let invites = net.sent(a, "INVITE sip:bob@example.test");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].to, addr(BOB));
    hang_up(&mut net, a, ca);
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::RemoteBye));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::LocalBye));
}

#[test]
fn rfc3261_12_2_1_1_ack_and_bye_to_a_name_contact_are_located() {
    // RFC 3261 12.2.1.1 / 13.2.2.4: the remote target is Bob's Contact, a name: the ACK
    // and the BYE go where it resolves (RFC 3263), not to the address the INVITE used
    let (mut net, a, b) = pair(
        &[Transport::Udp, Transport::Tcp],
        Some("<sip:bob@bob-host.example.test>"),
    );
    zone(&mut net);
    let invite = Invite::new(
        "sip:bob@127.0.0.3",
        "<sip:alice@example.test>",
        "<sip:bob@example.test>",
        Target::udp(addr(BOB)),
    );
    let (ca, cb) = call(&mut net, a, b, invite);
    let d = net.s(a).dialog(ca).unwrap();
    assert_eq!(
        d.next_hop(),
        Some(NextHop::uri("sip:bob@bob-host.example.test"))
    );
    assert!(asked(&net, a, "bob-host.example.test"), "the ACK's lookup");
    assert_eq!(net.sent(a, "ACK sip:bob@bob-host.example.test").len(), 1);
    hang_up(&mut net, a, ca);
    let byes = net.sent(a, "BYE sip:bob@bob-host.example.test");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].to, addr(BOB));
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::RemoteBye));
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::LocalBye));
}

#[test]
fn rfc3261_12_2_1_1_in_dialog_bye_reuses_the_dialogs_tcp_flow() {
    // RFC 3261 12.2.1.1 with RFC 5923's spirit: requests inside a dialog made over a
    // connection go over it; neither side opens another (UAC: its Contact names the
    // server the INVITE went to; UAS: the connection the INVITE came on)
    let (mut net, a, b) = pair(
        &[Transport::Udp, Transport::Tcp],
        Some("<sip:bob@example.test;transport=tcp>"),
    );
    srv(
        &mut net,
        "_sip._tcp.example.test",
        &[(0, 5060, "bob-host.example.test")],
    );
    a_record(
        &mut net,
        "bob-host.example.test",
        Ipv4Addr::new(127, 0, 0, 3),
    );
    let invite = Invite::to_uri(
        "sip:bob@example.test;transport=tcp",
        "<sip:alice@example.test>",
        "<sip:bob@example.test>",
    );
    let (ca, cb) = call(&mut net, a, b, invite);
    // The name now leads elsewhere (another SRV target, its cache entry expired): the
    // dialog still goes over its connection, and asks nothing.
    net.dns.clear();
    srv(
        &mut net,
        "_sip._tcp.example.test",
        &[(0, 5060, "other-host.example.test")],
    );
    a_record(
        &mut net,
        "other-host.example.test",
        Ipv4Addr::new(127, 0, 0, 9),
    );
    net.run_for(Duration::from_secs(20));
    net.dns_asked.clear();
    // A re-INVITE from Bob and the BYE from Alice: both over the one connection.
    let (s, ep, now) = net.ua(b);
    s.reinvite(now, ep, cb, ANSWER.to_vec()).unwrap();
    net.run_for(Duration::from_millis(100));
    let (s, ep, now) = net.ua(a);
    let _ = s.answer_offer(now, ep, ca, Ok(OFFER.to_vec()));
    net.run_for(Duration::from_millis(100));
    hang_up(&mut net, a, ca);
    assert_eq!(ended(&net.events(b), cb), Some(EndReason::RemoteBye));
    assert_eq!(net.sent(b, "INVITE ").len(), 1, "Bob's re-INVITE");
    let byes = net.sent(a, "BYE ");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].transport, Transport::Tcp);
    assert_eq!(
        net.connects,
        vec![(a, Transport::Tcp, addr(BOB))],
        "one connection, opened by the INVITE"
    );
    assert!(net.dns_asked.is_empty(), "{:?}", net.dns_asked);
}

#[test]
fn rfc3261_26_2_sips_call_has_sips_contacts_tls_and_a_secure_dialog() {
    // RFC 3261 26.2, 8.1.1.8, 12.1.1 and 12.1.2: a sips: Request-URI located over TLS
    // (_sips._tcp), sips: Contacts on both sides, Via TLS, and every request of the
    // dialog over TLS
    sips_call("sips:bob@example.test");
}

#[test]
fn rfc3261_26_2_sips_call_to_an_address_goes_over_tls() {
    // RFC 3261 26.2 / 19.1.2: a numeric sips: URI means TLS on port 5061 here
    sips_call("sips:bob@127.0.0.3:5061");
}

fn sips_call(uri: &str) {
    let (mut net, a, b) = pair(ALL, None);
    zone(&mut net);
    let invite = Invite::to_uri(uri, "<sips:alice@example.test>", "<sips:bob@example.test>");
    let (ca, cb) = call(&mut net, a, b, invite);
    let invites = net.sent(a, &format!("INVITE {uri}"));
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].transport, Transport::Tls);
    assert_eq!(invites[0].to, addr(BOB_TLS));
    let text = invites[0].text();
    assert_eq!(
        header(&text, "Contact"),
        Some("<sips:alice@127.0.0.2:5061>")
    );
    assert!(header(&text, "Via").unwrap().starts_with("SIP/2.0/TLS "));
    let ok = net.sent(b, "SIP/2.0 200");
    assert_eq!(
        header(&ok[0].text(), "Contact"),
        Some("<sips:bob@127.0.0.3:5061>")
    );
    assert!(net.s(a).dialog(ca).unwrap().secure());
    assert!(net.s(b).dialog(cb).unwrap().secure());
    hang_up(&mut net, b, cb);
    assert_eq!(ended(&net.events(a), ca), Some(EndReason::RemoteBye));
    let byes = net.sent(b, "BYE sips:alice@127.0.0.2:5061");
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].transport, Transport::Tls);
    assert!(net.wire.iter().all(|w| w.transport == Transport::Tls));
}

#[test]
fn rfc3261_26_2_sips_call_over_a_udp_target_is_refused_not_downgraded() {
    // RFC 3261 26.2 (RFC 5630 section 4: TLS on every hop): the UAC refuses a sips:
    // call to a UDP target, and one without a TLS listener for its sips: Contact
    let (mut net, a, _) = pair(ALL, None);
    let (s, ep, now) = net.ua(a);
    let to_udp = Invite::new(
        "sips:bob@127.0.0.3",
        "<sips:alice@example.test>",
        "<sips:bob@example.test>",
        Target::udp(addr(BOB)),
    );
    assert_eq!(
        s.invite(now, ep, to_udp).err(),
        Some(SessionError::InsecureHop)
    );
    let (mut net, a, _) = pair(&[Transport::Udp, Transport::Tcp], None);
    let (s, ep, now) = net.ua(a);
    let no_tls = Invite::to_uri(
        "sips:bob@127.0.0.3",
        "<sips:alice@example.test>",
        "<sips:bob@example.test>",
    );
    assert_eq!(
        s.invite(now, ep, no_tls).err(),
        Some(SessionError::NoTlsListener)
    );
    assert_eq!(s.calls(), 0);
    assert!(net.wire.is_empty());
}

#[test]
fn rfc3261_26_2_sips_invite_that_came_over_udp_is_answered_480_warning_380() {
    // RFC 3261 26.2 with RFC 5630 sections 4 and 5.1.2: a sips: Request-URI that reached
    // the UAS over UDP broke the TLS-on-every-hop rule: 480 with warn-code 380, no call
    let mut net = Net::new(12, NetConfig::perfect());
    let a = net.add_raw(ALICE);
    let b = net.add_ua_on(BOB, SessionConfig::new("bob"), ALL);
    let invite = RequestBuilder::new(Method::Invite, "sips:bob@127.0.0.3")
        .from("<sips:alice@example.test>")
        .to("<sips:bob@example.test>")
        .contact("<sips:alice@127.0.0.2:5061>")
        .build(&mut SeededRng::new([3; 32]))
        .unwrap();
    let now = net.now;
    let tx = net.nodes[a]
        .ep
        .send_request(now, &invite, Target::udp(addr(BOB)))
        .unwrap();
    net.run_for(Duration::from_millis(100));
    let finals: Vec<_> = net
        .other(a)
        .into_iter()
        .filter_map(|e| match e {
            Event::Response { tx: t, response } if t == tx => Some(response),
            _ => None,
        })
        .filter(|r| r.status().is_some_and(|c| c >= 200))
        .collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].status(), Some(480));
    let text = String::from_utf8_lossy(finals[0].as_bytes()).into_owned();
    assert!(
        header(&text, "Warning").unwrap().starts_with("380 "),
        "{text}"
    );
    assert!(net.events(b).is_empty(), "no call");
    assert_eq!(net.s(b).calls(), 0);
    assert_eq!(net.s(b).stats().sips_refused, 1);
}

#[test]
fn rfc3261_10_2_6_registration_to_a_registrar_name_is_located() {
    // RFC 3261 10.2.6 with RFC 3263: the registrar is `sip:example.test`; the REGISTER
    // goes where its Request-URI resolves (the SRV target's address)
    use sip_core::registration::{
        Registration, RegistrationConfig, RegistrationState, RegistrationUser,
    };
    use sip_core::{HeaderName, ResponseBuilder, TransactionUser};
    let mut net = Net::new(13, NetConfig::perfect());
    let a = net.add_raw(ALICE);
    let r = net.add_raw(BOB);
    zone(&mut net);
    let config = RegistrationConfig::new(
        "sip:example.test",
        "sip:alice@example.test",
        "<sip:alice@127.0.0.2:5060>",
    );
    let reg = Registration::new(net.now, config, SeededRng::new([4; 32])).unwrap();
    let mut tu = RegistrationUser::to_registrar(reg);
    let mut rng = SeededRng::new([5; 32]);
    for _ in 0..10 {
        let now = net.now;
        if tu.poll_timeout().is_some_and(|t| t <= now) {
            tu.handle_timeout(now, &mut net.nodes[a].ep);
        }
        for ev in net.other(a) {
            tu.handle_event(now, ev, &mut net.nodes[a].ep);
        }
        for ev in net.other(r) {
            if let Event::Request { tx, request, .. } = ev {
                let view = request.view();
                let contact = view.header(HeaderName::Contact).unwrap_or("").to_owned();
                let ok = ResponseBuilder::from_view(&view, 200)
                    .header("Contact", &format!("{contact};expires=600"))
                    .build(&mut rng)
                    .unwrap();
                net.nodes[r].ep.send_response(now, tx, &ok).unwrap();
            }
        }
        net.run_for(Duration::from_millis(50));
    }
    assert!(
        matches!(
            tu.registration().state(),
            RegistrationState::Registered { .. }
        ),
        "{:?}",
        tu.registration().state()
    );
    assert!(asked(&net, a, "bob-host.example.test"));
    let registers = net
        .wire
        .iter()
        .filter(|w| w.first_line().starts_with("REGISTER sip:example.test"))
        .collect::<Vec<_>>();
    assert_eq!(registers.len(), 1);
    assert_eq!(registers[0].to, addr(BOB));
}
