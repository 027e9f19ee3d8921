//! SDP (RFC 8866) and offer/answer (RFC 3264) benchmarks on a 12-line audio offer
//! (`messages/offer.sdp`: PCMU, PCMA, opus, telephone-event): `sdp/parse` (the zero-copy
//! parse), `sdp/write` (canonical form into a reused buffer), `sdp/answer`
//! (`LocalMedia::answer`: parse, codec intersection, the answer written, version check) and,
//! for scale, `sdp/offer`.
//!
//! Run: `cargo bench -p sip-core --bench sdp`.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sip_core::sdp::{Direction, LocalMedia, Sdp};

const OFFER: &[u8] = include_bytes!("messages/offer.sdp");

fn local() -> LocalMedia {
    LocalMedia::new("192.0.2.7".parse().expect("address"), 40000, 1234)
}

fn sdp(c: &mut Criterion) {
    let mut g = c.benchmark_group("sdp");
    g.throughput(Throughput::Bytes(OFFER.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| Sdp::parse(black_box(OFFER)).map(|s| s.media().len()))
    });
    let parsed = Sdp::parse(OFFER).expect("benchmark offer parses");
    let mut out = Vec::with_capacity(1024);
    g.bench_function("write", |b| {
        b.iter(|| {
            out.clear();
            black_box(&parsed).write_to(&mut out);
            out.len()
        })
    });
    let mut ours = local();
    assert!(ours.answer(OFFER).is_ok(), "benchmark offer is answerable");
    g.bench_function("answer", |b| {
        b.iter(|| ours.answer(black_box(OFFER)).map(|a| a.len()))
    });
    let mut ours = local();
    g.bench_function("offer", |b| {
        b.iter(|| ours.offer(black_box(Direction::SendRecv)).len())
    });
    g.finish();
}

criterion_group!(benches, sdp);
criterion_main!(benches);
