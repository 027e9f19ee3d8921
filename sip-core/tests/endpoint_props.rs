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

    // RFC 3263 through the Endpoint: requests, ACKs and CANCELs to names, made-up DNS answers
    // in any order, ICMP and 503s from the made-up servers, the clock: nothing panics, the
    // lookups stay bounded and everything drains.
    #[test]
    fn endpoint_with_names_and_dns_answers_never_panics_and_drains(ops_list in proptest::collection::vec((prop_oneof![0xf8u8..=0xff, Just(4u8), Just(3u8), Just(7u8)], any::<u8>(), proptest::collection::vec(any::<u8>(), 8)), 0..60)) {
        let mut data = Vec::new();
        for (op, arg, extra) in ops_list {
            data.push(op);
            data.push(arg);
            if op == 0xfb || op == 0xfc {
                data.extend_from_slice(&extra);
            }
        }
        ops::run(&data);
    }
}

/// A fuzzer's input (the `endpoint` target, 2026-12-05) in which a request to a name failed
/// over several times: each retired attempt that still absorbed a retransmitted 503 stayed
/// as an unnamed transaction, and the table went past `max_transactions`. The retired
/// attempt now takes no room that is not there (RFC 3263 4.3 attempts are transactions).
#[test]
fn failover_attempts_never_take_the_table_past_max_transactions() {
    ops::run(&[
        0xf9, 0xf9, 0xf9, 0xfe, 0xfb, 0xff, 0xfd, 0x16, 0xd7, 0xeb, 0xf9, 0xcb, 0x40, 0xfb, 0xb3,
        0x04, 0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xf9, 0xf9, 0xf9, 0xf9,
        0xf9, 0xf9, 0xf9, 0xf9, 0xff, 0xfd, 0x16, 0xd7, 0xeb, 0xf9, 0xcb, 0x40, 0xfb, 0x24, 0x04,
        0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf9, 0x59, 0xfe, 0xfb, 0xf9, 0xfe, 0xf9,
        0x03, 0xfb, 0x00, 0x00, 0x00, 0xf9, 0x6b, 0xfe, 0xe9, 0xf9, 0xf9, 0xf9, 0xf9, 0xf9, 0xf9,
        0xf9, 0xf9, 0xf9, 0xf9, 0xf9, 0xfe, 0xfb, 0xf9, 0xfe, 0xff, 0xf9,
    ]);
}
