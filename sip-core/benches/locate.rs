//! Sending to a name with a warm cache against sending to an address (issue 11 point 7: "no
//! DNS packet and no more than 5% over sending to an address").
//!
//! Both benchmarks are `endpoint/non_invite_roundtrip` of `benches/endpoint.rs` (a UAC
//! endpoint sends OPTIONS, a UAS endpoint answers 200, the UAC gets it), in the same run,
//! with one difference: the hop.
//!
//! - `locate/options_to_address`: `Target::udp(127.0.0.2:5060)`.
//! - `locate/options_to_name_warm`: `NextHop::uri("sip:bob@example.test")`, the URI located
//!   (RFC 3263: NAPTR `SIP+D2U`, SRV, A and AAAA; all positive, TTL one day) once before the
//!   measurement, so every request is sent from the cache. A DNS question during the
//!   measurement would be answered (and counted: the count is printed, and must be 0).
//!
//! Run: `cargo bench -p sip-core --bench locate`. Times on a shared machine vary by a third
//! from run to run; for instructions (deterministic), the same loops run without criterion
//! when `LOCATE_ITERS=N` and `LOCATE_HOP=address|name` are set, under callgrind:
//! `bench/locate-callgrind.sh`.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use sip_core::resolve::{Answer, Naptr, Record, RecordType, Srv};
use sip_core::{
    Endpoint, Event, Method, NextHop, OwnedMessage, RequestBuilder, ResponseBuilder, SeededRng,
    Target,
};

#[path = "support/uas_call.rs"]
mod uas_call;
use uas_call::endpoint;

const DAY: u32 = 24 * 3600;

/// The records of example.test: NAPTR SIP+D2U -> SRV -> sip.example.test -> 127.0.0.2 (and
/// ::2, after it: IPv4 first).
fn answer(name: &str, rtype: RecordType) -> Answer {
    match (name, rtype) {
        ("example.test", RecordType::Naptr) => Answer::Records(vec![Record::Naptr(Naptr {
            order: 10,
            preference: 10,
            flags: "s".into(),
            service: "SIP+D2U".into(),
            replacement: "_sip._udp.example.test".into(),
            ttl: DAY,
        })]),
        ("_sip._udp.example.test", RecordType::Srv) => Answer::Records(vec![Record::Srv(Srv {
            priority: 10,
            weight: 0,
            port: 5060,
            target: "sip.example.test".into(),
            ttl: DAY,
        })]),
        ("sip.example.test", RecordType::A) => Answer::Records(vec![Record::A {
            addr: "127.0.0.2".parse().unwrap(),
            ttl: DAY,
        }]),
        // Positive too: a negative answer is cached at most 5 minutes
        // (`ResolverConfig::max_negative_ttl`), about 7500 iterations here.
        ("sip.example.test", RecordType::Aaaa) => Answer::Records(vec![Record::Aaaa {
            addr: "::2".parse().unwrap(),
            ttl: DAY,
        }]),
        _ => Answer::NoData { ttl: DAY },
    }
}

/// Answers every DNS question the endpoint has; returns how many.
fn answer_questions(ep: &mut Endpoint, now: Instant) -> u64 {
    let mut n = 0;
    while let Some(q) = ep.poll_dns() {
        n += 1;
        let a = answer(&q.name, q.rtype);
        ep.handle_dns_answer(now, q.id, a);
    }
    n
}

