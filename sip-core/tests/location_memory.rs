//! What one binding costs in the in-memory location store (issue 12, point 7: memory per
//! binding), measured with a global allocator that tracks live bytes per thread, as
//! `tests/endpoint_memory.rs` does for transactions.
//!
//! `cargo test --release -p sip-core --test location_memory -- --nocapture`

// A counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use sip_core::location::{LocationStore, MemoryStore, StoreLimits};
use sip_core::registrar::{Registrar, RegistrarConfig};
use sip_core::OwnedMessage;

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

/// A REGISTER as softphones send it (a Call-ID of 32 characters, a Contact with a
/// transport parameter), for user `n`.
fn register(n: usize) -> OwnedMessage {
    let text = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.{h}:5060;branch=z9hG4bK{n:08}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:user{n:06}@example.com>;tag={n:010}\r\n\
         To: <sip:user{n:06}@example.com>\r\nCall-ID: {n:032}\r\nCSeq: 1 REGISTER\r\n\
         Contact: <sip:user{n:06}@192.0.2.{h}:5060;transport=udp>;expires=3600\r\n\
         Content-Length: 0\r\n\r\n",
        h = n % 250 + 1
    );
    OwnedMessage::parse(text.as_bytes()).unwrap()
}

#[test]
fn memory_per_binding_in_the_memory_store() {
    const N: usize = 2000;
    let registrar = Registrar::new(RegistrarConfig::for_domains(["example.com"]));
    let mut store = MemoryStore::new(StoreLimits::default());
    let now = Instant::now();
    // warm up: the tables' first allocations are not per binding
    for n in 0..N {
        let req = registrar.check(&register(n), None).unwrap();
        store.register(now, &req).unwrap();
    }
    store.expire(now + Duration::from_secs(3601));
    assert_eq!(store.bindings(), 0);
    let before = live();
    for n in 0..N {
        let req = registrar.check(&register(n), None).unwrap();
        store.register(now, &req).unwrap();
    }
    let per_binding = (live() - before) / N as isize;
    eprintln!(
        "per binding (one AOR each, 32-character Call-ID, a 50-character Contact): \
         {per_binding} B"
    );
    assert_eq!(store.bindings(), N);
    // a budget, not a timing: a binding is its strings plus the table entries
    assert!(per_binding < 1024, "{per_binding} bytes per binding");
    store.expire(now + Duration::from_secs(3601));
    assert_eq!((store.bindings(), store.aors()), (0, 0));
}
