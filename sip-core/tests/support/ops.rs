//! Drives an Endpoint with an arbitrary byte string read as a sequence of inputs (datagrams,
//! stream chunks, flow events, clock ticks, transaction-user commands, requests and ACKs to
//! names, DNS answers made of the fuzzer's bytes), draining every
//! output after each one and checking the invariants: nothing panics, the tables stay
//! within their limits, and once the clock has run past every timer no transaction, flow
//! or timer is left. Shared by the proptest in `tests/endpoint_props.rs` and the
//! `endpoint` cargo-fuzz target.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::resolve::{Answer, Naptr, Query, Record, RecordType, Srv};
use sip_core::{
    response_to, ClientTxId, Config, Endpoint, Event, FlowEvent, FlowId, Listener, Method, NextHop,
    RequestBuilder, SeededRng, ServerTxId, Target, Transport,
};

/// URIs the fuzzer sends to (RFC 3263 with the answers it makes up).
const URIS: [&str; 6] = [
    "sip:bob@a.test",
    "sip:bob@a.test;transport=tcp",
    "sips:bob@b.test",
    "sip:bob@a.test:5080",
    "sips:bob@b.test;transport=udp",
    "sip:bob@127.0.0.1:5070",
];

/// Names the made-up SRV and NAPTR records point at.
const NAMES: [&str; 5] = [
    "one.a.test",
    "two.a.test",
    "_sip._udp.a.test",
    "_sips._tcp.b.test",
    ".",
];
const SERVICES: [&str; 4] = ["SIP+D2U", "SIP+D2T", "SIPS+D2T", "X+Y"];

/// An answer to `q` made of the bytes `b`.
fn answer(q: &Query, b: &[u8]) -> Answer {
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    match at(0) % 8 {
        0 => {
            return Answer::NxDomain {
                ttl: u32::from(at(1)),
            }
        }
        1 => {
            return Answer::NoData {
                ttl: u32::from(at(1)),
            }
        }
        2 => return Answer::ServerFailure,
        3 => return Answer::Timeout,
        _ => {}
    }
    let n = 1 + at(1) as usize % 3;
    let records = (0..n)
        .map(|k| {
            let x = at(2 + k);
            let ttl = u32::from(at(5 + k)) * 10;
            match q.rtype {
                RecordType::Naptr => Record::Naptr(Naptr {
                    order: u16::from(x % 3),
                    preference: 10,
                    flags: if x & 0x80 == 0 { "s" } else { "a" }.into(),
                    service: SERVICES[x as usize % SERVICES.len()].into(),
                    replacement: NAMES[x as usize % NAMES.len()].into(),
                    ttl,
                }),
                RecordType::Srv => Record::Srv(Srv {
                    priority: u16::from(x % 2),
                    weight: u16::from(x % 5),
                    port: 5060 + u16::from(x % 3),
                    target: NAMES[x as usize % NAMES.len()].into(),
                    ttl,
                }),
                RecordType::Aaaa => Record::Aaaa {
                    addr: std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(x)),
                    ttl,
                },
                _ => Record::A {
                    addr: std::net::Ipv4Addr::new(192, 0, 2, x),
                    ttl,
                },
            }
        })
        .collect();
    Answer::Records(records)
}

/// Valid messages the fuzzer can splice in (it finds the rest by mutation).
const SEEDS: [&[u8]; 3] = [
    b"INVITE sip:bob@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.2>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
    b"ACK sip:bob@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.2>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
    b"CANCEL sip:bob@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.2>\r\nCall-ID: c1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
];

const MAX_TX: usize = 16;
const MAX_FLOWS: usize = 4;

