//! Reflection and amplification (RFC 3261 section 26.1.5): a request whose source address
//! is forged must not make the endpoint send its responses to an address of the sender's
//! choosing (section 18.2.2's `maddr` and sent-by port), nor many more bytes to the
//! request's source than that source sent. Measured through `Endpoint::handle_datagram` and
//! `poll_transmit` with the UAS core of `sipd`, the virtual clock run to the end of all
//! timers.

#[path = "support/sim.rs"]
mod sim;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sim::{NetConfig, Sim};
use sip_core::ua::{UaConfig, UserAgent};
use sip_core::{
    Config, Endpoint, Event, HeaderName, Listener, Method, RequestBuilder, ResponsePolicy,
    SeededRng, Stats, Target, TransactionUser, Transport,
};

const SERVER: &str = "127.0.0.2:5060";
/// Where the forged request claims to come from: the victim.
const VICTIM: &str = "192.0.2.1:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The smallest INVITE sipd answers 100, 180 and 200 (207 bytes with `via_params` empty).
fn forged_invite(sent_by: &str, via_params: &str) -> Vec<u8> {
    format!(
        "INVITE sip:a@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP {sent_by};branch=z9hG4bKx{via_params}\r\n\
         From: <sip:x@y>;tag=1\r\nTo: <sip:a@127.0.0.2>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// One datagram the server sent: when (since the request), where, how many bytes.
#[derive(Debug)]
struct Sent {
    at: Duration,
    to: SocketAddr,
    len: usize,
}

/// Feeds `input` from `source` to an endpoint running sipd's UAS core (ring time zero) and
/// runs the virtual clock until no timer is left: every datagram sent, and the counters.
fn answer(policy: ResponsePolicy, source: &str, input: &[u8]) -> (Vec<Sent>, Stats) {
    let config = Config {
        listeners: vec![Listener::new(Transport::Udp, addr(SERVER))],
        response_policy: policy,
        ..Config::default()
    };
    let start = Instant::now();
    let mut ep = Endpoint::new(config, [7; 32]);
    let mut ua = UserAgent::new(UaConfig::new("<sip:sipd@127.0.0.2:5060>"), [3; 32]);
    let (mut sent, mut buf, mut now) = (Vec::new(), Vec::new(), start);
    ep.handle_datagram(now, addr(SERVER), addr(source), input);
    loop {
        while let Some(e) = ep.poll_event() {
            ua.handle_event(now, e, &mut ep);
        }
        while let Some(t) = ep.poll_transmit(&mut buf) {
            let (at, to, len) = (now - start, t.remote, buf.len());
            sent.push(Sent { at, to, len });
        }
        let next = [ep.poll_timeout(), ua.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        assert!(
            next - start < Duration::from_secs(300),
            "timers run forever"
        );
        now = now.max(next);
        ep.handle_timeout(now);
        ua.handle_timeout(now, &mut ep);
    }
    assert_eq!(ep.transactions(), 0);
    (sent, ep.stats())
}

fn bytes(sent: &[Sent]) -> usize {
    sent.iter().map(|s| s.len).sum()
}

/// The Via variants that aim the responses elsewhere under section 18.2.2: `maddr`, and a
/// sent-by port other than the source port without `rport`.
fn aiming_vias() -> [(Vec<u8>, SocketAddr); 2] {
    [
        (
            forged_invite("198.51.100.7:5060", ";maddr=203.0.113.9"),
            addr("203.0.113.9:5060"),
        ),
        (forged_invite("192.0.2.1:9", ""), addr("192.0.2.1:9")),
    ]
}

// RFC 3261 26.1.5, 18.2.2
#[test]
fn rfc3261_26_1_5_strict_routing_lets_a_forged_invite_aim_amplified_responses_elsewhere() {
    // What sipd did before the untrusted-peer policy, still available as ResponsePolicy::Rfc3261.
    for (invite, aimed_at) in aiming_vias() {
        let (sent, _) = answer(ResponsePolicy::Rfc3261, VICTIM, &invite);
        assert!(sent.iter().all(|s| s.to == aimed_at), "{sent:?}");
        let factor = bytes(&sent) as f64 / invite.len() as f64;
        eprintln!(
            "RFC 3261 routing: {} bytes in, {} datagrams and {} bytes out to {aimed_at}: {factor:.1}x",
            invite.len(),
            sent.len(),
            bytes(&sent)
        );
        // 100, 180, 200, then the 2xx every T1..T2 for 64*T1 with no ACK ever coming
        assert!(sent.len() > 10, "{sent:?}");
        assert!(factor > 10.0, "{factor}");
    }
}

// RFC 3261 26.1.5, 18.2.2, RFC 3581 4
#[test]
fn rfc3261_26_1_5_untrusted_peers_are_answered_only_at_the_source_within_the_amplification_bound() {
    let mut variants = aiming_vias().to_vec();
    variants.push((forged_invite("192.0.2.1:40000", ";rport"), addr(VICTIM)));
    for (invite, _) in variants {
        let (sent, stats) = answer(ResponsePolicy::default(), VICTIM, &invite);
        // RFC 3581 section 4 whatever the Via says: the source address and port only.
        assert!(sent.iter().all(|s| s.to == addr(VICTIM)), "{sent:?}");
        // The answers sent when the request arrived (100, 180, 200) are always sent; what
        // timers send later (the 2xx retransmissions of section 13.3.1.4) must be earned, so
        // the total stays within MAX_AMPLIFICATION times the bytes received, or the answers
        // alone when they are larger.
        let answers: usize = sent.iter().filter(|s| s.at.is_zero()).map(|s| s.len).sum();
        let received = invite.len();
        let bound = answers.max(ResponsePolicy::MAX_AMPLIFICATION * received);
        let factor = bytes(&sent) as f64 / received as f64;
        eprintln!(
            "untrusted-peer policy: {received} bytes in, {} datagrams and {} bytes out to the \
             source: {factor:.1}x (answers {answers}, bound {bound})",
            sent.len(),
            bytes(&sent)
        );
        assert!(answers > 0, "the request is still answered");
        assert!(bytes(&sent) <= bound, "{sent:?}");
        assert!(stats.withheld > 0, "the 2xx retransmissions were withheld");
    }
}

// ---- genuine clients under the default policy, on the simulated network ----

const UAC: usize = 0;
const UAS: usize = 1;

/// A UAC node with its own (default) endpoint and a UAS node running the UAS core under
/// the default policy.
fn call_setup() -> Sim {
    let mut sim = Sim::new(1, NetConfig::perfect());
    sim.add_node_with("127.0.0.1:5060", Config::default());
    sim.add_node_with("127.0.0.2:5060", Config::default());
    sim.nodes[UAS].ua = Some(UserAgent::new(
        UaConfig::new("<sip:sipd@127.0.0.2:5060>"),
        [4; 32],
    ));
    sim
}

/// An INVITE as a phone writes it: with an SDP offer.
fn invite() -> sip_core::OwnedMessage {
    let sdp = b"v=0\r\no=alice 2890844526 2890844526 IN IP4 127.0.0.1\r\ns=-\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 97\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:97 iLBC/8000\r\n";
    RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.2:5060")
        .from("Alice <sip:alice@127.0.0.1>")
        .to("Bob <sip:bob@127.0.0.2>")
        .contact("<sip:alice@127.0.0.1:5060>")
        .body("application/sdp", sdp)
        .build(&mut SeededRng::new([1; 32]))
        .unwrap()
}

fn target() -> Target {
    Target::udp(addr(SERVER))
}

fn oks_sent(sim: &Sim) -> usize {
    sim.sent_times(UAS, "SIP/2.0 200").len()
}

// RFC 3261 13.3.1.4, 26.1.5
#[test]
fn rfc3261_13_3_1_4_a_client_that_acks_is_served_as_before_under_the_untrusted_policy() {
    let mut sim = call_setup();
    let invite = invite();
    let now = sim.now;
    let tx = sim.ep(UAC).send_request(now, &invite, target()).unwrap();
    sim.run_for(Duration::from_millis(100));
    let ok = sim
        .events(UAC)
        .into_iter()
        .find_map(|(_, e)| match e {
            Event::Response { tx: t, response } if t == tx => {
                (response.view().status() == Some(200)).then_some(response)
            }
            _ => None,
        })
        .expect("the 200");
    let ack = RequestBuilder::new(Method::Ack, "sip:sipd@127.0.0.2:5060")
        .from(invite.view().header(HeaderName::From).unwrap())
        .to(ok.view().header(HeaderName::To).unwrap())
        .call_id(invite.view().header(HeaderName::CallId).unwrap())
        .cseq(1)
        .build(&mut SeededRng::new([9; 32]))
        .unwrap();
    let now = sim.now;
    sim.ep(UAC).send_ack(now, &ack, target()).unwrap();
    sim.run_for(Duration::from_secs(60));
    assert_eq!(oks_sent(&sim), 1);
    assert_eq!(sim.nodes[UAS].ep.stats().withheld, 0);
    let ua = sim.nodes[UAS].ua.as_ref().unwrap();
    assert_eq!((ua.stats().calls_answered, ua.dialogs()), (1, 1));
}

// RFC 3261 13.3.1.4, 26.1.5
#[test]
fn rfc3261_13_3_1_4_a_silent_client_gets_the_2xx_retransmitted_as_far_as_its_invite_pays() {
    // The client never ACKs (its 200 may have been lost): the server cannot tell it from a
    // forged source, so it retransmits only what the INVITE's bytes pay for.
    let mut sim = call_setup();
    let invite = invite();
    let now = sim.now;
    sim.ep(UAC).send_request(now, &invite, target()).unwrap();
    sim.run_for(Duration::from_secs(60));
    let total = |f: &dyn Fn(&sim::Packet) -> bool| -> usize {
        sim.log
            .iter()
            .filter(|(_, p)| f(p))
            .map(|(_, p)| p.data.len())
            .sum()
    };
    let received = total(&|p| p.to == addr(SERVER));
    // Responses only: the BYE that ends the unacknowledged session (section 13.3.1.4) is a
    // request of its own, not a retransmission the policy meters.
    let sent = total(&|p| p.from == addr(SERVER) && p.data.starts_with(b"SIP/2.0 "));
    eprintln!(
        "silent client: {received} bytes in, {sent} out, {} 200s",
        oks_sent(&sim)
    );
    assert!(
        oks_sent(&sim) >= 2,
        "at least one retransmission for an INVITE with an offer"
    );
    assert!(sim.nodes[UAS].ep.stats().withheld > 0);
    assert!(sent <= ResponsePolicy::MAX_AMPLIFICATION * received);
}

// RFC 3261 17.2.1, 26.1.5
#[test]
fn rfc3261_17_2_1_timer_g_retransmissions_must_be_earned_but_a_repeated_invite_is_answered() {
    let config = Config {
        listeners: vec![Listener::new(Transport::Udp, addr(SERVER))],
        ..Config::default()
    };
    let start = Instant::now();
    let mut ep = Endpoint::new(config, [7; 32]);
    let invite = forged_invite("192.0.2.1:40000", "");
    ep.handle_datagram(start, addr(SERVER), addr(VICTIM), &invite);
    let Some(Event::Request { tx, request, .. }) = ep.poll_event() else {
        panic!("no request");
    };
    let busy = sip_core::response_to(
        &request.message().unwrap(),
        486,
        &mut SeededRng::new([2; 32]),
    )
    .unwrap();
    ep.send_response(start, tx, &busy).unwrap();
    let mut buf = Vec::new();
    let mut drain = |ep: &mut Endpoint| {
        let mut n = 0;
        while let Some(t) = ep.poll_transmit(&mut buf) {
            assert_eq!(t.remote, addr(VICTIM));
            n += 1;
        }
        n
    };
    assert_eq!(drain(&mut ep), 1, "the answer goes out");
    // Timer G until timer H: only what the INVITE's bytes pay for.
    let mut by_timer = 0;
    let end = start + Duration::from_secs(10);
    while let Some(t) = ep.poll_timeout().filter(|t| *t < end) {
        ep.handle_timeout(t);
        by_timer += drain(&mut ep);
    }
    let max = (ResponsePolicy::MAX_AMPLIFICATION * invite.len())
        .saturating_sub(busy.as_bytes().len())
        / busy.as_bytes().len();
    assert!(by_timer <= max, "{by_timer} > {max}");
    assert!(ep.stats().withheld > 0);
    // The INVITE again (section 17.2.1: the response is passed to the transport again).
    ep.handle_datagram(end, addr(SERVER), addr(VICTIM), &invite);
    assert_eq!(drain(&mut ep), 1, "a repeated request is answered");
}

// RFC 3261 13.3.1.4, 26.1.5: a 2xx is known by its bytes, so a transaction user that builds
// the same 2xx again for each retransmission (instead of resending one message) is held to
// the same credit as one that resends it: without it, every rebuilt copy went out.
#[test]
fn rfc3261_13_3_1_4_a_2xx_built_again_is_a_retransmission_held_to_the_credit() {
    let config = Config {
        listeners: vec![Listener::new(Transport::Udp, addr(SERVER))],
        ..Config::default()
    };
    let start = Instant::now();
    let mut ep = Endpoint::new(config, [7; 32]);
    let invite = forged_invite("192.0.2.1:40000", "");
    ep.handle_datagram(start, addr(SERVER), addr(VICTIM), &invite);
    let Some(Event::Request { tx, request, .. }) = ep.poll_event() else {
        panic!("no request");
    };
    let ok = sip_core::response_to(
        &request.message().unwrap(),
        200,
        &mut SeededRng::new([2; 32]),
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut out = 0;
    let mut copies = Vec::new();
    for i in 0..20 {
        // a fresh buffer holding the same bytes each time (all kept, so that no buffer's
        // address comes back for the next copy)
        copies.push(sip_core::OwnedMessage::parse(ok.as_bytes()).unwrap());
        let again = copies.last().unwrap();
        ep.send_response(start + Duration::from_millis(500 * i), tx, again)
            .unwrap();
        while let Some(t) = ep.poll_transmit(&mut buf) {
            assert_eq!(t.remote, addr(VICTIM));
            out += buf.len();
        }
    }
    assert!(
        ep.stats().withheld > 0,
        "rebuilt copies are retransmissions"
    );
    assert!(
        out <= (ResponsePolicy::MAX_AMPLIFICATION * invite.len()).max(ok.as_bytes().len()),
        "{out} bytes out for {} in",
        invite.len()
    );
}
