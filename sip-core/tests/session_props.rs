//! Property: random call scripts between two session layers (and a forking peer) over a
//! network that loses, duplicates and reorders datagrams, with peers that vanish: nothing
//! panics, the tables stay bounded, and after the virtual clock drains no call, dialog,
//! transaction or timer is left (issue 10, point 5). The same driver is the `session`
//! cargo-fuzz target.

#[path = "support/session_ops.rs"]
mod session_ops;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_call_script_ends_with_every_table_empty(
        ops in proptest::collection::vec((0u8..9, any::<u8>()), 0..60),
        net in any::<u8>(),
    ) {
        let mut data = vec![net];
        for (op, arg) in ops {
            data.push(op);
            data.push(arg);
        }
        session_ops::run(&data);
    }

    #[test]
    fn arbitrary_bytes_never_leave_state_behind(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        session_ops::run(&data);
    }
}
