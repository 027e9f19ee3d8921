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
//! - `endpoint/send_request_to_address` and `endpoint/send_request_to_warm_name` (issue
//!   11): `send_request` of an OPTIONS and `poll_transmit` of its bytes, to a UDP
//!   `Target`, and to `sip:bob@example.test` whose NAPTR, SRV and A records are cached
//!   (answered by hand before the run; the run asserts that no DNS question is asked).
//!   The clock advances 1 ms per call in both (1000 requests a second to one name, where
//!   the cost matters), so about 32,000 transactions are live and retransmit alike; the
//!   endpoint's memo of a resolved URI lasts 1 s, so one request in 1000 walks the
//!   resolver's cache (`examples/send_cost.rs` counts instructions for other rates).
//!
//! Run: `cargo bench -p sip-core --bench endpoint`.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sip_core::resolve::{Answer, Naptr, Record, RecordType, Srv};
use sip_core::{
    Event, Message, Method, NextHop, RequestBuilder, ResponseBuilder, SeededRng, Target,
};

#[path = "support/uas_call.rs"]
mod uas_call;
use uas_call::{endpoint, set_branch, UasCall, INVITE};

fn uas_invite_transaction(c: &mut Criterion) {
    let mut now = Instant::now();
    let mut uas = UasCall::new();
    let mut n = 0u64;
    let mut g = c.benchmark_group("endpoint");
    g.bench_function("uas_invite_transaction", |b| {
        b.iter(|| {
            n += 1;
            now += Duration::from_millis(40);
            uas.call(n, now);
        })
    });
    let (local, remote) = (uas.local, uas.remote);
    let mut rng = SeededRng::new([2; 32]);
    let mut buf = Vec::with_capacity(2048);
    let inv_at = uas_call::invite_branch_at();
    eprintln!("live transactions at the end: {}", uas.ep.transactions());

    let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mut uac = endpoint(a, 3);
    let mut uas = endpoint(local, 4);
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
    let mut big = endpoint(local, 5);
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

/// TTLs longer than any run's virtual clock.
const TTL: u64 = 30 * 24 * 3600;

/// The answer a small zone gives for example.test: NAPTR to UDP SRV to one A record.
fn example_zone(name: &str, rtype: RecordType) -> Answer {
    match (name, rtype) {
        ("example.test", RecordType::Naptr) => Answer::Records(vec![Record::Naptr(Naptr {
            order: 10,
            preference: 10,
            flags: "s".into(),
            service: "SIP+D2U".into(),
            replacement: "_sip._udp.example.test".into(),
            ttl: TTL as u32,
        })]),
        ("_sip._udp.example.test", RecordType::Srv) => Answer::Records(vec![Record::Srv(Srv {
            priority: 10,
            weight: 1,
            port: 5060,
            target: "sip1.example.test".into(),
            ttl: TTL as u32,
        })]),
        ("sip1.example.test", RecordType::A) => Answer::Records(vec![Record::A {
            addr: "127.0.0.2".parse().unwrap(),
            ttl: TTL as u32,
        }]),
        _ => Answer::NoData { ttl: TTL as u32 },
    }
}

fn send_to_name(c: &mut Criterion) {
    let mut g = c.benchmark_group("endpoint");
    let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let to: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let mut rng = SeededRng::new([2; 32]);
    let mut buf = Vec::with_capacity(2048);
    let options = RequestBuilder::new(Method::Options, "sip:bob@example.test")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@example.test>")
        .build(&mut rng)
        .unwrap();
    let mut now = Instant::now();
    let mut uac = endpoint(a, 6);
    g.bench_function("send_request_to_address", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            uac.handle_timeout(now);
            uac.send_request(now, &options, Target::udp(to)).unwrap();
            while uac.poll_transmit(&mut buf).is_some() {}
        })
    });
    let address_retransmissions = uac.stats().retransmissions;
    let address_transactions = uac.stats().transactions;
    // (TTLs of a month, negative ones too: the virtual clock runs for days in a long run)
    let mut config = sip_core::Config {
        listeners: vec![sip_core::Listener::new(sip_core::Transport::Udp, a)],
        ..sip_core::Config::default()
    };
    config.resolver.max_negative_ttl = Duration::from_secs(TTL);
    config.resolver.max_positive_ttl = Duration::from_secs(TTL);
    let mut uac = sip_core::Endpoint::new(config, [7; 32]);
    // Warm the cache: one request whose questions are answered by hand.
    uac.send_request(now, &options, NextHop::uri("sip:bob@example.test"))
        .unwrap();
    while let Some(q) = uac.poll_dns() {
        let answer = example_zone(&q.name, q.rtype);
        uac.handle_dns_answer(now, q.id, answer);
    }
    while uac.poll_transmit(&mut buf).is_some() {}
    let asked = uac.stats().dns_queries;
    let hop = NextHop::uri("sip:bob@example.test");
    g.bench_function("send_request_to_warm_name", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            uac.handle_timeout(now);
            uac.send_request(now, &options, hop.clone()).unwrap();
            while uac.poll_transmit(&mut buf).is_some() {}
        })
    });
    assert_eq!(uac.poll_dns(), None, "a warm cache asks no DNS question");
    eprintln!(
        "retransmissions per transaction: address {:.2}, name {:.2}",
        address_retransmissions as f64 / 1f64.max(address_transactions as f64),
        uac.stats().retransmissions as f64 / uac.stats().transactions as f64
    );
    assert_eq!(uac.stats().dns_queries, asked);
    g.finish();
}

criterion_group!(benches, uas_invite_transaction, send_to_name);
criterion_main!(benches);
