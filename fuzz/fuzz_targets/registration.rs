//! The registration client's answers to a registrar (RFC 3261 section 10.2): each chunk of
//! the input (split at NUL, up to 8) is the rest of a response to the REGISTER in
//! flight, after a status line whose code the chunk's first byte picks and the Call-ID and
//! CSeq that make it match.
//!
//! Invariants: nothing panics; the registration never gives up: after every response
//! either a REGISTER is due (a deadline) or the binding was removed.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sip_core::registration::{Registration, RegistrationConfig};
use sip_core::{HeaderName, OwnedMessage, SeededRng};

const CODES: [u16; 8] = [200, 202, 401, 407, 423, 500, 503, 600];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else { return };
    let mut config = RegistrationConfig::new(
        "sip:example.com",
        "sip:alice@example.com",
        "<sip:alice@192.0.2.4:5060>",
    );
    if pick & 1 != 0 {
        config = config.with_credentials("alice", "secret");
    }
    let mut now = Instant::now();
    let mut reg = Registration::new(now, config, SeededRng::new([1; 32])).unwrap();
    for (i, chunk) in data.split(|&b| b == 0).enumerate().take(8) {
        let Some((&code, tail)) = chunk.split_first() else { continue };
        if i == 7 && pick & 2 != 0 {
            reg.stop(now);
        }
        let Some(request) = reg.poll_request(now) else { return };
        let view = request.view();
        let head = format!(
            "SIP/2.0 {} Fuzz\r\nCall-ID: {}\r\nCSeq: {}\r\n",
            CODES[usize::from(code) % CODES.len()],
            view.header(HeaderName::CallId).unwrap_or(""),
            view.header(HeaderName::CSeq).unwrap_or(""),
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(tail);
        if let Ok(response) = OwnedMessage::parse(&bytes) {
            reg.handle_response(now, &response);
        }
        if reg.in_flight() {
            // The response did not match or type: the transaction times out.
            reg.handle_failure(now, sip_core::registration::Failure::Timeout);
        }
        match reg.poll_timeout() {
            Some(t) => now = now.max(t),
            None => assert!(reg.is_unregistered(), "gave up: {:?}", reg.state()),
        }
        now += Duration::from_millis(1);
    }
});
