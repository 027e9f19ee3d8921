//! `cargo bench --bench parsers`: ids are `parse/<message>/<parser>`.
//!
//! Before benching, every parser parses every message once; the outcome is
//! printed to stderr. A parser that rejects a message is not benched on it
//! (timing an early error return would be meaningless); the skip is printed.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sip_bench_parsers::{parsers, MESSAGES};

fn bench_parse(c: &mut Criterion) {
    let parsers = parsers();
    let mut group = c.benchmark_group("parse");
    for &(msg_id, data) in MESSAGES {
        group.throughput(Throughput::Bytes(data.len() as u64));
        for p in parsers {
            match (p.parse)(data) {
                Ok(o) => eprintln!(
                    "check {msg_id}/{}: ok, headers={} typed={} typed_failed={}",
                    p.name, o.headers, o.typed, o.typed_failed
                ),
                Err(e) => {
                    eprintln!("check {msg_id}/{}: REJECTED ({e}); not benched", p.name);
                    continue;
                }
            }
            let f = p.parse;
            group.bench_function(format!("{msg_id}/{}", p.name), |b| {
                b.iter(|| f(black_box(data)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
