//! Random tokens (RFC 3261 sections 8.1.1.4, 8.1.1.7, 19.3): how much randomness tags,
//! branches and Call-IDs carry, and that a seed reproduces a run.

use std::net::SocketAddr;
use std::time::Instant;

use sip_core::{
    response_to, Config, Endpoint, Listener, Message, Method, OwnedMessage, RequestBuilder,
    SeededRng, Target, Transport,
};

/// Bits each token character carries: the generator maps 5 random bits to one of 32
/// characters (the unit tests in `rng.rs` check the mapping is exact).
const BITS_PER_CHAR: usize = 5;

/// The random bits in `token`, after checking that every character is one of the 32 the
/// generator writes.
fn random_bits(token: &str) -> usize {
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)),
        "{token} has characters outside the 32-character alphabet"
    );
    token.len() * BITS_PER_CHAR
}

fn invite(rng: &mut SeededRng) -> OwnedMessage {
    RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.2")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:bob@127.0.0.2>")
        .via("UDP", "127.0.0.1:5060")
        .build(rng)
        .unwrap()
}

fn endpoint(seed: [u8; 32]) -> Endpoint {
    let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let config = Config {
        listeners: vec![Listener::new(Transport::Udp, local)],
        ..Config::default()
    };
    Endpoint::new(config, seed)
}

/// What `seed`'s endpoint sends for one INVITE built with a generator of the same seed.
fn first_transmit(seed: [u8; 32]) -> Vec<u8> {
    let mut ep = endpoint(seed);
    let req = invite(&mut SeededRng::new(seed));
    let target = Target::udp("127.0.0.2:5060".parse().unwrap());
    ep.send_request(Instant::now(), &req, target).unwrap();
    let mut buf = Vec::new();
    ep.poll_transmit(&mut buf).unwrap();
    buf
}

#[test]
fn tags_branches_and_call_ids_are_unguessable() {
    // RFC 3261 19.3: at least 32 random bits in a tag; 8.1.1.4 and 8.1.1.7: Call-IDs and
    // branches unique over space and time, hence long random strings (120 and 64 bits here).
    let mut rng = SeededRng::new([9; 32]);
    let req = invite(&mut rng);
    let msg = req.message().unwrap();
    let from_tag = msg.from().unwrap().tag().unwrap();
    assert!(random_bits(from_tag) >= 32);
    assert!(random_bits(msg.call_id().unwrap()) >= 120);
    let branch = msg.top_via().unwrap().branch().unwrap();
    let random = branch.strip_prefix(sip_core::MAGIC_COOKIE).unwrap();
    assert!(random_bits(random) >= 64);

    let ok = response_to(&msg, 200, &mut rng).unwrap();
    let ok = ok.message().unwrap();
    assert!(random_bits(ok.to().unwrap().tag().unwrap()) >= 32);

    // the branch the endpoint writes into its own Via
    let sent = first_transmit([9; 32]);
    let sent = Message::parse(&sent).unwrap();
    let branch = sent.top_via().unwrap().branch().unwrap();
    assert!(random_bits(branch.strip_prefix(sip_core::MAGIC_COOKIE).unwrap()) >= 64);
}

#[test]
fn same_seed_same_run() {
    // Determinism for tests: the seed alone decides every token of a run.
    assert_eq!(first_transmit([3; 32]), first_transmit([3; 32]));
    assert_ne!(first_transmit([3; 32]), first_transmit([4; 32]));
}

#[test]
fn endpoint_tokens_differ_from_the_application_tokens_of_the_same_seed() {
    // RFC 3261 17.1.3: a branch names one transaction. The endpoint draws its branches from
    // a stream of its own, so an application that (wrongly) reuses the endpoint's seed for
    // its builders still writes other branches than the endpoint.
    let seed = [5; 32];
    let sent = first_transmit(seed);
    let sent = Message::parse(&sent).unwrap();
    let vias: Vec<_> = sent.vias().collect();
    assert_eq!(vias.len(), 2, "the endpoint's Via above the builder's");
    assert_ne!(vias[0].branch(), vias[1].branch());
    let mut app = SeededRng::new(seed);
    let app_branch = sip_core::new_branch(&mut app);
    assert_ne!(vias[0].branch(), Some(app_branch.as_str()));
}
