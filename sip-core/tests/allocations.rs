//! Allocation counts on the parse path, with a counting global allocator: the borrowed view
//! allocates nothing, the full typed parse once (the typed-value vector).

// A counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sip_core::{Message, MessageView};

struct Counting;

thread_local! {
    // Per thread, so tests running in parallel do not see each other's allocations.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    ALLOCS.with(|a| a.set(a.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        bump();
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        bump();
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MESSAGES: [(&str, &[u8]); 5] = [
    ("invite", include_bytes!("../benches/messages/invite.sip")),
    ("response", include_bytes!("../benches/messages/ok200.sip")),
    (
        "register",
        include_bytes!("../benches/messages/register.sip"),
    ),
    (
        "many_headers",
        include_bytes!("../benches/messages/stress.sip"),
    ),
    (
        "many_headers_nofold",
        include_bytes!("../benches/messages/stress_nofold.sip"),
    ),
];

fn count<T>(f: impl FnOnce() -> T) -> usize {
    let before = ALLOCS.with(Cell::get);
    let v = f();
    let n = ALLOCS.with(Cell::get) - before;
    drop(v);
    n
}

// Design goal (docs/architecture.md): the view borrows the input and keeps header spans
// inline, so framing a message allocates nothing.
#[test]
fn view_parse_allocates_nothing() {
    for (name, m) in MESSAGES {
        let n = count(|| MessageView::parse(m).unwrap().header_count());
        assert_eq!(n, 0, "{name}");
    }
}

// The typed parse holds every typed value in one vector: one allocation, however many
// headers (the stress message has 11 Vias and 5 Record-Routes).
#[test]
fn typed_parse_allocates_once() {
    for (name, m) in MESSAGES {
        let n = count(|| Message::parse(m).unwrap().headers().len());
        assert!(n <= 1, "{name}: {n} allocations");
    }
}

// The SDP parse borrows every value from the body (RFC 8866 text is never copied); what it
// allocates are its lists: media descriptions, time descriptions and, per section, the a=
// lines (a vector that grows 4 -> 8 for the benchmark offer's six attributes). So four
// allocations for the 12-line offer, however long its values.
#[test]
fn sdp_parse_allocates_only_its_lists() {
    let offer: &[u8] = include_bytes!("../benches/messages/offer.sdp");
    let n = count(|| sip_core::sdp::Sdp::parse(offer).unwrap().media().len());
    assert_eq!(n, 4, "{n} allocations");
}
