//! Parser and serializer benchmarks: `parse/<message>/sip-core` (every header typed),
//! `parse/<message>/sip-core-lazy` (the borrowed view only) and `serialize/<message>/sip-core`.
//! The peers (rsip, rsipstack) run in the same harness in `bench/parsers/`, outside the
//! workspace so `cargo test` never builds them. Run: `cargo bench -p sip-core --bench parse`.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sip_core::{Form, Message, MessageView};

const MESSAGES: [(&str, &[u8]); 4] = [
    ("invite", include_bytes!("messages/invite.sip")),
    ("response", include_bytes!("messages/ok200.sip")),
    ("register", include_bytes!("messages/register.sip")),
    ("many_headers", include_bytes!("messages/stress.sip")),
];

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, bytes) in MESSAGES {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("{name}/sip-core"), |b| {
            b.iter(|| Message::parse(black_box(bytes)).map(|m| m.headers().len()))
        });
        g.bench_function(format!("{name}/sip-core-lazy"), |b| {
            b.iter(|| MessageView::parse(black_box(bytes)).map(|v| v.header_count()))
        });
    }
    g.finish();
}

fn serialize(c: &mut Criterion) {
    let mut g = c.benchmark_group("serialize");
    for (name, bytes) in MESSAGES {
        let m = Message::parse(bytes).expect("benchmark message parses");
        let mut out = Vec::with_capacity(4096);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("{name}/sip-core"), |b| {
            b.iter(|| {
                out.clear();
                black_box(&m).write_to(&mut out, Form::Canonical);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse, serialize);
criterion_main!(benches);
