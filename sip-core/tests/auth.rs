//! Digest authentication end to end: `DigestClient` answers, `Authenticator` checks (RFC
//! 3261 section 22, RFC 7616, RFC 8760).

use std::time::{Duration, Instant};

use sip_core::auth::{
    Algorithm, AuthConfig, AuthKind, AuthVerdict, Authenticator, Credentials, DigestClient,
    DigestError, Qop,
};
use sip_core::{HeaderName, HeaderValue, OwnedMessage, SeededRng};

const UNIX: u64 = 1_700_000_000;

fn register() -> OwnedMessage {
    OwnedMessage::parse(
        b"REGISTER sip:example.com SIP/2.0\r\n\
          Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK77\r\n\
          Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\n\
          To: <sip:alice@example.com>\r\nCall-ID: reg1@192.0.2.1\r\nCSeq: 1 REGISTER\r\n\
          Contact: <sip:alice@192.0.2.1:5060>\r\nContent-Length: 0\r\n\r\n",
    )
    .expect("REGISTER parses")
}

fn message_with_body() -> OwnedMessage {
    OwnedMessage::parse(
        b"MESSAGE sip:bob@example.com SIP/2.0\r\n\
          Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK78\r\n\
          Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\n\
          To: <sip:bob@example.com>\r\nCall-ID: m1@192.0.2.1\r\nCSeq: 7 MESSAGE\r\n\
          Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    )
    .expect("MESSAGE parses")
}

struct Setup {
    server: Authenticator,
    client: DigestClient,
    rng: SeededRng,
    now: Instant,
}

fn setup(config: AuthConfig) -> Setup {
    let now = Instant::now();
    let mut server = Authenticator::new(config, now, UNIX);
    server.add_user("alice", "secret");
    Setup {
        server,
        client: DigestClient::new("alice", "secret"),
        rng: SeededRng::new([9; 32]),
        now,
    }
}

fn default_setup() -> Setup {
    setup(AuthConfig::new("example.com", [5; 32]))
}

impl Setup {
    /// The request after one challenge and the client's answer.
    fn answered(&mut self, request: &OwnedMessage, kind: AuthKind) -> OwnedMessage {
        let challenge = self
            .server
            .challenge(request, kind, false, self.now, &mut self.rng)
            .expect("challenge");
        self.client
            .retry(request, &challenge, &mut self.rng)
            .expect("answered")
    }
}

fn authorized() -> AuthVerdict {
    AuthVerdict::Authorized {
        user: "alice".into(),
    }
}

const CHALLENGE: AuthVerdict = AuthVerdict::Challenge { stale: false };
const STALE: AuthVerdict = AuthVerdict::Challenge { stale: true };

/// The request with the first value of `name` replaced by `value`.
fn with_header(request: &OwnedMessage, name: &str, value: &str) -> OwnedMessage {
    let mut e = request.edit();
    e.set(name, value).expect("set");
    e.finish().expect("finish")
}

fn credentials_text(m: &OwnedMessage) -> String {
    let msg = m.message().expect("typed");
    let text = match msg.values(HeaderName::Authorization).next() {
        Some(HeaderValue::Auth(a)) => format!("{} {}", a.scheme, a.params.as_str()),
        _ => panic!("no Authorization"),
    };
    text
}

#[test]
fn request_without_credentials_is_challenged() {
    // RFC 3261 22.1
    let mut s = default_setup();
    assert_eq!(
        s.server.verify(&register(), AuthKind::Www, s.now),
        CHALLENGE
    );
}

#[test]
fn challenge_offers_each_algorithm_in_preference_order_with_one_nonce() {
    // RFC 8760 2.4, RFC 7616 3.7: one header per algorithm, preferred first
    let mut s = default_setup();
    let c = s
        .server
        .challenge(&register(), AuthKind::Www, false, s.now, &mut s.rng)
        .expect("challenge");
    assert_eq!(c.status(), Some(401));
    let m = c.message().expect("typed");
    let challenges: Vec<_> = m
        .values(HeaderName::WwwAuthenticate)
        .map(|v| match v {
            HeaderValue::Auth(a) => sip_core::auth::Challenge::parse(&a).expect("digest"),
            _ => panic!("not auth"),
        })
        .collect();
    let algorithms: Vec<_> = challenges.iter().map(|c| c.algorithm).collect();
    assert_eq!(
        algorithms,
        [
            Some(Algorithm::Sha256),
            Some(Algorithm::Sha512_256),
            Some(Algorithm::Md5)
        ]
    );
    assert!(challenges.iter().all(|c| c.nonce == challenges[0].nonce
        && c.realm == "example.com"
        && c.qop.is_some_and(|q| q.auth && q.auth_int)
        && !c.stale));
    // RFC 3261 8.2.6.2: a To tag on a response other than 100
    assert!(m.to().expect("To").tag().is_some());
}

#[test]
fn proxy_challenge_is_407_with_proxy_authenticate_answered_by_proxy_authorization() {
    // RFC 3261 22.3
    let mut s = default_setup();
    let again = s.answered(&register(), AuthKind::Proxy);
    let m = again.message().expect("typed");
    assert_eq!(m.values(HeaderName::ProxyAuthorization).count(), 1);
    assert_eq!(m.values(HeaderName::Authorization).count(), 0);
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), CHALLENGE);
    assert_eq!(
        s.server.verify(&again, AuthKind::Proxy, s.now),
        authorized()
    );
}

