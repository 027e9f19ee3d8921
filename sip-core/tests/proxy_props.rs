//! Property: the proxy survives any sequence of requests, responses, loops, CANCELs, raw
//! datagrams and clock ticks (RFC 3261 section 16 state stays bounded, every context ends).
//! The same driver is the `proxy` cargo-fuzz target.

#[path = "support/proxy_ops.rs"]
mod proxy_ops;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn proxy_never_panics_and_its_contexts_stay_bounded_and_end(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        proxy_ops::run(&data);
    }

    #[test]
    fn proxy_handles_sequences_of_valid_messages(ops in proptest::collection::vec((1u8..6, any::<u8>()), 0..60)) {
        let mut data = vec![0u8];
        data.pop();
        for (op, arg) in ops {
            data.push(op);
            data.push(arg);
        }
        proxy_ops::run(&data);
    }
}
