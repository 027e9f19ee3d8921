//! Digest authentication on untrusted bytes (RFC 3261 section 22, RFC 7616). The first byte
//! picks the side, the rest is the message:
//!
//! - even: a request through `Authenticator::verify` (both header kinds) and
//!   `Authenticator::challenge`;
//! - odd: a 401/407 through `DigestClient::retry` for a fixed request, then
//!   `DigestClient::authorize`.
//!
//! Invariants: nothing panics; a request made up by the fuzzer is never authorized (its
//! nonce would need the server's secret); what `retry` and `authorize` return parses as a
//! typed message with the CSeq one above the request's (retry) or equal to it (authorize).
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sip_core::auth::{AuthConfig, AuthKind, AuthVerdict, Authenticator, DigestClient};
use sip_core::{OwnedMessage, SeededRng};

const REQUEST: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
    From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n\
    Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else { return };
    let Ok(msg) = OwnedMessage::parse(text) else { return };
    let now = Instant::now();
    let mut rng = SeededRng::new([pick; 32]);
    if pick & 1 == 0 {
        let mut server =
            Authenticator::new(AuthConfig::new("example.com", [1; 32]), now, 1_700_000_000);
        server.add_user("alice", "secret");
        for kind in [AuthKind::Www, AuthKind::Proxy] {
            let verdict = server.verify(&msg, kind, now);
            assert!(!matches!(verdict, AuthVerdict::Authorized { .. }), "{verdict:?}");
            let _ = server.respond(&msg, kind, &verdict, now, &mut rng);
        }
    } else {
        let request = OwnedMessage::parse(REQUEST).expect("fixed request");
        let mut client = DigestClient::new("alice", "se\"cret");
        if let Ok(again) = client.retry(&request, &msg, &mut rng) {
            let m = again.message().expect("a retried request types");
            assert_eq!(m.cseq().map(|c| c.seq), Some(2));
            let later = client.authorize(&request, &mut rng).expect("authorize");
            let m = later.message().expect("an authorized request types");
            assert_eq!(m.cseq().map(|c| c.seq), Some(1));
        }
    }
});
