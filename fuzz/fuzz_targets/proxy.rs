//! The proxy's inputs: requests, responses to what it forwarded, loops, CANCELs, raw
//! datagrams and clock ticks, decoded from the fuzzer's bytes by the driver shared with the
//! proptest in `sip-core/tests/proxy_props.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../sip-core/tests/support/proxy_ops.rs"]
mod proxy_ops;

fuzz_target!(|data: &[u8]| {
    proxy_ops::run(data);
});
