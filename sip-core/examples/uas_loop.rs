//! Runs N complete INVITE server transactions through the Endpoint, or N full parses of the
//! same INVITE, so that callgrind can count the instructions of each (`bench/endpoint-callgrind.sh`).
//!
//! One transaction is the loop body of the `endpoint/uas_invite_transaction` benchmark: the
//! INVITE arrives (a fresh branch each time), the application answers 180 and 200 with SDP
//! (built with `ResponseBuilder::from_view`), the bytes are drained with `poll_transmit`, the
//! ACK for the 2xx arrives and is handed up; the virtual clock moves 40 ms per call, so timer
//! L frees each transaction 32 s of virtual time later.
//!
//! Usage: `cargo run --release -p sip-core --example uas_loop -- uas|parse N`.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::{Config, Endpoint, Event, Listener, Message, ResponseBuilder, SeededRng, Transport};
use std::hint::black_box;

const INVITE: &[u8] = include_bytes!("../benches/messages/invite.sip");
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

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "uas".into());
    let iters: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1000);
    if mode == "parse" {
        for _ in 0..iters {
            black_box(
                Message::parse(black_box(INVITE))
                    .map(|m| m.headers().len())
                    .ok(),
            );
        }
        return;
    }
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
    for n in 1..=iters {
        now += Duration::from_millis(40);
        ep.handle_timeout(now);
        set_branch(&mut invite, inv_at, n);
        ep.handle_datagram(now, local, remote, &invite);
        let Some(Event::Request { tx, request, .. }) = ep.poll_event() else {
            panic!()
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
            panic!()
        };
    }
}
