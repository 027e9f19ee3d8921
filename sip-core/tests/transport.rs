//! The transport layer of the Endpoint (RFC 3261 section 18, RFC 3581, RFC 5626 section
//! 3.5.1): stream framing, keep-alives, flows, response routing, the Via parameters a
//! server adds, and the limits.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::{
    response_to, Config, Endpoint, Event, FlowEvent, FlowId, IoRequest, Listener, Message, Method,
    RequestBuilder, SeededRng, SendError, Target, Transmit, Transport,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const LOCAL: &str = "127.0.0.2:5060";

fn endpoint_with(f: impl FnOnce(&mut Config)) -> (Endpoint, Instant) {
    let mut config = Config {
        listeners: vec![
            Listener::new(Transport::Udp, addr(LOCAL)),
            Listener::new(Transport::Tcp, addr(LOCAL)),
        ],
        ..Config::default()
    };
    f(&mut config);
    let now = Instant::now();
    (Endpoint::new(config, [7; 32]), now)
}

fn endpoint() -> (Endpoint, Instant) {
    endpoint_with(|_| {})
}

fn request(method: &str, branch: &str, transport: &str, sent_by: &str) -> Vec<u8> {
    format!(
        "{method} sip:bob@127.0.0.2 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {sent_by};branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\n\
         To: <sip:bob@127.0.0.2>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn transmits(ep: &mut Endpoint) -> Vec<(Transmit, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = ep.poll_transmit(&mut buf) {
        out.push((t, buf.clone()));
    }
    out
}

fn requests(ep: &mut Endpoint) -> Vec<(sip_core::ServerTxId, sip_core::OwnedMessage)> {
    let mut out = Vec::new();
    while let Some(ev) = ep.poll_event() {
        if let Event::Request { tx, request, .. } = ev {
            out.push((tx, request));
        }
    }
    out
}

fn first_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn rfc3261_18_3_stream_messages_are_framed_across_any_split_and_several_per_read() {
    let mut all = request("INVITE", "z9hG4bK1", "TCP", "127.0.0.1:5070");
    all.extend(request("OPTIONS", "z9hG4bK2", "TCP", "127.0.0.1:5070"));
    for split in [1usize, 2, 7, 100, 333, all.len()] {
        let (mut ep, now) = endpoint();
        let flow = ep
            .accept_flow(now, Transport::Tcp, addr(LOCAL), addr("127.0.0.1:40000"))
            .unwrap();
        for chunk in all.chunks(split) {
            ep.handle_stream(now, flow, chunk);
        }
        let got = requests(&mut ep);
        let methods: Vec<_> = got
            .iter()
            .map(|(_, r)| r.view().method().unwrap().as_str().to_owned())
            .collect();
        assert_eq!(methods, ["INVITE", "OPTIONS"], "split every {split} bytes");
        assert_eq!(ep.stats().received, 2);
    }
}

#[test]
fn rfc5626_3_5_1_a_ping_is_answered_with_a_pong_on_the_same_flow() {
    let (mut ep, now) = endpoint();
    let flow = ep
        .accept_flow(now, Transport::Tcp, addr(LOCAL), addr("127.0.0.1:40000"))
        .unwrap();
    ep.handle_stream(now, flow, b"\r\n\r\n");
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.flow, Some(flow));
    assert_eq!(sent[0].1, b"\r\n");
    assert_eq!(ep.stats().pongs, 1);
    // a ping split in two is still one ping
    ep.handle_stream(now, flow, b"\r\n");
    ep.handle_stream(now, flow, b"\r\n");
    assert_eq!(transmits(&mut ep).len(), 1, "answered once");
    assert_eq!(ep.stats().pongs, 2);
    assert!(ep.poll_io().is_none(), "keep-alives never close the flow");
}

#[test]
fn rfc3261_18_3_a_stream_message_without_content_length_closes_the_flow() {
    let (mut ep, now) = endpoint();
    let flow = ep
        .accept_flow(now, Transport::Tcp, addr(LOCAL), addr("127.0.0.1:40000"))
        .unwrap();
    let msg = String::from_utf8(request("OPTIONS", "z9hG4bK1", "TCP", "127.0.0.1"))
        .unwrap()
        .replace("Content-Length: 0\r\n", "");
    ep.handle_stream(now, flow, msg.as_bytes());
    assert_eq!(ep.poll_io(), Some(IoRequest::Close { flow }));
    assert_eq!(ep.flows(), 0);
    assert!(requests(&mut ep).is_empty());
    assert_eq!(ep.stats().malformed, 1);
}

