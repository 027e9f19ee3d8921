//! SDP (RFC 8866) parse, write, re-parse; and the offer/answer helper (RFC 3264) on the input.
//!
//! Invariants: nothing panics; a parsed description's canonical form parses again into an
//! equal description and is a fixed point of write; `LocalMedia::answer` either refuses or
//! returns a description that parses, with one m= line per offered one; the answer is
//! accepted by the offerer's side only when it parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::sdp::{LocalMedia, Sdp};

fuzz_target!(|data: &[u8]| {
    if let Ok(sdp) = Sdp::parse(data) {
        let written = sdp.to_bytes();
        let again = match Sdp::parse(&written) {
            Ok(again) => again,
            Err(e) => panic!(
                "written SDP does not parse again ({e}): {:?}",
                String::from_utf8_lossy(&written)
            ),
        };
        assert!(
            again == sdp,
            "round trip changed the description: {:?}",
            String::from_utf8_lossy(&written)
        );
        assert!(again.to_bytes() == written, "write_to is not a fixed point");
    }

    let mut ours = LocalMedia::new("192.0.2.7".parse().unwrap(), 40000, 1);
    if let Ok(answer) = ours.answer(data) {
        let offer = Sdp::parse(data).expect("an answered offer parses");
        let answer = Sdp::parse(&answer).expect("our answer parses");
        assert_eq!(
            answer.media().len(),
            offer.media().len(),
            "one m= line per offered one"
        );
        assert!(
            answer.media().iter().any(|m| m.port() != 0),
            "an answer accepts a stream"
        );
    }
    // the input as the answer to our offer
    let mut offerer = LocalMedia::new("192.0.2.8".parse().unwrap(), 40002, 2);
    offerer.offer(sip_core::sdp::Direction::SendRecv);
    if offerer.accept_answer(data).is_ok() {
        assert!(Sdp::parse(data).is_ok());
    }
});