#[test]
fn client_answer_is_authorized_for_every_algorithm_and_qop() {
    // RFC 7616 3.4.1 to 3.4.3, RFC 8760 2.1, RFC 3261 22.4 (no qop)
    for algorithm in Algorithm::ALL {
        for qop in [vec![Qop::Auth], vec![Qop::AuthInt], vec![]] {
            let mut config = AuthConfig::new("example.com", [5; 32]);
            config.algorithms = vec![algorithm];
            config.qop = qop.clone();
            let mut s = setup(config);
            let again = s.answered(&message_with_body(), AuthKind::Www);
            assert_eq!(
                s.server.verify(&again, AuthKind::Www, s.now),
                authorized(),
                "{algorithm} {qop:?}"
            );
        }
    }
}

#[test]
fn wrong_password_is_challenged_again_and_the_client_gives_up() {
    // RFC 3261 22.2 (credentials not accepted: challenged again; retried once per new
    // challenge)
    let mut s = default_setup();
    s.client = DigestClient::new("alice", "wrong");
    let again = s.answered(&register(), AuthKind::Www);
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), CHALLENGE);
    let challenge = s
        .server
        .challenge(&again, AuthKind::Www, false, s.now, &mut s.rng)
        .expect("challenge");
    assert_eq!(
        s.client.retry(&again, &challenge, &mut s.rng).err(),
        Some(DigestError::Rejected {
            realm: "example.com".into()
        })
    );
}

#[test]
fn unknown_user_is_challenged_like_a_wrong_password() {
    // RFC 3261 22.2; the answer does not tell which users exist
    let mut s = default_setup();
    s.client = DigestClient::new("mallory", "secret");
    let again = s.answered(&register(), AuthKind::Www);
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), CHALLENGE);
}

#[test]
fn credentials_for_another_realm_are_challenged() {
    // RFC 3261 22.1 and 22.3: only credentials for the server's own realm count
    let mut s = default_setup();
    let other = AuthConfig::new("other.example.com", [5; 32]);
    let mut other = Authenticator::new(other, s.now, UNIX);
    other.add_user("alice", "secret");
    let c = other
        .challenge(&register(), AuthKind::Www, false, s.now, &mut s.rng)
        .expect("challenge");
    let again = s
        .client
        .retry(&register(), &c, &mut s.rng)
        .expect("answered");
    assert_eq!(other.verify(&again, AuthKind::Www, s.now), authorized());
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), CHALLENGE);
}