#[test]
fn rfc3261_18_an_idle_flow_is_closed_after_the_idle_timeout() {
    let (mut ep, now) = endpoint_with(|c| c.flow_idle_timeout = Duration::from_secs(60));
    let flow = ep
        .accept_flow(now, Transport::Tcp, addr(LOCAL), addr("127.0.0.1:40000"))
        .unwrap();
    // traffic at 30 s pushes the deadline to 90 s
    ep.handle_stream(now + Duration::from_secs(30), flow, b"\r\n\r\n");
    ep.handle_timeout(now + Duration::from_secs(60));
    assert_eq!(ep.poll_io(), None);
    assert_eq!(ep.flows(), 1);
    let deadline = ep.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(90));
    ep.handle_timeout(deadline);
    assert_eq!(ep.poll_io(), Some(IoRequest::Close { flow }));
    assert_eq!(ep.flows(), 0);
    assert_eq!(ep.poll_timeout(), None);
}

fn options(rng: &mut SeededRng) -> sip_core::OwnedMessage {
    RequestBuilder::new(Method::Options, "sip:bob@127.0.0.9")
        .from("<sip:alice@127.0.0.2>")
        .to("<sip:bob@127.0.0.9>")
        .build(rng)
        .unwrap()
}

fn connect_request(ep: &mut Endpoint) -> (FlowId, Transport, SocketAddr) {
    match ep.poll_io() {
        Some(IoRequest::Connect {
            flow,
            transport,
            remote,
        }) => (flow, transport, remote),
        other => panic!("expected a connect, got {other:?}"),
    }
}

#[test]
fn rfc3261_18_a_flow_is_reused_for_requests_to_the_same_peer() {
    let (mut ep, now) = endpoint();
    let mut rng = SeededRng::new([1; 32]);
    let peer = addr("127.0.0.9:5060");
    ep.send_request(now, &options(&mut rng), Target::tcp(peer))
        .unwrap();
    ep.send_request(now, &options(&mut rng), Target::tcp(peer))
        .unwrap();
    let (flow, transport, remote) = connect_request(&mut ep);
    assert_eq!((transport, remote), (Transport::Tcp, peer));
    assert_eq!(ep.poll_io(), None, "one connection for both requests");
    assert!(
        transmits(&mut ep).is_empty(),
        "nothing is written before the connection is up"
    );
    ep.handle_flow_event(
        now,
        flow,
        FlowEvent::Connected {
            local: addr("127.0.0.2:41000"),
        },
    );
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|(t, _)| t.flow == Some(flow)));
    let m = Message::parse(&sent[0].1).unwrap();
    assert_eq!(m.top_via().unwrap().transport, "TCP");
    // a third request reuses the open flow at once
    ep.send_request(now, &options(&mut rng), Target::tcp(peer))
        .unwrap();
    assert_eq!(ep.poll_io(), None);
    assert_eq!(transmits(&mut ep).len(), 1);
}

