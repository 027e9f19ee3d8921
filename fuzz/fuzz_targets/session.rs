//! The session layer's inputs: call scripts between two Endpoints with Sessions and a
//! forking peer (calls both ways, ring, accept, reject, hangup, re-INVITE, answers, peers
//! that vanish, raw datagrams, clock ticks) over a lossy network, decoded from the fuzzer's
//! bytes by the driver shared with the proptest in `sip-core/tests/session_props.rs`; after
//! the clock drains no call, dialog, transaction or timer may be left.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../sip-core/tests/support/session_ops.rs"]
mod session_ops;

fuzz_target!(|data: &[u8]| {
    session_ops::run(data);
});
