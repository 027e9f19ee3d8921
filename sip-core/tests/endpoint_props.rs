//! Property: the Endpoint survives any sequence of network inputs, clock ticks and
//! transaction-user commands (RFC 3261 section 17/18 state stays bounded and every
//! transaction ends). The same driver is the `endpoint` cargo-fuzz target.

#[path = "support/ops.rs"]
mod ops;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn endpoint_never_panics_and_its_tables_stay_bounded_and_drain(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        ops::run(&data);
    }

    #[test]
    fn endpoint_handles_sequences_of_valid_messages(ops_list in proptest::collection::vec((1u8..8, any::<u8>()), 0..80)) {
        let mut data = Vec::new();
        for (op, arg) in ops_list {
            data.push(op);
            data.push(arg);
            if op == 2 {
                data.push(0);
            }
        }
        ops::run(&data);
    }
}
