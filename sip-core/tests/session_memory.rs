//! What a confirmed dialog costs in the session layer (issue 10, point 9: memory per
//! confirmed dialog, target under 1 KB), measured with a global allocator that tracks live
//! bytes per thread, as `tests/endpoint_memory.rs` does for transactions.
//!
//! `cargo test --release -p sip-core --test session_memory -- --nocapture`

// A counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

#[path = "support/session_sim.rs"]
mod session_sim;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use session_sim::{addr, Net, NetConfig};
use sip_core::session::{CallHandle, Invite, SessionConfig, SessionEvent, Sessions};
use sip_core::Target;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        track(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        track(-(l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        track(n as isize - l.size() as isize);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.with(|l| l.get())
}

const ALICE: &str = "127.0.0.2:5060";
const BOB: &str = "127.0.0.3:5060";
const SDP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

/// Alice places `n` calls that Bob answers; returns Alice's handles once every call is up
/// and the transient state (2xx, ACK kept for retransmissions, transactions) is gone.
fn calls(net: &mut Net, n: usize) -> Vec<CallHandle> {
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let (s, ep, now) = net.ua(0);
        let inv = Invite::new(
            "sip:bob@127.0.0.3:5060",
            "Alice <sip:alice@example.com>",
            "Bob <sip:bob@example.com>",
            Target::udp(addr(BOB)),
        )
        .offer(SDP.to_vec());
        handles.push(s.invite(now, ep, inv).unwrap());
    }
    net.run_for(Duration::from_millis(20));
    for e in net.events(1) {
        if let SessionEvent::Incoming { call, .. } = e {
            let (s, ep, now) = net.ua(1);
            s.accept(now, ep, call, Some(SDP.to_vec())).unwrap();
        }
    }
    // past 64*T1 twice: transactions, retransmission state and kept ACKs are gone
    net.run_for(Duration::from_secs(70));
    net.events(0);
    net.events(1);
    net.other(0);
    net.other(1);
    handles
}

#[test]
fn memory_per_confirmed_dialog() {
    const N: usize = 4000;
    let mut net = Net::new(9, NetConfig::perfect());
    net.wire_cap = 1;
    net.add_ua(ALICE, SessionConfig::new("alice"));
    net.add_ua(BOB, SessionConfig::new("bob"));
    // Warm-up: the endpoints' transaction tables grow to what N calls need and keep that
    // capacity (that is the endpoint's cost, per transaction, not per dialog).
    let warm = calls(&mut net, N);
    for c in warm {
        let (s, ep, now) = net.ua(0);
        s.hangup(now, ep, c).unwrap();
    }
    net.run_for(Duration::from_secs(70));
    net.events(0);
    net.events(1);
    assert_eq!((net.s(0).dialogs(), net.s(1).dialogs()), (0, 0));
    // Fresh session layers: the growth of their tables (slab chunks, the dialog index, the
    // timer set) is counted with the dialogs that caused it.
    net.nodes[0].s = Some(Sessions::new(SessionConfig::new("alice"), [1; 32]));
    net.nodes[1].s = Some(Sessions::new(SessionConfig::new("bob"), [2; 32]));
    let before = live();
    let handles = calls(&mut net, N);
    assert_eq!((net.s(0).dialogs(), net.s(1).dialogs()), (N, N));
    assert_eq!(
        net.nodes[0].ep.transactions() + net.nodes[1].ep.transactions(),
        0
    );
    let per_dialog = (live() - before) / (2 * N) as isize;
    eprintln!(
        "per confirmed dialog (either side; 24-character Call-ID, display names, no route set): \
         {per_dialog} B"
    );
    // a budget, not a timing: a dialog is its strings plus the table entries
    assert!(per_dialog < 1024, "{per_dialog} bytes per confirmed dialog");
    drop(handles);
}
