//! Endpoint benchmarks (issue 3): the cost of whole transactions through the sans-IO core,
//! parse and serialize included, against the cost of one full parse of the same INVITE in
//! the same run.
//!
//! - `endpoint/uas_invite_transaction`: receive an INVITE, hand it to the application, which
//!   parses it and answers 180 and 200 (with SDP) built by `ResponseBuilder`; the bytes are
//!   written out with `poll_transmit`; then the ACK for the 2xx arrives and is handed up.
//!   The virtual clock advances 40 ms per call, so timer L frees each transaction 32 s
//!   (800 calls) later: about 800 transactions are live, and freeing one is in the cost.
//! - `endpoint/non_invite_roundtrip`: a UAC endpoint sends OPTIONS, a UAS endpoint receives
//!   it and answers 200, the UAC receives the 200: one client and one server transaction.
//! - `endpoint/parse_invite_reference`: `Message::parse` of the same INVITE.
//!
//! Run: `cargo bench -p sip-core --bench endpoint`.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sip_core::{
    Config, Endpoint, Event, Listener, Message, Method, RequestBuilder, ResponseBuilder, SeededRng,
    Target, Transport,
};

const INVITE: &[u8] = include_bytes!("messages/invite.sip");
const BRANCH: &[u8] = b"z9hG4bK776asdhds";
const SDP: &[u8] = b"v=0\r\no=bob 2890844527 2890844527 IN IP4 127.0.0.2\r\ns=-\r\n\
c=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 3456 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn ack_template() -> Vec<u8> {
    b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKack00000000;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 ACK\r\n\
Content-Length: 0\r\n\r\n"
        .to_vec()
}

/// Writes `n` as 9 hex digits over the 9 characters after the magic cookie of the branch
/// starting at `at`.
fn set_branch(msg: &mut [u8], at: usize, n: u64) {
    let digits = format!("{n:09x}");
    msg[at + 7..at + 16].copy_from_slice(&digits.as_bytes()[digits.len() - 9..]);
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("template holds the branch")
}

fn endpoint(addr: SocketAddr, now: Instant, seed: u8) -> Endpoint {
    let config = Config {
        listeners: vec![Listener::new(Transport::Udp, addr)],
        ..Config::default()
    };
    Endpoint::new(config, [seed; 32], now)
}

fn uas_invite_transaction(c: &mut Criterion) {
    let local: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let remote: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mut now = Instant::now();
    let mut ep = endpoint(local, now, 1);
    let mut rng = SeededRng::new([2; 32]);
    let mut invite = INVITE.to_vec();
    let inv_at = find(&invite, BRANCH);
    let mut ack = ack_template();
    let ack_at = find(&ack, b"z9hG4bKack");
    let mut buf = Vec::with_capacity(2048);
    let mut n = 0u64;
    let mut g = c.benchmark_group("endpoint");
    g.bench_function("uas_invite_transaction", |b| {
        b.iter(|| {
            n += 1;
            now += Duration::from_millis(40);
            ep.handle_timeout(now);
            set_branch(&mut invite, inv_at, n);
            ep.handle_datagram(now, local, remote, &invite);
            let Some(Event::Request { tx, request, .. }) = ep.poll_event() else {
                panic!("the INVITE reaches the application");
            };
            let view = request.view();
            let ringing = ResponseBuilder::from_view(&view, 180)
                .to_tag("a6c85cf")
                .build(&mut rng)
                .unwrap();
            ep.send_response(now, tx, &ringing).unwrap();
            let ok = ResponseBuilder::from_view(&view, 200)
                .to_tag("a6c85cf")
                .header("Contact", "<sip:bob@127.0.0.2:5060>")
                .body("application/sdp", SDP)
                .build(&mut rng)
                .unwrap();
            ep.send_response(now, tx, &ok).unwrap();
            while let Some(t) = ep.poll_transmit(&mut buf) {
                black_box((&t, buf.len()));
            }
            set_branch(&mut ack, ack_at, n);
            ep.handle_datagram(now, local, remote, &ack);
            let Some(Event::Ack { .. }) = ep.poll_event() else {
                panic!("the ACK for the 2xx reaches the application");
            };
        })
    });
    eprintln!("live transactions at the end: {}", ep.transactions());

    let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mut uac = endpoint(a, now, 3);
    let mut uas = endpoint(local, now, 4);
    let options = RequestBuilder::new(Method::Options, "sip:bob@127.0.0.2:5060")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@127.0.0.2>")
        .build(&mut rng)
        .unwrap();
    g.bench_function("non_invite_roundtrip", |b| {
        b.iter(|| {
            now += Duration::from_millis(40);
            uac.handle_timeout(now);
            uas.handle_timeout(now);
            let tx = uac.send_request(now, &options, Target::udp(local)).unwrap();
            let t = uac.poll_transmit(&mut buf).unwrap();
            uas.handle_datagram(now, t.remote, t.local, &buf);
            let Some(Event::Request {
                tx: stx, request, ..
            }) = uas.poll_event()
            else {
                panic!("the OPTIONS reaches the server");
            };
            let view = request.view();
            let ok = ResponseBuilder::from_view(&view, 200)
                .build(&mut rng)
                .unwrap();
            uas.send_response(now, stx, &ok).unwrap();
            let t = uas.poll_transmit(&mut buf).unwrap();
            uac.handle_datagram(now, t.remote, t.local, &buf);
            let Some(Event::Response { tx: got, .. }) = uac.poll_event() else {
                panic!("the 200 reaches the client");
            };
            assert_eq!(got, tx);
        })
    });
    // 100,000 live INVITE server transactions (answered 486: Completed, timers G and H
    // armed), then the two operations a busy server does all the time.
    let mut big = endpoint(local, now, 5);
    let mut invite = INVITE.to_vec();
    for n in 0..100_000u64 {
        set_branch(&mut invite, inv_at, 1_000_000 + n);
        big.handle_datagram(now, local, remote, &invite);
        let Some(Event::Request { tx, request, .. }) = big.poll_event() else {
            panic!("the INVITE reaches the application");
        };
        let busy = ResponseBuilder::from_view(&request.view(), 486)
            .build(&mut rng)
            .unwrap();
        big.send_response(now, tx, &busy).unwrap();
        while big.poll_transmit(&mut buf).is_some() {}
    }
    assert_eq!(big.transactions(), 100_000);
    g.bench_function("poll_timeout_100k_live", |b| {
        b.iter(|| black_box(&big).poll_timeout())
    });
    set_branch(&mut invite, inv_at, 1_000_000 + 77_777);
    g.bench_function("absorb_retransmission_100k_live", |b| {
        b.iter(|| {
            big.handle_datagram(now, local, remote, black_box(&invite));
            while big.poll_transmit(&mut buf).is_some() {}
        })
    });
    g.bench_function("parse_invite_reference", |b| {
        b.iter(|| Message::parse(black_box(INVITE)).map(|m| m.headers().len()))
    });
    g.finish();
}

criterion_group!(benches, uas_invite_transaction);
criterion_main!(benches);
