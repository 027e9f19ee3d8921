//! Drives an Endpoint with an arbitrary byte string read as a sequence of inputs (datagrams,
//! stream chunks, flow events, clock ticks, transaction-user commands), draining every
//! output after each one and checking the invariants: nothing panics, the tables stay
//! within their limits, and once the clock has run past every timer no transaction, flow
//! or timer is left. Shared by the proptest in `tests/endpoint_props.rs` and the
//! `endpoint` cargo-fuzz target.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::{
    response_to, Config, Endpoint, Event, FlowEvent, FlowId, Listener, Method, RequestBuilder,
    SeededRng, ServerTxId, Target, Transport,
};

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
        match op % 8 {
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
    }
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
        while let Some(io) = ep.poll_io() {
            if let sip_core::IoRequest::Connect { flow, .. } = io {
                ep.handle_flow_event(now, flow, FlowEvent::Failed);
            }
        }
    }
    assert_eq!(ep.transactions(), 0, "a transaction outlived every timer");
    assert_eq!(ep.flows(), 0, "a flow outlived every timer");
    assert_eq!(
        ep.stats().held_bytes,
        0,
        "bytes still charged to the budget"
    );
}
