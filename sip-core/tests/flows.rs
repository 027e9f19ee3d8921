//! Streams that one peer cannot monopolise (RFC 3261 section 18, 18.3; RFC 5626 section
//! 3.5.1): the per-source limit, the deadline for completing a message, room for new peers
//! when the flow table is full, and the byte budget for what flows and transactions hold.
//! Driven through the Endpoint on a virtual clock.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use sip_core::{Config, Endpoint, FlowId, IoRequest, Listener, Transport};

const LOCAL: &str = "127.0.0.2:5060";

fn local() -> SocketAddr {
    LOCAL.parse().unwrap()
}

fn endpoint_with(f: impl FnOnce(&mut Config)) -> (Endpoint, Instant) {
    let mut config = Config {
        listeners: vec![
            Listener::new(Transport::Udp, local()),
            Listener::new(Transport::Tcp, local()),
        ],
        ..Config::default()
    };
    f(&mut config);
    let now = Instant::now();
    (Endpoint::new(config, [3; 32]), now)
}

/// A peer address: source `host` (10.x.y.z), port `port`.
fn peer(host: u32, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | host)), port)
}

fn options(branch: &str, sent_by: SocketAddr) -> Vec<u8> {
    request("OPTIONS", branch, sent_by)
}

fn request(method: &str, branch: &str, sent_by: SocketAddr) -> Vec<u8> {
    format!(
        "{method} sip:bob@127.0.0.2 SIP/2.0\r\n\
         Via: SIP/2.0/TCP {sent_by};branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@127.0.0.2>;tag=b1\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Drains everything; returns the flows the endpoint asked to close.
fn closed(ep: &mut Endpoint) -> Vec<FlowId> {
    let mut buf = Vec::new();
    while ep.poll_transmit(&mut buf).is_some() {}
    while ep.poll_event().is_some() {}
    let mut out = Vec::new();
    while let Some(io) = ep.poll_io() {
        if let IoRequest::Close { flow } = io {
            out.push(flow);
        }
    }
    out
}

/// Runs the clock to `until`, stopping at every deadline on the way.
fn run_clock(ep: &mut Endpoint, now: &mut Instant, until: Instant, closes: &mut Vec<FlowId>) {
    while let Some(t) = ep.poll_timeout().filter(|t| *t <= until) {
        *now = (*now).max(t);
        ep.handle_timeout(*now);
        closes.extend(closed(ep));
    }
    *now = until;
}

// RFC 3261 section 18 leaves the number of connections to the implementation: one source
// that opens more connections than the table holds and keeps each alive with a byte every
// two seconds must not lock every other peer out. (Before: all 8,192 slots went to it, and
// every probe from another peer was refused for as long as it kept going.)
#[test]
fn rfc3261_18_one_source_dribbling_on_many_connections_does_not_lock_new_peers_out() {
    let (mut ep, mut now) = endpoint_with(|_| {});
    let start = now;
    let attacker: Vec<FlowId> = (0..8300u32)
        .filter_map(|i| {
            ep.accept_flow(now, Transport::Tcp, local(), peer(1, 1024 + i as u16))
                .ok()
        })
        .collect();
    let mut refused = 0;
    let mut probes = 0;
    let mut closes = Vec::new();
    let request = options("z9hG4bKslow", peer(1, 1024));
    let mut sent = 0;
    while now < start + Duration::from_secs(150) {
        // one more byte on every connection still open
        for &f in &attacker {
            if !closes.contains(&f) {
                ep.handle_stream(now, f, &request[sent % request.len()..][..1]);
            }
        }
        sent += 1;
        closes.extend(closed(&mut ep));
        if sent % 5 == 0 {
            probes += 1;
            match ep.accept_flow(now, Transport::Tcp, local(), peer(2 + probes, 5060)) {
                Ok(f) => {
                    ep.handle_stream(now, f, &options("z9hG4bKprobe", peer(2 + probes, 5060)));
                    ep.handle_flow_event(now, f, sip_core::FlowEvent::Closed);
                }
                Err(_) => refused += 1,
            }
        }
        let next = now + Duration::from_secs(2);
        run_clock(&mut ep, &mut now, next, &mut closes);
    }
    assert!(probes >= 10);
    assert_eq!(refused, 0, "{refused} of {probes} new peers refused");
}

// RFC 3261 section 18.3 sets no time limit on a message; one byte every two seconds used to
// keep a connection (and its buffer) forever, each byte pushing the idle timeout back.
// A message must now be complete within a fixed time of its first byte.
#[test]
fn rfc3261_18_3_a_message_not_complete_in_time_closes_the_flow_whatever_bytes_arrive() {
    let (mut ep, mut now) = endpoint_with(|_| {});
    let start = now;
    let flow = ep
        .accept_flow(now, Transport::Tcp, local(), peer(1, 40000))
        .unwrap();
    let request = options("z9hG4bK1", peer(1, 40000));
    let mut closes = Vec::new();
    for byte in request.iter().take(request.len() - 1).take(200) {
        if closes.contains(&flow) {
            break;
        }
        ep.handle_stream(now, flow, std::slice::from_ref(byte));
        closes.extend(closed(&mut ep));
        let next = now + Duration::from_secs(2);
        run_clock(&mut ep, &mut now, next, &mut closes);
    }
    assert_eq!(closes, [flow], "the flow is closed");
    assert!(
        now - start <= Duration::from_secs(40),
        "closed after {:?}, not within the message deadline",
        now - start
    );
    assert_eq!(ep.flows(), 0);
}

// Whole messages keep a flow open: a peer that completes a message (or a keep-alive, RFC
// 5626 section 3.5.1) before each deadline is never closed for being slow.
#[test]
fn rfc5626_3_5_1_a_flow_with_whole_messages_and_keepalives_is_not_closed_by_the_message_deadline() {
    let (mut ep, mut now) = endpoint_with(|_| {});
    let flow = ep
        .accept_flow(now, Transport::Tcp, local(), peer(1, 40000))
        .unwrap();
    let mut closes = Vec::new();
    for round in 0..10 {
        let request = options(&format!("z9hG4bK{round}"), peer(1, 40000));
        // each message takes 20 s to arrive, in two halves
        let (a, b) = request.split_at(request.len() / 2);
        ep.handle_stream(now, flow, a);
        let next = now + Duration::from_secs(20);
        run_clock(&mut ep, &mut now, next, &mut closes);
        ep.handle_stream(now, flow, b);
        ep.handle_stream(now, flow, b"\r\n\r\n");
        closes.extend(closed(&mut ep));
        let next = now + Duration::from_secs(60);
        run_clock(&mut ep, &mut now, next, &mut closes);
    }
    assert!(closes.is_empty(), "closed: {closes:?}");
    assert_eq!(ep.flows(), 1);
}

// RFC 3261 section 18: when the table is full of connections from many sources, a new peer
// is still admitted: the oldest flow that has not completed a message (the slowest) is
// closed for it, and flows that carried messages are kept. (Before: refused while the
// table stayed full.)
#[test]
fn rfc3261_18_a_full_table_closes_the_oldest_flow_without_a_message_to_admit_a_new_peer() {
    let (mut ep, now) = endpoint_with(|c| c.max_flows = 64);
    // a peer that talks (an ACK for a 2xx: no transaction keeps its flow)
    let good = ep
        .accept_flow(now, Transport::Tcp, local(), peer(1, 5060))
        .unwrap();
    ep.handle_stream(now, good, &request("ACK", "z9hG4bKgood", peer(1, 5060)));
    assert!(closed(&mut ep).is_empty());
    assert_eq!(ep.transactions(), 0);
    // 63 connections from 9 sources that send one byte each
    let mut silent = Vec::new();
    for i in 0..63u32 {
        let t = now + Duration::from_millis(u64::from(i));
        let f = ep
            .accept_flow(
                t,
                Transport::Tcp,
                local(),
                peer(100 + i % 9, 2000 + i as u16),
            )
            .unwrap();
        ep.handle_stream(t, f, b"O");
        silent.push(f);
    }
    assert_eq!(ep.flows(), 64);
    for (n, newcomer) in (0..5u32).enumerate() {
        let t = now + Duration::from_secs(1);
        let f = ep.accept_flow(t, Transport::Tcp, local(), peer(200 + newcomer, 5060));
        assert!(f.is_ok(), "newcomer {newcomer} refused");
        assert_eq!(closed(&mut ep), [silent[n]], "the oldest silent flow goes");
    }
    assert_eq!(ep.flows(), 64);
    assert_eq!(ep.stats().flows_evicted, 5);
    // the peer that talked is still there
    ep.handle_stream(now, good, &options("z9hG4bKgood2", peer(1, 5060)));
    assert!(closed(&mut ep).is_empty());
}

// The per-source limit: connections from one address beyond it are refused, others not;
// IPv6 sources are counted per /64.
#[test]
fn rfc3261_18_connections_beyond_the_per_source_limit_are_refused() {
    let (mut ep, now) = endpoint_with(|c| c.max_flows_per_source = 4);
    for port in 0..4 {
        ep.accept_flow(now, Transport::Tcp, local(), peer(1, 4000 + port))
            .unwrap();
    }
    assert_eq!(
        ep.accept_flow(now, Transport::Tcp, local(), peer(1, 5000)),
        Err(sip_core::SendError::TooManyFlowsFromSource)
    );
    ep.accept_flow(now, Transport::Tcp, local(), peer(2, 5000))
        .unwrap();
    let v6 = |s: &str| SocketAddr::new(s.parse().unwrap(), 5060);
    for host in ["2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4"] {
        ep.accept_flow(now, Transport::Tcp, local(), v6(host))
            .unwrap();
    }
    assert!(ep
        .accept_flow(now, Transport::Tcp, local(), v6("2001:db8::ffff:5"))
        .is_err());
    ep.accept_flow(now, Transport::Tcp, local(), v6("2001:db8:0:1::1"))
        .unwrap();
}

fn invite(n: usize, body: &str) -> Vec<u8> {
    format!(
        "INVITE sip:bob@127.0.0.2 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKbig{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a{n}\r\n\
         To: <sip:bob@127.0.0.2>\r\n\
         Call-ID: big-{n}\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Drains the transmits; returns the 503s among them, checking each carries Retry-After.
fn count_503s(ep: &mut Endpoint) -> usize {
    let mut buf = Vec::new();
    let mut n = 0;
    while ep.poll_transmit(&mut buf).is_some() {
        if buf.starts_with(b"SIP/2.0 503 ") {
            let text = String::from_utf8_lossy(&buf);
            assert!(
                text.contains("\r\nRetry-After: "),
                "503 without Retry-After: {text}"
            );
            n += 1;
        }
    }
    n
}

// RFC 3261 section 21.5.4 (503 Service Unavailable, with Retry-After, section 20.33): the
// messages pending transactions keep are counted against a byte budget, and a request
// that would go beyond it is answered 503 instead of getting a transaction. (Before: 20,000
// ringing INVITEs with 60 KB bodies held 1.24 GB, bounded only by a million transactions.)
#[test]
fn rfc3261_21_5_4_requests_beyond_the_byte_budget_get_503_with_retry_after() {
    let budget = 4 << 20;
    let (mut ep, now) = endpoint_with(|c| c.max_held_bytes = budget);
    let body = "a=x\r\n".repeat(12_000); // 60,000 bytes
    let mut refused = 0;
    let mut pending = Vec::new();
    for n in 0..200 {
        ep.handle_datagram(now, local(), peer(1, 5070), &invite(n, &body));
        assert!(ep.stats().held_bytes <= budget as u64, "over the budget");
        refused += count_503s(&mut ep);
        while let Some(ev) = ep.poll_event() {
            if let sip_core::Event::Request { tx, request, .. } = ev {
                pending.push((tx, request));
            }
        }
    }
    let admitted = pending.len();
    assert!(admitted >= 60, "only {admitted} admitted under 4 MiB");
    assert!(admitted < 100, "{admitted} INVITEs of 60 KB under 4 MiB");
    assert_eq!(refused + admitted, 200);
    assert!(ep.stats().held_bytes > (budget - 70_000) as u64);
    // The final responses let go of the requests: the budget has room again.
    let mut rng = sip_core::SeededRng::new([9; 32]);
    for (tx, request) in &pending {
        let resp = sip_core::response_to(&request.message().unwrap(), 486, &mut rng).unwrap();
        ep.send_response(now, *tx, &resp).unwrap();
    }
    count_503s(&mut ep);
    assert!(ep.stats().held_bytes < (admitted * 1000) as u64);
    ep.handle_datagram(now, local(), peer(1, 5070), &invite(1000, &body));
    assert_eq!(count_503s(&mut ep), 0);
    assert!(matches!(
        ep.poll_event(),
        Some(sip_core::Event::Request { .. })
    ));
}

// The buffers of partial stream messages count against the same budget: flows holding
// unfinished 60 KB headers cannot take more than it, the flow that would go beyond it is
// closed, and a request meanwhile gets 503. (Before: 8,000 such connections pinned 514 MB.)
#[test]
fn rfc3261_18_3_partial_stream_messages_beyond_the_byte_budget_close_their_flow() {
    let budget = 4 << 20;
    let (mut ep, now) = endpoint_with(|c| c.max_held_bytes = budget);
    let mut header = b"OPTIONS sip:bob@127.0.0.2 SIP/2.0\r\n".to_vec();
    for _ in 0..6 {
        // long lines, within the limits (16 KiB a line, 256 lines)
        header.extend_from_slice(b"Subject: ");
        header.resize(header.len() + 9_990, b'p');
        header.extend_from_slice(b"\r\n");
    }
    header.truncate(header.len() - 6); // no end of the header section
    let mut flows = Vec::new();
    let mut closes = Vec::new();
    for i in 0..200u32 {
        let f = ep
            .accept_flow(now, Transport::Tcp, local(), peer(i / 50, 3000 + i as u16))
            .unwrap();
        for chunk in header.chunks(1400) {
            ep.handle_stream(now, f, chunk);
        }
        flows.push(f);
        // partial messages hold at most half the budget
        assert!(
            ep.stats().held_bytes <= budget as u64 / 2,
            "over the streams' half"
        );
        closes.extend(closed(&mut ep));
    }
    let holding = flows.len() - closes.len();
    assert!(holding >= 30, "only {holding} flows held a partial message");
    assert!(!closes.is_empty(), "no flow was closed");
    // the streams' half is spent, the rest is not: a new request still gets its transaction
    let streams = ep.stats().held_bytes;
    ep.handle_datagram(now, local(), peer(9, 5070), &invite(1, "v=0\r\n"));
    let transaction = ep.stats().held_bytes - streams;
    assert!(transaction > 0, "the new transaction is charged");
    assert_eq!(count_503s(&mut ep), 0, "slow streams starved the requests");
    assert!(
        std::iter::from_fn(|| ep.poll_event())
            .any(|e| matches!(e, sip_core::Event::Request { .. })),
        "the request reached the transaction user"
    );
    // closing the flows gives back everything they held
    for f in flows {
        ep.handle_flow_event(now, f, sip_core::FlowEvent::Closed);
    }
    assert_eq!(ep.stats().held_bytes, transaction);
}

// Config: a flow timeout of Duration::MAX means "never", and accepting a connection under
// it does not overflow the clock (a deadline is now plus the timeout).
#[test]
fn flow_timeouts_without_end_do_not_overflow() {
    let (mut ep, now) = endpoint_with(|c| {
        c.flow_idle_timeout = Duration::MAX;
        c.stream_message_timeout = Duration::MAX;
    });
    let f = ep
        .accept_flow(now, Transport::Tcp, local(), peer(1, 3000))
        .unwrap();
    ep.handle_stream(now, f, b"OPTIONS sip:bob@127.0.0.2 SIP/2.0\r\n");
    ep.handle_timeout(now + Duration::from_secs(3600));
    assert!(closed(&mut ep).is_empty());
}
