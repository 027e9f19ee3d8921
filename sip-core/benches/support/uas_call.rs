//! One complete INVITE server transaction through the Endpoint, shared by the
//! `endpoint/uas_invite_transaction` benchmark and the `uas_loop` example (callgrind): the
//! INVITE arrives (a fresh branch each time), the application answers 180 and 200 with SDP
//! (built with `ResponseBuilder::from_view`), the bytes are drained with `poll_transmit`, the
//! ACK for the 2xx arrives and is handed up.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Instant;

use sip_core::{Config, Endpoint, Event, Listener, ResponseBuilder, SeededRng, Transport};

/// The INVITE of the parse benchmarks.
pub const INVITE: &[u8] = include_bytes!("../messages/invite.sip");
const BRANCH: &[u8] = b"z9hG4bK776asdhds";
const SDP: &[u8] = b"v=0\r\no=bob 2890844527 2890844527 IN IP4 127.0.0.2\r\ns=-\r\n\
c=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 3456 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const ACK: &[u8] = b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKack00000000;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 ACK\r\n\
Content-Length: 0\r\n\r\n";

/// Writes `n` as 9 hex digits over the 9 characters after the magic cookie of the branch
/// starting at `at`.
pub fn set_branch(msg: &mut [u8], at: usize, n: u64) {
    // written by hand: `format!` would cost more than some of what is being measured
    for (i, b) in msg[at + 7..at + 16].iter_mut().rev().enumerate() {
        *b = b"0123456789abcdef"[((n >> (4 * i)) & 0xf) as usize];
    }
}

/// Where the branch of the template INVITE starts.
pub fn invite_branch_at() -> usize {
    find(INVITE, BRANCH)
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("template holds the branch")
}

/// An endpoint listening on UDP at `addr`.
pub fn endpoint(addr: SocketAddr, seed: u8) -> Endpoint {
    let config = Config {
        listeners: vec![Listener::new(Transport::Udp, addr)],
        ..Config::default()
    };
    Endpoint::new(config, [seed; 32])
}

/// A UAS endpoint and the messages it receives.
pub struct UasCall {
    pub ep: Endpoint,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub rng: SeededRng,
    invite: Vec<u8>,
    inv_at: usize,
    ack: Vec<u8>,
    ack_at: usize,
    pub buf: Vec<u8>,
}

impl UasCall {
    pub fn new() -> UasCall {
        let local: SocketAddr = "127.0.0.2:5060".parse().unwrap();
        let ack = ACK.to_vec();
        let ack_at = find(&ack, b"z9hG4bKack");
        UasCall {
            ep: endpoint(local, 1),
            local,
            remote: "127.0.0.1:5060".parse().unwrap(),
            rng: SeededRng::new([2; 32]),
            invite: INVITE.to_vec(),
            inv_at: invite_branch_at(),
            ack,
            ack_at,
            buf: Vec::with_capacity(2048),
        }
    }

    /// Call number `n` at `now`: INVITE in, 180 and 200 out, ACK in.
    pub fn call(&mut self, n: u64, now: Instant) {
        let (local, remote) = (self.local, self.remote);
        self.ep.handle_timeout(now);
        set_branch(&mut self.invite, self.inv_at, n);
        self.ep.handle_datagram(now, local, remote, &self.invite);
        let Some(Event::Request { tx, request, .. }) = self.ep.poll_event() else {
            panic!("the INVITE reaches the application");
        };
        let view = request.view();
        let ringing = ResponseBuilder::from_view(&view, 180)
            .to_tag("a6c85cf")
            .build(&mut self.rng)
            .unwrap();
        self.ep.send_response(now, tx, &ringing).unwrap();
        let ok = ResponseBuilder::from_view(&view, 200)
            .to_tag("a6c85cf")
            .header("Contact", "<sip:bob@127.0.0.2:5060>")
            .body("application/sdp", SDP)
            .build(&mut self.rng)
            .unwrap();
        self.ep.send_response(now, tx, &ok).unwrap();
        while let Some(t) = self.ep.poll_transmit(&mut self.buf) {
            std::hint::black_box((&t, self.buf.len()));
        }
        set_branch(&mut self.ack, self.ack_at, n);
        self.ep.handle_datagram(now, local, remote, &self.ack);
        let Some(Event::Ack { .. }) = self.ep.poll_event() else {
            panic!("the ACK for the 2xx reaches the application");
        };
    }
}