#[test]
fn replayed_nonce_count_is_answered_stale() {
    // RFC 7616 3.4 (nc: the server detects a replayed request), 3.3 (stale only for a
    // valid digest)
    let mut s = default_setup();
    let again = s.answered(&register(), AuthKind::Www);
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), authorized());
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), STALE);
    // the next nonce-count is fresh, an older one is not
    let r3 = s.client.authorize(&register(), &mut s.rng).expect("nc 2");
    let r3 = s.client.authorize(&r3, &mut s.rng).expect("nc 3");
    let r2_again = again.clone();
    assert_eq!(s.server.verify(&r3, AuthKind::Www, s.now), authorized());
    assert_eq!(s.server.verify(&r2_again, AuthKind::Www, s.now), STALE);
}

#[test]
fn expired_nonce_is_answered_stale_and_the_client_retries() {
    // RFC 7616 3.3 (stale=true: the client retries without asking the user again)
    let mut s = default_setup();
    let again = s.answered(&register(), AuthKind::Www);
    let later = s.now + Duration::from_secs(301);
    assert_eq!(s.server.verify(&again, AuthKind::Www, later), STALE);
    let stale = s
        .server
        .challenge(&again, AuthKind::Www, true, later, &mut s.rng)
        .expect("challenge");
    let retried = s.client.retry(&again, &stale, &mut s.rng).expect("retried");
    assert_eq!(
        s.server.verify(&retried, AuthKind::Www, later),
        authorized()
    );
}

#[test]
fn expired_nonce_with_a_wrong_password_is_not_stale() {
    // RFC 7616 3.3: stale only when the digest is valid
    let mut s = default_setup();
    s.client = DigestClient::new("alice", "wrong");
    let again = s.answered(&register(), AuthKind::Www);
    let later = s.now + Duration::from_secs(301);
    assert_eq!(s.server.verify(&again, AuthKind::Www, later), CHALLENGE);
}

#[test]
fn nonce_of_another_server_with_the_same_secret_verifies() {
    // the nonce needs no table: a keyed MAC over time and realm (issue 12)
    let mut s = default_setup();
    let again = s.answered(&register(), AuthKind::Www);
    // a second server started 100 s later, its own Instant base
    let later = s.now + Duration::from_secs(100);
    let mut second = Authenticator::new(AuthConfig::new("example.com", [5; 32]), later, UNIX + 100);
    second.add_user("alice", "secret");
    assert_eq!(second.verify(&again, AuthKind::Www, later), authorized());
    // another secret does not know the nonce at all
    let mut third = Authenticator::new(AuthConfig::new("example.com", [6; 32]), later, UNIX + 100);
    third.add_user("alice", "secret");
    assert_eq!(third.verify(&again, AuthKind::Www, later), CHALLENGE);
}

#[test]
fn forged_nonce_is_challenged() {
    // RFC 7616 3.3 (nonce: server-specified); a changed nonce fails the MAC
    let mut s = default_setup();
    let again = s.answered(&register(), AuthKind::Www);
    let text = credentials_text(&again);
    let start = text.find("nonce=\"").expect("nonce") + 7;
    let mut forged = text.clone();
    // the issue time moved one second on
    let digit = forged.as_bytes()[start + 15];
    let new = if digit == b'0' { "1" } else { "0" };
    forged.replace_range(start + 15..start + 16, new);
    let req = with_header(&again, "Authorization", &forged);
    assert_eq!(s.server.verify(&req, AuthKind::Www, s.now), CHALLENGE);
}

#[test]
fn nonce_count_table_is_bounded_and_a_forgotten_nonce_is_stale() {
    // RFC 7616 3.4 (replay detection) with bounded state: a nonce forgotten is never
    // accepted twice
    let mut config = AuthConfig::new("example.com", [5; 32]);
    config.max_nonce_counts = 2;
    let mut s = setup(config);
    let first = s.answered(&register(), AuthKind::Www);
    assert_eq!(s.server.verify(&first, AuthKind::Www, s.now), authorized());
    let later = s.now + Duration::from_secs(1);
    for _ in 0..2 {
        let mut client = DigestClient::new("alice", "secret");
        let c = s
            .server
            .challenge(&register(), AuthKind::Www, false, later, &mut s.rng)
            .expect("challenge");
        let r = client.retry(&register(), &c, &mut s.rng).expect("answered");
        assert_eq!(s.server.verify(&r, AuthKind::Www, later), authorized());
    }
    // the first nonce was forgotten: its next nonce-count is not accepted
    let next = s.client.authorize(&register(), &mut s.rng).expect("nc 2");
    assert_eq!(s.server.verify(&next, AuthKind::Www, later), STALE);
}

