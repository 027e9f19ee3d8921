//! The cost of a proxy's edit of an INVITE (RFC 3261 section 16.6: prepend Via and
//! Record-Route, decrement Max-Forwards, set the Request-URI, then write the message)
//! against a plain copy of the same message into a new `OwnedMessage`.
//! Run: `cargo bench -p sip-core --bench edit`.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sip_core::{OwnedMessage, RequestBuilder, SeededRng};

const INVITE: &[u8] = include_bytes!("messages/invite.sip");

fn edit(c: &mut Criterion) {
    let received = OwnedMessage::parse(INVITE).expect("benchmark message parses");
    let mut g = c.benchmark_group("edit");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    // the baseline: the same bytes and layout into a new message
    g.bench_function("invite/copy", |b| {
        b.iter(|| OwnedMessage::from_view(&black_box(&received).view()))
    });
    // the editor's own cost: a copy through it with nothing changed
    g.bench_function("invite/unedited", |b| {
        b.iter(|| black_box(&received).edit().finish().expect("finish"))
    });
    g.bench_function("invite/proxy-edit", |b| {
        b.iter(|| {
            let mut e = black_box(&received).edit();
            e.decrement_max_forwards().expect("Max-Forwards");
            e.set_request_uri("sip:bob@192.0.2.4:5060")
                .and_then(|e| e.prepend_record_route("<sip:p1.example.com;lr>"))
                .and_then(|e| {
                    e.prepend_via("SIP/2.0/UDP p1.example.com;branch=z9hG4bK74bf9.1;rport")
                })
                .expect("edits");
            e.finish().expect("finish")
        })
    });
    g.finish();
    // Deriving a new request (a B2BUA's other leg) from the parsed one, for scale.
    let mut rng = SeededRng::new([1; 32]);
    c.bench_function("edit/invite/to-request-builder", |b| {
        b.iter(|| {
            black_box(&received)
                .to_request_builder()
                .and_then(|r: RequestBuilder| r.build(&mut rng))
                .expect("derived request")
        })
    });
}

criterion_group!(benches, edit);
criterion_main!(benches);