#[test]
fn rfc3261_17_1_4_a_failed_connection_is_a_transport_error() {
    let (mut ep, now) = endpoint();
    let mut rng = SeededRng::new([1; 32]);
    let tx = ep
        .send_request(now, &options(&mut rng), Target::tcp(addr("127.0.0.9:5060")))
        .unwrap();
    let (flow, ..) = connect_request(&mut ep);
    ep.handle_flow_event(now, flow, FlowEvent::Failed);
    match ep.poll_event() {
        Some(Event::TransportError {
            tx: sip_core::TxId::Client(t),
        }) => assert_eq!(t, tx),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.flows(), 0);
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn rfc3261_18_1_1_a_request_too_large_for_udp_goes_over_tcp() {
    let (mut ep, now) = endpoint();
    let mut rng = SeededRng::new([1; 32]);
    let big = RequestBuilder::new(Method::Message, "sip:bob@127.0.0.9")
        .from("<sip:alice@127.0.0.2>")
        .to("<sip:bob@127.0.0.9>")
        .body("text/plain", &[b'x'; 1400])
        .build(&mut rng)
        .unwrap();
    ep.send_request(now, &big, Target::udp(addr("127.0.0.9:5060")))
        .unwrap();
    let (flow, transport, _) = connect_request(&mut ep);
    assert_eq!(transport, Transport::Tcp);
    ep.handle_flow_event(
        now,
        flow,
        FlowEvent::Connected {
            local: addr("127.0.0.2:41000"),
        },
    );
    let sent = transmits(&mut ep);
    let m = Message::parse(&sent[0].1).unwrap();
    assert_eq!(
        m.top_via().unwrap().transport,
        "TCP",
        "the Via names the transport used"
    );
    // a small request stays on UDP
    ep.send_request(now, &options(&mut rng), Target::udp(addr("127.0.0.9:5060")))
        .unwrap();
    let sent = transmits(&mut ep);
    assert_eq!(sent[0].0.transport, Transport::Udp);
}

#[test]
fn rfc3261_18_2_2_a_reliable_response_goes_back_on_the_request_flow() {
    let (mut ep, now) = endpoint();
    let mut rng = SeededRng::new([1; 32]);
    let flow = ep
        .accept_flow(now, Transport::Tcp, addr(LOCAL), addr("127.0.0.1:40000"))
        .unwrap();
    ep.handle_stream(
        now,
        flow,
        &request("OPTIONS", "z9hG4bK1", "TCP", "127.0.0.1:5070"),
    );
    let (tx, req) = requests(&mut ep).pop().unwrap();
    let resp = response_to(&req.message().unwrap(), 200, &mut rng).unwrap();
    ep.send_response(now, tx, &resp).unwrap();
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.flow, Some(flow));
    assert_eq!(first_line(&sent[0].1), "SIP/2.0 200 OK");
    assert_eq!(
        ep.transactions(),
        0,
        "timer J is zero on a reliable transport"
    );
}

#[test]
fn rfc3261_18_2_2_a_response_opens_a_connection_to_received_and_sent_by_port_when_the_flow_closed()
{
    let (mut ep, now) = endpoint();
    let mut rng = SeededRng::new([1; 32]);
    let flow = ep
        .accept_flow(now, Transport::Tcp, addr(LOCAL), addr("127.0.0.1:40000"))
        .unwrap();
    ep.handle_stream(
        now,
        flow,
        &request("INVITE", "z9hG4bK1", "TCP", "client.example.com:5070"),
    );
    let (tx, req) = requests(&mut ep).pop().unwrap();
    ep.handle_flow_event(now, flow, FlowEvent::Closed);
    let resp = response_to(&req.message().unwrap(), 486, &mut rng).unwrap();
    ep.send_response(now, tx, &resp).unwrap();
    let (new_flow, transport, remote) = connect_request(&mut ep);
    assert_ne!(new_flow, flow);
    assert_eq!(transport, Transport::Tcp);
    assert_eq!(
        remote,
        addr("127.0.0.1:5070"),
        "the received address and the sent-by port"
    );
    ep.handle_flow_event(
        now,
        new_flow,
        FlowEvent::Connected {
            local: addr("127.0.0.2:41000"),
        },
    );
    let sent = transmits(&mut ep);
    assert_eq!(first_line(&sent[0].1), "SIP/2.0 486 Busy Here");
    assert_eq!(sent[0].0.flow, Some(new_flow));
}

#[test]
fn rfc3581_4_received_and_rport_are_added_and_the_response_goes_to_the_source_port() {
    let (mut ep, now) = endpoint();
    let mut rng = SeededRng::new([1; 32]);
    let msg = String::from_utf8(request("OPTIONS", "z9hG4bK1", "UDP", "10.0.0.1:5060"))
        .unwrap()
        .replace("branch=z9hG4bK1", "branch=z9hG4bK1;rport");
    ep.handle_datagram(now, addr(LOCAL), addr("127.0.0.1:40000"), msg.as_bytes());
    let (tx, req) = requests(&mut ep).pop().unwrap();
    let m = req.message().unwrap();
    let via = m.top_via().unwrap();
    assert_eq!(via.received(), Some("127.0.0.1"));
    assert_eq!(via.rport(), Some(Some(40000)));
    let resp = response_to(&m, 200, &mut rng).unwrap();
    ep.send_response(now, tx, &resp).unwrap();
    let sent = transmits(&mut ep);
    assert_eq!(sent[0].0.remote, addr("127.0.0.1:40000"));
    assert_eq!(
        sent[0].0.local,
        addr(LOCAL),
        "sent from where the request arrived"
    );
    let r = Message::parse(&sent[0].1).unwrap();
    assert_eq!(r.top_via().unwrap().rport(), Some(Some(40000)));
}