#[test]
fn malformed_credentials_are_a_bad_request() {
    // RFC 7616 3.4, RFC 2617 3.2.2: improper or missing directives are answered 400
    let mut s = default_setup();
    let again = s.answered(&register(), AuthKind::Www);
    let text = credentials_text(&again);
    for broken in [
        text.replace("nc=00000001", "nc=1"),
        text.replace("qop=auth,", "qop=auth-conf,"),
        text.replace(
            "uri=\"sip:example.com\"",
            "uri=\"sip:elsewhere.example.com\"",
        ),
        text.replace("response=", "x-response="),
    ] {
        assert_ne!(broken, text);
        let req = with_header(&again, "Authorization", &broken);
        let v = s.server.verify(&req, AuthKind::Www, s.now);
        assert!(
            matches!(v, AuthVerdict::BadRequest { .. }),
            "{broken}: {v:?}"
        );
        let r = s
            .server
            .respond(&req, AuthKind::Www, &v, s.now, &mut s.rng)
            .expect("built")
            .expect("a response");
        assert_eq!(r.status(), Some(400));
    }
}

#[test]
fn algorithm_not_offered_is_challenged() {
    // RFC 7616 3.7 / RFC 8760 2.4: only the offered algorithms are accepted
    let mut config = AuthConfig::new("example.com", [5; 32]);
    config.algorithms = vec![Algorithm::Md5, Algorithm::Sha256];
    let mut s = setup(config);
    let again = s.answered(&register(), AuthKind::Www);
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), authorized());
    let mut strict = AuthConfig::new("example.com", [5; 32]);
    strict.algorithms = vec![Algorithm::Sha256];
    let mut strict = Authenticator::new(strict, s.now, UNIX);
    strict.add_user("alice", "secret");
    // the client answered MD5, the topmost challenge
    assert!(credentials_text(&again).contains("algorithm=MD5"));
    assert_eq!(strict.verify(&again, AuthKind::Www, s.now), CHALLENGE);
}

#[test]
fn algorithm_the_client_does_not_know_is_not_answered() {
    // RFC 7616 3.3: an unknown algorithm's challenge is ignored
    let mut s = default_setup();
    let c = s
        .server
        .challenge(&register(), AuthKind::Www, false, s.now, &mut s.rng)
        .expect("challenge");
    let text = String::from_utf8(c.as_bytes().to_vec())
        .expect("UTF-8")
        .replace("algorithm=SHA-256", "algorithm=SHA3-256")
        .replace("algorithm=SHA-512-256", "algorithm=SHA3-512")
        .replace("algorithm=MD5", "algorithm=BLAKE3");
    let c = OwnedMessage::parse(text.as_bytes()).expect("parses");
    assert_eq!(
        s.client.retry(&register(), &c, &mut s.rng).err(),
        Some(DigestError::NoChallenge)
    );
}

#[test]
fn userhash_credentials_are_authorized_as_the_user() {
    // RFC 7616 3.4.4
    let mut config = AuthConfig::new("example.com", [5; 32]);
    config.userhash = true;
    let mut s = setup(config);
    let again = s.answered(&register(), AuthKind::Www);
    let text = credentials_text(&again);
    assert!(
        text.contains("userhash=true") && !text.contains("\"alice\""),
        "{text}"
    );
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), authorized());
}

