//! Counts for the issue 11 measure "a request to a name with a warm cache costs no DNS
//! packet and no more than 5% over one to an address", steady enough for a shared machine
//! when run under an instruction counter:
//!
//! ```text
//! cargo build --release -p sip-core --example send_cost
//! valgrind --tool=callgrind target/release/examples/send_cost address 20000 STEP_MS  # and 40000
//! valgrind --tool=callgrind target/release/examples/send_cost name 20000 STEP_MS     # and 40000
//! ```
//!
//! (instructions of the 40000 run minus those of the 20000 run, over 20000: the cost of one
//! `send_request` with `poll_transmit`, the clock advancing STEP_MS per request, 40 by
//! default as in the criterion bench `endpoint/send_request_to_*`; the endpoint's memo of a
//! resolved name lasts 1 s, so the step sets how many requests share one pass through the
//! resolver's cache). Mode `address+uri` sends to the address but also builds the
//! `NextHop::Uri` string the name case passes, to tell the caller's share of the cost from
//! the endpoint's. Without valgrind it prints the wall time.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::resolve::{Answer, Naptr, Record, RecordType, Srv};
use sip_core::{
    Config, Endpoint, Listener, Method, NextHop, RequestBuilder, SeededRng, Target, Transport,
};

const DAY: u32 = 24 * 3600;

fn zone(name: &str, rtype: RecordType) -> Answer {
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
            weight: 1,
            port: 5060,
            target: "sip1.example.test".into(),
            ttl: DAY,
        })]),
        ("sip1.example.test", RecordType::A) => Answer::Records(vec![Record::A {
            addr: "127.0.0.2".parse().unwrap(),
            ttl: DAY,
        }]),
        _ => Answer::NoData { ttl: DAY },
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "address".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let step = Duration::from_millis(args.next().and_then(|s| s.parse().ok()).unwrap_or(40));
    let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let to: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let mut config = Config {
        listeners: vec![Listener::new(Transport::Udp, a)],
        ..Config::default()
    };
    config.resolver.max_negative_ttl = Duration::from_secs(u64::from(DAY));
    let mut ep = Endpoint::new(config, [7; 32]);
    let options = RequestBuilder::new(Method::Options, "sip:bob@example.test")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@example.test>")
        .build(&mut SeededRng::new([2; 32]))
        .unwrap();
    let mut buf = Vec::with_capacity(2048);
    let mut now = Instant::now();
    let hop = NextHop::uri("sip:bob@example.test");
    ep.send_request(now, &options, hop.clone()).unwrap();
    while let Some(q) = ep.poll_dns() {
        let answer = zone(&q.name, q.rtype);
        ep.handle_dns_answer(now, q.id, answer);
    }
    while ep.poll_transmit(&mut buf).is_some() {}
    let asked = ep.stats().dns_queries;
    let start = Instant::now();
    for _ in 0..n {
        now += step;
        ep.handle_timeout(now);
        if mode == "name" {
            ep.send_request(now, &options, hop.clone()).unwrap();
        } else if mode == "address+uri" {
            // what the caller of the name case pays for its `NextHop::Uri` string
            std::hint::black_box(hop.clone());
            ep.send_request(now, &options, Target::udp(to)).unwrap();
        } else {
            ep.send_request(now, &options, Target::udp(to)).unwrap();
        }
        while ep.poll_transmit(&mut buf).is_some() {}
    }
    let took = start.elapsed();
    assert_eq!(ep.stats().dns_queries, asked, "no DNS question while warm");
    println!(
        "{mode}: {n} requests, {:.0} ns each (wall clock), {} live transactions",
        took.as_nanos() as f64 / n as f64,
        ep.transactions()
    );
}
