//! Digest authentication on untrusted bytes (RFC 3261 section 22, RFC 7616). The first byte
//! picks the side, the rest is the message:
//!
//! - even: a request through `Authenticator::verify` (both header kinds) and
//!   `Authenticator::respond`; each `@N@` in it is first replaced by a nonce the server made,
//!   so that the checks behind the nonce's MAC (user, response, nonce-count) are reached;
//! - odd: a 401/407 through `DigestClient::retry` for a fixed request, then
//!   `DigestClient::authorize`.
//!
//! Invariants: nothing panics; a request made up by the fuzzer is never authorized (even
//! with a valid nonce, its response would need the password); what `retry` and `authorize` return parses as a
//! typed message with the CSeq one above the request's (retry) or equal to it (authorize).
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sip_core::auth::{AuthConfig, AuthKind, AuthVerdict, Authenticator, Challenge, DigestClient};
use sip_core::{HeaderName, HeaderValue, OwnedMessage, SeededRng};

const REQUEST: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
    From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n\
    Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";

/// A nonce `server` made at `now`.
fn fresh_nonce(server: &Authenticator, now: Instant, rng: &mut SeededRng) -> String {
    let request = OwnedMessage::parse(REQUEST).expect("fixed request");
    let c = server
        .challenge(&request, AuthKind::Www, false, now, rng)
        .expect("challenge");
    let m = c.message().expect("a challenge types");
    let Some(HeaderValue::Auth(a)) = m.values(HeaderName::WwwAuthenticate).next() else {
        panic!("no WWW-Authenticate")
    };
    Challenge::parse(&a).expect("digest").nonce.into_owned()
}

/// `text` with each `@N@` replaced by `nonce`.
fn with_nonce(text: &[u8], nonce: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(i) = rest.windows(3).position(|w| w == b"@N@") {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(nonce.as_bytes());
        rest = &rest[i + 3..];
    }
    out.extend_from_slice(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else { return };
    let now = Instant::now();
    let mut rng = SeededRng::new([pick; 32]);
    if pick & 1 == 0 {
        let mut server =
            Authenticator::new(AuthConfig::new("example.com", [1; 32]), now, 1_700_000_000);
        server.add_user("alice", "secret");
        let text = with_nonce(text, &fresh_nonce(&server, now, &mut rng));
        let Ok(msg) = OwnedMessage::parse(&text) else { return };
        for kind in [AuthKind::Www, AuthKind::Proxy] {
            let verdict = server.verify(&msg, kind, now);
            assert!(!matches!(verdict, AuthVerdict::Authorized { .. }), "{verdict:?}");
            let _ = server.respond(&msg, kind, &verdict, now, &mut rng);
        }
    } else {
        let Ok(msg) = OwnedMessage::parse(text) else { return };
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