#[test]
fn rfc3261_18_2_2_without_rport_the_response_goes_to_the_sent_by_port() {
    // section 18.2.2 as written; the default policy answers the source port (tests/reflection.rs)
    let (mut ep, now) = endpoint_with(|c| c.response_policy = sip_core::ResponsePolicy::Rfc3261);
    let mut rng = SeededRng::new([1; 32]);
    let msg = request("OPTIONS", "z9hG4bK1", "UDP", "10.0.0.1:5080");
    ep.handle_datagram(now, addr(LOCAL), addr("127.0.0.1:40000"), &msg);
    let (tx, req) = requests(&mut ep).pop().unwrap();
    let resp = response_to(&req.message().unwrap(), 200, &mut rng).unwrap();
    ep.send_response(now, tx, &resp).unwrap();
    assert_eq!(transmits(&mut ep)[0].0.remote, addr("127.0.0.1:5080"));
}

#[test]
fn rfc3261_21_5_4_a_full_transaction_table_answers_503() {
    let (mut ep, now) = endpoint_with(|c| c.max_transactions = 1);
    let peer = addr("127.0.0.1:5070");
    ep.handle_datagram(
        now,
        addr(LOCAL),
        peer,
        &request("INVITE", "z9hG4bK1", "UDP", "127.0.0.1:5070"),
    );
    ep.handle_datagram(
        now,
        addr(LOCAL),
        peer,
        &request("INVITE", "z9hG4bK2", "UDP", "127.0.0.1:5070"),
    );
    assert_eq!(requests(&mut ep).len(), 1);
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(first_line(&sent[0].1), "SIP/2.0 503 Service Unavailable");
    let r = Message::parse(&sent[0].1).unwrap();
    assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK2"));
    assert!(r.to().unwrap().tag().is_some());
    let mut rng = SeededRng::new([1; 32]);
    assert_eq!(
        ep.send_request(now, &options(&mut rng), Target::udp(peer)),
        Err(SendError::TooManyTransactions)
    );
}

