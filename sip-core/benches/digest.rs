//! The cost of digest authentication on the server (RFC 7616, issue 12): checking one nonce
//! (its HMAC-SHA-256 and age), and checking one valid Authorization of a REGISTER (typed
//! parse of the request, the nonce, the response digest, the nonce-count table) for MD5 and
//! SHA-256; for scale, the client's answer to a challenge.
//!
//! Run: `cargo bench -p sip-core --bench digest`.
//! Instructions (callgrind): `DIGEST_CALLGRIND=OP:N` runs OP (`nonce`, `verify-md5`,
//! `verify-sha256`) N times without criterion, e.g.
//! `valgrind --tool=callgrind target/release/deps/digest-* DIGEST_CALLGRIND=verify-md5:1001`
//! (see docs/benchmarks.md for the exact commands).
#![allow(missing_docs)]

use std::time::Instant;

use criterion::{black_box, criterion_group, BatchSize, Criterion};
use sip_core::auth::{
    Algorithm, AuthConfig, AuthKind, AuthVerdict, Authenticator, Challenge, DigestClient,
};
use sip_core::{HeaderName, HeaderValue, OwnedMessage, SeededRng};

const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
    Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds7\r\n\
    Max-Forwards: 70\r\nTo: Alice <sip:alice@example.com>\r\n\
    From: Alice <sip:alice@example.com>;tag=456248\r\n\
    Call-ID: 843817637684230@998sdasdh09\r\nCSeq: 1826 REGISTER\r\n\
    Contact: <sip:alice@192.0.2.1:5060>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n";

struct Fixture {
    server: Authenticator,
    client: DigestClient,
    rng: SeededRng,
    now: Instant,
    register: OwnedMessage,
    challenge: OwnedMessage,
}

fn fixture(algorithm: Algorithm) -> Fixture {
    let now = Instant::now();
    let mut config = AuthConfig::new("example.com", [4; 32]);
    config.algorithms = vec![algorithm];
    config.max_nonce_counts = 1000;
    let mut server = Authenticator::new(config, now, 1_700_000_000);
    server.add_user("alice", "secret");
    let mut rng = SeededRng::new([2; 32]);
    let register = OwnedMessage::parse(REGISTER).expect("REGISTER parses");
    let challenge = server
        .challenge(&register, AuthKind::Www, false, now, &mut rng)
        .expect("challenge");
    let mut client = DigestClient::new("alice", "secret");
    let answered = client
        .retry(&register, &challenge, &mut rng)
        .expect("answered");
    assert_eq!(
        server.verify(&answered, AuthKind::Www, now),
        AuthVerdict::Authorized {
            user: "alice".into()
        }
    );
    Fixture {
        server,
        client,
        rng,
        now,
        register,
        challenge,
    }
}

fn nonce_of(challenge: &OwnedMessage) -> String {
    let m = challenge.message().expect("typed");
    let v = m
        .values(HeaderName::WwwAuthenticate)
        .next()
        .expect("challenge");
    let HeaderValue::Auth(a) = v else {
        panic!("not auth")
    };
    Challenge::parse(&a).expect("digest").nonce.into_owned()
}

/// The next request with a fresh nonce-count (what a registration refresh sends).
fn next_request(
    client: &mut DigestClient,
    rng: &mut SeededRng,
    register: &OwnedMessage,
) -> OwnedMessage {
    client.authorize(register, rng).expect("authorized")
}

fn digest(c: &mut Criterion) {
    let f = fixture(Algorithm::Sha256);
    let nonce = nonce_of(&f.challenge);
    c.bench_function("digest/nonce_check", |b| {
        b.iter(|| f.server.nonce_status(black_box(&nonce), f.now))
    });
    for (name, algorithm) in [("md5", Algorithm::Md5), ("sha256", Algorithm::Sha256)] {
        let Fixture {
            mut server,
            mut client,
            mut rng,
            now,
            register,
            ..
        } = fixture(algorithm);
        let mut g = c.benchmark_group("digest/verify");
        g.bench_function(name, |b| {
            b.iter_batched(
                || next_request(&mut client, &mut rng, &register),
                |req| {
                    let v = server.verify(&req, AuthKind::Www, now);
                    debug_assert!(matches!(v, AuthVerdict::Authorized { .. }));
                    v
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
        let mut f = fixture(algorithm);
        c.bench_function(&format!("digest/client_retry/{name}"), |b| {
            b.iter(|| {
                let mut client = DigestClient::new("alice", "secret");
                client
                    .retry(&f.register, &f.challenge, &mut f.rng)
                    .expect("answered")
            })
        });
    }
}

/// `DIGEST_CALLGRIND=OP:N`: N runs of one operation, for instruction counts.
fn callgrind(spec: &str) {
    let (op, n) = spec.split_once(':').expect("OP:N");
    let n: usize = n.parse().expect("N");
    let algorithm = if op == "verify-md5" {
        Algorithm::Md5
    } else {
        Algorithm::Sha256
    };
    let mut f = fixture(algorithm);
    let nonce = nonce_of(&f.challenge);
    // requests made before the counted loop, so only the check is counted
    let requests: Vec<OwnedMessage> = if op == "nonce" {
        Vec::new()
    } else {
        (0..n)
            .map(|_| next_request(&mut f.client, &mut f.rng, &f.register))
            .collect()
    };
    if op == "nonce" {
        for _ in 0..n {
            black_box(f.server.nonce_status(black_box(&nonce), f.now));
        }
        return;
    }
    for r in &requests {
        let v = f.server.verify(r, AuthKind::Www, f.now);
        assert!(matches!(v, AuthVerdict::Authorized { .. }));
    }
}

criterion_group!(benches, digest);

fn main() {
    if let Some(spec) = std::env::args()
        .find_map(|a| a.strip_prefix("DIGEST_CALLGRIND=").map(str::to_owned))
        .or_else(|| std::env::var("DIGEST_CALLGRIND").ok())
    {
        callgrind(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
