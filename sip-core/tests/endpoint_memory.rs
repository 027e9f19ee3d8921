//! What a live transaction costs (issue 3's budget: under 512 bytes besides its messages)
//! and how many allocations the endpoint's hot path makes, measured with a global allocator
//! that tracks live bytes and counts allocations per thread.

// A counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_core::{
    Config, Endpoint, Event, Listener, OwnedMessage, ResponseBuilder, SeededRng, Transport,
};

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn track(delta: isize, alloc: bool) {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
    if alloc {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        track(l.size() as isize, true);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        track(-(l.size() as isize), false);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        track(n as isize - l.size() as isize, true);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.with(|l| l.get())
}

fn allocs() -> usize {
    ALLOCS.with(|a| a.get())
}

const INVITE: &str = "INVITE sip:bob@127.0.0.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{N}\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@127.0.0.2>\r\n\
From: Alice <sip:alice@127.0.0.1>;tag=1928301774\r\n\
Call-ID: {N}@127.0.0.1\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5070>\r\n\
Content-Length: 0\r\n\r\n";

fn setup() -> (Endpoint, Instant, SocketAddr, SocketAddr) {
    let local: SocketAddr = "127.0.0.2:5060".parse().unwrap();
    let remote: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let now = Instant::now();
    let config = Config {
        listeners: vec![Listener::new(Transport::Udp, local)],
        ..Config::default()
    };
    (Endpoint::new(config, [1; 32]), now, local, remote)
}

/// Receives INVITE `n` and answers 180 and 200; returns the bytes of the messages the
/// transaction keeps (the request, the last response) as they sit on the heap.
fn one_call(
    ep: &mut Endpoint,
    now: Instant,
    local: SocketAddr,
    remote: SocketAddr,
    n: usize,
    rng: &mut SeededRng,
    buf: &mut Vec<u8>,
) {
    let invite = INVITE.replace("{N}", &format!("{n:08}"));
    ep.handle_datagram(now, local, remote, invite.as_bytes());
    let Some(Event::Request { tx, request, .. }) = ep.poll_event() else {
        panic!("the INVITE reaches the application")
    };
    let view = request.view();
    let ringing = ResponseBuilder::from_view(&view, 180)
        .to_tag("t")
        .build(rng)
        .unwrap();
    ep.send_response(now, tx, &ringing).unwrap();
    let ok = ResponseBuilder::from_view(&view, 200)
        .to_tag("t")
        .build(rng)
        .unwrap();
    ep.send_response(now, tx, &ok).unwrap();
    while ep.poll_transmit(buf).is_some() {}
}

/// Heap bytes one kept message takes: its bytes and its spans.
fn message_heap(bytes: &[u8]) -> isize {
    let before = live();
    let m = OwnedMessage::parse(bytes).unwrap();
    let with = live() - before;
    drop(m);
    with
}

#[test]
fn issue3_a_live_invite_server_transaction_takes_under_512_bytes_besides_its_messages() {
    const N: usize = 20_000;
    let (mut ep, now, local, remote) = setup();
    let mut rng = SeededRng::new([2; 32]);
    let mut buf = Vec::with_capacity(2048);
    // warm up the endpoint's queues and scratch buffers
    one_call(
        &mut ep,
        now,
        local,
        remote,
        usize::MAX / 2,
        &mut rng,
        &mut buf,
    );
    let before = live();
    for n in 0..N {
        one_call(&mut ep, now, local, remote, n, &mut rng, &mut buf);
    }
    let total = live() - before;
    assert_eq!(ep.transactions(), N + 1);
    // What the messages take: nothing once the 2xx is sent (an Accepted transaction keeps
    // neither its request nor its 2xx: RFC 6026 section 7.1). Measured for the record.
    let invite = INVITE.replace("{N}", "00000000");
    let request_heap = message_heap(invite.as_bytes());
    let mut probe = setup().0;
    one_call(&mut probe, now, local, remote, 0, &mut rng, &mut buf);
    let response_len = {
        // the 200 is the last transmit of the probe call: measure its size
        buf.len()
    };
    let response_heap = message_heap(&buf[..response_len]);
    let per_tx = total / N as isize;
    eprintln!(
        "per live INVITE server transaction after its 2xx: {per_tx} B in all (it keeps no \
         message; while it held them they took {request_heap} B for the request and \
         {response_heap} B for the response)"
    );
    assert!(per_tx < 512, "{per_tx} bytes of state per transaction");
    // and they all go away
    ep.handle_timeout(now + Duration::from_secs(33));
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn issue3_allocations_per_uas_invite_transaction() {
    let (mut ep, mut now, local, remote) = setup();
    let mut rng = SeededRng::new([2; 32]);
    let mut buf = Vec::with_capacity(2048);
    for n in 0..2000 {
        now += Duration::from_millis(40);
        ep.handle_timeout(now);
        one_call(&mut ep, now, local, remote, n, &mut rng, &mut buf);
    }
    let before = allocs();
    const CALLS: usize = 1000;
    for n in 2000..2000 + CALLS {
        now += Duration::from_millis(40);
        ep.handle_timeout(now);
        one_call(&mut ep, now, local, remote, n, &mut rng, &mut buf);
    }
    let per_call = (allocs() - before) as f64 / CALLS as f64;
    eprintln!(
        "allocations per INVITE server transaction (180 and 200 built and sent): {per_call:.1}"
    );
    assert!(per_call < 40.0, "{per_call} allocations per transaction");
}

#[test]
fn rfc3261_17_2_3_absorbing_a_retransmission_allocates_nothing() {
    let (mut ep, now, local, remote) = setup();
    let mut rng = SeededRng::new([2; 32]);
    let mut buf = Vec::with_capacity(2048);
    for n in 0..100 {
        one_call(&mut ep, now, local, remote, n, &mut rng, &mut buf);
    }
    let invite = INVITE.replace("{N}", &format!("{:08}", 42));
    // warm the transmit queue once
    ep.handle_datagram(now, local, remote, invite.as_bytes());
    while ep.poll_transmit(&mut buf).is_some() {}
    let before = allocs();
    for _ in 0..100 {
        ep.handle_datagram(now, local, remote, invite.as_bytes());
        while ep.poll_transmit(&mut buf).is_some() {}
    }
    assert_eq!(
        allocs() - before,
        0,
        "allocations while absorbing 100 retransmissions"
    );
    assert!(
        ep.poll_event().is_none(),
        "a retransmission is not a new request"
    );
    assert_eq!(ep.stats().absorbed, 101);
}