#[test]
fn rfc3261_8_2_an_unparsable_request_is_answered_400_and_a_bad_response_dropped() {
    let (mut ep, now) = endpoint();
    let peer = addr("127.0.0.1:5070");
    let bad = String::from_utf8(request("OPTIONS", "z9hG4bK1", "UDP", "127.0.0.1:5070"))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: seventy");
    ep.handle_datagram(now, addr(LOCAL), peer, bad.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(first_line(&sent[0].1), "SIP/2.0 400 Bad Request");
    assert_eq!(sent[0].0.remote, peer);
    assert!(requests(&mut ep).is_empty());
    assert_eq!(
        ep.transactions(),
        0,
        "no transaction for a stateless answer"
    );
    // a request whose Via is the broken part cannot be answered
    let no_via = bad.replace("SIP/2.0/UDP 127.0.0.1:5070", "garbage here");
    ep.handle_datagram(now, addr(LOCAL), peer, no_via.as_bytes());
    assert!(transmits(&mut ep).is_empty());
    // a malformed response is dropped
    ep.handle_datagram(
        now,
        addr(LOCAL),
        peer,
        b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
    );
    assert!(transmits(&mut ep).is_empty());
    assert!(ep.poll_event().is_none());
    assert_eq!(ep.stats().malformed, 3);
    // a malformed ACK is never answered
    let bad_ack = String::from_utf8(request("ACK", "z9hG4bK1", "UDP", "127.0.0.1:5070"))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: seventy");
    ep.handle_datagram(now, addr(LOCAL), peer, bad_ack.as_bytes());
    assert!(transmits(&mut ep).is_empty());
}

#[test]
fn rfc3261_8_2_a_request_past_a_limit_is_answered_400_with_its_vias_and_from() {
    // RFC 3261 8.2 and 8.2.6.2: a request refused as malformed gets 400 (each limit's
    // documented reaction), and the response copies every Via and the From of the request,
    // even when they are past the limits the server applies to its input.
    let peer = addr("127.0.0.1:5070");
    let base = String::from_utf8(request("OPTIONS", "z9hG4bK1", "UDP", "127.0.0.1:5070")).unwrap();
    let top_via = "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n";
    let proxies = |n: usize, per_line: usize| -> String {
        let values: Vec<String> = (0..n)
            .map(|i| format!("SIP/2.0/UDP p{i}.example.invalid;branch=z9hG4bKp{i}"))
            .collect();
        values
            .chunks(per_line)
            .map(|c| format!("Via: {}\r\n", c.join(", ")))
            .collect()
    };
    let below_top = |extra: &str| base.replacen(top_via, &format!("{top_via}{extra}"), 1);
    let limits = sip_core::Limits::default();
    type Case = (&'static str, String, fn(&mut Config));
    let cases: [Case; 5] = [
        // one more Via than allowed: one value a line, then all in one line
        ("Via lines", below_top(&proxies(limits.max_vias, 1)), |_| {}),
        (
            "Via values in one line",
            below_top(&proxies(limits.max_vias, limits.max_vias)),
            |_| {},
        ),
        // more header lines than allowed, most of them Via
        (
            "header lines",
            below_top(&proxies(limits.max_headers, 1)),
            |c| c.limits.max_vias = usize::MAX,
        ),
        // a Via line longer than allowed
        (
            "header line length",
            below_top(&format!(
                "Via: SIP/2.0/UDP p.example.invalid;branch=z9hG4bK{}\r\n",
                "x".repeat(limits.max_header_line)
            )),
            |_| {},
        ),
        // a From URI longer than allowed
        (
            "URI length",
            base.replacen(
                "sip:alice@",
                &format!("sip:{}@", "a".repeat(limits.max_uri_length)),
                1,
            ),
            |_| {},
        ),
    ];
    let unbounded = sip_core::Limits {
        max_message_size: usize::MAX,
        max_headers: usize::MAX,
        max_header_line: usize::MAX,
        max_vias: usize::MAX,
        max_uri_length: usize::MAX,
    };
    for (what, req, config) in cases {
        let (mut ep, now) = endpoint_with(config);
        ep.handle_datagram(now, addr(LOCAL), peer, req.as_bytes());
        let sent = transmits(&mut ep);
        assert_eq!(sent.len(), 1, "{what}: one response");
        assert_eq!(first_line(&sent[0].1), "SIP/2.0 400 Bad Request", "{what}");
        assert_eq!(sent[0].0.remote, peer, "{what}");
        let resp = Message::parse_with(&sent[0].1, &unbounded).unwrap();
        let req = Message::parse_with(req.as_bytes(), &unbounded).unwrap();
        assert!(resp.vias().eq(req.vias()), "{what}: every Via, in order");
        assert_eq!(resp.from(), req.from(), "{what}");
        assert_eq!(ep.stats().malformed, 1, "{what}");
    }
}

#[test]
fn rfc3261_18_the_flow_table_is_bounded() {
    let (mut ep, now) = endpoint_with(|c| c.max_flows = 1);
    let flow = ep
        .accept_flow(now, Transport::Tcp, addr(LOCAL), addr("127.0.0.1:40000"))
        .unwrap();
    // A flow a transaction uses is never closed to make room (an idle one would be).
    ep.handle_stream(
        now,
        flow,
        &request("INVITE", "z9hG4bK1", "TCP", "127.0.0.1:40000"),
    );
    assert_eq!(requests(&mut ep).len(), 1);
    assert_eq!(
        ep.accept_flow(now, Transport::Tcp, addr(LOCAL), addr("127.0.0.1:40001")),
        Err(SendError::TooManyFlows)
    );
    assert_eq!(
        ep.accept_flow(now, Transport::Tcp, addr(LOCAL), addr("127.0.0.1:40001")),
        Err(SendError::TooManyFlows)
    );
    let mut rng = SeededRng::new([1; 32]);
    assert_eq!(
        ep.send_request(now, &options(&mut rng), Target::tcp(addr("127.0.0.9:5060"))),
        Err(SendError::TooManyFlows)
    );
    assert_eq!(
        ep.transactions(),
        1,
        "a refused request leaves no transaction"
    );
}

#[test]
fn rfc3261_17_2_3_an_ack_matching_nothing_reaches_the_tu_and_one_without_call_id_is_dropped() {
    let (mut ep, now) = endpoint();
    let peer = addr("127.0.0.1:5070");
    let ack = request("ACK", "z9hG4bKack1", "UDP", "127.0.0.1:5070");
    ep.handle_datagram(now, addr(LOCAL), peer, &ack);
    match ep.poll_event() {
        Some(Event::Ack { request, source }) => {
            assert_eq!(request.as_bytes(), &ack[..]);
            assert_eq!(source.remote, peer);
            // framed, and typed on demand by the transaction user
            assert_eq!(request.message().unwrap().cseq().unwrap().seq, 1);
        }
        other => panic!("expected the ACK, got {other:?}"),
    }
    let no_call_id = String::from_utf8(request("ACK", "z9hG4bKack2", "UDP", "127.0.0.1:5070"))
        .unwrap()
        .replace("Call-ID: call-z9hG4bKack2\r\n", "");
    ep.handle_datagram(now, addr(LOCAL), peer, no_call_id.as_bytes());
    assert!(ep.poll_event().is_none());
    assert!(transmits(&mut ep).is_empty(), "an ACK is never answered");
    assert_eq!(ep.stats().malformed, 1);
    assert_eq!(ep.transactions(), 0);
}

// RFC 3261 sections 7.5 and 8.2: CRLFs before the start line are ignored, also when the
// request is answered 400 from its raw lines (the raw copy once started at the first empty
// line, found no Via and sent nothing).
#[test]
fn rfc3261_7_5_an_unparsable_request_after_crlfs_before_its_start_line_is_answered_400() {
    let (mut ep, now) = endpoint();
    let peer = addr("127.0.0.1:5070");
    let bad = String::from_utf8(request("OPTIONS", "z9hG4bK1", "UDP", "127.0.0.1:5070"))
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: seventy");
    let data = format!("\r\n\r\n{bad}");
    ep.handle_datagram(now, addr(LOCAL), peer, data.as_bytes());
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(first_line(&sent[0].1), "SIP/2.0 400 Bad Request");
    let r = Message::parse(&sent[0].1).unwrap();
    assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK1"));
    assert_eq!(r.call_id(), Some("call-z9hG4bK1"));
}

// RFC 3261 sections 17.2.3 and 8.2: a request is a retransmission only if its top Via is one
// (branch, sent-by); a datagram whose Via line does not parse is malformed (and cannot be
// answered, its Via being the broken part), even when its branch and sent-by name a live
// transaction. The quick read of the raw Via once accepted parameter values and lists the full
// parse rejects, and answered such a datagram with the transaction's response.
#[test]
fn rfc3261_17_2_3_a_request_whose_via_does_not_parse_is_not_absorbed_as_a_retransmission() {
    let (mut ep, now) = endpoint();
    let peer = addr("127.0.0.1:5070");
    let good = request("OPTIONS", "z9hG4bKlive", "UDP", "127.0.0.1:5070");
    ep.handle_datagram(now, addr(LOCAL), peer, &good);
    let (tx, req) = requests(&mut ep).pop().unwrap();
    let ok = response_to(&req.message().unwrap(), 200, &mut SeededRng::new([2; 32])).unwrap();
    ep.send_response(now, tx, &ok).unwrap();
    assert_eq!(transmits(&mut ep).len(), 1);
    let good = String::from_utf8(good).unwrap();
    for broken in [
        ";branch=z9hG4bKlive;ttl=999",
        ";branch=z9hG4bKlive;received=not-an-address",
        ";branch=z9hG4bKlive;maddr=a..b",
        ";branch=z9hG4bKlive, SIP/2.0/UDP",
        ";branch=z9hG4bKlive\x0c",
    ] {
        let bad = good.replace(";branch=z9hG4bKlive", broken);
        assert!(Message::parse(bad.as_bytes()).is_err(), "{broken}");
        let (absorbed, malformed) = (ep.stats().absorbed, ep.stats().malformed);
        ep.handle_datagram(now, addr(LOCAL), peer, bad.as_bytes());
        assert_eq!(ep.stats().absorbed, absorbed, "{broken}: absorbed");
        assert_eq!(ep.stats().malformed, malformed + 1, "{broken}");
        assert!(transmits(&mut ep).is_empty(), "{broken}: answered");
    }
    // the live transaction's own retransmission is still absorbed, its 200 resent
    let absorbed = ep.stats().absorbed;
    ep.handle_datagram(now, addr(LOCAL), peer, good.as_bytes());
    assert_eq!(ep.stats().absorbed, absorbed + 1);
    let sent = transmits(&mut ep);
    assert_eq!(sent.len(), 1);
    assert_eq!(first_line(&sent[0].1), "SIP/2.0 200 OK");
}
