//! The Endpoint's inputs: datagrams, stream chunks, flow events, clock ticks and
//! transaction-user commands, decoded from the fuzzer's bytes by the driver shared with the
//! proptest in `sip-core/tests/endpoint_props.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../sip-core/tests/support/ops.rs"]
mod ops;

fuzz_target!(|data: &[u8]| {
    ops::run(data);
});