#[test]
fn precomputed_ha1_is_accepted() {
    // RFC 7616 3.4.2: the server may keep H(A1) instead of the password
    let now = Instant::now();
    let mut server = Authenticator::new(AuthConfig::new("example.com", [5; 32]), now, UNIX);
    let ha1 = sip_core::auth::digest::ha1(Algorithm::Sha256, "bob", "example.com", "pw");
    assert!(server.add_ha1("bob", Algorithm::Sha256, &ha1.as_str().to_uppercase()));
    assert!(
        !server.add_ha1("bob", Algorithm::Md5, ha1.as_str()),
        "wrong length"
    );
    let mut rng = SeededRng::new([1; 32]);
    let c = server
        .challenge(&register(), AuthKind::Www, false, now, &mut rng)
        .expect("challenge");
    let again = DigestClient::new("bob", "pw")
        .retry(&register(), &c, &mut rng)
        .expect("answered");
    assert_eq!(
        server.verify(&again, AuthKind::Www, now),
        AuthVerdict::Authorized { user: "bob".into() }
    );
}

#[test]
fn auth_int_covers_the_body() {
    // RFC 7616 3.4.3: auth-int hashes the entity body
    let mut config = AuthConfig::new("example.com", [5; 32]);
    config.qop = vec![Qop::AuthInt];
    let mut s = setup(config);
    let again = s.answered(&message_with_body(), AuthKind::Www);
    let mut e = again.edit();
    e.set_body("text/plain", b"HELLO").expect("body");
    let tampered = e.finish().expect("finish");
    assert_eq!(s.server.verify(&tampered, AuthKind::Www, s.now), CHALLENGE);
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), authorized());
}

#[test]
fn several_challenges_in_one_response_are_answered_together() {
    // RFC 3261 16.7 step 7 (aggregated challenges) and 22.3
    let mut s = default_setup();
    let proxy_cfg = AuthConfig::new("proxy.example.com", [8; 32]);
    let mut proxy = Authenticator::new(proxy_cfg, s.now, UNIX);
    proxy.add_user("alice", "secret");
    let www = s
        .server
        .challenge(&register(), AuthKind::Www, false, s.now, &mut s.rng)
        .expect("401");
    let pxy = proxy
        .challenge(&register(), AuthKind::Proxy, false, s.now, &mut s.rng)
        .expect("407");
    // the aggregate: the 407 with the 401's WWW-Authenticate lines added
    let mut e = pxy.edit();
    let wm = www.message().expect("typed");
    for v in wm.values(HeaderName::WwwAuthenticate) {
        if let HeaderValue::Auth(a) = v {
            e.append(
                "WWW-Authenticate",
                &format!("{} {}", a.scheme, a.params.as_str()),
            )
            .expect("append");
        }
    }
    let aggregate = e.finish().expect("finish");
    let again = s
        .client
        .retry(&register(), &aggregate, &mut s.rng)
        .expect("answered");
    assert_eq!(proxy.verify(&again, AuthKind::Proxy, s.now), authorized());
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), authorized());
}

#[test]
fn credentials_parse_from_what_the_client_writes() {
    // RFC 3261 25.1 digest-response grammar, through the typed parser
    let mut s = default_setup();
    let again = s.answered(&register(), AuthKind::Www);
    let m = again.message().expect("typed");
    let Some(HeaderValue::Auth(a)) = m.values(HeaderName::Authorization).next() else {
        panic!("no Authorization")
    };
    let c = Credentials::parse(&a).expect("credentials");
    assert_eq!(
        (c.username.as_ref(), c.realm.as_ref()),
        ("alice", "example.com")
    );
    assert_eq!(c.uri, "sip:example.com");
    assert_eq!(c.nonce.len(), 64);
}

#[test]
fn verify_message_of_a_typed_request_is_verify_without_the_second_parse() {
    // RFC 3261 22.1 (the same check, on a request the caller already typed)
    let mut s = default_setup();
    let again = s.answered(&register(), AuthKind::Www);
    let typed = again.message().expect("typed");
    assert_eq!(
        s.server.verify_message(&typed, AuthKind::Www, s.now),
        authorized()
    );
    assert_eq!(s.server.verify(&again, AuthKind::Www, s.now), STALE);
}
