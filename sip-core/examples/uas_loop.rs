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

use std::hint::black_box;
use std::time::{Duration, Instant};

use sip_core::Message;

#[path = "../benches/support/uas_call.rs"]
mod uas_call;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "uas".into());
    let iters: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1000);
    if mode == "parse" {
        for _ in 0..iters {
            black_box(
                Message::parse(black_box(uas_call::INVITE))
                    .map(|m| m.headers().len())
                    .ok(),
            );
        }
        return;
    }
    let mut now = Instant::now();
    let mut uas = uas_call::UasCall::new();
    for n in 1..=iters {
        now += Duration::from_millis(40);
        uas.call(n, now);
    }
}
