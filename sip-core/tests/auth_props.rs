//! Property tests of digest authentication (RFC 7616, RFC 3261 section 22): what the client
//! answers always verifies on the server, whatever the names, passwords, realms, methods,
//! URIs and bodies, for every algorithm and qop; and no Authorization value makes the
//! server panic.

use std::time::Instant;

use proptest::prelude::*;
use proptest::string::string_regex;
use sip_core::auth::{
    Algorithm, AuthConfig, AuthKind, AuthVerdict, Authenticator, DigestClient, DigestError, Qop,
};
use sip_core::{OwnedMessage, SeededRng};

const UNIX: u64 = 1_700_000_000;

/// Any text of a line: printable ASCII (quotes and backslashes included), other UTF-8,
/// tabs and the control characters a quoted-pair can carry.
fn text() -> impl Strategy<Value = String> {
    string_regex("[ -~\u{e4}\u{f8}\u{4e2d}\u{1f600}\t\u{1}\u{7f}]{0,24}").expect("regex")
}

/// A realm: as [`text`], but not empty.
fn realm() -> impl Strategy<Value = String> {
    string_regex("[ -~\u{e4}\u{4e2d}\t]{1,24}").expect("regex")
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("REGISTER".to_owned()),
        Just("INVITE".to_owned()),
        Just("MESSAGE".to_owned()),
        string_regex("[A-Z][A-Za-z0-9.!%*_+`'~-]{0,11}").expect("regex"),
    ]
}

fn request_uri() -> impl Strategy<Value = String> {
    string_regex("sips?:([a-z0-9._~!$&'()*+,;=-]|%[0-9A-F]{2}){1,12}@[a-z]([a-z0-9-]{0,8}[a-z0-9])?\\.example\\.com(:[1-9][0-9]{0,3})?(;transport=(udp|tcp))?")
        .expect("regex")
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    proptest::sample::select(Algorithm::ALL.to_vec())
}

fn qop() -> impl Strategy<Value = Vec<Qop>> {
    prop_oneof![
        Just(vec![Qop::Auth]),
        Just(vec![Qop::AuthInt]),
        Just(vec![Qop::Auth, Qop::AuthInt]),
        Just(vec![]),
    ]
}

fn request(method: &str, uri: &str, body: &[u8]) -> OwnedMessage {
    let mut s = format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\n\
         Call-ID: c@192.0.2.1\r\nCSeq: 5 {method}\r\n"
    );
    if !body.is_empty() {
        s.push_str("Content-Type: application/octet-stream\r\n");
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = s.into_bytes();
    bytes.extend_from_slice(body);
    OwnedMessage::parse_typed(&bytes, &sip_core::Limits::DEFAULT).expect("generated request parses")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// RFC 7616 3.4, RFC 8760 2.1, RFC 3261 22.2 to 22.4: the client's answer verifies,
    /// and only once.
    #[test]
    fn client_answer_always_verifies_on_the_server(
        user in text(),
        password in text(),
        realm in realm(),
        method in method(),
        uri in request_uri(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        algorithm in algorithm(),
        qop in qop(),
        userhash in any::<bool>(),
        seed in any::<[u8; 32]>(),
    ) {
        let now = Instant::now();
        let mut config = AuthConfig::new(&realm, [3; 32]);
        config.algorithms = vec![algorithm];
        let with_qop = !qop.is_empty();
        config.qop = qop;
        config.userhash = userhash;
        let mut server = Authenticator::new(config, now, UNIX);
        server.add_user(&user, &password);
        let mut rng = SeededRng::new(seed);
        let req = request(&method, &uri, &body);
        prop_assert_eq!(
            server.verify(&req, AuthKind::Www, now),
            AuthVerdict::Challenge { stale: false }
        );
        let challenge = server
            .challenge(&req, AuthKind::Www, false, now, &mut rng)
            .expect("challenge");
        let mut client = DigestClient::new(&user, &password);
        let again = client.retry(&req, &challenge, &mut rng);
        if user.contains('\0') || password.contains('\0') {
            prop_assert_eq!(again.err(), Some(DigestError::InvalidCredentials));
            return Ok(());
        }
        let again = again.expect("answered");
        prop_assert_eq!(
            server.verify(&again, AuthKind::Www, now),
            AuthVerdict::Authorized { user: user.clone() }
        );
        prop_assert_eq!(
            server.verify(&again, AuthKind::Www, now),
            AuthVerdict::Challenge { stale: true }
        );
        // the kept nonce with the next nonce-count; without qop (RFC 2069 form) there is
        // no nonce-count and the nonce was good once
        let next = client.authorize(&again, &mut rng).expect("authorized");
        let expected = if with_qop {
            AuthVerdict::Authorized { user }
        } else {
            AuthVerdict::Challenge { stale: true }
        };
        prop_assert_eq!(server.verify(&next, AuthKind::Www, now), expected);
    }

    /// Never panic on network input: any Authorization value, alone or after valid-looking
    /// directives of the server's realm.
    #[test]
    fn verify_never_panics_on_any_authorization(
        raw in string_regex("[ -~\t]{0,200}").expect("regex"),
        prefix in 0..3u8,
    ) {
        let now = Instant::now();
        let mut server = Authenticator::new(AuthConfig::new("example.com", [3; 32]), now, UNIX);
        server.add_user("alice", "secret");
        let req = request("REGISTER", "sip:example.com", b"");
        let value = match prefix {
            0 => raw,
            1 => format!("Digest realm=\"example.com\", username=\"alice\", {raw}"),
            // a nonce the server made: the checks behind the nonce are reached
            _ => {
                let mut rng = SeededRng::new([1; 32]);
                let c = server
                    .challenge(&req, AuthKind::Www, false, now, &mut rng)
                    .expect("challenge");
                let text = String::from_utf8(c.as_bytes().to_vec()).expect("UTF-8");
                let start = text.find("nonce=\"").expect("nonce") + 7;
                let nonce = &text[start..start + 64];
                format!(
                    "Digest realm=\"example.com\", username=\"alice\", nonce=\"{nonce}\", \
                     uri=\"sip:example.com\", {raw}"
                )
            }
        };
        let mut e = req.edit();
        if e.set("Authorization", &value).is_err() {
            return Ok(());
        }
        let Ok(req) = e.finish() else { return Ok(()) };
        let verdict = server.verify(&req, AuthKind::Www, now);
        prop_assert!(!matches!(verdict, AuthVerdict::Authorized { .. }), "{:?}", verdict);
    }
}