/// Runs the inputs encoded in `data`.
pub fn run(data: &[u8]) {
    let local: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let peer: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let config = Config {
        listeners: vec![
            Listener::new(Transport::Udp, local),
            Listener::new(Transport::Tcp, local),
        ],
        max_transactions: MAX_TX,
        max_flows: MAX_FLOWS,
        ..Config::default()
    };
    let start = Instant::now();
    let mut now = start;
    let mut ep = Endpoint::new(config, [5; 32]);
    let mut rng = SeededRng::new([6; 32]);
    let mut flows: Vec<FlowId> = Vec::new();
    let mut server_txs: Vec<(ServerTxId, sip_core::OwnedMessage)> = Vec::new();
    let mut client_txs: Vec<ClientTxId> = Vec::new();
    let mut questions: Vec<Query> = Vec::new();
    let mut buf = Vec::new();
    let mut i = 0;
    let take = |n: usize, i: &mut usize| -> &[u8] {
        let s = &data[(*i).min(data.len())..(*i + n).min(data.len())];
        *i += n;
        s
    };
    while i < data.len() {
        let op = take(1, &mut i)[0];
        let arg = take(1, &mut i).first().copied().unwrap_or(0);
        // (the ops from 0xf8 up: RFC 3263; the others keep their meaning for old inputs)
        let op = if op >= 0xf8 { 8 + (op - 0xf8) } else { op % 8 };
        match op {
            8 | 9 => {
                let method = [Method::Invite, Method::Options][op as usize % 2];
                let uri = URIS[arg as usize % URIS.len()];
                if let Ok(req) = RequestBuilder::new(method, uri)
                    .from("<sip:alice@127.0.0.2>")
                    .to("<sip:bob@a.test>")
                    .build(&mut rng)
                {
                    if let Ok(tx) = ep.send_request(now, &req, NextHop::uri(uri)) {
                        client_txs.push(tx);
                        if client_txs.len() > 8 {
                            client_txs.remove(0);
                        }
                    }
                }
            }
            10 => {
                let uri = URIS[arg as usize % URIS.len()];
                let _ = ep.send_ack(
                    now,
                    &sip_core::OwnedMessage::parse(SEEDS[1]).unwrap(),
                    NextHop::uri(uri),
                );
            }
            11 | 12 => {
                if !questions.is_empty() {
                    let q = questions.remove(arg as usize % questions.len());
                    let a = answer(&q, take(8, &mut i));
                    ep.handle_dns_answer(now, q.id, a);
                }
            }
            13 => {
                if let Some(&tx) = client_txs.get(arg as usize % client_txs.len().max(1)) {
                    let _ = ep.cancel(now, tx);
                }
            }
            14 => {
                let to = SocketAddr::new(std::net::Ipv4Addr::new(192, 0, 2, arg).into(), 5060);
                ep.handle_unreachable(now, to);
            }
            15 => {
                // A 503 (or another final response) from a made-up server for the request we
                // sent last.
                if let Ok(sent) = sip_core::OwnedMessage::parse(&buf) {
                    if let Ok(m) = sent.message() {
                        let code = [503, 180, 200][arg as usize % 3];
                        if let Ok(r) = response_to(&m, code, &mut rng) {
                            let from = SocketAddr::new(
                                std::net::Ipv4Addr::new(192, 0, 2, arg).into(),
                                5060,
                            );
                            ep.handle_datagram(now, local, from, r.as_bytes());
                        }
                    }
                }
            }
            0 => {
                let len = arg as usize * 4;
                let bytes = take(len, &mut i).to_vec();
                ep.handle_datagram(now, local, peer, &bytes);
            }
            1 => {
                let seed = SEEDS[arg as usize % SEEDS.len()];
                ep.handle_datagram(now, local, peer, seed);
            }
            2 => {
                if flows.len() < MAX_FLOWS + 1 {
                    let remote = SocketAddr::new(peer.ip(), 40000 + flows.len() as u16);
                    if let Ok(f) = ep.accept_flow(now, Transport::Tcp, local, remote) {
                        flows.push(f);
                    }
                }
                if let Some(&f) = flows.get(arg as usize % flows.len().max(1)) {
                    let len = (data.get(i).copied().unwrap_or(0) as usize) * 2;
                    i += 1;
                    let chunk = take(len, &mut i).to_vec();
                    ep.handle_stream(now, f, &chunk);
                }
            }
            3 => {
                if arg >= 0xf0 {
                    // The peer's address is reported unreachable (ICMP).
                    ep.handle_unreachable(now, peer);
                } else if let Some(&f) = flows.get(arg as usize % flows.len().max(1)) {
                    let ev = match arg % 3 {
                        0 => FlowEvent::Closed,
                        1 => FlowEvent::Failed,
                        _ => FlowEvent::Connected { local },
                    };
                    ep.handle_flow_event(now, f, ev);
                }
            }
            4 => {
                now += Duration::from_millis(arg as u64 * 250);
                ep.handle_timeout(now);
            }
            5 => {
                if let Some((tx, req)) = server_txs.get(arg as usize % server_txs.len().max(1)) {
                    let code = [100, 180, 200, 486, 503][arg as usize % 5];
                    if let Ok(m) = req.message() {
                        if let Ok(resp) = response_to(&m, code, &mut rng) {
                            let _ = ep.send_response(now, *tx, &resp);
                        }
                    }
                }
            }
            6 => {
                let method = [Method::Invite, Method::Options][arg as usize % 2];
                if let Ok(req) = RequestBuilder::new(method, "sip:bob@127.0.0.1:5070")
                    .from("<sip:alice@127.0.0.2>")
                    .to("<sip:bob@127.0.0.1>")
                    .build(&mut rng)
                {
                    let target = if arg & 4 == 0 {
                        Target::udp(peer)
                    } else {
                        Target::tcp(peer)
                    };
                    let _ = ep.send_request(now, &req, target);
                }
            }
            _ => {
                // Echo whatever we sent last back as if the peer answered it (exercises the
                // response path with our own Via).
                if !buf.is_empty() {
                    let echoed = String::from_utf8_lossy(&buf).replacen(
                        |c: char| c.is_ascii_uppercase(),
                        "",
                        0,
                    );
                    let mut resp = b"SIP/2.0 ".to_vec();
                    resp.extend_from_slice([b"180 R", b"200 O", b"486 B"][arg as usize % 3]);
                    if let Some(p) = echoed.find("\r\n") {
                        resp.extend_from_slice(&buf[p.min(buf.len())..]);
                    }
                    ep.handle_datagram(now, local, peer, &resp);
                }
            }
        }
        while ep.poll_transmit(&mut buf).is_some() {}
        while ep.poll_io().is_some() {}
        while let Some(q) = ep.poll_dns() {
            questions.push(q);
        }
        while let Some(ev) = ep.poll_event() {
            if let Event::Request { tx, request, .. } = ev {
                server_txs.push((tx, request));
                if server_txs.len() > 8 {
                    server_txs.remove(0);
                }
            }
        }
        assert!(
            ep.transactions() <= MAX_TX,
            "transaction table over its limit"
        );
        assert!(ep.flows() <= MAX_FLOWS, "flow table over its limit");
        assert!(
            ep.waiting_for_dns() <= ep.resolver().config().max_lookups,
            "lookups over their limit"
        );
    }
    // Questions never answered: the requests waiting for them time out by themselves.
    drop(questions);
    // Every transaction ends by itself: run the clock past every timer (timer C, 181 s,
    // plus 64*T1 after it is the longest chain), closing flows as the driver would.
    for f in flows {
        ep.handle_flow_event(now, f, FlowEvent::Closed);
    }
    while let Some(t) = ep.poll_timeout() {
        assert!(
            t <= now + Duration::from_secs(400),
            "a timer far in the future: {:?}",
            t - now
        );
        now = now.max(t);
        ep.handle_timeout(now);
        while ep.poll_transmit(&mut buf).is_some() {}
        while ep.poll_event().is_some() {}
        while let Some(q) = ep.poll_dns() {
            ep.handle_dns_answer(now, q.id, Answer::Timeout);
        }
        while let Some(io) = ep.poll_io() {
            if let sip_core::IoRequest::Connect { flow, .. } = io {
                ep.handle_flow_event(now, flow, FlowEvent::Failed);
            }
        }
    }
    assert_eq!(ep.transactions(), 0, "a transaction outlived every timer");
    assert_eq!(ep.waiting_for_dns(), 0, "a lookup outlived every timer");
    assert_eq!(ep.flows(), 0, "a flow outlived every timer");
    assert_eq!(
        ep.stats().held_bytes,
        0,
        "bytes still charged to the budget"
    );
}