/// One OPTIONS from `uac` to `uas` through `hop`, answered 200.
#[allow(clippy::too_many_arguments)]
fn roundtrip(
    uac: &mut Endpoint,
    uas: &mut Endpoint,
    now: Instant,
    options: &OwnedMessage,
    hop: NextHop,
    rng: &mut SeededRng,
    buf: &mut Vec<u8>,
    questions: &mut u64,
) {
    uac.handle_timeout(now);
    uas.handle_timeout(now);
    let tx = uac.send_request(now, options, hop).unwrap();
    *questions += answer_questions(uac, now);
    let t = uac.poll_transmit(buf).expect("the OPTIONS is sent");
    uas.handle_datagram(now, t.remote, t.local, buf);
    let Some(Event::Request {
        tx: stx, request, ..
    }) = uas.poll_event()
    else {
        panic!("the OPTIONS reaches the server");
    };
    let ok = ResponseBuilder::from_view(&request.view(), 200)
        .build(rng)
        .unwrap();
    uas.send_response(now, stx, &ok).unwrap();
    let t = uas.poll_transmit(buf).unwrap();
    uac.handle_datagram(now, t.remote, t.local, buf);
    let Some(Event::Response { tx: got, .. }) = uac.poll_event() else {
        panic!("the 200 reaches the client");
    };
    assert_eq!(got, tx);
}

fn locate(c: &mut Criterion) {
    let mut now = Instant::now();
    let mut rng = SeededRng::new([2; 32]);
    let mut buf = Vec::with_capacity(2048);
    let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let server: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let options = RequestBuilder::new(Method::Options, "sip:bob@example.test")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@example.test>")
        .build(&mut rng)
        .unwrap();
    let mut g = c.benchmark_group("locate");

    let mut uac = endpoint(a, 3);
    let mut uas = endpoint(server, 4);
    let mut questions = 0;
    g.bench_function("options_to_address", |b| {
        b.iter(|| {
            now += Duration::from_millis(40);
            let hop = NextHop::from(Target::udp(server));
            roundtrip(
                &mut uac,
                &mut uas,
                now,
                &options,
                hop,
                &mut rng,
                &mut buf,
                &mut questions,
            );
        })
    });
    assert_eq!(questions, 0, "an address asks no DNS");

    let mut uac = endpoint(a, 5);
    let mut uas = endpoint(server, 6);
    // Warm the cache: the first request asks NAPTR, SRV, A and AAAA.
    let mut warmup = 0;
    roundtrip(
        &mut uac,
        &mut uas,
        now,
        &options,
        NextHop::uri("sip:bob@example.test"),
        &mut rng,
        &mut buf,
        &mut warmup,
    );
    let mut questions = 0;
    g.bench_function("options_to_name_warm", |b| {
        b.iter(|| {
            now += Duration::from_millis(40);
            let hop = NextHop::uri("sip:bob@example.test");
            roundtrip(
                &mut uac,
                &mut uas,
                now,
                &options,
                hop,
                &mut rng,
                &mut buf,
                &mut questions,
            );
        })
    });
    eprintln!("DNS questions: {warmup} to warm the cache, {questions} during the measurement");
    g.finish();
}

/// `LOCATE_ITERS` round trips to `LOCATE_HOP` (address or name), without criterion.
fn plain_loop(iters: u64, name: bool) {
    let mut now = Instant::now();
    let mut rng = SeededRng::new([2; 32]);
    let mut buf = Vec::with_capacity(2048);
    let server: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let options = RequestBuilder::new(Method::Options, "sip:bob@example.test")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@example.test>")
        .build(&mut rng)
        .unwrap();
    let mut uac = endpoint("127.0.0.1:5060".parse().unwrap(), 3);
    let mut uas = endpoint(server, 4);
    let hop = || match name {
        true => NextHop::uri("sip:bob@example.test"),
        false => NextHop::from(Target::udp(server)),
    };
    let mut questions = 0;
    for _ in 0..iters {
        now += Duration::from_millis(40);
        roundtrip(
            &mut uac,
            &mut uas,
            now,
            &options,
            hop(),
            &mut rng,
            &mut buf,
            &mut questions,
        );
    }
    eprintln!("{iters} round trips, {questions} DNS questions");
}

criterion_group!(benches, locate);

fn main() {
    if let (Ok(n), Ok(hop)) = (std::env::var("LOCATE_ITERS"), std::env::var("LOCATE_HOP")) {
        plain_loop(n.parse().expect("LOCATE_ITERS is a number"), hop == "name");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
